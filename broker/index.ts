// The embedded MQTT broker: Aedes 1.x behind our own listeners, with authentication from the
// devices file, an ACL by role, payload validation on linewatch topics, the socket limits Aedes
// lacks, a fix for aedes#193, backpressure on publishers, and stats. See docs/broker.md.
import type { IncomingMessage } from 'node:http';
import { Duplex } from 'node:stream';
import { Aedes, type AuthenticateError, type Client, type PublishPacket } from 'aedes';
import { topics } from '../contracts/index.js';
import { InProcessBus } from './in-process-bus.js';
import { MessageRefused } from '../bus/bus.js';
import { decodedMessages } from './decoded.js';
import { CLIENT_ID_SEPARATOR, isClientIdOf } from '../contracts/client-id.js';
import { logger } from '../lib/log.js';
import { LogLimiter } from '../lib/log-limit.js';
import type { Counters } from '../lib/service.js';
import { AccountStore } from './account-store.js';
import { LoginGuard } from './login-guard.js';
import { assertAedesPatched } from './aedes-patch.js';
import type { Role } from './accounts.js';
import { mayPublish, maySubscribe, rulesFor } from './acl.js';
import type { BrokerConfig } from './config.js';
import { listenTcp, listenTls, listenWebSocket, type Listener } from './listeners.js';
import { assertReadsPulled, PublisherThrottle } from './backpressure.js';
import { guardLabelOf, guardPacketSize, type OnViolation } from './packet-guard.js';
import { batchWrites } from './write-batching.js';
import { createSafeMq } from './safe-mq.js';
import { installRefusedPublishDrop } from './drop-refused.js';
import { dropOnlyExactCopies } from './dedupe.js';
import { BrokerCounters, type BrokerStats, type RejectReason } from './stats.js';

export { addAccount, addAccounts, generatePassword, passwordProblem, removeAccount, listAccounts, ROLES, type Role, type AccountSummary, type NewAccount } from './accounts.js';
export { brokerConfigSchema, type BrokerConfig } from './config.js';
export { REJECT_REASONS, type BrokerStats, type RejectReason } from './stats.js';
export { InProcessBus, NO_REDELIVERY, REDELIVERY, type RedeliveryPolicy } from './in-process-bus.js';

const log = logger('broker');

export interface LinewatchBroker {
  readonly aedes: Aedes;
  /** Publish/subscribe inside the broker's process, no socket. */
  readonly bus: InProcessBus;
  /** The ports actually bound (useful with port 0). */
  readonly ports: { mqtt: number; ws: number | null; tls: number | null };
  stats(): BrokerStats;
  counters(): Counters;
  stop(): Promise<void>;
}


/** The first bytes of a refused payload kept in the dead letter. */
const DEAD_LETTER_PAYLOAD_BYTES = 1024;

function authError(message: string, returnCode: 2 | 3 | 4 | 5): AuthenticateError {
  return Object.assign(new Error(message), { returnCode }) as AuthenticateError;
}

