// The default broker.maxPacketBytes with real MQTT.js clients: a 256 KiB payload (refused by the
// 256 KiB default of before) and a payload that makes a packet of exactly the limit pass; one
// byte more closes the publisher's connection and counts oversize_packet.
import mqtt from 'mqtt';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { brokerConfigSchema } from '../../broker/index.js';
import { withTimeout } from '../../lib/wait.js';
import { startTestBroker, type TestBroker } from '../harness/broker.js';
import { encodeRemainingLength } from './raw-mqtt.js';

const DEFAULT_MAX = brokerConfigSchema.parse({}).maxPacketBytes;
const TOPIC = 'big/payload';

/** The payload size that makes a QoS 1 PUBLISH on TOPIC exactly `packetBytes` long (fixed header, topic, packet id, payload). */
function payloadFor(packetBytes: number): number {
  const variable = 2 + Buffer.byteLength(TOPIC) + 2;
  for (let payload = packetBytes - variable - 2; payload > 0; payload--) {
    const remaining = variable + payload;
    if (1 + encodeRemainingLength(remaining).length + remaining === packetBytes) return payload;
  }
  throw new Error(`no payload makes a ${packetBytes}-byte packet`);
}

let tb: TestBroker;
let subscriber: mqtt.MqttClient;

beforeAll(async () => {
  tb = await startTestBroker({ open: true, wsPort: null });
  subscriber = await mqtt.connectAsync(tb.url, { clientId: 'big-subscriber', reconnectPeriod: 0 });
  await subscriber.subscribeAsync(TOPIC, { qos: 1 });
});
afterAll(async () => {
  await subscriber?.endAsync(true);
  await tb?.stop();
});

async function publishAndReceive(size: number, clientId: string): Promise<number> {
  const publisher = await mqtt.connectAsync(tb.url, { clientId, reconnectPeriod: 0 });
  try {
    const got = new Promise<number>((resolve) => subscriber.once('message', (_topic, payload) => resolve(payload.length)));
    const refused = new Promise<never>((_resolve, reject) => publisher.once('close', () => reject(new Error(`the broker closed the connection of the ${size}-byte publisher`))));
    publisher.publish(TOPIC, Buffer.alloc(size, 0x61), { qos: 1 });
    return await withTimeout(Promise.race([got, refused]), 20_000, `the ${size}-byte message at the subscriber`);
  } finally {
    await publisher.endAsync(true);
  }
}

describe(`the default broker.maxPacketBytes (${DEFAULT_MAX})`, () => {
  it('carries a 256 KiB payload (batched readings)', async () => {
    expect(await publishAndReceive(256 * 1024, 'pub-256k')).toBe(256 * 1024);
  });

  it('carries a payload that makes a packet of exactly the limit', async () => {
    const size = payloadFor(DEFAULT_MAX);
    expect(await publishAndReceive(size, 'pub-at-limit')).toBe(size);
    expect(tb.broker.stats().rejects.oversize_packet).toBe(0);
  });

  it('refuses one byte more: the connection is closed and oversize_packet counted', async () => {
    const before = tb.broker.stats().rejects.oversize_packet;
    const publisher = await mqtt.connectAsync(tb.url, { clientId: 'pub-over-limit', reconnectPeriod: 0 });
    const closed = withTimeout(new Promise<void>((resolve) => publisher.once('close', () => resolve())), 20_000, 'the broker to close the oversized publisher');
    publisher.publish(TOPIC, Buffer.alloc(payloadFor(DEFAULT_MAX + 1), 0x61), { qos: 1 });
    await closed;
    publisher.end(true);
    expect(tb.broker.stats().rejects.oversize_packet - before).toBe(1);
  });
});
