// Modbus RTU polling over a PTY pair: modbus-serial's ServerSerial plays the device on one end,
// the gateway polls the other; readings and a set_speed write travel through a real broker.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import mqtt from 'mqtt';
import modbusSerial from 'modbus-serial';
import { afterAll, beforeAll, expect, it } from 'vitest';
import type { InProcessBus } from '../../broker/in-process-bus.js';
import { topics } from '../../contracts/index.js';
import { SerialGateway } from '../../gateway/index.js';
import { waitFor, withTimeout } from '../../lib/wait.js';
import { startTestBroker, type TestBroker } from '../harness/broker.js';
import { startPtyPair, type TestPtyPair } from '../harness/pty.js';

const WATCH = { username: 'watcher', password: 'watch-secret-1' };
let tb: TestBroker;
let pty: TestPtyPair;
let server: InstanceType<typeof modbusSerial.ServerSerial>;
let gateway: SerialGateway;
let dir: string;
// The device's registers: 0 speed ×10, 1 motor temperature ×10 (signed), 2 state code, 10 speed setpoint ×10.
const holding = new Map<number, number>([
  [0, 405],
  [1, 0x10000 - 25], // −2.5 °C
  [2, 0],
  [10, 400],
]);

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'linewatch-modbus-'));
  tb = await startTestBroker({ wsPort: null });
  await tb.addAccount(WATCH.username, WATCH.password, 'admin');
  pty = await startPtyPair();
  server = new modbusSerial.ServerSerial(
    {
      getHoldingRegister: (addr: number) => holding.get(addr) ?? 0,
      setRegister: (addr: number, value: number) => {
        holding.set(addr, value);
      },
    },
    { path: pty.device, baudRate: 19200, unitID: 7 },
  );
  await withTimeout(new Promise((resolve) => server.on('initialized', resolve)), 10_000, 'the Modbus server to open its port');
  gateway = new SerialGateway({
    bus: tb.broker.bus as InProcessBus,
    spoolDir: join(dir, 'spool'),
    ports: [
      {
        path: pty.gateway,
        device: 'A/plc-1',
        codec: 'modbus',
        baudRate: 19200,
        modbus: {
          unitId: 7,
          pollIntervalMs: 100,
          registers: [
            { name: 'speed', address: 0, scale: 10 },
            { name: 'motorTemp', address: 1, scale: 10, signed: true },
            { name: 'setpoint', address: 10, scale: 10 },
          ],
          stateRegister: { address: 2, states: ['RUNNING', 'IDLE', 'FAULT'] },
          commands: { set_speed: { address: 10, scale: 10 } },
        },
      },
    ],
  });
  await gateway.start();
});

afterAll(async () => {
  await gateway?.stop();
  await new Promise((resolve) => server?.close(resolve));
  await pty?.stop();
  await tb?.stop();
  rmSync(dir, { recursive: true, force: true });
});

it('polls registers into telemetry and state, and writes set_speed to the setpoint register', async () => {
  const client = await mqtt.connectAsync(tb.url, { ...WATCH, clientId: `${WATCH.username}:watch-${Math.random().toString(36).slice(2, 8)}` });
  try {
    const got: { topic: string; body: Record<string, unknown> }[] = [];
    client.on('message', (topic, p) => got.push({ topic, body: JSON.parse(p.toString()) }));
    await client.subscribeAsync('lw/A/plc-1/#', { qos: 1 });
    await waitFor(() => got.find((m) => m.topic === topics.telemetry('A', 'plc-1')), 10_000, 'a polled reading');
    expect(got.find((m) => m.topic === topics.telemetry('A', 'plc-1'))!.body.values).toEqual({ speed: 40.5, motorTemp: -2.5, setpoint: 40 });
    expect(got.find((m) => m.topic === topics.state('A', 'plc-1'))!.body.state).toBe('RUNNING');

    holding.set(2, 2); // the device faults
    await waitFor(() => got.find((m) => m.topic === topics.state('A', 'plc-1') && m.body.state === 'FAULT'), 10_000, 'the FAULT state');

    const now = Date.now();
    await client.publishAsync(topics.cmd('A', 'plc-1'), JSON.stringify({ id: 'm-1', action: 'set_speed', params: { speed: 25.5 }, origin: 'test', ts: now, expiresAt: now + 10_000 }), { qos: 1 });
    await client.publishAsync(topics.cmd('A', 'plc-1'), JSON.stringify({ id: 'm-2', action: 'stop', params: {}, origin: 'test', ts: now, expiresAt: now + 10_000 }), { qos: 1 });
    await waitFor(() => got.find((m) => m.topic === topics.ack('A', 'plc-1') && m.body.id === 'm-1' && m.body.result === 'done'), 10_000, 'the done ack');
    expect(holding.get(10)).toBe(255);
    const stopAck = () => got.find((m) => m.topic === topics.ack('A', 'plc-1') && m.body.id === 'm-2');
    await waitFor(stopAck, 10_000, 'the stop answer');
    expect(stopAck()!.body).toMatchObject({ result: 'rejected', reason: expect.stringMatching(/no register for stop/) });
    await waitFor(() => got.find((m) => m.topic === topics.telemetry('A', 'plc-1') && (m.body.values as { setpoint: number }).setpoint === 25.5), 10_000, 'the new setpoint read back');
    expect(gateway.counters()).toMatchObject({ commands_written: 1, commands_rejected: 1 });
  } finally {
    await client.endAsync();
  }
});
