// The historian: every linewatch event, command and alert → InfluxDB, nothing lost.
//
//   bus (QoS 1) ──► toPoint ──► spool.appendMany (write(2), then the message is acknowledged)
//                                   │
//                  writer loop ◄────┘ batches by size/interval → InfluxDB → commit position
//
// The spool is the queue: its recent tail is also kept in memory (bounded) so the writer rarely
// reads it back; a backlog waits on disk (bounded by spoolMaxBytes, with an alarm as it fills).
// Failed writes are retried with exponential backoff and jitter; a restart resumes from the
// committed position (docs/historian.md). This file is the sink (bus → spool) and the alarm;
// the writer loop (spool → InfluxDB) is historian/writer.ts. OEE summaries are the oee/ service's.
// Each device's data quality (historian/data-quality.ts) is counted here, from what is spooled, and
// stored every quality.intervalMs through the spool as data_quality points.
import { randomInt } from 'node:crypto';
import { statfsSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { MessageRefused, type Bus, type DecodeOnce, type Unsubscribe } from '../bus/bus.js';
import { sharedFilter, topics } from '../contracts/index.js';
import { describeOwnership, lineOfTopic, ownedFilters, ownershipLabel, ownershipOf, ownsLine, type LineOwnership } from '../contracts/line-workers.js';
import { logger } from '../lib/log.js';
import { LogLimiter } from '../lib/log-limit.js';
import type { LabelledCounter } from '../lib/metrics.js';
import { healthFrom, type Health, type Service, type ServiceInfo } from '../lib/service.js';
import type { HistorianConfig } from './config.js';
import { InfluxClient } from './influx.js';
import { influxToUse, type SupervisedInfluxd } from './influxd.js';
import { DataQuality, OVERFLOW, qualityCounters, type DeviceQuality, type QualityCounts } from './data-quality.js';
import { qualityLine, toPoint, type PointResult } from './points.js';
import { Spool } from './spool.js';
import { SpoolWriter } from './writer.js';
import { redactUrl } from '../lib/influx-url.js';

export { startManagedInfluxd, findInfluxd, influxToUse, INFLUXD_INSTALL_HINT, type InfluxInUse, type ManagedInfluxd, type SupervisedInfluxd } from './influxd.js';
export { historianConfigSchema, type HistorianConfig } from './config.js';

const log = logger('historian');
/** The writer's counters before it exists (a start that failed early). */
const NO_WRITES: SpoolWriter['counters'] = { written: 0, replayed: 0, write_batches: 0, write_failures: 0, setup_failures: 0, dropped_rejected: 0, commit_failures: 0, late_buckets_reaggregated: 0, reaggregate_requests: 0, reaggregate_failures: 0 };

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
  /**
   * This worker's name, for its default spool dir `<dataDir>/historian-spool-<worker>` (unless
   * config.spoolDir is set). Default: from the lines it owns (`lines-A+B`, `worker-1-of-2`); none
   * for every line (`historian-spool`).
   */
  worker?: string;
}

/** What `linewatch up` and the CLI use of a historian, in this thread (Historian) or a worker thread of its own (HistorianThread, historian/thread.ts). */
export interface HistorianService extends Service {
  /** The InfluxDB in use, once started. */
  readonly influxUrl: string | undefined;
  influxBack(): void;
  info(): ServiceInfo;
  /** Empty until the historian has started (a worker thread's figures arrive with its first snapshot). */
  counters(): Partial<HistorianCounters>;
  deviceQuality(line: string, device: string): Pick<DeviceQuality, 'totals'> | undefined;
}

/** Counters and gauges: what was received, spooled, written, replayed, dropped by reason; spool and queue state. */
export type HistorianCounters = ReturnType<Historian['counters']>;

type DropReason = 'invalid_topic' | 'invalid_payload';
/** Why an event was not taken into the spool (and so not acknowledged). */
type RefuseReason = 'spool_full' | 'disk_full' | 'spool_error';
type AcceptedPoint = Extract<PointResult, { ok: true }>;

