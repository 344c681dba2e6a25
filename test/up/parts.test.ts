// The parts `linewatch up` is composed of: paths that follow --data-dir, simulator accounts the
// real broker accepts (and that survive a restart), the socat PTY pair, and the status line.
import { spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import mqtt from 'mqtt';
import { SerialPort } from 'serialport';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ChildRegistry, reapLeftovers } from '../../cli/up/children.js';
import { underDataDir } from '../../cli/up/compose.js';
import { provisionDeviceAccounts } from '../../cli/up/credentials.js';
import { openPtyPair } from '../../cli/up/pty-pair.js';
import { StatusLine, formatStatus } from '../../cli/up/status.js';
import { waitFor, withTimeout } from '../../lib/wait.js';
import { startTestBroker, type TestBroker } from '../harness/broker.js';

let dir: string;
let broker: TestBroker;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'linewatch-up-parts-'));
  broker = await startTestBroker();
});

afterAll(async () => {
  await broker?.stop();
  rmSync(dir, { recursive: true, force: true });
});

describe('underDataDir', () => {
  it('moves default .linewatch/ paths under another data dir and leaves the rest alone', () => {
    expect(underDataDir('.linewatch/devices.json', '/tmp/x')).toBe('/tmp/x/devices.json');
    expect(underDataDir('.linewatch/gateway-spool', 'data')).toBe('data/gateway-spool');
    expect(underDataDir('.linewatch/devices.json', '.linewatch')).toBe('.linewatch/devices.json');
    expect(underDataDir('/etc/linewatch/devices.json', '/tmp/x')).toBe('/etc/linewatch/devices.json');
    expect(underDataDir('config/devices.json', '/tmp/x')).toBe('config/devices.json');
  });
});

describe('simulator accounts', () => {
  it('provisions device accounts the broker accepts, reuses them on restart, and keeps the passwords private', async () => {
    const dataDir = join(dir, 'data');
    const first = await provisionDeviceAccounts(dataDir, broker.devicesFile, ['A/conv-1', 'A/st-1']);
    expect(first.created).toBe(2);
    const creds = first.lookup('A', 'conv-1')!;
    expect(creds.username).toBe('A/conv-1');
    expect(creds.password.length).toBeGreaterThanOrEqual(16);
    expect(statSync(join(dataDir, 'sim-credentials.json')).mode & 0o777).toBe(0o600);

    const client = await mqtt.connectAsync(broker.url, { ...creds, clientId: 'A/conv-1:test', reconnectPeriod: 0 });
    await client.publishAsync('lw/A/conv-1/telemetry', JSON.stringify({ ts: Date.now(), seq: 1, values: { speed: 1 } }), { qos: 1 });
    await client.endAsync();

    const again = await provisionDeviceAccounts(dataDir, broker.devicesFile, ['A/conv-1', 'A/st-1']);
    expect(again.created).toBe(0);
    expect(again.lookup('A', 'conv-1')).toEqual(creds);
    expect(again.lookup('A', 'nope')).toBeUndefined();

    await expect(mqtt.connectAsync(broker.url, { username: 'A/conv-1', password: 'wrong-password', clientId: 'A/conv-1:bad', reconnectPeriod: 0 })).rejects.toThrow();
  });
});

describe('socat PTY pair', () => {
  it('carries bytes from one end to the other and leaves no socat behind', async () => {
    const pair = await openPtyPair(join(dir, 'pty-a'), join(dir, 'pty-b'));
    const a = new SerialPort({ path: pair.a, baudRate: 9600, autoOpen: false });
    const b = new SerialPort({ path: pair.b, baudRate: 9600, autoOpen: false });
    try {
      await Promise.all([a, b].map((p) => new Promise<void>((res, rej) => p.open((e) => (e ? rej(e) : res())))));
      const got = new Promise<string>((res) => {
        let text = '';
        b.on('data', (d: Buffer) => {
          text += d.toString();
          if (text.includes('\n')) res(text);
        });
      });
      a.write('{"hello":1}\n');
      expect(await withTimeout(got, 5000, 'bytes across the PTY pair')).toBe('{"hello":1}\n');
    } finally {
      await Promise.all([a, b].map((p) => new Promise<void>((res) => (p.isOpen ? p.close(() => res()) : res()))));
      await pair.stop();
    }
    expect(() => process.kill(pair.pid, 0)).toThrow();
  });
});

