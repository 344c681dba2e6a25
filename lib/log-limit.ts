// Rate-limited logging for lines an outsider can cause once per message or attempt (refused
// logins, invalid payloads): at most `linesPerInterval` lines per kind per interval, then one
// summary line per interval saying how many were suppressed. Counters are kept elsewhere and
// stay exact; this only bounds the log.
import type { Logger } from './log.js';

export type LimitedLevel = 'debug' | 'info' | 'warn' | 'error';

export interface LogLimitOptions {
  /** Lines written per kind per interval before the rest are only counted. */
  linesPerInterval?: number;
  intervalMs?: number;
  /** The clock (tests pass their own). */
  now?: () => number;
}

export const LOG_LIMIT_DEFAULTS = { linesPerInterval: 10, intervalMs: 10_000 } as const;

interface Window {
  start: number;
  lines: number;
  suppressed: number;
  level: LimitedLevel;
}

export class LogLimiter {
  private readonly windows = new Map<string, Window>();
  private readonly linesPerInterval: number;
  private readonly intervalMs: number;
  private readonly now: () => number;

  constructor(
    private readonly log: Logger,
    options: LogLimitOptions = {},
  ) {
    this.linesPerInterval = options.linesPerInterval ?? LOG_LIMIT_DEFAULTS.linesPerInterval;
    this.intervalMs = options.intervalMs ?? LOG_LIMIT_DEFAULTS.intervalMs;
    this.now = options.now ?? Date.now;
  }

  /**
   * Writes the line unless `kind` (a fixed name, never user input: it keys a map) already used its
   * lines in this interval. `fields` may be a function, called only for a line that is written
   * (a costly snapshot such as a service's counters).
   */
  write(level: LimitedLevel, kind: string, fields: object | (() => object), message: string): void {
    const now = this.now();
    let window = this.windows.get(kind);
    if (window && now - window.start >= this.intervalMs) {
      this.summarize(kind, window);
      window = undefined;
    }
    if (!window) {
      window = { start: now, lines: 0, suppressed: 0, level };
      this.windows.set(kind, window);
    }
    if (window.lines < this.linesPerInterval) {
      window.lines++;
      this.log[level](typeof fields === 'function' ? fields() : fields, message);
    } else {
      window.suppressed++;
    }
  }

  /** Writes the summary of every interval that is over; call it from a timer so a burst's summary does not wait for the next line of its kind. */
  flush(): void {
    const now = this.now();
    for (const [kind, window] of this.windows) {
      if (now - window.start < this.intervalMs) continue;
      this.summarize(kind, window);
      this.windows.delete(kind);
    }
  }

  private summarize(kind: string, window: Window): void {
    if (window.suppressed === 0) return;
    this.log[window.level]({ kind, suppressed: window.suppressed, intervalMs: this.intervalMs }, `suppressed ${window.suppressed} similar messages (${kind}) after ${this.linesPerInterval} in ${this.intervalMs} ms`);
  }
}
