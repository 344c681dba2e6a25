// Store-and-forward on disk: the write-ahead log of lib/wal (CRC-framed records in segments, a
// committed position, torn-tail recovery) holding one JSON record per event that could not be
// published. What is the gateway's here: appends are batched (20 ms or 500 records) and fsync'd
// before their promise resolves; replay reads again from the committed position each time (a
// batch whose publish failed is read again); a record that is damaged on disk (its length or
// payload does not match its CRC: the log finds the next intact one) or is not a spool record is
// skipped and counted, so one bad record cannot stop the replay of everything behind it; a torn
// segment end (a crash mid-append) is counted apart; the refusal when full names gateway.spoolMaxBytes.
//
// A spool of an earlier version (spool.ndjson + spool.offset, one JSON line per record) found at
// open is moved into the log once, in order, and its files removed (see moveOldSpool).
import { closeSync, openSync, readFileSync, readSync, statSync, unlinkSync } from 'node:fs';
import { join } from 'node:path';
import { logger } from '../lib/log.js';
import { recordBytes, WriteAheadLog, type WalPosition } from '../lib/wal/wal.js';

const log = logger('gateway');

export interface SpoolRecord {
  topic: string;
  payload: string;
  retain: boolean;
}

const FLUSH_DELAY_MS = 20;
const FLUSH_MAX_RECORDS = 500;
/** Segment size: a segment is deleted once all of it is replayed, so this bounds what a replayed backlog keeps on disk. */
const SEGMENT_BYTES = 16 * 1024 * 1024;
/** The files of the spool format before lib/wal. */
const OLD_FILE = 'spool.ndjson';
const OLD_OFFSET_FILE = 'spool.offset';
const OLD_READ_CHUNK = 1024 * 1024;

interface Queued {
  payload: string;
  bytes: number;
  resolve: () => void;
  reject: (err: Error) => void;
}

export class DiskSpool {
  private queued: Queued[] = [];
  private queuedBytes = 0;
  private flushTimer: NodeJS.Timeout | undefined;
  /** Records intact on disk that are not spool records (a foreign writer), and bad lines of an old-format spool. */
  private invalid = 0;

  private constructor(
    private readonly wal: WriteAheadLog,
    private readonly dir: string,
    private readonly maxBytes: number,
  ) {}

  /** Opens (or recovers) the spool in `dir`: records not yet replayed survive a restart. */
  static async open(dir: string, maxBytes: number): Promise<DiskSpool> {
    const wal = new WriteAheadLog({
      dir,
      maxBytes,
      segmentBytes: SEGMENT_BYTES,
      lock: { what: 'the gateway spool', hint: 'stop that gateway or give this one another gateway.spoolDir' },
      log,
    });
    wal.open();
    const spool = new DiskSpool(wal, dir, maxBytes);
    try {
      spool.moveOldSpool();
    } catch (err) {
      wal.close();
      throw err;
    }
    return spool;
  }

  /** Records skipped by replay: damaged regions on disk (a length or payload not matching its CRC) or not a spool record. */
  get corrupt(): number {
    return this.wal.counters.corruptRecords + this.invalid;
  }

  /** Torn ends of segments skipped by replay: from there no intact record followed (a crash mid-append). */
  get torn(): number {
    return this.wal.counters.tornTails;
  }

  /** Bytes waiting to be replayed (written or queued). */
  backlogBytes(): number {
    return this.wal.pendingBytes() + this.queuedBytes;
  }

  isEmpty(): boolean {
    return this.backlogBytes() === 0;
  }

  /** Appends a record; resolves once it is on disk. Rejects when the spool is full (the outbox counts it). */
  append(record: SpoolRecord): Promise<void> {
    const payload = JSON.stringify(record);
    const bytes = recordBytes(payload);
    if (this.backlogBytes() + bytes > this.maxBytes) {
      return Promise.reject(this.fullError());
    }
    return new Promise((resolve, reject) => {
      this.queued.push({ payload, bytes, resolve, reject });
      this.queuedBytes += bytes;
      if (this.queued.length >= FLUSH_MAX_RECORDS) this.flushSoon(0);
      else this.flushSoon(FLUSH_DELAY_MS);
    });
  }

  /** Writes and fsyncs everything queued (each record's promise says how that went); never rejects. */
  flush(): Promise<void> {
    const batch = this.queued;
    this.queued = [];
    for (const queued of batch) this.queuedBytes -= queued.bytes;
    if (batch.length === 0) return this.wal.isOpen() ? this.wal.sync().catch(() => undefined) : Promise.resolve();
    let written: number;
    let failure: Error | undefined;
    try {
      written = this.wal.appendMany(batch.map((queued) => queued.payload));
      if (written < batch.length) failure = this.fullError();
    } catch (err) {
      written = (err as { appended?: number }).appended ?? 0;
      failure = err as Error;
    }
    for (const queued of batch.slice(written)) queued.reject(failure!);
    const stored = batch.slice(0, written);
    if (stored.length === 0) return Promise.resolve();
    return this.wal.sync().then(
      () => stored.forEach((queued) => queued.resolve()),
      (err: unknown) => stored.forEach((queued) => queued.reject(err as Error)),
    );
  }

