// `linewatch simulate`, `linewatch gateway` and `linewatch ports` as a user runs them (dist/ build).
import { spawn, type ChildProcess } from 'node:child_process';
import { createServer, type AddressInfo } from 'node:net';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import mqtt from 'mqtt';
import { SerialPort } from 'serialport';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { textCodec } from '../../contracts/serial/index.js';
import { waitFor, withTimeout } from '../../lib/wait.js';
import { startTestBroker, type TestBroker } from '../harness/broker.js';
import { run } from '../harness/mosquitto-clients.js';
import { startPtyPair } from '../harness/pty.js';

const BIN = fileURLToPath(new URL('../../bin/linewatch.js', import.meta.url));
const BUILT = fileURLToPath(new URL('../../dist/cli/main.js', import.meta.url));
const ADMIN = { username: 'admin', password: 'admin-secret-1' };
const DEVICES = ['line-ctl', 'conv-1', 'conv-2', 'conv-3', 'st-1', 'st-2', 'st-3', 'st-4', 'st-5', 'env-1', 'env-2'];

let dir: string;
let tb: TestBroker;

beforeAll(async () => {
  if (!existsSync(BUILT)) throw new Error('dist/ is missing: run `npm run build` before these tests (npm test does)');
  dir = mkdtempSync(join(tmpdir(), 'linewatch-sim-cli-'));
  tb = await startTestBroker({ wsPort: null });
  await tb.addAccount(ADMIN.username, ADMIN.password, 'admin');
  await tb.addAccount('gw-cli', 'gw-cli-secret', 'gateway');
  for (const d of DEVICES) await tb.addAccount(`A/${d}`, 'same-for-all-devices', 'device');
});

afterAll(async () => {
  await tb?.stop();
  rmSync(dir, { recursive: true, force: true });
});

const linewatch = (...args: string[]) => run(process.execPath, [BIN, ...args], 30_000);

/** Starts a long-running command; stop() sends SIGINT to its PID and waits (bounded) for the exit code. */
function background(args: string[], env: Record<string, string> = {}): { child: ChildProcess; output: () => string; stop: () => Promise<number | null> } {
  const child = spawn(process.execPath, [BIN, ...args], { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, LINEWATCH_LOG_LEVEL: 'warn', ...env } });
  let out = '';
  child.stdout!.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr!.on('data', (d: Buffer) => (out += d.toString()));
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  return {
    child,
    output: () => out,
    stop: async () => {
      if (child.exitCode === null) child.kill('SIGINT');
      try {
        return await withTimeout(exited, 10_000, 'the command to exit after SIGINT');
      } finally {
        if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
      }
    },
  };
}

describe('linewatch simulate', () => {
  it('refuses to start when its /healthz port is taken, before any device connects or publishes', async () => {
    const open = await startTestBroker({ wsPort: null, open: true });
    const taken = createServer();
    await new Promise<void>((resolve) => taken.listen(0, '127.0.0.1', resolve));
    const watcher = await mqtt.connectAsync(open.url, { clientId: `health-port-watch-${process.pid}`, reconnectPeriod: 0 });
    try {
      const seen: string[] = [];
      watcher.on('message', (topic) => seen.push(topic));
      await watcher.subscribeAsync('lw/HP/#', { qos: 1 });
      const r = await linewatch('simulate', '--broker', open.url, '--line', 'HP', '--health-port', String((taken.address() as AddressInfo).port));
      expect(r.code).toBe(2);
      expect(r.stderr).toMatch(/127\.0\.0\.1:\d+ is already in use .*so \/healthz and \/metrics cannot listen on it; pass --health-port PORT/);
      // A probe subscriber would have got the devices' retained online/offline statuses by now.
      const probe = await mqtt.connectAsync(open.url, { clientId: `health-port-probe-${process.pid}`, reconnectPeriod: 0 });
      const retained: string[] = [];
      probe.on('message', (topic) => retained.push(topic));
      await probe.subscribeAsync('lw/HP/#', { qos: 1 });
      await probe.endAsync();
      expect(retained).toEqual([]);
      expect(seen).toEqual([]);
    } finally {
      await watcher.endAsync();
      taken.close();
      await open.stop();
    }
  });

  it('refuses a bad scenario with one line naming the key', async () => {
    const file = join(dir, 'bad.yaml');
    writeFileSync(file, 'events:\n  - at: 10s\n    jam: { station: st-2, duration: forever }\n');
    const r = await linewatch('simulate', '--scenario', file, '--broker', tb.url, '--health-port', '0');
    expect(r.code).toBe(1);
    expect(r.stderr.trim().split('\n')).toHaveLength(1);
    expect(r.stderr).toMatch(/bad\.yaml: invalid scenario: events\.0\.jam\.duration: expected a duration/);
  });

  it('runs the demo line with device accounts and says offline on Ctrl-C', async () => {
    const watcher = await mqtt.connectAsync(tb.url, { ...ADMIN, clientId: `${ADMIN.username}:watch-${Math.random().toString(36).slice(2, 8)}` });
    const seen = new Map<string, string>();
    watcher.on('message', (topic, payload) => seen.set(topic, payload.toString()));
    await watcher.subscribeAsync('lw/A/#', { qos: 1 });
    const sim = background(['simulate', '--broker', tb.url, '--line', 'A', '--speedup', '5', '--seed', '3', '--health-port', '0'], { LINEWATCH_DEVICE_PASSWORD: 'same-for-all-devices' });
    try {
      await waitFor(() => DEVICES.every((d) => seen.has(`lw/A/${d}/telemetry`)), 20_000, 'telemetry from all 11 demo devices');
      expect(sim.output()).toMatch(/line A, 11 devices over 11 connection\(s\)/);
    } finally {
      const code = await sim.stop().catch(() => -1);
      if (code !== 0) await watcher.endAsync();
      expect(code).toBe(0);
    }
    await waitFor(() => DEVICES.every((d) => JSON.parse(seen.get(`lw/A/${d}/status`) ?? '{}').status === 'offline'), 5000, 'offline status from every device');
    await watcher.endAsync();
  }, 60_000);
});