/** A client id made safe as one topic level. */
function topicLevel(id: string): string {
  return id.replace(/[/+#]/g, '_') || '_';
}

export async function startBroker(config: BrokerConfig): Promise<LinewatchBroker> {
  assertAedesPatched();
  const counters = new BrokerCounters();
  // A bounded number of lines per kind and interval for what a client can cause per message or attempt.
  const limitedLog = new LogLimiter(log);
  const accounts = config.open ? undefined : new AccountStore(config.devicesFile);
  if (accounts) await accounts.load(); // a broken devices file stops the start with its error
  // Password guessing: failed logins back off per address and username, per account and per address (login-guard.ts).
  const loginGuard = new LoginGuard(config.loginBackoff);
  // The ACL rules of each authenticated client (none in open mode: anything goes), shared per account.
  const sessions = new WeakMap<Client, ReturnType<typeof rulesFor>>();
  const emptyIdPersistent = new WeakSet<Client>();
  const assignedId = new WeakSet<Client>(); // empty client id, clean session: Aedes makes up a unique one

  // One rules object per account, shared by all its connections (memory per idle connection).
  const rulesCache = new Map<string, ReturnType<typeof rulesFor>>();
  const rulesOf = (role: Role, username: string): ReturnType<typeof rulesFor> => {
    const key = `${role}\u0000${username}`;
    let rules = rulesCache.get(key);
    if (!rules) rulesCache.set(key, (rules = rulesFor(role, username)));
    return rules;
  };

  const mq = createSafeMq({ concurrency: 100 });
  const throttle = new PublisherThrottle(() => mq.length, config.maxPendingDeliveries, () => counters.publisherPauses++);
  const aedes = await Aedes.createBroker({
    mq,
    connectTimeout: config.connectTimeoutMs,
    drainTimeout: config.drainTimeoutMs,
    heartbeatInterval: 60_000,

    preConnect(client, packet, callback) {
      // MQTT-3.1.3-8: an empty client id requires a clean session; Aedes 1.2.0 accepts it (aedes#1095).
      if (packet.clientId === '' && packet.clean === false) emptyIdPersistent.add(client);
      else if (packet.clientId === '') assignedId.add(client);
      callback(null, true);
    },

    authenticate(client, username, password, done) {
      if (emptyIdPersistent.has(client)) {
        counters.reject('client_id');
        return done(authError('a client with an empty client id must connect with clean session on (MQTT-3.1.3-8)', 2), false);
      }
      if (!accounts) return done(null, true); // open mode: no session, no rules
      if (username === undefined || password === undefined) {
        counters.reject('not_authorized');
        limitedLog.write('info', 'anonymous', { clientId: client.id }, 'refused an anonymous client; add an account with `linewatch devices add`');
        return done(authError('anonymous clients are not allowed', 5), false);
      }
      // A client id belongs to one account (contracts/client-id.ts): nobody takes over another's session.
      if (!assignedId.has(client) && !isClientIdOf(username, client.id)) {
        counters.reject('client_id_denied');
        limitedLog.write('warn', 'client_id_denied', { clientId: client.id, username, remote: remoteOf(client) }, `refused a client id that does not belong to its account: use "${username}" or "${username}:<suffix>"`);
        return done(authError(`client id "${client.id}" does not belong to ${username}`, 2), false);
      }
      const remote = remoteOf(client);
      const admission = loginGuard.admit(addressOf(remote), username);
      if (!admission.admitted) {
        counters.reject('login_backoff');
        limitedLog.write('warn', 'login_backoff', { clientId: client.id, username, remote, retryInMs: admission.retryInMs, heldBackBy: admission.heldBackBy }, 'refused a login without checking the password: too many failed logins for this address and username, this account or this address (broker.loginBackoff)');
        return done(authError('too many failed logins; try again later', 5), false);
      }
      const { attempt } = admission;
      accounts.verify(username, password.toString('utf8')).then(
        (account) => {
          if (!account) {
            loginGuard.failed(attempt);
            counters.reject('bad_credentials');
            limitedLog.write('info', 'bad_credentials', { clientId: client.id, username, remote }, 'refused a client: unknown user or wrong password');
            return done(authError('bad user name or password', 4), false);
          }
          loginGuard.passed(attempt);
          sessions.set(client, rulesOf(account.role, username));
          done(null, true);
        },
        (err: unknown) => {
          loginGuard.abandoned(attempt);
          log.error({ err }, 'cannot read the devices file; refusing the client');
          done(authError('server unavailable', 3), false);
        },
      );
    },

    authorizePublish(client, packet, callback) {
      // client is null only for wills of sessions from before a restart: already authorized then.
      if (!client) return callback(null);
      counters.messagesIn++;
      const rules = sessions.get(client);
      // $SYS is the broker's own, even in open mode (Aedes's default refuses it too).
      if (packet.topic.startsWith('$SYS') || (rules && !mayPublish(rules, packet.topic))) {
        counters.reject('publish_denied');
        log.debug({ clientId: client.id, topic: packet.topic }, 'dropped a publish the ACL does not allow');
        drop(packet);
        return callback(null);
      }
      if (config.validatePayloads) {
        const problem = payloadProblem(packet);
        if (problem) {
          counters.reject('invalid_payload');
          drop(packet);
          deadLetter(client.id, packet, problem);
        }
      }
      callback(null);
    },

    authorizeSubscribe(client, subscription, callback) {
      const rules = sessions.get(client);
      if (rules && !maySubscribe(rules, subscription.topic)) {
        counters.reject('subscribe_denied');
        log.debug({ clientId: client.id, topic: subscription.topic }, 'refused a subscription the ACL does not allow');
        return callback(null, null); // SUBACK 0x80
      }
      callback(null, subscription);
    },

    authorizeForward(_client, packet) {
      counters.messagesOut++;
      return packet;
    },
  });

  // Publishes marked in authorizePublish stop in Aedes's publish, after their PUBACK (drop-refused.ts);
  // no client can connect before this (the listeners open below).
  const { drop, publish } = await installRefusedPublishDrop(aedes).catch(async (err: unknown) => {
    await new Promise<void>((resolve) => aedes.close(() => resolve()));
    throw err;
  });

  // The throttle's gate and the packet guard hold only while Aedes reads with read(): checked
  // once here on an in-memory connection, so a changed Aedes stops the start, not the first client.
  try {
    checkReadsPulled(aedes);
  } catch (err) {
    await new Promise<void>((resolve) => aedes.close(() => resolve()));
    throw err;
  }

  const bus = new InProcessBus(aedes, { limitedLog });

  // What authorizePublish decodes is kept with the payload: in-process subscribers get it, not a second parse.
  const decoded = decodedMessages(aedes);
  function payloadProblem(packet: PublishPacket): string | undefined {
    const result = decoded.decodePublish(packet.topic, packet.payload);
    // Not a linewatch payload topic: the ACL decides whether it is allowed.
    return !result.ok && result.reason === 'schema' ? result.error : undefined;
  }

  function deadLetter(clientId: string, packet: PublishPacket, reason: string): void {
    const raw = Buffer.isBuffer(packet.payload) ? packet.payload : Buffer.from(packet.payload);
    const letter = {
      ts: Date.now(),
      clientId,
      topic: packet.topic,
      reason,
      payload: raw.subarray(0, DEAD_LETTER_PAYLOAD_BYTES).toString('base64'),
    };
    limitedLog.write('info', 'invalid_payload', { clientId, topic: packet.topic, reason }, 'refused an invalid payload; sent it to the dead-letter topic');
    // In-process, so that a historian that refuses it (spool full) gets it again (InProcessBus.publish).
    bus.publish(topics.deadLetter(topicLevel(clientId)), JSON.stringify(letter), { qos: 1 }).catch((err: unknown) => {
      counters.deadLettersLost++;
      limitedLog.write('warn', 'dead_letter_lost', { clientId, topic: packet.topic, err: (err as Error).message }, 'a dead letter was not stored (it reached the live subscribers)');
    });
  }

  aedes.on('client', () => counters.clients++);
  aedes.on('clientDisconnect', (client: Client) => {
    counters.clients--;
    // Its account was at this address until now (the login guard's known addresses); the client id names the account.
    if (sessions.has(client) && !assignedId.has(client)) loginGuard.seen(addressOf(remoteOf(client)), client.id.split(CLIENT_ID_SEPARATOR, 1)[0]!);
  });
  aedes.on('connectionError', (client: Client, err: Error & { code?: string }) => {
    if (/connect did not arrive in time/.test(err.message)) counters.reject('connect_timeout');
    else if (err.code === undefined && !guarded.has(client.conn)) counters.reject('malformed_packet'); // mqtt-packet's parse errors carry no code
    log.debug({ err: err.message, remote: remoteOf(client) }, 'connection error before CONNECT');
  });
  const slowConsumers = new WeakSet<Client>(); // Aedes reports a drain timeout once per pending write
  const refusedPublishers = new WeakSet<Client>(); // each refused publish in flight ends with an error
  aedes.on('clientError', (client: Client, err: Error) => {
    if (err instanceof MessageRefused) {
      if (refusedPublishers.has(client)) return;
      refusedPublishers.add(client);
      counters.reject('publish_refused');
      limitedLog.write('warn', 'publish_refused', { clientId: client.id, reason: err.message }, 'closed the connection of a publisher whose QoS 1 message was refused: no PUBACK, its will is not published; it sends the message again when it reconnects');
      return;
    }
    if (err.message === 'drain timeout' && !slowConsumers.has(client)) {
      slowConsumers.add(client);
      counters.reject('slow_consumer');
      limitedLog.write('warn', 'slow_consumer', { clientId: client.id, drainTimeoutMs: config.drainTimeoutMs }, 'disconnected a subscriber that stopped reading (broker.drainTimeoutMs)');
    }
    log.debug({ clientId: client.id, err: err.message }, 'client error');
  });

  const guarded = new WeakSet<object>(); // streams the packet guard closed (already counted)
  // Shared by every connection: accept() then allocates no closure (memory per idle connection).
  const onOversizeOrMalformed: OnViolation = (verdict, stream, remote) => {
    guarded.add(stream);
    const reason: RejectReason = verdict.reason === 'oversize' ? 'oversize_packet' : 'malformed_packet';
    counters.reject(reason);
    limitedLog.write('warn', reason, { remote, declared: verdict.declared, maxPacketBytes: config.maxPacketBytes }, verdict.reason === 'oversize' ? 'closed a connection whose packet is larger than broker.maxPacketBytes' : 'closed a connection sending bytes that are not MQTT');
  };
  function onStreamClose(this: Duplex): void {
    counters.connections--;
    throttle.forget(this);
  }
  const accept = (stream: Duplex, remote: string, req?: IncomingMessage): void => {
    if (counters.connections >= config.maxConnections) {
      counters.reject('max_connections');
      limitedLog.write('warn', 'max_connections', { remote, maxConnections: config.maxConnections }, 'refused a connection: broker.maxConnections reached');
      stream.destroy();
      return;
    }
    counters.connections++;
    stream.on('close', onStreamClose); // shared handlers, not closures: memory per idle connection
    guardPacketSize(stream, config.maxPacketBytes, remote, onOversizeOrMalformed);
    throttle.gate(stream); // outermost: while the broker is behind, nothing is read at all
    batchWrites(stream); // one write per event-loop turn instead of one per packet
    stream.on('error', ignoreError); // socket errors end the client; Aedes logs them via clientError
    dropOnlyExactCopies(aedes.handle(stream, req)); // Aedes would drop a message that arrives after a newer one
  };

  const listeners: Listener[] = [];
  try {
    listeners.push(await listenTcp(config.host, config.port, accept));
    if (config.wsPort !== null) listeners.push(await listenWebSocket(config.host, config.wsPort, accept));
    if (config.tls) listeners.push(await listenTls(config.host, config.tls.port, config.tls.cert, config.tls.key, accept));
  } catch (err) {
    await Promise.all(listeners.map((l) => l.close()));
    await new Promise<void>((resolve) => aedes.close(() => resolve()));
    throw err;
  }
  const portOf = (kind: Listener['kind']): number | null => listeners.find((l) => l.kind === kind)?.port ?? null;
  const ports = { mqtt: portOf('mqtt')!, ws: portOf('ws'), tls: portOf('tls') };

  const sampler = setInterval(() => {
    counters.sample();
    limitedLog.flush();
  }, 1000);
  sampler.unref();
  counters.sample();
  const statsTimer = setInterval(publishStats, config.statsIntervalMs);
  statsTimer.unref();

  /** $SYS/linewatch/stats (all of it, JSON) plus one plain number per topic for simple dashboards. */
  function publishStats(): void {
    const s = counters.stats();
    const values: [string, string][] = [
      ['stats', JSON.stringify({ ts: Date.now(), ...s })],
      ['clients/connected', String(s.clients)],
      ['messages/in_per_second', String(s.messagesInPerSecond)],
      ['messages/out_per_second', String(s.messagesOutPerSecond)],
      ...Object.entries(s.rejects).map(([reason, n]): [string, string] => [`rejects/${reason}`, String(n)]),
    ];
    for (const [topic, payload] of values) {
      publish({ cmd: 'publish', topic: `$SYS/linewatch/${topic}`, payload: Buffer.from(payload), qos: 0, retain: false, dup: false }, null, () => undefined);
    }
  }

  if (config.open) {
    log.warn('OPEN MODE: no authentication, no ACL — any client may publish and subscribe to anything. Development only; never expose this broker.');
  }
  log.info({ host: config.host, ...ports, open: config.open }, 'broker listening');

  let stopping: Promise<void> | undefined;
  return {
    aedes,
    bus,
    ports,
    stats: () => counters.stats(),
    counters: () => ({ ...counters.counters(), password_checks: accounts?.verifications ?? 0, inprocess_redelivered: bus.redelivered, inprocess_redelivery_gave_up: bus.redeliveryGaveUp }),
    stop() {
      stopping ??= (async () => {
        clearInterval(sampler);
        clearInterval(statsTimer);
        throttle.stop();
        await bus.close();
        await Promise.all(listeners.map((l) => l.close()));
        await new Promise<void>((resolve) => aedes.close(() => resolve()));
        log.info('broker stopped');
      })();
      return stopping;
    },
  };
}

function ignoreError(): void {}

/** Hands Aedes an in-memory connection that never sends CONNECT and checks how it reads it. */
function checkReadsPulled(aedes: Aedes): void {
  const probe = new Duplex({ read() {}, write(_chunk, _encoding, callback) { callback(); } });
  probe.on('error', ignoreError);
  try {
    aedes.handle(probe);
    assertReadsPulled(probe);
  } finally {
    probe.destroy();
  }
}

/** address:port of the client's socket (for WebSocket clients too: the guard keeps what the listener saw). */
function remoteOf(client: Client): string {
  return guardLabelOf(client.conn) ?? '?:?';
}

/** The address part of remoteOf's address:port. */
function addressOf(remote: string): string {
  return remote.slice(0, remote.lastIndexOf(':'));
}
