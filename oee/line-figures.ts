// OEE of one line and of each of its stations, per hour, shift and day, from its event stream
// (docs/oee.md). Pure: time is device time only — the events' own timestamps, never the wall clock.
//
// The line and every device each have a timeline: one condition at a time, from the device
// states (the line's: FAULT > MAINTENANCE > BLOCKED > STARVED, else RUNNING if any device runs,
// else STOPPED, else IDLE; UNKNOWN while no device state is known). When a condition ends, its
// interval is accounted minute by minute (oee/calendar.ts says what each minute is):
//   RUNNING                                  → run time (also in a break: the line produced)
//   MAINTENANCE, or any stop in a minute
//   without planned production (break,
//   planned downtime, no shift)               → planned stop time: not planned production time
//   a stop shorter than microStopMs          → micro-stop time: a loss of performance
//   any other stop                           → downtime, by state
//   UNKNOWN                                  → unknown: not planned production time either
// and parts counted go to the minute they were reported in. A period's figures are the sum of its
// minutes (plus the open interval so far), so they are the figures *within* that period:
//   planned production time = run + micro-stops + downtime
//   availability = (run + micro-stops) / planned production time
//   performance  = parts × ideal cycle time / (run + micro-stops)
//   quality      = good / parts
//   OEE          = availability × performance × quality  (= good × ideal cycle / planned production time)
// Every stop interval that ends (and, while open, each one so far) becomes a downtime row.
import type { DeviceState, DeviceType, DowntimePayload, OeePeriodPayload, StopState } from '../contracts/schemas.js';
import { MINUTE_MS, type Period, type ShiftCalendar } from './calendar.js';

export type Condition = DeviceState | 'UNKNOWN';
/** Which reason holds a line that several devices stop at once. */
export const LINE_STOP_PRIORITY = ['FAULT', 'MAINTENANCE', 'BLOCKED', 'STARVED'] as const;
/** Stops that are planned whenever they happen. */
const PLANNED_STATES: ReadonlySet<Condition> = new Set(['MAINTENANCE']);
/** Minutes kept: a day and an hour, so the longest period (a day, a night shift) can still be republished. */
const KEEP_MS = 25 * 3_600_000;

export interface LineFiguresOptions {
  calendar: ShiftCalendar;
  /** Ideal output, parts per minute (for the line and each of its stations). */
  idealRatePerMin: number;
  microStopMs: number;
  /** Only this device's counters are the line's output; default: the line controller, else every device reporting them. */
  countDevice?: string;
  goodField?: string;
  scrapField?: string;
}

/** What one minute of one timeline holds, in ms (counts in parts). */
export interface MinuteTally {
  run: number;
  down: Partial<Record<StopState, number>>;
  micro: number;
  microStops: number;
  plannedStop: number;
  unknown: number;
  good: number;
  scrap: number;
}

/** One period's figures (the payload of lw/{line}/oee without ts, scope and device). */
export type PeriodFigures = Omit<OeePeriodPayload, 'ts' | 'scope' | 'device'>;

interface Timeline {
  condition: Condition;
  /** Start of the current condition; undefined until the first state. */
  since: number | undefined;
  /** The device holding it in the condition (the line: the first device in that state) and its reason then. */
  holder?: string;
  reason?: string;
  minutes: Map<number, MinuteTally>;
}

interface DeviceInfo {
  state?: DeviceState;
  reason?: string;
  type?: DeviceType;
  station?: string;
  counters: { good?: number; scrap?: number };
}

/** What a checkpoint holds (oee.stateFile): enough to go on as if there had been no restart. */
export interface LineFiguresSnapshot {
  latest: number;
  countDevice?: string;
  devices: Array<[string, DeviceInfo]>;
  timelines: Array<[string, Omit<Timeline, 'minutes'> & { minutes: Array<[number, MinuteTally]> }]>;
  /** Stops that ended and were not published yet. */
  ended: DowntimePayload[];
}

const LINE = '';

export class LineFigures {
  private readonly devices = new Map<string, DeviceInfo>();
  /** The line's timeline under LINE, each device's under its id. */
  private readonly timelines = new Map<string, Timeline>();
  /** Minutes changed since the last publish, per timeline. */
  private readonly dirty = new Map<string, Set<number>>();
  /** Stops that ended since the last publish. */
  private ended: DowntimePayload[] = [];
  /** Latest device time seen: late (out-of-order) events are accounted at this time, never before it. */
  private latest = 0;
  private countDevice: string | undefined;

  constructor(private readonly options: LineFiguresOptions) {
    this.countDevice = options.countDevice;
  }

  /** Device time now: the latest event time seen (0 before any). */
  now(): number {
    return this.latest;
  }

