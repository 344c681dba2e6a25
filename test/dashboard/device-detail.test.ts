// The device detail view in headless Chromium, on a real broker, influxd and historian: a device
// publishes (with a real MQTT client) a sequence with a gap, a duplicate and a late timestamp;
// GET /api/device answers its live view, the historian's totals and the stored data_quality rows
// added up — equal — with its recent states and readings; clicking its tile shows the same
// numbers; a bad parameter is refused naming it, an unknown device is a 404.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { MqttClient } from 'mqtt';
import type { BrowserContext } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { QUALITY_FIELDS, type QualityCounts } from '../../contracts/period-rows.js';
import { DashboardServer } from '../../dashboard/server/index.js';
import { historianConfigSchema } from '../../historian/config.js';
import { Historian } from '../../historian/index.js';
import { waitFor } from '../../lib/wait.js';
import { launchChromium } from '../harness/chromium.js';
import { connectedClient } from '../harness/mqtt-client.js';
import { startHistorianRig, type HistorianRig } from '../historian/rig.js';

const DATABASE = 'detail';
let rig: HistorianRig;
let historian: Historian;
let dashboard: DashboardServer;
let browser: BrowserContext;
let profile: string;
const clients: MqttClient[] = [];

/** What st-7 sends: 0..4, 7 (5 and 6 skipped), 7 again, 5 late (a reorder, its ts 10 s behind the newest), 8. */
const EXPECTED: QualityCounts = { messages: 9, gaps: 1, skipped: 2, duplicates: 1, reorders: 1, resets: 0, stale: 0, late_ts: 1, future_ts: 0 };

beforeAll(async () => {
  profile = mkdtempSync(join(tmpdir(), 'lw-detail-chromium-'));
  rig = await startHistorianRig('lw-detail-');
  const config = historianConfigSchema.parse({ influxUrl: rig.influx.url, database: DATABASE, spoolDir: join(rig.dir, 'spool'), flushIntervalMs: 50, quality: { intervalMs: 1000, lateAfterMs: 5000 } });
  historian = new Historian({ bus: rig.broker.broker.bus, config, dataDir: rig.dir });
  await historian.start();
  dashboard = new DashboardServer({
    bus: rig.broker.broker.bus,
    config: { host: '127.0.0.1', port: 0, token: null },
    influx: { url: rig.influx.url, database: DATABASE, periodRetentionPolicy: config.periodRetentionPolicy },
    deviceQuality: (line, device) => historian.deviceQuality(line, device)?.totals,
  });
  await dashboard.start();
  const device = await connectedClient(clients, rig.broker.url, { username: 'gw', password: 'gw-password-1', clientId: 'gw' });
  const t0 = Date.now() - 60_000;
  const send = (kind: 'telemetry' | 'state', body: object): Promise<unknown> => device.publishAsync(`lw/L/st-7/${kind}`, JSON.stringify(body), { qos: 1 });
  await send('state', { ts: t0, seq: 0, state: 'RUNNING', type: 'station' });
  for (const seq of [1, 2, 3, 4, 7, 7]) await send('telemetry', { ts: t0 + seq * 1000, seq, values: { goodCount: seq }, type: 'station' });
  await send('state', { ts: t0 + 7000 - 10_000, state: 'FAULT', reason: 'jam', type: 'station', seq: 5 });
  await send('telemetry', { ts: t0 + 8000, seq: 8, values: { goodCount: 8 }, type: 'station' });
  // st-8's clock runs 10 minutes ahead (a simulation at --speedup): its latest reading is still in the default range.
  const ahead = await connectedClient(clients, rig.broker.url, { username: 'gw', password: 'gw-password-1', clientId: 'gw:ahead' });
  await ahead.publishAsync('lw/L/st-8/telemetry', JSON.stringify({ ts: Date.now() + 600_000, seq: 0, values: { goodCount: 3 }, type: 'station' }), { qos: 1 });
  await waitFor(() => historian.counters().received >= 10, 10_000, 'the 10 messages of st-7 and st-8 at the historian');
  // Its counts reach InfluxDB with the next interval's data_quality point.
  await waitFor(() => historian.counters().data_quality_points >= 1, 10_000, 'a data_quality point');
  await historian.flush();
  browser = await launchChromium(profile, { width: 1280, height: 1400 });
}, 60_000);

