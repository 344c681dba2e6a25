// Per-line event time: the timebase the rules engine stamps what it says about a line in (alerts,
// alarm transitions, commands, their outcomes) and the dashboard judges them in, so that they sit
// among the device events they answer (docs/rules.md#which-time).
//
// A line's devices stamp their messages with their own clock (`ts`), which need not be the host's:
// a simulated line at `--speedup 10` runs ten times faster, a device may be set to another year.
// The consumer's own clock (engine time: the wall clock, or a ManualClock) only measures how long
// it has been since it heard something. So "now" on a line is
//   the newest device `ts` seen on that line + the engine time elapsed since it was seen,
// never going backwards: a newer `ts` that is still behind that value (a device whose clock lags
// another's, or a message that took longer in transit) does not move it, and an engine clock
// stepping back only holds it. A line no device event was seen on (yet: the engine just started)
// is at engine time; its first device event takes over from there (what was given before stays
// the floor, so a device a little behind the host holds the line's time until it catches up).
// Nothing here bounds a device far ahead: what feeds it is the caller's decision (the rules engine
// feeds it only the state and telemetry it takes in and does not find late, so its future-timestamp
// guard, rules.maxClockSkewMs, is the bound). Pure: engine time is passed in.

interface LineTime {
  /** The device `ts` the line's time last moved to, and the engine time it did (engine time itself before `heard`). */
  ts: number;
  at: number;
  /** A device event of the line was observed. */
  heard: boolean;
  /** The last time given for the line, so it never goes backwards. */
  last: number;
}

/** Lines an EventClock keeps by default: beyond them a line is at engine time (a stranger naming new lines cannot grow it). */
export const EVENT_CLOCK_MAX_LINES = 10_000;

export class EventClock {
  private readonly lines = new Map<string, LineTime>();
  /** Device events of lines beyond maxLines, not kept (such a line stays at engine time). */
  overflow = 0;

  constructor(private readonly maxLines = EVENT_CLOCK_MAX_LINES) {}

  /** A device event of `line` at device time `ts`, heard at engine time `engineNow`. */
  observe(line: string, ts: number, engineNow: number): void {
    const time = this.lines.get(line);
    if (!time) {
      if (this.lines.size >= this.maxLines) {
        this.overflow++;
        return;
      }
      this.lines.set(line, { ts, at: engineNow, heard: true, last: Number.NEGATIVE_INFINITY });
      return;
    }
    // The first one replaces the engine time the line was at (what was given stays the floor).
    if (time.heard && ts <= reckon(time, engineNow)) return;
    time.ts = ts;
    time.at = engineNow;
    time.heard = true;
  }

  /** Now on `line`, in its devices' time: engine time until a device event of it was observed. */
  now(line: string, engineNow: number): number {
    let time = this.lines.get(line);
    if (!time) {
      if (this.lines.size >= this.maxLines) return engineNow;
      time = { ts: engineNow, at: engineNow, heard: false, last: Number.NEGATIVE_INFINITY };
      this.lines.set(line, time);
    }
    time.last = reckon(time, engineNow);
    return time.last;
  }
}

function reckon(time: LineTime, engineNow: number): number {
  return Math.max(time.last, time.ts + Math.max(0, engineNow - time.at));
}
