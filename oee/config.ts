// The `oee:` section of linewatch.yaml (docs/configuration.md#oee, docs/oee.md).
import { z } from 'zod';

export const oeeLineSchema = z.strictObject({
  idealRatePerMin: z.number().positive().optional().describe('ideal output of this line, parts per minute'),
  countDevice: z.string().optional().describe('the device whose good/scrap counters are the line output (default: the line controller, else every device)'),
});

/** A local wall-clock time of day, `HH:MM` (00:00–23:59); `24:00` is not a time, use `00:00`. */
const TIME_OF_DAY = /^([01][0-9]|2[0-3]):([0-5][0-9])$/;
const timeOfDay = z.string().regex(TIME_OF_DAY, 'must be a local time of day HH:MM, 00:00–23:59 (e.g. "06:00"; midnight is "00:00")');

export const shiftSchema = z.strictObject({
  name: z.string().regex(/^[A-Za-z0-9_-]{1,32}$/, 'must be a shift name: 1–32 of A–Z a–z 0–9 _ - (it becomes an InfluxDB tag)'),
  start: timeOfDay,
  /** May be earlier than start: the shift ends the next day (22:00–06:00). */
  end: timeOfDay,
});

export const breakSchema = z.strictObject({
  start: timeOfDay,
  end: timeOfDay,
  /** Only in this shift (default: every day, whichever shift it falls in). */
  shift: z.string().optional(),
});

const isoTime = z.string().refine((v) => /^\d{4}-\d{2}-\d{2}T/.test(v) && Number.isFinite(Date.parse(v)), 'must be an ISO date-time with its zone, e.g. "2026-12-24T14:00:00+01:00"');

export const plannedDowntimeSchema = z.strictObject({
  from: isoTime,
  to: isoTime,
  reason: z.string().min(1).max(256).optional(),
});

function isTimeZone(zone: string): boolean {
  try {
    new Intl.DateTimeFormat('en-US', { timeZone: zone });
    return true;
  } catch {
    return false;
  }
}

const minutesOf = (hhmm: string): number => Number(hhmm.slice(0, 2)) * 60 + Number(hhmm.slice(3, 5));

/** The minutes of the day [start, end) covers, as [from, to) pieces within 0–1440 (a wrap gives two). */
export function dayPieces(start: string, end: string): Array<[number, number]> {
  const from = minutesOf(start);
  const to = minutesOf(end);
  return from < to ? [[from, to]] : [[from, 1440], [0, to]].filter(([a, b]) => a! < b!) as Array<[number, number]>;
}

export const DEFAULT_SHIFTS = [
  { name: 'early', start: '06:00', end: '14:00' },
  { name: 'late', start: '14:00', end: '22:00' },
  { name: 'night', start: '22:00', end: '06:00' },
];

export const calendarSchema = z
  .strictObject({
    /** IANA zone of the shift times; null: the zone of the process (its TZ, else the system's). */
    timeZone: z.string().nullable().default(null).refine((zone) => zone === null || isTimeZone(zone), 'must be an IANA time zone such as "Europe/Berlin" or "UTC" (or null for the zone of the process)'),
    shifts: z.array(shiftSchema).min(1, 'needs at least one shift; leave calendar.shifts out for the default three 8-hour shifts').default(DEFAULT_SHIFTS),
    breaks: z.array(breakSchema).default([]),
    plannedDowntime: z.array(plannedDowntimeSchema).default([]),
  })
  .superRefine((calendar, ctx) => {
    const owner = new Array<string | undefined>(1440);
    calendar.shifts.forEach((shift, i) => {
      if (shift.start === shift.end) {
        ctx.addIssue({ code: 'custom', path: ['shifts', i, 'end'], message: `shift ${shift.name} starts and ends at ${shift.start}: a shift may not be empty or 24 hours long` });
        return;
      }
      if (calendar.shifts.findIndex((other) => other.name === shift.name) !== i) {
        ctx.addIssue({ code: 'custom', path: ['shifts', i, 'name'], message: `shift name ${shift.name} is used twice; give each shift its own name` });
      }
      for (const [from, to] of dayPieces(shift.start, shift.end)) {
        for (let m = from; m < to; m++) {
          const other = owner[m];
          if (other !== undefined) {
            ctx.addIssue({ code: 'custom', path: ['shifts', i], message: `shift ${shift.name} (${shift.start}–${shift.end}) overlaps shift ${other}; shifts may not overlap` });
            return;
          }
          owner[m] = shift.name;
        }
      }
    });
    calendar.breaks.forEach((pause, i) => {
      if (pause.start === pause.end) ctx.addIssue({ code: 'custom', path: ['breaks', i, 'end'], message: `the break starts and ends at ${pause.start}; give it an end after its start` });
      if (pause.shift !== undefined && !calendar.shifts.some((shift) => shift.name === pause.shift)) {
        ctx.addIssue({ code: 'custom', path: ['breaks', i, 'shift'], message: `no shift is named ${pause.shift}; use one of ${calendar.shifts.map((shift) => shift.name).join(', ')}` });
      }
      const outside = dayPieces(pause.start, pause.end).some(([from, to]) => {
        for (let m = from; m < to; m++) if (owner[m] === undefined || (pause.shift !== undefined && owner[m] !== pause.shift)) return true;
        return false;
      });
      if (outside) ctx.addIssue({ code: 'custom', path: ['breaks', i], message: `the break ${pause.start}–${pause.end} is not wholly within ${pause.shift ? `shift ${pause.shift}` : 'a shift'}; no production is planned outside the shifts anyway` });
    });
    calendar.plannedDowntime.forEach((stop, i) => {
      if (Date.parse(stop.to) <= Date.parse(stop.from)) ctx.addIssue({ code: 'custom', path: ['plannedDowntime', i, 'to'], message: `must be after from (${stop.from})` });
    });
  });
export type CalendarConfig = z.infer<typeof calendarSchema>;

export const oeeConfigSchema = z.strictObject({
  enabled: z.boolean().default(true),
  /** How often each line's figures are published on lw/{line}/summary, lw/{line}/oee and lw/{line}/downtime. */
  publishIntervalMs: z.number().int().min(100).default(10_000),
  /** Default ideal output, parts per minute, for lines without their own (12 = the demo line's 5 s cycle). */
  idealRatePerMin: z.number().positive().default(12),
  /** Telemetry fields holding cumulative good / scrap part counters. */
  goodField: z.string().default('goodCount'),
  scrapField: z.string().default('scrapCount'),
  lines: z.record(z.string(), oeeLineSchema).default({}),
  /** Shifts, breaks and planned downtime: what planned production time is (docs/oee.md#the-shift-calendar). */
  calendar: calendarSchema.prefault({}),
  /** A stop shorter than this is a micro-stop: counted apart, as a loss of performance, not of availability. 0: none. */
  microStopMs: z.number().int().nonnegative().default(30_000),
  /** Where the figures of the open periods are kept across restarts; null: in memory only (a restart begins them again). */
  stateFile: z.string().nullable().default('.linewatch/oee-state.json'),
});
export type OeeConfig = z.infer<typeof oeeConfigSchema>;
