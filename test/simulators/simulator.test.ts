// LineSimulator against the real broker: devices with their own accounts and wills, commands
// obeyed and refused over MQTT, shared connections, and a legacy serial device behind the gateway.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import mqtt, { type MqttClient } from 'mqtt';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { MqttBus } from '../../bus/index.js';
import { topics, validatePayload, type MessageKind } from '../../contracts/index.js';
import { SerialGateway } from '../../gateway/index.js';
import { waitFor } from '../../lib/wait.js';
import { LineSimulator, modbusMapFor, parseScenario } from '../../simulators/index.js';
import { startTestBroker, type TestBroker } from '../harness/broker.js';
import { startPtyPair, type TestPtyPair } from '../harness/pty.js';

const ADMIN = { username: 'admin', password: 'admin-secret-1' };
const GW = { username: 'gw', password: 'gw-secret-one' };
const devicePassword = (device: string) => `pw-${device}-secret`;
const LAYOUT = { conveyors: 2, stations: 3, sensors: 1, bufferCapacity: 4 };
const IDS = ['line-ctl', 'conv-1', 'conv-2', 'st-1', 'st-2', 'st-3', 'env-1'];

let tb: TestBroker;
const cleanup: (() => Promise<void>)[] = [];

beforeAll(async () => {
  tb = await startTestBroker({ wsPort: null });
  await tb.addAccount(ADMIN.username, ADMIN.password, 'admin');
  await tb.addAccount(GW.username, GW.password, 'gateway');
  for (const id of IDS) await tb.addAccount(`A/${id}`, devicePassword(id), 'device');
});

afterEach(async () => {
  for (const c of cleanup.splice(0).reverse()) await c();
});

afterAll(async () => {
  await tb?.stop();
});

type Got = { topic: string; kind: MessageKind | undefined; body: Record<string, unknown> };

async function watch(filter = 'lw/A/#'): Promise<{ client: MqttClient; got: Got[] }> {
  const client = await mqtt.connectAsync(tb.url, { ...ADMIN, clientId: `${ADMIN.username}:watch-${Math.random().toString(36).slice(2, 8)}` });
  const got: Got[] = [];
  client.on('message', (topic, payload) => {
    const kind = topic.endsWith('/cmd/ack') ? 'ack' : (topic.split('/')[3] as MessageKind);
    got.push({ topic, kind, body: JSON.parse(payload.toString()) });
  });
  await client.subscribeAsync(filter, { qos: 1 });
  cleanup.push(() => client.endAsync());
  return { client, got };
}

function command(id: string, action: string, params: Record<string, unknown> = {}): string {
  const now = Date.now();
  return JSON.stringify({ id, action, params, origin: 'test', ts: now, expiresAt: now + 30_000 });
}

