// End to end from the built CLI: `node bin/linewatch.js up` as a child process (temp data dir,
// free ports, simulation sped up), shared by every check in this file. Within bounded waits the
// dashboard answers, the simulated overheat leads to a rule's command that the conveyor acks,
// points are in InfluxDB, the page works in headless Chromium (stations, a chart with data,
// acknowledging an alert, a screenshot), and SIGINT leaves no process behind.
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { BrowserContext } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { processAlive } from '../../lib/process-alive.js';
import { waitFor, withTimeout } from '../../lib/wait.js';
import { launchChromium } from '../harness/chromium.js';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
// The README's screenshot is refreshed only on request (LINEWATCH_UPDATE_SCREENSHOT=1), so a test
// run does not dirty the work tree; otherwise it goes to test/artifacts/ (git-ignored).
const SCREENSHOT = process.env.LINEWATCH_UPDATE_SCREENSHOT === '1' ? join(ROOT, 'docs/dashboard.png') : join(ROOT, 'test/artifacts/dashboard.png');

let dir: string;
let child: ChildProcess;
let output = '';
let exited: Promise<number | null>;
let dashboardUrl: string;
let influxUrl: string | undefined;
let influxPid: number | undefined;
let socatPid: number | undefined;


/** Command lines of running processes that mention `text` (Linux /proc). */
function processesMentioning(text: string): string[] {
  const found: string[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry) || Number(entry) === process.pid) continue;
    let cmd: string;
    try {
      cmd = readFileSync(`/proc/${entry}/cmdline`, 'utf8').replaceAll('\0', ' ');
    } catch {
      continue; // exited while we looked
    }
    if (cmd.includes(text)) found.push(`${entry}: ${cmd}`);
  }
  return found;
}

async function getJson<T>(path: string): Promise<T> {
  const res = await fetch(`${dashboardUrl}${path}`);
  if (!res.ok) throw new Error(`${path}: HTTP ${res.status} ${await res.text()}`);
  return (await res.json()) as T;
}

async function influxQuery(q: string): Promise<Array<{ values?: unknown[][] }>> {
  const res = await fetch(`${influxUrl}/query?db=linewatch&q=${encodeURIComponent(q)}`);
  const body = (await res.json()) as { results: Array<{ series?: Array<{ values?: unknown[][] }> }> };
  return body.results[0]?.series ?? [];
}

