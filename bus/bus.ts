// The Bus: how every service talks to the others — only through broker topics.
// Two implementations keep the choice of broker out of the services' code:
//   InProcessBus — on the embedded Aedes instance (same process, no socket)
//   MqttBus      — an MQTT.js client to any broker (embedded Aedes, Mosquitto, EMQX…)

export type QoS = 0 | 1 | 2;

export interface PublishOptions {
  qos?: QoS;
  retain?: boolean;
}

export interface SubscribeOptions {
  qos?: QoS;
}

/**
 * Handles one message. For QoS ≥ 1 the message is acknowledged to the broker only after
 * the returned promise resolves, so a handler that persists before resolving gets
 * acknowledge-after-persist. A handler that throws has the error logged and counted by the bus.
 */
export type MessageHandler = (topic: string, payload: Buffer) => void | Promise<void>;

export type Unsubscribe = () => Promise<void>;

export interface Bus {
  publish(topic: string, payload: string | Buffer, options?: PublishOptions): Promise<void>;
  subscribe(filter: string | string[], handler: MessageHandler, options?: SubscribeOptions): Promise<Unsubscribe>;
  close(): Promise<void>;
}
