// The line simulator's health(), driven into each state for real: a scenario that cuts one
// device's socket, a broker that goes away, and a serial device whose PTY is unplugged.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { brokerConfigSchema, startBroker, type LinewatchBroker } from '../../broker/index.js';
import { waitFor } from '../../lib/wait.js';
import { LineSimulator, parseScenario } from '../../simulators/index.js';
import { startPtyPair } from '../harness/pty.js';
import { roleGrants } from '../../config/services.js';

const LAYOUT = { conveyors: 1, stations: 2, sensors: 0, bufferCapacity: 4 }; // line-ctl, conv-1, st-1, st-2
let dir: string;
const cleanup: (() => Promise<void>)[] = [];

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'linewatch-sim-health-'));
});

afterEach(async () => {
  for (const undo of cleanup.splice(0).reverse()) await undo();
});

afterAll(() => {
  rmSync(dir, { recursive: true, force: true });
});

async function openBroker(): Promise<LinewatchBroker> {
  const broker = await startBroker(brokerConfigSchema.parse({ host: '127.0.0.1', persistence: 'memory', port: 0, wsPort: null, open: true, devicesFile: join(dir, 'devices.json') }), { roles: roleGrants() });
  cleanup.push(() => broker.stop()); // idempotent: a test may stop it first
  return broker;
}

describe('LineSimulator health()', () => {
  it('down before start; ok with every device connected; degraded with one cut off; down when the broker is gone and after stop', async () => {
    const broker = await openBroker();
    // At 30 s simulated (1.5 s real at speedup 20) conv-1 loses its socket for an hour.
    const scenario = parseScenario({ layout: LAYOUT, events: [{ at: '30s', offline: { device: 'conv-1', duration: '1h' } }] });
    const sim = new LineSimulator({ line: 'H', scenario, speedup: 20, mqtt: { url: `mqtt://127.0.0.1:${broker.ports.mqtt}`, mode: 'per-device' } });
    expect(sim.health()).toEqual({ status: 'down', reasons: ['not started'] });
    await sim.start();
    cleanup.push(() => sim.stop());
    expect(sim.health()).toEqual({ status: 'ok', reasons: [] });
    expect(sim.counters()).toMatchObject({ devices: 4, devices_connected: 4 });

    await waitFor(() => sim.health().status === 'degraded', 15_000, 'conv-1 to be cut off by the scenario');
    expect(sim.health().reasons).toEqual(['1 of 4 devices disconnected: conv-1']);
    expect(sim.counters().devices_connected).toBe(3);

    await broker.stop();
    await waitFor(() => sim.health().status === 'down', 15_000, 'every device to lose the broker');
    expect(sim.health().reasons).toEqual(['no device is connected (4 devices)']);

    await sim.stop();
    expect(sim.health()).toEqual({ status: 'down', reasons: ['stopped'] });
  });

  it('a serial device whose port is gone is disconnected; the devices on the bus are not', async () => {
    const broker = await openBroker();
    const pair = await startPtyPair();
    cleanup.push(() => pair.stop());
    const sim = new LineSimulator({ line: 'S', scenario: parseScenario({ layout: LAYOUT }), bus: broker.bus, serialDevices: [{ device: 'st-2', path: pair.device, codec: 'text' }] });
    await sim.start();
    cleanup.push(() => sim.stop());
    expect(sim.health()).toEqual({ status: 'ok', reasons: [] });

    await pair.unplug();
    await waitFor(() => sim.health().status !== 'ok', 10_000, 'the simulated serial device to see its port gone');
    expect(sim.health()).toEqual({ status: 'degraded', reasons: ['1 of 4 devices disconnected: st-2'] });

    await pair.replug();
    await waitFor(() => sim.health().status === 'ok', 10_000, 'the simulated serial device to reopen its port');
  });

  it('names only keys of counters() as gauges', async () => {
    const broker = await openBroker();
    const sim = new LineSimulator({ line: 'G', scenario: parseScenario({ layout: LAYOUT }), bus: broker.bus });
    await sim.start();
    cleanup.push(() => sim.stop());
    expect([...sim.gauges].sort()).toEqual(['devices', 'devices_connected']);
    for (const gauge of sim.gauges) expect(Object.keys(sim.counters())).toContain(gauge);
  });
});
