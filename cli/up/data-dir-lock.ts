// One `linewatch up` per data dir: a lock (lib/dir-lock.ts, `up.lock` in the data dir) taken
// before anything in it is touched — the log file, the leftovers of a killed run (children.ts
// reapLeftovers ends the processes a previous run left), the stores — so a second `up` on the
// same data dir refuses instead of killing the first one's influxd and socat.
import { mkdirSync } from 'node:fs';
import { resolve } from 'node:path';
import { lockDir, unlockDir } from '../../lib/dir-lock.js';
import { UserError } from '../errors.js';

const LOCK_NAME = 'up.lock';

export interface DataDirLock {
  /** The data dir, absolute. */
  readonly dataDir: string;
  release(): void;
}

/** Takes the data dir's lock (creating the dir), or throws a UserError naming it and the process that holds it. */
export function lockDataDir(dataDir: string): DataDirLock {
  const absolute = resolve(dataDir);
  mkdirSync(absolute, { recursive: true });
  try {
    lockDir(absolute, 'the data dir', 'another `linewatch up` runs on it: stop that one, or give this one its own --data-dir (dataDir in linewatch.yaml)', { name: LOCK_NAME });
  } catch (err) {
    throw new UserError((err as Error).message);
  }
  return { dataDir: absolute, release: () => unlockDir(absolute, LOCK_NAME) };
}
