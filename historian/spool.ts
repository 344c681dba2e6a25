// The historian's write-ahead spool: the write-ahead log of lib/wal with the historian's policy.
//
// Every accepted event is appended here before its MQTT message is acknowledged; a writer reads
// batches from the log, writes them to InfluxDB, and then commits the read position. So the log
// is both the queue and the outage buffer, and a restart resumes from the committed position.
// The on-disk format (segments, records, committed.pos, LOCK) is lib/wal's; see lib/wal/wal.ts.
//
// What is the historian's here: records appended in this run are also kept in memory (up to
// `memoryBytes`), so the writer normally takes them from there instead of reading them back;
// the refusal when full names historian.spoolMaxBytes; a spool of an earlier version kept its
// committed position in committed.json, which is read once and removed.
import { readFileSync, unlinkSync } from 'node:fs';
import { join } from 'node:path';
import type { LockOptions } from '../lib/dir-lock.js';
import { logger } from '../lib/log.js';
import { WriteAheadLog, type HeldRecord, type WalBatch, type WalPosition } from '../lib/wal/wal.js';

const log = logger('historian');

export interface SpoolOptions {
  dir: string;
  /** Appends fail with SpoolFullError while this many bytes are waiting to be written to InfluxDB. */
  maxBytes: number;
  /** A segment is closed and a new one started beyond this size. */
  segmentBytes?: number;
  /** Group fsync interval; 0 fsyncs after every append. */
  fsyncIntervalMs?: number;
  /**
   * Records appended in this run are also kept in memory, up to this many bytes, so the writer
   * normally takes them from there instead of reading them back; beyond it (an outage backlog)
   * and after a restart, it reads from disk.
   */
  memoryBytes?: number;
  /** The LOCK's lease (lib/dir-lock.ts); the defaults suit production. */
  lock?: LockOptions;
}

/** A record still in memory: where it starts on disk, its size there, its payload. */
interface CachedRecord extends HeldRecord {
  segment: number;
  offset: number;
}

export type SpoolPosition = WalPosition;

/** Record payloads are line protocol; `end` goes to commit() once the batch is stored. */
export type SpoolBatch = WalBatch;

export class SpoolFullError extends Error {
  override name = 'SpoolFullError';
}

/**
 * Where records appended at about one time start: one mark per MARK_EVERY_MS of appending, so the
 * oldest pending record's age is known to within that much (and a day-long outage costs 86,400
 * marks of memory).
 */
interface AgeMark {
  segment: number;
  offset: number;
  at: number;
}
const MARK_EVERY_MS = 1000;

/** Approximate heap bytes of one cached record besides its payload (object, array slot). */
const CACHE_OVERHEAD = 64;
/** Where an earlier version kept the committed position (rewritten by rename, which needs free space). */
const LEGACY_COMMITTED = 'committed.json';

export class Spool {
  private readonly wal: WriteAheadLog;
  private readonly memoryBytes: number;
  private cache: CachedRecord[] = [];
  private cacheHead = 0;
  private cacheBytes = 0;
  private readonly held = (segment: number, offset: number): CachedRecord | undefined => this.cached(segment, offset);
  /** Records not yet read by the writer, and batches read but not committed (their end and size). */
  private unreadRecords = 0;
  private readonly inFlight: { end: SpoolPosition; records: number }[] = [];
  /** Oldest first; the head covers the oldest record not committed. */
  private marks: AgeMark[] = [];

  constructor(private readonly options: SpoolOptions) {
    this.memoryBytes = options.memoryBytes ?? 64 * 1024 * 1024;
    this.wal = new WriteAheadLog({
      dir: options.dir,
      maxBytes: options.maxBytes,
      segmentBytes: options.segmentBytes ?? 64 * 1024 * 1024,
      fsyncIntervalMs: options.fsyncIntervalMs ?? 1000,
      lock: { what: 'the historian spool', hint: 'stop that historian or give this one another data dir (--data-dir / historian.spoolDir)', ...(options.lock ? { options: options.lock } : {}) },
      log,
      fallbackCommitted: () => this.legacyCommitted(),
    });
  }

  /** appended, appendedBytes, tornTails, corruptRecords, fsyncs, segmentsDeleted. */
  get counters(): WriteAheadLog['counters'] {
    return this.wal.counters;
  }

  /** Recovers the log left by an earlier run and starts a new segment for this one. */
  open(): void {
    this.wal.open();
    this.removeLegacyCommitted();
    const earlier = this.wal.earlierBacklog();
    this.unreadRecords = earlier.records;
    this.marks = earlier.segments.map(({ segment, offset, createdAtMs }) => ({ segment, offset, at: createdAtMs }));
  }

  /** Records appended and not yet committed (an earlier run's counted at open). */
  pendingRecords(): number {
    return this.unreadRecords + this.inFlight.reduce((n, batch) => n + batch.records, 0);
  }

  /**
   * How long ago the oldest record not yet committed was appended (ms; 0 when none is waiting):
   * exact to MARK_EVERY_MS for this run's records; for an earlier run's, from the creation time
   * of the segment holding it (so at most that old).
   */
  oldestPendingAgeMs(now = Date.now()): number {
    if (this.wal.pendingBytes() === 0 || this.marks.length === 0) return 0;
    return Math.max(0, now - this.marks[0]!.at);
  }

