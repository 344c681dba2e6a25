// The write-ahead log on real files in a temp dir: round trip, torn tails, a CRC mismatch in the
// middle skipped and counted with everything after it read, a bit flipped in a length field and a
// block of random bytes in the middle (the next intact record found again), segment roll, the committed
// position across a reopen, the size limit, damage counted once across a rewind, the lock.
import { appendFileSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { logger } from '../../lib/log.js';
import { recordBytes, WriteAheadLog, type WalOptions } from '../../lib/wal/wal.js';

const MiB = 1024 * 1024;

describe('WriteAheadLog', () => {
  let dir: string;
  const logs: WriteAheadLog[] = [];
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'lw-wal-'));
  });
  afterEach(() => {
    for (const wal of logs.splice(0)) wal.close();
    rmSync(dir, { recursive: true, force: true });
  });

  function openLog(options: Partial<WalOptions> = {}): WriteAheadLog {
    const wal = new WriteAheadLog({ dir, maxBytes: MiB, segmentBytes: MiB, lock: { what: 'the test log', hint: 'use another dir' }, log: logger('wal-test'), ...options });
    wal.open();
    logs.push(wal);
    return wal;
  }
  function closeLog(wal: WriteAheadLog): void {
    wal.close();
    logs.splice(logs.indexOf(wal), 1);
  }
  const segments = (): string[] => readdirSync(dir).filter((name) => name.startsWith('seg-')).sort();
  const readAll = (wal: WriteAheadLog): string[] => {
    const out: string[] = [];
    for (let batch = wal.readBatch(1000, MiB); batch.records.length > 0; batch = wal.readBatch(1000, MiB)) out.push(...batch.records);
    return out;
  };

  it('returns what was appended, in order, across a reopen, UTF-8 intact', () => {
    const records = ['a v=1', 'ü → ✓', 'x'.repeat(5000), '{"topic":"lw/A/p/state"}'];
    const first = openLog();
    expect(first.appendMany(records)).toBe(records.length);
    expect(first.pendingBytes()).toBe(records.reduce((sum, record) => sum + recordBytes(record), 0));
    const batch = first.readBatch(100, MiB);
    expect(batch.records).toEqual(records);
    expect(batch.fromEarlierRun).toBe(0);
    closeLog(first);
    const second = openLog();
    const replay = second.readBatch(100, MiB);
    expect(replay.records).toEqual(records);
    expect(replay.fromEarlierRun).toBe(records.length);
  });

  it('skips a torn last record (a crash mid-append), counts it and keeps everything before it', () => {
    const crashed = openLog();
    crashed.appendMany(['r0', 'r1', 'r2']);
    closeLog(crashed);
    const torn = Buffer.alloc(8 + 3);
    torn.writeUInt32LE(50, 0); // promises 50 bytes, 3 arrived
    torn.write('r3-', 8);
    appendFileSync(join(dir, segments()[0]!), torn);

    const recovered = openLog();
    recovered.appendMany(['after']);
    expect(readAll(recovered)).toEqual(['r0', 'r1', 'r2', 'after']);
    expect(recovered.counters.tornTails).toBe(1);
    expect(recovered.counters.corruptRecords).toBe(0);
  });

  it('skips a record whose payload does not match its CRC, counts it, and reads every record after it', () => {
    const first = openLog();
    const records = Array.from({ length: 10 }, (_, index) => `{"seq":${index},"ts":1767000000000}`);
    first.appendMany(records);
    closeLog(first);
    const file = join(dir, segments()[0]!);
    const bytes = readFileSync(file);
    const at = bytes.indexOf('"seq":4') + 6; // the digit: still valid JSON, only the CRC can tell
    bytes[at] = '7'.charCodeAt(0);
    writeFileSync(file, bytes);

    const recovered = openLog();
    expect(readAll(recovered)).toEqual(records.filter((_, index) => index !== 4));
    expect(recovered.counters.corruptRecords).toBe(1);
    expect(recovered.counters.tornTails).toBe(0);
  });

  // A flipped bit in a record's length field: one that makes the length impossible (bits 20, 31:
  // beyond the segment or MAX_RECORD) and ones that leave it plausible, so the CRC fails over the
  // wrong bytes (bits 0, 3, 7, 12). Either way the reader must find the next record again.
  it.each([0, 3, 7, 12, 20, 31])('finds the next record after a bit flipped in a length field (bit %i) in the middle of a segment: every record after it is read, the damage counted once as corrupt', (bit) => {
    const first = openLog();
    const records = Array.from({ length: 50 }, (_, index) => `{"seq":${index},"ts":${1767000000000 + index},"values":{"n":${index}}}`);
    first.appendMany(records);
    closeLog(first);
    const file = join(dir, segments()[0]!);
    const bytes = readFileSync(file);
    const header = records.slice(0, 10).reduce((sum, record) => sum + recordBytes(record), 0); // record 10's length field
    bytes[header + (bit >> 3)] = bytes[header + (bit >> 3)]! ^ (1 << (bit & 7));
    writeFileSync(file, bytes);

    const recovered = openLog();
    expect(readAll(recovered)).toEqual(records.filter((_, index) => index !== 10));
    expect(recovered.counters).toMatchObject({ corruptRecords: 1, tornTails: 0 });
    recovered.rewind(); // read again: the damage is not counted again
    expect(readAll(recovered)).toHaveLength(49);
    expect(recovered.counters).toMatchObject({ corruptRecords: 1, tornTails: 0 });
  });

  it('finds the next record after a block of random bytes in the middle of a big segment (a bad disk block): bounded work, every intact record read', () => {
    const first = openLog({ segmentBytes: 16 * MiB, maxBytes: 16 * MiB });
    const records = Array.from({ length: 100_000 }, (_, index) => `{"seq":${index},"ts":${1767000000000 + index},"values":{"n":${index}}}`);
    first.appendMany(records);
    closeLog(first);
    const file = join(dir, segments()[0]!);
    const bytes = readFileSync(file);
    const from = 256 * 1024;
    const to = from + 64 * 1024;
    let state = 12345; // a fixed linear congruential sequence: the same garbage every run
    for (let at = from; at < to; at++) {
      state = (state * 1103515245 + 12345) >>> 0;
      bytes[at] = state >>> 24;
    }
    writeFileSync(file, bytes);
    let offset = 0;
    const intact = records.filter((record) => {
      const start = offset;
      offset += recordBytes(record);
      return offset <= from || start >= to;
    });

    const recovered = openLog({ segmentBytes: 16 * MiB, maxBytes: 16 * MiB });
    expect(readAll(recovered)).toEqual(intact);
    expect(recovered.counters).toMatchObject({ corruptRecords: 1, tornTails: 0 });
  });

  it('after damage in the middle of a segment still calls a torn end a torn tail, and appends after the last good record', () => {
    const crashed = openLog();
    const records = Array.from({ length: 20 }, (_, index) => `r${index} ${'p'.repeat(40)}`);
    crashed.appendMany(records);
    closeLog(crashed);
    const file = join(dir, segments()[0]!);
    const bytes = readFileSync(file);
    const header = records.slice(0, 5).reduce((sum, record) => sum + recordBytes(record), 0);
    bytes[header + 3] = 0x80; // record 5's length: beyond MAX_RECORD
    const torn = Buffer.alloc(8 + 3);
    torn.writeUInt32LE(50, 0); // and a crash mid-append at the end: promises 50 bytes, 3 arrived
    torn.write('r20', 8);
    writeFileSync(file, Buffer.concat([bytes, torn]));

    const recovered = openLog();
    recovered.appendMany(['after']);
    expect(readAll(recovered)).toEqual([...records.filter((_, index) => index !== 5), 'after']);
    expect(recovered.counters).toMatchObject({ corruptRecords: 1, tornTails: 1 });
  });

  it('counts damage once when the owner rewinds and reads it again', () => {
    const first = openLog();
    first.appendMany(['r0', 'r1', 'r2']);
    closeLog(first);
    const file = join(dir, segments()[0]!);
    const bytes = readFileSync(file);
    const at = bytes.indexOf('r1') + 1;
    bytes[at] = bytes[at]! ^ 0x01;
    writeFileSync(file, bytes);
    appendFileSync(file, Buffer.from([9, 0])); // and a torn header after the last record

    const recovered = openLog();
    expect(recovered.readBatch(100, MiB)).toMatchObject({ records: ['r0', 'r2'], readBefore: 0 });
    recovered.appendMany(['r3']);
    recovered.rewind(); // a replay that failed reads the same batch again
    expect(recovered.readBatch(100, MiB)).toMatchObject({ records: ['r0', 'r2', 'r3'], readBefore: 2 });
    expect(recovered.counters).toMatchObject({ corruptRecords: 1, tornTails: 1 });
  });

  it('rolls to a new segment at segmentBytes and deletes a segment once all of it is committed', () => {
    const wal = openLog({ segmentBytes: 4096, maxBytes: 10 * MiB });
    const records = Array.from({ length: 40 }, (_, index) => `${index} ${'p'.repeat(500)}`);
    expect(wal.appendMany(records)).toBe(40);
    expect(segments().length).toBeGreaterThanOrEqual(5);
    expect(wal.segmentCount()).toBe(segments().length);
    const got: string[] = [];
    for (let batch = wal.readBatch(7, MiB); batch.records.length > 0; batch = wal.readBatch(7, MiB)) {
      got.push(...batch.records);
      wal.commit(batch.end);
    }
    expect(got).toEqual(records);
    expect(segments()).toHaveLength(1); // the one being appended to
    expect(wal.pendingBytes()).toBe(0);
    expect(wal.counters.segmentsDeleted).toBeGreaterThanOrEqual(4);
  });

  it('keeps the committed position across a reopen: only what was not committed is read again', () => {
    const first = openLog();
    first.appendMany(['c0', 'c1', 'c2', 'c3', 'c4']);
    first.commit(first.readBatch(3, MiB).end);
    expect(first.readBatch(100, MiB).records).toEqual(['c3', 'c4']); // read, never committed
    closeLog(first);

    const second = openLog();
    expect(second.pendingBytes()).toBe(recordBytes('c3') + recordBytes('c4'));
    second.appendMany(['new']);
    const batch = second.readBatch(100, MiB);
    expect(batch.records).toEqual(['c3', 'c4', 'new']);
    expect(batch.fromEarlierRun).toBe(2);
    second.commit(batch.end);
    closeLog(second);
    expect(segments()).toEqual([]);
    expect(readAll(openLog())).toEqual([]);
  });

  it('refuses what is beyond maxBytes (appendMany says how many fit) and takes records again once committed', () => {
    const record = 'z'.repeat(1000);
    const maxBytes = 5 * recordBytes(record);
    const wal = openLog({ maxBytes });
    expect(wal.appendMany(Array.from({ length: 8 }, () => record))).toBe(5);
    expect(wal.appendMany([record])).toBe(0);
    expect(wal.pendingBytes()).toBe(maxBytes);
    wal.commit(wal.readBatch(2, MiB).end);
    expect(wal.appendMany([record, record, record])).toBe(2);
    expect(wal.appendMany([record], { ignoreLimit: true })).toBe(1);
    expect(wal.pendingBytes()).toBe(maxBytes + recordBytes(record));
  });

  it('fsyncs in the thread pool on sync(), after every append with fsyncIntervalMs 0, and at close', async () => {
    const manual = openLog();
    manual.appendMany(['s0']);
    expect(manual.counters.fsyncs).toBe(0);
    await manual.sync();
    expect(manual.counters.fsyncs).toBe(1);
    await manual.sync(); // nothing new: no second fsync
    expect(manual.counters.fsyncs).toBe(1);
    closeLog(manual);

    rmSync(dir, { recursive: true, force: true });
    const eager = openLog({ fsyncIntervalMs: 0 });
    eager.appendMany(['e0']);
    eager.appendMany(['e1']);
    expect(eager.counters.fsyncs).toBe(2);
  });

  it('refuses a second writer on the same directory, naming what it is and what to do', () => {
    openLog();
    expect(() => openLog()).toThrow(/the test log .* is in use by process \d+.*; use another dir/);
  });

  it('refuses appends once closed, saying what is closed', () => {
    const wal = openLog();
    closeLog(wal);
    expect(() => wal.appendMany(['late'])).toThrow('the test log is closed');
  });
});
