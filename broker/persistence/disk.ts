// `broker.persistence: disk` (the default): aedes-persistence-level on an embedded LevelDB
// (`level`, i.e. classic-level) in `<dataDir>/broker/store`, the directory locked with
// lib/dir-lock.ts so two brokers cannot share it. Why this store, and what it guarantees:
// docs/broker.md#persistence. In short: every write has reached the operating system when its
// promise resolves (LevelDB appends it to its log with write(2), without fsync), and Aedes sends
// the PUBACK/PUBREC only after that promise, so a killed broker (SIGKILL, a crash) loses nothing
// it acknowledged; a power loss or kernel crash can lose the writes of the last moments.
import { mkdirSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { lockDir, unlockDir } from '../../lib/dir-lock.js';
import { coalesceLevel } from './level-coalescing.js';
import type { AedesPersistence, OpenedPersistence } from './types.js';

const require = createRequire(import.meta.url);

/** The store versions this file was written for (package.json pins them; the guard says what to revisit). */
const LEVEL_PERSISTENCE_MAJOR = '9.';

/** The LevelDB database as aedes-persistence-level uses it, and what we need to open it. */
interface LevelDatabase {
  open(): Promise<void>;
  close(): Promise<void>;
  readonly status: string;
}
type LevelClass = new (location: string) => LevelDatabase;
type LevelPersistenceFactory = (db: LevelDatabase) => AedesPersistence & { destroy(): Promise<void> };

/** Where a broker's disk store lives under the data dir. */
export function diskStoreDir(dataDir: string): string {
  return join(dataDir, 'broker');
}

/** Opens (creating if needed) the LevelDB store under `<dataDir>/broker`; refuses a directory another broker holds. */
export async function openDiskPersistence(dataDir: string): Promise<OpenedPersistence> {
  const version = (require('aedes-persistence-level/package.json') as { version: string }).version;
  if (!version.startsWith(LEVEL_PERSISTENCE_MAJOR)) {
    throw new Error(`aedes-persistence-level ${version} is installed, broker/persistence/disk.ts was written for 9.x: revisit it (its durability and the abstract suite) for the new version`);
  }
  const dir = diskStoreDir(dataDir);
  mkdirSync(dir, { recursive: true });
  lockDir(dir, 'the broker store', 'run one broker per data dir (--data-dir, or dataDir in linewatch.yaml), or broker.persistence: memory');
  const location = join(dir, 'store');
  try {
    const { Level } = require('level') as { Level: LevelClass };
    const db = new Level(location);
    await db.open();
    // One LevelDB batch and one getMany per event-loop turn instead of one trip per operation (level-coalescing.ts).
    const coalesced = coalesceLevel(db);
    const persistence = (require('aedes-persistence-level') as LevelPersistenceFactory)(coalesced.db);
    let closing: Promise<void> | undefined;
    return {
      kind: 'disk',
      persistence,
      location,
      gauges: () => ({ disk_store_batches: coalesced.counts.batches, disk_store_writes: coalesced.counts.writes, disk_store_get_many: coalesced.counts.reads, disk_store_gets: coalesced.counts.gets }),
      close() {
        closing ??= (async () => {
          try {
            // destroy() closes the database, which waits for the writes still under way.
            await persistence.destroy();
          } finally {
            unlockDir(dir);
          }
        })();
        return closing;
      },
    };
  } catch (err) {
    unlockDir(dir);
    throw new Error(`cannot open the broker store ${location}: ${(err as Error).message}`, { cause: err });
  }
}
