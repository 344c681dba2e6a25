// A supervised managed influxd and late data (issue 14, items 3 and 4), against a real influxd
// started by the historian itself (no InfluxDB configured): SIGKILLed, it comes back by itself on
// the same URL; the 500 events published meanwhile wait in the spool — records, bytes and the
// oldest one's age in counters() and /metrics — then drain into raw, and reach the "1m" and "1h"
// series although their minute had been computed by the continuous queries long before.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { historianConfigSchema } from '../../historian/config.js';
import { Historian } from '../../historian/index.js';
import { RESTART_POLICY, type SupervisedInfluxd } from '../../historian/influxd.js';
import { Metrics } from '../../lib/metrics.js';
import { processAlive } from '../../lib/process-alive.js';
import { waitFor } from '../../lib/wait.js';
import { startTestBroker, type TestBroker } from '../harness/broker.js';
import { holdPort } from '../harness/hold-port.js';

const DEVICES = 5;
const EVENTS = 500;

async function query(url: string, database: string, q: string): Promise<Record<string, unknown>[]> {
  const res = await fetch(`${url}/query`, { method: 'POST', body: new URLSearchParams({ q, db: database, epoch: 'ms' }), signal: AbortSignal.timeout(20_000) });
  const body = (await res.json()) as { results?: { error?: string; series?: { tags?: Record<string, string>; columns: string[]; values: unknown[][] }[] }[] };
  const [result] = body.results ?? [];
  if (result?.error) throw new Error(`${q}: ${result.error}`);
  return (result?.series ?? []).flatMap((s) => s.values.map((row) => ({ ...s.tags, ...Object.fromEntries(s.columns.map((c, i) => [c, row[i]])) })));
}

