// What a backtest reads from InfluxDB (docs/historian.md, "Schema"; docs/rules.md, "Backtest"):
// the stored device events of a range, rebuilt into the messages the engine took — same topic,
// same payload fields (ts, seq, values, state, reason, strategy, station, type, status) — and the
// stored outputs of the rules (commands issued, their outcomes, the rules' alerts) as timeline items.
//
// Pages, not one query: a page is a time window [a, b) in whole milliseconds; each measurement is
// asked for it with LIMIT pageRows + 1 in one request (one statement per measurement). A window
// that holds more than pageRows rows in all is halved and asked again; one that held less than
// half is followed by a window twice as long. So at most `pageRows` rows are handed on at a time
// and at most (pageRows + 1) × measurements are ever held (a refused window); no OFFSET (InfluxDB
// would read and skip), no cursor inside a millisecond (the times come back in ms, exact: the
// historian's sub-millisecond disambiguator is cut off, a millisecond is never split over pages).
import { escape } from 'influx';
import { RESERVED_READING_NAMES } from '../../contracts/schemas.js';
import { validateValue, type ValidationResult } from '../../contracts/validate.js';
import { connectInflux, redactUrl, type InfluxConnection } from '../../lib/influx-url.js';
import type { DeviceEvent } from '../../rules/engine.js';
import { BacktestError } from './errors.js';
import type { TimelineAlarm, TimelineCommand, TimelineItem, TimelineParam } from '../timeline-diff.js';

/** Rows a page holds at most (default of `rules backtest --page-size`). */
export const DEFAULT_PAGE_ROWS = 10_000;
/** The first page's time span; later ones grow or shrink with what they hold. */
const FIRST_SPAN_MS = 60_000;

export interface HistorySource {
  /** InfluxDB 1.x base URL (credentials in it are used, never printed). */
  url: string;
  database: string;
  /** Only this line's points; all lines when absent. */
  line?: string;
  /** Rows per page (DEFAULT_PAGE_ROWS). */
  pageRows?: number;
  requestTimeoutMs?: number;
}

/** What reading the history took. */
export interface PageStats {
  pages: number;
  /** Requests to InfluxDB (a refused window is one more). */
  queries: number;
  rows: number;
  /** The most rows one page handed on (≤ pageRows). */
  largestPage: number;
  /** Windows halved because they held more than pageRows. */
  splits: number;
  /** The requests' time, InfluxDB's answer and its parsing (ms; the next page's overlaps the replay of this one). */
  queryMs: number;
}

/** One stored device event as the engine takes it: the decoded message (contracts/decode.ts) its device sent. */
export type HistoryEvent = DeviceEvent;

/** A row that could not be made into a device event (written by something else than the historian). */
export interface SkippedRow {
  measurement: string;
  time: number;
  why: string;
}

interface Row {
  measurement: string;
  time: number;
  fields: Record<string, unknown>;
}

interface Statement {
  measurement: string;
  /** More InfluxQL conditions (already escaped). */
  where?: string;
}

/** The device events the engine consumes; stored acks answer the live engine's command ids, which a replayed engine never issued (docs/rules.md, "Backtest"). */
const EVENT_MEASUREMENTS: Statement[] = [{ measurement: 'state' }, { measurement: 'telemetry' }, { measurement: 'status' }];
/** What the rules did: the commands they sent (and how those ended) and their alerts. */
const OUTPUT_MEASUREMENTS: Statement[] = [{ measurement: 'commands', where: `("event" = 'issued' OR "event" = 'outcome')` }, { measurement: 'alerts' }];
/** Same millisecond: state before telemetry before status, as a device publishes a change and then its readings (then by device and seq). */
const KIND_ORDER: Record<string, number> = { state: 0, telemetry: 1, status: 2 };
/** Telemetry columns that are not readings: the tags and the seq field (docs/historian.md). */
const TELEMETRY_NON_READINGS = new Set(['device', 'line', 'station', 'type', 'seq']);
const RENAMED_READINGS = new Map(RESERVED_READING_NAMES.map((name) => [`${name}_value`, name]));

export class HistoryReader {
  readonly stats: PageStats = { pages: 0, queries: 0, rows: 0, largestPage: 0, splits: 0, queryMs: 0 };
  readonly skipped: SkippedRow[] = [];
  /** Rows skipped in all (`skipped` keeps the first 20). */
  skippedCount = 0;
  private readonly connection: InfluxConnection;
  private readonly pageRows: number;

  constructor(private readonly source: HistorySource) {
    this.pageRows = source.pageRows ?? DEFAULT_PAGE_ROWS;
    if (!Number.isInteger(this.pageRows) || this.pageRows < 1) throw new RangeError(`pageRows must be a whole number ≥ 1; got ${this.pageRows}`);
    this.connection = connectInflux({ url: source.url, database: source.database, requestTimeoutMs: source.requestTimeoutMs });
  }

