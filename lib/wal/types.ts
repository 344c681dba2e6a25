// The options and results of the write-ahead log (wal.ts).
import type { LockOptions } from '../dir-lock.js';
import type { Logger } from '../log.js';
import type { WalPosition } from './commit-file.js';

export interface WalOptions {
  dir: string;
  /** appendMany() takes no more once this many bytes (headers included) are appended and not committed. */
  maxBytes: number;
  /** A segment is closed and a new one started beyond this size. */
  segmentBytes: number;
  /** Group fsync every this many ms; 0 = after every append; absent = only at flush(), sync(), rotation and close. */
  fsyncIntervalMs?: number;
  /** The one-writer lock: what the directory is (for the refusal), what to do instead, the lease. */
  lock: { what: string; hint: string; options?: LockOptions };
  /** The owner's logger (recovery warnings name the directory). */
  log: Logger;
  /** The committed position when committed.pos holds none (a file of an earlier version); else the oldest segment. */
  fallbackCommitted?: () => WalPosition | undefined;
}

export interface WalBatch {
  /** Payloads, in append order. */
  records: string[];
  /** Their payload bytes (headers not included). */
  bytes: number;
  /** Position after the last record: pass it to commit() once the batch is done with. */
  end: WalPosition;
  /** How many of the records were appended by an earlier run (recovered after a restart). */
  fromEarlierRun: number;
  /** How many of the records (the first ones) an earlier read returned already: read again after a rewind. */
  readBefore: number;
}

/** A record its owner still holds in memory, so read() need not read it back: payload and size on disk. */
export interface HeldRecord {
  payload: string;
  size: number;
}

export interface AppendOptions {
  /** Called for each record written: its index in the payloads, where it starts and its size on disk. */
  placed?: (index: number, segment: number, offset: number, size: number) => void;
  /** Take the records even beyond maxBytes (records accepted earlier, moved from an older format). */
  ignoreLimit?: boolean;
}
