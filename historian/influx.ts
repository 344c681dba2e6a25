// The historian's InfluxDB connection (lib/influx-url.ts: one client from one URL, retries and
// host-disabling switched off because the historian owns them): line-protocol writes through its
// request pool, and database setup through its admin API.
import type { InfluxDB } from 'influx';
import { RequestError } from 'influx/lib/src/pool.js';
import { connectInflux, type InfluxConnection, type InfluxEndpoint } from '../lib/influx-url.js';
import type { HistorianConfig } from './config.js';
import { measurementOf } from './late-data.js';
import { PERIOD_MEASUREMENTS } from '../contracts/period-rows.js';

/** Why a write failed, and so what to do about it. */
export type WriteFailure =
  | { kind: 'retry'; message: string } // unreachable, 5xx, timeout, auth (an operator can fix it): keep the batch, back off
  | { kind: 'missing-database'; message: string } // 404: set the database up again, then retry
  | { kind: 'rejected'; message: string; partial: boolean; exact: boolean; reported: number }; // 400: InfluxDB refuses points (see rejection())

export interface InfluxTarget extends InfluxEndpoint {
  retentionPolicy?: string;
  /** Where the period rows (PERIOD_MEASUREMENTS) go instead: historian.periodRetentionPolicy. Unset: with the rest. */
  periodRetentionPolicy?: string;
}

export class InfluxClient {
  readonly admin: InfluxDB;
  private readonly connection: InfluxConnection;
  private readonly query: Record<string, string>;
  private readonly periodQuery: Record<string, string> | undefined;

  constructor(readonly target: InfluxTarget) {
    this.connection = connectInflux(target);
    this.admin = this.connection.influx;
    this.query = { db: target.database, precision: 'n', ...(target.retentionPolicy ? { rp: target.retentionPolicy } : {}) };
    this.periodQuery = target.periodRetentionPolicy ? { db: target.database, precision: 'n', rp: target.periodRetentionPolicy } : undefined;
  }

  /** Closes the kept-alive connections (they would otherwise hold the process open). */
  close(): void {
    this.connection.close();
  }

  /** Writes newline-separated line protocol (ns timestamps) to the write policy. Rejects with a WriteFailure. */
  async write(body: string, query: Record<string, string> = this.query): Promise<void> {
    try {
      await this.connection.pool.discard({ method: 'POST', path: '/write', query, body, auth: this.connection.auth });
    } catch (err) {
      throw classify(err);
    }
  }

  /**
   * Writes lines of line protocol, the period rows (PERIOD_MEASUREMENTS) to periodRetentionPolicy
   * and the rest to the write policy: one request per policy. A request that cannot be made
   * rejects at once (retry: writing a stored point again stores nothing twice); 400 answers are
   * added up into one `rejected` failure for the lines as a whole (partial when any were stored).
   */
  async writeLines(lines: readonly string[]): Promise<void> {
    if (!this.periodQuery) return this.write(lines.join('\n'));
    const periods: string[] = [];
    const rest: string[] = [];
    for (const line of lines) (PERIOD_MEASUREMENTS.has(measurementOf(line)) ? periods : rest).push(line);
    const groups = [
      { lines: rest, query: this.query },
      { lines: periods, query: this.periodQuery },
    ].filter((group) => group.lines.length > 0);
    const only = groups.length === 1 ? groups[0] : undefined;
    if (only) return this.write(only.lines.join('\n'), only.query);
    let storedSome = false;
    let refused = 0;
    let exact = true;
    const messages: string[] = [];
    for (const group of groups) {
      try {
        await this.write(group.lines.join('\n'), group.query);
        storedSome = true;
      } catch (err) {
        const failure = err as WriteFailure;
        if (failure.kind !== 'rejected') throw failure;
        messages.push(failure.message);
        // A partial write stored the rest of its group; any other 400 stored none of it.
        storedSome ||= failure.partial;
        refused += failure.partial ? failure.reported : group.lines.length;
        exact &&= failure.partial ? failure.exact : true;
      }
    }
    if (messages.length === 0) return;
    const failure: WriteFailure = storedSome ? { kind: 'rejected', message: messages.join('; '), partial: true, exact, reported: refused } : { kind: 'rejected', message: messages.join('; '), partial: false, exact: false, reported: 0 };
    throw failure;
  }