  close(): void {
    this.connection.close();
  }

  /** The stored device events of [from, to), page by page, each page in device-time order (pages follow each other in time). */
  async *events(from: number, to: number): AsyncGenerator<HistoryEvent[]> {
    for await (const rows of this.pages(EVENT_MEASUREMENTS, from, to)) {
      const events: HistoryEvent[] = [];
      for (const row of rows) {
        const event = this.toEvent(row);
        if (event) events.push(event);
      }
      yield events;
    }
  }

  /** The rules' stored outputs in [from, to): commands sent (with their last outcome when it is stored in the range) and the rules' own alerts (not operators' acknowledgements or clears). */
  async outputs(from: number, to: number): Promise<TimelineItem[]> {
    const items: TimelineItem[] = [];
    const outcomes = new Map<string, string>();
    for await (const rows of this.pages(OUTPUT_MEASUREMENTS, from, to)) {
      for (const row of rows) {
        const f = row.fields;
        if (row.measurement === 'commands' && f.event === 'outcome') {
          // accepted is on the way; done, failed, rejected, expired, blocked end it.
          if (typeof f.id === 'string' && typeof f.outcome === 'string' && (f.outcome !== 'accepted' || !outcomes.has(f.id))) outcomes.set(f.id, f.outcome);
          continue;
        }
        const item = row.measurement === 'commands' ? storedCommand(row) : storedAlert(row);
        if (item) items.push(item);
      }
    }
    for (const item of items) {
      if (item.kind === 'command' && item.id !== undefined && outcomes.has(item.id)) item.outcome = outcomes.get(item.id);
    }
    return items;
  }

  /**
   * Rows of `statements` in [from, to), merged and sorted, at most pageRows per yielded page. The
   * next window is asked for while the caller works on this one (so InfluxDB and the replay run
   * side by side): two pages are held at most, besides a refused window.
   */
  private async *pages(statements: Statement[], from: number, to: number): AsyncGenerator<Row[]> {
    const ask = (start: number, end: number): { start: number; end: number; rows: Promise<Row[] | undefined> } => {
      const rows = this.window(statements, start, end);
      // Awaited below; if the caller stops first, its failure must not go unhandled.
      rows.catch(() => undefined);
      return { start, end, rows };
    };
    let start = from;
    let span = FIRST_SPAN_MS;
    let ahead: ReturnType<typeof ask> | undefined;
    while (start < to) {
      const window = ahead ?? ask(start, Math.min(to, start + span));
      ahead = undefined;
      const rows = await window.rows;
      if (rows === undefined) {
        if (window.end - window.start <= 1) throw new BacktestError(`more than ${this.pageRows} stored rows in the one millisecond ${new Date(start).toISOString()}; raise the page size (--page-size)`);
        this.stats.splits++;
        span = Math.max(1, Math.floor((window.end - window.start) / 2));
        continue;
      }
      rows.sort(byDeviceTime);
      this.stats.pages++;
      this.stats.rows += rows.length;
      this.stats.largestPage = Math.max(this.stats.largestPage, rows.length);
      if (rows.length < this.pageRows / 2) span *= 2;
      start = window.end;
      if (start < to) ahead = ask(start, Math.min(to, start + span));
      yield rows;
    }
  }

  /** The rows of [start, end), or undefined when there are more than pageRows. */
  private async window(statements: Statement[], start: number, end: number): Promise<Row[] | undefined> {
    const conditions = [`time >= ${start}ms`, `time < ${end}ms`];
    if (this.source.line !== undefined) conditions.push(`"line" = ${escape.stringLit(this.source.line)}`);
    const queries = statements.map((s) => `SELECT * FROM ${escape.quoted(s.measurement)} WHERE ${[...conditions, ...(s.where ? [s.where] : [])].join(' AND ')} LIMIT ${this.pageRows + 1}`);
    const began = performance.now();
    this.stats.queries++;
    let raw: RawResponse;
    try {
      raw = (await this.connection.influx.queryRaw(queries, { precision: 'ms', database: this.source.database })) as RawResponse;
    } catch (err) {
      throw new BacktestError(`InfluxDB at ${redactUrl(this.source.url)} could not be queried: ${(err as Error).message}; check --influx`);
    }
    const rows: Row[] = [];
    for (const [index, result] of (raw.results ?? []).entries()) {
      if (result.error) throw await this.refused(statements[index]?.measurement ?? '?', result.error);
      for (const series of result.series ?? []) {
        if (series.values.length > this.pageRows) return undefined;
        for (const values of series.values) {
          const fields: Record<string, unknown> = {};
          for (let i = 1; i < series.columns.length; i++) if (values[i] !== null) fields[series.columns[i]!] = values[i];
          rows.push({ measurement: series.name, time: Number(values[0]), fields });
        }
      }
      if (rows.length > this.pageRows) return undefined;
    }
    this.stats.queryMs += performance.now() - began;
    return rows;
  }

