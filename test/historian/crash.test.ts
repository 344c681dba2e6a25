// `linewatch historian` as its own process, SIGKILLed with events in its spool, then restarted:
// nothing is lost — what was spooled is replayed from disk, what it never acknowledged the broker
// redelivers (persistent session), and what arrived while it was down the broker kept for it.
// Runs the built CLI (dist/), as `npm test` builds before testing.
import { spawn, type ChildProcess } from 'node:child_process';
import { appendFileSync, existsSync, mkdtempSync, readdirSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import mqtt from 'mqtt';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { waitFor, withTimeout } from '../../lib/wait.js';
import { startTestBroker, type TestBroker } from '../harness/broker.js';
import { telemetryStream } from './telemetry-stream.js';
import { startTestInflux, type TestInflux } from '../harness/influx.js';

const CLI = resolve('dist/cli/main.js');
const DEVICES = 5;

describe('historian process crash', () => {
  let influx: TestInflux;
  let broker: TestBroker;
  let dir: string;
  const children = new Set<ChildProcess>();

  beforeAll(async () => {
    if (!existsSync(CLI)) throw new Error(`${CLI} is missing: run \`npm run build\` before this test`);
    [influx, broker] = await Promise.all([startTestInflux(), startTestBroker({ wsPort: null })]);
    await broker.addAccount('hist', 'hist-password', 'historian');
    await broker.addAccount('gw', 'gw-password-1', 'gateway');
    dir = mkdtempSync(join(tmpdir(), 'lw-hist-crash-'));
  });
  afterAll(async () => {
    for (const child of children) child.kill('SIGKILL');
    await Promise.all([influx?.stop(), broker?.stop()]);
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  /** Everything the last started historian printed (stdout and stderr). */
  let output = '';

  /** Starts `linewatch historian` and resolves once it says it runs. */
  async function startHistorianProcess(logLevel = 'error'): Promise<ChildProcess> {
    const args = ['historian', '--broker', broker.url, '--username', 'hist', '--password', 'hist-password', '--client-id', 'hist:crash', '--health-port', '0'];
    args.push('--influx', influx.url, '--database', 'crash', '--data-dir', dir, '--batch-size', '500', '--flush-interval', '50');
    const child = spawn(process.execPath, [CLI, ...args], { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, LINEWATCH_LOG_LEVEL: process.env.LW_CHILD_LOG ?? logLevel } });
    children.add(child);
    child.once('exit', () => children.delete(child));
    output = '';
    child.stderr!.on('data', (d: Buffer) => (output += d.toString()));
    if (process.env.LW_CHILD_LOG) child.stdout!.on('data', (d: Buffer) => process.stderr.write(d));
    await withTimeout(
      new Promise<void>((ok, fail) => {
        child.stdout!.on('data', (d: Buffer) => {
          output += d.toString();
          if (output.includes('linewatch historian:')) ok();
        });
        child.once('exit', (code) => fail(new Error(`historian exited with ${code}: ${output}`)));
      }),
      20_000,
      'linewatch historian to start',
    );
    return child;
  }

  const spoolBytes = (): number => {
    const spool = join(dir, 'historian-spool');
    if (!existsSync(spool)) return 0;
    return readdirSync(spool)
      .filter((f) => f.startsWith('seg-'))
      .reduce((sum, f) => sum + statSync(join(spool, f)).size, 0);
  };

  it('says how to install influxd when none is configured and none is installed', async () => {
    const args = ['historian', '--broker', broker.url, '--username', 'hist', '--password', 'hist-password', '--data-dir', join(dir, 'no-influxd'), '--health-port', '0'];
    const child = spawn(process.execPath, [CLI, ...args], { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, LINEWATCH_INFLUXD: join(dir, 'missing', 'influxd'), LINEWATCH_LOG_LEVEL: 'silent' } });
    let stderr = '';
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const code = await withTimeout(new Promise((r) => child.once('exit', r)), 20_000, 'linewatch historian to give up');
    expect(code).toBe(1);
    expect(stderr.trim().split('\n')).toHaveLength(1);
    expect(stderr).toMatch(/^linewatch: influxd was not found .*sudo apt-get install influxdb/);
  });

  it('loses nothing when SIGKILLed with a full spool, and replays it on restart', { timeout: 120_000 }, async () => {
    let historian = await startHistorianProcess();
    const gateway = await mqtt.connectAsync(broker.url, { username: 'gw', password: 'gw-password-1', clientId: 'gw:crash' });
    const { sendUpTo } = telemetryStream('K', DEVICES);
    const count = async (): Promise<number> => {
      const [r] = await influx.query('SELECT count("v") FROM telemetry', 'crash');
      return (r?.series?.[0]?.values[0]?.[1] as number | undefined) ?? 0;
    };
    try {
      // 1. InfluxDB up: the first events go through.
      await sendUpTo(gateway, 3000);
      await waitFor(async () => (await count()) > 0, 20_000, 'the first points in InfluxDB');
      // 2. InfluxDB down: events pile up in the spool (acknowledged once on disk).
      await influx.kill('SIGKILL');
      const before = spoolBytes();
      await sendUpTo(gateway, 8000);
      await waitFor(() => spoolBytes() > before + 100_000, 20_000, 'events piling up in the spool');
      // 3. The historian dies mid-spool; events keep coming and wait in the broker's session.
      historian.kill('SIGKILL');
      await withTimeout(new Promise((r) => historian.once('exit', r)), 10_000, 'the historian to die');
      await sendUpTo(gateway, 10_000);
      // As if the kill had hit in the middle of a write: a torn record at the end of its segment.
      const spoolDir = join(dir, 'historian-spool');
      const lastSegment = readdirSync(spoolDir).filter((f) => f.startsWith('seg-')).sort().at(-1)!;
      appendFileSync(join(spoolDir, lastSegment), Buffer.from([200, 0, 0, 0, 0x12, 0x34, 0x56, 0x78, 0x6d, 0x2c]));
      // 4. Both come back: the spool is replayed, the broker delivers the rest.
      await influx.restart();
      historian = await startHistorianProcess('warn');
      let last = 0;
      await waitFor(async () => (last = await count()) >= 10_000, 60_000, 'all 10 000 points in InfluxDB').catch((err: Error) => {
        throw new Error(`${err.message} (${last} arrived)`);
      });
      expect(await count()).toBe(10_000);
      const [perDevice] = await influx.query('SELECT count(distinct("seq")) AS n FROM telemetry GROUP BY "device"', 'crash');
      expect(perDevice!.series!.map((s) => s.values[0]![1])).toEqual(Array(DEVICES).fill(10_000 / DEVICES));
      expect(output).toContain('skipped the torn end of a log segment');
      // A graceful stop drains and exits 0.
      historian.kill('SIGTERM');
      const code = await withTimeout(new Promise((r) => historian.once('exit', r)), 15_000, 'the historian to stop');
      expect(code).toBe(0);
    } finally {
      await gateway.endAsync();
    }
  });
});
