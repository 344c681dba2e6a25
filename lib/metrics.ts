// /metrics for Prometheus, for the dashboard in `linewatch up` and for every standalone service
// (cli/standalone.ts): each source's counters() as `linewatch_<key>` with a `service` label, read
// at scrape time (nothing to keep in sync), typed `counter` or `gauge` as the source declares
// (Service.gauges), plus Node's process metrics.
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
  private readonly conflicts = new LogLimiter(log, { linesPerInterval: 1, intervalMs: 3_600_000 });

  constructor(private readonly sources: () => readonly MetricSource[]) {
    collectDefaultMetrics({ register: this.registry, prefix: 'linewatch_' });
  }

  /** The text exposition format, with every source read now. */
  async render(): Promise<string> {
    for (const { metric } of this.exported.values()) metric.reset();
    for (const metric of this.infos.values()) metric.reset();
    for (const source of this.sources()) {
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
