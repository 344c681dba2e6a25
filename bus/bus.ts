// The Bus: how every service talks to the others — only through broker topics.
// Two implementations keep the choice of broker out of the services' code:
//   InProcessBus — on the embedded Aedes instance (same process, no socket): broker/in-process-bus.ts,
//                  it lives with the broker whose internals it relies on; bus/ imports nothing from broker/
//   MqttBus      — an MQTT.js client to any broker (embedded Aedes, Mosquitto, EMQX…)

import type { Decoded } from '../contracts/decode.js';

export type QoS = 0 | 1 | 2;

export interface PublishOptions {
  qos?: QoS;
  retain?: boolean;
}

export interface SubscribeOptions {
  qos?: QoS;
  /**
   * Also hand over the retained messages of the filters on subscribing, as an MQTT client gets
   * them (an MqttBus always does; the in-process bus only when asked, so a service started after
   * a publisher — the dashboard after the rules engine — still learns the retained alarm states).
   */
  retained?: boolean;
}

/**
 * Handles one message. For QoS ≥ 1 the message is acknowledged to the broker only after
 * the returned promise resolves, so a handler that persists before resolving gets
 * acknowledge-after-persist. A handler that throws has the error logged and counted by the bus.
 * A handler that rejects with MessageRefused gets the message *not* acknowledged, so its
 * publisher keeps it and sends it again (see MessageRefused).
 */
export type MessageHandler = (topic: string, payload: Buffer, decoded: DecodeOnce) => void | Promise<void>;

/**
 * The message decoded (contracts/decode.ts), for the handler that wants it. The bus decodes a
 * message at most once, for all its handlers in the process: on the in-process bus it is what
 * the broker decoded when it validated the publish; over MQTT the bus decodes it on first call.
 */
export type DecodeOnce = () => Decoded;

export type Unsubscribe = () => Promise<void>;

/** Told the new value of `Bus.connected()` each time it changes. */
export type ConnectionListener = (connected: boolean) => void;

export interface Bus {
  publish(topic: string, payload: string | Buffer, options?: PublishOptions): Promise<void>;
  subscribe(filter: string | string[], handler: MessageHandler, options?: SubscribeOptions): Promise<Unsubscribe>;
  close(): Promise<void>;
  /**
   * Whether a publish made now goes to the broker at once: false while an MqttBus is
   * disconnected (MQTT.js would hold the publish in memory and send it on reconnect) and once a
   * bus is closed. A publisher with its own store (the gateway's outbox) keeps what it cannot
   * hand over now.
   */
  connected(): boolean;
  /** Calls `listener` with the new value of connected() each time it changes; returns what stops it. */
  onConnectionChange(listener: ConnectionListener): () => void;
  /**
   * Whether subscriptions may be shared (MQTT 5 `$share/{group}/{filter}`: each message goes to
   * one member of the group): true only on an MqttBus speaking MQTT 5 to a broker whose CONNACK
   * does not say it has none. Absent (the in-process bus on the embedded Aedes): none.
   */
  sharedSubscriptions?(): boolean;
}

/**
 * What a handler rejects with when it cannot take a message now (e.g. the historian's spool is
 * full): the bus must not acknowledge it. On the in-process bus the QoS 1 publisher gets no
 * PUBACK — the broker closes its connection and the client sends the message again when it
 * reconnects (broker/refusals.ts), and a QoS 1 message published in-process is handed to the
 * refusing subscriber again by InProcessBus.publish (which rejects with a MessageRefused of its
 * own if that gives up); on an MqttBus the connection to the broker is dropped so the broker
 * delivers the message again on the persistent session. Other subscribers still get it.
 */
export class MessageRefused extends Error {
  override readonly name = 'MessageRefused';
}
