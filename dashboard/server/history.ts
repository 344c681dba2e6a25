// /api/history: a time series from InfluxDB for the charts. Every parameter is validated with
// zod and every user-given name or value reaches InfluxQL only through the `influx` package's
// escapers (identifiers double-quoted, tag values as string literals, times as integers).
import { escape } from 'influx';
import { z } from 'zod';
import { DEVICE_TYPES } from '../../contracts/schemas.js';
import { formatIssues } from '../../contracts/validate.js';
import { connectInflux, type InfluxConnection, type InfluxEndpoint } from '../../lib/influx-url.js';
import { parseTime, TIME_UNIT_MS } from '../../lib/time-arg.js';
import { DEFAULT_PERIOD_POLICY, PERIOD_MEASUREMENTS } from '../../contracts/period-rows.js';

const IDENT = /^[A-Za-z_][A-Za-z0-9_]{0,63}$/;
const ID = /^[A-Za-z0-9_-]{1,64}$/;
const DURATION = /^([1-9][0-9]{0,5})(s|m|h|d)$/;
const UNIT_MS = TIME_UNIT_MS;
/** Longest range one query may cover. */
const MAX_RANGE_MS = 31 * UNIT_MS.d;
/** Upper bound on buckets per series, so a chart never asks for a million points. */
const MAX_BUCKETS = 2000;
const RAW_LIMIT = 5000;

export const AGGREGATES = ['mean', 'max', 'min', 'sum', 'last', 'count', 'spread', 'none'] as const;

const timeParam = (name: string, fallback: string) =>
  z
    .string()
    .max(64)
    .default(fallback)
    .transform((v, ctx) => {
      const t = parseTime(v, Date.now());
      if (t === undefined) {
        ctx.addIssue({ code: 'custom', message: `${name} must be "now", a relative time like "-6h", epoch milliseconds or an ISO date; got "${v}"` });
        return z.NEVER;
      }
      return t;
    });

export const historyQuerySchema = z
  .strictObject({
    measurement: z.string().regex(IDENT, 'must be a measurement name (letters, digits, _), e.g. telemetry'),
    field: z.string().regex(IDENT, 'must be a field name (letters, digits, _), e.g. speed'),
    from: timeParam('from', '-1h'),
    to: timeParam('to', 'now'),
    line: z.string().regex(ID, 'must be a line id (1–64 of A–Z a–z 0–9 _ -)').optional(),
    device: z.string().regex(ID, 'must be a device id (1–64 of A–Z a–z 0–9 _ -)').optional(),
    type: z.enum(DEVICE_TYPES).optional(),
    agg: z.enum(AGGREGATES).default('mean'),
    every: z.string().regex(DURATION, 'must be a duration like 10s, 5m, 1h or 1d').optional(),
    by: z.enum(['device', 'none']).default('device'),
    /** The measurement `oee`: which periods (hour, shift, day) and whose (line, station). */
    period: z.enum(['hour', 'shift', 'day']).optional(),
    scope: z.enum(['line', 'station']).optional(),
  })
  .refine((q) => q.from < q.to, { message: 'from must be before to', path: ['from'] })
  .refine((q) => q.to - q.from <= MAX_RANGE_MS, { message: 'the range may cover at most 31 days; narrow from/to', path: ['from'] });

export type HistoryQuery = z.output<typeof historyQuerySchema>;

export type HistoryParseResult = { ok: true; query: HistoryQuery } | { ok: false; error: string };

/** Validates URL search parameters; the error names each bad parameter. */
export function parseHistoryQuery(params: URLSearchParams): HistoryParseResult {
  const raw: Record<string, string> = {};
  for (const [k, v] of params) if (k !== 'token') raw[k] = v;
  const parsed = historyQuerySchema.safeParse(raw);
  if (!parsed.success) return { ok: false, error: formatIssues('history', parsed.error.issues) };
  return { ok: true, query: parsed.data };
}

