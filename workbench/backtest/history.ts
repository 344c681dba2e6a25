// What a backtest reads from InfluxDB (docs/historian.md, "Schema"; docs/rules.md, "Backtest"):
// the stored device events of a range, rebuilt into the messages the engine took — same topic,
// same payload fields (ts, seq, values, state, reason, strategy, station, type, status) — and the
// stored outputs of the rules (commands issued, their outcomes, the rules' alerts) as timeline items.
//
// One streamed query per measurement, not pages of queries: each measurement of the range is
// asked for once, chunked (influx-stream.ts: at most `chunkRows` rows a chunk, one chunk held at a
// time), and the streams — each in time order — are merged into one in device-time order (a k-way
// merge by time; the rows of one millisecond, from every stream, sorted by line, device, seq, kind
// before they are handed on). Handed on in pages of at most `chunkRows` rows (plus the rest of the
// millisecond the page ends in). So at most streams × chunkRows rows are held in the streams' chunks
// and one page besides — whatever the range; `stats.peakRows` is that count as it was. The times
// come back in whole ms: the historian's sub-millisecond disambiguator is cut off.
//
// (Paged windows, one request per window and measurement, cost influxd several times the CPU of
// one stream: each request opens every series' cursors again — docs/rules.md, "Backtest".)
import { escape } from 'influx';
import { RESERVED_READING_NAMES } from '../../contracts/schemas.js';
import type { ValidationResult } from '../../contracts/validate.js';
import { connectInflux, DEFAULT_REQUEST_TIMEOUT_MS, redactUrl, type InfluxConnection } from '../../lib/influx-url.js';
import type { DeviceEvent } from '../../rules/engine.js';
import { BacktestError } from './errors.js';
import { StoredEventCheck } from './event-check.js';
import { chunkedQuery, QueryStreamError, type QueryChunk } from './influx-stream.js';
import type { TimelineAlarm, TimelineCommand, TimelineItem, TimelineParam } from '../timeline-diff.js';

/** Rows a chunk and a page hold at most (default of `rules backtest --page-size`). */
export const DEFAULT_PAGE_ROWS = 10_000;

export interface HistorySource {
  /** InfluxDB 1.x base URL (credentials in it are used, never printed). */
  url: string;
  database: string;
  /** Only this line's points; all lines when absent. */
  line?: string;
  /** Rows per chunk of each stream and per page handed on (DEFAULT_PAGE_ROWS). */
  pageRows?: number;
  /** How long InfluxDB may keep a stream waiting for its answer or its next chunk (ms; DEFAULT_REQUEST_TIMEOUT_MS). */
  requestTimeoutMs?: number;
}