/** The keys of counters() that are levels, not totals. */
const GAUGES: ReadonlySet<string> = new Set(['seq_missing', 'data_quality_devices', 'queue_depth', 'spool_records', 'spool_oldest_age_seconds', 'late_buckets_pending', 'spool_bytes', 'spool_pending_bytes', 'spool_segments', 'spool_fill_ratio', 'spool_alarm', 'spool_refusing', 'disk_full', 'disk_free_bytes', 'influx_up', 'subscribed']);

const GAUGES_WITH_INFLUXD: ReadonlySet<string> = new Set([...GAUGES, 'influxd_up']);

export class Historian implements HistorianService {
  readonly name = 'historian';
  /** With a managed influxd of its own, `influxd_up` too (counters() has it only then). */
  get gauges(): ReadonlySet<string> {
    return this.managed ? GAUGES_WITH_INFLUXD : GAUGES;
  }
  /** The InfluxDB in use, once started (a managed influxd's URL if none was configured). */
  influxUrl: string | undefined;
  private readonly config: HistorianConfig;
  private readonly spool: Spool;
  private client: InfluxClient | undefined;
  private managed: SupervisedInfluxd | undefined;
  private unsubscribe: Unsubscribe | undefined;
  private writer: SpoolWriter | undefined;
  private stopping = false;
  private started = false;
  private alarm = false;
  /** The last append failed for want of disk space (ENOSPC/EDQUOT); cleared by the next one that succeeds. */
  private diskFull = false;
  /** The last append group did not all fit (spool or disk full, I/O error); cleared by one that does. */
  private refusing = false;
  /** What the last refusal said (spool full, disk full, I/O error), for health(). */
  private refusal: string | undefined;
  private freeDisk: { bytes: number; at: number } | undefined;
  /** Events of the current tick, appended together in a microtask; `done` resolves to how many fit. */
  private group: { points: AcceptedPoint[]; done: Promise<number>; resolve: (appended: number) => void; refusal?: MessageRefused } | undefined;
  private readonly spoolDir: string;
  /** The lines this worker stores (config historian.lines / historian.worker). */
  private readonly ownership: LineOwnership;
  /** What it subscribes to: lw/#, narrowed to its lines, shared in historian.sharedGroup. */
  private readonly filters: string[];
  /** One line per kind per 10 s, then a count of the ones suppressed, so a flood of bad input cannot flood the log. */
  private readonly limitedLog = new LogLimiter(log, { linesPerInterval: 1, intervalMs: 10_000 });
  private logFlushTimer: NodeJS.Timeout | undefined;
  /** Per-device data quality (sequence numbers, timestamps): what the devices sent that never arrived, arrived twice, late or from the future. */
  private readonly quality: DataQuality;
  /** This run's number, in the nanosecond digits of its data_quality points (historian/points.ts qualityLine). */
  private readonly run = randomInt(1_000_000);
  /** When the current data-quality interval began (this process's clock, ms). */
  private intervalStart = Date.now();
  private qualityTimer: NodeJS.Timeout | undefined;
  private readonly c = {
    received: 0,
    spooled: 0,
    dropped_invalid_topic: 0,
    dropped_invalid_payload: 0,
    /** Messages with nothing to store (an emptied alarm topic, an operator's alarm request). */
    not_stored: 0,
    /** Messages of lines another worker owns (historian.worker: every worker hears every line). */
    skipped_other_worker: 0,
    refused_spool_full: 0,
    refused_disk_full: 0,
    refused_spool_error: 0,
    /** data_quality points put in the spool (one per device per interval it sent something in). */
    data_quality_points: 0,
  };

