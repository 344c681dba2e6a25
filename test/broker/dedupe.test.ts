// A message that reaches a subscriber after a newer one is delivered, not dropped as a
// "duplicate" (Aedes 1.2.0 drops it silently; broker/dedupe.ts), while a client with overlapping
// subscriptions still gets one copy. Real broker, real MQTT.js clients.
import mqtt, { type MqttClient } from 'mqtt';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sleep, waitFor } from '../../lib/wait.js';
import { startTestBroker, type TestBroker } from '../harness/broker.js';

let tb: TestBroker;
const clients: MqttClient[] = [];

beforeAll(async () => {
  tb = await startTestBroker({ wsPort: null, open: true });
});
afterAll(async () => {
  await Promise.all(clients.map((c) => c.endAsync(true)));
  await tb?.stop();
});

async function subscriber(filters: string[]): Promise<string[]> {
  const client = await mqtt.connectAsync(tb.url, { clientId: `sub-${Math.random().toString(16).slice(2)}`, reconnectPeriod: 0, connectTimeout: 5000 });
  clients.push(client);
  const got: string[] = [];
  client.on('message', (topic, payload) => got.push(`${topic} ${payload.toString()}`));
  await client.subscribeAsync(filters, { qos: 1 });
  return got;
}

// In-process publishes are not schema-checked; the payloads only need to tell messages apart.
const command = (n: number): string => JSON.stringify({ id: `c${n}` });
const alert = (n: number): string => JSON.stringify({ rule: `r${n}` });

describe('delivery of a message that arrives after a newer one', () => {
  it('delivers a QoS 1 publish followed in the same turn by a QoS 0 publish to the same client', async () => {
    const got = await subscriber(['lw/#']);
    // The QoS 1 message is numbered first but reaches the router last (persistence hops first).
    const published = [
      tb.broker.bus.publish('lw/A/d1/cmd', command(1), { qos: 1 }),
      tb.broker.bus.publish('lw/A/alerts', alert(1), { qos: 0 }),
      tb.broker.bus.publish('lw/A/d2/cmd', command(2), { qos: 1 }),
      tb.broker.bus.publish('lw/A/alerts', alert(2), { qos: 0 }),
    ];
    await Promise.all(published);
    // Without the fix only the two alerts ever arrive: wait (bounded), then compare what came.
    await waitFor(() => got.length >= 4, 3000, 'four messages at the subscriber').catch(() => undefined);
    expect(got.map((m) => m.split(' ')[0]).sort()).toEqual(['lw/A/alerts', 'lw/A/alerts', 'lw/A/d1/cmd', 'lw/A/d2/cmd']);
    expect(tb.broker.counters().messages_out).toBeGreaterThanOrEqual(4);
  });

  it('delivers the same from a network publisher (QoS 1 then QoS 0 in one TCP write)', async () => {
    const got = await subscriber(['plant/#']);
    const publisher = await mqtt.connectAsync(tb.url, { clientId: `pub-${Math.random().toString(16).slice(2)}`, reconnectPeriod: 0, connectTimeout: 5000 });
    clients.push(publisher);
    const acked = publisher.publishAsync('plant/a', 'one', { qos: 1 });
    publisher.publish('plant/b', 'two', { qos: 0 });
    await acked;
    await waitFor(() => got.length >= 2, 3000, 'two messages at the subscriber').catch(() => undefined);
    expect(got.sort()).toEqual(['plant/a one', 'plant/b two']);
  });

  it('still sends one copy to a client whose subscriptions overlap', async () => {
    const got = await subscriber(['lw/#', 'lw/+/alerts', 'lw/A/alerts']);
    await tb.broker.bus.publish('lw/A/alerts', alert(3), { qos: 1 });
    await tb.broker.bus.publish('lw/A/alerts', alert(4), { qos: 0 });
    await waitFor(() => got.length >= 2, 5000, 'two alerts at the subscriber');
    await sleep(200); // room for copies that should not come
    expect(got.map((m) => (JSON.parse(m.slice(m.indexOf(' ') + 1)) as { rule: string }).rule)).toEqual(['r3', 'r4']);
  });
});