  observeState(device: string, state: DeviceState, ts: number, extra: { reason?: string; type?: DeviceType; station?: string } = {}): void {
    const at = this.advance(ts);
    const info = this.deviceOf(device, extra.type, extra.station);
    info.state = state;
    info.reason = extra.reason;
    this.move(device, state, at, device, extra.reason);
    this.updateLine(at);
  }

  observeTelemetry(device: string, values: Record<string, number>, ts: number, type?: DeviceType, station?: string): void {
    const at = this.advance(ts);
    const info = this.deviceOf(device, type, station);
    if (!this.options.countDevice && type === 'line-controller' && this.countDevice !== device) this.countDevice = device;
    const good = values[this.options.goodField ?? 'goodCount'];
    const scrap = values[this.options.scrapField ?? 'scrapCount'];
    const addGood = delta(info.counters.good, good);
    const addScrap = delta(info.counters.scrap, scrap);
    info.counters = { good: good ?? info.counters.good, scrap: scrap ?? info.counters.scrap };
    if (addGood === 0 && addScrap === 0) return;
    this.count(device, at, addGood, addScrap);
    if (this.countDevice === undefined || this.countDevice === device) this.count(LINE, at, addGood, addScrap);
  }

  /** The device went away (status offline): it no longer holds the line in any state. */
  forget(device: string, ts: number): void {
    const info = this.devices.get(device);
    if (info?.state === undefined) return;
    const at = this.advance(ts);
    info.state = undefined;
    this.move(device, 'UNKNOWN', at, device, undefined);
    this.updateLine(at);
  }

  /**
   * The figures to publish now: every period whose minutes changed since the last call and the
   * periods that hold device time now, of the line and of each station (devices of type station).
   */
  periodsToPublish(): Array<{ scope: 'line' | 'station'; device?: string; figures: PeriodFigures }> {
    const out: Array<{ scope: 'line' | 'station'; device?: string; figures: PeriodFigures }> = [];
    for (const [key, timeline] of this.timelines) {
      const scope = key === LINE ? 'line' : this.devices.get(key)?.type === 'station' ? 'station' : undefined;
      const minutes = this.dirty.get(key) ?? new Set<number>();
      this.dirty.delete(key);
      if (scope === undefined || this.latest === 0) continue;
      minutes.add(Math.floor(this.latest / MINUTE_MS) * MINUTE_MS);
      if (timeline.since !== undefined) for (let m = Math.floor(timeline.since / MINUTE_MS) * MINUTE_MS; m <= this.latest; m += MINUTE_MS) minutes.add(m);
      const periods = new Map<string, Period>();
      for (const minute of minutes) {
        const info = this.options.calendar.minute(minute);
        for (const period of [info.hour, info.shift, info.day]) if (period) periods.set(`${period.kind}/${period.start}`, period);
      }
      const open = this.openTally(timeline);
      for (const period of periods.values()) out.push({ scope, ...(scope === 'station' ? { device: key } : {}), figures: this.figuresOf(timeline, period, open) });
    }
    return out;
  }

  /** The line's figures for its current shift so far, else for the last shift that ended (undefined before any event). */
  currentShift(): PeriodFigures | undefined {
    const timeline = this.timelines.get(LINE);
    if (!timeline || this.latest === 0) return undefined;
    const shift = this.options.calendar.currentOrLastShift(this.latest);
    return shift ? this.figuresOf(timeline, shift, this.openTally(timeline)) : undefined;
  }

  /** The line's (or a device's) figures for any period, for tests and the curious. */
  figures(period: Period, device?: string): PeriodFigures | undefined {
    const timeline = this.timelines.get(device ?? LINE);
    return timeline ? this.figuresOf(timeline, period, this.openTally(timeline)) : undefined;
  }

  /** Stop rows to publish: those that ended since the last call, then every stop still open (so far). */
  stopsToPublish(): DowntimePayload[] {
    const out = this.ended;
    this.ended = [];
    for (const [key, timeline] of this.timelines) {
      if (timeline.since === undefined || !isStop(timeline.condition)) continue;
      out.push(this.stopRow(key, timeline, this.latest, true));
    }
    return out;
  }

  /** An ended stop that could not be published: it goes out with the next round. */
  requeueStop(row: DowntimePayload): void {
    if (!row.open) this.ended.push(row);
  }

  snapshot(): LineFiguresSnapshot {
    this.prune();
    return {
      latest: this.latest,
      ...(this.countDevice !== undefined ? { countDevice: this.countDevice } : {}),
      devices: [...this.devices],
      timelines: [...this.timelines].map(([key, timeline]) => [key, { ...timeline, minutes: [...timeline.minutes] }]),
      ended: [...this.ended],
    };
  }

