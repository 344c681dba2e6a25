// The disk store's LevelDB operations are coalesced per event-loop turn (broker/persistence/
// level-coalescing.ts): on a real LevelDB in a temp dir, what one turn asks for reaches the
// database as one batch and one getMany, a caller's own operations stay in order, and close
// writes what is pending; through the linewatch broker, a persistent subscriber's backlog drain
// costs a fraction of the trips to LevelDB per message that aedes-persistence-level makes alone
// (≥ 6: a put to queue it, a get and two puts to update it, a get and a batch to clear it).
// Trips are counted with counting wrappers on classic-level's prototype (test instrumentation,
// installed for this file's process only), never timed.
import { mkdtempSync, rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { coalesceLevel, type CoalescedLevel } from '../../../broker/persistence/level-coalescing.js';
import { drainBacklog } from '../../harness/backlog.js';
import { startTestBroker, type TestBroker } from '../../harness/broker.js';

const require = createRequire(import.meta.url);

/** classic-level's methods that each make one trip to the native database (abstract-level calls them). */
const TRIPS = ['_put', '_get', '_getMany', '_del', '_batch', '_chainedBatch'] as const;
const BACKLOG = 3_000;
/**
 * aedes-persistence-level's trips per delivered message, uncoalesced, are at least 6; coalesced,
 * a fraction of that. How many operations share a turn depends on how busy the machine is (2.5 on
 * a quiet run, up to 3.2 with other suites running beside it), so the bound is 4: still well
 * under the uncoalesced 6, and not a timing assertion in disguise.
 */
const MAX_TRIPS_PER_MESSAGE = 4;
const PUBACK_WAIT_MS = 10_000;
const DRAIN_WAIT_MS = 60_000;
const TEST_TIMEOUT_MS = 120_000;

interface ClassicLevelClass {
  new (location: string): CoalescedLevel & { open(): Promise<void> };
  prototype: Record<string, unknown>;
}
const { ClassicLevel } = require('classic-level') as { ClassicLevel: ClassicLevelClass };

let trips = 0;
const originals = new Map<string, unknown>();
beforeAll(() => {
  for (const name of TRIPS) {
    const original = ClassicLevel.prototype[name] as (...args: unknown[]) => unknown;
    if (typeof original !== 'function') throw new Error(`classic-level has no ${name}: this test's counting must be revisited`);
    originals.set(name, original);
    ClassicLevel.prototype[name] = function counted(this: unknown, ...args: unknown[]) {
      trips++;
      return original.apply(this, args);
    };
  }
});
afterAll(() => {
  for (const [name, original] of originals) ClassicLevel.prototype[name] = original;
});

const dirs: string[] = [];
afterEach(() => {
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
});

async function openLevel(): Promise<{ location: string; db: CoalescedLevel & { open(): Promise<void> } }> {
  const dir = mkdtempSync(join(tmpdir(), 'linewatch-coalescing-'));
  dirs.push(dir);
  const location = join(dir, 'db');
  const db = new ClassicLevel(location);
  await db.open();
  return { location, db };
}

describe('a coalesced LevelDB', () => {
  it('writes the puts, dels and batches of one turn as one batch, and reads its gets with one getMany', async () => {
    const { db } = await openLevel();
    const { db: coalesced, counts } = coalesceLevel(db);
    const before = trips;
    await Promise.all([coalesced.put('a', '1'), coalesced.put('b', '2'), coalesced.batch([{ type: 'put', key: 'c', value: '3' }]), coalesced.del('missing')]);
    expect(trips - before).toBe(1);
    const between = trips;
    const values = await Promise.all([coalesced.get('a'), coalesced.get('b'), coalesced.get('c'), coalesced.get('missing')]);
    expect(values).toEqual(['1', '2', '3', undefined]);
    expect(trips - between).toBe(1);
    expect(counts).toEqual({ batches: 1, writes: 4, reads: 1, gets: 4 });
    await coalesced.close();
  });

  it("keeps a caller's operations in order, the chained batch included", async () => {
    const { db } = await openLevel();
    const { db: coalesced } = coalesceLevel(db);
    await coalesced.put('k', 'first');
    const chained = (coalesced.batch as unknown as () => { del(key: string): { put(key: string, value: string): { write(): Promise<void> } } })();
    await chained.del('k').put('k', 'second').write();
    expect(await coalesced.get('k')).toBe('second');
    await coalesced.del('k');
    expect(await coalesced.get('k')).toBeUndefined();
    await coalesced.close();
  });

  it('writes what is pending before it closes', async () => {
    const { location, db } = await openLevel();
    const { db: coalesced } = coalesceLevel(db);
    const pending = coalesced.put('late', 'kept');
    await coalesced.close();
    await pending;
    const reopened = new ClassicLevel(location);
    await reopened.open();
    try {
      expect(await reopened.get('late')).toBe('kept');
    } finally {
      await reopened.close();
    }
  });
});

describe(`the linewatch broker (persistence: disk), a backlog of ${BACKLOG}`, () => {
  let tb: TestBroker;
  beforeAll(async () => {
    tb = await startTestBroker({ wsPort: null, open: true, persistence: 'disk' });
  });
  afterAll(async () => {
    await tb?.stop();
  });

  it(`drains it exactly once, PUBACKs to a live publisher coming meanwhile, in at most ${MAX_TRIPS_PER_MESSAGE} LevelDB trips per message`, async () => {
    let before = 0;
    const result = await drainBacklog({ url: tb.url, backlog: BACKLOG, clientId: 'coalesced-sub', topic: 'backlog/coalesced', pubackWaitMs: PUBACK_WAIT_MS, drainWaitMs: DRAIN_WAIT_MS, beforeDrain: () => (before = trips) });
    const perMessage = (trips - before) / result.delivered;
    console.log(`linewatch broker, disk: ${BACKLOG} queued + ${result.livePublished} live delivered in ${result.drainMs} ms, ${perMessage.toFixed(2)} LevelDB trips per message`);
    expect(result).toMatchObject({ missing: 0, duplicates: 0 });
    expect(result.livePublished).toBeGreaterThan(0);
    expect(perMessage).toBeLessThanOrEqual(MAX_TRIPS_PER_MESSAGE);
  }, TEST_TIMEOUT_MS);
});
