// Gateway throughput: frames/s one SerialGateway forwards from one serial port (a socat PTY
// pair) to the broker, counted at an MQTT subscriber. Reference: the same messages published
// straight to the same broker by one MQTT client (QoS 1), counted the same way.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import mqtt from 'mqtt';
import { SerialPort } from 'serialport';
import { brokerConfigSchema, startBroker } from '../broker/index.js';
import { MqttBus } from '../bus/index.js';
import { openPtyPair } from '../cli/up/pty-pair.js';
import { ndjsonCodec, textCodec, type LineCodec } from '../contracts/serial/index.js';
import { SerialGateway } from '../gateway/index.js';
import { waitFor, withTimeout } from '../lib/wait.js';
import type { Report } from './report.js';
import { roleGrants } from '../config/services.js';

const FRAMES = 20_000;

export async function run(report: Report): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'linewatch-bench-gw-'));
  const broker = await startBroker(brokerConfigSchema.parse({ host: '127.0.0.1', persistence: 'memory', port: 0, wsPort: null, open: true, devicesFile: join(dir, 'devices.json'), statsIntervalMs: 60_000 }), { roles: roleGrants() });
  const url = `mqtt://127.0.0.1:${broker.ports.mqtt}`;
  const rows: (string | number)[][] = [];
  try {
    const reference = await direct(url);
    rows.push(['reference: one MQTT client publishing QoS 1 directly', FRAMES, reference.toFixed(0), '—']);
    for (const codec of [ndjsonCodec, textCodec]) {
      const { rate, spooled } = await throughGateway(url, dir, codec);
      rows.push([`gateway, ${codec.name} frames on one PTY`, FRAMES, rate.toFixed(0), spooled]);
    }
  } finally {
    await broker.stop();
    rmSync(dir, { recursive: true, force: true });
  }
  report.add({
    title: 'Serial gateway: frames forwarded from one port',
    note: `${FRAMES} telemetry frames written as fast as a socat PTY takes them; messages/s counted at an MQTT subscriber from its first to its last message. The gateway decodes, validates against the contract and publishes QoS 1; frames beyond 1,000 unacknowledged publishes overflow to its disk spool (fsync'd) and are replayed in order. Broker: the embedded linewatch broker (open mode) in the same process.`,
    columns: ['path', 'frames', 'messages/s at subscriber', 'via spool'],
    rows,
  });
}

async function counter(url: string, filter: string, expected: number): Promise<{ done: Promise<number>; close: () => Promise<void> }> {
  const sub = await mqtt.connectAsync(url, { clientId: `bench-sub-${Math.random()}` });
  let first = 0;
  let n = 0;
  let resolveDone: (ms: number) => void;
  const done = new Promise<number>((r) => (resolveDone = r));
  sub.on('message', () => {
    if (n === 0) first = performance.now();
    if (++n === expected) resolveDone(performance.now() - first);
  });
  await sub.subscribeAsync(filter, { qos: 1 });
  return { done, close: () => sub.endAsync() };
}

async function direct(url: string): Promise<number> {
  const c = await counter(url, 'lw/R/dev/telemetry', FRAMES);
  const pub = await mqtt.connectAsync(url, { clientId: 'bench-pub' });
  const sends: Promise<unknown>[] = [];
  for (let i = 0; i < FRAMES; i++) sends.push(pub.publishAsync('lw/R/dev/telemetry', JSON.stringify({ ts: Date.now(), seq: i, values: { n: i } }), { qos: 1 }));
  const ms = await withTimeout(c.done, 60_000, 'every frame at the subscriber');
  await Promise.all(sends);
  await pub.endAsync();
  await c.close();
  return (FRAMES / ms) * 1000;
}

async function throughGateway(url: string, dir: string, codec: LineCodec): Promise<{ rate: number; spooled: number }> {
  const pair = await openPtyPair(join(dir, `dev-${codec.name}`), join(dir, `gw-${codec.name}`));
  const bus = await MqttBus.connect(url, { clientId: `bench-gw-${codec.name}` });
  const gateway = new SerialGateway({ bus, spoolDir: join(dir, `spool-${codec.name}`), ports: [{ path: pair.b, device: `G/${codec.name}`, codec: codec.name, baudRate: 115200, maxFrameBytes: 512 }] });
  await gateway.start();
  await waitFor(() => gateway.portsOpen()[pair.b], 5000, 'the gateway port to open');
  const c = await counter(url, `lw/G/${codec.name}/telemetry`, FRAMES);
  const device = new SerialPort({ path: pair.a, baudRate: 115200, autoOpen: false });
  await new Promise<void>((res, rej) => device.open((e) => (e ? rej(e) : res())));
  try {
    for (let i = 0; i < FRAMES; i += 500) {
      let chunk = '';
      for (let j = i; j < Math.min(FRAMES, i + 500); j++) chunk += codec.encodeEvent('telemetry', { ts: 1767000000000 + j, seq: j, values: { speed: 40.5, motorTemp: 61.25, n: j } });
      await new Promise<void>((res, rej) => device.write(chunk, (e) => (e ? rej(e) : device.drain((d) => (d ? rej(d) : res())))));
    }
    const ms = await withTimeout(c.done, 60_000, 'every frame at the subscriber');
    return { rate: (FRAMES / ms) * 1000, spooled: gateway.counters().spooled ?? 0 };
  } finally {
    await new Promise<void>((res) => device.close(() => res()));
    await c.close();
    await gateway.stop();
    await bus.close();
    await pair.stop();
  }
}
