// The broker as a Service (lib/service.ts): start() assembles it from its parts — accounts and
// the login guard (authentication.ts), the ACL and payload validation (authorization.ts,
// publish-validation.ts), the overrides of Aedes internals checked at start (drop-refused.ts,
// connection-guards.ts), the connection guards, client event counting (client-events.ts), the
// listeners and the $SYS stats (stats-publisher.ts) — and stop() takes it apart again.
// health() says whether it serves. See docs/broker.md.
import { Aedes, type AedesOptions } from 'aedes';
import { logger } from '../lib/log.js';
import { LogLimiter } from '../lib/log-limit.js';
import { healthFrom, type Counters, type Health, type Service } from '../lib/service.js';
import { AccountStore } from './account-store.js';
import type { RoleTable } from './acl.js';
import { assertAedesPatched } from './aedes-patch.js';
import { assertFastReadsFit, fastReads } from './packet-reader.js';
import { installPacketWriter } from './packet-writer.js';
import { Authentication } from './authentication.js';
import { Authorization } from './authorization.js';
import { PublisherThrottle } from './backpressure.js';
import { countClientEvents } from './client-events.js';
import { createClusterMq } from './cluster.js';
import type { BrokerConfig } from './config.js';
import { checkReadsPulled, ConnectionGuards } from './connection-guards.js';
import { decodedMessages } from './decoded.js';
import { installRefusedPublishDrop, type AedesPublish, type RefusedPublishDrop } from './drop-refused.js';
import { InProcessBus } from './in-process-bus.js';
import { listenTcp, listenTls, listenWebSocket, type Accept, type Listener } from './listeners.js';
import { LoginGuard } from './login-guard.js';
import { withFreePacketIds } from './packet-ids.js';
import { openPersistence, type OpenedStore } from './persistence/index.js';
import { publishOrphanWills } from './persistence/orphan-wills.js';
import { ProtocolVersions } from './protocol-version.js';
import { PublishValidation } from './publish-validation.js';
import { InflightLimit, inboundWindow } from './qos2-inflight.js';
import { createSafeMq, type SafeMq } from './safe-mq.js';
import { guardDrainInternals, withWindowedDrain } from './windowed-drain.js';
import { startStatsTimers } from './stats-publisher.js';
import { BrokerCounters, type BrokerStats } from './stats.js';

const log = logger('broker');

/** health() is degraded from this share of broker.maxConnections open (new connections are refused at the limit). */
export const CONNECTIONS_NEAR_LIMIT = 0.9;

export interface BrokerPorts {
  mqtt: number;
  ws: number | null;
  tls: number | null;
}

export interface LinewatchBroker extends Service {
  readonly aedes: Aedes;
  /** Publish/subscribe inside the broker's process, no socket. */
  readonly bus: InProcessBus;
  /** The ports actually bound (useful with port 0). */
  readonly ports: BrokerPorts;
  stats(): BrokerStats;
  health(): Health;
  readonly gauges: ReadonlySet<string>;
}

/** What a started broker is made of, for stop(), counters() and health(). */
interface Running {
  readonly aedes: Aedes;
  readonly bus: InProcessBus;
  readonly ports: BrokerPorts;
  readonly listeners: readonly Listener[];
  readonly mq: SafeMq;
  readonly throttle: PublisherThrottle;
  readonly authentication: Authentication;
  readonly store: OpenedStore;
  readonly stopTimers: () => void;
}

/** What the broker is given besides its config section. */
export interface BrokerOptions {
  /** Who may publish and subscribe to what: derived from the service modules' declared topics (config/services.ts, roleGrants). */
  readonly roles: RoleTable;
  /** The data dir (`dataDir`): the disk store (broker.persistence: disk) lives in `<dataDir>/broker`, a managed redis-server (persistence: redis without broker.redis.url) in `<dataDir>/redis`. */
  readonly dataDir?: string;
}

type Phase = 'new' | 'starting' | 'running' | 'stopping' | 'stopped';

