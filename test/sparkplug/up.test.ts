// `linewatch up` with sparkplug.enabled: the composition gives the host its account on the
// embedded broker (authentication on) and a Tahu edge node's device arrives as a linewatch device
// on the broker's bus.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { addAccount } from '../../broker/index.js';
import { startLine, type RunningLine } from '../../cli/up/compose.js';
import { parseConfig } from '../../config/load.js';
import { waitFor } from '../../lib/wait.js';
import { TestEdge } from '../harness/sparkplug-edge.js';

const dirs: string[] = [];
let running: RunningLine | undefined;
let edge: TestEdge | undefined;

afterAll(async () => {
  edge?.stop();
  await running?.stop();
  for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
});

describe('linewatch up with sparkplug.enabled', () => {
  it('starts the host on the embedded broker with its own account; an edge node device becomes lw/{group}/{device}', async () => {
    const dataDir = mkdtempSync(join(tmpdir(), 'linewatch-up-sparkplug-'));
    dirs.push(dataDir);
    const config = parseConfig({
      dataDir,
      broker: { host: '127.0.0.1', port: 0, wsPort: null, persistence: 'memory' },
      historian: { enabled: false },
      rules: { enabled: false },
      dashboard: { enabled: false },
      simulate: { enabled: false },
      sparkplug: { enabled: true, hostId: 'lw-up-host' },
    });
    const said: string[] = [];
    running = await startLine(config, { say: (message) => said.push(message), serial: false });
    expect(said.some((message) => message.startsWith('sparkplug: primary host lw-up-host'))).toBe(true);
    const seen: string[] = [];
    await running.broker.bus.subscribe('lw/+/+/status', (topic) => void seen.push(topic));
    const password = 'Edge-up-secret-42x';
    await addAccount(join(dataDir, 'devices.json'), { username: 'P1/edge-1', password, role: 'sparkplug-edge' });
    edge = new TestEdge({ url: `mqtt://127.0.0.1:${running.broker.ports.mqtt}`, group: 'P1', edge: 'edge-1', password, devices: { 'oven-1': [{ name: 'temperature', alias: 1, type: 'Double', value: 180 }] } });
    await edge.connected();
    await waitFor(() => seen.includes('lw/P1/oven-1/status'), 10_000, 'lw/P1/oven-1/status from the Sparkplug host in up');
    const host = running.services.find((service) => service.name === 'sparkplug');
    expect(host?.health().status).toBe('ok');
  });
});
