// Store-and-forward on disk: an append-only file of records plus the offset replayed so far.
// Appends are batched and fsync'd before their promise resolves; every file operation runs on
// one queue, so appends, replay reads and the final truncation never interleave. A record that
// does not parse (a torn write in the middle, a damaged disk block) is skipped and counted, so
// one bad line cannot stop the replay of everything behind it.
import { mkdirSync } from 'node:fs';
import { open, readFile, rename, stat, truncate, writeFile, type FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import { logger } from '../lib/log.js';

const log = logger('gateway');

export interface SpoolRecord {
  topic: string;
  payload: string;
  retain: boolean;
}

const FLUSH_DELAY_MS = 20;
const FLUSH_MAX_RECORDS = 500;

export class DiskSpool {
  /** Bytes written and fsync'd. */
  private size = 0;
  /** Bytes already replayed. */
  private offset = 0;
  private queued: { line: string; bytes: number; resolve: () => void; reject: (err: Error) => void }[] = [];
  private queuedBytes = 0;
  private flushTimer: NodeJS.Timeout | undefined;
  private chain: Promise<unknown> = Promise.resolve();
  dropped = 0;
  /** Records skipped by replay because they did not parse as a spool record. */
  corrupt = 0;

  private constructor(
    private readonly file: string,
    private readonly offsetFile: string,
    private readonly fh: FileHandle,
    private readonly maxBytes: number,
  ) {}

  /** Opens (or recovers) the spool in `dir`: records not yet replayed survive a restart. */
  static async open(dir: string, maxBytes: number): Promise<DiskSpool> {
    mkdirSync(dir, { recursive: true });
    const file = join(dir, 'spool.ndjson');
    const offsetFile = join(dir, 'spool.offset');
    const fh = await open(file, 'a+');
    const spool = new DiskSpool(file, offsetFile, fh, maxBytes);
    spool.size = (await stat(file)).size;
    try {
      spool.offset = Math.min(spool.size, Number((await readFile(offsetFile, 'utf8')).trim()) || 0);
    } catch {
      spool.offset = 0; // no offset file yet: nothing replayed
    }
    await spool.dropTornTail();
    return spool;
  }

  /** Bytes waiting to be replayed (written or queued). */
  backlogBytes(): number {
    return this.size - this.offset + this.queuedBytes;
  }

  isEmpty(): boolean {
    return this.backlogBytes() === 0;
  }

  /** Appends a record; resolves once it is on disk. Rejects (and counts) when the spool is full. */
  append(record: SpoolRecord): Promise<void> {
    const line = `${JSON.stringify(record)}\n`;
    const bytes = Buffer.byteLength(line);
    if (this.size + this.queuedBytes + bytes > this.maxBytes) {
      this.dropped++;
      return Promise.reject(new Error(`the spool is full (${this.maxBytes} bytes); raise gateway.spoolMaxBytes or bring the broker back`));
    }
    return new Promise((resolve, reject) => {
      this.queued.push({ line, bytes, resolve, reject });
      this.queuedBytes += bytes;
      if (this.queued.length >= FLUSH_MAX_RECORDS) this.flushSoon(0);
      else this.flushSoon(FLUSH_DELAY_MS);
    });
  }

  private flushSoon(delay: number): void {
    if (this.flushTimer && delay > 0) return;
    clearTimeout(this.flushTimer);
    this.flushTimer = setTimeout(() => {
      this.flushTimer = undefined;
      void this.flush();
    }, delay);
  }

  /** Writes and fsyncs everything queued. */
  flush(): Promise<void> {
    return this.run(async () => {
      const batch = this.queued;
      if (batch.length === 0) return;
      this.queued = [];
      const text = batch.map((b) => b.line).join('');
      const bytes = batch.reduce((n, b) => n + b.bytes, 0);
      try {
        await this.fh.appendFile(text);
        await this.fh.datasync();
        this.size += bytes;
        this.queuedBytes -= bytes;
        for (const b of batch) b.resolve();
      } catch (err) {
        this.queuedBytes -= bytes;
        for (const b of batch) b.reject(err as Error);
      }
    });
  }

  /** Reads up to `max` records from the replay offset (flushing queued ones first); `end` is where they stop. */
  async read(max: number): Promise<{ records: SpoolRecord[]; end: number }> {
    await this.flush();
    return this.run(async () => {
      const records: SpoolRecord[] = [];
      const chunk = Buffer.alloc(256 * 1024);
      let pos = this.offset;
      let consumed = 0;
      let pending = Buffer.alloc(0);
      let skipped = 0;
      while (records.length < max && pos < this.size) {
        const { bytesRead } = await this.fh.read(chunk, 0, Math.min(chunk.length, this.size - pos), pos);
        if (bytesRead === 0) break;
        pos += bytesRead;
        const data = Buffer.concat([pending, chunk.subarray(0, bytesRead)]);
        let start = 0;
        while (records.length < max) {
          const nl = data.indexOf(0x0a, start);
          if (nl < 0) break;
          const record = parseRecord(data.toString('utf8', start, nl));
          if (record) records.push(record);
          else skipped++;
          consumed += nl + 1 - start;
          start = nl + 1;
        }
        pending = Buffer.from(data.subarray(start));
      }
      if (skipped > 0) {
        this.corrupt += skipped;
        // One line per read (a batch of at most `max` records), not one per record.
        log.warn({ skipped, offset: this.offset, file: this.file, totalCorrupt: this.corrupt }, 'skipped corrupt records in the gateway spool; they are lost, everything else is replayed');
      }
      return { records, end: this.offset + consumed };
    });
  }

  /** Marks everything before `end` replayed; when all is replayed, truncates the files. */
  commit(end: number): Promise<void> {
    return this.run(async () => {
      this.offset = end;
      if (this.offset >= this.size && this.queued.length === 0) {
        await truncate(this.file, 0);
        this.size = 0;
        this.offset = 0;
      }
      const tmp = `${this.offsetFile}.tmp`;
      await writeFile(tmp, String(this.offset));
      await rename(tmp, this.offsetFile);
    });
  }

  async close(): Promise<void> {
    clearTimeout(this.flushTimer);
    await this.flush();
    await this.run(() => this.fh.close());
  }

  /** A crash mid-append can leave half a line at the end: drop it so replay never chokes. */
  private async dropTornTail(): Promise<void> {
    if (this.size === 0) return;
    const last = Buffer.alloc(1);
    await this.fh.read(last, 0, 1, this.size - 1);
    if (last[0] === 0x0a) return;
    const text = await readFile(this.file);
    const cut = text.lastIndexOf(0x0a) + 1;
    await truncate(this.file, cut);
    this.size = cut;
    this.offset = Math.min(this.offset, cut);
  }

  private run<T>(op: () => Promise<T>): Promise<T> {
    const next = this.chain.then(op, op);
    this.chain = next.catch(() => undefined);
    return next;
  }
}

/** One spool line as a record, or undefined if it is not one (counted as corrupt by the caller). */
function parseRecord(line: string): SpoolRecord | undefined {
  let value: unknown;
  try {
    value = JSON.parse(line);
  } catch {
    return undefined;
  }
  if (typeof value !== 'object' || value === null) return undefined;
  const { topic, payload, retain } = value as Record<string, unknown>;
  if (typeof topic !== 'string' || typeof payload !== 'string' || typeof retain !== 'boolean') return undefined;
  return { topic, payload, retain };
}