const NOT_SERVING: Record<Exclude<Phase, 'running'>, string> = {
  new: 'not started',
  starting: 'starting: not listening yet',
  stopping: 'stopping: closing its listeners and clients',
  stopped: 'stopped: not listening',
};

export class BrokerService implements LinewatchBroker {
  readonly name = 'broker';
  readonly gauges: ReadonlySet<string> = new Set(['clients_connected', 'connections_open', 'pending_deliveries', 'reading_paused', 'session_queue_messages', 'session_queues_full', 'persistence_redis_connected', 'packet_id_sessions']);
  private readonly counts = new BrokerCounters();
  private phase: Phase = 'new';
  private startup: Promise<Running> | undefined;
  private running: Running | undefined;
  private stopping: Promise<void> | undefined;

  constructor(
    private readonly config: BrokerConfig,
    private readonly options: BrokerOptions,
  ) {}

  get aedes(): Aedes {
    return this.started().aedes;
  }

  get bus(): InProcessBus {
    return this.started().bus;
  }

  get ports(): BrokerPorts {
    return this.started().ports;
  }

  async start(): Promise<void> {
    if (this.startup) throw new Error('this broker was started before; a stopped broker does not start again: create a new BrokerService (or call startBroker)');
    this.phase = 'starting';
    this.startup = assemble(this.config, this.options, this.counts);
    try {
      this.running = await this.startup;
    } catch (err) {
      this.phase = 'stopped';
      throw err;
    }
    if (this.phase === 'starting') this.phase = 'running';
  }

  /** Closes the in-process bus, the listeners and their clients, then Aedes. Idempotent. */
  stop(): Promise<void> {
    this.stopping ??= this.shutdown();
    return this.stopping;
  }

  /** down: not listening (not started, starting, stopping, stopped, a listener closed); degraded: backpressure holds publishers back, or connections near broker.maxConnections. */
  health(): Health {
    const running = this.running;
    if (this.phase !== 'running' || !running) return { status: 'down', reasons: [NOT_SERVING[this.phase === 'running' ? 'starting' : this.phase]] };
    const { connections } = this.counts;
    const { maxConnections, maxPendingDeliveries } = this.config;
    return healthFrom([
      ...running.listeners.map((listener) => ({ failed: !listener.listening, status: 'down' as const, reason: `the ${listener.kind} listener on port ${listener.port} is closed` })),
      { failed: running.throttle.readingPaused, status: 'degraded', reason: `backpressure: reading nothing from publishers while ${running.mq.length} deliveries wait (more than broker.maxPendingDeliveries, ${maxPendingDeliveries})` },
      { failed: connections >= Math.ceil(maxConnections * CONNECTIONS_NEAR_LIMIT), status: 'degraded', reason: `${connections} connections open of broker.maxConnections ${maxConnections}: further ones are refused at the limit` },
      ...sessionQueueHealth(running.store),
    ]);
  }

  stats(): BrokerStats {
    return this.counts.stats();
  }

  counters(): Counters {
    const running = this.running;
    return {
      ...this.counts.counters(),
      password_checks: running?.authentication.passwordChecks ?? 0,
      inprocess_redelivered: running?.bus.redelivered ?? 0,
      inprocess_redelivery_gave_up: running?.bus.redeliveryGaveUp ?? 0,
      pending_deliveries: running?.mq.length ?? 0,
      reading_paused: running?.throttle.readingPaused ? 1 : 0,
      session_queue_dropped: running?.store.queueLimit.dropped ?? 0,
      packet_ids_skipped: running?.store.packetIds.skipped ?? 0,
      packet_ids_exhausted: running?.store.packetIds.exhausted ?? 0,
      packet_id_sessions: running?.store.packetIds.sessions ?? 0,
      session_queue_messages: 0,
      session_queues_full: 0,
      ...running?.store.gauges(),
    };
  }

  private started(): Running {
    if (!this.running) throw new Error('the broker is not started: call start() first (startBroker(config) creates and starts one)');
    return this.running;
  }

