// An alarm raised before a restart of `linewatch up` is active after it: the built CLI as a child
// process (temp data dir, free ports, no simulated line, no historian), a rule folder whose absence
// rule raises an alarm for a device that never speaks, SIGINT, and `up` again on the same data dir.
// The dashboard of the second run shows the same alarm (same raisedAt and rev: restored and
// republished by the engine, not raised again).
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { waitFor, withTimeout } from '../../lib/wait.js';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
const ALARM_ID = 'ghost-silent:A/ghost';

let dir: string;
const running: { child: ChildProcess; exited: Promise<number | null> }[] = [];

interface Up {
  url: string;
  output: () => string;
  /** SIGINT, then the exit code. */
  stop: () => Promise<number | null>;
}

async function up(): Promise<Up> {
  const child = spawn(
    process.execPath,
    ['bin/linewatch.js', 'up', '--config', join(dir, 'linewatch.yaml'), '--data-dir', join(dir, 'data'), '--no-simulate', '--no-serial', '--no-historian', '--no-status', '--broker-port', '0', '--no-ws-port', '--dashboard-port', '0'],
    { cwd: ROOT, env: { ...process.env, LINEWATCH_LOG_LEVEL: 'warn' }, stdio: ['ignore', 'pipe', 'pipe'] },
  );
  let output = '';
  child.stdout!.on('data', (d: Buffer) => (output += d.toString()));
  child.stderr!.on('data', (d: Buffer) => (output += d.toString()));
  const exited = new Promise<number | null>((r) => child.once('exit', (code) => r(code)));
  running.push({ child, exited });
  await waitFor(() => output.includes('linewatch is up') || child.exitCode !== null, 60_000, '`linewatch up` to start').catch((err: Error) => {
    throw new Error(`${err.message}\n--- output ---\n${output}`);
  });
  if (child.exitCode !== null) throw new Error(`linewatch up exited with ${child.exitCode}:\n${output}`);
  return {
    url: /dashboard: (http:\/\/[^\s/]+)/.exec(output)![1]!,
    output: () => output,
    stop: async () => {
      child.kill('SIGINT');
      return withTimeout(exited, 30_000, 'linewatch up to exit after SIGINT');
    },
  };
}

interface AlarmView {
  id: string;
  state: string;
  raisedAt: number;
  rev: number;
}

async function alerts(url: string): Promise<AlarmView[]> {
  const res = await fetch(`${url}/api/alerts`);
  if (!res.ok) throw new Error(`/api/alerts: HTTP ${res.status}`);
  return ((await res.json()) as { alerts: AlarmView[] }).alerts;
}

beforeAll(() => {
  if (!existsSync(join(ROOT, 'dist/cli/main.js'))) throw new Error('build first: npx tsc -p tsconfig.json');
  dir = mkdtempSync(join(tmpdir(), 'linewatch-up-alarms-'));
  mkdirSync(join(dir, 'rules'));
  writeFileSync(
    join(dir, 'rules', 'silent.yaml'),
    `rules:
  - id: ghost-silent
    match: { line: A }
    absent: { after: 1s, grace: 1s, devices: [ghost] }
    actions:
      - alert: { severity: warning, message: "{device} has sent nothing for {silentFor} s" }
`,
  );
  writeFileSync(join(dir, 'linewatch.yaml'), `rules:\n  dir: ${join(dir, 'rules')}\n`);
});

afterAll(async () => {
  for (const { child, exited } of running) {
    if (child.exitCode !== null) continue;
    child.kill('SIGKILL');
    await withTimeout(exited, 10_000, 'linewatch up to exit after SIGKILL').catch(() => undefined);
  }
  if (dir) rmSync(dir, { recursive: true, force: true });
});

describe('linewatch up, restarted', () => {
  it('keeps an alarm raised before the restart active after it, the same alarm (not raised again)', async () => {
    const first = await up();
    const before = await waitFor(async () => (await alerts(first.url)).find((a) => a.id === ALARM_ID), 30_000, 'the absence alarm in /api/alerts', 250);
    expect(before.state).toBe('active-unacked');
    expect(await first.stop(), first.output()).toBe(0);

    const second = await up();
    const after = await waitFor(async () => (await alerts(second.url)).find((a) => a.id === ALARM_ID), 30_000, 'the alarm in /api/alerts after the restart', 250);
    expect(after).toMatchObject({ state: 'active-unacked', raisedAt: before.raisedAt, rev: before.rev });
    expect(await second.stop(), second.output()).toBe(0);
  }, 150_000);
});
