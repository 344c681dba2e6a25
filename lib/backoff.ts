// Retry delays, one way for every retry loop (the historian's writes, the gateway's serial and
// Modbus ports): exponential from initialMs, doubling per attempt, capped at maxMs, optionally with
// "equal jitter" (half of the step fixed, half random, so many clients retrying at once spread out).

export type Jitter = 'none' | 'equal';

export interface BackoffOptions {
  initialMs: number;
  maxMs: number;
  /** Default 'none': the delays are exactly initialMs, 2×, 4× … maxMs. */
  jitter?: Jitter;
  /** A number in [0, 1); Math.random unless given (a test can make the jitter exact). */
  random?: () => number;
}

/** The delay before retry number `attempt` (0 for the first retry). */
export function backoffDelay(attempt: number, options: BackoffOptions): number {
  const { initialMs, maxMs, jitter = 'none', random = Math.random } = options;
  const ceiling = Math.min(maxMs, initialMs * 2 ** Math.min(Math.max(attempt, 0), 30));
  return jitter === 'equal' ? ceiling / 2 + random() * (ceiling / 2) : ceiling;
}

/** The delays of one retry loop: next() after each failure, reset() after a success. */
export class Backoff {
  private attempt = 0;

  constructor(private readonly options: BackoffOptions) {}

  /** Failures since the last reset(). */
  get attempts(): number {
    return this.attempt;
  }

  /** The delay before the next try, counting this failure. */
  next(): number {
    return backoffDelay(this.attempt++, this.options);
  }

  /** Back to initialMs (the last try succeeded). */
  reset(): void {
    this.attempt = 0;
  }
}
