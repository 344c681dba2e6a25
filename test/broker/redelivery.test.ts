// An in-process QoS 1 publish that an in-process subscriber refuses (MessageRefused: the
// historian with a full spool) is delivered to that subscriber again until it takes it; the other
// subscribers (in-process and network) get it once. A subscriber that keeps refusing makes the
// publish reject after the redelivery policy's time, counted (docs/broker.md#refusing-a-publish).
// The broker's dead letters go the same way.
// The spool-full case with a real historian and influxd: test/historian/backpressure.test.ts.
import mqtt from 'mqtt';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { MessageRefused } from '../../bus/bus.js';
import { topics } from '../../contracts/index.js';
import { InProcessBus } from '../../broker/in-process-bus.js';
import { waitFor } from '../../lib/wait.js';
import { startTestBroker, type TestBroker } from '../harness/broker.js';

let tb: TestBroker;
const cleanups: (() => Promise<unknown>)[] = [];
beforeAll(async () => {
  tb = await startTestBroker({ open: true, wsPort: null });
});
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});
afterAll(async () => {
  await tb?.stop();
});

/** Another in-process subscriber and a network subscriber on `topic`: how many copies each got. */
async function watch(topic: string): Promise<{ inProcess: () => number; network: () => number }> {
  let inProcess = 0;
  let network = 0;
  cleanups.push(await tb.broker.bus.subscribe(topic, () => void inProcess++));
  const client = await mqtt.connectAsync(tb.url, { clientId: `watch-${topic.replaceAll('/', '-')}` });
  cleanups.push(() => client.endAsync(true));
  client.on('message', () => network++);
  await client.subscribeAsync(topic, { qos: 1 });
  return { inProcess: () => inProcess, network: () => network };
}

/** Publishes 'the alert' at QoS 1 on a bus of its own whose redeliveries give up after `giveUpAfterMs`: the bus and what the publish ended with ('resolved' or the error). */
async function publishShortPolicy(topic: string, giveUpAfterMs: number): Promise<{ publisher: InProcessBus; outcome: unknown }> {
  const publisher = new InProcessBus(tb.broker.aedes, { redelivery: { firstDelayMs: 10, maxDelayMs: 40, giveUpAfterMs, maxWaiting: 10 } });
  cleanups.push(() => publisher.close());
  const outcome = await publisher.publish(topic, 'the alert', { qos: 1 }).then(
    () => 'resolved',
    (err: unknown) => err,
  );
  return { publisher, outcome };
}

describe('in-process publish refused by a subscriber', () => {
  it('is delivered again to the refusing subscriber only, and resolves once it took it', async () => {
    const topic = 'lw/RD/alerts';
    const others = await watch(topic);
    let offered = 0;
    const taken: string[] = [];
    cleanups.push(
      await tb.broker.bus.subscribe(topic, async (_topic, payload) => {
        offered++;
        if (offered <= 3) throw new MessageRefused('spool full (test subscriber)');
        taken.push(payload.toString());
      }),
    );
    const redeliveredBefore = tb.broker.bus.redelivered;

    await tb.broker.bus.publish(topic, 'the alert', { qos: 1 });
    expect(taken).toEqual(['the alert']);
    expect(offered).toBe(4);
    expect(tb.broker.bus.redelivered).toBe(redeliveredBefore + 1);
    await waitFor(() => others.network() >= 1, 5_000, 'the network subscriber to get the message');
    expect(others.inProcess()).toBe(1);
    expect(others.network()).toBe(1);
  });

  it('rejects with MessageRefused, counted, when the subscriber still refuses after the policy gave up', async () => {
    const topic = 'lw/RG/alerts';
    const others = await watch(topic);
    let offered = 0;
    cleanups.push(
      await tb.broker.bus.subscribe(topic, async () => {
        offered++;
        throw new MessageRefused('spool full (test subscriber)');
      }),
    );
    const { publisher, outcome } = await publishShortPolicy(topic, 300);
    expect(outcome).toBeInstanceOf(MessageRefused);
    expect((outcome as Error).message).toMatch(/refused an in-process publish on lw\/RG\/alerts \(still refused after 300 ms of redeliveries\).*spool full \(test subscriber\)/);
    expect(offered).toBeGreaterThan(1);
    expect(publisher.redeliveryGaveUp).toBe(1);
    await waitFor(() => others.network() >= 1, 5_000, 'the network subscriber to get the message');
    expect(others.inProcess()).toBe(1);
    expect(others.network()).toBe(1);
  });

  it('gives up, not resolves, when the refusing subscriber unsubscribed before a redelivery (a stopped historian stores nothing)', async () => {
    const topic = 'lw/RU/alerts';
    let offered = 0;
    const unsubscribe = await tb.broker.bus.subscribe(topic, async () => {
      offered++;
      if (offered === 1) {
        await unsubscribe(); // it stops, as the historian does, right after refusing
        throw new MessageRefused('spool full (test subscriber)');
      }
    });
    cleanups.push(unsubscribe);
    const { publisher, outcome } = await publishShortPolicy(topic, 2_000);
    expect(outcome).toBeInstanceOf(MessageRefused);
    expect((outcome as Error).message).toMatch(/the subscriber that refused it has unsubscribed since.*spool full \(test subscriber\)/);
    expect(offered).toBe(1);
    expect(publisher.redeliveryGaveUp).toBe(1);
  });

  it("the broker's dead letter is delivered again to a subscriber that refused it", async () => {
    let offered = 0;
    const taken: string[] = [];
    cleanups.push(
      await tb.broker.bus.subscribe(topics.deadLetter('rd-sender'), async (_topic, payload) => {
        offered++;
        if (offered <= 2) throw new MessageRefused('spool full (test subscriber)');
        taken.push((JSON.parse(payload.toString()) as { topic: string }).topic);
      }),
    );
    const sender = await mqtt.connectAsync(tb.url, { clientId: 'rd-sender' });
    cleanups.push(() => sender.endAsync(true));
    await sender.publishAsync('lw/RD/d1/telemetry', '{"not":"a telemetry event"}', { qos: 1 });
    await waitFor(() => taken.length > 0, 10_000, 'the dead letter taken on a redelivery');
    expect(taken).toEqual(['lw/RD/d1/telemetry']);
    expect(offered).toBe(3);
    expect(tb.broker.counters().dead_letters_lost).toBe(0);
  });

  it('a QoS 0 publish is not redelivered (nothing to withhold): it resolves, the refusing subscriber got it once', async () => {
    const topic = 'lw/R0/alerts';
    let offered = 0;
    cleanups.push(
      await tb.broker.bus.subscribe(topic, async () => {
        offered++;
        throw new MessageRefused('spool full (test subscriber)');
      }),
    );
    await tb.broker.bus.publish(topic, 'the alert', { qos: 0 });
    expect(offered).toBe(1);
  });
});