describe('leftover children', () => {
  it('ends a child a killed run left behind, and leaves an unrelated process with a recorded PID alone', async () => {
    const dataDir = join(dir, 'crashed');
    mkdirSync(dataDir);
    const pair = await openPtyPair(join(dataDir, 'pty-a'), join(dataDir, 'pty-b'));
    const stranger = spawn('sleep', ['30'], { stdio: 'ignore' });
    try {
      const registry = new ChildRegistry(dataDir);
      registry.add('socat', pair.pid);
      registry.add('sleep', stranger.pid!);
      // linewatch "dies" here without stopping anything; the next start reaps.
      const ended = await reapLeftovers(dataDir);
      expect(ended).toEqual([`socat (pid ${pair.pid})`]);
      await waitFor(() => { try { process.kill(pair.pid, 0); return false; } catch { return true; } }, 5000, 'socat to be gone');
      expect(stranger.exitCode).toBeNull();
      expect(await reapLeftovers(dataDir)).toEqual([]);
    } finally {
      stranger.kill('SIGKILL');
      await pair.stop();
    }
  });
});

describe('status line', () => {
  it('prints a plain timestamped line when stdout is not a terminal', () => {
    const chunks: string[] = [];
    const out = new Writable({ write: (c: Buffer, _e, cb) => (chunks.push(c.toString()), cb()) }) as unknown as NodeJS.WriteStream;
    const line = new StatusLine(() => ({ devicesOnline: 10, devicesKnown: 11, eventsPerSecond: 42.25, commands: 3, commandsAcked: 2, activeAlerts: 1, alarmsUnacked: 2, influxBacklog: { records: 512, bytes: 34_816, oldestAgeSeconds: 41.4 } }), out);
    line.print();
    expect(chunks.join('')).toMatch(/^\d{4}-\d\d-\d\dT\S+ status: devices 10\/11 online · 42\.3 events\/s · commands 3 \(2 acked\) · alarms 1 active, 2 to acknowledge · InfluxDB backlog 512 events, 34\.0 KiB, oldest 41 s\n$/);
    expect(formatStatus({ devicesOnline: 0, devicesKnown: 0, eventsPerSecond: 0, commands: 0, commandsAcked: 0, activeAlerts: 0, influxBacklog: null })).toContain('history off');
    expect(formatStatus({ devicesOnline: 0, devicesKnown: 0, eventsPerSecond: 0, commands: 0, commandsAcked: 0, activeAlerts: 0, influxBacklog: { records: 9, bytes: 900, oldestAgeSeconds: 7200 }, historianRefusing: 'disk full' })).toContain('InfluxDB backlog 9 events, 900 B, oldest 2.0 h (disk full: refusing events)');
    expect(formatStatus({ devicesOnline: 0, devicesKnown: 0, eventsPerSecond: 0, commands: 0, commandsAcked: 0, activeAlerts: 0, influxBacklog: { records: 0, bytes: 0, oldestAgeSeconds: 0 } })).toMatch(/InfluxDB backlog 0$/);
    expect(formatStatus({ devicesOnline: 0, devicesKnown: 0, eventsPerSecond: 0, commands: 0, commandsAcked: 0, activeAlerts: 0, influxBacklog: { records: 500, bytes: 34_000, oldestAgeSeconds: 3 }, influxDown: 'restarting' })).toContain('InfluxDB backlog 500 events, 33.2 KiB, oldest 3 s (InfluxDB down: restarting)');
  });
});
