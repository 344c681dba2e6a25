// The historian's write-ahead spool: an append-only log of checksummed records on disk.
//
// Every accepted event is appended here before its MQTT message is acknowledged; a writer reads
// batches from the log, writes them to InfluxDB, and then commits the read position. So the log
// is both the queue and the outage buffer, and a restart resumes from the committed position.
//
//   segment file  seg-<16 digits>.log = record*
//   record        u32le length | u32le CRC-32 (IEEE) of the payload | payload (UTF-8 line protocol)
//   committed.pos  { segment, offset } — everything before it is in InfluxDB (commit-file.ts:
//                  overwritten in place, so committing needs no free disk space)
//
// Durability: append()/appendMany() return after write(2), so a record survives the process being killed
// (SIGKILL, crash) as soon as append returns; it survives power loss once fsync'd, which happens
// every `fsyncIntervalMs` (0 = after every append). Each run appends to a new segment, so a torn
// last record from a crash (short write, zeros after power loss) sits at the end of an older
// segment, where the reader detects it by length/CRC, counts it and skips the rest of that segment.
import { closeSync, fsync, fsyncSync, ftruncateSync, mkdirSync, openSync, readdirSync, readFileSync, readSync, statSync, unlinkSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { crc32 } from 'node:zlib';
import { lockDir, unlockDir, type LockOptions } from '../lib/dir-lock.js';
import { logger } from '../lib/log.js';
import { CommitFile } from './commit-file.js';

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
interface CachedRecord {
  segment: number;
  offset: number;
  size: number;
  payload: string;
}

export interface SpoolPosition {
  segment: number;
  offset: number;
}

export interface SpoolBatch {
  /** Record payloads (line protocol), in append order. */
  records: string[];
  bytes: number;
  /** Position after the last record: pass it to commit() once the batch is stored. */
  end: SpoolPosition;
  /** How many of the records were appended by an earlier run (recovered after a restart). */
  fromEarlierRun: number;
}

export class SpoolFullError extends Error {
  override name = 'SpoolFullError';
}

const HEADER = 8;
/** Larger lengths can only come from a torn or corrupted header. */
const MAX_RECORD = 16 * 1024 * 1024;
const READ_CHUNK = 4 * 1024 * 1024;
/** Approximate heap bytes of one cached record besides its payload (object, array slot). */
const CACHE_OVERHEAD = 64;
const SEGMENT_RE = /^seg-(\d{16})\.log$/;
/** Where an earlier version kept the committed position (rewritten by rename, which needs free space). */
const LEGACY_COMMITTED = 'committed.json';

export class Spool {
  readonly counters = { appended: 0, appendedBytes: 0, tornTails: 0, corruptRecords: 0, fsyncs: 0, segmentsDeleted: 0 };
  private readonly segmentBytes: number;
  private readonly fsyncIntervalMs: number;
  /** Existing segment ids (ascending) and their sizes. */
  private readonly sizes = new Map<number, number>();
  private writeSegment = 0;
  private writeFd = -1;
  private firstSegmentOfRun = 0;
  private read = { segment: 0, offset: 0 };
  private readFd = -1;
  private readFdSegment = -1;
  private committed: SpoolPosition = { segment: 0, offset: 0 };
  private readonly commitFile: CommitFile;
  /** The last append failed for want of disk space (ENOSPC/EDQUOT); cleared by one that succeeds. */
  private noSpace = false;
  private pending = 0;
  private dirty = false;
  private readonly memoryBytes: number;
  private cache: CachedRecord[] = [];
  private cacheHead = 0;
  private cacheBytes = 0;
  private fsyncTimer: NodeJS.Timeout | undefined;
  private opened = false;

  constructor(private readonly options: SpoolOptions) {
    this.segmentBytes = options.segmentBytes ?? 64 * 1024 * 1024;
    this.fsyncIntervalMs = options.fsyncIntervalMs ?? 1000;
    this.memoryBytes = options.memoryBytes ?? 64 * 1024 * 1024;
    this.commitFile = new CommitFile(join(options.dir, 'committed.pos'));
  }

  /** Recovers the log left by an earlier run and starts a new segment for this one. */
  open(): void {
    const { dir } = this.options;
    mkdirSync(dir, { recursive: true });
    this.lock();
    for (const name of readdirSync(dir)) {
      const m = SEGMENT_RE.exec(name);
      if (m) this.sizes.set(Number(m[1]), statSync(join(dir, name)).size);
    }
    const ids = this.ids();
    this.committed = this.loadCommitted() ?? { segment: ids[0] ?? 1, offset: 0 };
    this.commitFile.write(this.committed);
    this.removeLegacyCommitted();
    for (const id of ids) if (id < this.committed.segment) this.deleteSegment(id);
    this.read = { ...this.committed };
    this.writeSegment = Math.max(this.committed.segment, ...ids) + 1;
    this.firstSegmentOfRun = this.writeSegment;
    this.startSegment(this.writeSegment);
    this.pending = this.computePending();
    if (this.fsyncIntervalMs > 0) {
      this.fsyncTimer = setInterval(() => this.flushAsync(), this.fsyncIntervalMs);
      this.fsyncTimer.unref();
    }
    this.opened = true;
  }

  /** Appends one record (written to the OS before returning). Throws SpoolFullError when full. */
  append(payload: string): void {
    if (this.appendMany([payload]) === 0) {
      throw new SpoolFullError(`the historian spool holds ${this.pending} bytes not yet in InfluxDB (limit ${this.options.maxBytes}); is InfluxDB reachable? raise historian.spoolMaxBytes to buffer longer outages`);
    }
  }

  /**
   * Appends records in order with one write(2) per segment touched (group commit), and returns
   * how many fit: fewer than given when the spool is full. On an I/O error nothing partial stays
   * on disk and the error carries `appended` (how many records before it were written).
   */
  appendMany(payloads: readonly string[]): number {
    if (!this.opened) throw new Error('the historian spool is closed');
    let done = 0;
    while (done < payloads.length) {
      const segmentSize = this.sizes.get(this.writeSegment)!;
      const lengths: number[] = [];
      let total = 0;
      let full = false;
      while (done + lengths.length < payloads.length) {
        const length = Buffer.byteLength(payloads[done + lengths.length]!);
        const size = HEADER + length;
        if (this.pending + total + size > this.options.maxBytes) {
          full = true;
          break;
        }
        if (segmentSize + total > 0 && segmentSize + total + size > this.segmentBytes) break;
        lengths.push(length);
        total += size;
      }
      if (lengths.length > 0) {
        const buf = Buffer.allocUnsafe(total);
        let at = 0;
        for (let k = 0; k < lengths.length; k++) {
          const length = lengths[k]!;
          buf.write(payloads[done + k]!, at + HEADER, length, 'utf8');
          buf.writeUInt32LE(length, at);
          buf.writeUInt32LE(crc32(buf.subarray(at + HEADER, at + HEADER + length)), at + 4);
          at += HEADER + length;
        }
        try {
          let written = 0;
          while (written < total) written += writeSync(this.writeFd, buf, written, total - written, segmentSize + written);
        } catch (err) {
          // Leave no partial record behind (e.g. ENOSPC): cut the segment back to its last whole record.
          ftruncateSync(this.writeFd, segmentSize);
          const code = (err as NodeJS.ErrnoException).code;
          this.noSpace = code === 'ENOSPC' || code === 'EDQUOT';
          throw Object.assign(err as Error, { appended: done });
        }
        this.noSpace = false;
        let offset = segmentSize;
        for (let k = 0; k < lengths.length; k++) {
          const size = HEADER + lengths[k]!;
          if (this.cacheBytes + size + CACHE_OVERHEAD <= this.memoryBytes) {
            this.cache.push({ segment: this.writeSegment, offset, size, payload: payloads[done + k]! });
            this.cacheBytes += size + CACHE_OVERHEAD;
          }
          offset += size;
        }
        this.sizes.set(this.writeSegment, segmentSize + total);
        this.pending += total;
        this.counters.appended += lengths.length;
        this.counters.appendedBytes += total;
        done += lengths.length;
      }
      if (full) break;
      if (done < payloads.length) {
        try {
          this.rotate();
        } catch (err) {
          // No new segment (e.g. ENOSPC): what was written so far stays, and the caller learns how much.
          const code = (err as NodeJS.ErrnoException).code;
          this.noSpace = code === 'ENOSPC' || code === 'EDQUOT';
          throw Object.assign(err as Error, { appended: done });
        }
      }
    }
    if (done > 0) {
      if (this.fsyncIntervalMs === 0) {
        fsyncSync(this.writeFd);
        this.counters.fsyncs++;
      } else {
        this.dirty = true;
      }
    }
    return done;
  }

  /** True when records were appended that read() has not returned yet. */
  hasUnread(): boolean {
    return this.read.segment < this.writeSegment || this.read.offset < this.sizes.get(this.writeSegment)!;
  }

  /**
   * Reads up to `maxRecords` records / about `maxBytes` bytes after the previous read (not after
   * the committed position: a batch that failed is retried by its owner, not re-read).
   */
  readBatch(maxRecords: number, maxBytes: number): SpoolBatch {
    const records: string[] = [];
    let bytes = 0;
    let fromEarlierRun = 0;
    while (records.length < maxRecords && bytes < maxBytes) {
      const { segment } = this.read;
      const size = this.sizes.get(segment);
      if (size === undefined || this.read.offset >= size) {
        if (segment >= this.writeSegment) break;
        this.read = { segment: this.nextSegment(segment), offset: 0 };
        continue;
      }
      const cached = this.cached(segment, this.read.offset);
      if (cached) {
        records.push(cached.payload);
        bytes += cached.size - HEADER;
        this.read.offset += cached.size;
        continue;
      }
      if (size - this.read.offset < HEADER) {
        // A few bytes that cannot even hold a header, at the end of a finished segment: torn.
        this.counters.tornTails++;
        log.warn({ segment: this.segmentPath(segment), offset: this.read.offset }, 'spool: skipped a torn record (a crash during a write); everything before it is kept');
        this.read.offset = size;
        continue;
      }
      const chunkStart = this.read.offset;
      // About what the batch still needs (records are ~100–300 bytes), so a batch does not read far ahead.
      const want = Math.max(64 * 1024, (maxRecords - records.length) * 256);
      const chunk = this.readChunk(segment, chunkStart, Math.min(size - chunkStart, READ_CHUNK, want));
      let at = 0;
      while (records.length < maxRecords && bytes < maxBytes) {
        if (chunk.length - at < HEADER) break;
        const length = chunk.readUInt32LE(at);
        const end = at + HEADER + length;
        if (length === 0 || length > MAX_RECORD || chunkStart + end > size) {
          // A header that cannot be right: the torn tail of a crashed run. Nothing after it in this
          // segment can be trusted (the run that wrote it ended there).
          this.counters.tornTails++;
          log.warn({ segment: this.segmentPath(segment), offset: chunkStart + at }, 'spool: skipped a torn record (a crash during a write); everything before it is kept');
          this.read.offset = size;
          break;
        }
        if (end > chunk.length) {
          if (at === 0) {
            // One record bigger than a chunk: read exactly that record next.
            const whole = this.readChunk(segment, this.read.offset, HEADER + length);
            if (this.take(whole, 0, length, records)) {
              bytes += length;
              fromEarlierRun += segment < this.firstSegmentOfRun ? 1 : 0;
            }
            this.read.offset += HEADER + length;
          }
          break;
        }
        if (this.take(chunk, at, length, records)) {
          bytes += length;
          fromEarlierRun += segment < this.firstSegmentOfRun ? 1 : 0;
        }
        at = end;
        this.read.offset += HEADER + length;
      }
    }
    return { records, bytes, end: { ...this.read }, fromEarlierRun };
  }

  /**
   * Everything before `position` is stored: persist that (in place: no free space needed), and
   * delete segments no longer needed. If persisting fails, the segments still go (a restart then
   * replays from the last recorded position, harmlessly) and the error is thrown afterwards.
   */
  commit(position: SpoolPosition): void {
    if (!this.opened) return;
    this.committed = { ...position };
    let failure: unknown;
    try {
      this.commitFile.write(this.committed);
    } catch (err) {
      failure = err;
    }
    for (const id of this.ids()) {
      const finished = id < position.segment || (id !== this.writeSegment && id === position.segment && position.offset >= this.sizes.get(id)!);
      if (finished && id !== this.writeSegment) this.deleteSegment(id);
    }
    // Disk full and the segment being appended to is all stored: start an empty one, so that
    // one can go too and free its space.
    const size = this.sizes.get(this.writeSegment)!;
    if (this.noSpace && size > 0 && position.segment === this.writeSegment && position.offset >= size) {
      const stored = this.writeSegment;
      try {
        this.rotate();
        this.deleteSegment(stored);
      } catch (err) {
        // Not a commit failure: the position is recorded. The stored segment is freed at a later
        // commit, once a new segment can be created.
        log.warn({ err: (err as Error).message, dir: this.options.dir }, 'the disk is full and no new spool segment can be created to free the stored one; retrying at the next commit');
      }
    }
    this.pending = this.computePending();
    if (failure) throw failure;
  }

  /** Bytes appended but not yet committed. */
  pendingBytes(): number {
    return this.pending;
  }

  /** Bytes in all segment files on disk. */
  diskBytes(): number {
    let total = 0;
    for (const size of this.sizes.values()) total += size;
    return total;
  }

  segmentCount(): number {
    return this.sizes.size;
  }

  /** fsyncs the current segment now. */
  flush(): void {
    if (this.writeFd >= 0 && this.dirty) {
      this.dirty = false;
      fsyncSync(this.writeFd);
      this.counters.fsyncs++;
    }
  }

  close(): void {
    if (!this.opened) return;
    this.opened = false;
    clearInterval(this.fsyncTimer);
    this.flush();
    closeSync(this.writeFd);
    this.writeFd = -1;
    this.closeReadFd();
    this.commitFile.close();
    this.unlock();
    // A segment of this run that holds nothing uncommitted is not needed by the next one.
    const size = this.sizes.get(this.writeSegment)!;
    if (size === 0 || (this.committed.segment === this.writeSegment && this.committed.offset >= size)) this.deleteSegment(this.writeSegment);
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

  private take(buf: Buffer, at: number, length: number, records: string[]): boolean {
    const payload = buf.subarray(at + HEADER, at + HEADER + length);
    if (crc32(payload) !== buf.readUInt32LE(at + 4)) {
      // The length was plausible but the bytes are not what was written: skip this record only.
      this.counters.corruptRecords++;
      log.error({ dir: this.options.dir }, 'spool: skipped a record whose CRC does not match (disk corruption?)');
      return false;
    }
    records.push(payload.toString('utf8'));
    return true;
  }

  private flushAsync(): void {
    if (this.writeFd < 0 || !this.dirty) return;
    this.dirty = false;
    this.counters.fsyncs++;
    // In the thread pool, so the event loop keeps taking messages meanwhile. A rotation closes
    // the fd only after its own fsyncSync, so a late EBADF here loses nothing.
    fsync(this.writeFd, () => undefined);
  }

  /** Starts the next segment; if it cannot be created, the current one stays the one appended to. */
  private rotate(): void {
    fsyncSync(this.writeFd);
    this.counters.fsyncs++;
    this.dirty = false;
    const previous = this.writeFd;
    this.startSegment(this.writeSegment + 1);
    closeSync(previous);
  }

  /** Creates segment `id` and makes it the one appended to; if anything fails, nothing changed. */
  private startSegment(id: number): void {
    const path = this.segmentPath(id);
    const fd = openSync(path, 'wx');
    try {
      // Make the new file's directory entry durable too.
      const dirFd = openSync(this.options.dir, 'r');
      try {
        fsyncSync(dirFd);
      } finally {
        closeSync(dirFd);
      }
    } catch (err) {
      closeSync(fd);
      unlinkSync(path);
      throw err;
    }
    this.writeFd = fd;
    this.writeSegment = id;
    this.sizes.set(id, 0);
  }

  private readChunk(segment: number, offset: number, length: number): Buffer {
    if (this.readFdSegment !== segment) {
      this.closeReadFd();
      this.readFd = openSync(this.segmentPath(segment), 'r');
      this.readFdSegment = segment;
    }
    const buf = Buffer.allocUnsafe(length);
    let done = 0;
    while (done < length) {
      const n = readSync(this.readFd, buf, done, length - done, offset + done);
      if (n === 0) break;
      done += n;
    }
    return done === length ? buf : buf.subarray(0, done);
  }

  private closeReadFd(): void {
    if (this.readFd >= 0) closeSync(this.readFd);
    this.readFd = -1;
    this.readFdSegment = -1;
  }

  private nextSegment(after: number): number {
    for (const id of this.ids()) if (id > after) return id;
    return this.writeSegment;
  }

  private deleteSegment(id: number): void {
    if (this.readFdSegment === id) this.closeReadFd();
    try {
      unlinkSync(this.segmentPath(id));
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    }
    this.sizes.delete(id);
    this.counters.segmentsDeleted++;
  }

  private computePending(): number {
    let total = 0;
    for (const [id, size] of this.sizes) {
      if (id > this.committed.segment) total += size;
      else if (id === this.committed.segment) total += Math.max(0, size - this.committed.offset);
    }
    return total;
  }

  private loadCommitted(): SpoolPosition | undefined {
    const position = this.commitFile.open();
    if (position) return position;
    // Missing (first run) or unreadable: replay from the oldest segment — replay is idempotent,
    // so this costs time, not correctness. A spool of an earlier version has committed.json.
    try {
      const value = JSON.parse(readFileSync(join(this.options.dir, LEGACY_COMMITTED), 'utf8')) as SpoolPosition;
      if (Number.isInteger(value.segment) && Number.isInteger(value.offset)) return value;
    } catch {
      // missing or unreadable, as above
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

  /** One spool, one writer: a second historian on the same directory would interleave segments. */
  private lock(): void {
    lockDir(this.options.dir, 'the historian spool', 'stop that historian or give this one another data dir (--data-dir / historian.spoolDir)', this.options.lock);
  }

  private unlock(): void {
    unlockDir(this.options.dir);
  }

  private ids(): number[] {
    return [...this.sizes.keys()].sort((a, b) => a - b);
  }

  private segmentPath(id: number): string {
    return join(this.options.dir, `seg-${String(id).padStart(16, '0')}.log`);
  }
}
