// The shift calendar: periods of a minute in a real time zone (daylight saving time included),
// breaks and planned downtime, and the config's errors naming the key.
import { describe, expect, it } from 'vitest';
import { ShiftCalendar } from '../../oee/calendar.js';
import { calendarSchema, oeeConfigSchema } from '../../oee/config.js';

const at = (iso: string): number => Date.parse(iso);
const hours = (ms: number): number => ms / 3_600_000;

describe('ShiftCalendar', () => {
  const berlin = new ShiftCalendar(calendarSchema.parse({ timeZone: 'Europe/Berlin', breaks: [{ start: '10:00', end: '10:15' }], plannedDowntime: [{ from: '2026-12-03T08:00:00+01:00', to: '2026-12-03T09:00:00+01:00', reason: 'changeover' }] }));

  it('puts a minute in its local hour, shift and day', () => {
    const minute = berlin.minute(at('2026-12-02T21:30:00Z')); // 22:30 CET
    expect(minute.hour.start).toBe(at('2026-12-02T21:00:00Z'));
    expect(minute.shift).toEqual({ kind: 'shift', shift: 'night', start: at('2026-12-02T21:00:00Z'), end: at('2026-12-03T05:00:00Z') });
    expect(minute.day).toEqual({ kind: 'day', start: at('2026-12-01T23:00:00Z'), end: at('2026-12-02T23:00:00Z') });
    expect(minute.unplanned).toBeUndefined();
    // After midnight the night shift is still the one that began the evening before.
    expect(berlin.minute(at('2026-12-03T02:00:00Z')).shift?.start).toBe(at('2026-12-02T21:00:00Z'));
  });

  it('knows the days the clocks change: a 23-hour day, a 7-hour and a 9-hour night shift', () => {
    const spring = berlin.minute(at('2026-03-29T00:30:00Z')); // 01:30 CET, clocks go 02:00 → 03:00
    expect(hours(spring.day.end - spring.day.start)).toBe(23);
    expect(spring.shift).toMatchObject({ shift: 'night', start: at('2026-03-28T21:00:00Z'), end: at('2026-03-29T04:00:00Z') });
    const autumn = berlin.minute(at('2026-10-25T03:00:00Z'));
    expect(hours(autumn.day.end - autumn.day.start)).toBe(25);
    expect(autumn.shift).toMatchObject({ shift: 'night', start: at('2026-10-24T20:00:00Z'), end: at('2026-10-25T05:00:00Z') });
  });

  it('takes breaks and planned downtime out of planned production time', () => {
    expect(berlin.minute(at('2026-12-02T09:05:00Z')).unplanned).toBe('break'); // 10:05 CET
    expect(berlin.minute(at('2026-12-02T09:15:00Z')).unplanned).toBeUndefined();
    expect(berlin.minute(at('2026-12-03T07:30:00Z')).unplanned).toBe('planned-downtime');
    expect(berlin.minute(at('2026-12-03T08:00:00Z')).unplanned).toBeUndefined();
  });

  it('has no shift in the gaps of a calendar that does not cover the day', () => {
    const day = new ShiftCalendar(calendarSchema.parse({ timeZone: 'UTC', shifts: [{ name: 'day', start: '08:00', end: '16:00' }] }));
    expect(day.minute(at('2026-12-02T17:00:00Z'))).toMatchObject({ unplanned: 'no-shift' });
    expect(day.minute(at('2026-12-02T17:00:00Z')).shift).toBeUndefined();
    expect(day.currentOrLastShift(at('2026-12-02T17:00:00Z'))).toMatchObject({ shift: 'day', start: at('2026-12-02T08:00:00Z') });
  });
});

describe('oee.calendar config', () => {
  it('defaults to three 8-hour shifts from 06:00 in the zone of the process', () => {
    const config = oeeConfigSchema.parse({});
    expect(config.calendar.timeZone).toBeNull();
    expect(config.calendar.shifts.map((shift) => `${shift.name} ${shift.start}-${shift.end}`)).toEqual(['early 06:00-14:00', 'late 14:00-22:00', 'night 22:00-06:00']);
    expect(config.microStopMs).toBe(30_000);
  });

  it('refuses a bad calendar with errors naming each key', () => {
    const result = oeeConfigSchema.safeParse({
      calendar: {
        timeZone: 'Mars/Olympus',
        shifts: [{ name: 'a', start: '06:00', end: '15:00' }, { name: 'b', start: '14:00', end: '22:00' }, { name: 'c', start: '22:00', end: '24:00' }],
        breaks: [{ start: '23:00', end: '23:10' }, { start: '07:00', end: '07:10', shift: 'x' }],
        plannedDowntime: [{ from: '2026-12-03T09:00:00Z', to: '2026-12-03T08:00:00Z' }],
      },
    });
    const issues = result.error?.issues.map((issue) => `${issue.path.join('.')}: ${issue.message}`) ?? [];
    expect(issues).toEqual(expect.arrayContaining([
      expect.stringMatching(/^calendar\.timeZone: must be an IANA time zone/),
      expect.stringMatching(/^calendar\.shifts\.2\.end: must be a local time of day HH:MM/),
    ]));
    // The refinements run once the fields parse: the overlap, the break outside a shift, the unknown shift, the reversed downtime.
    const refined = oeeConfigSchema.safeParse({
      calendar: {
        shifts: [{ name: 'a', start: '06:00', end: '15:00' }, { name: 'b', start: '14:00', end: '22:00' }],
        breaks: [{ start: '23:00', end: '23:10' }, { start: '07:00', end: '07:10', shift: 'x' }],
        plannedDowntime: [{ from: '2026-12-03T09:00:00Z', to: '2026-12-03T08:00:00Z' }],
      },
    });
    expect(refined.error?.issues.map((issue) => `${issue.path.join('.')}: ${issue.message}`)).toEqual([
      'calendar.shifts.1: shift b (14:00–22:00) overlaps shift a; shifts may not overlap',
      'calendar.breaks.0: the break 23:00–23:10 is not wholly within a shift; no production is planned outside the shifts anyway',
      'calendar.breaks.1.shift: no shift is named x; use one of a, b',
      'calendar.breaks.1: the break 07:00–07:10 is not wholly within shift x; no production is planned outside the shifts anyway',
      'calendar.plannedDowntime.0.to: must be after from (2026-12-03T09:00:00Z)',
    ]);
  });
});