describe('a supervised managed influxd, and late data in every series', () => {
  let broker: TestBroker;
  let dir: string;

  beforeAll(async () => {
    broker = await startTestBroker({ wsPort: null });
    dir = mkdtempSync(join(tmpdir(), 'lw-supervised-'));
  });
  afterAll(async () => {
    await broker?.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('restarts a SIGKILLed managed influxd, drains the spool, and the late events reach "1m" and "1h"', { timeout: 120_000 }, async () => {
    const database = 'supervised';
    const config = historianConfigSchema.parse({ database, flushIntervalMs: 50, retryInitialMs: 50, retryMaxMs: 500, requestTimeoutMs: 5000 });
    const historian = new Historian({ bus: broker.broker.bus, config, dataDir: join(dir, 'restart') });
    let held: { release(): Promise<void> } | undefined;
    try {
      await historian.start();
      const managed: SupervisedInfluxd | undefined = historian.managedInfluxd;
      if (!managed) throw new Error('the historian started no managed influxd although no InfluxDB was configured');
      const { url, port, pid } = managed;
      expect(historian.influxUrl).toBe(url);

      managed.kill('SIGKILL');
      await waitFor(() => !processAlive(pid), 10_000, `the SIGKILLed influxd (pid ${pid}) to be gone`);
      // Its restart waits RESTART_POLICY.initialMs / 2 at least; holding the port meanwhile makes it fail
      // (and be retried) until the checks below are done, so "while influxd is down" is not a race.
      held = await holdPort(port, RESTART_POLICY.initialMs / 2);

      // Readings of two hours ago (a device catching up): the continuous queries of their minute and hour ran long ago.
      const minute = Math.floor((Date.now() - 2 * 3_600_000) / 60_000) * 60_000;
      const expectedMean = new Map<string, number>();
      const published: Promise<void>[] = [];
      for (let i = 0; i < EVENTS; i++) {
        const device = `d${i % DEVICES}`;
        published.push(broker.broker.bus.publish(`lw/S/${device}/telemetry`, JSON.stringify({ ts: minute + i * 100, seq: Math.floor(i / DEVICES), values: { v: i } }), { qos: 1 }));
        expectedMean.set(device, (expectedMean.get(device) ?? 0) + i / (EVENTS / DEVICES));
      }
      await Promise.all(published); // at once: the port is held only while the supervisor has quick failures to spare
      await waitFor(() => historian.counters().write_failures > 0, 20_000, 'a failed write while influxd is down');

      // The true backlog while influxd is down: the spool's records and bytes, and its oldest record's age.
      const down = historian.counters();
      expect(down).toMatchObject({ spooled: EVENTS, spool_records: EVENTS, influx_up: 0, influxd_up: 0, influxd_restarts: 0 });
      expect(down.spool_pending_bytes).toBeGreaterThan(EVENTS * 20);
      expect(down.spool_oldest_age_seconds).toBeGreaterThanOrEqual(0);
      const metrics = await new Metrics(() => [historian]).render();
      expect(metrics).toContain(`linewatch_spool_records{service="historian"} ${EVENTS}`);
      expect(metrics).toMatch(/# TYPE linewatch_spool_oldest_age_seconds gauge/);
      expect(metrics).toContain('linewatch_influxd_up{service="historian"} 0');
      expect(metrics).toMatch(/# TYPE linewatch_influxd_up gauge/);
      expect(metrics).toContain(`linewatch_spool_pending_bytes{service="historian"} ${down.spool_pending_bytes}`);

      await held.release();
      held = undefined;
      await waitFor(() => managed.restarts === 1 && managed.running, 60_000, 'the managed influxd to be restarted by the supervisor');
      expect(managed.pid).not.toBe(pid);
      expect(managed.url).toBe(url);
      expect(managed.gaveUp).toBe(false);
      await waitFor(() => historian.counters().spool_records === 0, 30_000, 'the spool to drain into the restarted influxd');
      await historian.flush(30_000);
      const drained = historian.counters();
      expect(drained).toMatchObject({ spool_records: 0, spool_oldest_age_seconds: 0, spool_pending_bytes: 0, influxd_up: 1, influxd_restarts: 1, late_buckets_pending: 0 });

      const [raw] = await query(url, database, 'SELECT count("v") AS n FROM "raw"."telemetry"');
      expect(raw?.n).toBe(EVENTS);
      // One point per device for that minute, and for its hour: the mean of exactly the readings it had.
      for (const [policy, bucket] of [
        ['1m', minute],
        ['1h', Math.floor(minute / 3_600_000) * 3_600_000],
      ] as const) {
        const rows = await query(url, database, `SELECT "mean_v", "min_v", "max_v" FROM "${policy}"."telemetry" GROUP BY "device"`);
        expect(rows.map((row) => row.time)).toEqual(Array.from({ length: DEVICES }, () => bucket));
        for (const row of rows) {
          const device = String(row.device);
          const index = Number(device.slice(1));
          expect(row.mean_v, `${policy} mean_v of ${device}`).toBeCloseTo(expectedMean.get(device) ?? NaN, 6);
          expect(row).toMatchObject({ min_v: index, max_v: EVENTS - DEVICES + index });
        }
      }
      expect(drained.late_buckets_reaggregated).toBeGreaterThanOrEqual(2); // at least its minute in "1m" and its hour in "1h"
    } finally {
      await held?.release();
      await historian.stop();
    }
  });

  it(`gives up after ${RESTART_POLICY.maxQuickFailures} quick failures in a row, and says so`, { timeout: 120_000 }, async () => {
    const config = historianConfigSchema.parse({ database: 'gives_up', flushIntervalMs: 50 });
    const historian = new Historian({ bus: broker.broker.bus, config, dataDir: join(dir, 'gives-up') });
    let held: { release(): Promise<void> } | undefined;
    try {
      await historian.start();
      const managed = historian.managedInfluxd;
      if (!managed) throw new Error('the historian started no managed influxd although no InfluxDB was configured');
      const { pid, port } = managed;
      managed.kill('SIGKILL');
      await waitFor(() => !processAlive(pid), 10_000, `the SIGKILLed influxd (pid ${pid}) to be gone`);
      held = await holdPort(port, RESTART_POLICY.initialMs / 2);
      // Every restart finds the port taken: a quick failure each, until the supervisor gives up.
      await waitFor(() => managed.gaveUp, 90_000, 'the supervisor to give up');
      expect(managed).toMatchObject({ restarts: 0, running: false });
      expect(historian.counters()).toMatchObject({ influxd_up: 0, influxd_restarts: 0 });
      await publishOne(broker);
      await waitFor(() => historian.counters().spool_records === 1, 10_000, 'the event to wait in the spool');
    } finally {
      await held?.release();
      await historian.stop();
    }
  });
});

async function publishOne(broker: TestBroker): Promise<void> {
  await broker.broker.bus.publish('lw/S/d0/telemetry', JSON.stringify({ ts: Date.now(), seq: 1, values: { v: 1 } }), { qos: 1 });
}
