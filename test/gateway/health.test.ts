// The serial gateway's health(), driven into each state for real: socat PTY pairs that are
// unplugged and plugged back (a USB adapter pulled), and a broker that goes away while the
// device keeps talking (the outbox spools to disk).
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SerialPort } from 'serialport';
import { afterEach, beforeAll, afterAll, describe, expect, it } from 'vitest';
import { brokerConfigSchema, startBroker, type LinewatchBroker } from '../../broker/index.js';
import { MqttBus } from '../../bus/index.js';
import { ndjsonCodec } from '../../contracts/serial/index.js';
import { SerialGateway } from '../../gateway/index.js';
import { waitFor } from '../../lib/wait.js';
import { startPtyPair, type TestPtyPair } from '../harness/pty.js';
import { roleGrants } from '../../config/services.js';

let dir: string;
const cleanup: (() => Promise<void>)[] = [];

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'linewatch-gw-health-'));
});

afterEach(async () => {
  for (const undo of cleanup.splice(0).reverse()) await undo();
});

afterAll(() => {
  rmSync(dir, { recursive: true, force: true });
});

async function ptyPair(): Promise<TestPtyPair> {
  const pair = await startPtyPair();
  cleanup.push(() => pair.stop());
  return pair;
}

async function openBroker(port = 0): Promise<LinewatchBroker> {
  const broker = await startBroker(brokerConfigSchema.parse({ host: '127.0.0.1', persistence: 'memory', port, wsPort: null, open: true, devicesFile: join(dir, 'devices.json') }), { roles: roleGrants() });
  return broker;
}

const FAST_REOPEN = { reopenMinMs: 50, reopenMaxMs: 200 } as const;

describe('SerialGateway health()', () => {
  it('down before start and after stop; ok with every port open; degraded with one closed; down with none open; ok again when they are back', async () => {
    const broker = await openBroker();
    cleanup.push(() => broker.stop());
    const [first, second] = [await ptyPair(), await ptyPair()];
    const gateway = new SerialGateway({
      bus: broker.bus,
      spoolDir: join(dir, 'spool-ports'),
      ports: [
        { path: first.gateway, device: 'A/st-1', codec: 'ndjson', ...FAST_REOPEN },
        { path: second.gateway, device: 'A/st-2', codec: 'text', ...FAST_REOPEN },
      ],
    });
    expect(gateway.health().status).toBe('down');
    expect(gateway.health().reasons).toEqual(['not started']);
    await gateway.start();
    cleanup.push(() => gateway.stop());
    const open = (path: string): boolean => gateway.portsOpen()[path] === true;
    await waitFor(() => open(first.gateway) && open(second.gateway), 10_000, 'both ports to open');
    expect(gateway.health()).toEqual({ status: 'ok', reasons: [] });

    await first.unplug();
    await waitFor(() => !open(first.gateway), 10_000, 'the gateway to see the first port closed');
    const oneClosed = gateway.health();
    expect(oneClosed.status).toBe('degraded');
    expect(oneClosed.reasons).toEqual([`serial port ${first.gateway} (A/st-1) is closed; reopening it`]);

    await second.unplug();
    await waitFor(() => !open(second.gateway), 10_000, 'the gateway to see the second port closed');
    const noneOpen = gateway.health();
    expect(noneOpen.status).toBe('down');
    expect(noneOpen.reasons[0]).toBe('no serial port is open (2 configured)');

    await first.replug();
    await second.replug();
    await waitFor(() => open(first.gateway) && open(second.gateway), 10_000, 'both ports to be reopened');
    expect(gateway.health()).toEqual({ status: 'ok', reasons: [] });

    await gateway.stop();
    expect(gateway.health()).toEqual({ status: 'down', reasons: ['stopped'] });
  });

  it('degraded while the outbox spools (broker away), ok once the spool is replayed', async () => {
    let broker = await openBroker();
    const port = broker.ports.mqtt;
    cleanup.push(() => broker.stop());
    const pair = await ptyPair();
    const bus = await MqttBus.connect(`mqtt://127.0.0.1:${port}`, { reconnectPeriod: 100 });
    cleanup.push(() => bus.close());
    const gateway = new SerialGateway({ bus, spoolDir: join(dir, 'spool-outbox'), ports: [{ path: pair.gateway, device: 'A/st-3', codec: 'ndjson', baudRate: 115200, ...FAST_REOPEN }] });
    await gateway.start();
    cleanup.push(() => gateway.stop());
    await waitFor(() => gateway.portsOpen()[pair.gateway], 10_000, 'the gateway to open its port');
    const device = new SerialPort({ path: pair.device, baudRate: 115200, autoOpen: false });
    await new Promise<void>((resolve, reject) => device.open((err) => (err ? reject(err) : resolve())));
    cleanup.push(() => new Promise<void>((resolve) => (device.isOpen ? device.close(() => resolve()) : resolve())));
    expect(gateway.health().status).toBe('ok');

    await broker.stop();
    await waitFor(() => !bus.client.connected, 10_000, 'the gateway to notice the broker is gone');
    for (let seq = 0; seq < 10; seq++) device.write(ndjsonCodec.encodeEvent('telemetry', { ts: 1767000000000 + seq, seq, values: { n: seq } }));
    await waitFor(() => (gateway.counters().spool_backlog_bytes ?? 0) > 0, 10_000, 'the events to be spooled');
    const spooling = gateway.health();
    expect(spooling.status).toBe('degraded');
    expect(spooling.reasons).toHaveLength(1);
    expect(spooling.reasons[0]).toMatch(/^\d+ bytes of events spooled on disk, waiting for the broker; replayed in order once it takes them$/);

    broker = await openBroker(port); // same port: the gateway's bus reconnects by itself
    await waitFor(() => gateway.drained(), 15_000, 'the spool to be replayed');
    expect(gateway.health()).toEqual({ status: 'ok', reasons: [] });
  });

  it('names only keys of counters() as gauges', async () => {
    const broker = await openBroker();
    cleanup.push(() => broker.stop());
    const pair = await ptyPair();
    const gateway = new SerialGateway({ bus: broker.bus, spoolDir: join(dir, 'spool-gauges'), ports: [{ path: pair.gateway, device: 'A/st-4', codec: 'ndjson' }] });
    await gateway.start();
    cleanup.push(() => gateway.stop());
    const keys = Object.keys(gateway.counters());
    expect([...gateway.gauges].sort()).toEqual(['modbus_devices_offline', 'ports', 'ports_open', 'spool_backlog_bytes']);
    for (const gauge of gateway.gauges) expect(keys).toContain(gauge);
  });
});