  private async shutdown(): Promise<void> {
    const wasStarting = this.phase === 'starting';
    this.phase = 'stopping';
    const running = this.running ?? (wasStarting ? await this.startup!.catch(() => undefined) : undefined);
    if (running) {
      running.stopTimers();
      running.throttle.stop();
      await running.bus.close();
      await Promise.all(running.listeners.map((listener) => listener.close()));
      await closeAedes(running.aedes, running.store);
      log.info('broker stopped');
    }
    this.phase = 'stopped';
  }
}

/** Closes Aedes, then its store (what Aedes still writes while it closes its clients is kept). */
async function closeAedes(aedes: Aedes, store: OpenedStore): Promise<void> {
  await new Promise<void>((resolve) => aedes.close(() => resolve()));
  await store.close();
}

function sessionQueueHealth(store: OpenedStore): { failed: boolean; status: 'degraded'; reason: string }[] {
  const reason = store.queueLimit.healthReason();
  return reason === undefined ? [] : [{ failed: true, status: 'degraded', reason }];
}

/** Builds and starts every part, in the order they depend on each other; what failed half-way is closed again. */
async function assemble(config: BrokerConfig, options: BrokerOptions, counters: BrokerCounters): Promise<Running> {
  assertAedesPatched();
  installPacketWriter(); // PUBLISH and acks as one buffer each (packet-writer.ts)
  assertFastReadsFit(); // and read straight from each read, client by client in preConnect (packet-reader.ts)
  // A bounded number of lines per kind and interval for what a client can cause per message or attempt.
  const limitedLog = new LogLimiter(log);
  const accounts = config.open ? undefined : new AccountStore(config.devicesFile);
  if (accounts) await accounts.load(); // a broken devices file stops the start with its error
  // Password guessing: failed logins back off per address and username, per account and per address (login-guard.ts).
  const authentication = new Authentication({ accounts, roles: options.roles, loginGuard: new LoginGuard(config.loginBackoff), counters, limitedLog });
  const authorization = new Authorization(authentication, counters);
  // MQTT 5 clients: counted and logged as unsupported_protocol when Aedes refuses them (protocol-version.ts).
  const protocolVersions = new ProtocolVersions(counters, limitedLog);
  // Sessions, retained messages, queued and in-flight messages, wills (broker.persistence, persistence/);
  // a cluster keeps them on its Redis and routes every message through Redis pub/sub (cluster.ts).
  const store = await openPersistence(config, { dataDir: options.dataDir, limitedLog });
  let mq: SafeMq;
  try {
    mq = config.cluster !== null ? await createClusterMq(config.cluster, 100) : createSafeMq({ concurrency: 100 });
  } catch (err) {
    await store.close();
    throw err;
  }
  const throttle = new PublisherThrottle(() => mq.length, config.maxPendingDeliveries, () => counters.publisherPauses++);
  const aedes = await createAedes(store, mq, {
    connectTimeout: config.connectTimeoutMs,
    drainTimeout: config.drainTimeoutMs,
    heartbeatInterval: config.heartbeatMs,
    preConnect: (client, packet, callback) => {
      // What the client sends after CONNECT: PUBLISH and acks decoded without mqtt-packet's state machine (packet-reader.ts).
      fastReads((client as unknown as { _parser?: unknown })._parser);
      protocolVersions.noteConnect(client, packet);
      authentication.preConnect(client, packet, callback);
    },
    // Once a client is who it says, and before its session is restored: free packet ids for a persistent one (packet-ids.ts).
    authenticate: withFreePacketIds(authentication.authenticate, store.packetIds),
    authorizePublish: authorization.authorizePublish,
    authorizeSubscribe: authorization.authorizeSubscribe,
    authorizeForward: authorization.authorizeForward,
  });
  aedes.on('clientDisconnect', (client) => store.packetIds.forget(client.id));
  const { drop, publish } = await installOverrides(aedes, store);
  await publishWillsOfPreviousRun(aedes, store, publish);
  const bus = new InProcessBus(aedes, { limitedLog });
  // What authorizePublish decodes is kept with the payload: in-process subscribers get it, not a second parse.
  const validation = config.validatePayloads ? new PublishValidation(decodedMessages(aedes), bus, counters, limitedLog) : undefined;
  authorization.bind({ drop, validation });
  const guards = new ConnectionGuards(aedes, config, throttle, counters, limitedLog);
  countClientEvents(aedes, { counters, authentication, guards, protocolVersions, inflightLimit: new InflightLimit(aedes, counters, limitedLog), limitedLog, drainTimeoutMs: config.drainTimeoutMs });
  const listeners = await openListeners(config, guards.accept, aedes, store);
  const portOf = (kind: Listener['kind']): number | null => listeners.find((listener) => listener.kind === kind)?.port ?? null;
  const ports = { mqtt: portOf('mqtt')!, ws: portOf('ws'), tls: portOf('tls') };
  const stopTimers = startStatsTimers(counters, limitedLog, publish, config.statsIntervalMs, store.queueLimit);
  if (config.open) {
    log.warn('OPEN MODE: no authentication, no ACL — any client may publish and subscribe to anything. Development only; never expose this broker.');
  }
  log.info({ host: config.host, ...ports, open: config.open, persistence: store.kind, store: store.location, cluster: config.cluster, id: aedes.id }, 'broker listening');
  return { aedes, bus, ports, listeners, mq, throttle, authentication, store, stopTimers };
}

