// bus/thread-bridge.ts on a real broker's in-process bus: a ThreadBus at the other end of a
// MessagePort (here in the same thread; historian/thread.ts puts it in a worker) gets every
// delivery with its exact bytes, even a turn's worth at once; a QoS 1 publisher's PUBACK waits
// for the ThreadBus handler; a refusal leaves the message with its publisher, which sends it
// again; what the ThreadBus publishes reaches MQTT subscribers; closing the bridge refuses what
// was not answered.
import { MessageChannel } from 'node:worker_threads';
import mqtt, { type MqttClient } from 'mqtt';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { MessageRefused } from '../../bus/bus.js';
import { serveBus, ThreadBus, type ServedBus } from '../../bus/thread-bridge.js';
import { InProcessBus } from '../../broker/in-process-bus.js';
import { sleep, waitFor, withTimeout } from '../../lib/wait.js';
import { NO_REDELIVERY, startTestBroker, type TestBroker } from '../harness/broker.js';

let tb: TestBroker;
beforeAll(async () => {
  tb = await startTestBroker({ open: true, wsPort: null });
});
afterAll(async () => {
  await tb?.stop();
});

const bridges: { served: ServedBus; bus: ThreadBus }[] = [];
const clients: MqttClient[] = [];
afterEach(async () => {
  for (const client of clients.splice(0)) await client.endAsync(true);
  for (const { served, bus } of bridges.splice(0)) {
    await bus.close().catch(() => undefined);
    await served.close('test over');
  }
});

async function bridge(): Promise<{ served: ServedBus; bus: ThreadBus }> {
  const { port1, port2 } = new MessageChannel();
  const served = serveBus(tb.broker.bus, port1);
  const bus = new ThreadBus(port2);
  await bus.ready;
  bridges.push({ served, bus });
  return { served, bus };
}

async function client(options: mqtt.IClientOptions = {}): Promise<MqttClient> {
  const connected = await mqtt.connectAsync(tb.url, { reconnectPeriod: 100, ...options });
  clients.push(connected);
  return connected;
}

const telemetry = (seq: number, extra = ''): string => JSON.stringify({ ts: 1_700_000_000_000 + seq, seq, values: { v: seq }, ...(extra ? { note: extra } : {}) });