  constructor(private readonly options: HistorianOptions) {
    this.config = options.config;
    this.ownership = ownershipOf(options.config, 'historian');
    const group = options.config.sharedGroup;
    this.filters = ownedFilters(this.ownership, [topics.all]).map((filter) => (group === null ? filter : sharedFilter(group, filter)));
    const worker = options.worker ?? ownershipLabel(this.ownership);
    this.spoolDir = resolve(options.config.spoolDir ?? join(options.dataDir, worker ? `historian-spool-${worker}` : 'historian-spool'));
    const quality = options.config.quality;
    this.quality = new DataQuality({
      lateAfterMs: quality.lateAfterMs,
      futureAheadMs: quality.futureAheadMs,
      maxDevices: quality.maxDevices,
      onOverflow: (line, device) => this.warn('quality_overflow', `data quality: more than historian.quality.maxDevices ${quality.maxDevices} devices; ${line}/${device} and the others beyond it are counted together as line and device ${OVERFLOW}`),
    });
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
      const group = this.config.sharedGroup;
      if (group !== null && this.options.bus.sharedSubscriptions?.() !== true) {
        throw new Error(
          `historian.sharedGroup ${group}: this broker has no shared subscriptions ($share/${group}/…, MQTT 5) — the embedded linewatch broker (Aedes) has none, nor does an MQTT 3.1.1 connection. Point the historian workers at an MQTT 5 broker that has them (Mosquitto ≥ 1.6, EMQX), or set historian.sharedGroup: null and split the lines instead (historian.lines, historian.worker)`,
        );
      }
      this.spool.open();
      const influx = await influxToUse(this.options.influxUrl ?? this.config.influxUrl, this.options.dataDir, { onRestart: () => this.influxBack() });
      this.managed = influx.managed;
      const url = (this.influxUrl = influx.url);
      this.client = new InfluxClient({
        url,
        database: this.config.database,
        retentionPolicy: this.config.retentionPolicy,
        periodRetentionPolicy: this.config.periodRetentionPolicy,
        username: this.config.username,
        password: this.config.password,
        requestTimeoutMs: this.config.requestTimeoutMs,
      });
      this.writer = new SpoolWriter({
        spool: this.spool,
        client: this.client,
        config: this.config,
        spoolDir: this.spoolDir,
        limitedLog: this.limitedLog,
        logFields: () => this.counters(),
        afterCommit: () => this.checkAlarm(),
      });
      await this.writer.start();
      this.logFlushTimer = setInterval(() => this.limitedLog.flush(), 1000);
      this.logFlushTimer.unref();
      this.intervalStart = Date.now();
      this.qualityTimer = setInterval(() => this.storeQuality(), this.config.quality.intervalMs);
      this.qualityTimer.unref();
      this.unsubscribe = await this.options.bus.subscribe(this.filters, this.onMessage, { qos: 1 }).catch((err: unknown) => {
        throw new Error(`the historian could not subscribe to ${this.filters.join(', ')} at QoS 1 (${(err as Error).message}); its MQTT account needs the historian role: linewatch devices add NAME --role historian`, { cause: err });
      });
    } catch (err) {
      // Leave nothing running behind a failed start (spool timer, writer, a managed influxd).
      await this.stop();
      throw err;
    }
    log.info({ influx: redactUrl(this.influxUrl), database: this.config.database, spool: this.spool.pendingBytes(), lines: describeOwnership(this.ownership), subscribed: this.filters }, 'historian started');
  }

  async stop(): Promise<void> {
    if (!this.started || this.stopping) return;
    this.stopping = true;
    const unsubscribe = this.unsubscribe;
    this.unsubscribe = undefined;
    await unsubscribe?.().catch((err: unknown) => log.warn({ err }, 'unsubscribe failed'));
    clearInterval(this.qualityTimer);
    // The last interval's counts, so a clean stop loses none (a crash loses at most one interval's).
    if (this.writer) this.storeQuality();
    const drainMs = this.options.drainTimeoutMs ?? 5000;
    const drained = (await this.writer?.stop(drainMs)) ?? true;
    if (!drained) log.warn({ drainMs, pendingBytes: this.spool.pendingBytes() }, 'InfluxDB did not take the backlog in time; it stays in the spool for the next start');
    clearInterval(this.logFlushTimer);
    this.limitedLog.flush();
    this.spool.close();
    this.client?.close();
    await this.managed?.stop();
    log.info(this.counters(), 'historian stopped');
  }

  /** The managed influxd this historian started (no InfluxDB configured), supervised; undefined otherwise. */
  get managedInfluxd(): SupervisedInfluxd | undefined {
    return this.managed;
  }

  /** InfluxDB is back (a managed influxd restarted, here or by `linewatch up`): the writer tries at once instead of waiting out its backoff. */
  influxBack(): void {
    this.writer?.influxBack();
  }

  counters() {
    return {
      ...this.c,
      ...(this.writer?.counters ?? NO_WRITES),
      queue_depth: this.writer?.queueDepth ?? 0,
      spool_records: this.spool.pendingRecords(),
      spool_oldest_age_seconds: this.spool.oldestPendingAgeMs() / 1000,
      late_buckets_pending: this.writer?.lateBuckets ?? 0,
      ...(this.managed ? { influxd_up: this.managed.running ? 1 : 0, influxd_restarts: this.managed.restarts } : {}),
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
      influx_up: this.writer?.influxUp ? 1 : 0,
      subscribed: this.unsubscribe ? 1 : 0,
      seq_gaps: this.quality.sequences.counters.gaps,
      seq_missing: this.quality.sequences.counters.missing,
      seq_skipped: this.quality.sequences.counters.skipped,
      seq_duplicates: this.quality.sequences.counters.duplicates,
      seq_reorders: this.quality.sequences.counters.reorders,
      seq_resets: this.quality.sequences.counters.resets,
      seq_stale: this.quality.sequences.counters.stale,
      data_quality_devices: this.quality.deviceCount,
      data_quality_overflow_messages: this.quality.overflowMessages,
    };
  }

  /** Per device (line, device labels), since this process started: `linewatch_quality_<field>` counters in /metrics. */
  labelledCounters(): LabelledCounter[] {
    return qualityCounters(this.quality.all());
  }

  /** Every device's data quality since this process started (what a worker thread hands the main thread, historian/thread.ts). */
  qualityTotals(): { line: string; device: string; totals: QualityCounts }[] {
    return this.quality.all().map((device) => ({ line: device.line, device: device.device, totals: device.totals }));
  }

  /** One device's data quality since this process started (undefined if it sent nothing). */
  deviceQuality(line: string, device: string): DeviceQuality | undefined {
    return this.quality.get(line, device);
  }

  /**
   * Puts each device's counts of the interval that ends now in the spool, as data_quality points
   * (historian/points.ts qualityLine). What the spool cannot take is kept for the next interval.
   */
  private storeQuality(): void {
    const now = Date.now();
    const taken = this.quality.take();
    const start = this.intervalStart;
    this.intervalStart = now;
    if (taken.length === 0) return;
    const lines = taken.map((device) => qualityLine(device, start, now - start, this.run));
    let appended: number;
    try {
      appended = this.spool.appendMany(lines);
    } catch (err) {
      appended = (err as { appended?: number }).appended ?? 0;
      this.warn('quality_spool', `data quality: could not put ${lines.length - appended} data_quality points in the spool (${(err as Error).message}); their counts are kept for the next interval`, 'error');
    }
    if (appended < taken.length) {
      this.quality.giveBack(taken.slice(appended));
      // They are counted into the next interval's points, timed at its start.
    }
    this.c.data_quality_points += appended;
    this.writer?.appended(appended);
  }

  /** The lines it owns (`all`, `A,B`, `hash 1/2`), its subscription and its shared group, for /healthz and /metrics. */
  info(): ServiceInfo {
    const owned = this.ownership.kind === 'all' ? 'all' : this.ownership.kind === 'lines' ? this.ownership.lines.join(',') : `hash ${this.ownership.index}/${this.ownership.count}`;
    return { lines: owned, subscription: this.filters.join(' '), ...(this.config.sharedGroup === null ? {} : { shared_group: this.config.sharedGroup }) };
  }

  /**
   * down: not doing its job — not subscribed (not started, stopped), or refusing events (spool
   * full, disk full, I/O error). degraded: InfluxDB unreachable while the spool holds the data,
   * or the spool past its alarm level.
   */
  health(): Health {
    const pending = this.spool.pendingBytes();
    return healthFrom([
      { failed: !this.unsubscribe, status: 'down', reason: `not subscribed to ${this.filters.join(', ')} (not started, or stopped)` },
      { failed: this.unsubscribe !== undefined && !this.options.bus.connected(), status: 'down', reason: 'not connected to the broker: the broker keeps its QoS 1 messages on the persistent session until it reconnects' },
      { failed: this.refusing, status: 'down', reason: this.refusal ?? 'refusing events' },
      { failed: this.writer !== undefined && !this.writer.influxUp && pending > 0, status: 'degraded', reason: `InfluxDB is unreachable; the spool holds ${pending} bytes for it` },
      { failed: this.alarm, status: 'degraded', reason: `the spool is past its alarm level (historian.spoolAlarmRatio ${this.config.spoolAlarmRatio}): ${pending} bytes waiting, historian.spoolMaxBytes ${this.config.spoolMaxBytes}` },
    ]);
  }

  /** Resolves once everything received so far is in InfluxDB (bounded by `timeoutMs`). */
  async flush(timeoutMs = 10_000): Promise<void> {
    await this.writer?.flush(timeoutMs);
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
    if (this.ownership.kind === 'hash') {
      const line = lineOfTopic(topic);
      // Another worker's line: acknowledged and left to it. A topic outside lw/ is kept, to be refused as invalid.
      if (line !== undefined && !ownsLine(this.ownership, line)) {
        this.c.skipped_other_worker++;
        return;
      }
    }
    const point = toPoint(topic, payload, decoded);
    if (!point.ok && point.reason === 'not-stored') {
      this.c.not_stored++;
      return;
    }
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
    this.refusal = refusal?.message;
    // Only events in the spool count for the sequence check: a refused one comes again.
    for (let k = 0; k < appended; k++) this.accepted(group.points[k]!);
    if (refusal) {
      this.c[`refused_${refusal.reason}`] += n - appended;
      group.refusal = new MessageRefused(refusal.message);
      this.warn(refusal.reason, refusal.message, 'error');
    }
    this.c.spooled += appended;
    this.writer?.appended(appended);
    this.checkAlarm();
    group.resolve(appended);
  };

  private accepted(point: AcceptedPoint): void {
    const message = point.message;
    if (!message) return; // a dead letter: no device's sequence
    if (message.kind !== 'state' && message.kind !== 'telemetry' && message.kind !== 'ack' && message.kind !== 'status') return;
    // Counted as a message only, checked for neither ts nor seq: a status (a will is composed when its
    // device connects: its ts and seq date from then; the rules engine ignores its ts too), and every
    // message of a shared group's member (it gets only some of each device's messages: gaps, reorders
    // and late timestamps would be its share's, not the device's).
    const checked = message.kind !== 'status' && this.config.sharedGroup === null;
    this.quality.record(message.line, message.device, checked ? message.payload.ts : undefined, checked ? message.payload.seq : undefined);
  }

  private drop(reason: DropReason, message: string): void {
    this.c[`dropped_${reason}`]++;
    this.warn(reason, message);
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

  /** At most one line per kind per 10 s (the limiter), with the counters as they are then. */
  private warn(kind: string, message: string, level: 'warn' | 'error' = 'warn'): void {
    this.limitedLog.write(level, kind, () => ({ counters: this.counters() }), message);
  }
}
