// The serial gateway end to end: a socat PTY pair (device end written by the test, gateway end
// opened through serialport), the real linewatch broker with a gateway account, real MQTT clients.
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import mqtt, { type MqttClient } from 'mqtt';
import { SerialPort } from 'serialport';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { addAccount, brokerConfigSchema, startBroker, type LinewatchBroker } from '../../broker/index.js';
import { MqttBus } from '../../bus/index.js';
import { topics, validatePayload } from '../../contracts/index.js';
import { textCodec, ndjsonCodec } from '../../contracts/serial/index.js';
import { SerialGateway } from '../../gateway/index.js';
import { sleep, waitFor, withTimeout } from '../../lib/wait.js';
import { startPtyPair, type TestPtyPair } from '../harness/pty.js';
import { roleGrants } from '../../config/services.js';

const GW = { username: 'gw-1', password: 'gw-secret-one' };
const WATCH = { username: 'watcher', password: 'watch-secret-1' };

let dir: string;
let devicesFile: string;
let broker: LinewatchBroker;
let url: string;

async function startOurBroker(port = 0): Promise<LinewatchBroker> {
  return startBroker(brokerConfigSchema.parse({ host: '127.0.0.1', persistence: 'memory', port, wsPort: null, devicesFile }), { roles: roleGrants() });
}

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'linewatch-gw-test-'));
  devicesFile = join(dir, 'devices.json');
  await addAccount(devicesFile, { ...GW, role: 'gateway' });
  await addAccount(devicesFile, { ...WATCH, role: 'admin' });
  broker = await startOurBroker();
  url = `mqtt://127.0.0.1:${broker.ports.mqtt}`;
});

afterAll(async () => {
  await broker?.stop();
  rmSync(dir, { recursive: true, force: true });
});

/** A subscriber that records every message on `filter`. */
async function watch(filter: string): Promise<{ client: MqttClient; got: { topic: string; payload: string }[] }> {
  const client = await mqtt.connectAsync(url, { ...WATCH, clientId: `${WATCH.username}:watch-${Math.random().toString(36).slice(2, 8)}`, reconnectPeriod: 200 });
  const got: { topic: string; payload: string }[] = [];
  client.on('message', (topic, payload) => got.push({ topic, payload: payload.toString() }));
  await client.subscribeAsync(filter, { qos: 1 });
  return { client, got };
}

async function openDeviceEnd(path: string): Promise<SerialPort> {
  const port = new SerialPort({ path, baudRate: 115200, autoOpen: false });
  await new Promise<void>((resolve, reject) => port.open((e) => (e ? reject(e) : resolve())));
  return port;
}

function write(port: SerialPort, data: string | Buffer): Promise<void> {
  return new Promise((resolve, reject) => port.write(data, (e) => (e ? reject(e) : port.drain((d) => (d ? reject(d) : resolve())))));
}

interface Rig {
  pty: TestPtyPair;
  gateway: SerialGateway;
  bus: MqttBus;
  device: SerialPort;
  spoolDir: string;
}

const rigs: Rig[] = [];
const clients: MqttClient[] = [];

async function rig(codec: 'ndjson' | 'text', deviceId: string, extra: Record<string, unknown> = {}, maxInFlight?: number): Promise<Rig> {
  const pty = await startPtyPair();
  let bus: MqttBus | undefined;
  let gateway: SerialGateway | undefined;
  try {
    bus = await MqttBus.connect(url, { ...GW, reconnectPeriod: 200 });
    const spoolDir = join(dir, `spool-${deviceId}`);
    gateway = new SerialGateway({ bus, spoolDir, ...(maxInFlight ? { maxInFlight } : {}), ports: [{ path: pty.gateway, device: `A/${deviceId}`, codec, baudRate: 115200, reopenMinMs: 50, reopenMaxMs: 400, ...extra }] });
    await gateway.start();
    const g = gateway;
    await waitFor(() => g.portsOpen()[pty.gateway], 10_000, 'the gateway to open its port');
    const device = await openDeviceEnd(pty.device);
    const r = { pty, gateway, bus, device, spoolDir };
    rigs.push(r);
    return r;
  } catch (err) {
    // Half-built: undo what was made so a failure leaves no socat or connection behind.
    await gateway?.stop();
    await bus?.close();
    await pty.stop();
    throw err;
  }
}

