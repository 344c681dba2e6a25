// The engine's sense of "now" and its timers, behind an interface so tests and `rules test`
// drive time by hand (ManualClock) instead of waiting for it.

export interface Clock {
  now(): number;
  /** Calls `fn` after `ms`; returns a function that cancels it. */
  after(ms: number, fn: () => void): () => void;
}

export const systemClock: Clock = {
  now: () => Date.now(),
  after(ms, fn) {
    const t = setTimeout(fn, ms);
    return () => clearTimeout(t);
  },
};

interface Timer {
  at: number;
  seq: number;
  fn: () => void;
}

/** Time that moves only when told to; timers run in time order during `advance`. */
export class ManualClock implements Clock {
  private timers: Timer[] = [];
  private seq = 0;

  constructor(private current = 0) {}

  now(): number {
    return this.current;
  }

  after(ms: number, fn: () => void): () => void {
    const timer: Timer = { at: this.current + Math.max(0, ms), seq: this.seq++, fn };
    this.timers.push(timer);
    return () => {
      this.timers = this.timers.filter((t) => t !== timer);
    };
  }

  /** Moves time forward by `ms`, running every timer that falls due (in order), letting promises settle between them. */
  async advance(ms: number): Promise<void> {
    const end = this.current + ms;
    while (this.runNext(end)) await settle();
    this.current = end;
    await settle();
  }

  /**
   * Runs the first timer due at or before `until` (moving time to it), without letting promises
   * settle; false when none is due. For a caller that runs the engine synchronously (a backtest's
   * replay: workbench/backtest/replay.ts) and does between timers what it needs itself.
   */
  runNext(until: number): boolean {
    let due: Timer | undefined;
    for (const timer of this.timers) if (timer.at <= until && (!due || timer.at < due.at || (timer.at === due.at && timer.seq < due.seq))) due = timer;
    if (!due) return false;
    this.timers = this.timers.filter((t) => t !== due);
    this.current = Math.max(this.current, due.at);
    due.fn();
    return true;
  }

  /** Sets the time (forward only) without running timers; for tests that jump. */
  set(ms: number): void {
    this.current = Math.max(this.current, ms);
  }
}

/** Lets pending promise callbacks (and one turn of I/O) run. */
export function settle(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}