describe('linewatch gateway', () => {
  it('needs a port', async () => {
    const r = await linewatch('gateway', '--broker', tb.url, '--config', join(dir, 'none.yaml'));
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/config file .*none\.yaml does not exist/);
    const r2 = await linewatch('gateway', '--broker', tb.url, '--port', '/dev/null');
    expect(r2.stderr).toMatch(/--port and --device go together/);
  });

  it('bridges a PTY to the broker', async () => {
    const pty = await startPtyPair();
    const watcher = await mqtt.connectAsync(tb.url, { ...ADMIN, clientId: `${ADMIN.username}:watch-${Math.random().toString(36).slice(2, 8)}` });
    const got: string[] = [];
    watcher.on('message', (_t, p) => got.push(p.toString()));
    await watcher.subscribeAsync('lw/L/pty-dev/telemetry', { qos: 1 });
    const gw = background(['gateway', '--broker', tb.url, '--port', pty.gateway, '--device', 'L/pty-dev', '--codec', 'text', '--username', 'gw-cli', '--spool-dir', join(dir, 'spool'), '--health-port', '0'], { LINEWATCH_MQTT_PASSWORD: 'gw-cli-secret' });
    const device = new SerialPort({ path: pty.device, baudRate: 9600, autoOpen: false });
    try {
      await waitFor(() => gw.output().includes('linewatch gateway:'), 20_000, 'the gateway to start').catch((err: Error) => {
        throw new Error(`${err.message}; it printed: ${gw.output()}`);
      });
      await new Promise<void>((res, rej) => device.open((e) => (e ? rej(e) : res())));
      // Keep writing until one arrives: the gateway may still be opening its end.
      await waitFor(
        async () => {
          device.write(textCodec.encodeEvent('telemetry', { values: { pressure: 2.5 } }));
          return got.length > 0;
        },
        20_000,
        'a frame through the gateway',
        200,
      ).catch((err: Error) => {
        throw new Error(`${err.message}; the gateway printed: ${gw.output()}`);
      });
      expect(JSON.parse(got[0]!).values).toEqual({ pressure: 2.5 });
    } finally {
      // Clean up everything first, then judge the exit code, so a failure leaves nothing behind.
      if (device.isOpen) await new Promise<void>((res) => device.close(() => res()));
      const code = await gw.stop().catch(() => -1);
      await watcher.endAsync();
      await pty.stop();
      expect(code).toBe(0);
    }
  }, 60_000);
});

describe('linewatch ports', () => {
  it('lists ports or says how to get udevadm', async () => {
    const r = await linewatch('ports');
    if (r.code === 0) expect(r.stdout.length).toBeGreaterThan(0);
    else expect(r.stderr).toMatch(/udevadm.*apt-get install udev/);
  });
});