afterEach(async () => {
  for (const c of clients.splice(0)) await c.endAsync(true);
  for (const r of rigs.splice(0)) {
    if (r.device.isOpen) await new Promise<void>((res) => r.device.close(() => res()));
    await r.gateway.stop();
    await r.bus.close();
    await r.pty.stop();
  }
});

/** Cuts the rig's gateway off the broker, has its device send 20 telemetry events (timestamps from `ts`) that go to the spool, and stops the gateway. */
async function spoolWhileAway(r: Rig, ts: (seq: number) => number): Promise<void> {
  await r.bus.client.endAsync(true); // the broker is unreachable for this gateway from now on
  for (let i = 0; i < 20; i++) await write(r.device, ndjsonCodec.encodeEvent('telemetry', { ts: ts(i), seq: i, values: { n: i } }));
  await waitFor(() => r.gateway.counters().spooled === 20, 10_000, 'the events to be spooled');
  await r.gateway.stop();
}

/** Starts a new gateway on the rig's port and spool, connected, and runs `check` with it and the seqs the broker receives from it. */
async function restartOnSpool(r: Rig, deviceId: string, check: (again: SerialGateway, seqs: number[]) => Promise<void>): Promise<void> {
  const seqs: number[] = [];
  await broker.bus.subscribe(`lw/A/${deviceId}/telemetry`, (_t, p) => {
    seqs.push(JSON.parse(p.toString()).seq as number);
  });
  const bus = await MqttBus.connect(url, GW);
  const again = new SerialGateway({ bus, spoolDir: r.spoolDir, ports: [{ path: r.pty.gateway, device: `A/${deviceId}`, codec: 'ndjson' }] });
  try {
    await again.start();
    await check(again, seqs);
  } finally {
    await again.stop();
    await bus.close();
  }
}

