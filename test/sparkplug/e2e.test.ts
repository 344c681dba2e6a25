// The simulated line as a Sparkplug B edge node in `linewatch up` (sparkplug.enabled) driving the
// rules engine and the historian end to end: a real influxd, the embedded broker with
// authentication, the Sparkplug host, the rules examples. A rule's command travels as a DCMD and
// is confirmed by DDATA (outcome done); the readings reach InfluxDB.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startLine, type RunningLine } from '../../cli/up/compose.js';
import { parseConfig } from '../../config/load.js';
import { waitFor } from '../../lib/wait.js';
import { startTestInflux, type TestInflux } from '../harness/influx.js';

let influx: TestInflux;
let running: RunningLine | undefined;
let dataDir: string;

beforeAll(async () => {
  influx = await startTestInflux();
  dataDir = mkdtempSync(join(tmpdir(), 'linewatch-sparkplug-e2e-'));
});

afterAll(async () => {
  await running?.stop();
  await influx?.stop();
  rmSync(dataDir, { recursive: true, force: true });
});

describe('linewatch up with sparkplug.enabled: the demo line as Sparkplug B', () => {
  it('drives the rules (a command done through DCMD and DDATA) and the historian', async () => {
    const config = parseConfig({
      dataDir,
      broker: { host: '127.0.0.1', port: 0, wsPort: null, persistence: 'memory' },
      historian: { influxUrl: influx.url },
      dashboard: { enabled: false },
      simulate: { speedup: 10 },
      sparkplug: { enabled: true },
    });
    const said: string[] = [];
    running = await startLine(config, { say: (message) => said.push(message), serial: false });
    expect(said.some((message) => message.includes('as Sparkplug edge node A/edge'))).toBe(true);
    const outcomes: Record<string, unknown>[] = [];
    const sources = new Set<string>();
    await running.broker.bus.subscribe(['lw/+/+/cmd/outcome', 'lw/+/+/telemetry'], (topic, payload) => {
      if (topic.endsWith('/outcome')) outcomes.push(JSON.parse(payload.toString()) as Record<string, unknown>);
      else sources.add(topic);
    });
    // conv-2 overheats after ~3 s at ×10: the overheat rule slows the line down (its window runs on
    // the devices' timestamps, the simulated clock); the host writes the setpoint and confirms it.
    const done = await waitFor(() => outcomes.find((outcome) => outcome.outcome === 'done' && outcome.action === 'set_speed' && String(outcome.origin).includes('conveyor-overheat')), 60_000, "the overheat rule's set_speed done through Sparkplug").catch((err: unknown) => {
      throw new Error(`${(err as Error).message}; outcomes ${JSON.stringify(outcomes.slice(0, 5))}; host ${JSON.stringify(running?.services.find((service) => service.name === 'sparkplug')?.counters())}`);
    });
    expect(done).toMatchObject({ outcome: 'done', origin: expect.stringMatching(/^rule:/) });
    // The rule ramps the line down in steps, each done when the line runs at it: the rules engine
    // never sees the line report a speed other than the one it took (no re-command), as over plain MQTT.
    const overheat = (): Record<string, unknown>[] => outcomes.filter((outcome) => outcome.outcome === 'done' && String(outcome.origin).includes('conveyor-overheat'));
    await waitFor(() => overheat().length >= 3, 60_000, 'three steps of the ramp done');
    const rules = running.services.find((service) => service.name === 'rules');
    expect(rules?.counters().recommands ?? 0, JSON.stringify(overheat().map((outcome) => outcome.params))).toBe(0);
    expect(sources.has('lw/A/conv-2/telemetry')).toBe(true);
    const host = running.services.find((service) => service.name === 'sparkplug');
    expect(host?.counters(), JSON.stringify(host?.counters())).toMatchObject({ births: 1, malformed: 0, seq_gaps: 0 });
    expect(host?.counters().device_births).toBeGreaterThanOrEqual(10);
    const rows = await waitFor(async () => {
      const [result] = await influx.query(`SELECT count("motorTemp") FROM "telemetry" WHERE "device" = 'conv-2'`, 'linewatch');
      const count = result?.series?.[0]?.values[0]?.[1];
      return typeof count === 'number' && count > 0 ? count : undefined;
    }, 30_000, "conv-2's readings in InfluxDB");
    expect(rows).toBeGreaterThan(0);
    // The same readings raw, as the edge node sent them (Double), in sparkplug_metrics.
    const raw = await waitFor(async () => {
      const [result] = await influx.query(`SELECT count("value_float") FROM "sparkplug_metrics" WHERE "device" = 'conv-2' AND "metric" = 'motorTemp' AND "datatype" = 'Double'`, 'linewatch');
      const count = result?.series?.[0]?.values[0]?.[1];
      return typeof count === 'number' && count > 0 ? count : undefined;
    }, 30_000, "conv-2's raw motorTemp in sparkplug_metrics");
    expect(raw).toBeGreaterThan(0);
  }, 150_000);
});
