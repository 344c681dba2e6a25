// /metrics for Prometheus: every registered service's counters() as `linewatch_<name>` with a
// `service` label, read at scrape time (nothing to keep in sync), plus Node's process metrics.
import { Gauge, Registry, collectDefaultMetrics } from 'prom-client';
import type { Counters } from '../../lib/service.js';

export interface MetricSource {
  readonly name: string;
  counters(): Counters;
}

/** `refused schema` → `refused_schema`; Prometheus names are [a-zA-Z_:][a-zA-Z0-9_:]*. */
export function metricName(key: string): string {
  return `linewatch_${key.replace(/[^A-Za-z0-9_]/g, '_').replace(/^([0-9])/, '_$1')}`;
}

export class Metrics {
  readonly registry = new Registry();
  private readonly gauges = new Map<string, Gauge>();

  constructor(private readonly sources: () => MetricSource[]) {
    collectDefaultMetrics({ register: this.registry, prefix: 'linewatch_' });
  }

  /** The text exposition format, with every source read now. */
  async render(): Promise<string> {
    for (const gauge of this.gauges.values()) gauge.reset();
    for (const source of this.sources()) {
      const counters: Counters = source.counters();
      for (const [key, value] of Object.entries(counters)) {
        if (typeof value !== 'number' || !Number.isFinite(value)) continue;
        this.gauge(metricName(key)).set({ service: source.name }, value);
      }
    }
    return this.registry.metrics();
  }

  get contentType(): string {
    return this.registry.contentType;
  }

  private gauge(name: string): Gauge {
    let g = this.gauges.get(name);
    if (!g) {
      g = new Gauge({ name, help: `linewatch counter "${name.slice('linewatch_'.length)}" by service`, labelNames: ['service'], registers: [this.registry] });
      this.gauges.set(name, g);
    }
    return g;
  }
}