describe('SerialGateway', () => {
  it('forwards ndjson frames as valid device messages, keeping device ts and seq', async () => {
    const { device } = await rig('ndjson', 'nd-1');
    const w = await watch('lw/A/nd-1/#');
    clients.push(w.client);
    await write(device, ndjsonCodec.encodeEvent('state', { ts: 1767000000000, seq: 0, state: 'RUNNING', type: 'station' }));
    await write(device, ndjsonCodec.encodeEvent('telemetry', { ts: 1767000001000, seq: 1, values: { cycleTime: 5.2 } }));
    await waitFor(() => w.got.length >= 2, 10_000, 'two messages at the subscriber');
    // MQTT orders messages per topic and QoS only (state is QoS 1, telemetry QoS 0): consumers
    // order a device's messages by its seq, so this looks them up by topic.
    expect(w.got.map((m) => m.topic).sort()).toEqual([topics.state('A', 'nd-1'), topics.telemetry('A', 'nd-1')]);
    const state = w.got.find((m) => m.topic === topics.state('A', 'nd-1'))!;
    const telemetry = w.got.find((m) => m.topic === topics.telemetry('A', 'nd-1'))!;
    expect(JSON.parse(state.payload)).toEqual({ ts: 1767000000000, seq: 0, state: 'RUNNING', type: 'station' });
    expect(validatePayload('telemetry', telemetry.payload)).toMatchObject({ ok: true, value: { seq: 1, values: { cycleTime: 5.2 } } });
  });

  it('drops garbage, bad checksums, overlong lines and schema violations, counting each reason', async () => {
    const { device, gateway } = await rig('text', 'tx-1', { maxFrameBytes: 64 });
    const w = await watch('lw/A/tx-1/telemetry');
    clients.push(w.client);
    await write(device, textCodec.encodeEvent('telemetry', { values: { n: 1 } }));
    await write(device, Buffer.from([0x00, 0xff, 0x13, 0x37, 0x0a])); // binary noise
    await write(device, '$TM,n=2*00\n'); // wrong checksum
    await write(device, `$TM,${'x=1,'.repeat(40)}x=1*00\n`); // longer than 64 bytes
    await write(device, 'hello there\n'); // not a sentence
    await write(device, textCodec.encodeEvent('telemetry', { values: { n: 3 } }));
    await waitFor(() => w.got.length >= 2, 10_000, 'the two good frames');
    await sleep(100);
    expect(w.got.map((m) => JSON.parse(m.payload).values.n)).toEqual([1, 3]);
    expect(JSON.parse(w.got[1]!.payload).seq).toBe(JSON.parse(w.got[0]!.payload).seq + 1); // stamped by the gateway
    const c = gateway.counters();
    expect(c).toMatchObject({ forwarded: 2, dropped_garbage: 2, dropped_checksum: 1, dropped_overlong: 1 });
  });

  it('survives the port disappearing mid-stream and reopens it', async () => {
    const r = await rig('text', 'tx-2');
    const w = await watch('lw/A/tx-2/telemetry');
    clients.push(w.client);
    await write(r.device, textCodec.encodeEvent('telemetry', { values: { n: 1 } }));
    const first = textCodec.encodeEvent('telemetry', { values: { n: 1 } }).length;
    await write(r.device, '$TM,n='); // a partial frame when the cable goes
    await waitFor(() => w.got.length >= 1, 10_000, 'the first frame');
    await waitFor(() => r.gateway.counters().bytes_in === first + 6, 10_000, 'the partial frame to reach the gateway');
    await r.pty.unplug();
    await waitFor(() => !r.gateway.portsOpen()[r.pty.gateway], 10_000, 'the gateway to notice the port is gone');
    await sleep(300); // a few failed reopen attempts with backoff
    await r.pty.replug();
    await waitFor(() => r.gateway.portsOpen()[r.pty.gateway], 10_000, 'the gateway to reopen the port');
    r.device = await openDeviceEnd(r.pty.device);
    await write(r.device, textCodec.encodeEvent('telemetry', { values: { n: 2 } }));
    await waitFor(() => w.got.length >= 2, 10_000, 'the frame after the reopen');
    expect(w.got.map((m) => JSON.parse(m.payload).values.n)).toEqual([1, 2]);
    const c = r.gateway.counters();
    expect(c.port_reopens).toBe(1);
    expect(c.dropped_partial).toBe(1);
  });

  it('carries a command MQTT → gateway → serial → device → ack → MQTT', async () => {
    const { device } = await rig('text', 'tx-3');
    const w = await watch('lw/A/tx-3/cmd/ack');
    clients.push(w.client);
    // The test plays the device: decode CM sentences, answer with AK sentences.
    let buffered = '';
    device.on('data', (d: Buffer) => {
      buffered += d.toString();
      let nl: number;
      while ((nl = buffered.indexOf('\n')) >= 0) {
        const line = buffered.slice(0, nl);
        buffered = buffered.slice(nl + 1);
        const cmd = textCodec.decodeCommand(line);
        if (!cmd.ok) continue;
        const speed = cmd.value.params.speed as number;
        const answer = speed > 60 ? { id: cmd.value.id, result: 'rejected', reason: 'above 60 m/min' } : { id: cmd.value.id, result: 'done' };
        void write(device, textCodec.encodeEvent('ack', answer));
      }
    });
    const sender = await mqtt.connectAsync(url, { ...WATCH, clientId: `${WATCH.username}:sender` });
    clients.push(sender);
    const now = Date.now();
    await sender.publishAsync(topics.cmd('A', 'tx-3'), JSON.stringify({ id: 'c-ok', action: 'set_speed', params: { speed: 30 }, origin: 'test', ts: now, expiresAt: now + 10_000 }), { qos: 1 });
    await sender.publishAsync(topics.cmd('A', 'tx-3'), JSON.stringify({ id: 'c-fast', action: 'set_speed', params: { speed: 90 }, origin: 'test', ts: now, expiresAt: now + 10_000 }), { qos: 1 });
    await sender.publishAsync(topics.cmd('A', 'tx-3'), JSON.stringify({ id: 'c-old', action: 'stop', params: {}, origin: 'test', ts: now - 20_000, expiresAt: now - 10_000 }), { qos: 1 });
    await waitFor(() => w.got.length >= 3, 10_000, 'three acks');
    const acks = w.got.map((m) => JSON.parse(m.payload));
    expect(acks.find((a) => a.id === 'c-ok')).toMatchObject({ result: 'done' });
    expect(acks.find((a) => a.id === 'c-fast')).toMatchObject({ result: 'rejected', reason: 'above 60 m/min' });
    expect(acks.find((a) => a.id === 'c-old')).toMatchObject({ result: 'rejected', reason: expect.stringMatching(/expired/) });
  });

  it('stores events on disk while the broker is away and delivers all of them in order afterwards', async () => {
    const r = await rig('ndjson', 'nd-2');
    const port = broker.ports.mqtt;
    // Counted inside the broker: a subscription made as soon as the restarted broker is up is in
    // place before the gateway (a TCP client that must reconnect and authenticate) can publish.
    const seqs: number[] = [];
    const record = (_t: string, p: Buffer): void => {
      seqs.push(JSON.parse(p.toString()).seq as number);
    };
    await broker.bus.subscribe('lw/A/nd-2/telemetry', record);
    const frame = (seq: number) => ndjsonCodec.encodeEvent('telemetry', { ts: 1767000000000 + seq * 1000, seq, values: { n: seq } });
    for (let i = 0; i < 5; i++) await write(r.device, frame(i));
    await waitFor(() => seqs.length >= 5, 10_000, 'the first five events');

    await broker.stop();
    await waitFor(() => !r.bus.client.connected, 10_000, 'the gateway to notice the broker is gone');
    for (let i = 5; i < 105; i++) await write(r.device, frame(i));
    await waitFor(() => r.gateway.counters().spooled! >= 100, 10_000, 'the events to reach the spool');
    expect(r.gateway.counters().spool_backlog_bytes).toBeGreaterThan(0);

    broker = await startOurBroker(port); // same port: the gateway reconnects by itself
    await broker.bus.subscribe('lw/A/nd-2/telemetry', record);
    await waitFor(() => seqs.length >= 105, 15_000, 'every event after the broker came back');
    await waitFor(() => r.gateway.drained(), 10_000, 'the spool to drain');
    expect(seqs).toEqual(Array.from({ length: 105 }, (_, i) => i));
    expect(r.gateway.counters()).toMatchObject({ spooled: 100, replayed: 100, spool_backlog_bytes: 0 });
  });

  it('a port faster than the broker overflows to the spool and still delivers everything in order', async () => {
    const r = await rig('ndjson', 'nd-4', {}, 20);
    const seqs: number[] = [];
    await broker.bus.subscribe('lw/A/nd-4/telemetry', (_t, p) => {
      seqs.push(JSON.parse(p.toString()).seq as number);
    });
    const total = 4000;
    let chunk = '';
    for (let i = 0; i < total; i++) chunk += ndjsonCodec.encodeEvent('telemetry', { ts: 1767000000000 + i, seq: i, values: { n: i } });
    await write(r.device, chunk);
    await waitFor(() => seqs.length >= total, 20_000, `all ${total} events`);
    await waitFor(() => r.gateway.drained(), 10_000, 'the gateway to drain');
    expect(seqs).toEqual(Array.from({ length: total }, (_, i) => i));
    const c = r.gateway.counters();
    expect(c.forwarded).toBe(total);
    expect(c.published! + c.replayed!).toBe(total);
    expect(c.spooled).toBeGreaterThan(0); // the overflow path was taken
  }, 60_000);

  it('keeps spooled events across a gateway restart', async () => {
    const r = await rig('ndjson', 'nd-3');
    await spoolWhileAway(r, (seq) => 1767000000000 + seq);
    await restartOnSpool(r, 'nd-3', async (again, seqs) => {
      await waitFor(() => seqs.length >= 20, 10_000, 'the spooled events from before the restart');
      expect(seqs).toEqual(Array.from({ length: 20 }, (_, i) => i));
      await waitFor(() => again.drained(), 10_000, 'the spool to drain');
    });
  });
  it('skips and counts corrupt spool records instead of crash-looping on them', async () => {
    // A spool of the format before lib/wal (spool.ndjson), left behind with damage between two good
    // records and after the last one (a torn write, bytes from a bad disk, a record from a foreign
    // writer): moved into the log at start, its bad lines counted, the good ones replayed.
    const spoolDir = join(dir, 'spool-corrupt');
    mkdirSync(spoolDir, { recursive: true });
    const good = (seq: number): string => JSON.stringify({ topic: 'lw/A/nd-5/telemetry', payload: JSON.stringify({ ts: 1767000000000 + seq, seq, values: { n: seq } }), retain: false });
    const damaged = ['{"topic":"lw/A/nd-5/tele', '\u0000\u00ff not json', '{"topic":5,"payload":"x","retain":false}', 'null', '[]'];
    writeFileSync(join(spoolDir, 'spool.ndjson'), [good(0), ...damaged, good(1), ...damaged].map((line) => `${line}\n`).join(''));

    const seqs: number[] = [];
    await broker.bus.subscribe('lw/A/nd-5/telemetry', (_t, p) => {
      seqs.push(JSON.parse(p.toString()).seq as number);
    });
    const pty = await startPtyPair();
    const bus = await MqttBus.connect(url, GW);
    const gateway = new SerialGateway({ bus, spoolDir, ports: [{ path: pty.gateway, device: 'A/nd-5', codec: 'ndjson' }] });
    try {
      await gateway.start();
      await waitFor(() => gateway.drained(), 10_000, 'the spool with corrupt records to drain');
      await waitFor(() => seqs.length >= 2, 10_000, 'the two good spooled events');
      expect(seqs).toEqual([0, 1]);
      expect(gateway.counters()).toMatchObject({ replayed: 2, spool_corrupt_records: 2 * damaged.length, spool_backlog_bytes: 0 });
    } finally {
      await gateway.stop();
      await bus.close();
      await pty.stop();
    }
  });
  it('skips a record whose bytes changed on disk (a digit flipped, still valid JSON) in its own spool, counts it and replays everything after it', async () => {
    const r = await rig('ndjson', 'nd-6');
    const ts = (seq: number): number => 1767000000000 + seq * 1000;
    await spoolWhileAway(r, ts);

    // Flip one digit of event 10's timestamp wherever the spool keeps it: the record still parses
    // as JSON (a bit flip on a bad disk block), only a checksum can tell.
    const needle = Buffer.from(String(ts(10)));
    const hits = readdirSync(r.spoolDir)
      .map((name) => join(r.spoolDir, name))
      .filter((file) => readFileSync(file).includes(needle));
    expect(hits).toHaveLength(1);
    const bytes = readFileSync(hits[0]!);
    const at = bytes.indexOf(needle) + needle.length - 4; // the thousands digit: 1767000010000 → 1767000011000
    bytes[at] = bytes[at] === 0x30 ? 0x31 : 0x30;
    writeFileSync(hits[0]!, bytes);

    await restartOnSpool(r, 'nd-6', async (again, seqs) => {
      await waitFor(() => again.drained(), 10_000, 'the spool with a flipped digit to drain');
      await waitFor(() => seqs.length >= 19, 10_000, 'the 19 intact spooled events');
      expect(seqs).toEqual(Array.from({ length: 20 }, (_, i) => i).filter((seq) => seq !== 10));
      expect(again.counters()).toMatchObject({ replayed: 19, spool_corrupt_records: 1, spool_torn_records: 0, spool_backlog_bytes: 0 });
    });
  });
});

describe('gateway harness cleanup', () => {
  it('leaves no socat behind', async () => {
    const pty = await startPtyPair();
    const pid = pty.pid();
    await withTimeout(pty.stop(), 10_000, 'socat to stop');
    expect(() => process.kill(pid, 0)).toThrow();
  });
});
