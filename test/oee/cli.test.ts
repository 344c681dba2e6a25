// `linewatch oee --broker URL` with the built CLI (dist/), as a user runs it: an oee account,
// device events in, a summary out on lw/{line}/summary; SIGTERM stops it.
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import mqtt from 'mqtt';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { SummaryPayload } from '../../contracts/index.js';
import { waitFor, withTimeout } from '../../lib/wait.js';
import { run } from '../harness/mosquitto-clients.js';
import { startTestBroker, type TestBroker } from '../harness/broker.js';

const BIN = fileURLToPath(new URL('../../bin/linewatch.js', import.meta.url));
const BUILT = fileURLToPath(new URL('../../dist/cli/main.js', import.meta.url));
const PASSWORD = 'Oee-cli-secret-4';

describe('linewatch oee', () => {
  let tb: TestBroker;
  let dir: string;
  beforeAll(async () => {
    if (!existsSync(BUILT)) throw new Error('dist/ is missing: run `npm run build` before these tests (npm test does)');
    dir = mkdtempSync(join(tmpdir(), 'linewatch-oee-cli-'));
    tb = await startTestBroker({ wsPort: null });
    await tb.addAccount('oee', PASSWORD, 'oee');
    await tb.addAccount('ops', PASSWORD, 'admin');
  });
  afterAll(async () => {
    await tb?.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('publishes each line\'s OEE from the events on a broker; SIGTERM stops it', async () => {
    const service = spawn(process.execPath, [BIN, 'oee', '--broker', tb.url, '--username', 'oee', '--password', PASSWORD, '--publish-interval', '200', '--health-port', '0', '--state-file', join(dir, 'oee-state.json')], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    service.stdout!.on('data', (d: Buffer) => (out += d.toString()));
    service.stderr!.on('data', (d: Buffer) => (out += d.toString()));
    const ops = await mqtt.connectAsync(tb.url, { username: 'ops', password: PASSWORD, clientId: 'ops:oee-cli', reconnectPeriod: 0 });
    try {
      await waitFor(() => out.includes('linewatch oee:'), 20_000, `linewatch oee to start (output: ${out})`);
      const summaries: SummaryPayload[] = [];
      ops.on('message', (_topic, payload) => summaries.push(JSON.parse(payload.toString()) as SummaryPayload));
      await ops.subscribeAsync('lw/C/summary', { qos: 1 });
      const now = Date.now();
      await ops.publishAsync('lw/C/line-ctl/telemetry', JSON.stringify({ ts: now - 60_000, seq: 0, type: 'line-controller', values: { goodCount: 0, scrapCount: 0, speed: 2 } }), { qos: 1 });
      await ops.publishAsync('lw/C/line-ctl/state', JSON.stringify({ ts: now - 60_000, seq: 1, state: 'RUNNING', strategy: 'quality-first' }), { qos: 1 });
      await ops.publishAsync('lw/C/line-ctl/telemetry', JSON.stringify({ ts: now, seq: 2, type: 'line-controller', values: { goodCount: 9, scrapCount: 1, speed: 2 } }), { qos: 1 });
      const summary = await waitFor(() => summaries.find((s) => s.goodCount === 9), 10_000, 'a summary of line C with its 10 parts');
      expect(summary).toMatchObject({ speed: 2, strategy: 'quality-first', goodCount: 9, scrapCount: 1, availability: 1, quality: 0.9 });
    } finally {
      await ops.endAsync(true);
      service.kill('SIGTERM');
    }
    const code = await withTimeout(new Promise<number | null>((resolve) => service.once('exit', resolve)), 15_000, 'linewatch oee to exit after SIGTERM');
    expect(code).toBe(0);
  });

  it('refuses a config that still has historian.oee, saying where it moved', async () => {
    const config = join(dir, 'old.yaml');
    writeFileSync(config, 'historian:\n  oee:\n    publishIntervalMs: 2000\n');
    const result = await run(process.execPath, [BIN, 'oee', '--broker', tb.url, '--config', config], 30_000);
    expect(result.code).toBe(1);
    expect(result.stderr).toMatch(/historian\.oee: moved to the top-level oee: section/);
  });
});
