// Modbus TCP polling against modbus-serial's own ServerTCP (an independent server) on a free port:
// two unit ids behind one endpoint over one connection, readings and a write through a real
// broker; the server going away (device reported offline) and coming back (online, polling
// resumes); a refused connection; and the simulator's own Modbus TCP server (`--modbus-tcp`) polled
// into telemetry whose values are the model's, with a write the model obeys; a refused connection that does not crash the gateway.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import mqtt from 'mqtt';
import modbusSerial from 'modbus-serial';
import { afterAll, beforeAll, expect, it } from 'vitest';
import type { InProcessBus } from '../../broker/in-process-bus.js';
import { topics } from '../../contracts/index.js';
import { SerialGateway, type GatewayPortConfig } from '../../gateway/index.js';
import { LineSimulator, modbusMapFor } from '../../simulators/index.js';
import { freePort } from '../../lib/free-port.js';
import { waitFor, withTimeout } from '../../lib/wait.js';
import { startTestBroker, type TestBroker } from '../harness/broker.js';

const WATCH = { username: 'watcher', password: 'watch-secret-1' };
let tb: TestBroker;
let dir: string;
const cleanup: (() => Promise<unknown>)[] = [];

// Two devices behind one endpoint (a TCP-to-RTU gateway): holding registers per unit id.
const units = new Map<number, Map<number, number>>([
  [3, new Map([[0, 405], [1, 0x10000 - 25], [2, 0], [10, 400]])],
  [4, new Map([[0, 120], [1, 300], [2, 1], [10, 0]])],
]);
let connections = 0;

async function startServer(port: number): Promise<InstanceType<typeof modbusSerial.ServerTCP>> {
  const server = new modbusSerial.ServerTCP(
    {
      getHoldingRegister: (addr: number, unitID: number) => {
        const regs = units.get(unitID);
        if (!regs) throw Object.assign(new Error('no such unit'), { modbusErrorCode: 0x0b });
        return regs.get(addr) ?? 0;
      },
      setRegister: (addr: number, value: number, unitID: number) => {
        units.get(unitID)?.set(addr, value);
      },
    },
    { host: '127.0.0.1', port },
  );
  // modbus-serial keeps the sockets in `socks`: count connections through its server (guarded: fails loudly if it goes).
  const net = (server as unknown as { _server?: import('node:net').Server })._server;
  if (!net) throw new Error('modbus-serial ServerTCP no longer has _server: update this test');
  net.on('connection', () => connections++);
  await withTimeout(
    new Promise<void>((resolve, reject) => {
      server.on('initialized', () => resolve());
      server.on('serverError', reject);
    }),
    10_000,
    'the Modbus TCP server to listen',
  );
  return server;
}

function closeServer(server: InstanceType<typeof modbusSerial.ServerTCP>): Promise<void> {
  return new Promise((resolve) => server.close(() => resolve()));
}

function tcpPort(device: string, tcp: number, unitId: number): GatewayPortConfig {
  return {
    device,
    codec: 'modbus',
    transport: 'tcp',
    host: '127.0.0.1',
    tcpPort: tcp,
    reopenMinMs: 50,
    reopenMaxMs: 200,
    modbus: {
      unitId,
      pollIntervalMs: 100,
      timeoutMs: 300,
      offlineAfterFailures: 2,
      registers: [
        { name: 'speed', address: 0, scale: 10 },
        { name: 'motorTemp', address: 1, scale: 10, signed: true },
        { name: 'setpoint', address: 10, scale: 10 },
      ],
      stateRegister: { address: 2, states: ['RUNNING', 'IDLE', 'FAULT'] },
      commands: { set_speed: { address: 10, scale: 10 } },
    },
  };
}

