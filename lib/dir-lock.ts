// One writer per directory: a LOCK file naming the process that holds it, which survives PID
// reuse and does not let a second container in.
//
//   LOCK = {"pid":1,"start":"5678","boot":"<uuid>","ns":"pid:[4026532281]","host":"<name>"}
//   (a LOCK of an older version is just the PID)
//
// A PID alone is not enough: in a container the historian is PID 1 on every start, so a LOCK
// left by a killed run names a live process (ourselves) and would be refused forever. So the
// LOCK also records the holder's start time (field 22 of /proc/PID/stat), the boot id and the
// PID namespace; and the holder keeps it fresh (its mtime is touched every `refreshMs`), a lease.
//
// Whether the holder still holds it:
// - in our own PID namespace and boot (or an older LOCK, which names neither), the PID can be checked: gone,
//   started at another time, or our own PID while this process did not take the lock → no;
//   otherwise yes;
// - in another PID namespace or boot (another container on a shared volume, the same container
//   restarted — each start gets a new namespace —, another host on a network volume, or a
//   reboot) its PID means nothing here, so the lease
//   decides: a LOCK not touched for `staleMs` is taken over; a fresher one is watched until it
//   would be stale, and taken over only if nobody touched it meanwhile — a holder that is alive
//   touches it, and is refused.
// A takeover renames the stale LOCK aside and checks it is the one judged stale before writing
// its own with O_EXCL, so two processes taking over at once cannot both win.
import { randomBytes } from 'node:crypto';
import { readFileSync, readlinkSync, renameSync, statSync, unlinkSync, utimesSync, writeFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { logger } from './log.js';
import { processAlive } from './process-alive.js';

const log = logger('lock');

export interface ProcessIdentity {
  pid: number;
  /** Start time in clock ticks since boot, or null where /proc cannot tell. */
  start: string | null;
  /** /proc/sys/kernel/random/boot_id, or null. */
  boot: string | null;
  /** The PID namespace (readlink /proc/PID/ns/pid), or null. */
  ns: string | null;
  /** The host (container) name, for people reading the LOCK. */
  host: string | null;
}

export interface LockOptions {
  /** How often the holder touches the LOCK (ms). */
  refreshMs?: number;
  /** A LOCK from another PID namespace not touched for this long is stale (ms). */
  staleMs?: number;
  /** The lock file's name in the directory (default LOCK): one directory can hold the locks of several files (the rules engine's `<state file>.lock`). */
  name?: string;
}

const DEFAULT_REFRESH_MS = 1000;
const DEFAULT_STALE_MS = 5000;

/** The locks this process holds, by lock file: the timer that keeps each fresh, and what it wrote. */
const heldHere = new Map<string, { timer: NodeJS.Timeout; content: string }>();

/** Who `pid` is now (as seen from this PID namespace), or undefined if no such process runs. */
export function identityOf(pid: number): ProcessIdentity | undefined {
  if (!processAlive(pid)) return undefined;
  // Our own entry through /proc/self: in a PID namespace whose /proc is the host's, /proc/<our pid> is another process.
  const proc = pid === process.pid ? '/proc/self' : `/proc/${pid}`;
  return { pid, start: startTimeOf(proc), boot: bootId(), ns: pidNamespaceOf(proc), host: hostname() };
}

/**
 * Takes the lock on `dir` (the LOCK file in it) or throws, naming `what` the directory is, the
 * holder and `hint` (what to do instead). A stale lock is taken over with a warning; deciding
 * that a LOCK from another PID namespace is stale can take up to `staleMs` (it blocks: this
 * runs once, at start).
 */
export function lockDir(dir: string, what: string, hint: string, options: LockOptions = {}): void {
  const refreshMs = options.refreshMs ?? DEFAULT_REFRESH_MS;
  const staleMs = options.staleMs ?? DEFAULT_STALE_MS;
  const file = join(dir, options.name ?? 'LOCK');
  const me = JSON.stringify(identityOf(process.pid) ?? { pid: process.pid, start: null, boot: null, ns: null, host: null });
  for (let attempt = 0; attempt < 3; attempt++) {
    try {
      writeFileSync(file, me, { flag: 'wx' });
      const timer: NodeJS.Timeout = setInterval(() => {
        if (!touch(file, me)) clearInterval(timer);
      }, refreshMs);
      timer.unref();
      heldHere.set(file, { timer, content: me });
      return;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    }
    const seen = readLock(file);
    if (!seen) continue; // removed meanwhile: try again
    const verdict = judge(seen, file, staleMs);
    if (verdict.held) throw new Error(`${what} ${dir} is in use by process ${seen.holder?.pid ?? '?'}${verdict.why ? ` (${verdict.why})` : ''}; ${hint}`);
    if (takeAside(file, seen)) log.warn({ dir, holder: seen.holder, why: verdict.why }, `took over a stale lock on ${what}`);
  }
  throw new Error(`could not lock ${what} ${dir}: another process keeps taking the lock; ${hint}`);
}

/** Releases a lock this process took (`name`: as given to lockDir). */
export function unlockDir(dir: string, name = 'LOCK'): void {
  const file = join(dir, name);
  const held = heldHere.get(file);
  if (!held) return;
  clearInterval(held.timer);
  heldHere.delete(file);
  // Only our own: after a pause long enough for a takeover, the LOCK is another process's.
  if (readLock(file)?.text !== held.content) return;
  try {
    unlinkSync(file);
  } catch {
    // already gone
  }
}

interface SeenLock {
  text: string;
  mtimeMs: number;
  /** The holder it names, or undefined if it names none (garbage: stale). */
  holder: ProcessIdentity | undefined;
}

/** Whether the LOCK's holder still holds it, and why (for the message or the warning). */
function judge(seen: SeenLock, file: string, staleMs: number): { held: boolean; why: string } {
  const holder = seen.holder;
  if (!holder) return { held: false, why: 'it does not name a process' };
  const ours = identityOf(process.pid);
  // Same kernel (boot id) and PID namespace (or an older LOCK, which names neither): the PID can be checked.
  const sameKernel = holder.boot === null || ours?.boot == null || holder.boot === ours.boot;
  if (sameKernel && (holder.ns === null || holder.ns === ours?.ns)) {
    if (holder.pid === process.pid) {
      return heldHere.has(file) ? { held: true, why: 'this process' } : { held: false, why: 'an earlier process with this PID left it' };
    }
    const now = identityOf(holder.pid);
    if (!now) return { held: false, why: 'its process is gone' };
    if (holder.start !== null && now.start !== null && holder.start !== now.start) return { held: false, why: 'its PID now belongs to another process' };
    return { held: true, why: '' };
  }
  // Another PID namespace, or another kernel (a reboot, or another host on a shared volume): only the lease can tell.
  const age = Date.now() - seen.mtimeMs;
  if (age < staleMs) {
    sleepSync(staleMs - age + 50);
    const again = statOrUndefined(file);
    if (!again || again.mtimeMs !== seen.mtimeMs) {
      return { held: true, why: `in another PID namespace${holder.host ? ` on host ${holder.host}` : ''}, and it keeps its lock fresh` };
    }
  }
  return { held: false, why: `from another PID namespace or boot, not refreshed for ${staleMs} ms` };
}

/** Moves the stale LOCK aside if it is still the one judged; true if it was taken. */
function takeAside(file: string, seen: SeenLock): boolean {
  const aside = `${file}.stale-${process.pid}-${randomBytes(4).toString('hex')}`;
  try {
    renameSync(file, aside);
  } catch {
    return false; // someone else moved it: look again
  }
  const taken = readLock(aside);
  if (taken && taken.text === seen.text) {
    unlinkSync(aside);
    return true;
  }
  // We moved a LOCK written after our look (another process took over first): give it back.
  try {
    renameSync(aside, file);
  } catch {
    // nothing to restore to
  }
  return false;
}

function readLock(file: string): SeenLock | undefined {
  let text: string;
  let mtimeMs: number;
  try {
    text = readFileSync(file, 'utf8').trim();
    mtimeMs = statSync(file).mtimeMs;
  } catch {
    return undefined;
  }
  return { text, mtimeMs, holder: parseHolder(text) };
}

/** The holder a LOCK names: the JSON identity, or an older plain PID. */
function parseHolder(text: string): ProcessIdentity | undefined {
  if (/^\d+$/.test(text)) return validPid(Number(text)) ? { pid: Number(text), start: null, boot: null, ns: null, host: null } : undefined;
  try {
    const value = JSON.parse(text) as Record<string, unknown>;
    if (!validPid(value.pid)) return undefined;
    const field = (key: string): string | null => (typeof value[key] === 'string' ? (value[key] as string) : null);
    return { pid: value.pid, start: field('start'), boot: field('boot'), ns: field('ns'), host: field('host') };
  } catch {
    return undefined;
  }
}

/** Keeps our lease fresh; false once the LOCK is no longer ours (taken over after a long pause). */
function touch(file: string, content: string): boolean {
  const now = new Date();
  try {
    if (readFileSync(file, 'utf8').trim() !== content) {
      log.error({ file }, 'another process took this lock over (this one was paused for longer than the lease); stop this process');
      return false;
    }
    utimesSync(file, now, now);
  } catch (err) {
    log.warn({ err: (err as Error).message, file }, 'could not refresh the lock; another process may take it over');
  }
  return true;
}

function statOrUndefined(file: string): { mtimeMs: number } | undefined {
  try {
    return statSync(file);
  } catch {
    return undefined;
  }
}

function sleepSync(ms: number): void {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
}

function validPid(pid: unknown): pid is number {
  return Number.isInteger(pid) && (pid as number) > 0;
}

function startTimeOf(proc: string): string | null {
  try {
    const stat = readFileSync(`${proc}/stat`, 'utf8');
    // comm (field 2) is in parentheses and may contain spaces: split what follows the last ')',
    // which starts at field 3 (state), so field 22 (starttime) is at index 19.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return fields[19] ?? null;
  } catch {
    return null;
  }
}

function pidNamespaceOf(proc: string): string | null {
  try {
    return readlinkSync(`${proc}/ns/pid`);
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

