// A real MQTT.js client connected to a broker process (no reconnects, bounded wait), recorded in
// `clients` so that the test's afterAll can end it.
import mqtt, { type MqttClient } from 'mqtt';
import { withTimeout } from '../../lib/wait.js';

export async function connectedClient(clients: MqttClient[], url: string, options: mqtt.IClientOptions = {}): Promise<MqttClient> {
  const client = mqtt.connect(url, { reconnectPeriod: 0, connectTimeout: 10_000, ...options });
  clients.push(client);
  await withTimeout(new Promise<void>((resolve, reject) => {
    client.once('connect', () => resolve());
    client.once('error', reject);
  }), 15_000, `an MQTT connection to ${url}`);
  return client;
}
