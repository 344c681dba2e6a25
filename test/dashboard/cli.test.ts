// `linewatch dashboard` as its own process against a broker: it shows what devices publish, and
// stops cleanly on SIGTERM. Runs the built CLI (dist/), as `npm test` builds before testing.
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { resolve } from 'node:path';
import mqtt from 'mqtt';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { waitFor, withTimeout } from '../../lib/wait.js';
import { startTestBroker, type TestBroker } from '../harness/broker.js';

const CLI = resolve('dist/cli/main.js');

let tb: TestBroker;
const children = new Set<ChildProcess>();

beforeAll(async () => {
  if (!existsSync(CLI)) throw new Error(`${CLI} is missing: run \`npm run build\` before this test`);
  tb = await startTestBroker({ wsPort: null });
  await tb.addAccount('dash', 'dash-password', 'dashboard');
  await tb.addAccount('A/st-1', 'st-1-password', 'device');
});
afterAll(async () => {
  for (const child of children) child.kill('SIGKILL');
  await tb?.stop();
});

/** Starts `linewatch dashboard`; resolves with the process, its URL, and what it printed so far. */
async function startDashboard(args: string[]): Promise<{ child: ChildProcess; url: string; output: () => string }> {
  const child = spawn(process.execPath, [CLI, 'dashboard', ...args], { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, LINEWATCH_LOG_LEVEL: 'error' } });
  children.add(child);
  child.once('exit', () => children.delete(child));
  let output = '';
  child.stderr!.on('data', (d: Buffer) => (output += d.toString()));
  const url = await withTimeout(
    new Promise<string>((ok, fail) => {
      child.stdout!.on('data', (d: Buffer) => {
        output += d.toString();
        const m = /linewatch dashboard: (http:\/\/\S+?)\/ /.exec(output);
        if (m) ok(m[1]!);
      });
      child.once('exit', (code) => fail(new Error(`linewatch dashboard exited with ${code}: ${output}`)));
    }),
    20_000,
    'linewatch dashboard to start',
  );
  return { child, url, output: () => output };
}

describe('linewatch dashboard', () => {
  it('shows what a device publishes through the broker, and exits 0 on SIGTERM', async () => {
    const { child, url } = await startDashboard(['--broker', tb.url, '--username', 'dash', '--password', 'dash-password', '--port', '0']);
    const device = await mqtt.connectAsync(tb.url, { username: 'A/st-1', password: 'st-1-password', clientId: 'A/st-1' });
    try {
      await device.publishAsync('lw/A/st-1/state', JSON.stringify({ ts: Date.now(), seq: 1, state: 'BLOCKED', type: 'station' }), { qos: 1 });
      const station = await waitFor(
        async () => {
          const state = (await (await fetch(`${url}/api/state`)).json()) as { devices: Array<{ key: string; state: string }> };
          return state.devices.find((d) => d.key === 'A/st-1');
        },
        10_000,
        'st-1 in /api/state',
        100,
      );
      expect(station.state).toBe('BLOCKED');
      const history = await fetch(`${url}/api/history?measurement=telemetry&field=speed`);
      expect(history.status).toBe(503); // no --influx: says so instead of failing obscurely
    } finally {
      await device.endAsync();
    }
    const exited = new Promise<number | null>((r) => child.once('exit', (code) => r(code)));
    child.kill('SIGTERM');
    expect(await withTimeout(exited, 10_000, 'the dashboard to exit')).toBe(0);
  });

  it('says when the broker refuses its credentials', async () => {
    const child = spawn(process.execPath, [CLI, 'dashboard', '--broker', tb.url, '--username', 'dash', '--password', 'wrong', '--port', '0'], { stdio: ['ignore', 'pipe', 'pipe'] });
    children.add(child);
    let stderr = '';
    child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
    const code = await withTimeout(new Promise<number | null>((r) => child.once('exit', (c) => r(c))), 15_000, 'the dashboard to give up');
    expect(code).toBe(1);
    expect(stderr).toMatch(/linewatch: cannot connect to the MQTT broker at .*(Bad username or password|Not authorized)/);
  });
});
