// A message is JSON-parsed and schema-checked once per process (broker/decoded.ts, bus/*.ts):
// on the in-process bus, subscribers get what the broker decoded when it validated the publish;
// what the broker did not validate is decoded once by the bus for all its subscribers; over MQTT
// the bus decodes each message once for all its handlers. Real broker, real MQTT.js clients.
import { Aedes } from 'aedes';
import mqemitter from 'mqemitter';
import mqtt, { type MqttClient } from 'mqtt';
import { afterEach, describe, expect, it } from 'vitest';
import { InProcessBus } from '../../broker/in-process-bus.js';
import { MqttBus, type Bus, type DecodeOnce } from '../../bus/index.js';
import type { Decoded } from '../../contracts/index.js';
import { LineView } from '../../dashboard/server/line-view.js';
import { waitFor } from '../../lib/wait.js';
import { startTestBroker, type TestBroker } from '../harness/broker.js';

const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

async function broker(overrides: Parameters<typeof startTestBroker>[0] = {}): Promise<TestBroker> {
  const tb = await startTestBroker({ wsPort: null, open: true, ...overrides });
  cleanups.push(() => tb.stop());
  return tb;
}

async function device(url: string): Promise<MqttClient> {
  const client = await mqtt.connectAsync(url, { clientId: `dev-${Math.random().toString(16).slice(2)}`, reconnectPeriod: 0, connectTimeout: 5000 });
  cleanups.push(() => client.endAsync(true));
  return client;
}

const telemetry = (seq: number): string => JSON.stringify({ ts: 1_767_000_000_000 + seq, seq, values: { speed: seq } });

/** Subscribes to lw/# and keeps what every handler got, decoded by the bus. */
async function collect(bus: Bus, filter = 'lw/#'): Promise<Decoded[]> {
  const got: Decoded[] = [];
  const unsubscribe = await bus.subscribe(filter, (_topic, _payload, decoded: DecodeOnce) => void got.push(decoded()), { qos: 1 });
  cleanups.push(unsubscribe);
  return got;
}

describe('decoded once on the in-process bus', () => {
  it('hands the broker’s decoded message to every in-process subscriber without decoding it again', async () => {
    const tb = await broker();
    const bus = tb.broker.bus;
    const first = await collect(bus);
    const second = await collect(bus);
    const before = { decodes: bus.decoded.decodes, reused: bus.decoded.reused };
    const client = await device(tb.url);
    for (let seq = 1; seq <= 20; seq++) await client.publishAsync('lw/A/conv-1/telemetry', telemetry(seq), { qos: 1 });
    await waitFor(() => first.length === 20 && second.length === 20, 5000, '20 messages at both subscribers');
    // One decode per publish (the broker validating it); each of the 40 deliveries reused it.
    expect(bus.decoded.decodes - before.decodes).toBe(20);
    expect(bus.decoded.reused - before.reused).toBe(40);
    expect(first[4]).toBe(second[4]);
    expect(first[4]).toEqual({ ok: true, message: { kind: 'telemetry', line: 'A', device: 'conv-1', payload: { ts: 1_767_000_000_005, seq: 5, values: { speed: 5 } } } });
  });

  it('decodes once for all subscribers what the broker did not validate (broker.validatePayloads off, in-process publishes)', async () => {
    const tb = await broker({ validatePayloads: false });
    const bus = tb.broker.bus;
    const view = new LineView();
    cleanups.push(await bus.subscribe('lw/#', (topic, payload, decoded) => view.handle(topic, payload, decoded)));
    const other = await collect(bus);
    const before = { decodes: bus.decoded.decodes, reused: bus.decoded.reused };
    const client = await device(tb.url);
    for (let seq = 1; seq <= 10; seq++) await client.publishAsync('lw/A/conv-1/telemetry', telemetry(seq), { qos: 1 });
    await client.publishAsync('lw/A/conv-1/telemetry', '{"ts": "soon"}', { qos: 1 }); // not refused by the broker: validation is off
    await bus.publish('lw/A/alerts', JSON.stringify({ id: 'a1', rule: 'r', severity: 'info', state: 'raised', message: 'm', ts: 1 }), { qos: 1 });
    await waitFor(() => other.length === 12, 5000, '12 messages at the second subscriber');
    expect(bus.decoded.decodes - before.decodes).toBe(12);
    expect(bus.decoded.reused - before.reused).toBe(12);
    // The invalid one still reaches the consumer as invalid, with the field named, and is counted there.
    const invalid = other.find((d) => !d.ok);
    expect(invalid).toMatchObject({ ok: false, reason: 'schema', error: expect.stringMatching(/^telemetry\.ts: /) });
    expect(view.counters).toMatchObject({ messages: 12, invalid: 1 });
  });
});

describe('decoded once over MQTT', () => {
  it('decodes each message once for all the handlers of the process, and an invalid one is still refused there', async () => {
    const tb = await broker({ validatePayloads: false }); // like a foreign broker: nothing refused before the consumer
    const bus = await MqttBus.connect(tb.url, { clientId: `decode-once-${Math.random().toString(16).slice(2)}` });
    cleanups.push(() => bus.close());
    const first = await collect(bus);
    const second = await collect(bus, 'lw/+/+/telemetry');
    const view = new LineView();
    cleanups.push(await bus.subscribe('lw/#', (topic, payload, decoded) => view.handle(topic, payload, decoded)));
    const client = await device(tb.url);
    for (let seq = 1; seq <= 10; seq++) await client.publishAsync('lw/A/conv-1/telemetry', telemetry(seq), { qos: 1 });
    await client.publishAsync('lw/A/conv-1/telemetry', '{not json', { qos: 1 });
    await waitFor(() => first.length === 11 && second.length === 11, 5000, '11 messages at both handlers');
    expect(bus.decodes).toBe(11);
    expect(first.map((d, i) => d === second[i])).toEqual(new Array(11).fill(true));
    expect(first[10]).toMatchObject({ ok: false, reason: 'schema', error: expect.stringMatching(/^telemetry: payload is not valid JSON/) });
    expect(view.counters).toMatchObject({ messages: 11, invalid: 1 });
  });
});

describe('the start-up probe', () => {
  it('fails loudly when subscribers no longer get the payload Buffer the broker decoded', async () => {
    // A fault-injecting mqemitter that hands subscribers a copy of each payload, as an Aedes
    // upgrade that stopped passing it by reference would.
    // Aedes 1.2.0 calls only on, removeListener, emit and close on its mq.
    const inner = mqemitter();
    const copying = {
      on: inner.on.bind(inner),
      removeListener: inner.removeListener.bind(inner),
      close: inner.close.bind(inner),
      emit: (packet: { payload: Buffer }, callback?: (err?: Error) => void) => inner.emit({ ...packet, payload: Buffer.from(packet.payload) } as never, callback),
    } as unknown as typeof inner;
    const aedes = await Aedes.createBroker({ mq: copying });
    cleanups.push(() => new Promise<void>((resolve) => aedes.close(() => resolve())));
    const bus = new InProcessBus(aedes);
    await expect(bus.decoded.checked).rejects.toThrow(/a subscriber no longer gets the payload Buffer the broker validated\): broker\/decoded\.ts must be revisited/);
    await expect(bus.subscribe('lw/#', () => undefined)).rejects.toThrow(/aedes internals changed/);
  });
});
