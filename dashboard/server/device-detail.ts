// GET /api/device: one device in detail — its live view (state, readings, online), its data
// quality (the data_quality rows of a range added up, the latest intervals, and this process's
// totals when the historian runs beside the dashboard) and its recent states and readings from
// InfluxDB. Every parameter is validated with zod; names and values reach InfluxQL only through
// the `influx` package's escapers.
import { escape } from 'influx';
import { z } from 'zod';
import { QUALITY_FIELDS, type QualityCounts } from '../../contracts/period-rows.js';
import { formatIssues } from '../../contracts/validate.js';
import { parseTime } from '../../lib/time-arg.js';
import { fromClause, type HistoryReader } from './history.js';

const ID = /^[A-Za-z0-9_-]{1,64}$/;
/** Data-quality intervals, states and telemetry rows answered at most. */
export const DEVICE_DETAIL_ROWS = 20;

const time = (name: string, fallback: string) =>
  z
    .string()
    .max(64)
    .default(fallback)
    .transform((value, ctx) => {
      const parsed = parseTime(value, Date.now());
      if (parsed === undefined) {
        ctx.addIssue({ code: 'custom', message: `${name} must be "now", a relative time like "-24h", epoch milliseconds or an ISO date; got "${value}"` });
        return z.NEVER;
      }
      return parsed;
    });

export const deviceQuerySchema = z
  .strictObject({
    line: z.string().regex(ID, 'must be a line id (1–64 of A–Z a–z 0–9 _ -)'),
    device: z.string().regex(ID, 'must be a device id (1–64 of A–Z a–z 0–9 _ -)'),
    from: time('from', '-24h'),
    to: time('to', 'now'),
  })
  .refine((query) => query.from < query.to, { message: 'from must be before to', path: ['from'] });
export type DeviceQuery = z.output<typeof deviceQuerySchema>;

export function parseDeviceQuery(params: URLSearchParams): { ok: true; query: DeviceQuery } | { ok: false; error: string } {
  const raw: Record<string, string> = {};
  for (const [key, value] of params) if (key !== 'token') raw[key] = value;
  const parsed = deviceQuerySchema.safeParse(raw);
  if (!parsed.success) return { ok: false, error: formatIssues('device', parsed.error.issues) };
  return { ok: true, query: parsed.data };
}

/** The four statements of one device's detail, in one request: quality sums, quality intervals, states, telemetry. Pure. */
export function buildDeviceQueries(query: DeviceQuery, periodPolicy?: string): string[] {
  const where = `time >= ${Math.trunc(query.from)}ms AND time < ${Math.trunc(query.to)}ms AND "line" = ${escape.stringLit(query.line)} AND "device" = ${escape.stringLit(query.device)}`;
  const quality = fromClause('data_quality', periodPolicy);
  return [
    `SELECT ${QUALITY_FIELDS.map((field) => `sum(${escape.quoted(field)}) AS ${escape.quoted(field)}`).join(', ')} FROM ${quality} WHERE ${where}`,
    `SELECT ${[...QUALITY_FIELDS, 'intervalMs'].map((field) => escape.quoted(field)).join(', ')} FROM ${quality} WHERE ${where} ORDER BY time DESC LIMIT ${DEVICE_DETAIL_ROWS}`,
    `SELECT "state", "reason" FROM "state" WHERE ${where} ORDER BY time DESC LIMIT ${DEVICE_DETAIL_ROWS}`,
    `SELECT * FROM "telemetry" WHERE ${where} ORDER BY time DESC LIMIT ${DEVICE_DETAIL_ROWS}`,
  ];
}

export interface DeviceHistory {
  from: number;
  to: number;
  /** The data_quality rows of [from, to) added up (zeros when there are none). */
  quality: QualityCounts;
  /** The latest data_quality rows (each one interval's counts), newest first. */
  intervals: Array<{ ts: number; intervalMs: number } & QualityCounts>;
  /** The latest stored states, newest first. */
  states: Array<{ ts: number; state: string; reason: string | null }>;
  /** The latest stored readings, newest first. */
  telemetry: Array<{ ts: number; values: Record<string, number> }>;
}

/** Telemetry columns that are not readings. */
const NOT_READINGS: ReadonlySet<string> = new Set(['time', 'device', 'line', 'station', 'type', 'seq']);

export async function readDeviceHistory(reader: HistoryReader, q: DeviceQuery): Promise<DeviceHistory> {
  const answer = await reader.raw(buildDeviceQueries(q, reader.periodPolicy).join(';'));
  const results = answer.results ?? [];
  const failed = results.find((result) => result.error);
  if (failed) throw new Error(`InfluxDB refused the query: ${failed.error}`);
  const rows = (index: number): Array<Record<string, unknown>> =>
    (results[index]?.series ?? []).flatMap((series) => series.values.map((row) => Object.fromEntries(series.columns.map((column, at) => [column, row[at]]))));
  const counts = (row: Record<string, unknown> | undefined): QualityCounts => Object.fromEntries(QUALITY_FIELDS.map((field) => [field, Number(row?.[field] ?? 0)])) as QualityCounts;
  return {
    from: q.from,
    to: q.to,
    quality: counts(rows(0)[0]),
    intervals: rows(1).map((row) => ({ ts: Number(row.time), intervalMs: Number(row.intervalMs ?? 0), ...counts(row) })),
    states: rows(2).map((row) => ({ ts: Number(row.time), state: String(row.state), reason: typeof row.reason === 'string' ? row.reason : null })),
    telemetry: rows(3).map((row) => ({
      ts: Number(row.time),
      values: Object.fromEntries(Object.entries(row).filter(([column, value]) => !NOT_READINGS.has(column) && typeof value === 'number') as Array<[string, number]>),
    })),
  };
}
