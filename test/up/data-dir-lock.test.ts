// A second `linewatch up` on the data dir of a running one refuses with one line naming the data
// dir and the pid holding it, before touching anything: the first one's children (the managed
// influxd, socat) keep running and the first one stays healthy. Two real `linewatch up` processes.
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { processAlive } from '../../lib/process-alive.js';
import { waitFor, withTimeout } from '../../lib/wait.js';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
const dir = mkdtempSync(join(tmpdir(), 'linewatch-up-lock-'));
const dataDir = join(dir, 'data');
const runs: { child: ChildProcess; exited: Promise<number | null> }[] = [];
const childPids: number[] = [];


/** `linewatch up` on the shared data dir, free ports; what it prints and when it exits. */
function up(): { child: ChildProcess; output: () => string; exited: Promise<number | null> } {
  if (!existsSync(join(ROOT, 'dist/cli/main.js'))) throw new Error('build first: npm run build');
  const child = spawn(process.execPath, ['bin/linewatch.js', 'up', '--data-dir', dataDir, '--broker-port', '0', '--no-ws-port', '--dashboard-port', '0', '--speedup', '10'], {
    cwd: ROOT,
    env: { ...process.env, LINEWATCH_LOG_LEVEL: 'warn' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  child.stdout!.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr!.on('data', (d: Buffer) => (out += d.toString()));
  const exited = new Promise<number | null>((done) => child.once('exit', (code) => done(code)));
  runs.push({ child, exited });
  return { child, output: () => out, exited };
}

afterAll(async () => {
  for (const run of runs) {
    if (run.child.exitCode === null && run.child.signalCode === null) run.child.kill('SIGINT');
    await withTimeout(run.exited, 30_000, 'linewatch up to exit after SIGINT').catch(() => {
      run.child.kill('SIGKILL');
    });
  }
  for (const pid of childPids) if (processAlive(pid)) process.kill(pid, 'SIGKILL');
  rmSync(dir, { recursive: true, force: true });
});

describe('linewatch up: one per data dir', () => {
  it('refuses a second up on the same data dir, naming it and the holder, and leaves the first running', async () => {
    const first = up();
    await waitFor(() => first.output().includes('linewatch is up') || first.child.exitCode !== null, 90_000, 'the first `linewatch up` to start').catch((err: Error) => {
      throw new Error(`${err.message}\n--- output ---\n${first.output()}`);
    });
    expect(first.child.exitCode, first.output()).toBeNull();
    const influxPid = Number(/managed influxd at \S+ \(pid (\d+)/.exec(first.output())?.[1]);
    const socatPid = Number(/socat pid (\d+)/.exec(first.output())?.[1]);
    childPids.push(influxPid, socatPid);
    expect(influxPid, first.output()).toBeGreaterThan(0);
    expect(socatPid, first.output()).toBeGreaterThan(0);
    const dashboardUrl = /dashboard: (http:\/\/[^\s/]+)/.exec(first.output())![1]!;

    const second = up();
    const code = await withTimeout(second.exited, 30_000, 'the second `linewatch up` to exit');
    expect(code, second.output()).toBe(1);
    const lines = second.output().trim().split('\n');
    expect(lines, second.output()).toHaveLength(1);
    expect(lines[0]).toContain(dataDir);
    expect(lines[0]).toContain(`process ${first.child.pid}`);
    expect(lines[0]).toContain('--data-dir');

    // The first run's children are untouched and it still answers.
    expect(processAlive(influxPid)).toBe(true);
    expect(processAlive(socatPid)).toBe(true);
    const health = await withTimeout(fetch(`${dashboardUrl}/healthz`), 10_000, 'the first run\'s /healthz');
    expect(first.output()).not.toMatch(/failed|exited/i);
    expect(health.status, await health.text()).toBe(200);
  }, 180_000);
});
