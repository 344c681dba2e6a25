// The gateway's DiskSpool on real files: a spool of the format before lib/wal (spool.ndjson +
// spool.offset) is moved into the log once and replayed once; replay reads again from the
// committed position; a bit flipped in a record's length field costs that record only (counted as
// corrupt), a torn end is counted as torn; the refusal when full names the config key.
import { appendFileSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { DiskSpool, type SpoolRecord } from '../../gateway/spool.js';
import { logger } from '../../lib/log.js';
import { WriteAheadLog } from '../../lib/wal/wal.js';

const MiB = 1024 * 1024;
const record = (seq: number): SpoolRecord => ({ topic: 'lw/A/p-1/telemetry', payload: JSON.stringify({ ts: 1767000000000 + seq, seq, values: { n: seq } }), retain: false });

describe('DiskSpool', () => {
  let dir: string;
  const open: DiskSpool[] = [];
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'lw-gw-spool-'));
  });
  afterEach(async () => {
    for (const spool of open.splice(0)) await spool.close();
    rmSync(dir, { recursive: true, force: true });
  });

  async function openSpool(maxBytes = MiB): Promise<DiskSpool> {
    const spool = await DiskSpool.open(dir, maxBytes);
    open.push(spool);
    return spool;
  }
  async function closeSpool(spool: DiskSpool): Promise<void> {
    open.splice(open.indexOf(spool), 1);
    await spool.close();
  }

  it('moves a spool of the earlier format into the log once: what was not replayed is replayed, bad lines counted, a torn last line dropped', async () => {
    const lines = [0, 1, 2, 3, 4].map((seq) => `${JSON.stringify(record(seq))}\n`);
    const bad = '{"topic":"lw/A/p-1/tele\n';
    const text = lines[0]! + lines[1]! + lines[2]! + bad + lines[3]! + lines[4]! + '{"topic":"lw/A/p-1/telemetry","pay';
    mkdirSync(dir, { recursive: true });
    writeFileSync(join(dir, 'spool.ndjson'), text);
    writeFileSync(join(dir, 'spool.offset'), String(Buffer.byteLength(lines[0]! + lines[1]!))); // 0 and 1 were replayed

    const first = await openSpool();
    expect(existsSync(join(dir, 'spool.ndjson'))).toBe(false);
    expect(existsSync(join(dir, 'spool.offset'))).toBe(false);
    expect(first.corrupt).toBe(1);
    const { records, end } = await first.read(100);
    expect(records).toEqual([record(2), record(3), record(4)]);
    await first.commit(end);
    expect(first.isEmpty()).toBe(true);
    await closeSpool(first);

    const second = await openSpool(); // moved once: nothing to replay again
    expect((await second.read(100)).records).toEqual([]);
    expect(readdirSync(dir).filter((name) => name.startsWith('spool.'))).toEqual([]);
  });

  it('skips a record that is intact on disk but not a spool record, counted once even when its batch is read again', async () => {
    // Written by something else through the same log format (a foreign writer, a bug): the CRC matches, the JSON is no record.
    const foreign = new WriteAheadLog({ dir, maxBytes: MiB, segmentBytes: MiB, lock: { what: 'a foreign writer', hint: '-' }, log: logger('test') });
    foreign.open();
    foreign.appendMany([JSON.stringify(record(0)), 'null', '{"topic":5,"payload":"x","retain":false}', JSON.stringify(record(1))]);
    foreign.close();

    const spool = await openSpool();
    expect((await spool.read(100)).records).toEqual([record(0), record(1)]);
    const again = await spool.read(100); // the publish of that batch failed: read again
    expect(again.records).toEqual([record(0), record(1)]);
    expect(spool.corrupt).toBe(2);
    await spool.commit(again.end);
    expect(spool.isEmpty()).toBe(true);
  });

  it('replays every record after one whose length field has a flipped bit, counting the damage once as corrupt and none as torn', async () => {
    const first = await openSpool();
    await Promise.all(Array.from({ length: 50 }, (_, seq) => first.append(record(seq))));
    await closeSpool(first);
    const [segment] = readdirSync(dir).filter((name) => name.startsWith('seg-'));
    const file = join(dir, segment!);
    const bytes = readFileSync(file);
    let header = 0; // record 10's length field
    for (let index = 0; index < 10; index++) header += 8 + bytes.readUInt32LE(header);
    bytes[header + 1] = bytes[header + 1]! ^ 0x10; // +4096: plausible, so only the CRC can tell
    writeFileSync(file, bytes);

    const spool = await openSpool();
    const { records, end } = await spool.read(100);
    expect(records).toEqual(Array.from({ length: 50 }, (_, seq) => record(seq)).filter((_, seq) => seq !== 10));
    expect((await spool.read(100)).records).toHaveLength(49); // read again: counted once
    expect({ corrupt: spool.corrupt, torn: spool.torn }).toEqual({ corrupt: 1, torn: 0 });
    await spool.commit(end);
    expect(spool.isEmpty()).toBe(true);
  });

  it('counts a torn end of a segment (a crash mid-append) as torn, not corrupt, and keeps everything before it', async () => {
    const first = await openSpool();
    await Promise.all([0, 1, 2].map((seq) => first.append(record(seq))));
    await closeSpool(first);
    const [segment] = readdirSync(dir).filter((name) => name.startsWith('seg-'));
    const torn = Buffer.alloc(8 + 5);
    torn.writeUInt32LE(200, 0); // promises 200 bytes, 5 arrived
    torn.write('{"top', 8);
    appendFileSync(join(dir, segment!), torn);

    const spool = await openSpool();
    await spool.append(record(3));
    expect((await spool.read(100)).records).toEqual([0, 1, 2, 3].map(record));
    expect({ corrupt: spool.corrupt, torn: spool.torn }).toEqual({ corrupt: 0, torn: 1 });
  });

  it('reads from the replay position again until a batch is committed, and keeps what is not committed across a restart', async () => {
    const first = await openSpool();
    await Promise.all([0, 1, 2, 3].map((seq) => first.append(record(seq))));
    const failed = await first.read(2); // its publish failed: not committed
    expect(failed.records).toEqual([record(0), record(1)]);
    const again = await first.read(2);
    expect(again.records).toEqual([record(0), record(1)]);
    await first.commit(again.end);
    expect((await first.read(100)).records).toEqual([record(2), record(3)]);
    await closeSpool(first);

    const second = await openSpool();
    expect(second.backlogBytes()).toBeGreaterThan(0);
    expect((await second.read(100)).records).toEqual([record(2), record(3)]);
  });

  it('refuses a second gateway on the same spool directory, saying which key to change', async () => {
    await openSpool();
    await expect(DiskSpool.open(dir, MiB)).rejects.toThrow(/the gateway spool .* is in use by process \d+.*another gateway\.spoolDir/);
  });

  it('refuses a record beyond spoolMaxBytes with an error naming gateway.spoolMaxBytes, and takes records again once replayed', async () => {
    const spool = await openSpool(1024);
    const results = await Promise.allSettled(Array.from({ length: 20 }, (_, seq) => spool.append(record(seq))));
    const refused = results.filter((result) => result.status === 'rejected');
    expect(refused.length).toBeGreaterThan(0);
    expect(refused.length).toBeLessThan(20);
    expect(String((refused[0] as PromiseRejectedResult).reason)).toMatch(/the spool is full \(1024 bytes\); raise gateway\.spoolMaxBytes/);
    expect(spool.backlogBytes()).toBeLessThanOrEqual(1024);
    const { records, end } = await spool.read(100);
    expect(records.length).toBeGreaterThan(0);
    await spool.commit(end);
    await expect(spool.append(record(99))).resolves.toBeUndefined();
  });
});
