// The segment files of a write-ahead log directory: seg-<16 digits>.log, their sizes, creating
// one durably (its directory entry fsync'd too), reading a range, deleting one.
import { closeSync, fsyncSync, openSync, readdirSync, readSync, statSync, unlinkSync } from 'node:fs';
import { join } from 'node:path';

const SEGMENT_RE = /^seg-(\d{16})\.log$/;

export class Segments {
  /** Existing segment ids and their sizes on disk. */
  readonly sizes = new Map<number, number>();
  private readFd = -1;
  private readFdSegment = -1;

  constructor(readonly dir: string) {}

  /** Finds the segments already in the directory. */
  scan(): void {
    for (const name of readdirSync(this.dir)) {
      const match = SEGMENT_RE.exec(name);
      if (match) this.sizes.set(Number(match[1]), statSync(join(this.dir, name)).size);
    }
  }

  /** Segment ids, ascending. */
  ids(): number[] {
    return [...this.sizes.keys()].sort((a, b) => a - b);
  }

  /** The first segment after `after`, or `last` if there is none. */
  next(after: number, last: number): number {
    for (const id of this.ids()) if (id > after) return id;
    return last;
  }

  path(id: number): string {
    return join(this.dir, `seg-${String(id).padStart(16, '0')}.log`);
  }

  /** Creates segment `id` (empty) and returns its fd for appending; if anything fails, nothing changed. */
  create(id: number): number {
    const path = this.path(id);
    const fd = openSync(path, 'wx');
    try {
      // Make the new file's directory entry durable too.
      const dirFd = openSync(this.dir, 'r');
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
    this.sizes.set(id, 0);
    return fd;
  }

  /** Up to `length` bytes of segment `id` from `offset` (fewer if the file is shorter). */
  read(id: number, offset: number, length: number): Buffer {
    if (this.readFdSegment !== id) {
      this.closeReader();
      this.readFd = openSync(this.path(id), 'r');
      this.readFdSegment = id;
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

  delete(id: number): void {
    if (this.readFdSegment === id) this.closeReader();
    try {
      unlinkSync(this.path(id));
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    }
    this.sizes.delete(id);
  }

  closeReader(): void {
    if (this.readFd >= 0) closeSync(this.readFd);
    this.readFd = -1;
    this.readFdSegment = -1;
  }
}