  /**
   * Runs InfluxQL statements in one request (POST /query, `;`-separated) and returns each one's
   * error, or undefined where it succeeded. Rejects with a WriteFailure when the request itself fails.
   */
  async run(statements: readonly string[]): Promise<(string | undefined)[]> {
    let answer: { results?: { statement_id?: number; error?: string }[]; error?: string };
    try {
      const body = new URLSearchParams({ q: statements.join(';'), db: this.target.database }).toString();
      answer = (await this.connection.pool.json({ method: 'POST', path: '/query', body, auth: this.connection.auth })) as typeof answer;
    } catch (err) {
      throw classify(err);
    }
    if (answer.error) return statements.map(() => answer.error);
    const results = answer.results ?? [];
    // InfluxDB answers one result per statement, in order, until the first that fails.
    return statements.map((_, index) => (index < results.length ? results[index]?.error : 'not run: an earlier statement of the request failed'));
  }
}

export function classify(err: unknown): WriteFailure {
  if (err instanceof RequestError) {
    const status = err.res?.statusCode ?? 0;
    const message = `InfluxDB answered ${status}: ${err.message}`;
    if (status === 404) return { kind: 'missing-database', message };
    if (status === 400) return { kind: 'rejected', message, ...rejection(err.message) };
    if (status === 401 || status === 403) return { kind: 'retry', message: `${message} (check historian.username/password; for InfluxDB 2.x/3.x the password is an API token)` };
    return { kind: 'retry', message };
  }
  const e = err as NodeJS.ErrnoException;
  return { kind: 'retry', message: `InfluxDB is unreachable: ${e.code ? `${e.code} ` : ''}${e.message}` };
}

/**
 * What a 400 answer says about a batch. InfluxDB 1.x (checked against influxd 1.6.7) stores the
 * good points of a batch and answers `partial write: <reason> dropped=N` for the others:
 * `unable to parse '<line>': …` once per unparseable line (with dropped=0), or `points beyond
 * retention policy` / `field type conflict` with dropped=N. When both kinds occur in one batch
 * it reports only the second, so `reported` is exact only when the answer lists unparseable
 * lines (then everything else was stored), else a lower bound. A 400 that is not a partial write
 * stored nothing.
 */
export function rejection(message: string): { partial: boolean; exact: boolean; reported: number } {
  const partial = message.includes('partial write');
  const dropped = Number(/dropped=(\d+)/.exec(message)?.[1] ?? 0);
  const unparseable = message.split("unable to parse '").length - 1;
  return { partial, exact: partial && unparseable > 0, reported: dropped + unparseable };
}

/** The period rows that versions before the period policy wrote to raw. */
const LEGACY_RAW_PERIOD_MEASUREMENTS = ['oee', 'downtime'] as const;

/**
 * Creates the database, its retention policies (raw = default, "1m", "1h", and the period rows'
 * periodRetentionPolicy) and the continuous queries that fill the downsampled ones. Safe to run
 * on every start: existing policies are altered to the configured durations and the queries are
 * recreated. When it creates the period policy, it first copies the period rows an earlier
 * version left in raw into it.
 */
