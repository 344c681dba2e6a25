// Backoff on failed logins, per key (the broker keeps one tracker for remote addresses and one
// for usernames): after `freeFailures` failures in a row, further attempts are refused for a
// window of `initialMs`, doubling with each further failure up to `maxMs`. Refused attempts
// cost no scrypt and do not extend the window. A success forgets the key. Memory is bounded:
// at most `maxTracked` keys (the least recently failed are forgotten first), and a key with no
// failure for `maxMs` (so no longer refused: no window is longer) is forgotten at the next failure
// of any key.

export interface LoginBackoffOptions {
  freeFailures: number;
  initialMs: number;
  maxMs: number;
  maxTracked: number;
  /** The clock (tests pass their own). */
  now?: () => number;
}

interface Entry {
  failures: number;
  lastFailure: number;
  blockedUntil: number;
}

export class LoginBackoff {
  /** In order of the last failure, oldest first (a Map keeps insertion order; updates re-insert). */
  private readonly entries = new Map<string, Entry>();
  private readonly now: () => number;

  constructor(private readonly options: LoginBackoffOptions) {
    this.now = options.now ?? Date.now;
  }

  /** Keys tracked now. */
  get size(): number {
    return this.entries.size;
  }

  /** How long attempts for `key` are still refused, in ms (0: go ahead). */
  blockedForMs(key: string): number {
    const entry = this.entries.get(key);
    return entry ? Math.max(0, entry.blockedUntil - this.now()) : 0;
  }

  failure(key: string): void {
    const now = this.now();
    const entry = this.entries.get(key) ?? { failures: 0, lastFailure: now, blockedUntil: now };
    this.entries.delete(key);
    entry.failures++;
    entry.lastFailure = now;
    const over = entry.failures - this.options.freeFailures;
    if (over >= 0) entry.blockedUntil = now + Math.min(this.options.maxMs, this.options.initialMs * 2 ** Math.min(over, 30));
    this.entries.set(key, entry);
    this.sweep(now);
  }

  success(key: string): void {
    this.entries.delete(key);
  }

  private sweep(now: number): void {
    for (const [key, entry] of this.entries) {
      const quiet = now - entry.lastFailure >= this.options.maxMs;
      if (this.entries.size <= this.options.maxTracked && !quiet) break; // the rest failed more recently
      this.entries.delete(key);
    }
  }
}
