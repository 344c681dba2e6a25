// Serial devices as first-class devices (issue 11, item 7), on socat PTY pairs and the real
// linewatch broker: a port's device `type` is stamped into what the gateway publishes for frames
// that carry none, and the gateway's `seq` never collides with a device-supplied one and never
// goes back, not even across a gateway killed with SIGKILL (the built CLI, `--type` included).
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { SerialPort } from 'serialport';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { MqttBus } from '../../bus/index.js';
import { SequenceTracker } from '../../contracts/sequence.js';
import { ndjsonCodec, textCodec } from '../../contracts/serial/index.js';
import { SerialGateway } from '../../gateway/index.js';
import { waitFor, withTimeout } from '../../lib/wait.js';
import { startTestBroker, type TestBroker } from '../harness/broker.js';
import { startPtyPair, type TestPtyPair } from '../harness/pty.js';

const BIN = fileURLToPath(new URL('../../bin/linewatch.js', import.meta.url));
const GW = { username: 'gw-id', password: 'gw-id-secret-1' };

let tb: TestBroker;
let dir: string;
const cleanups: (() => Promise<void>)[] = [];

beforeAll(async () => {
  tb = await startTestBroker({ wsPort: null });
  await tb.addAccount(GW.username, GW.password, 'gateway');
  dir = mkdtempSync(join(tmpdir(), 'linewatch-gw-identity-'));
});
afterAll(async () => {
  await tb?.stop();
  rmSync(dir, { recursive: true, force: true });
});
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

interface Published {
  kind: string;
  payload: { seq?: number; type?: string; state?: string; values?: Record<string, number> };
}

/** Every message the broker gets under lw/A/{device}/, in order. */
async function published(device: string): Promise<Published[]> {
  const got: Published[] = [];
  const unsubscribe = await tb.broker.bus.subscribe(`lw/A/${device}/#`, (topic, payload) => {
    got.push({ kind: topic.split('/').slice(3).join('/'), payload: JSON.parse(payload.toString()) as Published['payload'] });
  });
  cleanups.push(unsubscribe);
  return got;
}

async function pty(): Promise<TestPtyPair> {
  const pair = await startPtyPair();
  cleanups.push(() => pair.stop());
  return pair;
}

async function deviceEnd(path: string): Promise<SerialPort> {
  const port = new SerialPort({ path, baudRate: 115200, autoOpen: false });
  await new Promise<void>((resolve, reject) => port.open((e) => (e ? reject(e) : resolve())));
  cleanups.push(() => new Promise<void>((resolve) => (port.isOpen ? port.close(() => resolve()) : resolve())));
  return port;
}

function write(port: SerialPort, data: string): Promise<void> {
  return new Promise((resolve, reject) => port.write(data, (e) => (e ? reject(e) : port.drain((d) => (d ? reject(d) : resolve())))));
}

async function gatewayOn(pair: TestPtyPair, device: string, spoolDir: string, extra: Record<string, unknown> = {}): Promise<SerialGateway> {
  const bus = await MqttBus.connect(tb.url, { ...GW, clientId: `${GW.username}:${device}-${Math.random().toString(36).slice(2, 8)}` });
  cleanups.push(() => bus.close());
  const gateway = new SerialGateway({ bus, spoolDir, ports: [{ path: pair.gateway, device: `A/${device}`, codec: 'ndjson', baudRate: 115200, ...extra }] });
  cleanups.push(() => gateway.stop());
  await gateway.start();
  await waitFor(() => gateway.portsOpen()[pair.gateway] === true, 10_000, 'the gateway to open its port');
  return gateway;
}

/** The verdicts the consumers' sequence tracker gives the published seqs, in order. */
function verdicts(messages: readonly Published[]): string[] {
  const tracker = new SequenceTracker();
  return messages.map((message, index) => tracker.check('A/dev', message.payload.seq!, 1_767_000_000_000 + index));
}

describe('a gateway port’s device type', () => {
  it('is stamped into state, telemetry and status for frames that carry none (text frames never do); a frame’s own type is kept', async () => {
    const ndjson = await pty();
    const got = await published('st-9');
    await gatewayOn(ndjson, 'st-9', join(dir, 'spool-type'), { type: 'station' });
    const device = await deviceEnd(ndjson.device);
    await write(device, ndjsonCodec.encodeEvent('state', { state: 'RUNNING' }));
    await write(device, ndjsonCodec.encodeEvent('telemetry', { values: { cycleTime: 5 } }));
    await write(device, ndjsonCodec.encodeEvent('status', { status: 'online' }));
    await write(device, ndjsonCodec.encodeEvent('telemetry', { type: 'sensor', values: { cycleTime: 6 } }));
    await waitFor(() => got.length >= 4, 10_000, 'four messages from st-9');
    // Kinds of different QoS may arrive in either order: compare as sorted lists.
    expect(got.map((message) => `${message.kind} ${message.payload.type} ${message.payload.values?.cycleTime ?? '-'}`).sort()).toEqual(['state station -', 'status station -', 'telemetry sensor 6', 'telemetry station 5']);

    const text = await pty();
    const fromText = await published('cv-9');
    await gatewayOn(text, 'cv-9', join(dir, 'spool-type-text'), { codec: 'text', type: 'conveyor' });
    await write(await deviceEnd(text.device), textCodec.encodeEvent('telemetry', { values: { motorTemp: 81 } }));
    await waitFor(() => fromText.length >= 1, 10_000, 'a message from cv-9');
    expect(fromText[0]).toMatchObject({ kind: 'telemetry', payload: { type: 'conveyor', values: { motorTemp: 81 } } });
  });
});

