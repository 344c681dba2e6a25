// MQTT over TLS with a throwaway self-signed certificate (openssl).
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import mqtt from 'mqtt';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { withTimeout } from '../../lib/wait.js';
import { startTestBroker, type TestBroker } from '../harness/broker.js';

let dir: string;
let tb: TestBroker;
beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'linewatch-tls-'));
  const cert = join(dir, 'cert.pem');
  const key = join(dir, 'key.pem');
  execFileSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', key, '-out', cert, '-days', '1', '-subj', '/CN=localhost'], { stdio: 'ignore', timeout: 20_000 });
  tb = await startTestBroker({ wsPort: null, tls: { port: 0, cert, key } });
  await tb.addAccount('A/tls-1', 'tls-password', 'device');
  await tb.addAccount('ops', 'ops-password', 'admin');
});
afterAll(async () => {
  await tb?.stop();
  rmSync(dir, { recursive: true, force: true });
});

describe('TLS listener', () => {
  it('authenticates and carries messages over mqtts://', async () => {
    const port = tb.broker.ports.tls!;
    expect(port).toBeGreaterThan(0);
    const ca = readFileSync(join(dir, 'cert.pem'));
    const tlsUrl = `mqtts://localhost:${port}`;
    const sub = await mqtt.connectAsync(tlsUrl, { ca, username: 'ops', password: 'ops-password', clientId: 'ops:tls-sub', reconnectPeriod: 0 });
    const dev = await mqtt.connectAsync(tlsUrl, { ca, username: 'A/tls-1', password: 'tls-password', clientId: 'A/tls-1', reconnectPeriod: 0 });
    try {
      await sub.subscribeAsync('lw/A/tls-1/status', { qos: 1 });
      const got = withTimeout(new Promise<string>((r) => sub.once('message', (_t, p) => r(p.toString()))), 5000, 'the message over TLS');
      const status = JSON.stringify({ ts: Date.now(), status: 'online' });
      await dev.publishAsync('lw/A/tls-1/status', status, { qos: 1 });
      expect(await got).toBe(status);
    } finally {
      await sub.endAsync();
      await dev.endAsync();
    }
  });

  it('refuses a wrong password over TLS too', async () => {
    const ca = readFileSync(join(dir, 'cert.pem'));
    const err = await mqtt
      .connectAsync(`mqtts://localhost:${tb.broker.ports.tls}`, { ca, username: 'A/tls-1', password: 'wrong-password', clientId: 'A/tls-1', reconnectPeriod: 0 })
      .then((c) => c.endAsync().then(() => undefined), (e: unknown) => e as { code?: number });
    expect(err?.code).toBe(4);
  });
});