/** A bucket width that keeps at most MAX_BUCKETS points per series (at least 1 s). */
export function bucketMs(q: HistoryQuery): number {
  if (q.every) {
    const m = DURATION.exec(q.every)!;
    return Math.max(Number(m[1]) * UNIT_MS[m[2] as keyof typeof UNIT_MS], Math.ceil((q.to - q.from) / MAX_BUCKETS));
  }
  return Math.max(1000, Math.ceil((q.to - q.from) / 300 / 1000) * 1000);
}

/** `"measurement"`, or `"policy"."measurement"` for a period row's (they are kept in their own policy, not raw). */
export function fromClause(measurement: string, periodPolicy: string = DEFAULT_PERIOD_POLICY): string {
  return PERIOD_MEASUREMENTS.has(measurement) ? `${escape.quoted(periodPolicy)}.${escape.quoted(measurement)}` : escape.quoted(measurement);
}

/** The InfluxQL for `q`. Pure, so its escaping is unit-tested. */
export function buildHistoryQuery(q: HistoryQuery, periodPolicy?: string): string {
  const field = escape.quoted(q.field);
  const where = [`time >= ${Math.trunc(q.from)}ms`, `time <= ${Math.trunc(q.to)}ms`];
  if (q.line) where.push(`"line" = ${escape.stringLit(q.line)}`);
  if (q.device) where.push(`"device" = ${escape.stringLit(q.device)}`);
  if (q.type) where.push(`"type" = ${escape.stringLit(q.type)}`);
  if (q.period) where.push(`"period" = ${escape.stringLit(q.period)}`);
  if (q.scope) where.push(`"scope" = ${escape.stringLit(q.scope)}`);
  const from = fromClause(q.measurement, periodPolicy);
  const groupTags = q.by === 'device' ? `, "device"` : '';
  if (q.agg === 'none') {
    return `SELECT ${field} AS "value" FROM ${from} WHERE ${where.join(' AND ')}${groupTags ? ` GROUP BY "device"` : ''} ORDER BY time ASC LIMIT ${RAW_LIMIT}`;
  }
  return `SELECT ${q.agg}(${field}) AS "value" FROM ${from} WHERE ${where.join(' AND ')} GROUP BY time(${bucketMs(q)}ms)${groupTags} fill(none)`;
}

/** /api/downtime: the line's stops that began in [from, to), by cause. */
export const downtimeQuerySchema = z
  .strictObject({
    from: timeParam('from', '-8h'),
    to: timeParam('to', 'now'),
    line: z.string().regex(ID, 'must be a line id (1–64 of A–Z a–z 0–9 _ -)').optional(),
  })
  .refine((q) => q.from < q.to, { message: 'from must be before to', path: ['from'] })
  .refine((q) => q.to - q.from <= MAX_RANGE_MS, { message: 'the range may cover at most 31 days; narrow from/to', path: ['from'] });
export type DowntimeQuery = z.output<typeof downtimeQuerySchema>;

export function parseDowntimeQuery(params: URLSearchParams): { ok: true; query: DowntimeQuery } | { ok: false; error: string } {
  const raw: Record<string, string> = {};
  for (const [k, v] of params) if (k !== 'token') raw[k] = v;
  const parsed = downtimeQuerySchema.safeParse(raw);
  if (!parsed.success) return { ok: false, error: formatIssues('downtime', parsed.error.issues) };
  return { ok: true, query: parsed.data };
}

/** Rows one Pareto reads at most. */
const DOWNTIME_LIMIT = 20_000;

/** The InfluxQL of the line-scope stops (one reason at a time: each stop counted once, as its cause). */
export function buildDowntimeQuery(q: DowntimeQuery, periodPolicy?: string): string {
  const where = [`time >= ${Math.trunc(q.from)}ms`, `time < ${Math.trunc(q.to)}ms`, `"scope" = 'line'`];
  if (q.line) where.push(`"line" = ${escape.stringLit(q.line)}`);
  return `SELECT "unplannedMs", "reason", "micro" FROM ${fromClause('downtime', periodPolicy)} WHERE ${where.join(' AND ')} GROUP BY "state" LIMIT ${DOWNTIME_LIMIT}`;
}

