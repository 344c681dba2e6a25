// The simulated Sparkplug edge node (simulate --sparkplug) under a speedup stamps its births and
// data with the simulated clock, as the plain MQTT simulator stamps its payloads: the line model's
// time, not the wall clock. The model starts on a day long past, so a wall-clock stamp cannot
// pass for a simulated one; what the host relays (lw/…/telemetry ts, from the DDATA timestamp)
// must lie within the model's time.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { waitFor } from '../../lib/wait.js';
import { LineSimulator } from '../../simulators/index.js';
import { SparkplugHost, sparkplugConfigSchema } from '../../sparkplug/index.js';
import { startTestBroker, type TestBroker } from '../harness/broker.js';

const PASSWORD = 'Sparkplug-clock-secret-7';
const START = Date.UTC(2024, 0, 1);

let tb: TestBroker;
let host: SparkplugHost | undefined;
let simulator: LineSimulator | undefined;

beforeAll(async () => {
  tb = await startTestBroker({ wsPort: null });
  await tb.addAccount('lw-clock-host', PASSWORD, 'sparkplug');
  await tb.addAccount('A/edge', PASSWORD, 'sparkplug-edge');
});

afterAll(async () => {
  await simulator?.stop();
  await host?.stop();
  await tb?.stop();
});

describe('the simulated Sparkplug edge node under --speedup', () => {
  it("stamps births and data with the line model's simulated clock", async () => {
    const timestamps: { topic: string; ts: number }[] = [];
    await tb.broker.bus.subscribe(['lw/A/+/telemetry', 'lw/A/+/state', 'lw/_sparkplug/#'], (topic, payload) => {
      const body = JSON.parse(payload.toString()) as { ts: number; metrics?: { ts: number }[] };
      timestamps.push({ topic, ts: body.ts });
      for (const metric of body.metrics ?? []) timestamps.push({ topic: `${topic} metric`, ts: metric.ts });
    });
    host = new SparkplugHost({ bus: tb.broker.bus, config: sparkplugConfigSchema.parse({ enabled: true, hostId: 'lw-clock-host' }), mqtt: { url: tb.url, username: 'lw-clock-host', password: PASSWORD } });
    await host.start();
    simulator = new LineSimulator({ line: 'A', speedup: 10, startTime: START, mqtt: { url: tb.url, mode: 'sparkplug', sharedAccount: { username: 'A/edge', password: PASSWORD } } });
    await simulator.start();
    const model = simulator.model;
    // 10 simulated seconds of data.
    await waitFor(() => model.now() - START >= 10_000 && timestamps.some((t) => t.topic === 'lw/A/conv-2/telemetry'), 30_000, '10 simulated seconds of telemetry through the host');
    const end = model.now();
    const outside = timestamps.filter((t) => t.ts < START || t.ts > end);
    expect(outside.slice(0, 5), `${outside.length} of ${timestamps.length} stamps outside the simulated clock [${START}, ${end}]`).toEqual([]);
    expect(host.counters()).toMatchObject({ births: 1, malformed: 0 });
  }, 60_000);
});