beforeAll(async () => {
  if (!existsSync(join(ROOT, 'dist/cli/main.js'))) throw new Error('build first: npx tsc -p tsconfig.json');
  dir = mkdtempSync(join(tmpdir(), 'linewatch-e2e-'));
  // OEE summaries every 2 s instead of 10 s, so the header's figures are there for the screenshot.
  const config = join(dir, 'linewatch.yaml');
  writeFileSync(config, 'oee:\n  publishIntervalMs: 2000\n');
  child = spawn(
    process.execPath,
    ['bin/linewatch.js', 'up', '--config', config, '--data-dir', join(dir, 'data'), '--broker-port', '0', '--no-ws-port', '--dashboard-port', '0', '--speedup', '10'],
    { cwd: ROOT, env: { ...process.env, LINEWATCH_LOG_LEVEL: 'warn' }, stdio: ['ignore', 'pipe', 'pipe'] },
  );
  child.stdout!.on('data', (d: Buffer) => (output += d.toString()));
  child.stderr!.on('data', (d: Buffer) => (output += d.toString()));
  exited = new Promise((r) => child.once('exit', (code) => r(code)));
  await waitFor(() => output.includes('linewatch is up') || child.exitCode !== null, 60_000, '`linewatch up` to start').catch((err: Error) => {
    throw new Error(`${err.message}\n--- output ---\n${output}`);
  });
  if (child.exitCode !== null) throw new Error(`linewatch up exited with ${child.exitCode}:\n${output}`);
  dashboardUrl = /dashboard: (http:\/\/[^\s/]+)/.exec(output)![1]!;
  const influx = /managed influxd at (http:\/\/\S+) \(pid (\d+)/.exec(output);
  influxUrl = influx?.[1];
  influxPid = influx ? Number(influx[2]) : undefined;
  const socat = /socat pid (\d+)/.exec(output);
  socatPid = socat ? Number(socat[1]) : undefined;
}, 90_000);

afterAll(async () => {
  if (child && child.exitCode === null) {
    child.kill('SIGKILL');
    await withTimeout(exited, 10_000, 'linewatch up to exit after SIGKILL').catch(() => undefined);
  }
  // Should SIGINT have failed, do not leave its children running either.
  for (const pid of [influxPid, socatPid]) if (pid && processAlive(pid)) process.kill(pid, 'SIGKILL');
  if (dir) rmSync(dir, { recursive: true, force: true });
});

describe('linewatch up', () => {
  it('starts the managed influxd and the serial device through socat', () => {
    expect(influxPid, output).toBeGreaterThan(0);
    expect(processAlive(influxPid!)).toBe(true);
    expect(socatPid, output).toBeGreaterThan(0);
    expect(processAlive(socatPid!)).toBe(true);
  });

  it('serves the dashboard with every device of the demo line', async () => {
    expect((await fetch(`${dashboardUrl}/healthz`)).status).toBe(200);
    const state = await waitFor(
      async () => {
        const s = await getJson<{ stations: Array<{ device: string; state: string | null }>; devices: Array<{ device: string; online: boolean | null }> }>('/api/state');
        return s.stations.filter((st) => st.state !== null).length === 5 ? s : undefined;
      },
      30_000,
      'five stations with a state in /api/state',
      250,
    );
    expect(state.stations.map((s) => s.device).sort()).toEqual(['st-1', 'st-2', 'st-3', 'st-4', 'st-5']);
    const names = state.devices.map((d) => d.device);
    for (const d of ['line-ctl', 'conv-1', 'conv-2', 'conv-3']) expect(names).toContain(d);
  }, 60_000);

  it('turns the simulated overheat into a rule command that the device acks', async () => {
    // rules/examples: conveyor-overheat slows the line (a set_speed to the line controller,
    // which drives the conveyors) when a conveyor motor stays above 80 °C.
    const command = await waitFor(
      async () => {
        const { commands } = await getJson<{ commands: Array<{ id: string; device: string; origin: string; action: string; ack: string | null }> }>('/api/commands');
        return commands.find((c) => c.origin === 'rule:conveyor-overheat' && c.ack === 'done');
      },
      60_000,
      'the overheat rule command, acked done',
      250,
    );
    expect(command).toMatchObject({ action: 'set_speed', device: 'line-ctl' });
    const { alerts } = await getJson<{ alerts: Array<{ rule: string; device?: string }> }>('/api/alerts');
    expect(alerts.some((a) => a.rule === 'conveyor-overheat' && a.device === 'conv-2')).toBe(true);
  }, 90_000);

  it('stores events and commands in InfluxDB', async () => {
    expect(influxUrl).toBeDefined();
    await waitFor(async () => (await influxQuery('SELECT count("motorTemp") FROM "telemetry" WHERE "device" = \'conv-2\'')).length > 0, 30_000, 'telemetry points in InfluxDB', 500);
    await waitFor(async () => (await influxQuery('SELECT count("id") FROM "commands"')).length > 0, 30_000, 'command points in InfluxDB', 500);
    const [telemetry] = await influxQuery('SELECT count("motorTemp") FROM "telemetry"');
    expect(Number(telemetry!.values![0]![1])).toBeGreaterThan(0);
  }, 90_000);

  it('exposes the broker, rules, historian and gateway counters on /metrics', async () => {
    const text = await (await fetch(`${dashboardUrl}/metrics`)).text();
    for (const service of ['broker', 'rules', 'historian', 'gateway', 'dashboard']) expect(text, service).toContain(`service="${service}"`);
  });

  it('works in headless Chromium: stations, a chart with data, acknowledging an alert, a screenshot', async () => {
    const profile = mkdtempSync(join(dir, 'chromium-'));
    let context: BrowserContext | undefined;
    try {
      context = await launchChromium(profile, { width: 1400, height: 1100 });
      const page = await context.newPage();
      await page.goto(dashboardUrl, { timeout: 30_000 });
      await page.waitForFunction(() => document.querySelectorAll('#stations .tile').length === 5, undefined, { timeout: 30_000 });
      const stations = await page.$$eval('#stations .tile', (tiles) => tiles.map((t) => (t as HTMLElement).dataset.device).sort());
      expect(stations).toEqual(['st-1', 'st-2', 'st-3', 'st-4', 'st-5']);

      // A chart with data: refresh until the historian's points show (bounded).
      await waitFor(
        async () => {
          await page.click('#refresh');
          await page.waitForTimeout(500);
          return Number(await page.getAttribute('#chart-temperature', 'data-points')) > 0;
        },
        30_000,
        'the temperature chart to have data',
        500,
      );
      expect(await page.locator('#chart-temperature canvas').count()).toBeGreaterThan(0);

      // Acknowledge the overheat alarm (it stays active while the motor cools, unlike the jam's): the
      // request goes to the rules engine, whose new state comes back on the alarm's retained topic.
      const alert = page.locator('#alerts li[data-alert^="conveyor-overheat:"][data-state="active-unacked"]');
      await alert.waitFor({ timeout: 60_000 });
      const id = await alert.getAttribute('data-alert');
      await alert.locator('button.ack-button').click();
      await page.locator(`#alerts li[data-alert="${id}"][data-state="active-acked"]`).waitFor({ timeout: 10_000 });
      const { alerts } = await getJson<{ alerts: Array<{ id: string; state: string; operator?: string }> }>('/api/alerts');
      expect(alerts.find((a) => a.id === id)).toMatchObject({ state: 'active-acked', operator: 'user:dashboard' });
      // The transition is in the page's alarm history.
      await page.locator(`#transitions li[data-transition^="${id}#"]`, { hasText: 'ack' }).first().waitFor({ timeout: 10_000 });

      // The line's figures from the OEE service's summary reach the header too.
      await page.waitForFunction(() => /%$/.test(document.getElementById('line-oee')?.textContent ?? ''), undefined, { timeout: 30_000 });
      mkdirSync(dirname(SCREENSHOT), { recursive: true });
      rmSync(SCREENSHOT, { force: true });
      await page.screenshot({ path: SCREENSHOT, fullPage: true });
      expect(existsSync(SCREENSHOT)).toBe(true);

      // Shelve it (if it is still active): it leaves the active list, counted as shelved.
      const acked = page.locator(`#alerts li[data-alert="${id}"]`);
      if ((await acked.count()) > 0) {
        await acked.locator('button.shelve-button').click();
        await page.locator(`#alerts li[data-alert="${id}"]`).waitFor({ state: 'detached', timeout: 10_000 });
        expect(await page.textContent('#shelved-count')).toBe('1 shelved');
        const { alerts: after } = await getJson<{ alerts: Array<{ id: string }> }>('/api/alerts');
        expect(after.map((a) => a.id)).not.toContain(id);
      }
    } finally {
      await context?.close();
    }
  }, 180_000);

  it('stops everything on SIGINT and leaves no child process behind', async () => {
    child.kill('SIGINT');
    const code = await withTimeout(exited, 30_000, 'linewatch up to exit after SIGINT');
    expect(code, output).toBe(0);
    await waitFor(() => !processAlive(influxPid!), 10_000, `influxd (pid ${influxPid}) to be gone`);
    await waitFor(() => !processAlive(socatPid!), 10_000, `socat (pid ${socatPid}) to be gone`);
    // Nor any other process working in the data dir.
    expect(processesMentioning(dir)).toEqual([]);
  }, 60_000);
});
