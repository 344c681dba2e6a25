// DataQuality's bounds and bookkeeping, pure: late and future timestamps just inside and just past
// their bounds, the interval deltas taken and given back, and the devices beyond maxDevices
// counted together under `*` with a call per message for the caller's bounded log.
import { describe, expect, it } from 'vitest';
import { DataQuality, OVERFLOW, zeroCounts } from '../../historian/data-quality.js';

const NOW = 1_767_000_000_000;

function quality(maxDevices = 10, overflowed: string[] = []): DataQuality {
  return new DataQuality({ lateAfterMs: 1000, futureAheadMs: 500, maxDevices, now: () => NOW, onOverflow: (line, device) => overflowed.push(`${line}/${device}`) });
}

describe('DataQuality', () => {
  it('counts a ts late only past lateAfterMs behind the device\'s newest, and future only past futureAheadMs ahead of the clock', () => {
    const q = quality();
    q.record('A', 'd1', NOW - 5000, 0);
    q.record('A', 'd1', NOW - 5000 - 1000, 1); // exactly the bound behind: not late
    q.record('A', 'd1', NOW - 5000 - 1001, 2); // past it
    q.record('A', 'd1', NOW + 500, 3); // exactly the bound ahead: not future
    q.record('A', 'd1', NOW + 501, 4);
    q.record('A', 'd2', NOW - 99_999, undefined); // another device: its own newest; no seq, no sequence counts
    expect(q.get('A', 'd1')?.totals).toMatchObject({ messages: 5, late_ts: 1, future_ts: 1 });
    expect(q.get('A', 'd2')?.totals).toEqual({ ...zeroCounts(), messages: 1 });
  });

  it('takes each interval\'s deltas once, and has the ones given back again at the next take', () => {
    const q = quality();
    for (const seq of [0, 1, 3]) q.record('A', 'd1', NOW + seq, seq);
    const first = q.take();
    expect(first.map((d) => [d.device, d.delta.messages, d.delta.gaps, d.delta.skipped])).toEqual([['d1', 3, 1, 1]]);
    expect(q.take()).toEqual([]); // nothing since: no point
    q.record('A', 'd1', NOW + 2, 2); // the skipped one, late
    q.giveBack(first); // the spool could not take the first interval's point
    const second = q.take();
    expect(second[0]?.delta).toEqual({ ...zeroCounts(), messages: 4, gaps: 1, skipped: 1, reorders: 1 });
    expect(second[0]?.totals).toEqual(second[0]?.delta);
  });

  it('counts the devices beyond maxDevices together under * and calls onOverflow for each of their messages', () => {
    const overflowed: string[] = [];
    const q = quality(2, overflowed);
    q.record('A', 'd1', NOW, 0);
    q.record('B', 'd1', NOW, 0);
    q.record('A', 'd3', NOW, 0);
    q.record('C', 'd4', NOW, 0);
    q.record('C', 'd4', NOW + 1, 2);
    expect(q.deviceCount).toBe(2);
    expect(q.overflowMessages).toBe(3);
    expect(overflowed).toEqual(['A/d3', 'C/d4', 'C/d4']);
    expect(q.get(OVERFLOW, OVERFLOW)?.totals).toEqual({ ...zeroCounts(), messages: 3, gaps: 1, skipped: 1 });
    expect(q.get('A', 'd3')).toBeUndefined();
    // The sequence check still covers every device: d4's gap is in the service-wide counters.
    expect(q.sequences.counters).toMatchObject({ gaps: 1, skipped: 1 });
  });
});