afterAll(async () => {
  await browser?.close();
  await Promise.all(clients.map((client) => client.endAsync()));
  await dashboard?.stop();
  await historian?.stop();
  await rig?.stop();
  if (profile) rmSync(profile, { recursive: true, force: true });
});

describe('device detail', () => {
  it('answers GET /api/device with the live view, the historian\'s totals and the stored rows, which agree', async () => {
    const res = await fetch(`${dashboard.url}/api/device?line=L&device=st-7`);
    expect(res.status).toBe(200);
    const body = (await res.json()) as {
      view: { state: string; values: Record<string, number> };
      live: QualityCounts;
      history: { quality: QualityCounts; intervals: unknown[]; states: Array<{ state: string; reason: string | null }>; telemetry: Array<{ values: Record<string, number> }> };
    };
    expect(body.live).toEqual(EXPECTED);
    expect(body.history.quality).toEqual(EXPECTED);
    expect(body.history.intervals.length).toBeGreaterThanOrEqual(1);
    expect(body.view.values.goodCount).toBe(8);
    // Newest first: the late FAULT is stored at its own (older) time, so RUNNING is the newest stored state.
    expect(body.history.states.map((s) => s.state)).toEqual(['RUNNING', 'FAULT']);
    expect(body.history.telemetry[0]?.values.goodCount).toBe(8);

    const bad = await fetch(`${dashboard.url}/api/device?line=L&device=st%207`);
    expect(bad.status).toBe(400);
    expect(((await bad.json()) as { error: string }).error).toMatch(/device.*must be a device id/);
    const unknown = await fetch(`${dashboard.url}/api/device?line=L&device=st-99`);
    expect(unknown.status).toBe(404);

    const ahead = (await (await fetch(`${dashboard.url}/api/device?line=L&device=st-8`)).json()) as typeof body;
    expect(ahead.history.telemetry.map((row) => row.values.goodCount)).toEqual([3]);
    expect(ahead.live).toMatchObject({ messages: 1, future_ts: 1 });
  });

  it('shows a device\'s data quality and recent states when its tile is clicked', async () => {
    const page = await browser.newPage();
    try {
      const errors: string[] = [];
      page.on('pageerror', (err) => errors.push(err.message));
      await page.goto(`${dashboard.url}/?line=L`);
      await page.click('#stations .tile[data-device="st-7"]', { timeout: 20_000 });
      await page.waitForFunction(() => document.querySelectorAll('#detail-quality tr').length > 0 && !document.getElementById('device-detail')?.hidden, undefined, { timeout: 20_000 }).catch(async (err: Error) => {
        throw new Error(`${err.message}; status: ${await page.textContent('#detail-status')}; page errors: ${errors.join('; ')}`);
      });
      const shown = await page.$$eval('#detail-quality tr', (rows) => rows.map((row) => [(row as HTMLElement).dataset.field, row.querySelector('.stored')?.textContent, row.querySelector('.live')?.textContent]));
      expect(Object.fromEntries(shown.map(([field, stored, live]) => [field, [stored, live]]))).toEqual(Object.fromEntries(QUALITY_FIELDS.map((field) => [field, [String(EXPECTED[field]), String(EXPECTED[field])]])));
      expect(await page.textContent('#detail-name')).toBe('L/st-7');
      const states = await page.$$eval('#detail-states li', (items) => items.map((li) => li.textContent ?? ''));
      expect(states).toHaveLength(2);
      expect(states[0]).toMatch(/ running$/);
      expect(states[1]).toMatch(/ fault — jam$/);
      expect(errors).toEqual([]);
    } finally {
      await page.close();
    }
  });
});
