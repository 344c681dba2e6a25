// The historian: every linewatch event, command and alert → InfluxDB, nothing lost.
//
//   bus (QoS 1) ──► toPoint ──► spool.appendMany (write(2), then the message is acknowledged)
//                                   │
//                  writer loop ◄────┘ batches by size/interval → InfluxDB → commit position
//
// The spool is the queue: its recent tail is also kept in memory (bounded) so the writer rarely
// reads it back; a backlog waits on disk (bounded by spoolMaxBytes, with an alarm as it fills).
// Failed writes are retried with exponential backoff and jitter; a restart resumes from the
// committed position (docs/historian.md). OEE summaries are the oee/ service's.
import { statfsSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { MessageRefused, type Bus, type DecodeOnce, type Unsubscribe } from '../bus/bus.js';
import { SequenceTracker, topics } from '../contracts/index.js';
import { Backoff } from '../lib/backoff.js';
import { logger } from '../lib/log.js';
import type { Service } from '../lib/service.js';
import { sleep, withTimeout } from '../lib/wait.js';
import type { HistorianConfig } from './config.js';
import { InfluxClient, setupDatabase, type WriteFailure } from './influx.js';
import { influxToUse, type ManagedInfluxd } from './influxd.js';
import { toPoint, type PointResult } from './points.js';
import { Spool, type SpoolBatch } from './spool.js';
import { redactUrl } from '../lib/influx-url.js';

export { startManagedInfluxd, findInfluxd, influxToUse, INFLUXD_INSTALL_HINT, type InfluxInUse, type ManagedInfluxd } from './influxd.js';
export { historianConfigSchema, type HistorianConfig } from './config.js';

const log = logger('historian');

/** Upper bound on one write request's body. InfluxDB 1.x refuses bodies over 25 MB by default. */
const MAX_BATCH_BYTES = 8 * 1024 * 1024;
/** How long start() waits for the database setup before leaving it to the writer. */
const SETUP_AT_START_MS = 5000;
/** How long a free-disk-space reading (statfs) is reused by the alarm. */
const STATFS_EVERY_MS = 1000;

export interface HistorianOptions {
  bus: Bus;
  config: HistorianConfig;
  /** linewatch's data dir: the spool (unless config.spoolDir is set) and a managed influxd live here. */
  dataDir: string;
  /** Overrides config.influxUrl (e.g. from --influx). */
  influxUrl?: string;
  /** How long stop() may spend writing what is still queued before leaving it in the spool (ms). */
  drainTimeoutMs?: number;
}

/** Counters and gauges: what was received, spooled, written, replayed, dropped by reason; spool and queue state. */
export type HistorianCounters = ReturnType<Historian['counters']>;

type DropReason = 'invalid_topic' | 'invalid_payload' | 'rejected';
/** Why an event was not taken into the spool (and so not acknowledged). */
type RefuseReason = 'spool_full' | 'disk_full' | 'spool_error';
type AcceptedPoint = Extract<PointResult, { ok: true }>;

export class Historian implements Service {
  readonly name = 'historian';
  /** The InfluxDB in use, once started (a managed influxd's URL if none was configured). */
  influxUrl: string | undefined;
  private readonly config: HistorianConfig;
  private readonly spool: Spool;
  private client: InfluxClient | undefined;
  private managed: ManagedInfluxd | undefined;
  private unsubscribe: Unsubscribe | undefined;
  private writer: Promise<void> | undefined;
  /** Ends the writer's current sleep (stop, flush); new data may end only a wait for a batch, never a backoff. */
  private wake: (() => void) | undefined;
  private sleepingForBatch = false;
  private stopping = false;
  private closed = false;
  private started = false;
  private needsSetup: boolean;
  /** Records appended in this run that the writer has not read yet, and since when. */
  private unread = 0;
  private oldestUnreadAt: number | undefined;
  private alarm = false;
  /** The last append failed for want of disk space (ENOSPC/EDQUOT); cleared by the next one that succeeds. */
  private diskFull = false;
  /** The last append group did not all fit (spool or disk full, I/O error); cleared by one that does. */
  private refusing = false;
  private freeDisk: { bytes: number; at: number } | undefined;
  /** Events of the current tick, appended together in a microtask; `done` resolves to how many fit. */
  private group: { points: AcceptedPoint[]; done: Promise<number>; resolve: (appended: number) => void; refusal?: MessageRefused } | undefined;
  private readonly spoolDir: string;
  private readonly lastWarn = new Map<string, number>();
  /** Per-device sequence numbers: what the devices sent that never arrived (or arrived twice). */
  private readonly sequences = new SequenceTracker();
  private readonly c = {
    received: 0,
    spooled: 0,
    written: 0,
    replayed: 0,
    write_batches: 0,
    write_failures: 0,
    setup_failures: 0,
    dropped_invalid_topic: 0,
    dropped_invalid_payload: 0,
    refused_spool_full: 0,
    refused_disk_full: 0,
    refused_spool_error: 0,
    dropped_rejected: 0,
    commit_failures: 0,
  };
  private influxUp = false;

  constructor(private readonly options: HistorianOptions) {
    this.config = options.config;
    this.needsSetup = options.config.setupDatabase;
    this.spoolDir = resolve(options.config.spoolDir ?? join(options.dataDir, 'historian-spool'));
    this.spool = new Spool({
      dir: this.spoolDir,
      maxBytes: options.config.spoolMaxBytes,
      segmentBytes: options.config.spoolSegmentBytes,
      fsyncIntervalMs: options.config.fsyncIntervalMs,
    });
  }

  async start(): Promise<void> {
    if (this.started) return;
    this.started = true;
    try {
      this.spool.open();
      const influx = await influxToUse(this.options.influxUrl ?? this.config.influxUrl, this.options.dataDir);
      this.managed = influx.managed;
      const url = (this.influxUrl = influx.url);
      this.client = new InfluxClient({
        url,
        database: this.config.database,
        retentionPolicy: this.config.retentionPolicy,
        username: this.config.username,
        password: this.config.password,
        requestTimeoutMs: this.config.requestTimeoutMs,
      });
      // Set the database up now if InfluxDB answers; if not, the writer retries before its first write.
      if (this.needsSetup) await this.trySetup();
      this.writer = this.writeLoop();
      this.unsubscribe = await this.options.bus.subscribe(topics.all, this.onMessage, { qos: 1 }).catch((err: unknown) => {
        throw new Error(`the historian could not subscribe to ${topics.all} at QoS 1 (${(err as Error).message}); its MQTT account needs the historian role: linewatch devices add NAME --role historian`, { cause: err });
      });
    } catch (err) {
      // Leave nothing running behind a failed start (spool timer, writer, a managed influxd).
      await this.stop();
      throw err;
    }
    log.info({ influx: redactUrl(this.influxUrl), database: this.config.database, spool: this.spool.pendingBytes() }, 'historian started');
  }

  async stop(): Promise<void> {
    if (!this.started || this.stopping) return;
    this.stopping = true;
    await this.unsubscribe?.().catch((err: unknown) => log.warn({ err }, 'unsubscribe failed'));
    this.wake?.();
    const drainMs = this.options.drainTimeoutMs ?? 5000;
    const drained = await Promise.race([this.writer?.then(() => true), sleep(drainMs).then(() => false)]);
    if (!drained) log.warn({ drainMs, pendingBytes: this.spool.pendingBytes() }, 'InfluxDB did not take the backlog in time; it stays in the spool for the next start');
    this.closed = true;
    this.spool.close();
    this.client?.close();
    await this.managed?.stop();
    log.info(this.counters(), 'historian stopped');
  }

  counters() {
    return {
      ...this.c,
      queue_depth: this.unread,
      spool_bytes: this.spool.diskBytes(),
      spool_pending_bytes: this.spool.pendingBytes(),
      spool_segments: this.spool.segmentCount(),
      spool_fill_ratio: this.spool.pendingBytes() / this.config.spoolMaxBytes,
      spool_alarm: this.alarm ? 1 : 0,
      spool_refusing: this.refusing ? 1 : 0,
      disk_full: this.diskFull ? 1 : 0,
      disk_free_bytes: this.freeDiskBytes(),
      spool_torn_records: this.spool.counters.tornTails,
      spool_corrupt_records: this.spool.counters.corruptRecords,
      spool_fsyncs: this.spool.counters.fsyncs,
      influx_up: this.influxUp ? 1 : 0,
      seq_gaps: this.sequences.counters.gaps,
      seq_missing: this.sequences.counters.missing,
      seq_duplicates: this.sequences.counters.duplicates,
      seq_reorders: this.sequences.counters.reorders,
      seq_resets: this.sequences.counters.resets,
      seq_stale: this.sequences.counters.stale,
    };
  }

  /** Resolves once everything received so far is in InfluxDB (bounded by `timeoutMs`). */
  async flush(timeoutMs = 10_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    this.oldestUnreadAt = 0; // due now
    this.wake?.();
    while (this.spool.pendingBytes() > 0) {
      if (Date.now() > deadline) throw new Error(`historian flush: ${this.spool.pendingBytes()} bytes still not in InfluxDB after ${timeoutMs} ms`);
      await sleep(20);
    }
  }

  /**
   * Handles one message. The returned promise resolves once the event is in the spool (or
   * counted as dropped, for bad input): that is when the bus acknowledges it. It rejects with
   * MessageRefused when the spool cannot take the event (full, disk full, I/O error): the bus
   * then does not acknowledge it and the publisher sends it again. Events handed over in the
   * same tick are appended together in one write (group commit); one at a time, each gets its own.
   */
  private readonly onMessage = (topic: string, payload: Buffer, decoded: DecodeOnce): Promise<void> | void => {
    this.c.received++;
    const point = toPoint(topic, payload, decoded);
    if (!point.ok) {
      this.drop(point.reason === 'topic' ? 'invalid_topic' : 'invalid_payload', point.error);
      return;
    }
    if (!this.group) {
      let resolve!: (appended: number) => void;
      const done = new Promise<number>((r) => (resolve = r));
      this.group = { points: [], done, resolve };
      queueMicrotask(this.appendGroup);
    }
    const group = this.group;
    const index = group.points.push(point) - 1;
    return group.done.then((appended) => {
      if (index >= appended) throw group.refusal;
    });
  };

  private readonly appendGroup = (): void => {
    const group = this.group!;
    this.group = undefined;
    const n = group.points.length;
    let appended: number;
    let refusal: { reason: RefuseReason; message: string } | undefined;
    try {
      appended = this.spool.appendMany(group.points.map((p) => p.line));
      if (appended < n) refusal = { reason: 'spool_full', message: `refusing events: spool full (${this.spool.pendingBytes()} bytes waiting for InfluxDB, limit historian.spoolMaxBytes ${this.config.spoolMaxBytes}); they are not acknowledged, so the devices keep them and send them again. Is InfluxDB reachable? Raise historian.spoolMaxBytes to buffer longer outages` };
      else if (this.diskFull) {
        this.diskFull = false;
        log.info({ dir: this.spoolDir }, 'the spool takes events again: the disk has room');
      }
    } catch (err) {
      appended = (err as { appended?: number }).appended ?? 0;
      const code = (err as NodeJS.ErrnoException).code;
      if (code === 'ENOSPC' || code === 'EDQUOT') {
        this.diskFull = true;
        this.freeDisk = undefined; // read it again now
        refusal = { reason: 'disk_full', message: `refusing events: disk full (${code} writing the spool in ${this.spoolDir}); they are not acknowledged, so the devices keep them and send them again. The spool drains as InfluxDB takes the backlog; free space on that filesystem or move historian.spoolDir` };
      } else {
        refusal = { reason: 'spool_error', message: `refusing events: could not write to the spool in ${this.spoolDir} (${(err as Error).message}); they are not acknowledged, so the devices keep them and send them again` };
      }
    }
    this.refusing = refusal !== undefined;
    // Only events in the spool count for the sequence check: a refused one comes again.
    for (let k = 0; k < appended; k++) this.accepted(group.points[k]!);
    if (refusal) {
      this.c[`refused_${refusal.reason}`] += n - appended;
      group.refusal = new MessageRefused(refusal.message);
      this.warnOnce(refusal.reason, refusal.message, 'error');
    }
    this.c.spooled += appended;
    if (this.unread === 0 && appended > 0) this.oldestUnreadAt = Date.now();
    this.unread += appended;
    if (this.unread >= this.config.batchSize && this.sleepingForBatch) this.wake?.();
    this.checkAlarm();
    group.resolve(appended);
  };

  private accepted(point: AcceptedPoint): void {
    const message = point.message;
    if (!message) return; // a dead letter: no device's sequence
    if ((message.kind === 'state' || message.kind === 'telemetry' || message.kind === 'status' || message.kind === 'ack') && message.payload.seq !== undefined) {
      this.sequences.check(`${message.line}/${message.device}`, message.payload.seq, message.payload.ts);
    }
  }

  private async writeLoop(): Promise<void> {
    let batch: SpoolBatch | undefined;
    /** What of `batch` is still to be written: ranges of its records, split where InfluxDB refused some. */
    let parts: { from: number; to: number }[] = [];
    const retry = new Backoff({ initialMs: this.config.retryInitialMs, maxMs: this.config.retryMaxMs, jitter: 'equal' });
    for (;;) {
      if (this.closed) return;
      if (!batch) {
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
        await this.client!.write(current.records.slice(part.from, part.to).join('\n'));
        this.influxUp = true;
        retry.reset();
        this.c.written += part.to - part.from;
        this.c.replayed += Math.max(0, Math.min(part.to, current.fromEarlierRun) - part.from);
        this.c.write_batches++;
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
        this.c.write_failures++;
        this.warnOnce('write', `InfluxDB write failed, will retry: ${failure.message ?? String(err)}`);
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
  private settleRejected(failure: Extract<WriteFailure, { kind: 'rejected' }>, part: { from: number; to: number }, batch: SpoolBatch): { from: number; to: number }[] {
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
    const refused = failure.partial && failure.exact ? failure.reported : size;
    this.c.written += size - refused;
    this.c.replayed += Math.max(0, Math.min(part.to, batch.fromEarlierRun) - part.from);
    const rest = refused < size ? ', the rest stored' : '';
    this.drop('rejected', `${failure.message} (${refused} of the ${batch.records.length} points in this batch refused${rest})`, refused);
    return [];
  }

  private commit(batch: SpoolBatch): void {
    // After stop() gave up waiting, the spool is closed: the next start replays this batch (harmless).
    if (this.closed) return;
    try {
      this.spool.commit(batch.end);
    } catch (err) {
      // The batch is in InfluxDB; a later commit covers it (and a restart would only replay it).
      this.c.commit_failures++;
      this.warnOnce('commit', `could not record the spool position in ${this.spoolDir}: ${(err as Error).message}`, 'error');
    }
    this.checkAlarm();
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
      await setupDatabase(this.client!.admin, this.config);
      this.needsSetup = false;
      this.influxUp = true;
      log.info({ database: this.config.database, retention: this.config.retention }, 'database, retention policies and continuous queries are set up');
    } catch (err) {
      this.c.setup_failures++;
      const failure: WriteFailure = { kind: 'retry', message: `database setup failed: ${(err as Error).message}` };
      throw failure;
    }
  }

  private drop(reason: DropReason, message: string, count = 1): void {
    this.c[`dropped_${reason}`] += count;
    this.warnOnce(reason, message);
  }

  /**
   * The alarm looks at the room left for the backlog: up to spoolMaxBytes, and no more than the
   * disk has free. It is raised once that room is down to (1 - spoolAlarmRatio) of spoolMaxBytes.
   */
  private checkAlarm(): void {
    const pending = this.spool.pendingBytes();
    const free = this.freeDiskBytes();
    const max = this.config.spoolMaxBytes;
    const fill = Math.max(pending / max, 1 - free / max);
    const byDisk = free < max - pending;
    if (!this.alarm && fill >= this.config.spoolAlarmRatio) {
      this.alarm = true;
      const why = byDisk
        ? `the disk under the historian spool ${this.spoolDir} has ${free} bytes free, less than the spool may still take (historian.spoolMaxBytes ${max}, ${pending} bytes waiting for InfluxDB)`
        : `historian spool is ${Math.round((pending / max) * 100)}% full (${pending} bytes waiting for InfluxDB, historian.spoolMaxBytes ${max}): InfluxDB is not keeping up or unreachable`;
      log.error({ pendingBytes: pending, maxBytes: max, diskFreeBytes: free }, `${why}; when it is full, events are refused (not acknowledged: the devices keep them and send them again)`);
    } else if (this.alarm && fill < this.config.spoolAlarmRatio * 0.9) {
      this.alarm = false;
      log.info({ pendingBytes: pending, diskFreeBytes: free }, 'historian spool alarm cleared');
    }
  }

  /** Free bytes for an unprivileged writer on the spool's filesystem (statfs), read at most every STATFS_EVERY_MS. */
  private freeDiskBytes(): number {
    const now = Date.now();
    if (!this.freeDisk || now - this.freeDisk.at >= STATFS_EVERY_MS) {
      try {
        const stats = statfsSync(this.spoolDir);
        this.freeDisk = { bytes: stats.bavail * stats.bsize, at: now };
      } catch {
        this.freeDisk = { bytes: Number.MAX_SAFE_INTEGER, at: now }; // not created yet, or no statfs here: no disk alarm
      }
    }
    return this.freeDisk.bytes;
  }

  /** Logs at most every 10 s per kind, so a flood of bad input cannot flood the log. */
  private warnOnce(kind: string, message: string, level: 'warn' | 'error' = 'warn'): void {
    const now = Date.now();
    if (now - (this.lastWarn.get(kind) ?? 0) < 10_000) return;
    this.lastWarn.set(kind, now);
    log[level]({ counters: this.counters() }, message);
  }
}
