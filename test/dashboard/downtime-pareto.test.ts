// The dashboard's downtime Pareto and OEE by hour in headless Chromium, on a real influxd holding
// points the historian's own converter made from OEE-service payloads, written as the historian
// writes them (into the period retention policy, not raw): the Pareto ranks the line's
// unplanned stops by cause (numbers in reasons folded, planned stops left out), OEE by hour reads
// each hour's own figure, and /api/downtime refuses a bad range naming the parameter.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { BrowserContext } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DashboardServer } from '../../dashboard/server/index.js';
import { historianConfigSchema } from '../../historian/config.js';
import { InfluxClient, setupDatabase } from '../../historian/influx.js';
import { toPoint } from '../../historian/points.js';
import { startTestBroker, type TestBroker } from '../harness/broker.js';
import { launchChromium } from '../harness/chromium.js';
import { startTestInflux, type TestInflux } from '../harness/influx.js';

const MIN = 60_000;
let broker: TestBroker;
let influx: TestInflux;
let dashboard: DashboardServer;
let browser: BrowserContext;
let profile: string;

const stop = (device: string, state: string, reason: string, start: number, minutes: number, plannedMs = 0) => ['lw/P/downtime', { ts: start + minutes * MIN, scope: 'line', device, state, reason, start, end: start + minutes * MIN, durationMs: minutes * MIN, plannedMs, micro: false, open: false }] as const;

beforeAll(async () => {
  profile = mkdtempSync(join(tmpdir(), 'lw-pareto-chromium-'));
  [broker, influx] = await Promise.all([startTestBroker({ wsPort: null }), startTestInflux()]);
  const config = historianConfigSchema.parse({ influxUrl: influx.url, database: 'paretotest' });
  const client = new InfluxClient({ url: influx.url, database: config.database, periodRetentionPolicy: config.periodRetentionPolicy });
  await setupDatabase(client.admin, config);
  const now = Date.now();
  const hour = Math.floor(now / 3_600_000) * 3_600_000; // the current hour: its start is within "last hour"
  const messages = [
    stop('st-2', 'FAULT', 'motor over temperature (91.5 °C)', now - 50 * MIN, 12),
    stop('st-2', 'FAULT', 'motor over temperature (88.0 °C)', now - 30 * MIN, 6),
    stop('st-4', 'STARVED', 'upstream buffer empty', now - 20 * MIN, 5),
    stop('st-1', 'MAINTENANCE', 'belt change', now - 15 * MIN, 10, 10 * MIN),
    ['lw/P/oee', { ts: now, period: 'hour', scope: 'line', start: hour, end: hour + 3_600_000, complete: false, oee: 0.61, availability: 0.8, performance: 0.8, quality: 0.95, plannedMs: 30 * MIN, runMs: 24 * MIN, downMs: { FAULT: 6 * MIN }, microStops: 0, microStopMs: 0, plannedStopMs: 0, unknownMs: 0, goodCount: 20, scrapCount: 1 }],
  ] as const;
  const lines = messages.map(([topic, payload]) => {
    const point = toPoint(topic, JSON.stringify(payload));
    if (!point.ok) throw new Error(point.error);
    return point.line;
  });
  await client.writeLines(lines);
  client.close();
  // The rows are in the period policy only (kept for retention.periods), none in raw.
  const [raw] = await influx.query('SELECT count("durationMs") FROM "raw"."downtime"', 'paretotest');
  expect(raw?.series ?? []).toEqual([]);
  const [kept] = await influx.query('SELECT count("durationMs") FROM "periods"."downtime"', 'paretotest');
  expect(kept?.series?.[0]?.values[0]?.[1]).toBe(4);
  dashboard = new DashboardServer({ bus: broker.broker.bus, config: { host: '127.0.0.1', port: 0, token: null }, influx: { url: influx.url, database: 'paretotest', periodRetentionPolicy: config.periodRetentionPolicy } });
  await dashboard.start();
  browser = await launchChromium(profile, { width: 1280, height: 1600 });
});

afterAll(async () => {
  await browser?.close();
  await dashboard?.stop();
  await Promise.all([broker?.stop(), influx?.stop()]);
  if (profile) rmSync(profile, { recursive: true, force: true });
});

describe('downtime Pareto', () => {
  it('answers /api/downtime with the causes, largest first, planned stops left out', async () => {
    const res = await fetch(`${dashboard.url}/api/downtime?from=-2h&line=P`);
    expect(res.status).toBe(200);
    const body = (await res.json()) as { causes: Array<{ state: string; reason: string; stops: number; unplannedMs: number }> };
    expect(body.causes).toEqual([
      { state: 'FAULT', reason: 'motor over temperature (# °C)', stops: 2, unplannedMs: 18 * MIN },
      { state: 'STARVED', reason: 'upstream buffer empty', stops: 1, unplannedMs: 5 * MIN },
    ]);
    const bad = await fetch(`${dashboard.url}/api/downtime?from=yesterday`);
    expect(bad.status).toBe(400);
    expect(((await bad.json()) as { error: string }).error).toMatch(/from must be "now", a relative time/);
  });

  it('draws the Pareto and each hour\'s OEE on the page', async () => {
    const page = await browser.newPage();
    try {
      const errors: string[] = [];
      page.on('pageerror', (err) => errors.push(err.message));
      await page.goto(`${dashboard.url}/?line=P`);
      await page.waitForFunction(() => document.querySelectorAll('#pareto .pareto-row').length > 0, undefined, { timeout: 20_000 }).catch(async (err: Error) => {
        throw new Error(`${err.message}; status: ${await page.textContent('#history-status')}; pareto: ${await page.textContent('#pareto')}; page errors: ${errors.join('; ')}`);
      });
      const rows = await page.$$eval('#pareto .pareto-row', (els) => els.map((el) => el.textContent ?? ''));
      expect(rows).toHaveLength(2);
      expect(rows[0]).toMatch(/^fault: motor over temperature \(# °C\)18\.0 min · 2× · 78 %$/);
      expect(rows[1]).toMatch(/^starved: upstream buffer empty5\.0 min · 1× · 100 %$/);
      await page.waitForFunction(() => Number(document.getElementById('chart-oee')?.dataset.points ?? '0') > 0, undefined, { timeout: 20_000 });
    } finally {
      await page.close();
    }
  });
});