describe('bus/thread-bridge', () => {
  it('hands over a turn of in-process publishes with their exact bytes, topics and decoded messages', async () => {
    const { bus } = await bridge();
    const got: { topic: string; payload: string; seq: number | undefined }[] = [];
    await bus.subscribe('lw/T1/+/telemetry', (topic, payload, decoded) => {
      const message = decoded();
      got.push({ topic, payload: payload.toString(), seq: message.ok && message.message.kind === 'telemetry' ? message.message.payload.seq : undefined });
    }, { qos: 1 });
    expect(bus.connected()).toBe(true);
    const sent: { topic: string; payload: string }[] = [];
    for (let i = 0; i < 500; i++) sent.push({ topic: `lw/T1/d${i % 7}/telemetry`, payload: i % 50 === 0 ? JSON.stringify({ ts: 1, seq: i, values: { v: i } }) + ' '.repeat(3000) : telemetry(i) });
    // All in one turn of this thread, so they cross together (one ArrayBuffer, sliced by offsets): each must come out whole.
    await Promise.all(sent.map(({ topic, payload }) => tb.broker.bus.publish(topic, payload, { qos: 1 })));
    expect(got.map(({ topic, payload }) => ({ topic, payload }))).toEqual(sent);
    expect(got.map((message) => message.seq)).toEqual(sent.map((_, i) => i));
  });

  it("acknowledges a device's QoS 1 publish only once the ThreadBus handler resolved", async () => {
    const { bus, served } = await bridge();
    const events: string[] = [];
    let openGate: () => void = () => undefined;
    const gate = new Promise<void>((resolve) => (openGate = resolve));
    await bus.subscribe('lw/T2/d1/telemetry', async () => {
      events.push('handler called');
      await gate;
    }, { qos: 1 });
    const device = await client({ clientId: 'bridge-puback' });
    const acked = device.publishAsync('lw/T2/d1/telemetry', telemetry(1), { qos: 1 }).then(() => events.push('acked'));
    await waitFor(() => events.includes('handler called'), 5000, 'the handler across the bridge');
    expect(served.waiting).toBe(1);
    await sleep(200); // a PUBACK sent before the handler resolved would have arrived by now
    events.push('gate opened');
    openGate();
    await withTimeout(acked, 5000, 'the PUBACK');
    expect(events).toEqual(['handler called', 'gate opened', 'acked']);
    expect(served.waiting).toBe(0);
  });

  it('a refusal leaves the message with its publisher, which sends it again until it is taken', async () => {
    const { bus } = await bridge();
    let calls = 0;
    await bus.subscribe('lw/T3/d1/telemetry', () => {
      calls++;
      if (calls === 1) throw new MessageRefused('spool full (test)');
    }, { qos: 1 });
    const device = await client({ clientId: 'bridge-refused', clean: false });
    await withTimeout(device.publishAsync('lw/T3/d1/telemetry', telemetry(7), { qos: 1 }), 15_000, 'the PUBACK after the redelivery');
    expect(calls).toBe(2);
    expect(bus.refused).toBe(1);
  });

  it('publishes through the main thread to MQTT subscribers, and unsubscribes', async () => {
    const { bus } = await bridge();
    const watcher = await client({ clientId: 'bridge-watcher' });
    await watcher.subscribeAsync('lw/T4/#', { qos: 1 });
    const seen = new Promise<string>((resolve) => watcher.on('message', (_topic, payload) => resolve(payload.toString())));
    await bus.publish('lw/T4/d1/telemetry', Buffer.from(telemetry(3)), { qos: 1 });
    expect(await withTimeout(seen, 5000, 'the message published from the ThreadBus')).toBe(telemetry(3));

    let handled = 0;
    const unsubscribe = await bus.subscribe('lw/T4/d2/telemetry', () => void handled++, { qos: 1 });
    await tb.broker.bus.publish('lw/T4/d2/telemetry', telemetry(1), { qos: 1 });
    await unsubscribe();
    await tb.broker.bus.publish('lw/T4/d2/telemetry', telemetry(2), { qos: 1 });
    expect(handled).toBe(1);
  });

  it('closing the bridge refuses what the other end did not answer, and closes the ThreadBus', async () => {
    const { bus, served } = await bridge();
    await bus.subscribe('lw/T5/d1/telemetry', () => new Promise<void>(() => undefined), { qos: 1 }); // never answers
    let otherGot = 0;
    const other = await tb.broker.bus.subscribe('lw/T5/d1/telemetry', () => void otherGot++, { qos: 1 });
    const changes: boolean[] = [];
    bus.onConnectionChange((connected) => changes.push(connected));
    const held = tb.broker.bus.publish('lw/T5/d1/telemetry', telemetry(1), { qos: 1 });
    await waitFor(() => served.waiting === 1, 5000, 'the delivery to be waiting');
    await served.close('the worker thread exited (test)');
    await expect(held).rejects.toBeInstanceOf(MessageRefused);
    expect(served.waiting).toBe(0);
    expect(otherGot).toBeGreaterThanOrEqual(1); // the other subscriber had it all along
    await waitFor(() => !bus.connected(), 5000, 'the ThreadBus to learn it is closed');
    expect(changes).toEqual([false]);
    await expect(bus.publish('lw/T5/d1/telemetry', telemetry(2))).rejects.toThrow('the bus is closed');
    await withTimeout(bus.close(), 5000, 'close() of a bus the other side closed');
    await other();
  });

  it('a worker that is gone keeps refusing: its subscriptions stay until close, so nothing is acknowledged unstored', async () => {
    const { bus, served } = await bridge();
    await bus.subscribe('lw/T6/d1/telemetry', () => new Promise<void>(() => undefined), { qos: 1 });
    // A publisher that hears a refusal at once (the in-process bus would hand the message over again for a while).
    const device = new InProcessBus(tb.broker.aedes, { redelivery: NO_REDELIVERY });
    const first = device.publish('lw/T6/d1/telemetry', telemetry(1), { qos: 1 });
    await waitFor(() => served.waiting === 1, 5000, 'the delivery to be waiting');
    served.fail('the worker thread exited (test)');
    await expect(first).rejects.toThrow(/the worker thread exited \(test\); the message stays with its publisher/);
    // Later messages too, as long as the bridge is not closed.
    await expect(device.publish('lw/T6/d1/telemetry', telemetry(2), { qos: 1 })).rejects.toBeInstanceOf(MessageRefused);
    await served.close('stopped (test)');
    await device.publish('lw/T6/d1/telemetry', telemetry(3), { qos: 1 }); // nobody subscribed any more: taken
  });

  it('a subscribe that crosses a close leaves no subscription behind', async () => {
    const { bus, served } = await bridge();
    const closing = served.close('closing (test)');
    const late = bus.subscribe('lw/T7/#', () => undefined, { qos: 1 }).catch((err: Error) => err.message);
    await closing;
    expect(await withTimeout(late, 5000, 'the late subscribe to settle')).toBe('the bus is closed');
    await new InProcessBus(tb.broker.aedes, { redelivery: NO_REDELIVERY }).publish('lw/T7/d1/telemetry', telemetry(1), { qos: 1 }); // a leftover subscription would refuse it
  });

  it('what the worker handled before it closed its bus is acknowledged, not refused by the close', async () => {
    const { bus } = await bridge();
    let handled = 0;
    await bus.subscribe('lw/T8/d1/telemetry', () => {
      handled++;
      void bus.close(); // in the same turn as the outcome
    }, { qos: 1 });
    await new InProcessBus(tb.broker.aedes, { redelivery: NO_REDELIVERY }).publish('lw/T8/d1/telemetry', telemetry(1), { qos: 1 });
    expect(handled).toBe(1);
  });
});
