// The historian's writer loop: spool → InfluxDB, in batches by size or interval, retried with
// backoff, then the spool position committed (docs/historian.md, "Batching" and "Retries").
//
//   spool.readBatch ──► InfluxDB write ──► spool.commit(end)
//        ▲                   │ 400: count the refused points (halving to find them)
//        └── wait for a batch / backoff ◄── network, 5xx, missing database: retry
//
// The sink (historian/index.ts) tells it what was appended (`appended`); it never touches the
// bus. `stop` writes what is queued within a bound and leaves the rest in the spool.
import { Backoff } from '../lib/backoff.js';
import { logger } from '../lib/log.js';
import type { LogLimiter } from '../lib/log-limit.js';
import { sleep, withTimeout } from '../lib/wait.js';
import type { HistorianConfig } from './config.js';
import { downsamples, setupDatabase, type InfluxClient, type WriteFailure } from './influx.js';
import { bucketsIn, LateBuckets, STATEMENTS_PER_REQUEST, type BucketRange } from './late-data.js';
import type { Spool, SpoolBatch } from './spool.js';

const log = logger('historian');

/** Upper bound on one write request's body. InfluxDB 1.x refuses bodies over 25 MB by default. */
const MAX_BATCH_BYTES = 8 * 1024 * 1024;
/** How long start() waits for the database setup before leaving it to the writer. */
const SETUP_AT_START_MS = 5000;

export interface SpoolWriterOptions {
  spool: Spool;
  client: InfluxClient;
  config: HistorianConfig;
  spoolDir: string;
  /** The historian's log limiter, shared so each kind of line is bounded once. */
  limitedLog: LogLimiter;
  /** The fields of a warning line (the historian's counters), built only for a line written. */
  logFields: () => object;
  /** After each commit: the spool shrank (the historian re-checks its alarm). */
  afterCommit: () => void;
}

/** A range of a batch's records still to be written. */
interface Part {
  from: number;
  to: number;
}

export class SpoolWriter {
  readonly counters = {
    written: 0,
    replayed: 0,
    write_batches: 0,
    write_failures: 0,
    setup_failures: 0,
    dropped_rejected: 0,
    commit_failures: 0,
    /** Buckets of "1m"/"1h" re-aggregated because late points reached raw after their continuous query ran (late-data.ts). */
    late_buckets_reaggregated: 0,
    /** /query requests that re-aggregated them; ones that failed (retried later, or dropped when InfluxDB refused the statement). */
    reaggregate_requests: 0,
    reaggregate_failures: 0,
  };
  /** The last write (or setup) reached InfluxDB: it answered, even if with a 400. */
  influxUp = false;
  /** Records appended in this run that the writer has not read yet, and since when. */
  private unread = 0;
  private oldestUnreadAt: number | undefined;
  /** Ends the writer's current sleep (stop, flush); new data may end only a wait for a batch, never a backoff. */
  private wake: (() => void) | undefined;
  private sleepingForBatch = false;
  private stopping = false;
  private closed = false;
  private needsSetup: boolean;
  private loop: Promise<void> | undefined;
  private readonly spool: Spool;
  private readonly config: HistorianConfig;
  /** Buckets of the downsampled series that late points touched (only when this historian set the database up: its continuous queries). */
  private readonly late: LateBuckets | undefined;
  private reaggregating = false;

  constructor(private readonly options: SpoolWriterOptions) {
    this.spool = options.spool;
    this.config = options.config;
    this.needsSetup = options.config.setupDatabase;
    this.late = options.config.setupDatabase ? new LateBuckets(downsamples(options.config.database, options.config.retentionPolicy ?? 'raw')) : undefined;
  }

  /** Sets the database up if InfluxDB answers in time (else the loop does, before its first write), then runs the loop. */
  async start(): Promise<void> {
    if (this.needsSetup) await this.trySetup();
    this.loop = this.run();
  }

  /** Events appended in this run that wait to be read. */
  get queueDepth(): number {
    return this.unread;
  }

  /** The sink appended `count` records: a batch may be due now. */
  appended(count: number): void {
    if (count === 0) return;
    if (this.unread === 0) this.oldestUnreadAt = Date.now();
    this.unread += count;
    if (this.unread >= this.config.batchSize && this.sleepingForBatch) this.wake?.();
  }

  /** Late-data buckets waiting to be re-aggregated into "1m"/"1h". */
  get lateBuckets(): number {
    return this.late?.pending ?? 0;
  }

  /** InfluxDB is back (a managed influxd restarted): a write waiting out its backoff is tried now. */
  influxBack(): void {
    if (!this.sleepingForBatch) this.wake?.();
  }