/** What reading the history took. */
export interface PageStats {
  /** Pages handed on, and the most rows one held (≤ pageRows plus the rest of its last millisecond). */
  pages: number;
  largestPage: number;
  /** Streamed queries (one per measurement read). */
  queries: number;
  /** Chunks InfluxDB sent, and the most rows one held (≤ pageRows). */
  chunks: number;
  largestChunk: number;
  rows: number;
  /** The most rows held at once: in the streams' chunks and the page being filled (≤ (streams + 1) × pageRows plus a millisecond). */
  peakRows: number;
  /** Time spent waiting for InfluxDB's next chunk (ms; it streams on while a page is replayed). */
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

/** One stored row as InfluxDB sent it: its values, read through its chunk's columns (no object of fields per row). */
interface Row {
  measurement: string;
  time: number;
  columns: Columns;
  values: unknown[];
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
  readonly stats: PageStats = { pages: 0, largestPage: 0, queries: 0, chunks: 0, largestChunk: 0, rows: 0, peakRows: 0, queryMs: 0 };
  readonly skipped: SkippedRow[] = [];
  /** Rows skipped in all (`skipped` keeps the first 20). */
  skippedCount = 0;
  private readonly connection: InfluxConnection;
  private readonly pageRows: number;
  private readonly check = new StoredEventCheck();

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
        const fields = fieldsOf(row);
        if (row.measurement === 'commands' && fields.event === 'outcome') {
          // accepted is on the way; done, failed, rejected, expired, blocked end it.
          if (typeof fields.id === 'string' && typeof fields.outcome === 'string' && (fields.outcome !== 'accepted' || !outcomes.has(fields.id))) outcomes.set(fields.id, fields.outcome);
          continue;
        }
        const item = row.measurement === 'commands' ? storedCommand(row, fields) : storedAlert(row, fields);
        if (item) items.push(item);
      }
    }
    for (const item of items) {
      if (item.kind === 'command' && item.id !== undefined && outcomes.has(item.id)) item.outcome = outcomes.get(item.id);
    }
    return items;
  }

  /** Rows of `statements` in [from, to): one stream each, merged in device-time order, in pages of about pageRows. */
  private async *pages(statements: Statement[], from: number, to: number): AsyncGenerator<Row[]> {
    const streams = statements.map((statement) => new RowStream(statement.measurement, this.stream(statement, from, to), this.stats));
    try {
      await Promise.all(streams.map((stream) => stream.fill()));
      let page: Row[] = [];
      for (;;) {
        let time = Infinity;
        for (const stream of streams) if (stream.time < time) time = stream.time;
        if (time === Infinity) break;
        const first = page.length;
        for (const stream of streams) {
          while (stream.time === time) {
            page.push(stream.take());
            if (stream.drained) {
              this.held(streams, page.length);
              await stream.fill();
            }
          }
        }
        if (page.length - first > 1) sortFrom(page, first);
        if (page.length >= this.pageRows) {
          this.handOn(streams, page);
          yield page;
          page = [];
        }
      }
      if (page.length > 0) {
        this.handOn(streams, page);
        yield page;
      }
    } finally {
      await Promise.all(streams.map((stream) => stream.close()));
    }
  }

  private handOn(streams: RowStream[], page: Row[]): void {
    this.held(streams, page.length);
    this.stats.pages++;
    this.stats.rows += page.length;
    this.stats.largestPage = Math.max(this.stats.largestPage, page.length);
  }

  private held(streams: RowStream[], pageRows: number): void {
    let rows = pageRows;
    for (const stream of streams) rows += stream.held;
    this.stats.peakRows = Math.max(this.stats.peakRows, rows);
  }

  /** One measurement's rows of [from, to) as InfluxDB streams them (in time order), chunk by chunk. */
  private async *stream(statement: Statement, from: number, to: number): AsyncGenerator<QueryChunk> {
    const conditions = [`time >= ${from}ms`, `time < ${to}ms`];
    if (this.source.line !== undefined) conditions.push(`"line" = ${escape.stringLit(this.source.line)}`);
    if (statement.where) conditions.push(statement.where);
    const query = `SELECT * FROM ${escape.quoted(statement.measurement)} WHERE ${conditions.join(' AND ')}`;
    this.stats.queries++;
    const chunks = chunkedQuery({ connection: this.connection, database: this.source.database, query, chunkRows: this.pageRows, timeoutMs: this.source.requestTimeoutMs ?? DEFAULT_REQUEST_TIMEOUT_MS });
    try {
      for (;;) {
        const began = performance.now();
        let next: IteratorResult<QueryChunk>;
        try {
          next = await chunks.next();
        } catch (err) {
          if (err instanceof QueryStreamError && err.refused) throw await this.refused(statement.measurement, err.message);
          throw new BacktestError(`InfluxDB at ${redactUrl(this.source.url)} could not be queried for ${statement.measurement}: ${(err as Error).message}; check --influx`);
        } finally {
          this.stats.queryMs += performance.now() - began;
        }
        if (next.done) return;
        yield next.value;
      }
    } finally {
      await chunks.return(undefined);
    }
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

  /** A stored state, telemetry or status point as the message its device sent, checked against the contract as a device's would be (event-check.ts). */
  private toEvent(row: Row): HistoryEvent | undefined {
    const device = field(row, 'device');
    const line = field(row, 'line');
    if (typeof device !== 'string' || typeof line !== 'string') return this.skip(row, 'no device or line tag');
    const payload: Record<string, unknown> = { ts: row.time };
    const seq = field(row, 'seq');
    if (seq !== undefined) payload.seq = seq;
    const type = field(row, 'type');
    if (type !== undefined) payload.type = type;
    let event: ValidationResult<DeviceEvent['payload']>;
    switch (row.measurement) {
      case 'telemetry': {
        const station = field(row, 'station');
        if (station !== undefined) payload.station = station;
        const values: Record<string, unknown> = {};
        for (const [index, name] of row.columns.readings) if (row.values[index] !== null) values[name] = row.values[index];
        payload.values = values;
        event = this.check.check('telemetry', payload);
        break;
      }
      case 'state': {
        const station = field(row, 'station');
        if (station !== undefined) payload.station = station;
        payload.state = field(row, 'state');
        const reason = field(row, 'reason');
        if (reason !== undefined) payload.reason = reason;
        const strategy = field(row, 'strategy');
        if (strategy !== undefined) payload.strategy = strategy;
        event = this.check.check('state', payload);
        break;
      }
      case 'status':
        payload.status = field(row, 'status');
        event = this.check.check('status', payload);
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

/**
 * One measurement's stream of rows, a chunk at a time: `time` is the next row's (Infinity once the
 * stream is over); take() hands it on; once `drained`, fill() reads the next chunk.
 */
class RowStream {
  time = Infinity;
  private chunk: QueryChunk | undefined;
  private columns: Columns | undefined;
  private index = 0;
  private over = false;
  /** The last row's time taken: the stream must not go back before it. */
  private last = -Infinity;

  constructor(
    private readonly measurement: string,
    private readonly chunks: AsyncGenerator<QueryChunk>,
    private readonly stats: PageStats,
  ) {}

  /** Every row of the chunk held has been taken (and the stream is not over). */
  get drained(): boolean {
    return !this.over && (this.chunk === undefined || this.index >= this.chunk.values.length);
  }

  /** Rows of the chunk held not taken yet. */
  get held(): number {
    return this.chunk ? this.chunk.values.length - this.index : 0;
  }

  /** Reads chunks until one with rows arrives or the stream ends. */
  async fill(): Promise<void> {
    while (this.drained) {
      const next = await this.chunks.next();
      if (next.done) {
        this.over = true;
        this.chunk = undefined;
        this.time = Infinity;
        return;
      }
      this.chunk = next.value;
      if (!this.columns?.are(next.value.columns)) this.columns = new Columns(next.value.columns);
      this.index = 0;
      this.stats.chunks++;
      this.stats.largestChunk = Math.max(this.stats.largestChunk, next.value.values.length);
    }
    this.time = this.timeAt(this.index);
  }

  /** The next row; `time` moves on to the one after it (Infinity when the chunk is drained: fill() then). */
  take(): Row {
    const chunk = this.chunk!;
    const row = { measurement: this.measurement, time: this.time, columns: this.columns!, values: chunk.values[this.index]! };
    this.last = row.time;
    this.index++;
    this.time = this.index < chunk.values.length ? this.timeAt(this.index) : Infinity;
    return row;
  }

  async close(): Promise<void> {
    await this.chunks.return(undefined);
  }

  /** The time of the chunk's row `index`, checked: a number, not before the last row taken (each stream is in time order: the merge needs that). */
  private timeAt(index: number): number {
    const time = this.chunk!.values[index]![0];
    if (typeof time !== 'number') throw new BacktestError(`InfluxDB streamed a ${this.measurement} row without a time in ms (${JSON.stringify(time)}); a backtest asks for epoch=ms`);
    if (time < this.last) throw new BacktestError(`InfluxDB streamed ${this.measurement} out of time order (${new Date(time).toISOString()} after ${new Date(this.last).toISOString()}); a backtest needs each measurement in time order`);
    return time;
  }
}

/** Sorts page[first..] (one millisecond's rows) in device-time order, in place. */
function sortFrom(page: Row[], first: number): void {
  const group = page.slice(first).sort(byDeviceTime);
  for (let i = 0; i < group.length; i++) page[first + i] = group[i]!;
}

/** A chunk's columns: where each is, by name, and the telemetry readings among them (where, and the reading's name). */
class Columns {
  private readonly index = new Map<string, number>();
  readonly readings: (readonly [number, string])[] = [];

  constructor(private readonly names: string[]) {
    for (let i = 1; i < names.length; i++) {
      const name = names[i]!;
      this.index.set(name, i);
      if (!TELEMETRY_NON_READINGS.has(name)) this.readings.push([i, RENAMED_READINGS.get(name) ?? name]);
    }
  }

  /** Whether `names` are these columns (the next chunk of a series usually has the same). */
  are(names: string[]): boolean {
    return names.length === this.names.length && names.every((name, i) => name === this.names[i]);
  }

  at(name: string): number | undefined {
    return this.index.get(name);
  }

  get all(): readonly string[] {
    return this.names;
  }
}

/** A row's value of the column `name`; undefined when the column is absent or the row has none (null). */
function field(row: Row, name: string): unknown {
  const index = row.columns.at(name);
  const value = index === undefined ? null : row.values[index];
  return value === null ? undefined : value;
}

/** A row's values by column name, those it has (not null). */
function fieldsOf(row: Row): Record<string, unknown> {
  const fields: Record<string, unknown> = {};
  const names = row.columns.all;
  for (let i = 1; i < names.length; i++) if (row.values[i] !== null) fields[names[i]!] = row.values[i];
  return fields;
}

function byDeviceTime(x: Row, y: Row): number {
  const seqX = field(x, 'seq');
  const seqY = field(y, 'seq');
  return (
    x.time - y.time ||
    compare(String(field(x, 'line') ?? ''), String(field(y, 'line') ?? '')) ||
    compare(String(field(x, 'device') ?? ''), String(field(y, 'device') ?? '')) ||
    (typeof seqX === 'number' && typeof seqY === 'number' ? seqX - seqY : 0) ||
    (KIND_ORDER[x.measurement] ?? 9) - (KIND_ORDER[y.measurement] ?? 9)
  );
}

function compare(x: string, y: string): number {
  return x < y ? -1 : x > y ? 1 : 0;
}

function storedCommand(row: Row, f: Record<string, unknown>): TimelineCommand | undefined {
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
function storedAlert(row: Row, f: Record<string, unknown>): TimelineAlarm | undefined {
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
