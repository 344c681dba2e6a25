// OEE (overall equipment effectiveness) of one line, computed from its event stream. Pure: time
// comes only from the events' own timestamps and the `now` passed to figures().
//
// At every instant the line is in exactly one condition, derived from its devices' states:
//   down, for the highest-priority reason any device reports: FAULT > MAINTENANCE > BLOCKED > STARVED
//   running, if no device is down and at least one is RUNNING
//   idle, otherwise (all IDLE/STOPPED, or nothing known yet) — not planned production time
// so downtime is attributed to one reason at a time and reasons never overlap.
//
//   availability = running time / (running + down time)
//   performance  = parts counted × ideal cycle time / running time   (ideal cycle = 1 / ideal rate)
//   quality      = good / (good + scrap)
//   oee          = availability × performance × quality
//
// Parts are counted from cumulative counters in telemetry (`goodCount`, `scrapCount` by default)
// of the configured count device; else of the line controller (type `line-controller`) once one
// reports; else of every device that reports them. The first value seen from a device is its
// baseline; a counter that goes down was reset and counts from zero again.
import type { DeviceState, DeviceType } from '../contracts/schemas.js';

export const DOWNTIME_REASONS = ['FAULT', 'MAINTENANCE', 'BLOCKED', 'STARVED'] as const;
export type DowntimeReason = (typeof DOWNTIME_REASONS)[number];
export type LineCondition = 'running' | 'idle' | DowntimeReason;

export interface OeeOptions {
  /** Ideal output, parts per minute. */
  idealRatePerMin: number;
  /** Only this device's counters are the line's output; default: the line controller, else every device reporting them. */
  countDevice?: string;
  goodField?: string;
  scrapField?: string;
}

export interface OeeFigures {
  availability?: number;
  performance?: number;
  quality?: number;
  oee?: number;
  goodCount: number;
  scrapCount: number;
  runningMs: number;
  idleMs: number;
  downtimeMs: Record<DowntimeReason, number>;
  condition: LineCondition;
}

export class LineOee {
  private readonly states = new Map<string, DeviceState>();
  private readonly counters = new Map<string, { good?: number; scrap?: number }>();
  private condition: LineCondition = 'idle';
  /** Start of the current condition (ms); undefined until the first state event. */
  private since: number | undefined;
  private runningMs = 0;
  private idleMs = 0;
  private readonly downtimeMs: Record<DowntimeReason, number> = { FAULT: 0, MAINTENANCE: 0, BLOCKED: 0, STARVED: 0 };
  private good = 0;
  private scrap = 0;
  /** Latest event time seen: late (out-of-order) events are accounted at this time, never before it. */
  private latest = 0;
  private countDevice: string | undefined;

  constructor(private readonly options: OeeOptions) {
    this.countDevice = options.countDevice;
  }

  observeState(device: string, state: DeviceState, ts: number): void {
    const at = this.advance(ts);
    this.states.set(device, state);
    const next = conditionOf(this.states.values());
    if (next !== this.condition || this.since === undefined) {
      this.accrue(at);
      this.condition = next;
      this.since = at;
    }
  }

  observeTelemetry(device: string, values: Record<string, number>, ts: number, type?: DeviceType): void {
    this.advance(ts);
    if (!this.options.countDevice && type === 'line-controller' && this.countDevice !== device) {
      // The line controller's counters are the line's output: from now on count only those.
      this.countDevice = device;
      this.good = 0;
      this.scrap = 0;
    }
    if (this.countDevice && device !== this.countDevice) return;
    const goodField = this.options.goodField ?? 'goodCount';
    const scrapField = this.options.scrapField ?? 'scrapCount';
    const last = this.counters.get(device) ?? {};
    const good = values[goodField];
    const scrap = values[scrapField];
    this.good += delta(last.good, good);
    this.scrap += delta(last.scrap, scrap);
    this.counters.set(device, { good: good ?? last.good, scrap: scrap ?? last.scrap });
  }

  /** The device went away (status offline): it no longer holds the line in any state. */
  forget(device: string, ts: number): void {
    if (!this.states.has(device)) return;
    const at = this.advance(ts);
    this.states.delete(device);
    const next = conditionOf(this.states.values());
    if (next !== this.condition) {
      this.accrue(at);
      this.condition = next;
      this.since = at;
    }
  }

  /** Figures up to `now` (ms; the latest event time if later). */
  figures(now: number): OeeFigures {
    const at = Math.max(now, this.latest);
    const open = this.since === undefined ? 0 : at - this.since;
    const runningMs = this.runningMs + (this.condition === 'running' ? open : 0);
    const idleMs = this.idleMs + (this.condition === 'idle' ? open : 0);
    const downtimeMs = { ...this.downtimeMs };
    if (this.condition !== 'running' && this.condition !== 'idle') downtimeMs[this.condition] += open;
    const down = DOWNTIME_REASONS.reduce((sum, r) => sum + downtimeMs[r], 0);
    const planned = runningMs + down;
    const availability = planned > 0 ? runningMs / planned : undefined;
    const parts = this.good + this.scrap;
    const performance = runningMs > 0 ? (parts * 60_000) / this.options.idealRatePerMin / runningMs : undefined;
    const quality = parts > 0 ? this.good / parts : undefined;
    const oee = availability !== undefined && performance !== undefined && quality !== undefined ? availability * performance * quality : undefined;
    return { availability, performance, quality, oee, goodCount: this.good, scrapCount: this.scrap, runningMs, idleMs, downtimeMs, condition: this.condition };
  }

  private advance(ts: number): number {
    if (ts > this.latest) this.latest = ts;
    return this.latest;
  }

  private accrue(at: number): void {
    if (this.since === undefined) return;
    const ms = at - this.since;
    if (this.condition === 'running') this.runningMs += ms;
    else if (this.condition === 'idle') this.idleMs += ms;
    else this.downtimeMs[this.condition] += ms;
  }
}

export function conditionOf(states: Iterable<DeviceState>): LineCondition {
  const seen = new Set(states);
  for (const reason of DOWNTIME_REASONS) if (seen.has(reason)) return reason;
  return seen.has('RUNNING') ? 'running' : 'idle';
}

/** Parts added to a cumulative counter since its last value. */
function delta(last: number | undefined, value: number | undefined): number {
  if (value === undefined || last === undefined) return 0;
  return value >= last ? value - last : value;
}
