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
    return this.wal.appendMany(payloads, {
      placed: (index, segment, offset, size) => {
        if (this.cacheBytes + size + CACHE_OVERHEAD > this.memoryBytes) return;
        this.cache.push({ segment, offset, size, payload: payloads[index]! });
        this.cacheBytes += size + CACHE_OVERHEAD;
      },
    });
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
    return this.wal.readBatch(maxRecords, maxBytes, this.held);
  }

  /** Everything before `position` is in InfluxDB (see WriteAheadLog.commit). */
  commit(position: SpoolPosition): void {
    this.wal.commit(position);
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
