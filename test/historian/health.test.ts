// The historian's health() driven into each state for real: a real broker, a real influxd, an
// InfluxDB that is away (a free port nobody listens on), a spool that fills up. Disk full is in
// disk-full.test.ts (it needs a tmpfs).
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { MessageRefused } from '../../bus/index.js';
import { InProcessBus } from '../../broker/in-process-bus.js';
import { Historian } from '../../historian/index.js';
import { freePort } from '../../historian/influxd.js';
import { historianConfigSchema } from '../../historian/config.js';
import { waitFor } from '../../lib/wait.js';
import { NO_REDELIVERY, startTestBroker, type TestBroker } from '../harness/broker.js';
import { startTestInflux, type TestInflux } from '../harness/influx.js';

const T0 = Math.floor(Date.now() / 1000) * 1000 - 3_600_000;
const SPOOL_MAX = 1024 * 1024; // the smallest historian.spoolMaxBytes

describe('Historian health', () => {
  let broker: TestBroker;
  let influx: TestInflux;
  let dir: string;
  const running: Historian[] = [];
  let databases = 0;

  beforeAll(async () => {
    [broker, influx] = await Promise.all([startTestBroker({ wsPort: null }), startTestInflux()]);
    dir = mkdtempSync(join(tmpdir(), 'lw-historian-health-'));
  });
  afterEach(async () => {
    await Promise.all(running.splice(0).map((historian) => historian.stop()));
  });
  afterAll(async () => {
    await Promise.all([broker?.stop(), influx?.stop()]);
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  function historianOn(influxUrl: string, overrides: Record<string, unknown> = {}): Historian {
    const database = `health${++databases}`;
    const config = historianConfigSchema.parse({ influxUrl, database, spoolDir: join(dir, database), spoolMaxBytes: SPOOL_MAX, flushIntervalMs: 50, retryInitialMs: 100, retryMaxMs: 300, ...overrides });
    const historian = new Historian({ bus: broker.broker.bus, config, dataDir: dir, drainTimeoutMs: 500 });
    running.push(historian);
    return historian;
  }

  /** A publisher standing for devices on line `line`: a refused publish fails at once (no in-process redelivery). */
  function device(line: string): (from: number, count: number) => Promise<PromiseSettledResult<void>[]> {
    const bus = new InProcessBus(broker.broker.aedes, { redelivery: NO_REDELIVERY });
    return (from, count) => Promise.allSettled(Array.from({ length: count }, (_, k) => bus.publish(`lw/${line}/d1/telemetry`, JSON.stringify({ ts: T0 + from + k, seq: from + k, values: { a: 1.5, b: 2.5, c: 3.5 } }), { qos: 1 })));
  }

  it('is down until started and after stop, ok while it stores events', async () => {
    const historian = historianOn(influx.url);
    expect(historian.health()).toEqual({ status: 'down', reasons: ['not subscribed to lw/# (not started, or stopped)'] });
    await historian.start();
    expect(historian.health()).toEqual({ status: 'ok', reasons: [] });
    await device('HO')(0, 10);
    await historian.flush();
    expect(historian.health().status).toBe('ok');
    await historian.stop();
    expect(historian.health()).toMatchObject({ status: 'down', reasons: ['not subscribed to lw/# (not started, or stopped)'] });
    expect(historian.counters().subscribed).toBe(0);
  });

  it('is degraded while InfluxDB is unreachable and the spool holds the data', async () => {
    const historian = historianOn(`http://127.0.0.1:${await freePort()}`, { setupDatabase: false });
    await historian.start();
    expect(historian.health().status).toBe('ok'); // nothing held yet
    await device('HD')(0, 10);
    await waitFor(() => historian.counters().write_failures > 0, 10_000, 'a failed write to the absent InfluxDB');
    const health = historian.health();
    expect(health.status).toBe('degraded');
    expect(health.reasons).toEqual([expect.stringMatching(/^InfluxDB is unreachable; the spool holds \d+ bytes for it$/)]);
  });

  it('is degraded once the spool is past its alarm level', async () => {
    const historian = historianOn(`http://127.0.0.1:${await freePort()}`, { setupDatabase: false, spoolAlarmRatio: 0.01 });
    await historian.start();
    const publish = device('HA');
    let sent = 0;
    while (historian.counters().spool_alarm === 0 && sent < 5000) {
      await publish(sent, 100);
      sent += 100;
    }
    const health = historian.health();
    expect(health.status).toBe('degraded');
    expect(health.reasons).toContainEqual(expect.stringMatching(/^the spool is past its alarm level \(historian\.spoolAlarmRatio 0\.01\)/));
  });

  it('is down while it refuses events (spool full), with the refusal as the reason', async () => {
    const historian = historianOn(`http://127.0.0.1:${await freePort()}`, { setupDatabase: false, batchSize: 100_000 });
    await historian.start();
    const publish = device('HF');
    let sent = 0;
    let refused: unknown;
    while (refused === undefined && sent < 40_000) {
      const results = await publish(sent, 1000);
      sent += 1000;
      refused = results.find((result) => result.status === 'rejected')?.reason;
    }
    expect(refused).toBeInstanceOf(MessageRefused);
    const health = historian.health();
    expect(health.status).toBe('down');
    expect(health.reasons).toContainEqual(expect.stringMatching(/^refusing events: spool full \(\d+ bytes waiting for InfluxDB, limit historian\.spoolMaxBytes 1048576\)/));
    expect(historian.counters()).toMatchObject({ spool_refusing: 1 });
  });

  it('names its gauges among its counters', () => {
    const historian = historianOn(influx.url);
    const keys = Object.keys(historian.counters());
    for (const gauge of historian.gauges) expect(keys).toContain(gauge);
    expect(historian.gauges.has('spool_records')).toBe(true);
    expect(historian.gauges.has('spool_pending_bytes')).toBe(true);
    expect(historian.gauges.has('written')).toBe(false);
  });
});
