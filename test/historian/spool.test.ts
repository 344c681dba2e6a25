// The write-ahead spool on a real file system: order, restart from the committed position,
// rotation and deletion, torn tails and corrupt records, the size bound.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { appendFileSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { Spool, SpoolFullError } from '../../historian/spool.js';
import { identityOf } from '../../lib/dir-lock.js';
import { waitFor } from '../../lib/wait.js';

const MiB = 1024 * 1024;
/** The built spool, for a second process that holds the lock (npm test builds before testing). */
const BUILT_SPOOL = resolve('dist/historian/spool.js');
/** A short lease for the lock tests: holders touch the LOCK every 100 ms, stale after 1 s. */
const LEASE = { refreshMs: 100, staleMs: 1000 };
/** Runs the holder as PID 1 of a new PID namespace, as a container does. */
const UNSHARE = ['unshare', '--pid', '--fork', '--kill-child'];

function canUnshare(): boolean {
  return spawnSync('unshare', ['--pid', '--fork', 'true']).status === 0;
}

/** Another process (optionally in its own PID namespace) that opens a spool on `dir` and holds it. */
function holdSpoolLock(dir: string, prefix: string[]): { child: ChildProcess; locked: Promise<void>; kill: () => Promise<void> } {
  const sources = ['historian/spool.ts', 'lib/dir-lock.ts', ...readdirSync(resolve('lib/wal')).map((name) => `lib/wal/${name}`)];
  if (!existsSync(BUILT_SPOOL) || sources.some((source) => statSync(BUILT_SPOOL).mtimeMs < statSync(resolve(source)).mtimeMs)) {
    throw new Error('dist/ is missing or older than the sources: run `npm run build` before these tests (npm test does)');
  }
  const script = `
    import { Spool } from ${JSON.stringify(pathToFileURL(BUILT_SPOOL).href)};
    new Spool({ dir: ${JSON.stringify(dir)}, maxBytes: ${MiB}, lock: ${JSON.stringify(LEASE)} }).open();
    process.stdout.write('locked\\n');
    setInterval(() => {}, 1000);`;
  const [command, ...args] = [...prefix, process.execPath, '--input-type=module', '-e', script];
  const child = spawn(command!, args, { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, LINEWATCH_LOG_LEVEL: 'silent' } });
  let out = '';
  let err = '';
  child.stdout!.on('data', (chunk: Buffer) => (out += chunk.toString()));
  child.stderr!.on('data', (chunk: Buffer) => (err += chunk.toString()));
  const exited = (): boolean => child.exitCode !== null || child.signalCode !== null;
  const locked = waitFor(() => out.includes('locked') || exited(), 20_000, 'the other process to take the spool lock').then(() => {
    if (!out.includes('locked')) throw new Error(`the other process could not take the lock: ${err.trim()}`);
  });
  const kill = async (): Promise<void> => {
    child.kill('SIGKILL');
    await waitFor(exited, 10_000, 'the lock holder to die');
  };
  return { child, locked, kill };
}

