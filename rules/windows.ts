// A rule's window over one device's readings (docs/rules.md#windows): the last `count` values
// and/or the values of the last `timeMs` of event time, in event-time order, and their aggregates.
// Pure: the engine keeps one window per rule instance and stores it in the state file.

/**
 * The values in event-time order. The field names are those of the state file
 * (rules-state.json), which keeps windows across restarts: `ts` the event times, `v` the values.
 */
export interface Window {
  ts: number[];
  v: number[];
}

export interface WindowLimits {
  /** Event time the window spans, back from its newest value. */
  timeMs?: number;
  /** How many values it keeps. */
  count?: number;
}

/** The aggregates a window rule's scope reads. */
export interface WindowAggregates {
  avg: number | undefined;
  min: number | undefined;
  max: number | undefined;
  count: number;
  delta: number | undefined;
  /** delta per second of event time. */
  rate: number | undefined;
}

/** Adds a value at its event time (a late one is inserted where it belongs), then trims to the limits. */
export function addToWindow(window: Window, limits: WindowLimits, ts: number, value: number): void {
  let position = window.ts.length;
  while (position > 0 && window.ts[position - 1]! > ts) position--;
  window.ts.splice(position, 0, ts);
  window.v.splice(position, 0, value);
  const { timeMs, count } = limits;
  if (count !== undefined && window.ts.length > count) dropOldest(window, window.ts.length - count);
  if (timeMs !== undefined) {
    const newest = window.ts[window.ts.length - 1]!;
    let tooOld = 0;
    while (tooOld < window.ts.length && window.ts[tooOld]! < newest - timeMs) tooOld++;
    if (tooOld > 0) dropOldest(window, tooOld);
  }
}

function dropOldest(window: Window, howMany: number): void {
  window.ts.splice(0, howMany);
  window.v.splice(0, howMany);
}

const EMPTY: WindowAggregates = { avg: undefined, min: undefined, max: undefined, count: 0, delta: undefined, rate: undefined };

/** avg, min, max, count, delta and rate of the window (count 0 and the rest undefined when empty or absent). */
export function aggregate(window: Window | undefined): WindowAggregates {
  if (!window || window.v.length === 0) return EMPTY;
  let sum = 0;
  let min = Infinity;
  let max = -Infinity;
  for (const value of window.v) {
    sum += value;
    if (value < min) min = value;
    if (value > max) max = value;
  }
  const count = window.v.length;
  const delta = window.v[count - 1]! - window.v[0]!;
  const spanSeconds = (window.ts[count - 1]! - window.ts[0]!) / 1000;
  return { avg: sum / count, min, max, count, delta, rate: spanSeconds > 0 ? delta / spanSeconds : 0 };
}

/** Writes the window's aggregates into a rule's scope. */
export function aggregateInto(window: Window | undefined, scope: Record<string, unknown>): void {
  const aggregates = aggregate(window);
  scope.avg = aggregates.avg;
  scope.min = aggregates.min;
  scope.max = aggregates.max;
  scope.count = aggregates.count;
  scope.delta = aggregates.delta;
  scope.rate = aggregates.rate;
}