  /** Resolves once everything in the spool is in InfluxDB, and the late buckets it touched are re-aggregated (bounded by `timeoutMs`). */
  async flush(timeoutMs: number): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    this.oldestUnreadAt = 0; // due now
    this.wake?.();
    while (this.spool.pendingBytes() > 0) {
      if (Date.now() > deadline) throw new Error(`historian flush: ${this.spool.pendingBytes()} bytes still not in InfluxDB after ${timeoutMs} ms`);
      await sleep(20);
    }
    while (this.late && (this.late.pending > 0 || this.reaggregating)) {
      this.late.hurry();
      this.wake?.();
      if (Date.now() > deadline) throw new Error(`historian flush: ${this.late.pending} late buckets of "1m"/"1h" still not re-aggregated after ${timeoutMs} ms`);
      await sleep(20);
    }
  }

  /** Writes what is queued for at most `drainMs`; true if all of it made it. Afterwards the writer touches the spool no more. */
  async stop(drainMs: number): Promise<boolean> {
    this.stopping = true;
    this.wake?.();
    const drained = await Promise.race([(this.loop ?? Promise.resolve()).then(() => true), sleep(drainMs).then(() => false)]);
    this.closed = true;
    return drained;
  }

  private async run(): Promise<void> {
    let batch: SpoolBatch | undefined;
    /** What of `batch` is still to be written: ranges of its records, split where InfluxDB refused some. */
    let parts: Part[] = [];
    const retry = new Backoff({ initialMs: this.config.retryInitialMs, maxMs: this.config.retryMaxMs, jitter: 'equal' });
    for (;;) {
      if (this.closed) return;
      if (!batch) {
        if (this.stopping && this.late?.pending) await this.reaggregate(false); // once: what fails now is lost (docs/historian.md)
        else if (this.late?.due(Date.now())) await this.reaggregate(true);
        if (this.stopping && !this.spool.hasUnread()) return;
        const wait = this.msUntilDue();
        if (wait > 0) {
          await this.sleepUnlessWoken(wait, 'batch');
          continue;
        }
        batch = this.spool.readBatch(this.config.batchSize, MAX_BATCH_BYTES);
        this.unread = Math.max(0, this.unread - (batch.records.length - batch.fromEarlierRun));
        this.oldestUnreadAt = this.unread > 0 ? Date.now() : undefined;
        parts = batch.records.length > 0 ? [{ from: 0, to: batch.records.length }] : [];
      }
      const current: SpoolBatch = batch;
      const part = parts[0];
      if (!part) {
        // All of it is stored or counted as refused (or only torn or corrupt records were left).
        this.commit(current);
        batch = undefined;
        continue;
      }
      try {
        if (this.needsSetup) await this.setup();
        await this.options.client.writeLines(current.records.slice(part.from, part.to));
        this.late?.wrote(current.records, part.from, part.to, Date.now());
        this.influxUp = true;
        retry.reset();
        this.counters.written += part.to - part.from;
        this.counters.replayed += Math.max(0, Math.min(part.to, current.fromEarlierRun) - part.from);
        this.counters.write_batches++;
        parts.shift();
      } catch (err) {
        const failure = err as WriteFailure;
        if (failure.kind === 'rejected') {
          this.influxUp = true;
          parts.splice(0, 1, ...this.settleRejected(failure, part, current));
          continue;
        }
        if (failure.kind === 'missing-database') this.needsSetup = this.config.setupDatabase;
        this.influxUp = false;
        this.counters.write_failures++;
        this.warn('write', `InfluxDB write failed, will retry: ${failure.message ?? String(err)}`);
        if (this.stopping) return;
        // However much arrives meanwhile: one attempt per interval while InfluxDB is failing.
        await this.sleepUnlessWoken(retry.next(), 'backoff');
      }
    }
  }

  /**
   * Counts a part of `batch` that InfluxDB answered 400, per point; returns the halves to write
   * again when its answer does not say how many points it refused.
   */
  private settleRejected(failure: Extract<WriteFailure, { kind: 'rejected' }>, part: Part, batch: SpoolBatch): Part[] {
    const size = part.to - part.from;
    if (failure.partial && !failure.exact && size > 1 && failure.reported < size) {
      // InfluxDB stored the rest, but it reports one kind of failure only, so this may be an
      // undercount: write the halves again — rewriting a stored point stores nothing twice —
      // until each refused point is found.
      const middle = part.from + Math.floor(size / 2);
      return [
        { from: part.from, to: middle },
        { from: middle, to: part.to },
      ];
    }
    // A record of several points (a Sparkplug raw metrics message) may report more points than records: at most the part.
    const refused = failure.partial && failure.exact ? Math.min(size, failure.reported) : size;
    // The rest of a partial write is stored: its late buckets too (re-aggregating one more costs a query, nothing else).
    if (failure.partial && refused < size) this.late?.wrote(batch.records, part.from, part.to, Date.now());
    this.counters.written += size - refused;
    this.counters.replayed += Math.max(0, Math.min(part.to, batch.fromEarlierRun) - part.from);
    const rest = refused < size ? ', the rest stored' : '';
    this.counters.dropped_rejected += refused;
    this.warn('rejected', `${failure.message} (${refused} of the ${batch.records.length} points in this batch refused${rest})`);
    return [];
  }

  /**
   * Re-aggregates the late buckets gathered so far (one statement per contiguous range and
   * series, STATEMENTS_PER_REQUEST per request). A request that fails is given back and tried
   * again later; a statement InfluxDB refuses is logged and dropped (it would fail again).
   */
  private async reaggregate(retryLater: boolean): Promise<void> {
    if (!this.late) return;
    const ranges = this.late.take();
    this.reaggregating = true;
    try {
      for (let at = 0; at < ranges.length; at += STATEMENTS_PER_REQUEST) {
        const chunk: BucketRange[] = ranges.slice(at, at + STATEMENTS_PER_REQUEST);
        let errors: (string | undefined)[];
        try {
          this.counters.reaggregate_requests++;
          errors = await this.options.client.run(chunk.map((range) => range.series.statement(range)));
        } catch (err) {
          this.counters.reaggregate_failures++;
          const rest = ranges.slice(at);
          if (retryLater) this.late.give(rest, Date.now());
          this.warn('reaggregate', `could not re-aggregate late data into "1m"/"1h" (${(err as WriteFailure).message ?? String(err)}); ${retryLater ? 'trying again in a while' : `stopping: ${rest.reduce((n, range) => n + bucketsIn(range), 0)} buckets keep what their continuous query stored`}`);
          return;
        }
        chunk.forEach((range, index) => {
          const error = errors[index];
          if (error === undefined) this.counters.late_buckets_reaggregated += bucketsIn(range);
          else {
            this.counters.reaggregate_failures++;
            this.warn('reaggregate-refused', `InfluxDB refused to re-aggregate ${range.series.name} from ${new Date(range.fromMs).toISOString()} to ${new Date(range.toMs).toISOString()}: ${error}; those buckets keep what their continuous query stored`);
          }
        });
      }
    } finally {
      this.reaggregating = false;
    }
  }

  private commit(batch: SpoolBatch): void {
    // After stop() gave up waiting, the spool is closed: the next start replays this batch (harmless).
    if (this.closed) return;
    try {
      this.spool.commit(batch.end);
    } catch (err) {
      // The batch is in InfluxDB; a later commit covers it (and a restart would only replay it).
      this.counters.commit_failures++;
      this.warn('commit', `could not record the spool position in ${this.options.spoolDir}: ${(err as Error).message}`, 'error');
    }
    this.options.afterCommit();
  }

  /** 0 when a batch should be written now; else how long until one is due. */
  private msUntilDue(): number {
    if (!this.spool.hasUnread()) return this.stopping ? 0 : this.config.flushIntervalMs;
    if (this.stopping || this.unread >= this.config.batchSize || this.unread === 0) return 0; // unread === 0: backlog of an earlier run
    const age = Date.now() - (this.oldestUnreadAt ?? 0);
    return Math.max(0, this.config.flushIntervalMs - age);
  }

  /** Sleeps `ms`; stop() and flush() end it early, and so does a full batch when waiting for one. */
  private sleepUnlessWoken(ms: number, waitingFor: 'batch' | 'backoff'): Promise<void> {
    return new Promise((resolve) => {
      const done = (): void => {
        clearTimeout(timer);
        if (this.wake === done) {
          this.wake = undefined;
          this.sleepingForBatch = false;
        }
        resolve();
      };
      const timer = setTimeout(done, ms);
      this.wake = done;
      this.sleepingForBatch = waitingFor === 'batch';
    });
  }

  private async trySetup(): Promise<void> {
    try {
      // Bounded, so an InfluxDB that does not answer cannot hold up the start.
      await withTimeout(this.setup(), SETUP_AT_START_MS, 'InfluxDB to answer the database setup');
    } catch (err) {
      log.warn({ err: (err as WriteFailure).message ?? err }, 'InfluxDB is not reachable yet; events are spooled and the database is set up once it answers');
    }
  }

  private async setup(): Promise<void> {
    try {
      await setupDatabase(this.options.client.admin, this.config);
      this.needsSetup = false;
      this.influxUp = true;
      log.info({ database: this.config.database, retention: this.config.retention }, 'database, retention policies and continuous queries are set up');
    } catch (err) {
      this.counters.setup_failures++;
      const failure: WriteFailure = { kind: 'retry', message: `database setup failed: ${(err as Error).message}` };
      throw failure;
    }
  }

  private warn(kind: string, message: string, level: 'warn' | 'error' = 'warn'): void {
    this.options.limitedLog.write(level, kind, () => ({ counters: this.options.logFields() }), message);
  }
}