describe('LineSimulator over MQTT', () => {
  it('one connection per device: valid messages, retained online status, a will when it drops, commands obeyed and refused', async () => {
    const w = await watch();
    const scenario = parseScenario({ layout: LAYOUT, events: [{ at: '20s', offline: { device: 'conv-2', duration: '20s' } }] });
    const sim = new LineSimulator({ line: 'A', seed: 3, scenario, speedup: 10, mqtt: { url: tb.url, mode: 'per-device', credentials: (line, device) => ({ username: `${line}/${device}`, password: devicePassword(device) }) } });
    await sim.start();
    cleanup.push(() => sim.stop());
    expect(sim.counters().connections).toBe(IDS.length);

    await waitFor(() => IDS.every((id) => w.got.some((m) => m.topic === topics.telemetry('A', id))), 10_000, 'telemetry from every device');
    for (const m of w.got.filter((x) => x.kind !== 'cmd')) {
      const v = validatePayload(m.kind!, JSON.stringify(m.body));
      expect(v.ok, `${m.topic}: ${v.ok ? '' : v.error}`).toBe(true);
    }
    expect(w.got.find((m) => m.topic === topics.status('A', 'st-1'))?.body.status).toBe('online');

    await w.client.publishAsync(topics.cmd('A', 'conv-1'), command('c-1', 'set_speed', { speed: 20 }), { qos: 1 });
    await w.client.publishAsync(topics.cmd('A', 'conv-1'), command('c-2', 'set_speed', { speed: 95 }), { qos: 1 });
    const acks = () => w.got.filter((m) => m.topic === topics.ack('A', 'conv-1')).map((m) => m.body);
    await waitFor(() => acks().some((a) => a.id === 'c-1' && a.result === 'done'), 15_000, 'conv-1 to reach the new speed');
    expect(acks().map((a) => `${a.id}:${a.result}`)).toEqual(['c-1:accepted', 'c-2:rejected', 'c-1:done']);
    expect(acks().find((a) => a.id === 'c-2')!.reason).toMatch(/outside 0–60/);
    expect(sim.model.snapshot('conv-1')!.values.speed).toBeCloseTo(20, 0);

    // At 20 s simulated (2 s real) conv-2 drops off abruptly: the broker publishes its will.
    await waitFor(() => w.got.some((m) => m.topic === topics.status('A', 'conv-2') && m.body.status === 'offline'), 10_000, "conv-2's will");
    await waitFor(() => w.got.filter((m) => m.topic === topics.status('A', 'conv-2') && m.body.status === 'online').length >= 2, 10_000, 'conv-2 back online');
  });

  it('shared connections of a gateway account speak for many devices', async () => {
    const w = await watch('lw/B/+/telemetry');
    const sim = new LineSimulator({ line: 'B', seed: 1, devices: 300, speedup: 5, scenario: parseScenario({}), mqtt: { url: tb.url, mode: 'auto', sharedAccount: GW } });
    await sim.start();
    cleanup.push(() => sim.stop());
    expect(sim.counters().connections).toBe(1);
    await waitFor(() => new Set(w.got.map((m) => m.topic)).size === 300, 15_000, 'telemetry from all 300 devices');
    await w.client.publishAsync(topics.cmd('B', 'line-ctl'), command('s-1', 'set_strategy', { strategy: 'energy-saving' }), { qos: 1 });
    await waitFor(() => sim.counters().commands === 1, 10_000, 'the command to reach the model');
  });
});

describe.each(['text', 'ndjson'] as const)('a legacy serial device behind the gateway (%s)', (codec) => {
  let pty: TestPtyPair;
  let dir: string;

  it('frames flow device → serial → gateway → broker, commands back down, garbage counted', async () => {
    const line = codec === 'text' ? 'C' : 'D';
    dir = mkdtempSync(join(tmpdir(), 'linewatch-simgw-'));
    pty = await startPtyPair();
    cleanup.push(async () => {
      await pty.stop();
      rmSync(dir, { recursive: true, force: true });
    });
    const bus = await MqttBus.connect(tb.url, GW);
    cleanup.push(() => bus.close());
    const gateway = new SerialGateway({ bus, spoolDir: join(dir, 'spool'), ports: [{ path: pty.gateway, device: `${line}/conv-1`, codec, baudRate: 115200 }] });
    await gateway.start();
    cleanup.push(() => gateway.stop());
    const w = await watch(`lw/${line}/conv-1/#`);

    const scenario = parseScenario({ layout: LAYOUT, events: [{ at: '3s', garbage: { port: 'conv-1', bytes: 40 } }] });
    // conv-1 speaks over the serial line; the rest of the line publishes through a Bus (gateway account).
    const devicesBus = await MqttBus.connect(tb.url, GW);
    cleanup.push(() => devicesBus.close());
    const sim = new LineSimulator({ line, seed: 2, scenario, speedup: 5, bus: devicesBus, serialDevices: [{ device: 'conv-1', path: pty.device, codec, baudRate: 115200 }] });
    await sim.start();
    cleanup.push(() => sim.stop());

    await waitFor(() => w.got.filter((m) => m.topic === topics.telemetry(line, 'conv-1')).length >= 3, 10_000, 'conv-1 telemetry via the gateway');
    const t = w.got.find((m) => m.topic === topics.telemetry(line, 'conv-1'))!.body;
    expect(Object.keys(t.values as object).sort()).toEqual(['current', 'load', 'motorTemp', 'setpoint', 'speed', 'vibration']);

    await w.client.publishAsync(topics.cmd(line, 'conv-1'), command('g-1', 'set_speed', { speed: 15 }), { qos: 1 });
    await w.client.publishAsync(topics.cmd(line, 'conv-1'), command('g-2', 'set_speed', { speed: 61 }), { qos: 1 });
    const acks = () => w.got.filter((m) => m.topic === topics.ack(line, 'conv-1')).map((m) => `${m.body.id}:${m.body.result}`);
    await waitFor(() => acks().includes('g-1:done'), 15_000, 'the done ack through the gateway');
    expect(acks()).toEqual(['g-1:accepted', 'g-2:rejected', 'g-1:done']);

    await waitFor(() => sim.counters().garbage_bursts === 1, 10_000, 'the garbage burst');
    await waitFor(() => (gateway.counters().dropped_garbage ?? 0) + (gateway.counters().dropped_checksum ?? 0) + (gateway.counters().dropped_unknown_sentence ?? 0) + (gateway.counters().dropped_bad_field ?? 0) >= 1, 10_000, 'the gateway to drop the garbage');
  });
});

