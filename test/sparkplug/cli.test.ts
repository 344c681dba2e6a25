// `linewatch sparkplug` as its own process (dist/cli/main.js, `npm run build` first) on the real
// embedded broker with authentication: its account of role sparkplug named as its host id, an
// independent Tahu edge node whose device arrives as a linewatch device, /healthz ok and the
// host's counters in /metrics.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { waitFor } from '../../lib/wait.js';
import { runningChildren, startCliProcess, type CliProcess } from '../harness/cli-process.js';
import { startTestBroker, type TestBroker } from '../harness/broker.js';
import { TestEdge } from '../harness/sparkplug-edge.js';

const PASSWORD = 'Sparkplug-cli-secret-7';
const HOST_ID = 'lw-cli-host';

let tb: TestBroker;
let cli: CliProcess | undefined;
let edge: TestEdge | undefined;

beforeAll(async () => {
  tb = await startTestBroker({ wsPort: null });
  await tb.addAccount(HOST_ID, PASSWORD, 'sparkplug');
  await tb.addAccount('P2/edge-1', PASSWORD, 'sparkplug-edge');
});

afterAll(async () => {
  edge?.stop();
  await cli?.kill('SIGTERM');
  for (const child of runningChildren) child.kill('SIGKILL');
  await tb?.stop();
});

describe('linewatch sparkplug', () => {
  it('runs the host alone: an edge node device becomes a linewatch device; /healthz and /metrics', async () => {
    const seen: string[] = [];
    await tb.broker.bus.subscribe('lw/P2/+/status', (topic) => void seen.push(topic));
    cli = await startCliProcess(['sparkplug', '--broker', tb.url, '--username', HOST_ID, '--password', PASSWORD, '--host-id', HOST_ID, '--health-port', '0'], 'linewatch sparkplug:');
    expect(cli.output()).toContain(`primary host ${HOST_ID} on ${tb.url}`);
    edge = new TestEdge({ url: tb.url, group: 'P2', edge: 'edge-1', password: PASSWORD, devices: { 'mixer-1': [{ name: 'rpm', alias: 1, type: 'Int32', value: 1200 }] } });
    await edge.connected();
    await waitFor(() => seen.includes('lw/P2/mixer-1/status'), 10_000, 'lw/P2/mixer-1/status from the standalone host');
    const health = await fetch(`${cli.healthUrl}/healthz`);
    expect(health.status).toBe(200);
    const metrics = await (await fetch(`${cli.healthUrl}/metrics`)).text();
    expect(/^linewatch_device_births\{[^}]*service="sparkplug"[^}]*\} (\d+)$/m.exec(metrics)?.[1], metrics.split('\n').filter((line) => line.includes('births')).join('\n')).toBe('1');
  }, 60_000);
});
