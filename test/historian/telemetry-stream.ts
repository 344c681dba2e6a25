// A numbered telemetry stream for the zero-loss tests: event i goes to device d(i % devices) with
// seq floor(i / devices) and value v = i, so every point in InfluxDB can be checked off.
import type { MqttClient } from 'mqtt';

export function telemetryStream(line: string, devices: number): { sendUpTo(client: MqttClient, n: number): Promise<void> } {
  const t0 = Date.now() - 60_000;
  let sent = 0;
  return {
    /** Publishes events (QoS 1, 200 in flight) until `n` have been sent in all. */
    async sendUpTo(client, n) {
      while (sent < n) {
        const chunk: Promise<unknown>[] = [];
        for (let k = 0; k < 200 && sent < n; k++, sent++) {
          const device = sent % devices;
          const seq = Math.floor(sent / devices);
          chunk.push(client.publishAsync(`lw/${line}/d${device}/telemetry`, JSON.stringify({ ts: t0 + seq, seq, values: { v: sent } }), { qos: 1 }));
        }
        await Promise.all(chunk);
      }
    },
  };
}
