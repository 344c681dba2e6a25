// One writer per directory: a LOCK file naming the process that holds it, which survives PID
// reuse. A PID alone is not enough: in a container the historian is PID 1 on every start, so
// a LOCK left by a killed run names a live process (ourselves) and would be refused forever.
// The file also records the holder's start time (field 22 of /proc/PID/stat, clock ticks since
// boot) and the boot id, so a PID that is alive but is another process — or this process, when
// this process did not take the lock — is recognised as a stale holder and taken over.
//
//   LOCK = {"pid":1234,"start":"5678","boot":"<uuid>"}    (an older LOCK is just the PID)
//
// Without /proc (not Linux) start and boot are null and the check falls back to the PID alone,
// still treating our own PID as stale unless this process holds the lock.
import { readFileSync, unlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { logger } from './log.js';

const log = logger('lock');

export interface ProcessIdentity {
  pid: number;
  /** Start time in clock ticks since boot, or null where /proc cannot tell. */
  start: string | null;
  /** /proc/sys/kernel/random/boot_id, or null. */
  boot: string | null;
}

/** Directories this process holds a lock on (a second lock from this process is refused). */
const heldHere = new Set<string>();

/** Who `pid` is now, or undefined if no such process runs. */
export function identityOf(pid: number): ProcessIdentity | undefined {
  if (!isAlive(pid)) return undefined;
  return { pid, start: startTimeOf(pid), boot: bootId() };
}

/**
 * Takes the lock on `dir` (the LOCK file in it) or throws, naming `what` the directory is, the
 * holder and `hint` (what to do instead). A lock left by a dead process, or by an earlier
 * process with the same PID, is taken over with a warning.
 */
export function lockDir(dir: string, what: string, hint: string): void {
  const file = join(dir, 'LOCK');
  const me = JSON.stringify(identityOf(process.pid) ?? { pid: process.pid, start: null, boot: null });
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      writeFileSync(file, me, { flag: 'wx' });
      heldHere.add(dir);
      return;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    }
    const holder = readHolder(file);
    const why = holder ? staleBecause(holder, dir) : 'it does not name a process';
    if (holder && why === undefined) {
      throw new Error(`${what} ${dir} is in use by process ${holder.pid}; ${hint}`);
    }
    log.warn({ dir, holder, why }, `took over a stale lock on ${what}`);
    unlinkSync(file);
  }
  throw new Error(`could not lock ${what} ${dir}: another process keeps taking the lock; ${hint}`);
}

/** Releases a lock this process took. */
export function unlockDir(dir: string): void {
  if (!heldHere.delete(dir)) return;
  try {
    unlinkSync(join(dir, 'LOCK'));
  } catch {
    // already gone
  }
}

/** Why the lock's holder no longer holds it, or undefined if it does. */
function staleBecause(holder: ProcessIdentity, dir: string): string | undefined {
  if (holder.pid === process.pid) {
    // Our own PID: either this process holds it (refuse), or an earlier process that had this
    // PID left it (container PID 1 restarted after a kill).
    return heldHere.has(dir) ? undefined : 'an earlier process with this PID left it';
  }
  const now = identityOf(holder.pid);
  if (!now) return 'its process is gone';
  if (holder.boot !== null && now.boot !== null && holder.boot !== now.boot) return 'it is from before a reboot';
  if (holder.start !== null && now.start !== null && holder.start !== now.start) return 'its PID now belongs to another process';
  return undefined;
}

/** The holder a LOCK file names: the JSON identity, or an older plain PID. */
function readHolder(file: string): ProcessIdentity | undefined {
  let text: string;
  try {
    text = readFileSync(file, 'utf8').trim();
  } catch {
    return undefined; // removed between our write and this read: the next attempt takes it
  }
  if (/^\d+$/.test(text)) return validPid(Number(text)) ? { pid: Number(text), start: null, boot: null } : undefined;
  try {
    const value = JSON.parse(text) as Partial<ProcessIdentity>;
    if (!validPid(value.pid)) return undefined;
    return { pid: value.pid, start: typeof value.start === 'string' ? value.start : null, boot: typeof value.boot === 'string' ? value.boot : null };
  } catch {
    return undefined;
  }
}

function validPid(pid: unknown): pid is number {
  return Number.isInteger(pid) && (pid as number) > 0;
}

function startTimeOf(pid: number): string | null {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // comm (field 2) is in parentheses and may contain spaces: split what follows the last ')',
    // which starts at field 3 (state), so field 22 (starttime) is at index 19.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return fields[19] ?? null;
  } catch {
    return null;
  }
}

let cachedBootId: string | null | undefined;
function bootId(): string | null {
  if (cachedBootId === undefined) {
    try {
      cachedBootId = readFileSync('/proc/sys/kernel/random/boot_id', 'utf8').trim();
    } catch {
      cachedBootId = null;
    }
  }
  return cachedBootId;
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}