describe('Spool', () => {
  let dir: string;
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'lw-spool-'));
  });
  afterEach(() => {
    rmSync(dir, { recursive: true, force: true });
  });

  const texts = (records: string[]): string[] => records;
  const segments = (): string[] => readdirSync(dir).filter((f) => f.startsWith('seg-')).sort();

  it('returns records in order and in bounded batches', () => {
    const spool = new Spool({ dir, maxBytes: MiB });
    spool.open();
    for (let i = 0; i < 10; i++) spool.append(`m v=${i}`);
    expect(spool.hasUnread()).toBe(true);
    const a = spool.readBatch(4, MiB);
    const b = spool.readBatch(100, MiB);
    expect(texts(a.records)).toEqual(['m v=0', 'm v=1', 'm v=2', 'm v=3']);
    expect(texts(b.records)).toEqual(['m v=4', 'm v=5', 'm v=6', 'm v=7', 'm v=8', 'm v=9']);
    expect(spool.hasUnread()).toBe(false);
    expect(spool.readBatch(100, MiB).records).toHaveLength(0);
    spool.close();
  });

  it('after a restart replays exactly what was not committed, counting it as from an earlier run', () => {
    const first = new Spool({ dir, maxBytes: MiB });
    first.open();
    for (let i = 0; i < 6; i++) first.append(`m v=${i}`);
    const batch = first.readBatch(4, MiB);
    first.commit(batch.end);
    first.readBatch(100, MiB); // read but never committed (the write to InfluxDB did not finish)
    first.close();

    const second = new Spool({ dir, maxBytes: MiB });
    second.open();
    second.append('m v=new');
    const replay = second.readBatch(100, MiB);
    expect(texts(replay.records)).toEqual(['m v=4', 'm v=5', 'm v=new']);
    expect(replay.fromEarlierRun).toBe(2);
    second.commit(replay.end);
    expect(second.pendingBytes()).toBe(0);
    second.close();
    // Everything committed: the old segments are gone, the empty new one too.
    expect(segments()).toEqual([]);
  });

  it('counts the records not yet committed — read, unread, and an earlier run\'s counted at open — and knows the oldest one\'s age', () => {
    const first = new Spool({ dir, maxBytes: MiB, segmentBytes: 64 });
    first.open();
    expect(first.pendingRecords()).toBe(0);
    expect(first.oldestPendingAgeMs()).toBe(0);
    for (let i = 0; i < 7; i++) first.append(`m v=${i}`);
    expect(first.pendingRecords()).toBe(7);
    const batch = first.readBatch(3, MiB);
    expect(first.pendingRecords()).toBe(7); // read, not yet in InfluxDB
    first.commit(batch.end);
    expect(first.pendingRecords()).toBe(4);
    const appendedAt = Date.now();
    expect(first.oldestPendingAgeMs(appendedAt + 60_000)).toBeGreaterThanOrEqual(59_000);
    first.close();

    // Across segments (64 bytes each: a few records per segment) and a restart: counted from disk.
    const second = new Spool({ dir, maxBytes: MiB, segmentBytes: 64 });
    second.open();
    expect(second.pendingRecords()).toBe(4);
    expect(second.oldestPendingAgeMs()).toBeGreaterThanOrEqual(0);
    second.append('m v=new');
    expect(second.pendingRecords()).toBe(5);
    const replay = second.readBatch(2, MiB);
    second.commit(replay.end);
    expect(second.pendingRecords()).toBe(3);
    second.commit(second.readBatch(100, MiB).end);
    expect(second.pendingRecords()).toBe(0);
    expect(second.oldestPendingAgeMs()).toBe(0);
    second.close();
  });

  it('rotates segments and deletes them once committed', () => {
    const spool = new Spool({ dir, maxBytes: 10 * MiB, segmentBytes: 64 * 1024 });
    spool.open();
    const payload = 'x'.repeat(1000);
    for (let i = 0; i < 300; i++) spool.append(`${i} ${payload}`);
    expect(segments().length).toBeGreaterThan(4);
    let total = 0;
    for (;;) {
      const batch = spool.readBatch(50, MiB);
      if (batch.records.length === 0) break;
      expect(batch.records[0]!.toString().split(' ')[0]).toBe(String(total));
      total += batch.records.length;
      spool.commit(batch.end);
    }
    expect(total).toBe(300);
    expect(segments()).toHaveLength(1); // only the one being written
    expect(spool.pendingBytes()).toBe(0);
    spool.close();
  });

  it('detects a torn last record after a crash, skips it and keeps everything before it', () => {
    const crashed = new Spool({ dir, maxBytes: MiB });
    crashed.open();
    for (let i = 0; i < 3; i++) crashed.append(`m v=${i}`);
    crashed.close();
    const [segment] = segments();
    // A crash in the middle of the fourth record: its header promises 40 bytes, 5 arrived.
    const torn = Buffer.alloc(8 + 5);
    torn.writeUInt32LE(40, 0);
    torn.write('m v=3', 8);
    appendFileSync(join(dir, segment!), torn);

    const recovered = new Spool({ dir, maxBytes: MiB });
    recovered.open();
    recovered.append('m v=after');
    const batch = recovered.readBatch(100, MiB);
    expect(texts(batch.records)).toEqual(['m v=0', 'm v=1', 'm v=2', 'm v=after']);
    expect(recovered.counters.tornTails).toBe(1);
    recovered.close();
  });

  it('detects zeros after a power loss (file extended, data never written) and a torn header', () => {
    const crashed = new Spool({ dir, maxBytes: MiB });
    crashed.open();
    crashed.append('m v=0');
    crashed.close();
    const [segment] = segments();
    appendFileSync(join(dir, segment!), Buffer.alloc(64));
    const second = new Spool({ dir, maxBytes: MiB });
    second.open();
    second.append('m v=1');
    second.close();
    const last = segments().at(-1)!;
    appendFileSync(join(dir, last), Buffer.from([7, 0, 0])); // three bytes of a header

    const recovered = new Spool({ dir, maxBytes: MiB });
    recovered.open();
    expect(texts(recovered.readBatch(100, MiB).records)).toEqual(['m v=0', 'm v=1']);
    expect(recovered.counters.tornTails).toBe(2);
    recovered.close();
  });

  it('skips a record whose bytes do not match its CRC and keeps the ones after it', () => {
    const spool = new Spool({ dir, maxBytes: MiB });
    spool.open();
    for (let i = 0; i < 3; i++) spool.append(`m v=${i}`);
    spool.close();
    const file = join(dir, segments()[0]!);
    const bytes = readFileSync(file);
    const second = 8 + 'm v=0'.length;
    bytes[second + 8 + 4] = bytes[second + 8 + 4]! ^ 0xff; // flip a byte in the second record's payload
    writeFileSync(file, bytes);

    const recovered = new Spool({ dir, maxBytes: MiB });
    recovered.open();
    expect(texts(recovered.readBatch(100, MiB).records)).toEqual(['m v=0', 'm v=2']);
    expect(recovered.counters.corruptRecords).toBe(1);
    recovered.close();
  });

  it('commits in place (committed.pos never grows), and a torn newest slot falls back to the position before it', () => {
    const first = new Spool({ dir, maxBytes: MiB });
    first.open();
    for (let i = 0; i < 6; i++) first.append(`m v=${i}`);
    const file = join(dir, 'committed.pos');
    const size = statSync(file).size;
    first.commit(first.readBatch(2, MiB).end);
    first.commit(first.readBatch(2, MiB).end);
    expect(statSync(file).size).toBe(size);
    first.close();
    // Tear the slot written last (the second commit): the first commit's position is still there.
    const bytes = readFileSync(file);
    const newest = bytes.readBigUInt64LE(8) > bytes.readBigUInt64LE(32 + 8) ? 0 : 32;
    bytes.fill(0xff, newest + 16, newest + 24);
    writeFileSync(file, bytes);
    const second = new Spool({ dir, maxBytes: MiB });
    second.open();
    expect(texts(second.readBatch(100, MiB).records)).toEqual(['m v=2', 'm v=3', 'm v=4', 'm v=5']);
    second.close();
  });

  it('takes over the committed.json of an earlier version and removes it', () => {
    const first = new Spool({ dir, maxBytes: MiB });
    first.open();
    for (let i = 0; i < 4; i++) first.append(`m v=${i}`);
    const end = first.readBatch(3, MiB).end;
    first.close();
    rmSync(join(dir, 'committed.pos'));
    writeFileSync(join(dir, 'committed.json'), JSON.stringify(end));
    const second = new Spool({ dir, maxBytes: MiB });
    second.open();
    expect(texts(second.readBatch(100, MiB).records)).toEqual(['m v=3']);
    expect(readdirSync(dir)).not.toContain('committed.json');
    second.close();
  });

  it('refuses appends beyond maxBytes with a clear error, and takes them again once committed', () => {
    const spool = new Spool({ dir, maxBytes: 1024 * 1024 });
    spool.open();
    const big = 'y'.repeat(100 * 1024);
    for (let i = 0; i < 10; i++) spool.append(big);
    expect(() => spool.append(big)).toThrow(SpoolFullError);
    expect(() => spool.append(big)).toThrow(/historian\.spoolMaxBytes/);
    spool.commit(spool.readBatch(5, 100 * MiB).end);
    expect(() => spool.append(big)).not.toThrow();
    spool.close();
  });

  it('appends a group in one go, across a segment boundary, and takes only what fits when full', () => {
    const spool = new Spool({ dir, maxBytes: 1024 * 1024, segmentBytes: 64 * 1024 });
    spool.open();
    const group = Array.from({ length: 200 }, (_, i) => `${i} ${'z'.repeat(1000)}`);
    expect(spool.appendMany(group)).toBe(200);
    expect(segments().length).toBeGreaterThanOrEqual(4);
    const all: string[] = [];
    for (;;) {
      const batch = spool.readBatch(1000, MiB);
      if (batch.records.length === 0) break;
      all.push(...texts(batch.records));
    }
    expect(all).toEqual(group);
    const big = Array.from({ length: 2000 }, () => 'w'.repeat(1000));
    const taken = spool.appendMany(big);
    expect(taken).toBeGreaterThan(0);
    expect(taken).toBeLessThan(2000);
    expect(spool.pendingBytes()).toBeLessThanOrEqual(1024 * 1024);
    spool.close();
  });

  it('serves recent records from memory up to memoryBytes and the rest from disk, in order', () => {
    const spool = new Spool({ dir, maxBytes: MiB, memoryBytes: 400 });
    spool.open();
    const lines = Array.from({ length: 50 }, (_, i) => `m,i=${i} v=${i}`);
    spool.appendMany(lines.slice(0, 25));
    for (const line of lines.slice(25)) spool.append(line);
    const got: string[] = [];
    for (;;) {
      const batch = spool.readBatch(7, MiB);
      if (batch.records.length === 0) break;
      got.push(...batch.records);
      spool.commit(batch.end);
    }
    expect(got).toEqual(lines);
    expect(spool.pendingBytes()).toBe(0);
    spool.close();
  });

  it('refuses a second writer on the same directory, and takes over a lock left by a dead process', () => {
    const first = new Spool({ dir, maxBytes: MiB });
    first.open();
    expect(() => new Spool({ dir, maxBytes: MiB }).open()).toThrow(/in use by process \d+/);
    first.close();
    writeFileSync(join(dir, 'LOCK'), '999999999'); // no such process
    const second = new Spool({ dir, maxBytes: MiB });
    second.open();
    expect(JSON.parse(readFileSync(join(dir, 'LOCK'), 'utf8'))).toEqual(identityOf(process.pid));
    second.close();
  });

  it('takes over a lock left by an earlier process with the same PID (a container whose historian is PID 1 on every start)', () => {
    // The LOCK an earlier run with our PID left when it was killed: first as older runs wrote it
    // (the PID alone), then with a start time that is not ours.
    for (const left of [String(process.pid), JSON.stringify({ pid: process.pid, start: '1', boot: null })]) {
      writeFileSync(join(dir, 'LOCK'), left);
      const spool = new Spool({ dir, maxBytes: MiB });
      spool.open();
      expect(JSON.parse(readFileSync(join(dir, 'LOCK'), 'utf8'))).toEqual(identityOf(process.pid));
      spool.close();
      expect(existsSync(join(dir, 'LOCK'))).toBe(false);
    }
  });

  it('refuses while another live process holds the lock, and takes it over once that process is killed', async () => {
    const holder = holdSpoolLock(dir, []);
    try {
      await holder.locked;
      expect(JSON.parse(readFileSync(join(dir, 'LOCK'), 'utf8'))).toEqual(identityOf(holder.child.pid!));
      expect(() => new Spool({ dir, maxBytes: MiB }).open()).toThrow(new RegExp(`in use by process ${holder.child.pid}`));
    } finally {
      await holder.kill();
    }
    const after = new Spool({ dir, maxBytes: MiB });
    after.open();
    expect(JSON.parse(readFileSync(join(dir, 'LOCK'), 'utf8'))).toEqual(identityOf(process.pid));
    after.close();
  });

  // Containers: each start is PID 1 in a new PID namespace. Real namespaces (unshare, as root).
  it('a historian restarted as PID 1 in a new PID namespace takes over the lock its killed predecessor left', async (context) => {
    if (!canUnshare()) context.skip('unshare --pid needs root (CAP_SYS_ADMIN); CI runs as root');
    const first = holdSpoolLock(dir, UNSHARE);
    await first.locked;
    expect(JSON.parse(readFileSync(join(dir, 'LOCK'), 'utf8'))).toMatchObject({ pid: 1 });
    await first.kill(); // SIGKILL: the LOCK stays behind, naming PID 1
    const second = holdSpoolLock(dir, UNSHARE);
    try {
      await second.locked; // the old code refused here forever: PID 1 (itself) is alive
      expect(JSON.parse(readFileSync(join(dir, 'LOCK'), 'utf8'))).toMatchObject({ pid: 1 });
    } finally {
      await second.kill();
    }
  });

  it('refuses a second container (another PID namespace, also PID 1) while the first keeps its lock fresh', async (context) => {
    if (!canUnshare()) context.skip('unshare --pid needs root (CAP_SYS_ADMIN); CI runs as root');
    const first = holdSpoolLock(dir, UNSHARE);
    try {
      await first.locked;
      expect(() => new Spool({ dir, maxBytes: MiB, lock: LEASE }).open()).toThrow(/in use by process 1 \(in another PID namespace/);
    } finally {
      await first.kill();
    }
  });

  it('fsyncs on every append when fsyncIntervalMs is 0', () => {
    const spool = new Spool({ dir, maxBytes: MiB, fsyncIntervalMs: 0 });
    spool.open();
    spool.append('a v=1');
    spool.append('a v=2');
    expect(spool.counters.fsyncs).toBe(2);
    spool.close();
  });
});
