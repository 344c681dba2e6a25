// Connecting one simulated MQTT client: a bounded wait for its CONNACK (bus/mqtt-connect.ts),
// MQTT.js reconnecting on its own afterwards, and a client id derived from the account.
import mqtt, { type MqttClient } from 'mqtt';
import { brokerTarget, parseBrokerUrls, untilConnected } from '../../bus/mqtt-connect.js';
import { clientIdFor } from '../../contracts/client-id.js';
import { logger } from '../../lib/log.js';

const log = logger('simulate');

/** Connects to `url`, or to the first of a list (`URL,URL…`) that answers, the next one of it when that broker goes away (bus/mqtt-connect.ts). */
export async function connect(url: string, options: mqtt.IClientOptions, what: string): Promise<MqttClient> {
  const list = parseBrokerUrls(url, 'the broker URL');
  const { url: first, servers } = brokerTarget(list);
  const client = mqtt.connect(first, { reconnectPeriod: 1000, reconnectOnConnackError: true, connectTimeout: 10_000, queueQoSZero: false, ...options, ...(servers ? { servers } : {}) });
  try {
    await untilConnected(client, 15_000 * list.length, `${what} to connect to ${url}`, servers !== undefined);
  } catch (err) {
    throw new Error(`${what} cannot connect to the MQTT broker at ${url}: ${(err as Error).message}`, { cause: err });
  }
  client.on('error', (err) => log.warn({ what, err: err.message }, 'MQTT client error'));
  return client;
}

/** A fresh client id; with an account, derived from its username as the broker requires (docs/broker.md#client-ids). */
export function simulatorClientId(username: string | undefined, name: string): string {
  const unique = `${name}-${Math.random().toString(36).slice(2, 8)}`;
  return username ? clientIdFor(username, unique) : unique;
}
