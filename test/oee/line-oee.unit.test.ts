// OEE of a simulated eight-hour shift with known states and counts: availability, performance,
// quality, and downtime attributed to one reason at a time.
import { describe, expect, it } from 'vitest';
import { LineOee, conditionOf } from '../../oee/line-oee.js';
import type { DeviceState } from '../../contracts/schemas.js';

const MIN = 60_000;
const T0 = 1_700_000_000_000;
const at = (minutes: number): number => T0 + minutes * MIN;

/** The shift: st1 and st2 in series; st2's counters are the line's output. */
function shift(oee: LineOee): void {
  const state = (device: string, s: DeviceState, minute: number): void => oee.observeState(device, s, at(minute));
  const counts = (device: string, good: number, scrap: number, minute: number): void => oee.observeTelemetry(device, { goodCount: good, scrapCount: scrap, temperature: 50 }, at(minute));
  counts('st2', 0, 0, 0);
  counts('st1', 1000, 0, 0);
  state('st1', 'RUNNING', 0);
  state('st2', 'RUNNING', 0);
  state('st1', 'FAULT', 60); //        60–90  FAULT (30 min)
  state('st2', 'STARVED', 75); //      75–90  overlaps the fault: still FAULT; 90–95 STARVED (5 min)
  state('st1', 'RUNNING', 90);
  state('st2', 'RUNNING', 95);
  state('st2', 'BLOCKED', 200); //     200–220 BLOCKED (20 min)
  state('st2', 'RUNNING', 220);
  state('st1', 'IDLE', 240); //        240–270 break: both idle, not planned time (30 min)
  state('st2', 'IDLE', 240);
  state('st1', 'RUNNING', 270);
  state('st2', 'RUNNING', 270);
  counts('st2', 400, 20, 300);
  counts('st1', 5000, 3, 300); //      not the count device: ignored
  counts('st2', 50, 0, 350); //        st2 restarted: its counters begin again (+50 good)
  state('st1', 'MAINTENANCE', 400); // 400–415 MAINTENANCE (15 min)
  state('st1', 'RUNNING', 415);
  counts('st2', 200, 10, 480); //      +150 good, +10 scrap
}

describe('LineOee', () => {
  it('computes availability, performance, quality and OEE for a known shift', () => {
    const oee = new LineOee({ idealRatePerMin: 2, countDevice: 'st2' });
    shift(oee);
    const f = oee.figures(at(480));
    expect(f.downtimeMs).toEqual({ FAULT: 30 * MIN, STARVED: 5 * MIN, BLOCKED: 20 * MIN, MAINTENANCE: 15 * MIN });
    expect(f.idleMs).toBe(30 * MIN);
    expect(f.runningMs).toBe(380 * MIN);
    // Never overlapping: every minute of the shift is in exactly one condition.
    const down = Object.values(f.downtimeMs).reduce((a, b) => a + b, 0);
    expect(f.runningMs + f.idleMs + down).toBe(480 * MIN);
    expect(f.goodCount).toBe(600);
    expect(f.scrapCount).toBe(30);
    expect(f.availability).toBeCloseTo(380 / 450, 10);
    expect(f.performance).toBeCloseTo(630 / 2 / 380, 10);
    expect(f.quality).toBeCloseTo(600 / 630, 10);
    expect(f.oee).toBeCloseTo((380 / 450) * (630 / 2 / 380) * (600 / 630), 10);
    expect(f.condition).toBe('running');
  });

  it('counts every device reporting counters when no count device is configured', () => {
    const oee = new LineOee({ idealRatePerMin: 2 });
    shift(oee);
    const f = oee.figures(at(480));
    expect(f.goodCount).toBe(600 + 4000);
    expect(f.scrapCount).toBe(30 + 3);
  });

  it('counts the line controller only, once one reports, and honours other field names', () => {
    const oee = new LineOee({ idealRatePerMin: 1, goodField: 'ok', scrapField: 'nok' });
    oee.observeTelemetry('st-1', { ok: 0 }, at(0));
    oee.observeTelemetry('st-1', { ok: 5 }, at(1));
    expect(oee.figures(at(1)).goodCount).toBe(5);
    oee.observeTelemetry('line-ctl', { ok: 100, nok: 1 }, at(2), 'line-controller');
    oee.observeTelemetry('st-1', { ok: 50 }, at(3));
    oee.observeTelemetry('line-ctl', { ok: 103, nok: 2 }, at(3), 'line-controller');
    expect(oee.figures(at(3))).toMatchObject({ goodCount: 3, scrapCount: 1 });
  });

  it('accrues the open interval up to now, and accounts late events at the latest time seen', () => {
    const oee = new LineOee({ idealRatePerMin: 1 });
    oee.observeState('a', 'RUNNING', at(0));
    oee.observeState('a', 'FAULT', at(10));
    expect(oee.figures(at(25)).downtimeMs.FAULT).toBe(15 * MIN);
    oee.observeState('b', 'RUNNING', at(5)); // arrives late: changes nothing before minute 10
    const f = oee.figures(at(30));
    expect(f.runningMs).toBe(10 * MIN);
    expect(f.downtimeMs.FAULT).toBe(20 * MIN);
  });

  it('releases a device that went offline', () => {
    const oee = new LineOee({ idealRatePerMin: 1 });
    oee.observeState('a', 'RUNNING', at(0));
    oee.observeState('b', 'BLOCKED', at(0));
    oee.forget('b', at(10));
    const f = oee.figures(at(20));
    expect(f.downtimeMs.BLOCKED).toBe(10 * MIN);
    expect(f.runningMs).toBe(10 * MIN);
  });

  it('has no figures before anything ran or was counted', () => {
    const f = new LineOee({ idealRatePerMin: 1 }).figures(at(0));
    expect(f).toMatchObject({ availability: undefined, performance: undefined, quality: undefined, oee: undefined, goodCount: 0 });
  });

  it('attributes downtime by priority FAULT > MAINTENANCE > BLOCKED > STARVED', () => {
    expect(conditionOf(['STARVED', 'BLOCKED', 'RUNNING'])).toBe('BLOCKED');
    expect(conditionOf(['STARVED', 'MAINTENANCE', 'FAULT'])).toBe('FAULT');
    expect(conditionOf(['IDLE', 'STOPPED'])).toBe('idle');
    expect(conditionOf(['IDLE', 'RUNNING'])).toBe('running');
  });
});
