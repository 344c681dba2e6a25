// Backoff on failed logins for one kind of key (broker/login-guard.ts keeps three: per address
// and username, per account, per address): after `freeFailures` failures in a row, further
// attempts are refused for a window of `initialMs`, doubling with each further failure up to
// `maxMs`. Refused attempts cost no password check and do not extend the window.
//
// Checks still running count up front: an attempt is admitted only if it would still be a free
// one should every check in flight fail (after a window: only one at a time), so N CONNECTs
// sent at once run no more checks than N sent one after the other.
//
// Memory is bounded: at most `maxTracked` keys. A key with no activity for `maxMs` (so no longer
// refused: no window is longer) is forgotten at the next update of any key; beyond `maxTracked`
// the least recently active keys that are not refusing are forgotten first, refusing ones only
// when nothing else is left (so a flood of new keys cannot flush a blocked one cheaply).

export interface LoginBackoffOptions {
  freeFailures: number;
  initialMs: number;
  maxMs: number;
  maxTracked: number;
  /**
   * Whether checks still in flight count towards `freeFailures` before they fail (default true):
   * a burst of parallel guesses on one key then runs no more checks than one-by-one guesses.
   * Off for the per-address ceiling, so many honest accounts behind one address can log in at once.
   */
  countInFlight?: boolean;
  /** The clock (tests pass their own). */
  now?: () => number;
}

interface Entry {
  failures: number;
  /** Checks admitted and not finished yet. */
  inFlight: number;
  lastActivity: number;
  blockedUntil: number;
}

export class LoginBackoff {
  /** In order of the last activity, oldest first (a Map keeps insertion order; updates re-insert). */
  private readonly entries = new Map<string, Entry>();
  private readonly now: () => number;

  constructor(private readonly options: LoginBackoffOptions) {
    this.now = options.now ?? Date.now;
  }

  /** Keys tracked now. */
  get size(): number {
    return this.entries.size;
  }

  /** How long attempts for `key` are still refused because of its failures, in ms (0: not in a window). */
  blockedForMs(key: string): number {
    const entry = this.entries.get(key);
    return entry ? Math.max(0, entry.blockedUntil - this.now()) : 0;
  }

  /** Whether an attempt for `key` may run its check now (then call begin, and one of failure, success, abandon). */
  admits(key: string): boolean {
    const entry = this.entries.get(key);
    if (!entry) return true;
    if (entry.blockedUntil > this.now()) return false;
    if (this.options.countInFlight === false) return true;
    return entry.inFlight === 0 || entry.failures + entry.inFlight < this.options.freeFailures;
  }

  /** An admitted attempt's check starts. */
  begin(key: string): void {
    const entry = this.touch(key);
    entry.inFlight++;
  }

  /** A check failed (wrong password or unknown user). */
  failure(key: string): void {
    const entry = this.touch(key);
    const now = entry.lastActivity;
    entry.inFlight = Math.max(0, entry.inFlight - 1);
    entry.failures++;
    const over = entry.failures - this.options.freeFailures;
    if (over >= 0) entry.blockedUntil = now + Math.min(this.options.maxMs, this.options.initialMs * 2 ** Math.min(over, 30));
  }

  /** A check passed: the key's failures are forgotten. */
  success(key: string): void {
    const entry = this.entries.get(key);
    if (!entry) return;
    entry.inFlight = Math.max(0, entry.inFlight - 1);
    entry.failures = 0;
    entry.blockedUntil = 0;
    if (entry.inFlight === 0) this.entries.delete(key);
  }

  /** A check ended without telling anything about this key (it passed, but this key is not cleared by a success). */
  abandon(key: string): void {
    const entry = this.entries.get(key);
    if (!entry) return;
    entry.inFlight = Math.max(0, entry.inFlight - 1);
    if (entry.inFlight === 0 && entry.failures === 0) this.entries.delete(key);
  }

  /** The entry of `key`, moved to the newest end, after forgetting what is quiet or over the bound. */
  private touch(key: string): Entry {
    const now = this.now();
    const entry = this.entries.get(key) ?? { failures: 0, inFlight: 0, lastActivity: now, blockedUntil: 0 };
    this.entries.delete(key);
    entry.lastActivity = now;
    this.sweep(now);
    this.entries.set(key, entry);
    return entry;
  }

  /** Makes room for one more key. */
  private sweep(now: number): void {
    const room = this.options.maxTracked - 1;
    for (const [key, entry] of this.entries) {
      if (now - entry.lastActivity < this.options.maxMs) break; // the rest were active more recently
      if (entry.inFlight === 0) this.entries.delete(key);
    }
    if (this.entries.size <= room) return;
    // First those not refusing and with no check running, then those with no check running, then any: oldest first.
    const passes: ((entry: Entry) => boolean)[] = [(entry) => entry.blockedUntil <= now && entry.inFlight === 0, (entry) => entry.inFlight === 0, () => true];
    for (const evictable of passes) {
      for (const [key, entry] of this.entries) {
        if (this.entries.size <= room) return;
        if (evictable(entry)) this.entries.delete(key);
      }
    }
  }
}