async function watch(filter: string) {
  const client = await mqtt.connectAsync(tb.url, { ...WATCH, clientId: `${WATCH.username}:watch-${Math.random().toString(36).slice(2, 8)}` });
  cleanup.push(() => client.endAsync());
  const got: { topic: string; body: Record<string, unknown> }[] = [];
  client.on('message', (topic, p) => got.push({ topic, body: JSON.parse(p.toString()) }));
  await client.subscribeAsync(filter, { qos: 1 });
  return { client, got };
}

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'linewatch-modbus-tcp-'));
  tb = await startTestBroker({ wsPort: null });
  await tb.addAccount(WATCH.username, WATCH.password, 'admin');
});

afterAll(async () => {
  for (const c of cleanup.reverse()) await c();
  await tb?.stop();
  rmSync(dir, { recursive: true, force: true });
});

it('polls two unit ids over one connection, writes set_speed, reports the device offline while the server is gone and resumes when it is back', async () => {
  const port = await freePort();
  let server = await startServer(port);
  cleanup.push(() => closeServer(server));
  const w = await watch('lw/T/#');
  const gateway = new SerialGateway({ bus: tb.broker.bus as InProcessBus, spoolDir: join(dir, 'spool-1'), ports: [tcpPort('T/plc-3', port, 3), tcpPort('T/plc-4', port, 4)] });
  await gateway.start();
  cleanup.push(() => gateway.stop());

  const telemetry = (device: string) => w.got.filter((m) => m.topic === topics.telemetry('T', device));
  await waitFor(() => telemetry('plc-3').length > 0 && telemetry('plc-4').length > 0, 10_000, 'readings of both unit ids');
  expect(telemetry('plc-3')[0]!.body.values).toEqual({ speed: 40.5, motorTemp: -2.5, setpoint: 40 });
  expect(telemetry('plc-4')[0]!.body.values).toEqual({ speed: 12, motorTemp: 30, setpoint: 0 });
  expect(w.got.find((m) => m.topic === topics.state('T', 'plc-4'))!.body.state).toBe('IDLE');
  expect(w.got.find((m) => m.topic === topics.status('T', 'plc-3'))!.body.status).toBe('online');
  expect(connections).toBe(1);
  expect(gateway.portsOpen()).toEqual({ [`tcp://127.0.0.1:${port}`]: true });

  const now = Date.now();
  await w.client.publishAsync(topics.cmd('T', 'plc-4'), JSON.stringify({ id: 't-1', action: 'set_speed', params: { speed: 25.5 }, origin: 'test', ts: now, expiresAt: now + 10_000 }), { qos: 1 });
  await waitFor(() => w.got.find((m) => m.topic === topics.ack('T', 'plc-4') && m.body.id === 't-1' && m.body.result === 'done'), 10_000, 'the done ack');
  expect(units.get(4)!.get(10)).toBe(255);
  expect(units.get(3)!.get(10)).toBe(400);

  // The server goes away: both devices are reported offline, nothing crashes.
  await closeServer(server);
  const status = (device: string) => w.got.filter((m) => m.topic === topics.status('T', device)).map((m) => m.body.status);
  await waitFor(() => status('plc-3').at(-1) === 'offline' && status('plc-4').at(-1) === 'offline', 10_000, 'both devices reported offline');
  await waitFor(() => gateway.health().status === 'down', 10_000, 'the gateway down: its one connection is gone');
  expect(gateway.counters().connect_failures).toBeGreaterThan(0);

  // It comes back on the same port: polling resumes on a new connection.
  const before = telemetry('plc-3').length;
  server = await startServer(port);
  await waitFor(() => status('plc-3').at(-1) === 'online' && status('plc-4').at(-1) === 'online', 10_000, 'both devices online again');
  await waitFor(() => telemetry('plc-3').length > before, 10_000, 'readings again');
  expect(status('plc-3')).toEqual(['online', 'offline', 'online']);
  expect(connections).toBe(2);
  expect(gateway.counters().reconnects).toBe(1);
  await waitFor(() => gateway.health().status === 'ok', 10_000, 'the gateway healthy again');
});

