// OEE within each hour and shift, from a known shift: the worked example of docs/oee.md computed
// and checked number by number; stops as downtime rows; a restart from a snapshot changes nothing.
import { describe, expect, it } from 'vitest';
import { ShiftCalendar } from '../../oee/calendar.js';
import { calendarSchema } from '../../oee/config.js';
import { LineFigures, lineCondition } from '../../oee/line-figures.js';
import type { DowntimePayload } from '../../contracts/schemas.js';
import { at, EXAMPLE_CONFIG, EXAMPLE_EVENTS, EXPECTED, MIN, RESTART_AFTER, type ExampleEvent } from './worked-example.js';

const HOUR = 60 * MIN;
const calendar = new ShiftCalendar(calendarSchema.parse(EXAMPLE_CONFIG.calendar));
const newFigures = (): LineFigures => new LineFigures({ calendar, idealRatePerMin: EXAMPLE_CONFIG.idealRatePerMin, microStopMs: EXAMPLE_CONFIG.microStopMs });

function replay(figures: LineFigures, events: readonly ExampleEvent[]): void {
  for (const event of events) {
    if (event.kind === 'state') figures.observeState('st-1', event.state, event.ts, { type: 'station', ...(event.reason ? { reason: event.reason } : {}) });
    else figures.observeTelemetry('st-1', { goodCount: event.good, scrapCount: event.scrap }, event.ts, 'station');
  }
}

const shift = { kind: 'shift' as const, shift: 'early', start: at('06:00:00'), end: at('14:00:00') };
const hour = (hh: string) => ({ kind: 'hour' as const, start: at(`${hh}:00:00`), end: at(`${hh}:00:00`) + HOUR });

function expectFigures(actual: Record<string, unknown> | undefined, expected: Record<string, unknown>): void {
  for (const [key, value] of Object.entries(expected)) {
    if (typeof value === 'number' && !Number.isInteger(value)) expect(actual?.[key], key).toBeCloseTo(value, 12);
    else expect(actual?.[key], key).toEqual(value);
  }
}

