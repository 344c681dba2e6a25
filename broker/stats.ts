// Broker counters and the rates derived from them (for stats(), $SYS topics and /metrics).
import type { Counters } from '../lib/service.js';

export const REJECT_REASONS = [
  'bad_credentials', // CONNACK 4: unknown user or wrong password
  'not_authorized', // CONNACK 5: anonymous client while auth is on
  'login_backoff', // CONNACK 5: too many failed logins for the address and username, the account or the address (login-guard.ts; no password check)
  'client_id', // CONNACK 2: empty client id with clean session off (MQTT-3.1.3-8)
  'client_id_denied', // CONNACK 2: a client id not derived from the account's username (contracts/client-id.ts)
  'max_connections', // socket closed: too many connections
  'oversize_packet', // socket closed: a packet declared more than maxPacketBytes
  'malformed_packet', // socket closed: bytes that are not MQTT
  'unsupported_protocol', // CONNACK 1, socket closed: a CONNECT of a protocol level Aedes does not speak (MQTT 5; protocol-version.ts)
  'publish_denied', // PUBLISH dropped by the ACL
  'subscribe_denied', // SUBACK 0x80
  'invalid_payload', // PUBLISH dropped by the payload validator, sent to lw/_dead/{clientId}
  'connect_timeout', // no CONNECT in time
  'slow_consumer', // a subscriber that did not drain in drainTimeoutMs
  'qos2_inflight_exceeded', // socket closed: a client with more than Aedes's maxInflightInbound QoS 2 messages awaiting PUBREL (qos2-inflight.ts)
  'publish_refused', // socket closed, no PUBACK, will not published: an in-process subscriber refused a QoS 1 publish (broker/refusals.ts); counted once per connection
] as const;
export type RejectReason = (typeof REJECT_REASONS)[number];

export interface BrokerStats {
  /** Clients with an established MQTT session. */
  clients: number;
  /** Open sockets, including those still before CONNECT. */
  connections: number;
  /** PUBLISH packets received from network clients (refused ones included), per second over the last 5 s. */
  messagesInPerSecond: number;
  /** PUBLISH packets delivered to network clients, per second. */
  messagesOutPerSecond: number;
  messagesIn: number;
  messagesOut: number;
  /** Reads from client sockets refused because deliveries were backed up (backpressure). */
  publisherPauses: number;
  rejects: Record<RejectReason, number>;
}

interface Sample {
  at: number;
  in: number;
  out: number;
}

export class BrokerCounters {
  messagesIn = 0;
  messagesOut = 0;
  connections = 0;
  clients = 0;
  publisherPauses = 0;
  /** Dead letters some in-process subscriber (the historian) still refused after the bus's redeliveries. */
  deadLettersLost = 0;
  readonly rejects = Object.fromEntries(REJECT_REASONS.map((r) => [r, 0])) as Record<RejectReason, number>;
  private readonly samples: Sample[] = [];

  reject(reason: RejectReason): void {
    this.rejects[reason]++;
  }

  /** Called once a second; rates are taken over the last `windowSamples` seconds. */
  sample(now = Date.now(), windowSamples = 5): void {
    this.samples.push({ at: now, in: this.messagesIn, out: this.messagesOut });
    if (this.samples.length > windowSamples + 1) this.samples.shift();
  }

  stats(now = Date.now()): BrokerStats {
    const first = this.samples[0];
    const elapsed = first ? (now - first.at) / 1000 : 0;
    const rate = (current: number, then: number): number => (elapsed > 0 ? Math.round((current - then) / elapsed) : 0);
    return {
      clients: this.clients,
      connections: this.connections,
      messagesInPerSecond: first ? rate(this.messagesIn, first.in) : 0,
      messagesOutPerSecond: first ? rate(this.messagesOut, first.out) : 0,
      messagesIn: this.messagesIn,
      messagesOut: this.messagesOut,
      publisherPauses: this.publisherPauses,
      rejects: { ...this.rejects },
    };
  }

  counters(): Counters {
    const out: Counters = {
      clients_connected: this.clients,
      connections_open: this.connections,
      messages_in: this.messagesIn,
      messages_out: this.messagesOut,
      publisher_pauses: this.publisherPauses,
      dead_letters_lost: this.deadLettersLost,
    };
    for (const r of REJECT_REASONS) out[`rejected_${r}`] = this.rejects[r];
    return out;
  }
}
