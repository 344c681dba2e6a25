// /metrics for Prometheus, for the dashboard in `linewatch up` and for every standalone service
// (cli/standalone.ts): each source's counters() as `linewatch_<key>` with a `service` label, read
// at scrape time (nothing to keep in sync), typed `counter` or `gauge` as the source declares
// (Service.gauges), plus Node's process metrics. A source may also give counters with labels of
// their own (labelledCounters(): the historian's per-device data quality), each a counter
// `linewatch_<key>{service, <its labels>}`; the source bounds how many label sets it gives.
import { Counter, Gauge, Registry, collectDefaultMetrics } from 'prom-client';
import { logger } from './log.js';
import { LogLimiter } from './log-limit.js';
import type { Counters, ServiceInfo } from './service.js';

const log = logger('metrics');

export interface MetricSource {
  readonly name: string;
  counters(): Counters;
  /** The keys of counters() that are levels; every other key is exported as a counter. */
  readonly gauges?: ReadonlySet<string>;
  /** Text facts, each exported as `linewatch_<key>_info{service, <key>="…"} 1` (Service.info). */
  info?(): ServiceInfo;
  /** Totals with labels of their own, each exported as the counter `linewatch_<key>{service, …labels}`; every one of a key has the same label names. */
  labelledCounters?(): readonly LabelledCounter[];
}

export interface LabelledCounter {
  key: string;
  labels: Readonly<Record<string, string>>;
  value: number;
}

/** `refused schema` → `refused_schema`; Prometheus names are [a-zA-Z_:][a-zA-Z0-9_:]*. */
export function metricName(key: string): string {
  return `linewatch_${key.replace(/[^A-Za-z0-9_]/g, '_').replace(/^([0-9])/, '_$1')}`;
}

type Exported = { type: 'counter'; metric: Counter } | { type: 'gauge'; metric: Gauge };

export class Metrics {
  readonly registry = new Registry();
  private readonly exported = new Map<string, Exported>();
  private readonly infos = new Map<string, Gauge>();
  private readonly labelled = new Map<string, { metric: Counter; labelNames: string[] }>();
  private readonly conflicts = new LogLimiter(log, { linesPerInterval: 1, intervalMs: 3_600_000 });

  constructor(private readonly sources: () => readonly MetricSource[]) {
    collectDefaultMetrics({ register: this.registry, prefix: 'linewatch_' });
  }

  /** The text exposition format, with every source read now. */
  async render(): Promise<string> {
    for (const { metric } of this.exported.values()) metric.reset();
    for (const metric of this.infos.values()) metric.reset();
    for (const { metric } of this.labelled.values()) metric.reset();
    for (const source of this.sources()) {
      for (const counter of source.labelledCounters?.() ?? []) this.count(counter, source.name);
      for (const [key, value] of Object.entries(source.info?.() ?? {})) this.info(key, source.name, value);
      const counters: Counters = source.counters();
      for (const [key, value] of Object.entries(counters)) {
        if (typeof value !== 'number' || !Number.isFinite(value)) continue;
        this.set(metricName(key), source.gauges?.has(key) ? 'gauge' : 'counter', source.name, value);
      }
    }
    return this.registry.metrics();
  }

  get contentType(): string {
    return this.registry.contentType;
  }

  private set(name: string, type: Exported['type'], service: string, value: number): void {
    const exported = this.exported.get(name) ?? this.register(name, type);
    if (exported.type !== type) {
      // Two services name different things alike; one type per name is all Prometheus allows.
      this.conflicts.write('warn', 'type_conflict', { metric: name, service, declared: type, exportedAs: exported.type }, `metric ${name} is a ${type} in ${service} but was first exported as a ${exported.type}; exported as a ${exported.type}`);
    }
    if (exported.type === 'gauge') exported.metric.set({ service }, value);
    else if (value >= 0) exported.metric.inc({ service }, value);
  }

  /** A counter with labels of its own; one with other label names than its key's first is left out (and logged). */
  private count(counter: LabelledCounter, service: string): void {
    if (!Number.isFinite(counter.value) || counter.value < 0) return;
    const name = metricName(counter.key);
    let exported = this.labelled.get(name);
    if (!exported) {
      const labelNames = Object.keys(counter.labels).sort();
      if (this.exported.has(name) || this.infos.has(name)) {
        this.conflicts.write('warn', 'labelled_conflict', { metric: name, service }, `metric ${name} of ${service} has labels but the name is taken by one without; left out`);
        return;
      }
      exported = { labelNames, metric: new Counter({ name, help: `linewatch counter "${name.slice('linewatch_'.length)}" by service and ${labelNames.join(', ')}`, labelNames: ['service', ...labelNames], registers: [this.registry] }) };
      this.labelled.set(name, exported);
    }
    const names = Object.keys(counter.labels);
    if (names.length !== exported.labelNames.length || names.some((label) => !exported.labelNames.includes(label))) {
      this.conflicts.write('warn', 'label_names', { metric: name, service, labels: names }, `metric ${name} of ${service} came with labels ${names.join(', ')}, not ${exported.labelNames.join(', ')}; left out`);
      return;
    }
    exported.metric.inc({ service, ...counter.labels }, counter.value);
  }

  /** An info metric: `linewatch_<key>_info{service, <key>="value"} 1`. */
  private info(key: string, service: string, value: string): void {
    const label = key.replace(/[^A-Za-z0-9_]/g, '_');
    const name = `${metricName(label)}_info`;
    let metric = this.infos.get(name);
    if (!metric) {
      metric = new Gauge({ name, help: `linewatch info "${label}" by service (always 1; the value is the label)`, labelNames: ['service', label], registers: [this.registry] });
      this.infos.set(name, metric);
    }
    metric.set({ service, [label]: value }, 1);
  }

  private register(name: string, type: Exported['type']): Exported {
    const help = `linewatch ${type} "${name.slice('linewatch_'.length)}" by service`;
    const exported: Exported =
      type === 'gauge'
        ? { type, metric: new Gauge({ name, help, labelNames: ['service'], registers: [this.registry] }) }
        : { type, metric: new Counter({ name, help, labelNames: ['service'], registers: [this.registry] }) };
    this.exported.set(name, exported);
    return exported;
  }
}
