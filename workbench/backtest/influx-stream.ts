// One InfluxQL statement's answer as a stream of chunks (InfluxDB 1.x `POST /query` with
// `chunked=true&chunk_size=N`): influxd writes the rows in chunks of at most N, one JSON object a
// line; a line is parsed once it has arrived whole and handed on before the next is read (the
// socket is not read while the caller holds a chunk), so one chunk is held at a time — its text,
// then its rows — besides the socket's buffers, whatever the range.
//
// Why not node-influx: its query() and queryRaw() read the whole body and parse it at once (no
// chunked mode), and its Pool.stream() aborts a response whose socket was idle for the request
// timeout — which a merge of several streams does to one stream while it replays the others'
// rows (workbench/backtest/history.ts). fetch() has the same kind of limit (undici's bodyTimeout,
// settable only through the undici package). So a plain node:http(s) request on the connection's
// agent and URL parts, whose timeout counts only while the caller waits for the next chunk.
import { request as httpRequest, type IncomingMessage } from 'node:http';
import { request as httpsRequest } from 'node:https';
import type { InfluxConnection } from '../../lib/influx-url.js';

/** One chunk of a series: columns, and at most chunk_size rows of values (time first, in ms). */
export interface QueryChunk {
  name: string;
  columns: string[];
  values: unknown[][];
}

export interface ChunkedQueryOptions {
  connection: InfluxConnection;
  database: string;
  /** One InfluxQL statement. */
  query: string;
  /** Rows per chunk (influxd's chunk_size). */
  chunkRows: number;
  /** How long to wait for the answer to start, and then for each next chunk, before giving up (ms). */
  timeoutMs: number;
}

/** Why a streamed query failed: the statement's error as InfluxDB gave it, or the transport's. */
export class QueryStreamError extends Error {
  override name = 'QueryStreamError';
  constructor(
    message: string,
    /** InfluxDB answered and refused the statement (e.g. `database not found: x`), not a transport failure. */
    readonly refused: boolean,
  ) {
    super(message);
  }
}

/** Largest error body kept for the message. */
const ERROR_BODY_CHARS = 500;

/** The chunks of `options.query` in the order InfluxDB sends them; stopping the iteration closes the request. */
export async function* chunkedQuery(options: ChunkedQueryOptions): AsyncGenerator<QueryChunk> {
  const { connection, timeoutMs } = options;
  const { parts } = connection;
  const body = new URLSearchParams({ db: options.database, q: options.query, epoch: 'ms', chunked: 'true', chunk_size: String(options.chunkRows) }).toString();
  const headers: Record<string, string | number> = { 'content-type': 'application/x-www-form-urlencoded', 'content-length': Buffer.byteLength(body) };
  if (connection.auth !== undefined) headers.authorization = `Basic ${Buffer.from(connection.auth).toString('base64')}`;
  const request = (parts.protocol === 'https' ? httpsRequest : httpRequest)({ method: 'POST', hostname: parts.hostname, port: parts.port, path: `${parts.path}/query`, headers, agent: connection.agent });
  try {
    const response = await within(
      timeoutMs,
      new Promise<IncomingMessage>((resolve, reject) => {
        request.once('response', resolve);
        request.once('error', reject);
        request.end(body);
      }),
    );
    // A failure from here on ends the response's iteration (below) with the error.
    request.on('error', () => undefined);
    response.setEncoding('utf8');
    const pieces = response[Symbol.asyncIterator]() as AsyncIterator<string>;
    if ((response.statusCode ?? 0) >= 300) throw new QueryStreamError(await errorBody(response.statusCode ?? 0, pieces, timeoutMs), true);
    // A chunk's line arrives in many pieces: only each new piece is searched for its end.
    let started: string[] = [];
    for (;;) {
      const next = await within(timeoutMs, pieces.next());
      if (next.done) break;
      const piece = next.value;
      let from = 0;
      for (let newline = piece.indexOf('\n'); newline >= 0; newline = piece.indexOf('\n', from)) {
        started.push(piece.slice(from, newline));
        const line = started.join('');
        started = [];
        from = newline + 1;
        if (/\S/.test(line)) yield* chunksOf(line);
      }
      if (from < piece.length) started.push(piece.slice(from));
    }
    const last = started.join('');
    if (/\S/.test(last)) yield* chunksOf(last);
  } catch (err) {
    if (err instanceof QueryStreamError) throw err;
    throw new QueryStreamError((err as Error).message, false);
  } finally {
    request.destroy();
  }
}

/** The series chunks of one line of a chunked answer; a statement's error is thrown. */
function chunksOf(line: string): QueryChunk[] {
  let answer: ChunkedAnswer;
  try {
    answer = JSON.parse(line) as ChunkedAnswer;
  } catch {
    throw new QueryStreamError(`InfluxDB sent a line that is not JSON: ${line.slice(0, 120)}`, false);
  }
  if (typeof answer.error === 'string') throw new QueryStreamError(answer.error, true);
  const chunks: QueryChunk[] = [];
  for (const result of answer.results ?? []) {
    if (typeof result.error === 'string') throw new QueryStreamError(result.error, true);
    for (const series of result.series ?? []) {
      if (!Array.isArray(series.columns) || !Array.isArray(series.values) || series.columns[0] !== 'time') {
        throw new QueryStreamError(`InfluxDB sent a series of ${String(series.name)} without time first in its columns: not the answer of a SELECT`, false);
      }
      chunks.push({ name: series.name, columns: series.columns, values: series.values });
    }
  }
  return chunks;
}

async function errorBody(status: number, pieces: AsyncIterator<string>, timeoutMs: number): Promise<string> {
  let text = '';
  for (let next = await within(timeoutMs, pieces.next()); !next.done && text.length < ERROR_BODY_CHARS; next = await within(timeoutMs, pieces.next())) text += next.value;
  try {
    const parsed = JSON.parse(text) as { error?: unknown };
    if (typeof parsed.error === 'string') return parsed.error;
  } catch {
    // not JSON: the text as it is
  }
  return `HTTP ${status}: ${text.slice(0, ERROR_BODY_CHARS).trim()}`;
}

/** `promise`, or a rejection once `ms` pass first. */
async function within<T>(ms: number, promise: Promise<T>): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([promise, new Promise<never>((_resolve, reject) => (timer = setTimeout(() => reject(new Error(`no answer within ${ms} ms`)), ms)))]);
  } finally {
    clearTimeout(timer);
  }
}

interface ChunkedAnswer {
  error?: string;
  results?: Array<{ error?: string; series?: Array<{ name: string; columns: string[]; values: unknown[][] }> }>;
}
