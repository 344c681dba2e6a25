// The historian's InfluxDB connection (lib/influx-url.ts: one client from one URL, retries and
// host-disabling switched off because the historian owns them): line-protocol writes through its
// request pool, and database setup through its admin API.
import type { InfluxDB } from 'influx';
import { RequestError } from 'influx/lib/src/pool.js';
import { connectInflux, type InfluxConnection, type InfluxEndpoint } from '../lib/influx-url.js';
import type { HistorianConfig } from './config.js';

/** Why a write failed, and so what to do about it. */
export type WriteFailure =
  | { kind: 'retry'; message: string } // unreachable, 5xx, timeout, auth (an operator can fix it): keep the batch, back off
  | { kind: 'missing-database'; message: string } // 404: set the database up again, then retry
  | { kind: 'rejected'; message: string; partial: boolean; exact: boolean; reported: number }; // 400: InfluxDB refuses points (see rejection())

export interface InfluxTarget extends InfluxEndpoint {
  retentionPolicy?: string;
}

export class InfluxClient {
  readonly admin: InfluxDB;
  private readonly connection: InfluxConnection;
  private readonly query: Record<string, string>;

  constructor(readonly target: InfluxTarget) {
    this.connection = connectInflux(target);
    this.admin = this.connection.influx;
    this.query = { db: target.database, precision: 'n', ...(target.retentionPolicy ? { rp: target.retentionPolicy } : {}) };
  }

  /** Closes the kept-alive connections (they would otherwise hold the process open). */
  close(): void {
    this.connection.close();
  }

  /** Writes newline-separated line protocol (ns timestamps). Rejects with a WriteFailure. */
  async write(body: string): Promise<void> {
    try {
      await this.connection.pool.discard({ method: 'POST', path: '/write', query: this.query, body, auth: this.connection.auth });
    } catch (err) {
      throw classify(err);
    }
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

/**
 * Creates the database, its retention policies (raw = default, "1m", "1h") and the continuous
 * queries that fill the downsampled ones. Safe to run on every start: existing policies are
 * altered to the configured durations and the queries are recreated.
 */
export async function setupDatabase(admin: InfluxDB, config: Pick<HistorianConfig, 'database' | 'retention' | 'retentionPolicy'>): Promise<void> {
  const db = config.database;
  await admin.createDatabase(db);
  const existing = new Set((await admin.showRetentionPolicies(db)).map((rp) => rp.name));
  const policies: [string, string, boolean][] = [
    ['raw', config.retention.raw, true],
    ['1m', config.retention.minute, false],
    ['1h', config.retention.hour, false],
  ];
  for (const [name, duration, isDefault] of policies) {
    const options = { database: db, duration, replication: 1, isDefault };
    if (existing.has(name)) await admin.alterRetentionPolicy(name, options);
    else await admin.createRetentionPolicy(name, options);
  }
  const cqs = new Set((await admin.showContinousQueries(db)).map((cq) => cq.name));
  for (const [name, query] of continuousQueries(db, config.retentionPolicy ?? 'raw')) {
    if (cqs.has(name)) await admin.dropContinuousQuery(name, db);
    await admin.createContinuousQuery(name, query, db);
  }
}

/** The continuous queries that downsample the raw series into "1m" and "1h". */
export function continuousQueries(db: string, rawPolicy: string): [string, string][] {
  const q = (s: string): string => `"${s.replace(/"/g, '\\"')}"`;
  const out: [string, string][] = [];
  for (const [rp, every] of [
    ['1m', '1m'],
    ['1h', '1h'],
  ] as const) {
    const from = (m: string): string => `${q(db)}.${q(rawPolicy)}.${q(m)}`;
    const into = (m: string): string => `${q(db)}.${q(rp)}.${q(m)}`;
    const group = `GROUP BY time(${every}), *`;
    out.push(
      [`lw_telemetry_${rp}`, `SELECT mean(*), min(*), max(*) INTO ${into('telemetry')} FROM ${from('telemetry')} ${group}`],
      [`lw_line_${rp}`, `SELECT mean(*) INTO ${into('line')} FROM ${from('line')} ${group}`],
      [`lw_state_${rp}`, `SELECT count("code") AS "changes", last("code") AS "last_code" INTO ${into('state')} FROM ${from('state')} ${group}`],
      [`lw_commands_${rp}`, `SELECT count("id") AS "count" INTO ${into('commands')} FROM ${from('commands')} ${group}`],
      [`lw_alerts_${rp}`, `SELECT count("id") AS "count", sum("raised") AS "raised" INTO ${into('alerts')} FROM ${from('alerts')} ${group}`],
    );
  }
  return out;
}
