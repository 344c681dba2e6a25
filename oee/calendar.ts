// The shift calendar (oee.calendar, docs/oee.md#the-shift-calendar): for any minute of device
// time, which hour, shift and day it belongs to and whether production is planned in it.
//
// Everything is resolved per whole minute: shift and break times are HH:MM and an hour, shift or
// day starts on a minute, so a minute is wholly inside or outside each period. Local times are
// in `timeZone` (IANA; null: the zone of the process), daylight saving time included: a day has
// 23 or 25 hours on the days the clocks change, and a shift that spans the change is an hour
// shorter or longer.
import { dayPieces, type CalendarConfig } from './config.js';

export const MINUTE_MS = 60_000;
export const PERIOD_KINDS = ['hour', 'shift', 'day'] as const;
export type PeriodKind = (typeof PERIOD_KINDS)[number];

/** One hour, shift or day: [start, end) in ms since the epoch; `shift` names a shift's. */
export interface Period {
  kind: PeriodKind;
  start: number;
  end: number;
  shift?: string;
}

/** Why a minute holds no planned production time. */
export type UnplannedWhy = 'no-shift' | 'break' | 'planned-downtime';

export interface MinuteInfo {
  hour: Period;
  day: Period;
  /** Absent outside every shift. */
  shift?: Period;
  /** Absent when production is planned in this minute. */
  unplanned?: UnplannedWhy;
}

interface LocalTime {
  year: number;
  month: number;
  day: number;
  /** Minutes since local midnight (wall clock). */
  minuteOfDay: number;
}

export class ShiftCalendar {
  private readonly format: Intl.DateTimeFormat;
  /** The shift of each wall-clock minute of the day (by index into config.shifts), -1 for none. */
  private readonly shiftOfMinute = new Int16Array(1440).fill(-1);
  /** Per shift index: break minutes of the day. */
  private readonly breakMinutes: Array<Set<number>>;
  private readonly planned: Array<[number, number]>;
  private readonly offsets = new Map<number, number>();
  private readonly cache = new Map<number, MinuteInfo>();
  readonly timeZone: string;

  constructor(private readonly config: CalendarConfig) {
    this.timeZone = config.timeZone ?? Intl.DateTimeFormat().resolvedOptions().timeZone;
    this.format = new Intl.DateTimeFormat('en-US', { timeZone: this.timeZone, hourCycle: 'h23', year: 'numeric', month: 'numeric', day: 'numeric', hour: 'numeric', minute: 'numeric' });
    config.shifts.forEach((shift, i) => {
      for (const [from, to] of dayPieces(shift.start, shift.end)) for (let m = from; m < to; m++) this.shiftOfMinute[m] = i;
    });
    this.breakMinutes = config.shifts.map(() => new Set<number>());
    for (const pause of config.breaks) {
      for (const [from, to] of dayPieces(pause.start, pause.end)) {
        for (let m = from; m < to; m++) {
          const i = this.shiftOfMinute[m] ?? -1;
          if (i >= 0 && (pause.shift === undefined || config.shifts[i]?.name === pause.shift)) this.breakMinutes[i]?.add(m);
        }
      }
    }
    this.planned = config.plannedDowntime.map((stop) => [Date.parse(stop.from), Date.parse(stop.to)]);
  }

  /** The periods of the minute that holds `ts` and whether production is planned in it. */
  minute(ts: number): MinuteInfo {
    const minute = Math.floor(ts / MINUTE_MS) * MINUTE_MS;
    const known = this.cache.get(minute);
    if (known) return known;
    const info = this.resolve(minute);
    if (this.cache.size > 20_000) this.cache.clear();
    this.cache.set(minute, info);
    return info;
  }

  /** The shift that holds `ts`, or the latest one that ended before it (searching back a day). */
  currentOrLastShift(ts: number): Period | undefined {
    for (let at = ts, steps = 0; steps < 1440; steps++, at -= MINUTE_MS) {
      const shift = this.minute(at).shift;
      if (shift) return shift;
    }
    return undefined;
  }