  /** Reads up to `max` records from the replay position (flushing queued ones first); `end` is where they stop. */
  async read(max: number): Promise<{ records: SpoolRecord[]; end: WalPosition }> {
    await this.flush();
    this.wal.rewind();
    const batch = this.wal.readBatch(max, Infinity);
    const records: SpoolRecord[] = [];
    let invalid = 0;
    batch.records.forEach((payload, index) => {
      const record = parseRecord(payload);
      if (record) records.push(record);
      else if (index >= batch.readBefore) invalid++; // counted once, not at every read again
    });
    if (invalid > 0) {
      this.invalid += invalid;
      // One line per read (a batch of at most `max` records), not one per record.
      log.warn({ skipped: invalid, dir: this.dir, totalCorrupt: this.corrupt }, 'skipped records in the gateway spool that are not spool records; they are lost, everything else is replayed');
    }
    return { records, end: batch.end };
  }

  /** Marks everything before `end` replayed; segments all replayed are deleted. */
  async commit(end: WalPosition): Promise<void> {
    this.wal.commit(end);
  }

  async close(): Promise<void> {
    clearTimeout(this.flushTimer);
    await this.flush();
    this.wal.close();
  }

  private fullError(): Error {
    return new Error(`the spool is full (${this.maxBytes} bytes); raise gateway.spoolMaxBytes or bring the broker back`);
  }

  private flushSoon(delay: number): void {
    if (this.flushTimer && delay > 0) return;
    clearTimeout(this.flushTimer);
    this.flushTimer = setTimeout(() => {
      this.flushTimer = undefined;
      void this.flush();
    }, delay);
  }

  /**
   * An earlier version's spool in this directory: the records it had not replayed go into the
   * log (ahead of anything new, in order, fsync'd), then its files are removed. Lines that are
   * not records are counted as corrupt; a torn last line (a crash mid-append) is dropped, as that
   * version did. A crash while moving leaves the old files, so the next start moves them again:
   * those events are replayed twice (same seq), none is lost.
   */
  private moveOldSpool(): void {
    const file = join(this.dir, OLD_FILE);
    const offsetFile = join(this.dir, OLD_OFFSET_FILE);
    let size: number;
    try {
      size = statSync(file).size;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return;
      throw err;
    }
    let offset: number;
    try {
      offset = Math.min(size, Number(readFileSync(offsetFile, 'utf8').trim()) || 0);
    } catch {
      offset = 0; // no offset file: nothing was replayed
    }
    let moved = 0;
    let invalid = 0;
    let rest = Buffer.alloc(0);
    const fd = openSync(file, 'r');
    try {
      const chunk = Buffer.allocUnsafe(OLD_READ_CHUNK);
      for (let position = offset; position < size; ) {
        const n = readSync(fd, chunk, 0, Math.min(chunk.length, size - position), position);
        if (n === 0) break;
        position += n;
        const data = Buffer.concat([rest, chunk.subarray(0, n)]);
        const payloads: string[] = [];
        let start = 0;
        for (let newline = data.indexOf(0x0a); newline >= 0; newline = data.indexOf(0x0a, start)) {
          const record = parseRecord(data.toString('utf8', start, newline));
          if (record) payloads.push(JSON.stringify(record));
          else invalid++;
          start = newline + 1;
        }
        rest = Buffer.from(data.subarray(start));
        // Already accepted by the earlier version: moved even beyond spoolMaxBytes, never dropped.
        if (payloads.length > 0) moved += this.wal.appendMany(payloads, { ignoreLimit: true });
      }
      this.wal.flush();
    } catch (err) {
      throw new Error(`could not move the gateway spool ${file} of an earlier version into ${this.dir} (${(err as Error).message}); it is kept as it was: free disk space there (about ${size - offset} bytes) and start again`, { cause: err });
    } finally {
      closeSync(fd);
    }
    this.invalid += invalid;
    log.warn({ file, moved, corrupt: invalid, tornBytes: rest.length }, 'moved the spool of an earlier gateway version into the current format; its events are replayed once the broker is reachable');
    for (const old of [file, offsetFile, `${offsetFile}.tmp`]) {
      try {
        unlinkSync(old);
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
      }
    }
  }
}

/** One spool record from its JSON, or undefined if it is not one (counted as corrupt by the caller). */
function parseRecord(text: string): SpoolRecord | undefined {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    return undefined;
  }
  if (typeof value !== 'object' || value === null) return undefined;
  const { topic, payload, retain } = value as Record<string, unknown>;
  if (typeof topic !== 'string' || typeof payload !== 'string' || typeof retain !== 'boolean') return undefined;
  return { topic, payload, retain };
}
