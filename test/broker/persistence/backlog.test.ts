// A persistent subscriber's backlog drains in work linear in its size, and publishers keep getting
// their PUBACKs meanwhile (issue 13). Work is counted, not timed: a counting accessor on
// aedes-packet's Packet.prototype.brokerCounter (test instrumentation, installed for this file's
// process only) counts every read of a packet's brokerCounter — the field the memory store aedes
// ships compares for every queued packet it walks past in outgoingUpdate. Reads per delivered
// message stay constant for a linear store and grow with the backlog for a quadratic one.
import { createRequire } from 'node:module';
import { createServer, type AddressInfo } from 'node:net';
import { Aedes } from 'aedes';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createLinearMemoryPersistence, upstreamMemoryClass } from '../../../broker/persistence/memory.js';
import { drainBacklog, type BacklogResult } from '../../harness/backlog.js';
import { startTestBroker, type TestBroker } from '../../harness/broker.js';

const require = createRequire(import.meta.url);

/** The backlog through the whole linewatch broker: scaled so the drain takes seconds here (3k events/s for 10 s). */
const BACKLOG = 30_000;
/** The backlog for the store comparison on bare Aedes, and twice that (the upstream store is quadratic: keep it small). */
const COMPARED_BACKLOG = 3_000;
/** A linear store reads a packet's brokerCounter a few times per delivery (copies, dedupe, its index), whatever the backlog. */
const MAX_READS_PER_MESSAGE = 20;
const PUBACK_WAIT_MS = 10_000;
const DRAIN_WAIT_MS = 120_000;
/** Each test publishes and drains a backlog (twice, for the comparisons): seconds, on a busy 2-core machine up to two minutes. */
const TEST_TIMEOUT_MS = 240_000;

let reads = 0;
const stored = Symbol('brokerCounter');
const packetPrototype = (require('aedes-packet') as { prototype: object }).prototype;

beforeAll(() => {
  // Packet's constructor assigns this.brokerCounter: with an accessor on the prototype, the value lands in the symbol slot and every read is counted.
  Object.defineProperty(packetPrototype, 'brokerCounter', {
    configurable: true,
    get(this: Record<symbol, unknown>) {
      reads++;
      return this[stored];
    },
    set(this: Record<symbol, unknown>, value: unknown) {
      this[stored] = value;
    },
  });
});
afterAll(() => {
  delete (packetPrototype as Record<string, unknown>).brokerCounter;
});

/** Bare Aedes 1.2.0 on `persistence`, on a free port. */
async function bareAedes(persistence: object): Promise<{ url: string; close(): Promise<void> }> {
  const aedes = await Aedes.createBroker({ persistence });
  const server = createServer(aedes.handle);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    url: `mqtt://127.0.0.1:${(server.address() as AddressInfo).port}`,
    close: async () => {
      await new Promise<void>((resolve) => aedes.close(() => resolve()));
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

async function readsPerMessage(url: string, backlog: number, clientId: string): Promise<{ result: BacklogResult; perMessage: number }> {
  let before = 0;
  const result = await drainBacklog({ url, backlog, clientId, topic: `backlog/${clientId}`, pubackWaitMs: PUBACK_WAIT_MS, drainWaitMs: DRAIN_WAIT_MS, beforeDrain: () => (before = reads) });
  const perMessage = (reads - before) / result.delivered;
  return { result, perMessage };
}

describe('the memory store aedes ships, on bare Aedes', () => {
  it('does work per delivered message that grows with the backlog (quadratic drain)', async () => {
    const Upstream = upstreamMemoryClass();
    const broker = await bareAedes(new Upstream());
    try {
      const small = await readsPerMessage(broker.url, COMPARED_BACKLOG, 'upstream-small');
      const large = await readsPerMessage(broker.url, 2 * COMPARED_BACKLOG, 'upstream-large');
      console.log(`aedes-persistence memory: ${small.perMessage.toFixed(1)} brokerCounter reads per delivered message at a backlog of ${COMPARED_BACKLOG}, ${large.perMessage.toFixed(1)} at ${2 * COMPARED_BACKLOG}`);
      expect(small.result.missing).toBe(0);
      expect(large.result.missing).toBe(0);
      expect(large.perMessage).toBeGreaterThan(MAX_READS_PER_MESSAGE);
      expect(large.perMessage).toBeGreaterThan(1.5 * small.perMessage);
    } finally {
      await broker.close();
    }
  }, TEST_TIMEOUT_MS);

  it('with our linear store instead, does the same work per message whatever the backlog', async () => {
    const broker = await bareAedes(createLinearMemoryPersistence());
    try {
      const small = await readsPerMessage(broker.url, COMPARED_BACKLOG, 'linear-small');
      const large = await readsPerMessage(broker.url, 2 * COMPARED_BACKLOG, 'linear-large');
      console.log(`linear memory store: ${small.perMessage.toFixed(1)} brokerCounter reads per delivered message at a backlog of ${COMPARED_BACKLOG}, ${large.perMessage.toFixed(1)} at ${2 * COMPARED_BACKLOG}`);
      expect(small.result.missing).toBe(0);
      expect(large.result.missing).toBe(0);
      expect(small.perMessage).toBeLessThanOrEqual(MAX_READS_PER_MESSAGE);
      expect(large.perMessage).toBeLessThanOrEqual(MAX_READS_PER_MESSAGE);
    } finally {
      await broker.close();
    }
  }, TEST_TIMEOUT_MS);
});

describe(`the linewatch broker (persistence: memory), a backlog of ${BACKLOG}`, () => {
  let tb: TestBroker;
  beforeAll(async () => {
    tb = await startTestBroker({ wsPort: null, open: true, persistence: 'memory' });
  });
  afterAll(async () => {
    await tb?.stop();
  });

  it('reaches the returning persistent subscriber exactly once, in linear work, while live publishes keep getting their PUBACKs', async () => {
    const { result, perMessage } = await readsPerMessage(tb.url, BACKLOG, 'backlog-sub');
    console.log(`linewatch broker, memory: ${BACKLOG} queued + ${result.livePublished} live delivered in ${result.drainMs} ms, ${perMessage.toFixed(1)} brokerCounter reads per message`);
    expect(result).toMatchObject({ missing: 0, duplicates: 0 });
    expect(result.delivered).toBe(BACKLOG + result.livePublished);
    expect(result.livePublished).toBeGreaterThan(0);
    expect(perMessage).toBeLessThanOrEqual(MAX_READS_PER_MESSAGE);
  }, TEST_TIMEOUT_MS);
});
