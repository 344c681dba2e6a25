// InfluxDB behind a reverse proxy at a path prefix, with basic auth at the proxy: the historian
// writes through it and the dashboard's /api/history reads through it, both built from the one
// URL (lib/influx-url.ts). The proxy is a real HTTP server (node:http) that forwards /influx/* to
// a real influxd and answers 401 without the right credentials and 404 outside the prefix.
import { createServer, request, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DashboardServer } from '../../dashboard/server/index.js';
import { historianConfigSchema } from '../../historian/config.js';
import { Historian } from '../../historian/index.js';
import { startHistorianRig, type HistorianRig } from './rig.js';

const PREFIX = '/influx';
const USER = 'proxy-user';
const PASSWORD = 'p@ss:word/1';

interface TestProxy {
  url: string;
  /** Requests the proxy refused, by reason. */
  refused: { unauthorized: number; outsidePrefix: number };
  stop(): Promise<void>;
}

async function startReverseProxy(target: string): Promise<TestProxy> {
  const upstream = new URL(target);
  const expected = `Basic ${Buffer.from(`${USER}:${PASSWORD}`).toString('base64')}`;
  const refused = { unauthorized: 0, outsidePrefix: 0 };
  const server: Server = createServer((req, res) => {
    const path = req.url ?? '/';
    if (path !== PREFIX && !path.startsWith(`${PREFIX}/`)) {
      refused.outsidePrefix++;
      res.writeHead(404).end(`not under ${PREFIX}/`);
      return;
    }
    if (req.headers.authorization !== expected) {
      refused.unauthorized++;
      res.writeHead(401, { 'www-authenticate': 'Basic realm="influx"' }).end('unauthorized');
      return;
    }
    const headers = { ...req.headers, host: upstream.host };
    delete headers.authorization; // influxd runs without auth; the proxy owns it
    const forward = request({ hostname: upstream.hostname, port: upstream.port, method: req.method, path: path.slice(PREFIX.length) || '/', headers }, (answer) => {
      res.writeHead(answer.statusCode ?? 502, answer.headers);
      answer.pipe(res);
    });
    forward.on('error', (err) => res.writeHead(502).end(err.message));
    req.pipe(forward);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    refused,
    url: `http://127.0.0.1:${port}`,
    stop: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

describe('InfluxDB behind a reverse proxy at a path prefix with basic auth (real influxd)', () => {
  let rig: HistorianRig;
  let proxy: TestProxy;

  beforeAll(async () => {
    rig = await startHistorianRig('lw-influx-proxy-');
    proxy = await startReverseProxy(rig.influx.url);
  });
  afterAll(async () => {
    await proxy?.stop();
    await rig?.stop();
  });

  it('the proxy itself refuses a request without credentials or outside the prefix', async () => {
    const before = { ...proxy.refused };
    expect((await fetch(`${proxy.url}${PREFIX}/ping`)).status).toBe(401);
    expect((await fetch(`${proxy.url}/ping`)).status).toBe(404);
    const auth = `Basic ${Buffer.from(`${USER}:${PASSWORD}`).toString('base64')}`;
    expect((await fetch(`${proxy.url}${PREFIX}/ping`, { headers: { authorization: auth } })).status).toBe(204);
    expect(proxy.refused).toEqual({ unauthorized: before.unauthorized + 1, outsidePrefix: before.outsidePrefix + 1 });
  });

  // With the trailing slash the historian used to write to /influx//write (influxd: 404); without
  // it the dashboard used to query /query on the proxy's root, without credentials.
  it.each([
    ['proxied_slash', '/'],
    ['proxied_bare', ''],
  ])('the historian writes and /api/history reads through http://user:pass@proxy/influx%s', async (database, slash) => {
    const credentials = `${encodeURIComponent(USER)}:${encodeURIComponent(PASSWORD)}`;
    const influxUrl = `${proxy.url.replace('http://', `http://${credentials}@`)}${PREFIX}${slash}`;
    const config = historianConfigSchema.parse({ influxUrl, database, spoolDir: `${rig.dir}/${database}`, flushIntervalMs: 50 });
    const historian = new Historian({ bus: rig.broker.broker.bus, config, dataDir: rig.dir });
    const dashboard = new DashboardServer({ bus: rig.broker.broker.bus, config: { host: '127.0.0.1', port: 0, token: null }, influx: { url: influxUrl, database } });
    const before = { ...proxy.refused };
    await historian.start();
    await dashboard.start();
    try {
      const ts = Date.now() - 60_000;
      await rig.broker.broker.bus.publish('lw/A/conv-1/telemetry', JSON.stringify({ ts, seq: 1, values: { speed: 42 } }), { qos: 1 });
      await historian.flush();
      expect(historian.counters()).toMatchObject({ written: 1, dropped_rejected: 0 });
      // Stored in the real influxd, asked directly (not through the proxy).
      const [direct] = await rig.influx.query('SELECT "speed" FROM "telemetry"', database);
      expect(direct?.series?.[0]?.values).toEqual([[ts, 42]]);

      const res = await fetch(`${dashboard.url}/api/history?measurement=telemetry&field=speed&line=A&from=-5m&agg=none`);
      const body = (await res.json()) as { error?: string; series?: Array<{ device: string | null; points: Array<[number, number]> }> };
      expect(body.error).toBeUndefined();
      expect(res.status).toBe(200);
      expect(body.series).toEqual([{ device: 'conv-1', points: [[ts, 42]] }]);
      expect(proxy.refused).toEqual(before);
    } finally {
      await dashboard.stop();
      await historian.stop();
    }
  });
});
