// Data quality per device: what each device's messages say about the way they arrived.
//
//   accepted message ──► SequenceTracker (contracts/sequence.ts): gaps, skipped seqs, duplicates,
//                        reorders, resets, stale — the part of its counters this message moved
//                    ──► timestamps: late (behind the device's newest by more than lateAfterMs),
//                        future (ahead of this process's clock by more than futureAheadMs)
//   per device: totals (Prometheus counters, `linewatch_quality_<field>{line, device}`) and the
//   deltas since the last `take()` (one `data_quality` point per device per interval).
//
// At most maxDevices devices are kept by name; the rest are counted together under OVERFLOW
// (line and device `*`, which no device id can be), so neither /metrics nor InfluxDB grows
// without bound. The sequence check itself covers every device (the service-wide seq_* counters).
import { SequenceTracker, type SequenceCounters } from '../contracts/index.js';
import { QUALITY_FIELDS, type QualityCounts, type QualityField } from '../contracts/period-rows.js';
import type { LabelledCounter } from '../lib/metrics.js';

export { QUALITY_FIELDS, type QualityCounts } from '../contracts/period-rows.js';

/** The line and device under which devices beyond maxDevices are counted together. */
export const OVERFLOW = '*';

/** The sequence counters that only grow (not `missing`, which reorders take back). */
const SEQUENCE_FIELDS = ['gaps', 'skipped', 'duplicates', 'reorders', 'resets', 'stale'] as const satisfies readonly (keyof SequenceCounters & QualityField)[];

export interface DataQualityOptions {
  /** A ts further than this behind the newest ts seen for its device is late (ms). */
  lateAfterMs: number;
  /** A ts further than this ahead of `now()` is in the future (ms). */
  futureAheadMs: number;
  /** Devices kept by name; the rest are counted under OVERFLOW. */
  maxDevices: number;
  /** The receiver's clock (ms). */
  now?: () => number;
  /** Called for each message of a device beyond maxDevices (the caller logs it at a bounded rate). */
  onOverflow?: (line: string, device: string) => void;
}

export interface DeviceQuality {
  line: string;
  device: string;
  /** Since this process started. */
  totals: QualityCounts;
  /** Since the last take(). */
  delta: QualityCounts;
}

interface Entry extends DeviceQuality {
  /** The newest device ts seen (for `late_ts`). */
  newestTs: number;
}

export function zeroCounts(): QualityCounts {
  return { messages: 0, gaps: 0, skipped: 0, duplicates: 0, reorders: 0, resets: 0, stale: 0, late_ts: 0, future_ts: 0 };
}

export class DataQuality {
  /** The sequence check over every device (its counters are the service-wide seq_*). */
  readonly sequences = new SequenceTracker();
  /** Messages of devices beyond maxDevices (counted under OVERFLOW too). */
  overflowMessages = 0;
  private readonly devices = new Map<string, Entry>();
  private readonly now: () => number;

  constructor(private readonly options: DataQualityOptions) {
    this.now = options.now ?? Date.now;
  }

  /** Devices kept by name (OVERFLOW not included). */
  get deviceCount(): number {
    return this.devices.size - (this.devices.has(`${OVERFLOW}/${OVERFLOW}`) ? 1 : 0);
  }

  /** Records one stored message of `line`/`device`, sent at device time `ts`, with its `seq` if it has one; without a `ts` it is only counted (a status: its will was composed at connect). */
  record(line: string, device: string, ts: number | undefined, seq: number | undefined): void {
    const entry = this.entryOf(line, device);
    const counts: Partial<QualityCounts> = { messages: 1 };
    if (seq !== undefined && ts !== undefined) {
      const before = { ...this.sequences.counters };
      this.sequences.check(`${line}/${device}`, seq, ts);
      for (const field of SEQUENCE_FIELDS) counts[field] = this.sequences.counters[field] - before[field];
    }
    if (ts !== undefined) {
      // The overflow bucket mixes devices: no newest ts of its own to be late behind.
      if (entry.device !== OVERFLOW && ts < entry.newestTs - this.options.lateAfterMs) counts.late_ts = 1;
      if (ts > this.now() + this.options.futureAheadMs) counts.future_ts = 1;
      if (ts > entry.newestTs) entry.newestTs = ts;
    }
    for (const field of QUALITY_FIELDS) {
      const add = counts[field] ?? 0;
      entry.totals[field] += add;
      entry.delta[field] += add;
    }
  }

  /** Every device's totals (for /metrics). */
  all(): DeviceQuality[] {
    return [...this.devices.values()];
  }

  /** One device's counts, if it sent anything. */
  get(line: string, device: string): DeviceQuality | undefined {
    return this.devices.get(`${line}/${device}`);
  }

  /** The deltas since the last take() of each device that sent something meanwhile; they start again from 0. */
  take(): DeviceQuality[] {
    const out: DeviceQuality[] = [];
    for (const entry of this.devices.values()) {
      if (entry.delta.messages === 0) continue;
      out.push({ line: entry.line, device: entry.device, totals: { ...entry.totals }, delta: entry.delta });
      entry.delta = zeroCounts();
    }
    return out;
  }

  /** Gives deltas back (they could not be stored): the next take() has them again. */
  giveBack(taken: readonly DeviceQuality[]): void {
    for (const quality of taken) {
      const entry = this.devices.get(`${quality.line}/${quality.device}`);
      if (!entry) continue;
      for (const field of QUALITY_FIELDS) entry.delta[field] += quality.delta[field];
    }
  }

  private entryOf(line: string, device: string): Entry {
    const key = `${line}/${device}`;
    const known = this.devices.get(key);
    if (known) return known;
    if (this.deviceCount < this.options.maxDevices) return this.add(key, line, device);
    this.overflowMessages++;
    this.options.onOverflow?.(line, device);
    const overflow = `${OVERFLOW}/${OVERFLOW}`;
    return this.devices.get(overflow) ?? this.add(overflow, OVERFLOW, OVERFLOW);
  }

  private add(key: string, line: string, device: string): Entry {
    const entry: Entry = { line, device, totals: zeroCounts(), delta: zeroCounts(), newestTs: Number.NEGATIVE_INFINITY };
    this.devices.set(key, entry);
    return entry;
  }
}

/** Each device's totals as `linewatch_quality_<field>{line, device}` counters for /metrics (the Historian's, or a worker thread's snapshot of them). */
export function qualityCounters(devices: readonly Pick<DeviceQuality, 'line' | 'device' | 'totals'>[]): LabelledCounter[] {
  const out: LabelledCounter[] = [];
  for (const device of devices) {
    for (const field of QUALITY_FIELDS) out.push({ key: `quality_${field}`, labels: { line: device.line, device: device.device }, value: device.totals[field] });
  }
  return out;
}