export async function setupDatabase(admin: InfluxDB, config: Pick<HistorianConfig, 'database' | 'retention' | 'retentionPolicy' | 'periodRetentionPolicy'>): Promise<void> {
  const db = config.database;
  await admin.createDatabase(db);
  const existing = new Set((await admin.showRetentionPolicies(db)).map((rp) => rp.name));
  const policies: [string, string, boolean][] = [
    ['raw', config.retention.raw, true],
    ['1m', config.retention.minute, false],
    ['1h', config.retention.hour, false],
  ];
  if (!policies.some(([name]) => name === config.periodRetentionPolicy)) policies.push([config.periodRetentionPolicy, config.retention.periods, false]);
  for (const [name, duration, isDefault] of policies) {
    const options = { database: db, duration, replication: 1, isDefault };
    if (existing.has(name)) await admin.alterRetentionPolicy(name, options);
    else await admin.createRetentionPolicy(name, options);
  }
  const rawPolicy = config.retentionPolicy ?? 'raw';
  if (!existing.has(config.periodRetentionPolicy) && rawPolicy !== config.periodRetentionPolicy) {
    // The start that creates the period policy: the period rows an earlier version wrote to raw are
    // copied there once (the same points: same tags and times), so the readers, which read them
    // there now, still find them.
    // If the copy fails, the new policy is dropped again (it holds only what was copied), so the
    // next start, seeing no period policy, copies again: copying twice writes the same points.
    const quoted = (name: string): string => `"${name.replace(/"/g, '\\"')}"`;
    try {
      for (const measurement of LEGACY_RAW_PERIOD_MEASUREMENTS) {
        const answer = (await admin.queryRaw(`SELECT * INTO ${quoted(db)}.${quoted(config.periodRetentionPolicy)}.${quoted(measurement)} FROM ${quoted(db)}.${quoted(rawPolicy)}.${quoted(measurement)} GROUP BY *`, { database: db, method: 'POST' })) as { results?: { error?: string }[] };
        const error = answer.results?.[0]?.error;
        if (error) throw new Error(`copying the ${measurement} rows of ${rawPolicy} into ${config.periodRetentionPolicy}: ${error}`);
      }
    } catch (err) {
      await admin.dropRetentionPolicy(config.periodRetentionPolicy, db).catch(() => undefined);
      throw err;
    }
  }
  const cqs = new Set((await admin.showContinousQueries(db)).map((cq) => cq.name));
  for (const [name, query] of continuousQueries(db, config.retentionPolicy ?? 'raw')) {
    if (cqs.has(name)) await admin.dropContinuousQuery(name, db);
    await admin.createContinuousQuery(name, query, db);
  }
}

/** One downsampled series: what a continuous query computes, and the same for a time range (late data). */
export interface Downsample {
  /** The continuous query's name, e.g. lw_telemetry_1m. */
  name: string;
  /** The retention policy it fills ("1m" or "1h") and its bucket width. */
  policy: '1m' | '1h';
  everyMs: number;
  /** The raw measurement it reads (and the downsampled one it writes). */
  measurement: string;
  /** The SELECT … INTO … statement; with a range, only the buckets in [fromMs, toMs) (both on bucket boundaries). */
  statement(range?: { fromMs: number; toMs: number }): string;
}

/** The downsampled series of the raw ones into "1m" and "1h": the continuous queries, and what re-aggregates late data (historian/late-data.ts). */
export function downsamples(db: string, rawPolicy: string): Downsample[] {
  const q = (s: string): string => `"${s.replace(/"/g, '\\"')}"`;
  const out: Downsample[] = [];
  for (const [policy, everyMs] of [
    ['1m', 60_000],
    ['1h', 3_600_000],
  ] as const) {
    const from = (m: string): string => `${q(db)}.${q(rawPolicy)}.${q(m)}`;
    const into = (m: string): string => `${q(db)}.${q(policy)}.${q(m)}`;
    const group = `GROUP BY time(${policy}), *`;
    const series: [string, string][] = [
      ['telemetry', 'mean(*), min(*), max(*)'],
      ['line', 'mean(*)'],
      ['state', 'count("code") AS "changes", last("code") AS "last_code"'],
      ['commands', 'count("id") AS "count"'],
      ['alerts', 'count("id") AS "count", sum("raised") AS "raised"'],
    ];
    for (const [measurement, fields] of series) {
      out.push({
        name: `lw_${measurement}_${policy}`,
        policy,
        everyMs,
        measurement,
        statement: (range) => {
          const where = range ? ` WHERE time >= '${new Date(range.fromMs).toISOString()}' AND time < '${new Date(range.toMs).toISOString()}'` : '';
          return `SELECT ${fields} INTO ${into(measurement)} FROM ${from(measurement)}${where} ${group}`;
        },
      });
    }
  }
  return out;
}

/** The continuous queries that downsample the raw series into "1m" and "1h" (name, SELECT). */
export function continuousQueries(db: string, rawPolicy: string): [string, string][] {
  return downsamples(db, rawPolicy).map((d) => [d.name, d.statement()]);
}
