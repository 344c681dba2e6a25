// The one lifecycle every linewatch service has (broker, gateway, simulators, rules, historian,
// dashboard): start, stop (drain, flush, close), and counters for health and /metrics.

export type Counters = Record<string, number>;

export interface Service {
  readonly name: string;
  start(): Promise<void>;
  /** Drains in-flight work, flushes buffers and closes connections. Idempotent. */
  stop(): Promise<void>;
  /** Monotonic counters and gauges, e.g. { received: 10, refused_schema: 2 }. */
  counters(): Counters;
}