  /** Goes on from a snapshot (before any event). */
  restore(snapshot: LineFiguresSnapshot): void {
    this.latest = snapshot.latest;
    if (this.options.countDevice === undefined) this.countDevice = snapshot.countDevice;
    for (const [device, info] of snapshot.devices) this.devices.set(device, info);
    for (const [key, timeline] of snapshot.timelines) this.timelines.set(key, { ...timeline, minutes: new Map(timeline.minutes) });
    this.ended.push(...snapshot.ended);
  }

  private advance(ts: number): number {
    if (ts > this.latest) {
      const before = this.latest;
      this.latest = ts;
      if (Math.floor(before / 3_600_000) !== Math.floor(ts / 3_600_000)) this.prune();
    }
    return this.latest;
  }

  private deviceOf(device: string, type: DeviceType | undefined, station: string | undefined): DeviceInfo {
    let info = this.devices.get(device);
    if (!info) {
      info = { counters: {} };
      this.devices.set(device, info);
    }
    if (type !== undefined) info.type = type;
    if (station !== undefined) info.station = station;
    return info;
  }

  private timelineOf(key: string): Timeline {
    let timeline = this.timelines.get(key);
    if (!timeline) {
      timeline = { condition: 'UNKNOWN', since: undefined, minutes: new Map() };
      this.timelines.set(key, timeline);
    }
    return timeline;
  }

  private updateLine(at: number): void {
    const { condition, holder } = lineCondition(this.devices);
    this.move(LINE, condition, at, holder, holder === undefined ? undefined : this.devices.get(holder)?.reason);
  }

  /** Timeline `key` is in `condition` from `at`: the one before ends there and is accounted. */
  private move(key: string, condition: Condition, at: number, holder: string | undefined, reason: string | undefined): void {
    const timeline = this.timelineOf(key);
    if (timeline.since !== undefined && timeline.condition === condition) return;
    if (timeline.since !== undefined) {
      const plannedMs = this.account(timeline.minutes, timeline.condition, timeline.since, at, this.markDirty(key));
      if (isStop(timeline.condition)) this.ended.push({ ...this.stopRow(key, timeline, at, false), plannedMs });
    }
    timeline.condition = condition;
    timeline.since = at;
    timeline.holder = holder;
    timeline.reason = reason;
  }

  private stopRow(key: string, timeline: Timeline, end: number, open: boolean): DowntimePayload {
    const since = timeline.since ?? end;
    const device = key === LINE ? (timeline.holder ?? 'unknown') : key;
    const station = this.devices.get(device)?.station;
    const plannedMs = open ? this.account(new Map(), timeline.condition, since, end, () => {}) : 0;
    return {
      ts: this.latest,
      scope: key === LINE ? 'line' : 'device',
      device,
      ...(station !== undefined ? { station } : {}),
      state: timeline.condition as StopState,
      ...(timeline.reason !== undefined ? { reason: timeline.reason } : {}),
      start: since,
      end,
      durationMs: end - since,
      plannedMs,
      micro: this.isMicro(timeline.condition, end - since),
      open,
    };
  }

  private isMicro(condition: Condition, ms: number): boolean {
    return isStop(condition) && !PLANNED_STATES.has(condition) && ms < this.options.microStopMs;
  }

  /**
   * Accounts [from, to) in `condition` into `minutes`, minute by minute; calls `touched` with each
   * minute. Returns the ms of it that were planned stop time.
   */
  private account(minutes: Map<number, MinuteTally>, condition: Condition, from: number, to: number, touched: (minute: number) => void): number {
    const micro = this.isMicro(condition, to - from);
    let plannedMs = 0;
    let first = true;
    for (let t = from; t < to; ) {
      const minute = Math.floor(t / MINUTE_MS) * MINUTE_MS;
      const end = Math.min(to, minute + MINUTE_MS);
      const ms = end - t;
      const tally = tallyOf(minutes, minute);
      touched(minute);
      if (condition === 'RUNNING') tally.run += ms;
      else if (condition === 'UNKNOWN') tally.unknown += ms;
      else if (PLANNED_STATES.has(condition) || this.options.calendar.minute(minute).unplanned !== undefined) {
        tally.plannedStop += ms;
        plannedMs += ms;
      } else if (micro) {
        tally.micro += ms;
        if (first) tally.microStops++;
      } else {
        const state = condition as StopState;
        tally.down[state] = (tally.down[state] ?? 0) + ms;
      }
      first = false;
      t = end;
    }
    return plannedMs;
  }