  /**
   * Why InfluxDB refused a query. A missing database answers a request of several statements with
   * only `not executed` (influxd 1.6), so that is looked up: the error then lists the databases.
   */
  private async refused(measurement: string, error: string): Promise<BacktestError> {
    const database = this.source.database;
    let names: string[] | undefined;
    try {
      names = await this.connection.influx.getDatabaseNames();
    } catch {
      names = undefined;
    }
    if (names && !names.includes(database)) {
      return new BacktestError(`InfluxDB at ${redactUrl(this.source.url)} has no database "${database}" (it has: ${names.join(', ') || 'none'}); check --database (default: historian.database)`);
    }
    return new BacktestError(`InfluxDB refused the query of ${measurement} in database "${database}": ${error}`);
  }

  /** A stored state, telemetry or status point as the message its device sent, checked against the contract as a device's would be. */
  private toEvent(row: Row): HistoryEvent | undefined {
    const f = row.fields;
    const device = f.device;
    const line = f.line;
    if (typeof device !== 'string' || typeof line !== 'string') return this.skip(row, 'no device or line tag');
    const common = { ts: row.time, ...(f.seq !== undefined ? { seq: f.seq } : {}), ...(f.type !== undefined ? { type: f.type } : {}) };
    const station = f.station !== undefined ? { station: f.station } : {};
    let event: ValidationResult<DeviceEvent['payload']>;
    switch (row.measurement) {
      case 'telemetry': {
        const values: Record<string, unknown> = {};
        for (const name in f) if (!TELEMETRY_NON_READINGS.has(name)) values[RENAMED_READINGS.get(name) ?? name] = f[name];
        event = validateValue('telemetry', { ...common, ...station, values });
        break;
      }
      case 'state':
        event = validateValue('state', { ...common, ...station, state: f.state, ...(f.reason !== undefined ? { reason: f.reason } : {}), ...(f.strategy !== undefined ? { strategy: f.strategy } : {}) });
        break;
      case 'status':
        event = validateValue('status', { ...common, status: f.status });
        break;
      default:
        return this.skip(row, 'not a device event measurement');
    }
    if (!event.ok) return this.skip(row, event.error);
    return { kind: row.measurement, line, device, payload: event.value } as HistoryEvent;
  }

  private skip(row: Row, why: string): undefined {
    this.skippedCount++;
    if (this.skipped.length < 20) this.skipped.push({ measurement: row.measurement, time: row.time, why });
    return undefined;
  }
}

function byDeviceTime(x: Row, y: Row): number {
  return (
    x.time - y.time ||
    compare(String(x.fields.line ?? ''), String(y.fields.line ?? '')) ||
    compare(String(x.fields.device ?? ''), String(y.fields.device ?? '')) ||
    (typeof x.fields.seq === 'number' && typeof y.fields.seq === 'number' ? x.fields.seq - y.fields.seq : 0) ||
    (KIND_ORDER[x.measurement] ?? 9) - (KIND_ORDER[y.measurement] ?? 9)
  );
}

function compare(x: string, y: string): number {
  return x < y ? -1 : x > y ? 1 : 0;
}

function storedCommand(row: Row): TimelineCommand | undefined {
  const f = row.fields;
  if (typeof f.device !== 'string' || typeof f.action !== 'string') return undefined;
  let params: Record<string, TimelineParam>;
  try {
    params = typeof f.params === 'string' ? (JSON.parse(f.params) as Record<string, TimelineParam>) : {};
  } catch {
    params = { unreadable: String(f.params) };
  }
  return {
    kind: 'command',
    at: row.time,
    target: f.device,
    action: f.action,
    params,
    ...(typeof f.line === 'string' ? { line: f.line } : {}),
    ...(typeof f.origin === 'string' ? { origin: f.origin } : {}),
    ...(typeof f.id === 'string' ? { id: f.id } : {}),
  };
}

/** A rule's own alert (raised or cleared by it); an operator's (it has an origin) is not what the rules did. */
function storedAlert(row: Row): TimelineAlarm | undefined {
  const f = row.fields;
  if (typeof f.state !== 'string' || f.origin !== undefined || (f.state !== 'raised' && f.state !== 'cleared')) return undefined;
  return {
    kind: 'alarm',
    at: row.time,
    state: f.state,
    ...(typeof f.id === 'string' ? { id: f.id } : {}),
    ...(typeof f.rule === 'string' ? { rule: f.rule } : {}),
    ...(typeof f.device === 'string' ? { device: f.device } : {}),
    ...(typeof f.line === 'string' ? { line: f.line } : {}),
  };
}

interface RawResponse {
  results?: Array<{
    error?: string;
    series?: Array<{ name: string; columns: string[]; values: Array<Array<unknown>> }>;
  }>;
}
