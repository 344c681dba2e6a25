// The one lifecycle every linewatch service has (broker, gateway, simulators, rules, historian,
// dashboard, oee): start, stop (drain, flush, close), health, and typed counters for the status
// line and /metrics. What a service folder declares about itself (its name, config section, the
// topics it uses and how to build it) is its ServiceModule (lib/service-module.ts).

export type Counters = Record<string, number>;

/**
 * ok: doing its job. degraded: doing it with a stated handicap (InfluxDB down and the spool
 * filling, a serial port closed) — still up, /healthz answers 200 with the reasons. down: not
 * doing it (not connected to the broker, refusing events) — /healthz answers 503.
 */
export type HealthStatus = 'ok' | 'degraded' | 'down';

export interface Health {
  readonly status: HealthStatus;
  /** Why it is not ok, one short sentence per reason (empty when ok). */
  readonly reasons: readonly string[];
  /** What else /healthz tells about it, whatever the status (e.g. the broker it is connected to). */
  readonly details?: Readonly<Record<string, string | number | readonly string[]>>;
}

export const HEALTHY: Health = Object.freeze({ status: 'ok', reasons: Object.freeze([]) as readonly string[] });

/** The worst of several healths, with every reason kept (a service made of parts, /healthz of a process). */
export function worstHealth(healths: readonly Health[]): Health {
  const rank: Record<HealthStatus, number> = { ok: 0, degraded: 1, down: 2 };
  let status: HealthStatus = 'ok';
  const reasons: string[] = [];
  for (const health of healths) {
    if (rank[health.status] > rank[status]) status = health.status;
    reasons.push(...health.reasons);
  }
  return status === 'ok' ? HEALTHY : { status, reasons };
}

/** A health built from conditions: each failed check adds its reason at its level. */
export function healthFrom(checks: ReadonlyArray<{ failed: boolean; status: Exclude<HealthStatus, 'ok'>; reason: string }>): Health {
  return worstHealth(checks.filter((check) => check.failed).map((check) => ({ status: check.status, reasons: [check.reason] })));
}

export interface Service {
  readonly name: string;
  start(): Promise<void>;
  /** Drains in-flight work, flushes buffers and closes connections. Idempotent. */
  stop(): Promise<void>;
  /** Whether it is doing its job now, and if not, why (cheap: read at every /healthz). */
  health(): Health;
  /**
   * Counters (monotonic since start) and gauges (a current level), e.g. { received: 10,
   * queue_depth: 3 }. The keys that are gauges are named in `gauges`; every other key is a counter.
   */
  counters(): Counters;
  /** The keys of counters() that are levels, not totals (exported as Prometheus gauges). */
  readonly gauges: ReadonlySet<string>;
  /**
   * What this instance does, as text (e.g. `lines: "A,B"` for a worker that owns lines A and B):
   * beside its health in /healthz, and in /metrics as `linewatch_<key>_info{service, <key>} 1`.
   */
  info?(): ServiceInfo;
  /** Totals with labels of their own (the historian's per device), in /metrics as `linewatch_<key>{service, …labels}` (lib/metrics.ts); bounded by the service. */
  labelledCounters?(): ReadonlyArray<{ key: string; labels: Readonly<Record<string, string>>; value: number }>;
}

/** Text facts about a service instance (keys as metric names: letters, digits, _). */
export type ServiceInfo = Readonly<Record<string, string>>;
