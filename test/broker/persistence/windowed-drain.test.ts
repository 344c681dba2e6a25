// A returning persistent subscriber's backlog goes out with several store updates under way at
// once (broker/windowed-drain.ts), not one message after the other as Aedes 1.2.0's emptyQueue
// does — counted, not timed: a counting layer on the broker's store (test instrumentation,
// installed on this test's broker only) records how many outgoingUpdate calls overlap. And the
// backlog still arrives complete, exactly once, in queue order; a subscriber that goes away
// mid-drain finds the rest queued when it comes back.
import mqtt, { type MqttClient } from 'mqtt';
import { afterEach, describe, expect, it } from 'vitest';
import { DRAIN_WINDOW } from '../../../broker/windowed-drain.js';
import { waitFor, withTimeout } from '../../../lib/wait.js';
import { startTestBroker, type TestBroker } from '../../harness/broker.js';

/** Queued while the subscriber is away: enough for the window to fill many times. */
const BACKLOG = 3_000;
const PUBLISH_WINDOW = 500;
const WAIT_MS = 60_000;
const TEST_TIMEOUT_MS = 120_000;

interface Counted {
  /** The most outgoingUpdate calls under way at once. */
  maxOverlap: number;
}

/**
 * Replaces the broker's store (as Aedes calls it) with one that counts overlapping outgoingUpdate
 * calls, each answered one event-loop turn late (setImmediate) so that even the memory store's
 * updates, which resolve at once, take the time an on-disk one does and overlap when allowed to.
 */
function countOverlappingUpdates(tb: TestBroker): Counted {
  const aedes = tb.broker.aedes as unknown as { persistence: Record<string, unknown> };
  const store = aedes.persistence;
  const counted: Counted = { maxOverlap: 0 };
  let underWay = 0;
  aedes.persistence = new Proxy(store, {
    get(target, property) {
      const value = Reflect.get(target, property) as unknown;
      if (property !== 'outgoingUpdate' || typeof value !== 'function') return value;
      return async (...args: unknown[]) => {
        counted.maxOverlap = Math.max(counted.maxOverlap, ++underWay);
        try {
          const result = await (value as (...a: unknown[]) => Promise<unknown>)(...args);
          await new Promise((resolve) => setImmediate(resolve));
          return result;
        } finally {
          underWay--;
        }
      };
    },
  });
  return counted;
}

async function queueBacklog(url: string, clientId: string, topic: string, count: number): Promise<void> {
  const first = await mqtt.connectAsync(url, { clientId, clean: false, reconnectPeriod: 0 });
  await first.subscribeAsync(topic, { qos: 1 });
  await first.endAsync();
  const publisher = await mqtt.connectAsync(url, { clientId: `${clientId}-pub`, reconnectPeriod: 0 });
  try {
    for (let start = 0; start < count; start += PUBLISH_WINDOW) {
      const window: Promise<unknown>[] = [];
      for (let i = start; i < Math.min(count, start + PUBLISH_WINDOW); i++) window.push(publisher.publishAsync(topic, `b:${i}`, { qos: 1 }));
      await withTimeout(Promise.all(window), WAIT_MS, `PUBACKs for backlog messages ${start}…`);
    }
  } finally {
    await publisher.endAsync(true);
  }
}

/** The persistent subscriber back: every payload it receives, in arrival order. */
function reconnect(url: string, clientId: string, received: string[]): MqttClient {
  const subscriber = mqtt.connect(url, { clientId, clean: false, reconnectPeriod: 0 });
  subscriber.on('message', (_topic, payload) => received.push(payload.toString()));
  return subscriber;
}

describe.each(['memory', 'disk'] as const)('a persistent subscriber coming back to a backlog (persistence: %s)', (persistence) => {
  let tb: TestBroker | undefined;
  const clients: MqttClient[] = [];
  afterEach(async () => {
    await Promise.all(clients.splice(0).map((client) => client.endAsync(true)));
    await tb?.stop();
    tb = undefined;
  });

  it(`gets it exactly once and in order, with up to ${DRAIN_WINDOW} store updates under way at once`, async () => {
    tb = await startTestBroker({ wsPort: null, open: true, persistence });
    await queueBacklog(tb.url, 'drain-sub', 'drain/x', BACKLOG);
    const counted = countOverlappingUpdates(tb);
    const received: string[] = [];
    clients.push(reconnect(tb.url, 'drain-sub', received));
    await waitFor(() => received.length >= BACKLOG, WAIT_MS, `${BACKLOG} backlog messages at the subscriber`);
    expect(received).toEqual(Array.from({ length: BACKLOG }, (_, i) => `b:${i}`));
    console.log(`persistence ${persistence}: at most ${counted.maxOverlap} outgoingUpdate calls under way at once during a ${BACKLOG}-message drain`);
    expect(counted.maxOverlap).toBeGreaterThan(1);
    expect(counted.maxOverlap).toBeLessThanOrEqual(DRAIN_WINDOW);
  }, TEST_TIMEOUT_MS);

  it('that leaves mid-drain finds the rest queued when it comes back (nothing lost)', async () => {
    tb = await startTestBroker({ wsPort: null, open: true, persistence });
    await queueBacklog(tb.url, 'leaving-sub', 'drain/y', BACKLOG);
    const received: string[] = [];
    const leaving = reconnect(tb.url, 'leaving-sub', received);
    await waitFor(() => received.length >= BACKLOG / 10, WAIT_MS, 'a tenth of the backlog at the subscriber');
    await leaving.endAsync(true);
    clients.push(reconnect(tb.url, 'leaving-sub', received));
    const expected = Array.from({ length: BACKLOG }, (_, i) => `b:${i}`);
    await waitFor(() => new Set(received).size >= BACKLOG, WAIT_MS, `every one of the ${BACKLOG} backlog messages at the subscriber, across two connections`);
    expect(new Set(received)).toEqual(new Set(expected));
  }, TEST_TIMEOUT_MS);
});
