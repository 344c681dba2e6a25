// What the rules engine knows about each device: its type, last state (and the one before, for
// transitions), latest readings, online status, the watermark of its event time, when it was
// last heard from and how many of its messages were refused for a timestamp in the future. One
// record per `line/device`, listed per line for lineCount rules.
import type { DeviceState, DeviceType } from '../contracts/schemas.js';
import { SequenceTracker } from '../contracts/sequence.js';
import type { MessageOf } from '../contracts/decode.js';
import { LINE_VIEW_KEY, type LineView, type Scope } from './expr.js';

export type DeviceKind = 'state' | 'telemetry' | 'status';
/** A device message the rules read: state, telemetry or status (contracts/decode.ts). */
export type DeviceEvent = MessageOf<DeviceKind>;

export interface DeviceRecord {
  /** `line/device` */
  id: string;
  line: string;
  device: string;
  type?: DeviceType;
  state?: DeviceState;
  /** The state before the current one (for transitions). */
  enteredFrom?: DeviceState;
  reason?: string;
  status?: 'online' | 'offline';
  values: Record<string, number>;
  /** Highest device ts seen: events older than it are late. */
  watermark: number;
  /** Engine time of the last sign of life (any message but an offline status). */
  aliveAt?: number;
  /** Its messages refused for a device ts too far ahead of the engine clock (`future_ts`). */
  futureTs?: number;
}

/** How late or early an event may be (rules settings reorderToleranceMs, maxLatenessMs, maxClockSkewMs). */
export interface Lateness {
  reorderToleranceMs: number;
  maxLatenessMs: number;
  maxClockSkewMs: number;
}

/** What one message meant for its device. */
export interface Observation {
  record: DeviceRecord;
  /** Older than the watermark beyond the reorder tolerance, or than maxLateness: it feeds windows only. */
  late: boolean;
  /** Older than the watermark, within the tolerance: still acted on. */
  reordered: boolean;
  /** A sign of life (anything but an offline status). */
  alive: boolean;
}

export function deviceId(line: string, device: string): string {
  return `${line}/${device}`;
}

export class DeviceTable {
  private readonly records = new Map<string, DeviceRecord>();
  private readonly byLine = new Map<string, DeviceRecord[]>();
  private readonly sequences = new SequenceTracker();

  constructor(private readonly lateness: Lateness) {}

  get(line: string, device: string): DeviceRecord | undefined {
    return this.records.get(deviceId(line, device));
  }

  /** The record of a `line/device` id (deviceId()). */
  byId(id: string): DeviceRecord | undefined {
    return this.records.get(id);
  }

  /** The line's devices, in the order they were first heard from. */
  onLine(line: string): readonly DeviceRecord[] {
    return this.byLine.get(line) ?? [];
  }

  all(): DeviceRecord[] {
    return [...this.records.values()];
  }

  /** The record of `line/device`, made empty the first time. */
  record(line: string, device: string): DeviceRecord {
    const id = deviceId(line, device);
    let record = this.records.get(id);
    if (!record) {
      record = { id, line, device, values: {}, watermark: 0 };
      this.records.set(id, record);
      const lineRecords = this.byLine.get(line) ?? [];
      lineRecords.push(record);
      this.byLine.set(line, lineRecords);
    }
    return record;
  }

  /**
   * The device's record, counted, if the message's device ts is further ahead of engine time `now`
   * than maxClockSkewMs (a device clock that is wrong): such a message is refused before it reaches the
   * sequence tracker, a window or the watermark, so it cannot make the device's later messages
   * late. Counted on its device's record; status messages (whose ts only dates a connect) are never refused.
   */
  refuseFuture(event: DeviceEvent, now: number): DeviceRecord | undefined {
    if (event.payload.ts - now <= this.lateness.maxClockSkewMs || event.kind === 'status') return undefined;
    const record = this.record(event.line, event.device);
    record.futureTs = (record.futureTs ?? 0) + 1;
    // A device that speaks, even with a wrong clock, is alive (absence rules).
    record.aliveAt = now;
    return record;
  }

  get maxClockSkewMs(): number {
    return this.lateness.maxClockSkewMs;
  }

  /** The same `seq` again from the device (e.g. a QoS 1 redelivery). */
  isDuplicate(event: DeviceEvent): boolean {
    const { seq, ts } = event.payload;
    return seq !== undefined && this.sequences.check(deviceId(event.line, event.device), seq, ts) === 'duplicate';
  }

  /**
   * Takes one message into its device's record at engine time `now`. Event time: a message older
   * than the device's newest by more than the reorder tolerance, or older than maxLateness, is late
   * (e.g. store-and-forward backfill). Status messages (births and wills, whose ts is the connect
   * time) only set the status.
   */
  observe(event: DeviceEvent, now: number): Observation {
    const record = this.record(event.line, event.device);
    const { ts, type } = event.payload;
    const isStatus = event.kind === 'status';
    const newest = !isStatus && ts >= record.watermark;
    const late = (!isStatus && ts < record.watermark - this.lateness.reorderToleranceMs) || ts < now - this.lateness.maxLatenessMs;
    const reordered = !late && !newest && !isStatus;
    if (type) record.type = type;
    if (event.kind === 'status') {
      record.status = event.payload.status;
    } else if (newest) {
      // The device's latest known state and readings, even from a backfilled (late) message.
      record.watermark = ts;
      if (event.kind === 'state') {
        if (event.payload.state !== record.state) {
          record.enteredFrom = record.state;
          record.state = event.payload.state;
        }
        record.reason = event.payload.reason;
      } else {
        Object.assign(record.values, event.payload.values);
      }
    }
    const alive = !(event.kind === 'status' && event.payload.status === 'offline');
    if (alive) record.aliveAt = now;
    return { record, late, reordered, alive };
  }

  /** Puts back records from the state file. */
  restore(records: readonly DeviceRecord[]): void {
    for (const saved of records) Object.assign(this.record(saved.line, saved.device), saved);
  }
}

/** The scope of a device as it is now (lineCount's `where`, timers, `device("id")`); with its line's view for the line functions. */
export function deviceScope(record: DeviceRecord, view?: LineView): Scope {
  const scope: Scope = { device: record.device, line: record.line, ts: record.watermark, values: record.values, last: record.values, state: record.state, previous: record.enteredFrom, reason: record.reason, status: record.status, type: record.type };
  if (view) scope[LINE_VIEW_KEY] = view;
  return scope;
}