describe('the gateway’s seq', () => {
  it('never collides with a device-supplied seq: a state after {"seq":3} is not a duplicate of it', async () => {
    const pair = await pty();
    const got = await published('mix-1');
    await gatewayOn(pair, 'mix-1', join(dir, 'spool-mix'));
    const device = await deviceEnd(pair.device);
    for (let n = 0; n < 3; n++) await write(device, ndjsonCodec.encodeEvent('telemetry', { values: { n } })); // stamped 0, 1, 2
    await write(device, `${JSON.stringify({ kind: 'telemetry', seq: 3, values: { n: 3 } })}\n`);
    await write(device, `${JSON.stringify({ kind: 'state', state: 'RUNNING' })}\n`);
    await write(device, `${JSON.stringify({ kind: 'telemetry', seq: 4, values: { n: 4 } })}\n`); // the device's next: after the stamped state
    await waitFor(() => got.length >= 6, 10_000, 'six messages from mix-1');
    // State (QoS 1, retained) and telemetry (QoS 0) may arrive in either order: compare the numbers.
    expect(got.map((message) => message.payload.seq!).sort((a, b) => a - b)).toEqual([0, 1, 2, 3, 4, 5]);
    expect(got.find((message) => message.kind === 'state')?.payload.seq).toBe(4);
    expect(verdicts(got).filter((verdict) => verdict === 'duplicate')).toEqual([]);
  });

  it('goes on from where it was after a clean stop, and never goes back after a SIGKILL (linewatch gateway --type)', async () => {
    const pair = await pty();
    const spoolDir = join(dir, 'spool-restart');
    const got = await published('rs-1');
    const start = async (): Promise<ChildProcess> => {
      const child = spawn(process.execPath, [BIN, 'gateway', '--broker', tb.url, '--port', pair.gateway, '--device', 'A/rs-1', '--type', 'plc', '--baud', '115200', '--spool-dir', spoolDir, '--username', GW.username, '--health-port', '0'], {
        stdio: ['ignore', 'pipe', 'pipe'],
        env: { ...process.env, LINEWATCH_MQTT_PASSWORD: GW.password },
      });
      let out = '';
      child.stdout!.on('data', (d: Buffer) => (out += d.toString()));
      child.stderr!.on('data', (d: Buffer) => (out += d.toString()));
      await waitFor(() => out.includes('linewatch gateway: ') || child.exitCode !== null, 20_000, 'the gateway to start');
      expect(child.exitCode, out).toBeNull();
      return child;
    };
    const stop = async (child: ChildProcess, signal: NodeJS.Signals): Promise<void> => {
      child.kill(signal);
      await withTimeout(new Promise((resolve) => (child.exitCode !== null || child.signalCode !== null ? resolve(undefined) : child.once('exit', resolve))), 15_000, `the gateway to exit after ${signal}`);
    };
    const send = async (count: number, total: number): Promise<void> => {
      const device = await deviceEnd(pair.device);
      for (let n = 0; n < count; n++) await write(device, ndjsonCodec.encodeEvent('telemetry', { values: { n } }));
      await waitFor(() => got.length >= total, 10_000, `${total} messages from rs-1`);
      await new Promise<void>((resolve) => device.close(() => resolve()));
    };

    let child = await start();
    cleanups.push(() => stop(child, 'SIGKILL'));
    await send(3, 3);
    await stop(child, 'SIGTERM');
    child = await start();
    await send(2, 5);
    await stop(child, 'SIGKILL'); // no chance to write where it was
    child = await start();
    await send(2, 7);

    const seqs = got.map((message) => message.payload.seq!);
    expect(seqs.slice(0, 5)).toEqual([0, 1, 2, 3, 4]); // a clean stop keeps the exact place
    for (let index = 1; index < seqs.length; index++) expect(seqs[index], `seq ${index} of ${seqs.join(',')}`).toBeGreaterThan(seqs[index - 1]!);
    expect(new Set(got.map((message) => message.payload.type))).toEqual(new Set(['plc']));
  });
});
