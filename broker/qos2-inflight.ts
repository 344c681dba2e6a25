// Clients over Aedes's per-client QoS 2 receive window. Aedes 1.2.0 keeps at most
// `maxInflightInbound` (default 1000) incoming QoS 2 messages per client stored awaiting their
// PUBREL; a new one beyond that fails the PUBLISH handler with an error, and Aedes closes the
// connection (MQTT 3.1.1 has no reason code to carry). It reports that as a clientError like any
// other; here it is counted (qos2_inflight_exceeded) and logged at warn (rate-limited) naming the
// client. The error's text is an Aedes internal, checked at start (docs/broker.md#qos-2-in-flight).
import { readFileSync } from 'node:fs';
import type { Aedes, Client } from 'aedes';
import type { LogLimiter } from '../lib/log-limit.js';
import { aedesFile } from './aedes-package.js';
import { remoteOf } from './client-remote.js';
import type { BrokerCounters } from './stats.js';

/** How lib/handlers/publish.js of Aedes 1.2.0 starts the error it fails a QoS 2 PUBLISH over the window with. */
const EXCEEDED = 'maxInflightInbound exceeded: ';

/** The window, read from the instance; throws if Aedes no longer has it or words its error otherwise. */
export function inboundWindow(aedes: Aedes): number {
  const file = aedesFile('lib/handlers/publish.js');
  const limit = (aedes as Aedes & { maxInflightInbound?: unknown }).maxInflightInbound;
  if (typeof limit !== 'number' || !readFileSync(file, 'utf8').includes(`'${EXCEEDED}'`)) {
    throw new Error(`aedes changed (no numeric aedes.maxInflightInbound, or ${file} no longer fails a QoS 2 publish over it with "${EXCEEDED}…"): broker/qos2-inflight.ts must be revisited for the new version`);
  }
  return limit;
}

export class InflightLimit {
  readonly maxInflightInbound: number;

  constructor(
    aedes: Aedes,
    private readonly counters: BrokerCounters,
    private readonly limitedLog: LogLimiter,
  ) {
    this.maxInflightInbound = inboundWindow(aedes);
  }

  /** Called with each clientError: true (counted, logged) when Aedes closed the client for a QoS 2 message over the window. */
  exceeded(client: Client, err: Error): boolean {
    if (!err.message.startsWith(EXCEEDED)) return false;
    this.counters.reject('qos2_inflight_exceeded');
    this.limitedLog.write(
      'warn',
      'qos2_inflight_exceeded',
      { clientId: client.id, remote: remoteOf(client), maxInflightInbound: this.maxInflightInbound },
      `closed the connection of a client with more than maxInflightInbound (${this.maxInflightInbound}) QoS 2 messages awaiting PUBREL: its publishes over the limit are not accepted; it sends what it has not completed again when it reconnects — check that the client answers PUBREC with PUBREL`,
    );
    return true;
  }
}
