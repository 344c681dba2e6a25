// The stores the broker ships pass the abstract suite aedes-persistence ships for implementations:
// the linear memory store, the disk store (LevelDB in a temp dir), and the session queue limit
// around each (test/harness/abstract-persistence.ts runs the node:test suite under vitest).
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { brokerConfigSchema } from '../../../broker/config.js';
import { openDiskPersistence } from '../../../broker/persistence/disk.js';
import { createLinearMemoryPersistence } from '../../../broker/persistence/memory.js';
import { QueueLimit } from '../../../broker/persistence/queue-limit.js';
import type { OpenedPersistence } from '../../../broker/persistence/types.js';
import { abstractPersistenceSuite, abstractSuiteCaseCount } from '../../harness/abstract-persistence.js';

const root = mkdtempSync(join(tmpdir(), 'linewatch-abstract-'));
const opened: OpenedPersistence[] = [];
let stores = 0;

async function diskStore(): Promise<OpenedPersistence> {
  const store = await openDiskPersistence(join(root, `store-${++stores}`));
  opened.push(store);
  return store;
}

const limited = (store: object): object => new QueueLimit(brokerConfigSchema.parse({}).sessionQueue, undefined).wrap(store);

afterAll(async () => {
  // The suite destroys each store itself; close() also releases the directory lock.
  await Promise.all(opened.map((store) => store.close()));
  rmSync(root, { recursive: true, force: true });
});

describe('the abstract suite', () => {
  it('has cases to run', () => {
    expect(abstractSuiteCaseCount()).toBeGreaterThan(40);
  });
});

abstractPersistenceSuite('memory (linear)', () => createLinearMemoryPersistence());
abstractPersistenceSuite('memory (linear) with the session queue limit', () => limited(createLinearMemoryPersistence()));
abstractPersistenceSuite('disk (LevelDB)', async () => (await diskStore()).persistence);
abstractPersistenceSuite('disk (LevelDB) with the session queue limit', async () => limited((await diskStore()).persistence));