  /** Appends one record (written to the OS before returning). Throws SpoolFullError when full. */
  append(payload: string): void {
    if (this.appendMany([payload]) === 0) {
      throw new SpoolFullError(`the historian spool holds ${this.wal.pendingBytes()} bytes not yet in InfluxDB (limit ${this.options.maxBytes}); is InfluxDB reachable? raise historian.spoolMaxBytes to buffer longer outages`);
    }
  }

  /**
   * Appends records in order with one write(2) per segment touched (group commit), and returns
   * how many fit: fewer than given when the spool is full. On an I/O error nothing partial stays
   * on disk and the error carries `appended` (how many records before it were written).
   */
  appendMany(payloads: readonly string[]): number {
    const now = Date.now();
    const appended = this.wal.appendMany(payloads, {
      placed: (index, segment, offset, size) => {
        const last = this.marks[this.marks.length - 1];
        if (!last || now - last.at >= MARK_EVERY_MS) this.marks.push({ segment, offset, at: now });
        if (this.cacheBytes + size + CACHE_OVERHEAD > this.memoryBytes) return;
        this.cache.push({ segment, offset, size, payload: payloads[index]! });
        this.cacheBytes += size + CACHE_OVERHEAD;
      },
    });
    this.unreadRecords += appended;
    return appended;
  }

  /** True when records were appended that readBatch() has not returned yet. */
  hasUnread(): boolean {
    return this.wal.hasUnread();
  }

  /**
   * Reads up to `maxRecords` records / about `maxBytes` bytes after the previous read (not after
   * the committed position: a batch that failed is retried by its owner, not re-read).
   */
  readBatch(maxRecords: number, maxBytes: number): SpoolBatch {
    const batch = this.wal.readBatch(maxRecords, maxBytes, this.held);
    this.unreadRecords = Math.max(0, this.unreadRecords - batch.records.length);
    if (batch.records.length > 0) this.inFlight.push({ end: batch.end, records: batch.records.length });
    return batch;
  }

  /** Everything before `position` is in InfluxDB (see WriteAheadLog.commit). */
  commit(position: SpoolPosition): void {
    try {
      this.wal.commit(position);
    } finally {
      while (this.inFlight.length > 0 && !after(this.inFlight[0]!.end, position)) this.inFlight.shift();
      // A mark is done with once the next one starts at or before the committed position.
      let done = 0;
      while (done + 1 < this.marks.length && !after(this.marks[done + 1]!, position)) done++;
      if (done > 0) this.marks = this.marks.slice(done);
      if (this.wal.pendingBytes() === 0) {
        // Nothing waits: whatever the counts say (damaged records read as none), there is nothing.
        this.marks = [];
        this.unreadRecords = 0;
        this.inFlight.length = 0;
      }
    }
  }

  /** Bytes appended but not yet committed. */
  pendingBytes(): number {
    return this.wal.pendingBytes();
  }

  /** Bytes in all segment files on disk. */
  diskBytes(): number {
    return this.wal.diskBytes();
  }

  segmentCount(): number {
    return this.wal.segmentCount();
  }

  /** fsyncs the current segment now. */
  flush(): void {
    this.wal.flush();
  }

  close(): void {
    this.wal.close();
    this.marks = [];
    this.unreadRecords = 0;
    this.inFlight.length = 0;
    this.cache = [];
    this.cacheHead = 0;
    this.cacheBytes = 0;
  }

  /** The cached record starting at this position, if it is in memory; forgets records before it. */
  private cached(segment: number, offset: number): CachedRecord | undefined {
    while (this.cacheHead < this.cache.length) {
      const head = this.cache[this.cacheHead]!;
      if (head.segment > segment || (head.segment === segment && head.offset > offset)) return undefined;
      this.cacheHead++;
      this.cacheBytes -= head.size + CACHE_OVERHEAD;
      if (this.cacheHead > 4096 && this.cacheHead * 2 > this.cache.length) {
        this.cache = this.cache.slice(this.cacheHead);
        this.cacheHead = 0;
      }
      if (head.segment === segment && head.offset === offset) return head;
    }
    return undefined;
  }

  /** The position in committed.json of an earlier version, if there is one: replay is idempotent, so a missing one costs time, not correctness. */
  private legacyCommitted(): SpoolPosition | undefined {
    try {
      const value = JSON.parse(readFileSync(join(this.options.dir, LEGACY_COMMITTED), 'utf8')) as SpoolPosition;
      if (Number.isInteger(value.segment) && Number.isInteger(value.offset)) return { segment: value.segment, offset: value.offset };
    } catch {
      // missing or unreadable: replay from the oldest segment
    }
    return undefined;
  }

  /** committed.json (and its .tmp) of an earlier version, once committed.pos holds the position. */
  private removeLegacyCommitted(): void {
    for (const name of [LEGACY_COMMITTED, `${LEGACY_COMMITTED}.tmp`]) {
      try {
        unlinkSync(join(this.options.dir, name));
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
      }
    }
  }
}

/** True when `a` is after `b` in the log. */
function after(a: SpoolPosition, b: SpoolPosition): boolean {
  return a.segment > b.segment || (a.segment === b.segment && a.offset > b.offset);
}
