// An address already in use, on every listener linewatch opens, with the built CLI (dist/): one
// line naming the address:port and the flag that sets it, exit code 2, no stack trace.
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { createServer, type AddressInfo, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { withTimeout } from '../../lib/wait.js';
import { startTestBroker, type TestBroker } from '../harness/broker.js';
import { run, type RunResult } from '../harness/mosquitto-clients.js';

const BIN = fileURLToPath(new URL('../../bin/linewatch.js', import.meta.url));
const BUILT = fileURLToPath(new URL('../../dist/cli/main.js', import.meta.url));

let dir: string;
let taken: Server;
let takenPort: number;
let tb: TestBroker;

beforeAll(async () => {
  if (!existsSync(BUILT)) throw new Error('dist/ is missing: run `npm run build` before these tests (npm test does)');
  dir = mkdtempSync(join(tmpdir(), 'linewatch-in-use-'));
  taken = createServer();
  takenPort = await withTimeout(new Promise<number>((resolve) => taken.listen(0, '127.0.0.1', () => resolve((taken.address() as AddressInfo).port))), 5000, 'a port to take');
  tb = await startTestBroker({ open: true, wsPort: null });
});
afterAll(async () => {
  await tb?.stop();
  await new Promise<void>((resolve) => (taken ? taken.close(() => resolve()) : resolve()));
  if (dir) rmSync(dir, { recursive: true, force: true });
});

function linewatch(...args: string[]): Promise<RunResult> {
  return run(process.execPath, [BIN, ...args], 30_000);
}

/** Exit code 2 and one `linewatch:` line naming 127.0.0.1:PORT and the flag; no stack trace, no unhandled error. */
function expectAddressInUse(result: RunResult, flag: string): void {
  const said = result.stderr.split('\n').filter((line) => line.startsWith('linewatch:'));
  expect(result.stderr).not.toMatch(/^\s+at /m);
  expect(result.stderr).not.toMatch(/Unhandled|EADDRINUSE/);
  expect(said).toHaveLength(1);
  expect(said[0]).toContain(`127.0.0.1:${takenPort} is already in use`);
  expect(said[0]).toContain(`pass ${flag} `);
  expect(result.code).toBe(2);
}

describe('linewatch broker on a taken port', () => {
  const broker = (...args: string[]): Promise<RunResult> => linewatch('broker', '--open', '--devices-file', join(dir, 'devices.json'), '--port', '0', '--ws-port', '0', '--health-port', '0', ...args);

  it('WebSocket (--ws-port): one line, exit 2', async () => {
    expectAddressInUse(await broker('--ws-port', String(takenPort)), '--ws-port');
  });

  it('MQTT over TCP (--port): one line, exit 2', async () => {
    expectAddressInUse(await broker('--port', String(takenPort)), '--port');
  });

  it('MQTT over TLS (--tls-port): one line, exit 2', async () => {
    const cert = join(dir, 'cert.pem');
    const key = join(dir, 'key.pem');
    execFileSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', key, '-out', cert, '-days', '1', '-subj', '/CN=localhost'], { stdio: 'ignore', timeout: 20_000 });
    expectAddressInUse(await broker('--tls-cert', cert, '--tls-key', key, '--tls-port', String(takenPort)), '--tls-port');
  });

  it('/healthz and /metrics (--health-port): one line, exit 2', async () => {
    expectAddressInUse(await broker('--health-port', String(takenPort)), '--health-port');
  });
});

describe('the dashboard on a taken port', () => {
  it('linewatch dashboard (--port): one line, exit 2', async () => {
    expectAddressInUse(await linewatch('dashboard', '--broker', tb.url, '--port', String(takenPort)), '--port');
  });

  it('linewatch up (--dashboard-port): one line, exit 2', async () => {
    const dataDir = join(dir, 'up-dashboard');
    expectAddressInUse(
      await linewatch('up', '--data-dir', dataDir, '--broker-port', '0', '--no-ws-port', '--no-simulate', '--no-historian', '--no-rules', '--no-oee', '--no-serial', '--no-status', '--dashboard-port', String(takenPort)),
      '--dashboard-port',
    );
  });

  it('linewatch up (--broker-port): one line, exit 2', async () => {
    const dataDir = join(dir, 'up-broker');
    expectAddressInUse(
      await linewatch('up', '--data-dir', dataDir, '--broker-port', String(takenPort), '--no-ws-port', '--no-simulate', '--no-historian', '--no-rules', '--no-oee', '--no-serial', '--no-status', '--dashboard-port', '0'),
      '--broker-port',
    );
  });
});
