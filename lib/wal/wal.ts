// A write-ahead log on disk: an append-only sequence of checksummed records in segment files,
// a committed position, and a bound on what is not committed yet. The historian's spool and the
// gateway's store-and-forward spool are both this log with their own policy on top. (About 440
// lines, over the house's ~400 on purpose: recovery, appends, reads and commits of one file format are read together; finding the
// next record after damage is resync.ts.)
//
//   <dir>/seg-<16 digits>.log   record* (frame.ts: u32le length | u32le CRC-32 | payload)
//   <dir>/committed.pos         { segment, offset }: everything before it is done with
//                               (commit-file.ts: overwritten in place, no free space needed)
//   <dir>/LOCK                  the one process writing it (lib/dir-lock.ts)
//
// Durability: appendMany() returns after write(2), so a record survives the process being killed
// as soon as it returns; it survives power loss once fsync'd: every `fsyncIntervalMs`, after every
// append (0), or when the owner asks (flush(), sync()); always at rotation and close.
//
// Recovery: a record whose length is impossible or whose payload does not match its CRC makes
// read() look for the next intact record in that segment (resync.ts: the CRC covers the payload,
// not the length, so a damaged length gives no next offset). One found: the bytes before it are a
// damaged region, skipped and counted (corruptRecords, one per region; corruptBytes), and reading
// goes on there. None: a torn tail (tornTails) — each run appends to a new segment, so a record
// torn by a crash (a short write, zeros after a power loss) is the last thing in an older one —
// and the rest of that segment is skipped. Damage never stalls a replay and is counted once, even
// when the owner rewinds and reads it again. Segments are deleted once everything in them is committed.
import { closeSync, fsync, fsyncSync, ftruncateSync, mkdirSync, statSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { lockDir, unlockDir } from '../dir-lock.js';
import type { Logger } from '../log.js';
import { CommitFile, type WalPosition } from './commit-file.js';
import { frameRecords, HEADER, impossibleLength, payloadOf } from './frame.js';
import { LARGE_CRC_BUDGET, nextIntactRecord, SMALL_RECORD } from './resync.js';
import { Segments } from './segments.js';
import type { AppendOptions, HeldRecord, WalBatch, WalOptions } from './types.js';

export type { WalPosition };
export type { AppendOptions, HeldRecord, WalBatch, WalOptions } from './types.js';
export { recordBytes } from './frame.js';

const READ_CHUNK = 4 * 1024 * 1024;

function noSpaceError(err: unknown): boolean {
  const code = (err as NodeJS.ErrnoException).code;
  return code === 'ENOSPC' || code === 'EDQUOT';
}

function atOrAfter(position: WalPosition, mark: WalPosition): boolean {
  return position.segment > mark.segment || (position.segment === mark.segment && position.offset >= mark.offset);
}

/** The damaged regions one read skipped: how many, their bytes, where the first starts. */
interface Damage {
  regions: number;
  bytes: number;
  at?: { segment: string; offset: number };
}

export class WriteAheadLog {
  readonly counters = { appended: 0, appendedBytes: 0, tornTails: 0, corruptRecords: 0, corruptBytes: 0, fsyncs: 0, segmentsDeleted: 0 };
  private readonly segments: Segments;
  private readonly commitFile: CommitFile;
  private readonly log: Logger;
  private writeSegment = 0;
  private writeFd = -1;
  private firstSegmentOfRun = 0;
  private read: WalPosition = { segment: 0, offset: 0 };
  /** The furthest position read so far: damage before it was counted already. */
  private scanned: WalPosition = { segment: 0, offset: 0 };
  private committed: WalPosition = { segment: 0, offset: 0 };
  /** The last append failed for want of disk space (ENOSPC/EDQUOT); cleared by one that succeeds. */
  private noSpace = false;
  private pending = 0;
  private dirty = false;
  /** The fsync started last, while it runs. */
  private syncing: Promise<void> | undefined;
  private fsyncTimer: NodeJS.Timeout | undefined;
  private opened = false;

  constructor(private readonly options: WalOptions) {
    this.segments = new Segments(options.dir);
    this.commitFile = new CommitFile(join(options.dir, 'committed.pos'));
    this.log = options.log;
  }

  /** Takes the lock, recovers the log left by an earlier run and starts a new segment for this one. */
  open(): void {
    const { dir, lock } = this.options;
    mkdirSync(dir, { recursive: true });
    lockDir(dir, lock.what, lock.hint, lock.options);
    try {
      this.segments.scan();
      const ids = this.segments.ids();
      this.committed = this.commitFile.open() ?? this.options.fallbackCommitted?.() ?? { segment: ids[0] ?? 1, offset: 0 };
      this.commitFile.write(this.committed);
      for (const id of ids) if (id < this.committed.segment) this.deleteSegment(id);
      this.read = { ...this.committed };
      this.scanned = { ...this.committed };
      this.firstSegmentOfRun = Math.max(this.committed.segment, ...ids) + 1;
      this.startSegment(this.firstSegmentOfRun);
    } catch (err) {
      this.commitFile.close();
      this.segments.closeReader();
      unlockDir(dir);
      throw err;
    }
    this.pending = this.computePending();
    const interval = this.options.fsyncIntervalMs;
    if (interval !== undefined && interval > 0) {
      this.fsyncTimer = setInterval(() => {
        this.sync().catch(() => undefined); // a rotation or close fsyncs synchronously anyway
      }, interval);
      this.fsyncTimer.unref();
    }
    this.opened = true;
  }

  isOpen(): boolean {
    return this.opened;
  }

  /**
   * Appends records in order with one write(2) per segment touched (group commit), and returns
   * how many fit: fewer than given once `maxBytes` would be exceeded. On an I/O error nothing
   * partial stays on disk and the error carries `appended` (how many records before it were written).
   */
  appendMany(payloads: readonly string[], options: AppendOptions = {}): number {
    if (!this.opened) throw new Error(`${this.options.lock.what} is closed`);
    const limit = options.ignoreLimit ? Infinity : this.options.maxBytes;
    let done = 0;
    while (done < payloads.length) {
      const segmentSize = this.segments.sizes.get(this.writeSegment)!;
      const lengths: number[] = [];
      let total = 0;
      let full = false;
      while (done + lengths.length < payloads.length) {
        const length = Buffer.byteLength(payloads[done + lengths.length]!);
        const size = HEADER + length;
        if (this.pending + total + size > limit) {
          full = true;
          break;
        }
        if (segmentSize + total > 0 && segmentSize + total + size > this.options.segmentBytes) break;
        lengths.push(length);
        total += size;
      }
      if (lengths.length > 0) {
        const buf = frameRecords(done === 0 && lengths.length === payloads.length ? payloads : payloads.slice(done, done + lengths.length), lengths, total);
        try {
          let written = 0;
          while (written < total) written += writeSync(this.writeFd, buf, written, total - written, segmentSize + written);
        } catch (err) {
          // Leave no partial record behind (e.g. ENOSPC): cut the segment back to its last whole record.
          ftruncateSync(this.writeFd, segmentSize);
          this.noSpace = noSpaceError(err);
          throw Object.assign(err as Error, { appended: done });
        }
        this.noSpace = false;
        if (options.placed) {
          let offset = segmentSize;
          for (let index = 0; index < lengths.length; index++) {
            const size = HEADER + lengths[index]!;
            options.placed(done + index, this.writeSegment, offset, size);
            offset += size;
          }
        }
        this.segments.sizes.set(this.writeSegment, segmentSize + total);
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
          this.noSpace = noSpaceError(err);
          throw Object.assign(err as Error, { appended: done });
        }
      }
    }
    if (done > 0) {
      if (this.options.fsyncIntervalMs === 0) {
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
    return this.read.segment < this.writeSegment || this.read.offset < this.segments.sizes.get(this.writeSegment)!;
  }

  /** The next read() starts at the committed position again (an owner that retries by reading again). */
  rewind(): void {
    this.read = { ...this.committed };
  }

  /**
   * Reads up to `maxRecords` records / about `maxBytes` payload bytes after the previous read
   * (not after the committed position: see rewind()), skipping damaged ones. `held` gives the
   * records its owner still has in memory at a position, which are then not read from disk.
   */
  readBatch(maxRecords: number, maxBytes: number, held?: (segment: number, offset: number) => HeldRecord | undefined): WalBatch {
    const records: string[] = [];
    let bytes = 0;
    let fromEarlierRun = 0;
    let readBefore = 0;
    const damage: Damage = { regions: 0, bytes: 0 };
    /** Takes the record at `at` in `buf`; false when it does not match its CRC. */
    const take = (buf: Buffer, at: number, length: number, segment: number): boolean => {
      const payload = payloadOf(buf, at, length);
      if (payload === undefined) return false;
      records.push(payload);
      bytes += length;
      fromEarlierRun += segment < this.firstSegmentOfRun ? 1 : 0;
      readBefore += atOrAfter(this.read, this.scanned) ? 0 : 1;
      return true;
    };
    while (records.length < maxRecords && bytes < maxBytes) {
      const { segment } = this.read;
      const size = this.segments.sizes.get(segment);
      if (size === undefined || this.read.offset >= size) {
        if (segment >= this.writeSegment) break;
        this.read = { segment: this.segments.next(segment, this.writeSegment), offset: 0 };
        continue;
      }
      const record = held?.(segment, this.read.offset);
      if (record) {
        records.push(record.payload);
        bytes += record.size - HEADER;
        readBefore += atOrAfter(this.read, this.scanned) ? 0 : 1;
        this.read.offset += record.size;
        continue;
      }
      if (size - this.read.offset < HEADER) {
        // A few bytes that cannot even hold a header, at the end of a finished segment: torn.
        this.tornTail(segment, size);
        continue;
      }
      const chunkStart = this.read.offset;
      // About what the batch still needs (records are ~100–300 bytes), so a batch does not read far ahead.
      const want = Math.max(64 * 1024, (maxRecords - records.length) * 256);
      const chunk = this.segments.read(segment, chunkStart, Math.min(size - chunkStart, READ_CHUNK, want));
      let at = 0;
      while (records.length < maxRecords && bytes < maxBytes) {
        if (chunk.length - at < HEADER) break;
        const length = chunk.readUInt32LE(at);
        const end = at + HEADER + length;
        if (impossibleLength(length, size - chunkStart - at - HEADER)) {
          // A header that cannot be right: damaged, or the torn tail of a crashed run.
          this.skipDamage(segment, size, damage);
          break;
        }
        if (end > chunk.length) {
          // One record bigger than a chunk: read exactly that record next.
          if (at === 0 && take(this.segments.read(segment, this.read.offset, HEADER + length), 0, length, segment)) this.read.offset += HEADER + length;
          else if (at === 0) this.skipDamage(segment, size, damage);
          break;
        }
        if (!take(chunk, at, length, segment)) {
          // Its payload or its length is not what was written (the CRC covers the payload only).
          this.skipDamage(segment, size, damage);
          break;
        }
        at = end;
        this.read.offset += HEADER + length;
      }
    }
    if (damage.regions > 0) {
      this.counters.corruptRecords += damage.regions;
      this.counters.corruptBytes += damage.bytes;
      // One line per read (a bounded batch), not one per damaged region.
      this.log.error({ dir: this.options.dir, ...damage.at, regions: damage.regions, bytes: damage.bytes, totalCorrupt: this.counters.corruptRecords }, 'skipped damaged bytes in a log segment (a record whose length or payload does not match its CRC: a bad disk block, a flipped bit); the records in them are lost, reading resumed at the next intact record and everything after it is kept');
    }
    if (atOrAfter(this.read, this.scanned)) this.scanned = { ...this.read };
    return { records, bytes, end: { ...this.read }, fromEarlierRun, readBefore };
  }

  /**
   * Everything before `position` is done with: record that (in place: no free space needed), and
   * delete segments no longer needed. If recording fails, the segments still go (a restart then
   * reads from the last recorded position again) and the error is thrown afterwards.
   */
  commit(position: WalPosition): void {
    if (!this.opened) return;
    this.committed = { ...position };
    let failure: unknown;
    try {
      this.commitFile.write(this.committed);
    } catch (err) {
      failure = err;
    }
    const sizes = this.segments.sizes;
    for (const id of this.segments.ids()) {
      const finished = id < position.segment || (id === position.segment && position.offset >= sizes.get(id)!);
      if (finished && id !== this.writeSegment) this.deleteSegment(id);
    }
    // Disk full and the segment being appended to is all committed: start an empty one, so that
    // one can go too and free its space.
    const size = sizes.get(this.writeSegment)!;
    if (this.noSpace && size > 0 && position.segment === this.writeSegment && position.offset >= size) {
      const done = this.writeSegment;
      try {
        this.rotate();
        this.deleteSegment(done);
      } catch (err) {
        // Not a commit failure: the position is recorded. The segment is freed at a later
        // commit, once a new segment can be created.
        this.log.warn({ err: (err as Error).message, dir: this.options.dir }, 'the disk is full and no new log segment can be created to free the committed one; retrying at the next commit');
      }
    }
    this.pending = this.computePending();
    if (failure) throw failure;
  }

  /**
   * What earlier runs left uncommitted: how many records (counted by walking their headers, so the
   * backlog is read once; CRCs are not checked, and a length that cannot be right ends the count
   * in its segment), and where each of their segments starts, with the time the segment file was
   * created (its mtime where the filesystem records no birth time).
   */
  earlierBacklog(): { records: number; segments: { segment: number; offset: number; createdAtMs: number }[] } {
    let records = 0;
    const segments: { segment: number; offset: number; createdAtMs: number }[] = [];
    for (const id of this.segments.ids()) {
      if (id >= this.firstSegmentOfRun || id < this.committed.segment) continue;
      const size = this.segments.sizes.get(id)!;
      let offset = id === this.committed.segment ? this.committed.offset : 0;
      if (offset >= size) continue;
      const stats = statSync(this.segments.path(id));
      segments.push({ segment: id, offset, createdAtMs: stats.birthtimeMs > 0 ? stats.birthtimeMs : stats.mtimeMs });
      while (size - offset >= HEADER) {
        const chunk = this.segments.read(id, offset, Math.min(READ_CHUNK, size - offset));
        let at = 0;
        while (chunk.length - at >= HEADER) {
          const length = chunk.readUInt32LE(at);
          if (impossibleLength(length, size - offset - at - HEADER)) {
            at = -1;
            break;
          }
          if (at + HEADER + length > chunk.length) break; // continues in the next chunk
          records++;
          at += HEADER + length;
        }
        if (at <= 0) {
          // Damaged (or one record larger than a chunk, stepped over by its header alone).
          if (at === 0 && chunk.length >= HEADER) {
            const length = chunk.readUInt32LE(0);
            if (!impossibleLength(length, size - offset - HEADER)) {
              records++;
              offset += HEADER + length;
              continue;
            }
          }
          break;
        }
        offset += at;
      }
    }
    return { records, segments };
  }

  /** Bytes appended but not yet committed (headers included). */
  pendingBytes(): number {
    return this.pending;
  }

  /** Bytes in all segment files on disk. */
  diskBytes(): number {
    let total = 0;
    for (const size of this.segments.sizes.values()) total += size;
    return total;
  }

  segmentCount(): number {
    return this.segments.sizes.size;
  }

  /** fsyncs the current segment now (blocking), unless nothing was appended since the last fsync. */
  flush(): void {
    // An fsync still running in the thread pool counts as not done: close() must not rely on it.
    if (this.writeFd >= 0 && (this.dirty || this.syncing)) {
      this.dirty = false;
      fsyncSync(this.writeFd);
      this.counters.fsyncs++;
    }
  }

  /** fsyncs what was appended so far in the thread pool; resolves once it is on disk. */
  sync(): Promise<void> {
    if (this.writeFd < 0 || !this.dirty) return this.syncing ?? Promise.resolve();
    this.dirty = false;
    this.counters.fsyncs++;
    const fd = this.writeFd;
    const done = new Promise<void>((resolve, reject) => {
      fsync(fd, (err) => {
        if (this.syncing === done) this.syncing = undefined;
        // A rotation or close since fsync'd that segment itself (before closing the fd), so a
        // late EBADF loses nothing.
        if (err && fd === this.writeFd) reject(err);
        else resolve();
      });
    });
    this.syncing = done;
    return done;
  }

  close(): void {
    if (!this.opened) return;
    this.opened = false;
    clearInterval(this.fsyncTimer);
    this.flush();
    closeSync(this.writeFd);
    this.writeFd = -1;
    this.segments.closeReader();
    this.commitFile.close();
    unlockDir(this.options.dir);
    // A segment of this run that holds nothing uncommitted is not needed by the next one.
    const size = this.segments.sizes.get(this.writeSegment)!;
    if (size === 0 || (this.committed.segment === this.writeSegment && this.committed.offset >= size)) this.deleteSegment(this.writeSegment);
  }

  /**
   * The record at the read position in `segment` (of `size` bytes) failed: move to the next intact
   * record in it (the bytes between are a damaged region, counted in `damage` once), or, when none
   * follows, past the end of the segment (a torn tail).
   */
  private skipDamage(segment: number, size: number, damage: Damage): void {
    const from = this.read.offset;
    const next = nextIntactRecord((offset, length) => this.segments.read(segment, offset, length), from, size);
    if (!next.found && !next.unsure) {
      this.tornTail(segment, size);
      return;
    }
    const to = next.found ? next.offset : size;
    if (atOrAfter(this.read, this.scanned)) {
      damage.regions++;
      damage.bytes += to - from;
      damage.at ??= { segment: this.segments.path(segment), offset: from };
      if (!next.found) this.log.error({ segment: this.segments.path(segment), offset: from, bytes: size - from, largeCrcBudget: LARGE_CRC_BUDGET, smallRecord: SMALL_RECORD }, 'found no intact record after damage in a log segment, but passed over candidates larger than smallRecord once largeCrcBudget was spent; the rest of that segment is skipped and counted as corrupt');
    }
    this.read.offset = to;
  }

  /** The rest of `segment` (of `size` bytes) from the read position holds no intact record: a torn tail, counted once, skipped. */
  private tornTail(segment: number, size: number): void {
    if (atOrAfter(this.read, this.scanned)) {
      this.counters.tornTails++;
      this.log.warn({ segment: this.segments.path(segment), offset: this.read.offset, bytes: size - this.read.offset }, 'skipped the torn end of a log segment: no intact record follows this offset (a crash during a write); everything before it is kept');
    }
    this.read.offset = size;
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

  /** Creates segment `id` and makes it the one appended to; if that fails, nothing changed. */
  private startSegment(id: number): void {
    this.writeFd = this.segments.create(id);
    this.writeSegment = id;
  }

  private deleteSegment(id: number): void {
    this.segments.delete(id);
    this.counters.segmentsDeleted++;
  }

  private computePending(): number {
    let total = 0;
    for (const [id, size] of this.segments.sizes) {
      if (id > this.committed.segment) total += size;
      else if (id === this.committed.segment) total += Math.max(0, size - this.committed.offset);
    }
    return total;
  }
}