/** Before any client connects: the wills a killed previous run left in a store only this broker uses (persistence/orphan-wills.ts). */
async function publishWillsOfPreviousRun(aedes: Aedes, store: OpenedStore, publish: AedesPublish): Promise<void> {
  if (store.kind !== 'disk') return;
  try {
    const published = await publishOrphanWills(store.persistence, aedes.id, publish);
    if (published > 0) log.info({ wills: published }, 'published the wills of clients that were connected when the previous broker run died');
  } catch (err) {
    await closeAedes(aedes, store);
    throw err;
  }
}

/** Aedes on this router and store; if it fails to start, the router and the store are closed again. */
async function createAedes(store: OpenedStore, mq: SafeMq, options: Omit<AedesOptions, 'mq' | 'persistence'>): Promise<Aedes> {
  try {
    // The backlog of a returning persistent subscriber goes out DRAIN_WINDOW messages at a time (windowed-drain.ts).
    const persistence = withWindowedDrain(store.persistence, await guardDrainInternals());
    return await Aedes.createBroker({ ...options, mq, persistence });
  } catch (err) {
    await new Promise<void>((resolve) => mq.close(() => resolve()));
    await store.close();
    throw err;
  }
}

/**
 * The overrides of Aedes internals that must hold before any client connects (the listeners
 * open after this): publishes marked in authorizePublish stop in Aedes's publish, after their
 * PUBACK (drop-refused.ts); the throttle's gate and the packet guard hold only while Aedes reads
 * with read(), checked once on an in-memory connection, so a changed Aedes stops the start, not
 * the first client. On failure Aedes is closed and the error stops the start.
 */
async function installOverrides(aedes: Aedes, store: OpenedStore): Promise<RefusedPublishDrop> {
  try {
    const refusedDrop = await installRefusedPublishDrop(aedes);
    checkReadsPulled(aedes);
    inboundWindow(aedes); // qos2-inflight.ts relies on it: checked here, where a failure closes Aedes
    return refusedDrop;
  } catch (err) {
    await closeAedes(aedes, store);
    throw err;
  }
}

async function openListeners(config: BrokerConfig, accept: Accept, aedes: Aedes, store: OpenedStore): Promise<Listener[]> {
  const listeners: Listener[] = [];
  try {
    listeners.push(await listenTcp(config.host, config.port, accept));
    if (config.wsPort !== null) listeners.push(await listenWebSocket(config.host, config.wsPort, accept));
    if (config.tls) listeners.push(await listenTls(config.host, config.tls.port, config.tls.cert, config.tls.key, accept));
  } catch (err) {
    await Promise.all(listeners.map((listener) => listener.close()));
    await closeAedes(aedes, store);
    throw err;
  }
  return listeners;
}