describe('LineFigures: the worked example of docs/oee.md', () => {
  it('gives the shift its availability, performance and quality from what happened within it', () => {
    const figures = newFigures();
    replay(figures, EXAMPLE_EVENTS);
    const line = figures.figures(shift);
    expectFigures(line, { ...EXPECTED.shift, complete: true });
    // Every ms of the shift is in exactly one bucket.
    const down = Object.values(line?.downMs ?? {}).reduce((sum, ms) => sum + ms, 0);
    expect((line?.runMs ?? 0) + (line?.microStopMs ?? 0) + down + (line?.plannedStopMs ?? 0) + (line?.unknownMs ?? 0)).toBe(8 * HOUR);
    // OEE is good parts at the ideal rate over planned production time.
    expect(line?.oee).toBeCloseTo((351 * MIN) / EXPECTED.shift.plannedMs, 12);
    // The station's own figures are the line's here (it alone makes the line).
    expectFigures(figures.figures(shift, 'st-1'), EXPECTED.shift);
  });

  it('gives each hour the figures of that hour, not a running mean', () => {
    const figures = newFigures();
    replay(figures, EXAMPLE_EVENTS);
    expectFigures(figures.figures(hour('07')), EXPECTED.hour07);
    expectFigures(figures.figures(hour('10')), EXPECTED.hour10);
    // The hours add up to the shift.
    let planned = 0;
    let good = 0;
    for (const hh of ['06', '07', '08', '09', '10', '11', '12', '13']) {
      const f = figures.figures(hour(hh));
      planned += f?.plannedMs ?? 0;
      good += f?.goodCount ?? 0;
    }
    expect([planned, good]).toEqual([EXPECTED.shift.plannedMs, EXPECTED.shift.goodCount]);
  });

  it('publishes each period that changed, with the current ones, for the line and the station', () => {
    const figures = newFigures();
    replay(figures, EXAMPLE_EVENTS);
    const rows = figures.periodsToPublish();
    const keys = rows.map((row) => `${row.scope}:${row.device ?? ''}:${row.figures.period}:${new Date(row.figures.start).toISOString().slice(11, 16)}`);
    for (const scope of ['line:', 'station:st-1']) {
      expect(keys).toContain(`${scope}:shift:06:00`);
      expect(keys).toContain(`${scope}:day:00:00`);
      for (const hh of ['06', '07', '08', '09', '10', '11', '12', '13', '14']) expect(keys).toContain(`${scope}:hour:${hh}:00`);
    }
    // The next round has nothing new: only the periods that hold device time now (14:00).
    const again = figures.periodsToPublish().map((row) => `${row.scope}:${row.figures.period}:${new Date(row.figures.start).toISOString().slice(11, 16)}`);
    expect(again.sort()).toEqual(['line:day:00:00', 'line:hour:13:00', 'line:hour:14:00', 'line:shift:06:00', 'line:shift:14:00', 'station:day:00:00', 'station:hour:13:00', 'station:hour:14:00', 'station:shift:06:00', 'station:shift:14:00'].sort());
  });

  it('makes one downtime row per stop, for the device and for the line, never overlapping', () => {
    const figures = newFigures();
    replay(figures, EXAMPLE_EVENTS);
    const rows = figures.stopsToPublish();
    for (const scope of ['device', 'line'] as const) {
      const mine = rows.filter((row) => row.scope === scope);
      expect(mine.map(({ state, reason, start, end, plannedMs, micro }) => ({ state, reason, start, end, plannedMs, micro }))).toEqual(EXPECTED.stops);
      expect(mine.every((row) => row.device === 'st-1' && !row.open && row.durationMs === row.end - row.start)).toBe(true);
      for (let i = 1; i < mine.length; i++) expect(mine[i]!.start).toBeGreaterThanOrEqual(mine[i - 1]!.end);
    }
    expect(figures.stopsToPublish()).toEqual([]);
  });

  it('goes on from a snapshot as if there had been no restart: same figures, the open stop not doubled', () => {
    const first = newFigures();
    replay(first, EXAMPLE_EVENTS.slice(0, RESTART_AFTER));
    const before: DowntimePayload[] = first.stopsToPublish();
    first.periodsToPublish();
    expect(before.filter((row) => row.open).map((row) => row.state)).toEqual(['IDLE', 'IDLE']); // the break, open across the restart
    const second = newFigures();
    second.restore(JSON.parse(JSON.stringify(first.snapshot())) as ReturnType<LineFigures['snapshot']>);
    replay(second, EXAMPLE_EVENTS.slice(RESTART_AFTER));
    expectFigures(second.figures(shift), EXPECTED.shift);
    const after = second.stopsToPublish();
    const closed = [...before, ...after].filter((row) => !row.open && row.scope === 'device');
    expect(closed.map((row) => `${row.state}@${row.start}`)).toEqual(EXPECTED.stops.map((stop) => `${stop.state}@${stop.start}`));
  });

  it('shows the current shift so far in the live summary, and the last one between shifts', () => {
    const figures = newFigures();
    replay(figures, EXAMPLE_EVENTS.slice(0, 6)); // up to 07:59: 06:00–07:20 with a 20-minute fault
    const soFar = figures.currentShift();
    expect(soFar).toMatchObject({ shift: 'early', start: at('06:00:00'), complete: false, runMs: 99 * MIN, downMs: { FAULT: 20 * MIN } });
    expect(soFar?.availability).toBeCloseTo(99 / 119, 12);
  });

  it('counts a stop that falls in a break as planned, and running in a break as running', () => {
    const figures = newFigures();
    figures.observeState('st-1', 'RUNNING', at('09:50:00'));
    figures.observeState('st-1', 'FAULT', at('09:55:00'));
    figures.observeState('st-1', 'RUNNING', at('10:05:00'));
    figures.observeState('st-1', 'RUNNING', at('10:10:00'));
    figures.observeTelemetry('st-1', { goodCount: 0 }, at('10:10:00'));
    const f = figures.figures(hour('09'));
    expect(f).toMatchObject({ runMs: 5 * MIN, downMs: { FAULT: 5 * MIN }, plannedStopMs: 0 });
    const ten = figures.figures(hour('10'));
    expect(ten).toMatchObject({ runMs: 5 * MIN, plannedStopMs: 5 * MIN, downMs: {} });
    const [stop] = figures.stopsToPublish().filter((row) => row.scope === 'device');
    expect(stop).toMatchObject({ state: 'FAULT', durationMs: 10 * MIN, plannedMs: 5 * MIN, micro: false });
  });

  it('accounts a late event at the latest device time, never before it', () => {
    const figures = newFigures();
    figures.observeState('st-1', 'RUNNING', at('06:00:00'));
    figures.observeState('st-1', 'FAULT', at('06:30:00'));
    figures.observeState('st-1', 'RUNNING', at('06:10:00')); // late: taken at 06:30
    figures.observeTelemetry('st-1', { goodCount: 0 }, at('06:40:00'));
    expect(figures.figures(hour('06'))).toMatchObject({ runMs: 40 * MIN, downMs: {} });
  });

  it('attributes the line to one reason at a time, by priority', () => {
    const devices = (states: string[]) => new Map(states.map((state, i) => [`d${i}`, { state: state as never }]));
    expect(lineCondition(devices(['STARVED', 'BLOCKED', 'RUNNING']))).toEqual({ condition: 'BLOCKED', holder: 'd1' });
    expect(lineCondition(devices(['STARVED', 'MAINTENANCE', 'FAULT']))).toEqual({ condition: 'FAULT', holder: 'd2' });
    expect(lineCondition(devices(['IDLE', 'RUNNING']))).toEqual({ condition: 'RUNNING', holder: 'd1' });
    expect(lineCondition(devices(['IDLE', 'STOPPED']))).toEqual({ condition: 'STOPPED', holder: 'd1' });
    expect(lineCondition(new Map())).toEqual({ condition: 'UNKNOWN' });
  });
});
