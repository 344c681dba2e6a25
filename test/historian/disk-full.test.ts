// Disk full (issue 9, item 4), for real: the spool on a 1 MiB tmpfs. With InfluxDB away, events
// fill the disk until an append fails with ENOSPC; from then on events are refused (not
// acknowledged) and the status says "disk full". Once InfluxDB is there, the writer must make
// progress although the disk is full — recording its position needs no free space — so the
// spool drains, frees the disk, and the refused events (sent again, as a device would) are
// taken: every event stored once, nothing written twice beyond the batch in flight.
// Mounting needs root (CI runs as root); where it is not permitted the test is skipped, saying why.
import { execFileSync } from 'node:child_process';
import { closeSync, mkdirSync, mkdtempSync, openSync, rmSync, writeFileSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { InProcessBus } from '../../broker/in-process-bus.js';
import { MessageRefused } from '../../bus/index.js';
import { Spool } from '../../historian/spool.js';
import { Historian } from '../../historian/index.js';
import { freePort, startManagedInfluxd, type ManagedInfluxd } from '../../historian/influxd.js';
import { historianConfigSchema } from '../../historian/config.js';
import { waitFor } from '../../lib/wait.js';
import { NO_REDELIVERY, startTestBroker, type TestBroker } from '../harness/broker.js';

const T0 = Math.floor(Date.now() / 1000) * 1000 - 3_600_000;
const BATCH = 500;

/** Writes `file` until the filesystem has no byte left (ENOSPC). */
function fillDisk(file: string): void {
  const fd = openSync(file, 'w');
  try {
    for (const chunk of [64 * 1024, 4096, 1]) {
      const buf = Buffer.alloc(chunk);
      for (;;) {
        try {
          writeSync(fd, buf);
        } catch (err) {
          if ((err as NodeJS.ErrnoException).code === 'ENOSPC') break;
          throw err;
        }
      }
    }
  } finally {
    closeSync(fd);
  }
}

describe('disk full under the spool (1 MiB tmpfs)', () => {
  let broker: TestBroker;
  let dir: string;
  let mountPoint: string;
  let inodeMount: string;
  let cannotMount: string | undefined;
  /** What this file mounted, each on its own: a second mount that fails must not leak the first. */
  const mounted: string[] = [];
  let influxd: ManagedInfluxd | undefined;

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'lw-disk-full-'));
    mountPoint = join(dir, 'tmpfs');
    mkdirSync(mountPoint);
    inodeMount = join(dir, 'tmpfs-inodes');
    mkdirSync(inodeMount);
    try {
      execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=1m', 'tmpfs', mountPoint], { stdio: 'pipe' });
      mounted.push(mountPoint);
      // Inodes for the root, a filler file, the spool directory, its LOCK, committed.pos and one segment: no second segment.
      execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=1m,nr_inodes=6', 'tmpfs', inodeMount], { stdio: 'pipe' });
      mounted.push(inodeMount);
    } catch (err) {
      cannotMount = `mount -t tmpfs is not permitted here (${(err as Error).message.split('\n')[0]}); this test needs root`;
    }
    broker = await startTestBroker({ wsPort: null });
  });
  afterAll(async () => {
    await Promise.all([broker?.stop(), influxd?.stop()]);
    for (const point of mounted.splice(0)) execFileSync('umount', ['-l', point]);
    rmSync(dir, { recursive: true, force: true });
  });

  it('refuses events while the disk is full and says so, drains once InfluxDB answers, and takes them again', { timeout: 120_000 }, async (context) => {
    if (cannotMount) context.skip(cannotMount);
    const influxPort = await freePort(); // nothing listens yet: InfluxDB is away
    const config = historianConfigSchema.parse({
      influxUrl: `http://127.0.0.1:${influxPort}`,
      database: 'diskfull',
      spoolDir: join(mountPoint, 'spool'),
      spoolSegmentBytes: 64 * 1024,
      batchSize: BATCH,
      flushIntervalMs: 50,
      retryInitialMs: 50,
      retryMaxMs: 200,
    });
    const historian = new Historian({ bus: broker.broker.bus, config, dataDir: dir });
    await historian.start();
    try {
      // A publisher that stands for devices: a refused publish fails at once (no in-process redelivery).
      const device = new InProcessBus(broker.broker.aedes, { redelivery: NO_REDELIVERY });
      const publish = (seq: number): Promise<void> => device.publish('lw/DF/d1/telemetry', JSON.stringify({ ts: T0 + seq, seq, values: { a: 1.5, b: 2.5 } }), { qos: 1 });
      // Phase 1: fill the disk until an event does not make it into the spool.
      const notTaken: number[] = [];
      let sent = 0;
      while (historian.counters().spooled === sent && sent < 100_000) {
        const from = sent;
        const results = await Promise.allSettled(Array.from({ length: 200 }, (_, k) => publish(from + k)));
        sent += 200;
        results.forEach((result, k) => {
          if (result.status === 'rejected') {
            expect(result.reason).toBeInstanceOf(MessageRefused);
            expect((result.reason as Error).message).toMatch(/: refusing events: disk full \(ENOSPC/);
            notTaken.push(from + k);
          }
        });
      }
      const full = historian.counters();
      expect(full.spooled).toBeLessThan(sent);
      expect(full).toMatchObject({ disk_full: 1, spool_refusing: 1, spool_alarm: 1 });
      expect(full.refused_disk_full).toBe(notTaken.length);
      // Its health says so: down, refusing for want of disk; InfluxDB away while the spool holds the data.
      const health = historian.health();
      expect(health.status).toBe('down');
      expect(health.reasons).toContainEqual(expect.stringMatching(/^refusing events: disk full \(ENOSPC/));
      expect(health.reasons).toContainEqual(expect.stringMatching(/^InfluxDB is unreachable; the spool holds \d+ bytes for it$/));

      // Something else on that filesystem takes what little the failed append left free.
      fillDisk(join(mountPoint, 'filler'));

      // Phase 2: InfluxDB comes up while the disk is still full.
      influxd = await startManagedInfluxd({ dataDir: join(dir, 'influxd'), port: influxPort });
      await waitFor(() => historian.counters().write_batches > 0, 30_000, 'the first batch written');
      // The status says what it is: InfluxDB answers, the disk is full.
      expect(historian.counters()).toMatchObject({ influx_up: 1, disk_full: 1 });
      await waitFor(() => historian.counters().spool_pending_bytes === 0, 30_000, 'the spool to drain');

      // Phase 3: the refused events again, as their devices would send them; now there is room.
      await Promise.all(notTaken.map((seq) => publish(seq)));
      expect(historian.counters().disk_full).toBe(0);
      await historian.flush(30_000);
      // Taking events again: no longer down (the filler still leaves the disk short of room, so the alarm may stand).
      expect(historian.health().status).not.toBe('down');

      const params = new URLSearchParams({ q: `SELECT "seq", "a" FROM telemetry`, db: 'diskfull', epoch: 'ms' });
      const res = await fetch(`${influxd.url}/query`, { method: 'POST', body: params, signal: AbortSignal.timeout(20_000) });
      const body = (await res.json()) as { results: { series?: { values: [number, number, number][] }[] }[] };
      const seqs = (body.results[0]?.series?.[0]?.values ?? []).map((row) => row[1]);
      expect(seqs.length).toBe(sent);
      expect(new Set(seqs).size).toBe(sent);
      const c = historian.counters();
      expect(c.written).toBe(sent);
      expect(c.dropped_rejected).toBe(0);
    } finally {
      await historian.stop();
    }
  });

  it('a new segment that cannot be created (ENOSPC) loses nothing: the error says how many records were written, and the spool goes on', (context) => {
    if (cannotMount) context.skip(cannotMount);
    const filler = join(inodeMount, 'filler');
    writeFileSync(filler, 'x');
    const spool = new Spool({ dir: join(inodeMount, 'spool'), maxBytes: 1024 * 1024, segmentBytes: 64 * 1024 });
    spool.open();
    try {
      const records = Array.from({ length: 1000 }, (_, k) => `m,device=d v=${k} ${String(k).padStart(100, '0')}`); // ~120 B: two segments' worth
      let thrown: (Error & { code?: string; appended?: number }) | undefined;
      try {
        spool.appendMany(records);
      } catch (err) {
        thrown = err as Error & { code?: string; appended?: number };
      }
      expect(thrown?.code).toBe('ENOSPC');
      const appended = thrown?.appended ?? -1;
      expect(appended).toBeGreaterThan(0);
      expect(appended).toBeLessThan(records.length);
      // Everything reported as written is there, in order; once the filesystem has an inode
      // again, the rest goes in behind it.
      const batch = spool.readBatch(10_000, 16 * 1024 * 1024);
      expect(batch.records).toEqual(records.slice(0, appended));
      // The disk is full and the segment is all stored, but no new segment can be made to free
      // it: the commit still records the position and the backlog reads 0.
      spool.commit(batch.end);
      expect(spool.pendingBytes()).toBe(0);
      rmSync(filler);
      expect(spool.appendMany(records.slice(appended))).toBe(records.length - appended);
      expect(spool.readBatch(10_000, 16 * 1024 * 1024).records).toEqual(records.slice(appended));
    } finally {
      spool.close();
    }
  });
});
