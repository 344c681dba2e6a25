// End to end, shadow mode: the built CLI's `linewatch up --shadow DIR` as a child process (temp
// data dir, free ports, the simulated line sped up, the historian on the harness's real influxd),
// with a live and a shadow rule set that differ in one threshold. Within bounded waits: the live
// command reaches the line controller's device connection (subscribed with its own device
// account) and the shadow's never does; the shadow's commands and alarms are stored in
// shadow_commands / shadow_alarms; the live line does only what the live rules say; `linewatch
// rules diff` over the range reports exactly the shadow's extra command and alarm; /api/shadow
// shows the command.
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import mqtt from 'mqtt';
import type { BrowserContext } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { CommandPayload } from '../../contracts/schemas.js';
import { sleep, waitFor, withTimeout } from '../../lib/wait.js';
import type { ShadowReport } from '../../dashboard/server/shadow-view.js';
import type { ShadowDiffResult } from '../../workbench/shadow-diff.js';
import { launchChromium } from '../harness/chromium.js';
import { startTestInflux, type TestInflux } from '../harness/influx.js';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
const run = promisify(execFile);

/** The two sets: the same overheat rule; the energy rule's threshold 1000 °C live (never), 70 °C in the shadow. */
const rules = (energyThreshold: number): string => `rules:
  - id: overheat-slowdown
    match: { line: A, device: "conv-*", kind: telemetry }
    when: values.motorTemp > 80
    actions:
      - command: { target: line-ctl, action: set_speed, params: { speed: 20 } }
      - alert: { severity: warning, message: "{device} hot" }
  - id: hot-saves-energy
    match: { line: A, device: "conv-*", kind: telemetry }
    when: values.motorTemp > ${energyThreshold}
    actions:
      - command: { target: line-ctl, action: set_strategy, params: { strategy: energy-saving } }
      - alert: { severity: info, message: "{device} warm" }
`;

let dir: string;
let influx: TestInflux;
let child: ChildProcess;
let exited: Promise<number | null>;
let output = '';
let device: mqtt.MqttClient | undefined;
let from: number;
/** Every command the line controller's device connection received. */
const atDevice: CommandPayload[] = [];

async function influxRows(q: string): Promise<Record<string, unknown>[]> {
  const [result] = await influx.query(q, 'linewatch');
  return (result?.series ?? []).flatMap((s) => s.values.map((row) => Object.fromEntries(s.columns.map((c, i) => [c, row[i]]))));
}

beforeAll(async () => {
  if (!existsSync(join(ROOT, 'dist/cli/main.js'))) throw new Error('build first: npx tsc -p tsconfig.json');
  dir = mkdtempSync(join(tmpdir(), 'linewatch-shadow-e2e-'));
  influx = await startTestInflux();
  for (const [name, threshold] of [['live', 1000], ['shadow', 70]] as const) {
    mkdirSync(join(dir, name));
    writeFileSync(join(dir, name, 'rules.yaml'), rules(threshold));
  }
  writeFileSync(join(dir, 'scenario.yaml'), `name: overheat\nlayout: { conveyors: 3, stations: 5, sensors: 2, bufferCapacity: 4 }\nspeed: 40\nstrategy: max-throughput\nevents:\n  - at: 20s\n    overheat: { device: conv-2, heat: 70, duration: 10m }\n`);
  writeFileSync(join(dir, 'linewatch.yaml'), `rules:\n  dir: ${join(dir, 'live')}\nsimulate:\n  scenario: ${join(dir, 'scenario.yaml')}\nhistorian:\n  flushIntervalMs: 200\n`);
  from = Date.now();
  child = spawn(
    process.execPath,
    ['bin/linewatch.js', 'up', '--config', join(dir, 'linewatch.yaml'), '--data-dir', join(dir, 'data'), '--shadow', join(dir, 'shadow'), '--influx', influx.url, '--no-serial', '--no-status', '--broker-port', '0', '--no-ws-port', '--dashboard-port', '0', '--speedup', '10'],
    { cwd: ROOT, env: { ...process.env, LINEWATCH_LOG_LEVEL: 'warn' }, stdio: ['ignore', 'pipe', 'pipe'] },
  );
  child.stdout!.on('data', (d: Buffer) => (output += d.toString()));
  child.stderr!.on('data', (d: Buffer) => (output += d.toString()));
  exited = new Promise((r) => child.once('exit', (code) => r(code)));
  await waitFor(() => output.includes('linewatch is up') || child.exitCode !== null, 90_000, '`linewatch up --shadow` to start').catch((err: Error) => {
    throw new Error(`${err.message}\n--- output ---\n${output}`);
  });
  if (child.exitCode !== null) throw new Error(`linewatch up exited with ${child.exitCode}:\n${output}`);
  // The line controller's own account (the simulator's, from the data dir): its command topic, a second connection.
  const passwords = JSON.parse(readFileSync(join(dir, 'data', 'sim-credentials.json'), 'utf8')) as Record<string, string>;
  const brokerUrl = /broker: (mqtt:\/\/[^\s]+)/.exec(output)![1]!;
  device = await mqtt.connectAsync(brokerUrl, { username: 'A/line-ctl', password: passwords['A/line-ctl'], clientId: 'A/line-ctl:shadow-test', reconnectPeriod: 0 });
  device.on('message', (_topic, payload) => atDevice.push(JSON.parse(payload.toString()) as CommandPayload));
  await device.subscribeAsync('lw/A/line-ctl/cmd', { qos: 1 });
}, 120_000);

