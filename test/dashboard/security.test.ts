// The dashboard's edges against an outsider: forged Host headers (DNS rebinding) are refused
// without a token, on the clear-alerts endpoint too; the static files are a fixed set, so
// distinct bogus URLs neither reach a file outside it nor grow the cache. Raw HTTP requests
// (node:http sets the Host header we give it), a real broker's in-process bus.
import { request } from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DashboardServer, isLoopback } from '../../dashboard/server/index.js';
import { StaticFiles, findPublicDir } from '../../dashboard/server/static.js';
import { withTimeout } from '../../lib/wait.js';
import { startTestBroker, type TestBroker } from '../harness/broker.js';

let broker: TestBroker;
let dashboard: DashboardServer;

beforeAll(async () => {
  broker = await startTestBroker({ wsPort: null });
  dashboard = new DashboardServer({ bus: broker.broker.bus, config: { host: '127.0.0.1', port: 0, token: null } });
  await dashboard.start();
});
afterAll(async () => {
  await dashboard?.stop();
  await broker?.stop();
});

/** One HTTP request with exactly this Host header; resolves with the status code. */
function send(method: string, path: string, host: string, body?: string): Promise<number> {
  return withTimeout(
    new Promise<number>((resolve, reject) => {
      const req = request({ host: '127.0.0.1', port: dashboard.port, method, path, headers: { host, ...(body ? { 'content-type': 'application/json' } : {}) } }, (res) => {
        res.resume();
        res.once('end', () => resolve(res.statusCode ?? 0));
      });
      req.once('error', reject);
      req.end(body);
    }),
    5000,
    `${method} ${path} with Host ${host}`,
  );
}

const clearAlert = (host: string) => send('POST', '/api/alerts/clear', host, JSON.stringify({ id: 'no-such-alert' }));

describe('the DNS-rebinding guard (no token, bound to loopback)', () => {
  it.each(['127.evil.example', '127.0.0.1.evil.example', 'localhost.evil.example', 'evil.example', '127.1', '127.0.0.1evil', '[::1].evil.example', '127.0.0.1:80:80'])(
    'refuses Host %s with 403, on the clear-alerts endpoint too',
    async (host) => {
      expect(await clearAlert(host)).toBe(403);
      expect(await send('GET', '/api/state', host)).toBe(403);
    },
  );

  it('lets exact loopback hosts through, with or without the port', async () => {
    const port = dashboard.port;
    for (const host of ['localhost', `localhost:${port}`, 'LOCALHOST', '127.0.0.1', `127.0.0.1:${port}`, '127.3.4.5', `[::1]:${port}`, '[::1]']) {
      expect({ host, status: await clearAlert(host) }).toEqual({ host, status: 404 }); // past the guard: no such alert
    }
  });

  it('knows loopback names and addresses exactly', () => {
    expect(['localhost', '127.0.0.1', '127.255.0.9', '::1'].map(isLoopback)).toEqual([true, true, true, true]);
    expect(['127.evil.example', '127.1', '127.0.0.256', '0127.0.0.1', 'localhost.', '::2', ''].map(isLoopback)).toEqual([false, false, false, false, false, false, false]);
  });
});

describe('static files', () => {
  it('serves the fixed set of files and nothing else; bogus URLs leave no cache entry', async () => {
    const files = new StaticFiles(findPublicDir());
    expect((await files.get('/'))?.type).toMatch(/text\/html/);
    expect((await files.get('/app.js'))?.type).toMatch(/javascript/);
    expect((await files.get('/vendor/uPlot.esm.js'))?.type).toMatch(/javascript/);
    const cached = files.cacheSize;
    for (let n = 0; n < 5_000; n++) expect(await files.get(`/x${n}%2f..%2fapp.js`)).toBeUndefined();
    for (const path of ['/../package.json', '/%2e%2e/package.json', '/..%2fserver%2findex.ts', '/app.js/', '/APP.JS', '/app.js%00']) expect(await files.get(path)).toBeUndefined();
    expect(files.cacheSize).toBe(cached);
  });

  it('answers 404 over HTTP for 2,000 distinct traversal URLs, and the cache does not grow', async () => {
    expect(await send('GET', '/app.js', '127.0.0.1')).toBe(200);
    const before = dashboard.counters().static_cache_entries;
    expect(before).toBeGreaterThan(0);
    for (let n = 0; n < 2_000; n += 50) {
      const statuses = await Promise.all(Array.from({ length: 50 }, (_, k) => send('GET', `/x${n + k}%2f..%2fapp.js`, '127.0.0.1')));
      expect(new Set(statuses)).toEqual(new Set([404]));
    }
    expect(dashboard.counters().static_cache_entries).toBe(before);
  });
});
