// Counts and logs what Aedes reports about its clients: sessions opening and closing, errors
// before CONNECT (connect timeout, bytes that are not MQTT), slow consumers and publishers whose
// QoS 1 message an in-process subscriber refused (refusals.ts).
import type { Aedes, Client } from 'aedes';
import { MessageRefused } from '../bus/bus.js';
import { logger } from '../lib/log.js';
import type { LogLimiter } from '../lib/log-limit.js';
import type { Authentication } from './authentication.js';
import { remoteOf } from './client-remote.js';
import type { ConnectionGuards } from './connection-guards.js';
import type { ProtocolVersions } from './protocol-version.js';
import type { InflightLimit } from './qos2-inflight.js';
import type { BrokerCounters } from './stats.js';

const log = logger('broker');

export interface ClientEventParts {
  readonly counters: BrokerCounters;
  readonly authentication: Authentication;
  readonly guards: ConnectionGuards;
  readonly protocolVersions: ProtocolVersions;
  readonly inflightLimit: InflightLimit;
  readonly limitedLog: LogLimiter;
  readonly drainTimeoutMs: number;
}

export function countClientEvents(aedes: Aedes, parts: ClientEventParts): void {
  const { counters, authentication, guards, protocolVersions } = parts;
  aedes.on('client', () => counters.clients++);
  aedes.on('clientDisconnect', (client: Client) => {
    counters.clients--;
    authentication.left(client);
  });
  aedes.on('connectionError', (client: Client, err: Error & { code?: string }) => {
    if (protocolVersions.refused(client, err)) return;
    if (/connect did not arrive in time/.test(err.message)) counters.reject('connect_timeout');
    else if (err.code === undefined && !guards.closedByGuard(client.conn)) counters.reject('malformed_packet'); // mqtt-packet's parse errors carry no code
    log.debug({ err: err.message, remote: remoteOf(client) }, 'connection error before CONNECT');
  });
  aedes.on('clientError', clientErrorCounter(parts));
}

function clientErrorCounter({ counters, limitedLog, drainTimeoutMs, inflightLimit }: ClientEventParts): (client: Client, err: Error) => void {
  const slowConsumers = new WeakSet<Client>(); // Aedes reports a drain timeout once per pending write
  const refusedPublishers = new WeakSet<Client>(); // each refused publish in flight ends with an error
  return (client, err) => {
    if (err instanceof MessageRefused) {
      if (refusedPublishers.has(client)) return;
      refusedPublishers.add(client);
      counters.reject('publish_refused');
      limitedLog.write('warn', 'publish_refused', { clientId: client.id, reason: err.message }, 'closed the connection of a publisher whose QoS 1 message was refused: no PUBACK, its will is not published; it sends the message again when it reconnects');
      return;
    }
    if (inflightLimit.exceeded(client, err)) return;
    if (err.message === 'drain timeout' && !slowConsumers.has(client)) {
      slowConsumers.add(client);
      counters.reject('slow_consumer');
      limitedLog.write('warn', 'slow_consumer', { clientId: client.id, drainTimeoutMs }, 'disconnected a subscriber that stopped reading (broker.drainTimeoutMs)');
    }
    log.debug({ clientId: client.id, err: err.message }, 'client error');
  };
}
