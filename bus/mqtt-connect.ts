// Waiting for an MQTT.js client's first CONNACK, bounded: every client linewatch opens (the
// MqttBus, the simulated devices) connects this way, so a broker that is down, refuses the login
// or never answers gives an error within the timeout and leaves no client reconnecting behind.
import type { MqttClient } from 'mqtt';
import { withTimeout } from '../lib/wait.js';

/**
 * Resolves at the first CONNACK. On an error (refused, unreachable) or after `timeoutMs`, ends the
 * client (no reconnect loop left running) and rejects with that error; `what` names the wait in
 * the timeout's message ("timed out after … ms waiting for <what>").
 */
export async function untilConnected(client: MqttClient, timeoutMs: number, what: string): Promise<void> {
  try {
    await withTimeout(
      new Promise<void>((resolve, reject) => {
        client.once('connect', () => resolve());
        client.once('error', reject);
      }),
      timeoutMs,
      what,
    );
  } catch (err) {
    client.end(true);
    throw err;
  }
}