describe('a simulated Modbus RTU device polled by the gateway', () => {
  it('its registers become telemetry and state; set_speed becomes a register write the model obeys', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'linewatch-simmb-'));
    const pty = await startPtyPair();
    cleanup.push(async () => {
      await pty.stop();
      rmSync(dir, { recursive: true, force: true });
    });
    const scenario = parseScenario({ layout: LAYOUT });
    const bus = await MqttBus.connect(tb.url, GW);
    cleanup.push(() => bus.close());
    const sim = new LineSimulator({ line: 'E', seed: 4, scenario, speedup: 5, bus, serialDevices: [{ device: 'conv-1', path: pty.device, codec: 'modbus', unitId: 3, baudRate: 19200 }] });
    await sim.start();
    cleanup.push(() => sim.stop());
    const gateway = new SerialGateway({ bus, spoolDir: join(dir, 'spool'), ports: [{ path: pty.gateway, device: 'E/conv-1', codec: 'modbus', baudRate: 19200, modbus: { ...modbusMapFor('conveyor', 3), pollIntervalMs: 200 } }] });
    await gateway.start();
    cleanup.push(() => gateway.stop());
    const w = await watch('lw/E/conv-1/#');

    await waitFor(() => w.got.some((m) => m.topic === topics.telemetry('E', 'conv-1') && (m.body.values as { speed: number }).speed > 30), 15_000, 'polled readings of a running conveyor');
    const values = w.got.filter((m) => m.topic === topics.telemetry('E', 'conv-1')).at(-1)!.body.values as Record<string, number>;
    expect(Object.keys(values).sort()).toEqual(['current', 'load', 'motorTemp', 'setpoint', 'speed', 'vibration']);
    expect(values.setpoint).toBe(40);
    expect(w.got.find((m) => m.topic === topics.state('E', 'conv-1'))!.body.state).toBe('RUNNING');

    await w.client.publishAsync(topics.cmd('E', 'conv-1'), command('mb-1', 'set_speed', { speed: 22.5 }), { qos: 1 });
    await waitFor(() => w.got.some((m) => m.topic === topics.ack('E', 'conv-1') && m.body.result === 'done'), 10_000, 'the write to be confirmed');
    await waitFor(() => sim.model.snapshot('conv-1')!.values.setpoint === 22.5, 10_000, 'the model to take the new setpoint');
    await waitFor(() => w.got.some((m) => m.topic === topics.telemetry('E', 'conv-1') && (m.body.values as { setpoint: number }).setpoint === 22.5), 10_000, 'the new setpoint polled back');
  });
});
