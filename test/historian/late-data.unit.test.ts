// Which buckets of "1m"/"1h" a write makes late, and the re-aggregation statements for them.
import { describe, expect, it } from 'vitest';
import { downsamples } from '../../historian/influx.js';
import { LATE_MARGIN_MS, LateBuckets, REAGGREGATE_AFTER_MS, lineTimeMs, measurementOf } from '../../historian/late-data.js';

const MINUTE = 60_000;
const HOUR = 3_600_000;
/** A time on an hour boundary. */
const T = Math.floor(1_796_200_000_000 / HOUR) * HOUR;
const line = (measurement: string, ms: number, disambiguator = 42): string => `${measurement},line=A,device=d1 v=1,seq=3i ${ms}${String(disambiguator).padStart(6, '0')}`;

describe('late data', () => {
  it('reads a line\'s time (precision n) and measurement exactly', () => {
    expect(lineTimeMs(line('telemetry', T + 59_999, 999_999))).toBe(T + 59_999);
    expect(lineTimeMs('m v=1')).toBeUndefined();
    expect(measurementOf('tele\\ metry,line=A v=1 1')).toBe('tele\\ metry');
    expect(measurementOf(line('state', T))).toBe('state');
  });

  it('marks only buckets whose continuous query has run, and merges them into ranges per series', () => {
    const late = new LateBuckets(downsamples('db', 'raw'));
    const now = T + 2 * HOUR + 30 * MINUTE + 30_000;
    const lines = [
      line('telemetry', T + 5 * MINUTE + 1), // minute 5 of hour 0
      line('telemetry', T + 6 * MINUTE + 59_000), // minute 6: contiguous with 5
      line('telemetry', T + 9 * MINUTE), // minute 9: a range of its own
      line('state', T + HOUR + 1), // hour 1
      line('alarms', T + 1), // no continuous query: not tracked
      line('telemetry', now - 1000), // the current minute and hour: their queries will see it
    ];
    late.wrote(lines, 0, lines.length, now);
    expect(late.pending).toBe(3 + 1 + 2); // telemetry: 3 minutes and 1 hour; state: 1 minute and 1 hour
    expect(late.due(now)).toBe(false);
    expect(late.due(now + REAGGREGATE_AFTER_MS)).toBe(true);
    const ranges = late.take().map((r) => ({ name: r.series.name, from: r.fromMs - T, to: r.toMs - T }));
    expect(ranges).toEqual([
      { name: 'lw_telemetry_1m', from: 5 * MINUTE, to: 7 * MINUTE },
      { name: 'lw_telemetry_1m', from: 9 * MINUTE, to: 10 * MINUTE },
      { name: 'lw_telemetry_1h', from: 0, to: HOUR },
      { name: 'lw_state_1m', from: HOUR, to: HOUR + MINUTE },
      { name: 'lw_state_1h', from: HOUR, to: 2 * HOUR },
    ]);
    expect(late.pending).toBe(0);
  });

  it('counts a point whose bucket ends within the margin after its write as late (its query may run before the point is stored)', () => {
    const late = new LateBuckets(downsamples('db', 'raw'));
    late.wrote([line('telemetry', T)], 0, 1, T + MINUTE - LATE_MARGIN_MS - 1);
    expect(late.pending).toBe(0);
    late.wrote([line('telemetry', T)], 0, 1, T + MINUTE - LATE_MARGIN_MS);
    expect(late.pending).toBe(1);
  });

  it('re-aggregates with the continuous query\'s own SELECT, restricted to the range', () => {
    const [telemetry1m] = downsamples('linewatch', 'raw');
    expect(telemetry1m?.statement()).toBe('SELECT mean(*), min(*), max(*) INTO "linewatch"."1m"."telemetry" FROM "linewatch"."raw"."telemetry" GROUP BY time(1m), *');
    expect(telemetry1m?.statement({ fromMs: T, toMs: T + 2 * MINUTE })).toBe(
      `SELECT mean(*), min(*), max(*) INTO "linewatch"."1m"."telemetry" FROM "linewatch"."raw"."telemetry" WHERE time >= '${new Date(T).toISOString()}' AND time < '${new Date(T + 2 * MINUTE).toISOString()}' GROUP BY time(1m), *`,
    );
  });

  it('gives back what failed, due again later', () => {
    const late = new LateBuckets(downsamples('db', 'raw'));
    late.wrote([line('commands', T)], 0, 1, T + 3 * HOUR);
    const ranges = late.take();
    late.give(ranges, T + 3 * HOUR);
    expect(late.pending).toBe(2);
    expect(late.due(T + 3 * HOUR)).toBe(false);
    late.hurry();
    expect(late.due(T + 3 * HOUR)).toBe(true);
  });
});
