// `linewatch up` supervises its managed influxd (historian/influxd.ts): SIGKILLed, it comes back by
// itself on the same URL, the children registry names the new pid, and the status line shows the
// true backlog — the spool's records, bytes and oldest age — while it is down, then 0.
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startLine, type RunningLine } from '../../cli/up/compose.js';
import { formatStatus } from '../../cli/up/status.js';
import { configSchema } from '../../config/schema.js';
import { RESTART_POLICY } from '../../historian/influxd.js';
import { processAlive } from '../../lib/process-alive.js';
import { waitFor } from '../../lib/wait.js';
import { holdPort } from '../harness/hold-port.js';

const EVENTS = 500;

describe('linewatch up: a supervised managed influxd', () => {
  let dir: string;
  let line: RunningLine | undefined;
  const said: string[] = [];

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'lw-up-influxd-'));
    const config = configSchema.parse({
      dataDir: dir,
      broker: { host: '127.0.0.1', port: 0, wsPort: null },
      dashboard: { enabled: false },
      simulate: { enabled: false },
      rules: { enabled: false },
      oee: { enabled: false },
      historian: { flushIntervalMs: 50, retryInitialMs: 50, retryMaxMs: 500, requestTimeoutMs: 5000 },
    });
    line = await startLine(config, { say: (message) => said.push(message), serial: false });
  });
  afterAll(async () => {
    await line?.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  const registered = (): { name: string; pid: number }[] => JSON.parse(readFileSync(join(dir, 'children.json'), 'utf8')) as { name: string; pid: number }[];

  it('restarts it after SIGKILL, shows the spool as the backlog meanwhile, and drains it', { timeout: 120_000 }, async () => {
    if (!line?.influx) throw new Error(`up started no InfluxDB: ${said.join(' | ')}`);
    const { url } = line.influx;
    const [first] = registered().filter((child) => child.name === 'influxd');
    if (!first) throw new Error('no influxd in children.json');
    process.kill(first.pid, 'SIGKILL');
    await waitFor(() => !processAlive(first.pid), 10_000, `the SIGKILLed influxd (pid ${first.pid}) to be gone`);
    const held = await holdPort(Number(new URL(url).port), RESTART_POLICY.initialMs / 2);
    try {
      const ts = Date.now() - 3_600_000;
      const bus = line.broker.bus;
      // At once: the port is held only while the supervisor has quick failures to spare.
      await Promise.all(Array.from({ length: EVENTS }, (_, i) => bus.publish(`lw/U/d${i % 5}/telemetry`, JSON.stringify({ ts: ts + i, seq: Math.floor(i / 5), values: { v: i } }), { qos: 1 })));
      const down = line.status();
      expect(down.influxBacklog).toMatchObject({ records: EVENTS });
      expect(down.influxBacklog?.bytes).toBeGreaterThan(EVENTS * 20);
      expect(down.influxDown).toBe('restarting');
      expect(formatStatus(down)).toMatch(new RegExp(`InfluxDB backlog ${EVENTS} events, [\\d.]+ KiB, oldest \\d+ s \\(InfluxDB down: restarting\\)`));
    } finally {
      await held.release();
    }
    await waitFor(() => registered().some((child) => child.name === 'influxd' && child.pid !== first.pid), 60_000, 'children.json to name the restarted influxd');
    await waitFor(() => line?.status().influxBacklog?.records === 0, 30_000, 'the backlog to drain');
    const after = line.status();
    expect(after.influxDown).toBeUndefined();
    expect(formatStatus(after)).toContain('InfluxDB backlog 0');
    const res = await fetch(`${url}/query`, { method: 'POST', body: new URLSearchParams({ q: 'SELECT count("v") FROM "raw"."telemetry"', db: 'linewatch' }) });
    const body = (await res.json()) as { results: { series?: { values: unknown[][] }[] }[] };
    expect(body.results[0]?.series?.[0]?.values[0]?.[1]).toBe(EVENTS);
    expect(registered().filter((child) => child.name === 'influxd')).toHaveLength(1);
  });
});
