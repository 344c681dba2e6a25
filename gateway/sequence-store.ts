// The gateway's per-device `seq`, kept on disk in the spool dir across restarts (docs/gateway.md#seq).
//
// Per device the gateway publishes one strictly increasing sequence. A frame without `seq` gets
// the next number; a frame with one keeps it shifted by a per-device offset (0 until needed) if
// that moves the sequence forward, else the offset is raised so that it does. So a stamped number
// never collides with a device-supplied one, and a device's own numbering shows through (its gaps
// and steps) as long as it moves forward.
//
// Nothing published may be numbered again after a restart, even after a crash: the file holds,
// per device, an end that every number published so far is below. Numbers are reserved in blocks:
// before the gateway publishes a number at or past the end, it writes a new end BLOCK further
// (written to a temp file, fsync'd, renamed over the old one, the directory fsync'd), so the disk
// is written once per BLOCK messages. A clean stop writes the exact next number, so a restart goes
// on without a jump; after a crash the sequence goes on from the block's end (a gap, never a step back).
//
//   sequences.json  {"version":1,"next":{"A/press-1":2000,…}}
import { closeSync, fsyncSync, openSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { z } from 'zod';

/** Numbers reserved per write of the file. */
export const SEQUENCE_BLOCK = 1000;
const FILE = 'sequences.json';

const fileSchema = z.strictObject({
  version: z.literal(1),
  next: z.record(z.string(), z.number().int().nonnegative()),
});

export class SequenceStore {
  private readonly devices = new Map<string, DeviceSequence>();
  /** Per device: every number published is below it (what the file holds, or is about to). */
  private readonly reserved: Record<string, number>;
  private readonly path: string;

  private constructor(dir: string, reserved: Record<string, number>) {
    this.path = join(dir, FILE);
    this.reserved = reserved;
  }

  /** Reads the store in `dir` (the gateway's spool dir, which its LOCK keeps to one gateway). A file it cannot read stops the start. */
  static open(dir: string): SequenceStore {
    const path = join(dir, FILE);
    let raw: string;
    try {
      raw = readFileSync(path, 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return new SequenceStore(dir, {});
      throw err;
    }
    let parsed: ReturnType<typeof fileSchema.safeParse>;
    try {
      parsed = fileSchema.safeParse(JSON.parse(raw));
    } catch (err) {
      throw new Error(`gateway: ${path} is not valid JSON (${(err as Error).message}); the gateway will not number messages again that it may have published. Restore the file, or delete it to start every device's seq again from 0 (consumers then see a counter reset)`, { cause: err });
    }
    if (!parsed.success) {
      const issue = parsed.error.issues[0]!;
      throw new Error(`gateway: ${path}: ${issue.path.join('.') || '(root)'}: ${issue.message}; restore the file, or delete it to start every device's seq again from 0 (consumers then see a counter reset)`);
    }
    return new SequenceStore(dir, { ...parsed.data.next });
  }

  /** The sequence of `LINE/DEVICE`. */
  device(id: string): DeviceSequence {
    let sequence = this.devices.get(id);
    if (!sequence) {
      sequence = new DeviceSequence(this.reserved[id] ?? 0, (end) => this.reserve(id, end));
      this.devices.set(id, sequence);
    }
    return sequence;
  }

  /** Writes each device's exact next number (a clean stop: the next start goes on without a gap). */
  close(): void {
    for (const [id, sequence] of this.devices) this.reserved[id] = sequence.next;
    this.write();
  }

  private reserve(id: string, end: number): void {
    this.reserved[id] = end;
    this.write();
  }

  /** Temp file, fsync, rename, fsync of the directory: the old file or the new one, never a torn one. */
  private write(): void {
    const temp = `${this.path}.${process.pid}.tmp`;
    writeFileSync(temp, JSON.stringify({ version: 1, next: this.reserved }));
    const file = openSync(temp, 'r');
    try {
      fsyncSync(file);
    } finally {
      closeSync(file);
    }
    renameSync(temp, this.path);
    const dir = openSync(join(this.path, '..'), 'r');
    try {
      fsyncSync(dir);
    } finally {
      closeSync(dir);
    }
  }
}

/** One device's published sequence (see the top of this file). */
export class DeviceSequence {
  /** The number the next frame without `seq` gets. */
  next: number;
  private offset = 0;
  private end: number;

  constructor(
    start: number,
    private readonly reserve: (end: number) => void,
  ) {
    this.next = start;
    this.end = start;
  }

  /** The seq to publish for a frame that carried `supplied` (or none); throws if a new block cannot be written to disk. */
  take(supplied: number | undefined): number {
    let seq = this.next;
    if (supplied !== undefined) {
      if (supplied + this.offset < this.next) this.offset = this.next - supplied;
      seq = supplied + this.offset;
    }
    if (seq >= this.end) {
      // Throws if the file cannot be written: the frame is then not numbered (nor published).
      this.reserve(seq + SEQUENCE_BLOCK);
      this.end = seq + SEQUENCE_BLOCK;
    }
    this.next = seq + 1;
    return seq;
  }
}
