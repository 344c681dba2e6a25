// Late data in the downsampled series. The continuous queries (historian/influx.ts) compute each
// "1m" / "1h" bucket once, just after it ends, from what raw holds then; a point written after
// that (a spool replayed after an outage, a backfill, a point near a bucket's end that reached
// InfluxDB after the query ran) would never reach "1m" or "1h". So the writer tells this tracker
// what it wrote; the buckets it finds already computed are re-aggregated with the very SELECT …
// INTO of their continuous query, restricted to those buckets (rewriting a bucket overwrites its
// point: the same series, the same time). Re-aggregation is deferred (REAGGREGATE_AFTER_MS) so a
// replay that touches one bucket in many batches re-aggregates it about once.
import type { Downsample } from './influx.js';

/**
 * A point is late when its bucket ends before the write returned, plus this margin: the continuous
 * query runs at or after the bucket's end (influxd checks every second), so a point stored before
 * then is in its result, and one stored after may not be. The margin covers a clock difference
 * between the historian and InfluxDB; a bucket re-aggregated needlessly costs one query, nothing else.
 */
export const LATE_MARGIN_MS = 2000;
/** How long touched buckets gather before they are re-aggregated (flush() and stop() do it at once). */
export const REAGGREGATE_AFTER_MS = 10_000;
/** Statements per /query request. */
export const STATEMENTS_PER_REQUEST = 50;

/** The time of a line of line protocol written with precision n, in ms (undefined if it has none). */
export function lineTimeMs(line: string): number | undefined {
  const space = line.lastIndexOf(' ');
  if (space < 0) return undefined;
  const ns = line.slice(space + 1);
  if (!/^\d{1,19}$/.test(ns)) return undefined;
  return ns.length > 6 ? Number(ns.slice(0, -6)) : 0;
}

/** A contiguous run of buckets of one downsampled series: [fromMs, toMs). */
export interface BucketRange {
  series: Downsample;
  fromMs: number;
  toMs: number;
}

export class LateBuckets {
  /** Per downsampled series (by name): the start of each touched bucket. */
  private readonly touched = new Map<string, Set<number>>();
  private readonly byMeasurement = new Map<string, Downsample[]>();
  private since: number | undefined;
  private dueNow = false;

  constructor(series: readonly Downsample[]) {
    for (const s of series) {
      const list = this.byMeasurement.get(s.measurement) ?? [];
      list.push(s);
      this.byMeasurement.set(s.measurement, list);
    }
  }

  /** Records lines[from, to) that InfluxDB stored when `writtenAt` (ms, the historian's clock) came. */
  wrote(lines: readonly string[], from: number, to: number, writtenAt: number): void {
    for (let index = from; index < to; index++) {
      const line = lines[index]!;
      const series = this.byMeasurement.get(measurementOf(line));
      if (!series) continue;
      const time = lineTimeMs(line);
      if (time === undefined) continue;
      for (const s of series) {
        const bucket = Math.floor(time / s.everyMs) * s.everyMs;
        if (bucket + s.everyMs > writtenAt + LATE_MARGIN_MS) continue; // its continuous query has not run yet: it will see the point
        let set = this.touched.get(s.name);
        if (!set) this.touched.set(s.name, (set = new Set()));
        if (set.size === 0 && this.since === undefined) this.since = writtenAt;
        set.add(bucket);
      }
    }
  }

  /** Touched buckets wait for re-aggregation. */
  get pending(): number {
    let n = 0;
    for (const set of this.touched.values()) n += set.size;
    return n;
  }

  /** True when the buckets gathered so far should be re-aggregated now. */
  due(now: number): boolean {
    if (this.since === undefined) return false;
    return this.dueNow || now - this.since >= REAGGREGATE_AFTER_MS;
  }

  /** Make what is gathered due now (flush, stop). */
  hurry(): void {
    this.dueNow = true;
  }

  /** Takes what is gathered, as contiguous ranges per series; give() it back if re-aggregating fails. */
  take(): BucketRange[] {
    const ranges: BucketRange[] = [];
    for (const series of [...this.byMeasurement.values()].flat()) {
      const set = this.touched.get(series.name);
      if (!set || set.size === 0) continue;
      const starts = [...set].sort((a, b) => a - b);
      let range: BucketRange = { series, fromMs: starts[0]!, toMs: starts[0]! + series.everyMs };
      for (const start of starts.slice(1)) {
        if (start === range.toMs) range.toMs += series.everyMs;
        else {
          ranges.push(range);
          range = { series, fromMs: start, toMs: start + series.everyMs };
        }
      }
      ranges.push(range);
    }
    this.touched.clear();
    this.since = undefined;
    this.dueNow = false;
    return ranges;
  }

  /** Puts ranges back (re-aggregating them failed): they are due again after REAGGREGATE_AFTER_MS. */
  give(ranges: readonly BucketRange[], now: number): void {
    for (const range of ranges) {
      let set = this.touched.get(range.series.name);
      if (!set) this.touched.set(range.series.name, (set = new Set()));
      for (let start = range.fromMs; start < range.toMs; start += range.series.everyMs) set.add(start);
    }
    if (ranges.length > 0) this.since ??= now;
  }
}

/** The measurement of a line of line protocol: up to the first unescaped `,` or space. */
export function measurementOf(line: string): string {
  for (let index = 0; index < line.length; index++) {
    const char = line[index];
    if (char === '\\') index++;
    else if (char === ',' || char === ' ') return line.slice(0, index);
  }
  return line;
}

/** The number of buckets in a range. */
export function bucketsIn(range: BucketRange): number {
  return (range.toMs - range.fromMs) / range.series.everyMs;
}
