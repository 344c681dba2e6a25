// The user flow from the README, with the built CLI (dist/): start `linewatch broker`, add a
// device with `linewatch devices add`, publish with mosquitto_pub using its credentials.
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, statSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { withTimeout } from '../../lib/wait.js';
import { mosquittoPub, mosquittoSub, run } from '../harness/mosquitto-clients.js';

const BIN = fileURLToPath(new URL('../../bin/linewatch.js', import.meta.url));
const BUILT = fileURLToPath(new URL('../../dist/cli/main.js', import.meta.url));

let dir: string;
let devicesFile: string;
let broker: ChildProcess | undefined;
let port: number;
let healthUrl: string | undefined;

function linewatch(...args: string[]) {
  return run(process.execPath, [BIN, ...args], 20_000);
}

beforeAll(async () => {
  if (!existsSync(BUILT)) throw new Error('dist/ is missing: run `npm run build` before these tests (npm test does)');
  dir = mkdtempSync(join(tmpdir(), 'linewatch-cli-'));
  devicesFile = join(dir, 'devices.json');
  broker = spawn(process.execPath, [BIN, 'broker', '--port', '0', '--no-ws-port', '--devices-file', devicesFile, '--data-dir', dir, '--health-port', '0'], { stdio: ['ignore', 'pipe', 'pipe'] });
  port = await withTimeout(
    new Promise<number>((resolve, reject) => {
      let out = '';
      broker!.stdout!.on('data', (d: Buffer) => {
        out += d.toString();
        healthUrl ??= /\/healthz and \/metrics at (http:\/\/127\.0\.0\.1:\d+)/.exec(out)?.[1];
        const m = /mqtt:\/\/127\.0\.0\.1:(\d+)/.exec(out);
        if (m) resolve(Number(m[1]));
      });
      broker!.once('exit', (code) => reject(new Error(`linewatch broker exited with ${code}: ${out}`)));
    }),
    20_000,
    '`linewatch broker` to print its address',
  );
});

afterAll(() => {
  if (broker && broker.exitCode === null) broker.kill('SIGKILL');
  if (dir) rmSync(dir, { recursive: true, force: true });
});

describe('linewatch broker: /healthz and /metrics', () => {
  it('serves its health and its typed counters on the free port it printed', async () => {
    expect(healthUrl).toBeDefined();
    const health = await fetch(`${healthUrl}/healthz`);
    expect(health.status).toBe(200);
    expect(await health.json()).toMatchObject({ status: 'ok', services: { broker: { status: 'ok', reasons: [] } } });
    const metrics = await (await fetch(`${healthUrl}/metrics`)).text();
    expect(metrics).toMatch(/^# TYPE linewatch_clients_connected gauge$/m);
    expect(metrics).toMatch(/^# TYPE linewatch_rejected_bad_credentials counter$/m);
    expect(metrics).toMatch(/^linewatch_connections_open\{service="broker"\} \d+$/m);
  });
});

describe('linewatch devices + linewatch broker + mosquitto_pub', () => {
  it('refuses a weak password with a message that says what is needed, and adds nothing', async () => {
    const weak = await linewatch('devices', 'add', 'A/weak-1', '--role', 'device', '--password', '12345678', '--devices-file', devicesFile);
    expect(weak.code).not.toBe(0);
    expect(weak.stderr).toMatch(/cannot add A\/weak-1: the password must have at least 12 characters/);
    const list = await linewatch('devices', 'list', '--devices-file', devicesFile);
    expect(list.stdout).not.toContain('A/weak-1');
  });

  it('adds a device with a generated password that works with mosquitto_pub right away', async () => {
    const add = await linewatch('devices', 'add', 'A/press-1', '--role', 'device', '--devices-file', devicesFile);
    expect(add.code).toBe(0);
    const password = /password: (\S+)/.exec(add.stdout)?.[1];
    expect(password).toBeDefined();
    expect(statSync(devicesFile).mode & 0o777).toBe(0o600);
    expect(readFileSync(devicesFile, 'utf8')).not.toContain(password!); // only the salted hash is stored
    expect((await linewatch('devices', 'add', 'ops', '--role', 'admin', '--password', 'ops-password', '--devices-file', devicesFile)).code).toBe(0);

    const sub = mosquittoSub(port, 'lw/A/press-1/status', { count: 1, qos: 1, credentials: { username: 'ops', password: 'ops-password' } });
    // mosquitto_sub prints nothing until a message arrives; publish until it does (bounded by -W).
    const message = JSON.stringify({ ts: Date.now(), status: 'online' });
    let result: Awaited<typeof sub> | undefined;
    void sub.then((r) => (result = r));
    for (let i = 0; i < 20 && !result; i++) {
      const pub = await mosquittoPub(port, 'lw/A/press-1/status', message, { qos: 1, credentials: { username: 'A/press-1', password: password! } });
      expect(pub.stderr).toBe('');
      expect(pub.code).toBe(0);
      await new Promise((r) => setTimeout(r, 200));
    }
    const got = await sub;
    expect(got.stdout.trim()).toBe(`lw/A/press-1/status ${message}`);
  });

  it('lists accounts without secrets, removes one, and the removed device is refused', async () => {
    const list = await linewatch('devices', 'list', '--devices-file', devicesFile);
    expect(list.stdout).toMatch(/A\/press-1\s+device/);
    expect(list.stdout).toMatch(/ops\s+admin/);
    expect(list.stdout).not.toMatch(/hash|salt/);
    expect((await linewatch('devices', 'remove', 'A/press-1', '--devices-file', devicesFile)).code).toBe(0);
    const again = await linewatch('devices', 'remove', 'A/press-1', '--devices-file', devicesFile);
    expect(again.code).toBe(1);
    expect(again.stderr).toMatch(/there is no account "A\/press-1"/);
    const refused = await mosquittoPub(port, 'lw/A/press-1/status', '{}', { credentials: { username: 'A/press-1', password: 'whatever-it-was' } });
    expect(refused.code).not.toBe(0);
  });

  it('refuses a bad username for the role with a message that says what to do', async () => {
    const bad = await linewatch('devices', 'add', 'press-1', '--devices-file', devicesFile);
    expect(bad.code).toBe(1);
    expect(bad.stderr).toMatch(/LINE\/DEVICE/);
  });

  it('shuts down cleanly on SIGTERM', async () => {
    const exited = new Promise<number | null>((resolve) => broker!.once('exit', (code) => resolve(code)));
    broker!.kill('SIGTERM');
    expect(await withTimeout(exited, 10_000, 'the broker to exit')).toBe(0);
  });
});