  private resolve(minute: number): MinuteInfo {
    const local = this.local(minute);
    const hourStart = minute - (local.minuteOfDay % 60) * MINUTE_MS;
    const hour: Period = { kind: 'hour', start: hourStart, end: hourStart + 3_600_000 };
    const dayStart = this.utcOf(local.year, local.month, local.day, 0);
    const next = civilNext(local.year, local.month, local.day);
    const day: Period = { kind: 'day', start: dayStart, end: this.utcOf(next.year, next.month, next.day, 0) };
    const index = this.shiftOfMinute[local.minuteOfDay] ?? -1;
    const config = this.config.shifts[index];
    let shift: Period | undefined;
    let unplanned: UnplannedWhy | undefined;
    if (config) {
      const start = minutesOf(config.start);
      const end = minutesOf(config.end);
      // A shift that wraps midnight and holds this minute after midnight began the day before.
      const began = end <= start && local.minuteOfDay < end ? civilPrevious(local.year, local.month, local.day) : local;
      const ends = end <= start ? civilNext(began.year, began.month, began.day) : began;
      shift = { kind: 'shift', shift: config.name, start: this.utcOf(began.year, began.month, began.day, start), end: this.utcOf(ends.year, ends.month, ends.day, end) };
      if (this.breakMinutes[index]?.has(local.minuteOfDay)) unplanned = 'break';
    } else {
      unplanned = 'no-shift';
    }
    if (unplanned === undefined && this.planned.some(([from, to]) => minute + MINUTE_MS > from && minute < to)) unplanned = 'planned-downtime';
    return { hour, day, ...(shift ? { shift } : {}), ...(unplanned ? { unplanned } : {}) };
  }

  private local(ts: number): LocalTime {
    const parts: Record<string, number> = {};
    for (const part of this.format.formatToParts(ts)) if (part.type !== 'literal') parts[part.type] = Number(part.value);
    return { year: parts.year ?? 0, month: parts.month ?? 0, day: parts.day ?? 0, minuteOfDay: (parts.hour ?? 0) * 60 + (parts.minute ?? 0) };
  }

  /** The zone's offset from UTC at `ts`, in ms (local = UTC + offset). */
  private offsetAt(ts: number): number {
    const slot = Math.floor(ts / (15 * MINUTE_MS));
    const known = this.offsets.get(slot);
    if (known !== undefined) return known;
    const local = this.local(slot * 15 * MINUTE_MS);
    const asUtc = Date.UTC(local.year, local.month - 1, local.day, Math.floor(local.minuteOfDay / 60), local.minuteOfDay % 60);
    const offset = asUtc - slot * 15 * MINUTE_MS;
    this.offsets.set(slot, offset);
    return offset;
  }

  /**
   * The instant of a local wall-clock time. A time the clocks skip (spring forward) is taken an
   * hour later; a time they pass twice (fall back), the first time.
   */
  private utcOf(year: number, month: number, day: number, minuteOfDay: number): number {
    const wall = Date.UTC(year, month - 1, day, Math.floor(minuteOfDay / 60), minuteOfDay % 60);
    // The offsets in force well before and well after: a clock change near this time is between them.
    const before = this.offsetAt(wall - 14 * 3_600_000);
    const after = this.offsetAt(wall + 14 * 3_600_000);
    const valid = [wall - before, wall - after].filter((instant) => instant + this.offsetAt(instant) === wall);
    return valid.length > 0 ? Math.min(...valid) : wall - before;
  }

}

function minutesOf(hhmm: string): number {
  return Number(hhmm.slice(0, 2)) * 60 + Number(hhmm.slice(3, 5));
}

function civilNext(year: number, month: number, day: number): { year: number; month: number; day: number } {
  const next = new Date(Date.UTC(year, month - 1, day + 1));
  return { year: next.getUTCFullYear(), month: next.getUTCMonth() + 1, day: next.getUTCDate() };
}

function civilPrevious(year: number, month: number, day: number): LocalTime {
  const prev = new Date(Date.UTC(year, month - 1, day - 1));
  return { year: prev.getUTCFullYear(), month: prev.getUTCMonth() + 1, day: prev.getUTCDate(), minuteOfDay: 0 };
}
