// The host's raw metrics out (docs/sparkplug.md#raw-metrics): each birth, data and death of an
// edge node or device as its metrics with their datatypes, on lw/_sparkplug/… for the historian
// (contracts/sparkplug/raw-metrics.ts). The series (group, edge, device, metric, datatype) it
// has published are bounded by sparkplug.rawMetricsMaxSeries: a metric of a new series beyond it
// is left out, counted and logged at a bounded rate, so an edge node that names a metric after a
// counter cannot grow InfluxDB's series without end; the series already known keep flowing.
import type { Bus } from '../bus/bus.js';
import { MAX_TIMESTAMP_MS } from '../contracts/schemas.js';
import { rawMetricsTopic, type RawMetric, type RawMetrics, type RawMetricsSource } from '../contracts/sparkplug/raw-metrics.js';
import type { MetricValue } from '../contracts/sparkplug/codec.js';
import type { LogLimiter } from '../lib/log-limit.js';

/** One metric as it came: its definition's name, alias and datatype; the value and timestamp of this message. */
export interface RawMetricIn {
  name: string;
  alias?: number;
  type: string;
  value: MetricValue;
  timestamp?: number;
  stale: boolean;
}

export interface RawMetricsOutOptions {
  bus: Bus;
  maxSeries: number;
  limitedLog: LogLimiter;
}

export class RawMetricsOut {
  readonly counters = { raw_messages_published: 0, raw_metrics_published: 0, raw_metrics_dropped: 0, raw_publish_failures: 0 };
  private readonly series = new Set<string>();

  constructor(private readonly options: RawMetricsOutOptions) {}

  /** The distinct series published so far (a gauge). */
  get seriesCount(): number {
    return this.series.size;
  }

  /** Publishes one message's metrics (none admitted: nothing is published). */
  publish(source: RawMetricsSource, header: Omit<RawMetrics, 'metrics'>, metrics: readonly RawMetricIn[]): void {
    const out: RawMetric[] = [];
    let dropped = 0;
    for (const metric of metrics) {
      if (!this.admit(source, metric)) {
        dropped++;
        continue;
      }
      const ts = metric.timestamp !== undefined && metric.timestamp >= 0 && metric.timestamp <= MAX_TIMESTAMP_MS ? metric.timestamp : header.ts;
      // JSON has no NaN or Infinity: such a value travels as null (no value stored).
      const value = typeof metric.value === 'number' && !Number.isFinite(metric.value) ? null : metric.value;
      out.push({ name: metric.name, ...(metric.alias !== undefined ? { alias: metric.alias } : {}), type: metric.type, value, ts, stale: metric.stale });
    }
    if (dropped > 0) {
      this.counters.raw_metrics_dropped += dropped;
      const where = `${source.group}/${source.edge}${source.device === undefined ? '' : `/${source.device}`}`;
      this.options.limitedLog.write('warn', 'raw_metrics_dropped', { where, dropped, maxSeries: this.options.maxSeries }, `${where}: ${dropped} raw metric(s) of new series not stored: ${this.options.maxSeries} series already (sparkplug.rawMetricsMaxSeries)`);
    }
    if (out.length === 0) return;
    const payload: RawMetrics = { ...header, metrics: out };
    this.options.bus.publish(rawMetricsTopic(source.group, source.edge, source.device), JSON.stringify(payload), { qos: 1, retain: false }).then(
      () => {
        this.counters.raw_messages_published++;
        this.counters.raw_metrics_published += out.length;
      },
      (err: unknown) => {
        this.counters.raw_publish_failures++;
        this.options.limitedLog.write('warn', 'raw_publish', { group: source.group, edge: source.edge }, `could not publish raw Sparkplug metrics: ${(err as Error).message}`);
      },
    );
  }

  private admit(source: RawMetricsSource, metric: RawMetricIn): boolean {
    const key = JSON.stringify([source.group, source.edge, source.device ?? '', metric.name, metric.type]);
    if (this.series.has(key)) return true;
    if (this.series.size >= this.options.maxSeries) return false;
    this.series.add(key);
    return true;
  }
}