afterAll(async () => {
  await device?.endAsync(true);
  if (child && child.exitCode === null) {
    child.kill('SIGINT');
    await withTimeout(exited, 30_000, 'linewatch up to exit after SIGINT').catch(() => child.kill('SIGKILL'));
  }
  await influx?.stop();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

describe('linewatch up --shadow', () => {
  it('says the shadow set runs beside the rules', () => {
    expect(output).toContain(`rules: shadow set, 2 rules from ${join(dir, 'shadow')}`);
  });

  it('the live command reaches the device connection, the shadow one never does; the shadow output is stored in its own measurements', async () => {
    // The shadow's set_strategy (at 70 °C) and both sets' set_speed (at 80 °C), stored.
    await waitFor(async () => (await influxRows(`SELECT * FROM shadow_commands WHERE event = 'issued'`)).length >= 2, 120_000, 'both shadow commands in shadow_commands').catch((err: Error) => {
      throw new Error(`${err.message}\n--- output ---\n${output}`);
    });
    await waitFor(() => atDevice.length > 0, 30_000, 'the live set_speed at the line controller’s connection');
    const shadowCommands = await influxRows(`SELECT * FROM shadow_commands WHERE event = 'issued'`);
    expect(shadowCommands.map((c) => [c.action, c.params, c.device]).sort()).toEqual([['set_speed', '{"speed":20}', 'line-ctl'], ['set_strategy', '{"strategy":"energy-saving"}', 'line-ctl']]);
    const shadowOutcomes = await influxRows(`SELECT * FROM shadow_commands WHERE event = 'outcome'`);
    expect(shadowOutcomes.map((o) => o.outcome)).toEqual(['shadow', 'shadow']);
    await waitFor(async () => (await influxRows(`SELECT * FROM shadow_alarms WHERE transition = 'raise'`)).length >= 2, 30_000, 'both shadow alarms raised in shadow_alarms');
    await sleep(1000); // bounded: anything else on its way to the device arrives
    // The device got the live command only: no set_strategy, no id of a shadow command.
    const shadowIds = new Set(shadowCommands.map((c) => c.id));
    expect(atDevice.map((c) => [c.action, c.params, c.origin])).toEqual([['set_speed', { speed: 20 }, 'rule:overheat-slowdown']]);
    expect(atDevice.filter((c) => shadowIds.has(c.id))).toEqual([]);
    // The live line does what the live rules say and nothing else: one command, done; the strategy unchanged.
    const live = await influxRows(`SELECT * FROM commands WHERE event = 'issued'`);
    expect(live.map((c) => [c.action, c.params])).toEqual([['set_speed', '{"speed":20}']]);
    await waitFor(async () => (await influxRows(`SELECT * FROM commands WHERE event = 'outcome' AND outcome = 'done'`)).length === 1, 30_000, 'the live command done');
    const states = await influxRows(`SELECT last(strategy) FROM state WHERE device = 'line-ctl'`);
    expect(states[0]?.last).toBe('max-throughput');
    const liveAlarms = await influxRows(`SELECT * FROM alarms`);
    expect([...new Set(liveAlarms.map((a) => a.rule))]).toEqual(['overheat-slowdown']); // raised (and returned, once the motor cooled at 20 m/min)
  }, 200_000);

  it('`rules diff` over that range reports the shadow’s extra command and alarm transitions, nothing else', async () => {
    // The run's commands and alarms are stored in the simulated line's time, ×10 ahead of the host's
    // (docs/rules.md#which-time): the range ends at the history's now (`--to now`), not the host's.
    const { stdout } = await run(process.execPath, ['bin/linewatch.js', 'rules', 'diff', '--influx', influx.url, '--from', String(from), '--to', 'now', '--line', 'A', '--json'], { cwd: ROOT, env: { ...process.env, LINEWATCH_LOG_LEVEL: 'warn' } });
    const result = JSON.parse(stdout) as ShadowDiffResult;
    expect(result.diff.missing).toEqual([]);
    expect(result.diff.changed).toEqual([]);
    // Only what the energy rule did in the shadow: its command and its alarm's raise (and its return, if the motor cooled below 70 °C by now).
    const added = result.diff.added.map((item) => (item.kind === 'command' ? `${item.target} ${item.action} ${JSON.stringify(item.params)}` : `${item.id} ${item.state}`));
    expect(added).toContain('line-ctl set_strategy {"strategy":"energy-saving"}');
    expect(added).toContain('hot-saves-energy:A/conv-2 raise');
    expect(added.filter((item) => !item.startsWith('hot-saves-energy:A/conv-2 ') && !item.startsWith('line-ctl set_strategy'))).toEqual([]);
    expect(added.filter((item) => item.startsWith('line-ctl'))).toHaveLength(1);
    // The same in both: the set_speed and the overheat alarm's transitions.
    expect(result.diff.same).toBeGreaterThanOrEqual(2);
    expect(result.live.commands).toBe(1);
    const text = await run(process.execPath, ['bin/linewatch.js', 'rules', 'diff', '--influx', influx.url, '--from', new Date(from).toISOString(), '--to', new Date(result.to).toISOString()], { cwd: ROOT, env: { ...process.env, LINEWATCH_LOG_LEVEL: 'warn' } });
    expect(text.stdout).toMatch(/^\+ \S+Z {2}command line-ctl set_strategy \{"strategy":"energy-saving"\}.*\(shadow only\)$/m);
    expect(text.stdout).toMatch(/^# [23] only in the shadow, 0 only live, 0 changed, \d+ the same$/m);
  }, 60_000);

  it('`rules diff` takes the time forms of rules backtest: --from -1h (to now, its default) is the last hour; a form it does not know is refused naming them', async () => {
    const { stdout } = await run(process.execPath, ['bin/linewatch.js', 'rules', 'diff', '--influx', influx.url, '--from', '-1h', '--line', 'A', '--json'], { cwd: ROOT, env: { ...process.env, LINEWATCH_LOG_LEVEL: 'warn' } });
    const result = JSON.parse(stdout) as ShadowDiffResult;
    expect(result.to - result.from).toBe(3_600_000);
    expect(result.from).toBeLessThan(from);
    expect(result.diff.added.some((item) => item.kind === 'command' && item.target === 'line-ctl' && item.action === 'set_strategy')).toBe(true);
    const bad = await run(process.execPath, ['bin/linewatch.js', 'rules', 'diff', '--influx', influx.url, '--from', 'yesterday'], { cwd: ROOT, env: { ...process.env, LINEWATCH_LOG_LEVEL: 'warn' } }).then(
      () => undefined,
      (err: { code?: number; stderr?: string }) => err,
    );
    expect(bad?.code).toBe(1);
    expect(bad?.stderr).toContain('linewatch: --from yesterday: expected "now", a relative time like "-6h"');
  }, 60_000);

  it('/api/shadow lists the shadow’s command with no live counterpart', async () => {
    const url = /dashboard: (http:\/\/[^\s/]+)/.exec(output)![1]!;
    const report = await waitFor(async () => {
      const body = (await (await fetch(`${url}/api/shadow`)).json()) as ShadowReport;
      return body.differences.length > 0 ? body : undefined;
    }, 30_000, 'a difference in /api/shadow');
    expect(report.active).toBe(true);
    expect(report.differences.map((d) => [d.side, d.device, d.action, d.params])).toEqual([['shadow-only', 'line-ctl', 'set_strategy', { strategy: 'energy-saving' }]]);
  }, 60_000);

  it('the page shows the Shadow vs live panel with that command (headless Chromium)', async () => {
    const url = /dashboard: (http:\/\/[^\s/]+)/.exec(output)![1]!;
    const profile = mkdtempSync(join(dir, 'chromium-'));
    let context: BrowserContext | undefined;
    try {
      context = await launchChromium(profile);
      const page = await context.newPage();
      await page.goto(url, { timeout: 30_000 });
      await page.waitForSelector('#shadow:not([hidden]) tr[data-shadow="shadow-only"]', { timeout: 30_000 });
      const rows = await page.$$eval('#shadow-differences tr[data-shadow]', (trs) => trs.map((tr) => Array.from(tr.querySelectorAll('td'), (td) => td.textContent)));
      expect(rows.map((cells) => [cells[1], cells[2], cells[4]])).toEqual([['line-ctl', 'set_strategy strategy=energy-saving', 'shadow']]);
    } finally {
      await context?.close();
    }
  }, 90_000);
});