/** A reason with its numbers taken out (`motor over temperature (93.1 °C)` → `motor over temperature (# °C)`), so one cause is one bar. */
export function causeOf(reason: unknown): string {
  return typeof reason === 'string' && reason !== '' ? reason.replace(/\d+(\.\d+)?/g, '#') : '(no reason given)';
}

export interface DowntimeCause {
  state: string;
  reason: string;
  stops: number;
  unplannedMs: number;
}

export interface HistorySeries {
  device: string | null;
  points: Array<[number, number | string | boolean | null]>;
}

export interface HistoryResult {
  measurement: string;
  field: string;
  from: number;
  to: number;
  bucketMs: number | null;
  series: HistorySeries[];
}

/** Where the history is: a URL as the historian takes it (path prefix, credentials, https, port), and the policy of the period rows (historian.periodRetentionPolicy; default `periods`). */
export interface InfluxTarget extends InfluxEndpoint {
  periodRetentionPolicy?: string;
}

export class HistoryReader {
  private readonly connection: InfluxConnection;

  constructor(private readonly target: InfluxTarget) {
    this.connection = connectInflux(target);
  }

  /** The retention policy the period rows are read from. */
  get periodPolicy(): string {
    return this.target.periodRetentionPolicy ?? DEFAULT_PERIOD_POLICY;
  }

  /** Closes the kept-alive connections to InfluxDB. */
  close(): void {
    this.connection.close();
  }

  /** Runs one InfluxQL query built here (every name and value escaped). */
  async raw(text: string): Promise<RawResponse> {
    return (await this.connection.influx.queryRaw(text, { precision: 'ms', database: this.target.database })) as RawResponse;
  }

  async read(q: HistoryQuery): Promise<HistoryResult> {
    const text = buildHistoryQuery(q, this.periodPolicy);
    const raw = await this.raw(text);
    const result = raw.results?.[0];
    if (result?.error) throw new Error(`InfluxDB refused the query: ${result.error}`);
    const series: HistorySeries[] = (result?.series ?? []).map((s) => ({
      device: s.tags?.device ?? null,
      points: s.values.map((row) => [Number(row[0]), row[1] ?? null] as [number, number | string | boolean | null]),
    }));
    return { measurement: q.measurement, field: q.field, from: q.from, to: q.to, bucketMs: q.agg === 'none' ? null : bucketMs(q), series };
  }
}

export async function readDowntime(reader: HistoryReader, q: DowntimeQuery): Promise<{ from: number; to: number; causes: DowntimeCause[]; truncated: boolean }> {
  const raw = await reader.raw(buildDowntimeQuery(q, reader.periodPolicy));
  const result = raw.results?.[0];
  if (result?.error) throw new Error(`InfluxDB refused the query: ${result.error}`);
  const causes = new Map<string, DowntimeCause>();
  let rows = 0;
  for (const series of result?.series ?? []) {
    const state = series.tags?.state ?? '?';
    const col = (name: string): number => series.columns.indexOf(name);
    for (const row of series.values) {
      rows++;
      const unplanned = Number(row[col('unplannedMs')] ?? 0);
      if (!(unplanned > 0)) continue; // planned stops (maintenance, breaks) are not losses
      const reason = causeOf(row[col('reason')]);
      const key = `${state}\u0000${reason}`;
      const cause = causes.get(key) ?? { state, reason, stops: 0, unplannedMs: 0 };
      cause.stops++;
      cause.unplannedMs += unplanned;
      causes.set(key, cause);
    }
  }
  return { from: q.from, to: q.to, causes: [...causes.values()].sort((a, b) => b.unplannedMs - a.unplannedMs), truncated: rows >= DOWNTIME_LIMIT };
}

interface RawResponse {
  results?: Array<{
    error?: string;
    series?: Array<{ name: string; tags?: Record<string, string>; columns: string[]; values: Array<Array<number | string | boolean | null>> }>;
  }>;
}