  /** The open interval of `timeline` up to device time now, as minutes (micro-stop or not as it stands). */
  private openTally(timeline: Timeline): Map<number, MinuteTally> {
    const open = new Map<number, MinuteTally>();
    if (timeline.since !== undefined && this.latest > timeline.since) this.account(open, timeline.condition, timeline.since, this.latest, () => {});
    return open;
  }

  private count(key: string, at: number, good: number, scrap: number): void {
    const minute = Math.floor(at / MINUTE_MS) * MINUTE_MS;
    const tally = tallyOf(this.timelineOf(key).minutes, minute);
    tally.good += good;
    tally.scrap += scrap;
    this.markDirty(key)(minute);
  }

  private markDirty(key: string): (minute: number) => void {
    let set = this.dirty.get(key);
    if (!set) {
      set = new Set();
      this.dirty.set(key, set);
    }
    const minutes = set;
    return (minute) => minutes.add(minute);
  }

  private figuresOf(timeline: Timeline, period: Period, open: Map<number, MinuteTally>): PeriodFigures {
    const sum: MinuteTally = { run: 0, down: {}, micro: 0, microStops: 0, plannedStop: 0, unknown: 0, good: 0, scrap: 0 };
    for (const source of [timeline.minutes, open]) {
      for (const [minute, tally] of source) {
        if (minute < period.start || minute >= period.end) continue;
        sum.run += tally.run;
        sum.micro += tally.micro;
        sum.microStops += tally.microStops;
        sum.plannedStop += tally.plannedStop;
        sum.unknown += tally.unknown;
        sum.good += tally.good;
        sum.scrap += tally.scrap;
        for (const [state, ms] of Object.entries(tally.down) as Array<[StopState, number]>) sum.down[state] = (sum.down[state] ?? 0) + ms;
      }
    }
    const downMs = Object.values(sum.down).reduce((total, ms) => total + ms, 0);
    const operating = sum.run + sum.micro;
    const planned = operating + downMs;
    const parts = sum.good + sum.scrap;
    const availability = planned > 0 ? operating / planned : undefined;
    const performance = operating > 0 ? (parts * 60_000) / this.options.idealRatePerMin / operating : undefined;
    const quality = parts > 0 ? sum.good / parts : undefined;
    const oee = availability !== undefined && performance !== undefined && quality !== undefined ? availability * performance * quality : undefined;
    return {
      period: period.kind,
      ...(period.shift !== undefined ? { shift: period.shift } : {}),
      start: period.start,
      end: period.end,
      complete: this.latest >= period.end,
      ...(availability !== undefined ? { availability } : {}),
      ...(performance !== undefined ? { performance } : {}),
      ...(quality !== undefined ? { quality } : {}),
      ...(oee !== undefined ? { oee } : {}),
      plannedMs: planned,
      runMs: sum.run,
      downMs: sum.down,
      microStops: sum.microStops,
      microStopMs: sum.micro,
      plannedStopMs: sum.plannedStop,
      unknownMs: sum.unknown,
      goodCount: sum.good,
      scrapCount: sum.scrap,
    };
  }

  /** Forgets minutes no period that can still be published holds. */
  private prune(): void {
    const horizon = this.latest - KEEP_MS;
    for (const timeline of this.timelines.values()) for (const minute of timeline.minutes.keys()) if (minute < horizon) timeline.minutes.delete(minute);
  }
}

export function isStop(condition: Condition): condition is StopState {
  return condition !== 'RUNNING' && condition !== 'UNKNOWN';
}

/** The line's condition from its devices' states, and the device that holds it there. */
export function lineCondition(devices: ReadonlyMap<string, { state?: DeviceState }>): { condition: Condition; holder?: string } {
  const holderOf = (state: DeviceState): string | undefined => {
    for (const [device, info] of devices) if (info.state === state) return device;
    return undefined;
  };
  for (const state of [...LINE_STOP_PRIORITY, 'RUNNING', 'STOPPED', 'IDLE'] as const) {
    const holder = holderOf(state);
    if (holder !== undefined) return { condition: state, holder };
  }
  return { condition: 'UNKNOWN' };
}

function tallyOf(minutes: Map<number, MinuteTally>, minute: number): MinuteTally {
  let tally = minutes.get(minute);
  if (!tally) {
    tally = { run: 0, down: {}, micro: 0, microStops: 0, plannedStop: 0, unknown: 0, good: 0, scrap: 0 };
    minutes.set(minute, tally);
  }
  return tally;
}

/** Parts added to a cumulative counter since its last value (a counter that went down was reset). */
function delta(last: number | undefined, value: number | undefined): number {
  if (value === undefined || last === undefined) return 0;
  return value >= last ? value - last : value;
}