it('a refused connection does not crash the gateway: the device is reported offline and the gateway keeps retrying', async () => {
  const port = await freePort(); // nobody listens here
  const w = await watch('lw/R/#');
  const gateway = new SerialGateway({ bus: tb.broker.bus as InProcessBus, spoolDir: join(dir, 'spool-2'), ports: [tcpPort('R/plc-1', port, 3)] });
  await gateway.start();
  cleanup.push(() => gateway.stop());
  await waitFor(() => w.got.find((m) => m.topic === topics.status('R', 'plc-1') && m.body.status === 'offline'), 10_000, 'the device reported offline');
  await waitFor(() => (gateway.counters().connect_failures ?? 0) >= 3, 10_000, 'three refused attempts');
  expect(gateway.health()).toMatchObject({ status: 'down' });
  expect(w.got.some((m) => m.topic === topics.telemetry('R', 'plc-1'))).toBe(false);
});

it('refuses two ports with the same unit id on one endpoint, naming the key', () => {
  expect(() => new SerialGateway({ bus: tb.broker.bus as InProcessBus, spoolDir: join(dir, 'spool-3'), ports: [tcpPort('R/a', 1502, 3), tcpPort('R/b', 1502, 3)] })).toThrow(/gateway\.ports\.1\.modbus\.unitId: unit id 3 on tcp:\/\/127\.0\.0\.1:1502 is already polled for ports\.0/);
  expect(() => new SerialGateway({ bus: tb.broker.bus as InProcessBus, spoolDir: join(dir, 'spool-3'), ports: [{ device: 'R/c', codec: 'modbus', transport: 'tcp', modbus: { registers: [{ name: 'x', address: 0 }] } }] })).toThrow(/gateway\.ports\.0: host: transport tcp needs `host:`/);
});

it("the simulator's Modbus TCP server: two simulated devices by unit id on one port, polled into the model's readings; set_speed reaches the model", async () => {
  const port = await freePort();
  const bus = tb.broker.bus as InProcessBus;
  const sim = new LineSimulator({ line: 'S', seed: 3, speedup: 5, bus, modbusTcpDevices: [{ device: 'conv-1', port, unitId: 3 }, { device: 'conv-2', port, unitId: 4 }] });
  await sim.start();
  cleanup.push(() => sim.stop());
  const w = await watch('lw/S/+/#');
  const gateway = new SerialGateway({
    bus,
    spoolDir: join(dir, 'spool-4'),
    ports: ['conv-1', 'conv-2'].map((device, i) => ({ device: `S/${device}`, type: 'conveyor' as const, codec: 'modbus' as const, transport: 'tcp' as const, host: '127.0.0.1', tcpPort: port, modbus: { ...modbusMapFor('conveyor', 3 + i), pollIntervalMs: 100 } })),
  });
  await gateway.start();
  cleanup.push(() => gateway.stop());

  const polled = (device: string) => w.got.filter((m) => m.topic === topics.telemetry('S', device)).map((m) => m.body.values as Record<string, number>);
  await waitFor(() => polled('conv-1').length > 0 && polled('conv-2').length > 0, 10_000, 'readings of both simulated devices');
  expect(Object.keys(polled('conv-2')[0]!).sort()).toEqual(['current', 'load', 'motorTemp', 'setpoint', 'speed', 'vibration']);
  expect(polled('conv-1')[0]!.setpoint).toBe(sim.model.snapshot('conv-1')!.values.setpoint);
  expect(w.got.find((m) => m.topic === topics.state('S', 'conv-1'))!.body).toMatchObject({ state: sim.model.snapshot('conv-1')!.state, type: 'conveyor' });

  const now = Date.now();
  await w.client.publishAsync(topics.cmd('S', 'conv-2'), JSON.stringify({ id: 's-1', action: 'set_speed', params: { speed: 22.5 }, origin: 'test', ts: now, expiresAt: now + 10_000 }), { qos: 1 });
  await waitFor(() => sim.model.snapshot('conv-2')!.values.setpoint === 22.5, 10_000, 'the model to take the new setpoint');
  await waitFor(() => polled('conv-2').some((v) => v.setpoint === 22.5), 10_000, 'the new setpoint polled back');
  expect(sim.model.snapshot('conv-1')!.values.setpoint).not.toBe(22.5);
});
