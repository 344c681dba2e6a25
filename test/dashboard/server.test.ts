// The dashboard server against a real broker (and, for history, a real influxd): SSE carries a
// state a device published over MQTT, acknowledging an alert publishes the right message, the
// token is enforced, and bad history queries are refused with a message naming the parameter.
import { InfluxDB } from 'influx';
import mqtt, { type MqttClient } from 'mqtt';
import { get } from 'node:http';
import { connect as connectRaw } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MessageRefused } from '../../bus/bus.js';
import { InProcessBus } from '../../broker/in-process-bus.js';
import { DashboardServer, buildHistoryQuery } from '../../dashboard/server/index.js';
import { historyQuerySchema } from '../../dashboard/server/history.js';
import { withTimeout, waitFor } from '../../lib/wait.js';
import { startTestBroker, type TestBroker } from '../harness/broker.js';
import { startTestInflux, type TestInflux } from '../harness/influx.js';

const JSON_HEADERS = { 'content-type': 'application/json' };
let broker: TestBroker;
let influx: TestInflux;
let dashboard: DashboardServer;
let secured: DashboardServer;
const clients: MqttClient[] = [];

async function connect(username: string, password: string): Promise<MqttClient> {
  const client = await mqtt.connectAsync(broker.url, { username, password, clientId: `${username}:${Math.random().toString(36).slice(2, 8)}`, reconnectPeriod: 0 });
  clients.push(client);
  return client;
}

/** Reads server-sent events from `url` until `match` returns true for one (bounded). */
async function readEventsUntil(url: string, match: (event: string, data: unknown) => boolean, ms = 10_000): Promise<{ event: string; data: unknown }> {
  const controller = new AbortController();
  try {
    return await withTimeout(
      (async () => {
        const res = await fetch(url, { signal: controller.signal });
        expect(res.status).toBe(200);
        expect(res.headers.get('content-type')).toMatch(/text\/event-stream/);
        const decoder = new TextDecoder();
        let buffer = '';
        for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) {
          buffer += decoder.decode(chunk, { stream: true });
          let end: number;
          while ((end = buffer.indexOf('\n\n')) >= 0) {
            const block = buffer.slice(0, end);
            buffer = buffer.slice(end + 2);
            const event = /^event: (.*)$/m.exec(block)?.[1];
            const data = /^data: (.*)$/m.exec(block)?.[1];
            if (event && data !== undefined) {
              const parsed: unknown = JSON.parse(data);
              if (match(event, parsed)) return { event, data: parsed };
            }
          }
        }
        throw new Error('the event stream ended');
      })(),
      ms,
      'a matching server-sent event',
    );
  } finally {
    controller.abort();
  }
}

beforeAll(async () => {
  [broker, influx] = await Promise.all([startTestBroker(), startTestInflux()]);
  await broker.addAccount('A/st-1', 'st-1-secret-1', 'device');
  await broker.addAccount('rules-test', 'rules-secret', 'rules');
  // Watches what the dashboard publishes (the rules role reads only device events).
  await broker.addAccount('ops-test', 'ops-secret-12', 'admin');
  dashboard = new DashboardServer({
    bus: broker.broker.bus,
    config: { host: '127.0.0.1', port: 0, token: null },
    influx: { url: influx.url, database: 'dashtest' },
    metricSources: () => [{ name: 'broker', counters: () => broker.broker.counters() }],
  });
  secured = new DashboardServer({ bus: broker.broker.bus, config: { host: '127.0.0.1', port: 0, token: 'let-me-in' } });
  await Promise.all([dashboard.start(), secured.start()]);
});

afterAll(async () => {
  await Promise.all(clients.map((c) => c.endAsync()));
  await Promise.all([dashboard?.stop(), secured?.stop()]);
  await Promise.all([broker?.stop(), influx?.stop()]);
});

describe('live view', () => {
  it('sends a state a device published over MQTT to a server-sent-events client', async () => {
    const device = await connect('A/st-1', 'st-1-secret-1');
    const seen = readEventsUntil(`${dashboard.url}/events`, (event, data) => {
      const devices = (data as { devices: Array<{ device: string; state: string | null }> }).devices;
      return devices.some((d) => d.device === 'st-1' && d.state === 'FAULT');
    });
    // Publish only after the stream is open, so the state must arrive as a live update.
    await waitFor(() => (dashboard.counters().sse_clients ?? 0) > 0, 5000, 'the SSE client to connect');
    await device.publishAsync('lw/A/st-1/state', JSON.stringify({ ts: Date.now(), seq: 1, state: 'FAULT', reason: 'jam', type: 'station' }), { qos: 1 });
    const { event, data } = await seen;
    expect(event).toBe('update');
    const st1 = (data as { devices: Array<Record<string, unknown>> }).devices.find((d) => d.device === 'st-1');
    expect(st1).toMatchObject({ line: 'A', state: 'FAULT', reason: 'jam', type: 'station' });

    const state = (await (await fetch(`${dashboard.url}/api/state`)).json()) as { stations: Array<{ device: string; state: string }> };
    expect(state.stations.find((s) => s.device === 'st-1')?.state).toBe('FAULT');
  });

  it('pairs a command with its ack', async () => {
    const rules = await connect('rules-test', 'rules-secret');
    const device = await connect('A/st-1', 'st-1-secret-1');
    const now = Date.now();
    await rules.publishAsync('lw/A/st-1/cmd', JSON.stringify({ id: 'c-1', action: 'stop', params: {}, origin: 'rule:test', ts: now, expiresAt: now + 5000 }), { qos: 1 });
    await device.publishAsync('lw/A/st-1/cmd/ack', JSON.stringify({ id: 'c-1', result: 'done', ts: now + 5 }), { qos: 1 });
    const command = await waitFor(
      async () => {
        const body = (await (await fetch(`${dashboard.url}/api/commands`)).json()) as { commands: Array<{ id: string; ack: string | null }> };
        return body.commands.find((c) => c.id === 'c-1' && c.ack !== null);
      },
      5000,
      'the command with its ack in /api/commands',
    );
    expect(command).toMatchObject({ id: 'c-1', device: 'st-1', action: 'stop', origin: 'rule:test', ack: 'done' });
  });
});

describe('coalescing', () => {
  it('sends a client at most 10 updates a second however fast devices publish', async () => {
    const controller = new AbortController();
    const arrivals: number[] = [];
    const reader = (async () => {
      const res = await fetch(`${dashboard.url}/events`, { signal: controller.signal });
      const decoder = new TextDecoder();
      try {
        for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) {
          for (const _ of decoder.decode(chunk, { stream: true }).matchAll(/^event: update$/gm)) arrivals.push(performance.now());
        }
      } catch (err) {
        if ((err as Error).name !== 'AbortError') throw err;
      }
    })();
    await waitFor(() => (dashboard.counters().sse_clients ?? 0) > 0, 5000, 'the SSE client');
    const start = performance.now();
    let published = 0;
    while (performance.now() - start < 1500) {
      for (let i = 0; i < 50; i++, published++) {
        await broker.broker.bus.publish(`lw/C/dev-${published % 5}/telemetry`, JSON.stringify({ ts: Date.now(), seq: published, values: { v: published } }));
      }
      await new Promise((r) => setImmediate(r)); // let timers and sockets run, as between network packets
    }
    await new Promise((r) => setTimeout(r, 250));
    controller.abort();
    await reader;
    const elapsed = arrivals.length > 1 ? arrivals.at(-1)! - arrivals[0]! : 0;
    expect(published).toBeGreaterThan(500);
    expect(arrivals.length).toBeGreaterThan(0);
    // One tick per 100 ms at most; timers fire late under load, never early.
    expect(arrivals.length).toBeLessThanOrEqual(Math.floor(elapsed / 100) + 2);
  });
});

describe('slow clients', () => {
  it('drops an SSE client that stops reading once its queue is full, and counts it', async () => {
    const hub = new DashboardServer({ bus: broker.broker.bus, config: { host: '127.0.0.1', port: 0, token: null }, sse: { maxUpdatesPerSecond: 20, maxQueuedEvents: 3 } });
    await hub.start();
    const socket = connectRaw(hub.port);
    try {
      socket.write('GET /events HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n');
      socket.pause(); // never read: the server's writes back up
      await waitFor(() => hub.counters().sse_clients === 1, 5000, 'the raw SSE client');
      // Big deltas (many devices with many readings each) fill the socket buffers within a few ticks.
      const values = Object.fromEntries(Array.from({ length: 300 }, (_, i) => [`reading_${i}`, i + 0.5]));
      await waitFor(
        async () => {
          for (let d = 0; d < 200; d++) {
            await broker.broker.bus.publish(`lw/Z/dev-${d}/telemetry`, JSON.stringify({ ts: Date.now(), seq: 1, values }));
          }
          return (hub.counters().sse_clients_dropped_slow ?? 0) >= 1;
        },
        20_000,
        'the slow client to be dropped',
        50,
      );
      expect(hub.counters().sse_clients).toBe(0);
    } finally {
      socket.destroy();
      await hub.stop();
    }
  });
});

describe('alerts', () => {
  it('acknowledging an alert publishes the operator’s request on lw/{line}/alarms/{alarmId}/set; the list follows the engine’s alarm states', async () => {
    const rules = await connect('rules-test', 'rules-secret');
    const raised = { id: 'overheat:A/conv-2', rule: 'overheat', severity: 'warning', message: 'conv-2 motor at 92 °C', device: 'conv-2', state: 'active-unacked', transition: 'raise', raisedAt: Date.now(), rev: 1, ts: Date.now() };
    const alarmTopic = 'lw/A/alarms/overheat:A.conv-2';
    await rules.publishAsync(alarmTopic, JSON.stringify(raised), { qos: 1, retain: true });
    await waitFor(
      async () => ((await (await fetch(`${dashboard.url}/api/alerts`)).json()) as { alerts: Array<{ id: string }> }).alerts.some((a) => a.id === raised.id),
      5000,
      'the alert in /api/alerts',
    );

    const received = new Promise<Record<string, unknown>>((resolve) => {
      rules.on('message', (topic, payload) => {
        if (topic === `${alarmTopic}/set`) resolve(JSON.parse(payload.toString()) as Record<string, unknown>);
      });
    });
    await rules.subscribeAsync(`${alarmTopic}/set`, { qos: 1 });
    const res = await fetch(`${dashboard.url}/api/alerts/acknowledge`, { method: 'POST', headers: JSON_HEADERS, body: JSON.stringify({ id: raised.id, line: 'A', comment: 'on it' }) });
    expect(res.status).toBe(202);
    const msg = await withTimeout(received, 5000, 'the request on the alarm’s set topic');
    expect(msg).toEqual({ action: 'acknowledge', operator: 'user:dashboard', comment: 'on it', ts: expect.any(Number) });
    // Until the engine publishes the new state, the dashboard shows the one it has.
    const alerts = ((await (await fetch(`${dashboard.url}/api/alerts`)).json()) as { alerts: Array<{ id: string; state: string }> }).alerts;
    expect(alerts.find((a) => a.id === raised.id)?.state).toBe('active-unacked');

    // The engine's normal state and the emptied retained topic remove it from the list.
    await rules.publishAsync(alarmTopic, JSON.stringify({ ...raised, state: 'normal', transition: 'clear', operator: 'user:dashboard', rev: 2 }), { qos: 1, retain: true });
    await rules.publishAsync(alarmTopic, '', { qos: 1, retain: true });
    await waitFor(
      async () => !((await (await fetch(`${dashboard.url}/api/alerts`)).json()) as { alerts: Array<{ id: string }> }).alerts.some((a) => a.id === raised.id),
      5000,
      'the normal alarm to leave /api/alerts',
    );
  });

  it('a request an in-process subscriber refuses (redeliveries given up) is still accepted, and says so', async () => {
    // The dashboard on its own in-process bus with a short redelivery policy, and an in-process
    // subscriber that refuses what the dashboard publishes, as the historian does with a full spool.
    const bus = new InProcessBus(broker.broker.aedes, { redelivery: { firstDelayMs: 10, maxDelayMs: 40, giveUpAfterMs: 300, maxWaiting: 10 } });
    const refusing = await bus.subscribe('lw/N/alarms/+/set', () => {
      throw new MessageRefused('refusing events: spool full (test subscriber)');
    });
    const own = new DashboardServer({ bus, config: { host: '127.0.0.1', port: 0, token: null } });
    await own.start();
    try {
      const rules = await connect('rules-test', 'rules-secret');
      const raised = { id: 'overheat:N/conv-2', rule: 'overheat', severity: 'warning', message: 'hot', device: 'conv-2', state: 'active-unacked', transition: 'raise', raisedAt: Date.now(), rev: 1, ts: Date.now() };
      await rules.publishAsync('lw/N/alarms/overheat:N.conv-2', JSON.stringify(raised), { qos: 1 });
      const activeIds = async (): Promise<string[]> => ((await (await fetch(`${own.url}/api/alerts`)).json()) as { alerts: Array<{ id: string }> }).alerts.map((a) => a.id);
      await waitFor(async () => (await activeIds()).includes(raised.id), 5000, 'the alert in /api/alerts');

      const res = await fetch(`${own.url}/api/alerts/clear`, { method: 'POST', headers: JSON_HEADERS, body: JSON.stringify({ id: raised.id }) });
      expect(res.status).toBe(202);
      const body = (await res.json()) as { request: { action: string }; notRecorded?: string };
      expect(body.request.action).toBe('clear');
      expect(body.notRecorded).toMatch(/still refused after 300 ms of redeliveries.*spool full \(test subscriber\)/);
      expect(own.counters().alerts_not_recorded).toBe(1);
    } finally {
      await own.stop();
      await refusing();
      await bus.close();
    }
  });

  it('refuses a POST that is not JSON (what a cross-site form would send)', async () => {
    const form = await fetch(`${dashboard.url}/api/alerts/clear`, { method: 'POST', headers: { 'content-type': 'text/plain' }, body: '{"id":"x"}' });
    expect(form.status).toBe(415);
    expect(((await form.json()) as { error: string }).error).toMatch(/Content-Type: application\/json/);
  });

  it('refuses the API for a foreign Host without a token (DNS rebinding)', async () => {
    // fetch() may not set Host, so this uses node:http.
    const statusFor = (host: string) =>
      new Promise<number>((resolve, reject) => {
        get({ host: '127.0.0.1', port: dashboard.port, path: '/api/state', headers: { host } }, (res) => {
          res.resume();
          resolve(res.statusCode ?? 0);
        }).on('error', reject);
      });
    expect(await statusFor('evil.example')).toBe(403);
    expect(await statusFor(`localhost:${dashboard.port}`)).toBe(200);
    expect(await statusFor(`[::1]:${dashboard.port}`)).toBe(200);
  });

  it('refuses an unknown alert and a malformed body with a clear JSON error', async () => {
    const unknown = await fetch(`${dashboard.url}/api/alerts/acknowledge`, { method: 'POST', headers: JSON_HEADERS, body: JSON.stringify({ id: 'nope' }) });
    expect(unknown.status).toBe(404);
    expect(((await unknown.json()) as { error: string }).error).toMatch(/no active alert with id "nope"/);
    const bad = await fetch(`${dashboard.url}/api/alerts/acknowledge`, { method: 'POST', headers: JSON_HEADERS, body: '{not json' });
    expect(bad.status).toBe(400);
    expect(((await bad.json()) as { error: string }).error).toMatch(/not valid JSON/);
    const missing = await fetch(`${dashboard.url}/api/alerts/clear`, { method: 'POST', headers: JSON_HEADERS, body: JSON.stringify({ line: 'A' }) });
    expect(missing.status).toBe(400);
    expect(((await missing.json()) as { error: string }).error).toMatch(/body\.id/);
  });
});

describe('token', () => {
  it('refuses the API without the token, accepts it as Bearer or ?token=, and leaves /healthz and the page open', async () => {
    const none = await fetch(`${secured.url}/api/state`);
    expect(none.status).toBe(401);
    expect(((await none.json()) as { error: string }).error).toMatch(/a token is required/);
    const wrong = await fetch(`${secured.url}/api/state`, { headers: { authorization: 'Bearer nope' } });
    expect(wrong.status).toBe(401);
    expect(((await wrong.json()) as { error: string }).error).toMatch(/the token is wrong/);
    expect((await fetch(`${secured.url}/api/state`, { headers: { authorization: 'Bearer let-me-in' } })).status).toBe(200);
    expect((await fetch(`${secured.url}/api/state?token=let-me-in`)).status).toBe(200);
    expect((await fetch(`${secured.url}/metrics`)).status).toBe(401);
    expect((await fetch(`${secured.url}/events`)).status).toBe(401);
    const refusedBefore = secured.counters().http_unauthorized;
    const open = await fetch(`${secured.url}/healthz`);
    expect(open.status).toBe(200);
    expect(secured.counters().http_unauthorized).toBe(refusedBefore); // a probe is not a refused request
    expect(Object.keys((await open.json()) as object).sort()).toEqual(['details', 'status', 'uptimeMs']);
    const full = (await (await fetch(`${secured.url}/healthz`, { headers: { authorization: `Bearer let-me-in` } })).json()) as { services?: Record<string, unknown> };
    expect(Object.keys(full.services ?? {})).toContain('dashboard');
    const page = await fetch(`${secured.url}/`);
    expect(page.status).toBe(200);
    expect(await page.text()).toMatch(/<title>linewatch<\/title>/);
    expect(secured.counters().http_unauthorized).toBeGreaterThanOrEqual(4);
  });

  it('generates a token when bound beyond loopback without one', () => {
    const open = new DashboardServer({ bus: broker.broker.bus, config: { host: '0.0.0.0', port: 0, token: null } });
    expect(open.tokenGenerated).toBe(true);
    expect(open.token).toMatch(/^[A-Za-z0-9_-]{20,}$/);
    const loopback = new DashboardServer({ bus: broker.broker.bus, config: { host: '127.0.0.1', port: 0, token: null } });
    expect(loopback.token).toBeNull();
  });
});

describe('history', () => {
  it('refuses bad parameters with a message that names each one', async () => {
    const cases: Array<[string, RegExp]> = [
      ['measurement=telemetry', /history\.field/],
      ['measurement=x%22%3B%20DROP&field=speed', /history\.measurement: must be a measurement name/],
      ['measurement=telemetry&field=speed&from=yesterday', /from must be "now", a relative time/],
      ['measurement=telemetry&field=speed&from=-1h&to=-2h', /from must be before to/],
      ['measurement=telemetry&field=speed&device=a%27b', /history\.device/],
      ['measurement=telemetry&field=speed&agg=median', /history\.agg/],
      ['measurement=telemetry&field=speed&every=5x', /history\.every/],
      ['measurement=telemetry&field=speed&limit=3', /limit/],
    ];
    for (const [query, message] of cases) {
      const res = await fetch(`${dashboard.url}/api/history?${query}`);
      expect(res.status, query).toBe(400);
      expect(((await res.json()) as { error: string }).error, query).toMatch(message);
    }
  });

  it('builds InfluxQL with quoted identifiers and string literals only', () => {
    const q = historyQuerySchema.parse({ measurement: 'telemetry', field: 'speed', from: '1767000000000', to: '1767000600000', line: 'A', device: 'conv-2', every: '10s' });
    expect(buildHistoryQuery(q)).toBe(
      `SELECT mean("speed") AS "value" FROM "telemetry" WHERE time >= 1767000000000ms AND time <= 1767000600000ms AND "line" = 'A' AND "device" = 'conv-2' GROUP BY time(10000ms), "device" fill(none)`,
    );
    const raw = historyQuerySchema.parse({ measurement: 'state', field: 'state', agg: 'none', from: '1767000000000', to: '1767000600000' });
    expect(buildHistoryQuery(raw)).toBe(`SELECT "state" AS "value" FROM "state" WHERE time >= 1767000000000ms AND time <= 1767000600000ms GROUP BY "device" ORDER BY time ASC LIMIT 5000`);
  });

  it('reads a series from InfluxDB, grouped by device', async () => {
    const db = new InfluxDB({ host: '127.0.0.1', port: influx.port, database: 'dashtest' });
    await db.createDatabase('dashtest');
    const now = Date.now();
    await db.writePoints(
      [
        { measurement: 'telemetry', tags: { line: 'A', device: 'conv-1' }, fields: { speed: 10 }, timestamp: new Date(now - 60_000) },
        { measurement: 'telemetry', tags: { line: 'A', device: 'conv-1' }, fields: { speed: 20 }, timestamp: new Date(now - 30_000) },
        { measurement: 'telemetry', tags: { line: 'A', device: 'conv-2' }, fields: { speed: 30 }, timestamp: new Date(now - 30_000) },
        { measurement: 'telemetry', tags: { line: 'B', device: 'conv-9' }, fields: { speed: 99 }, timestamp: new Date(now - 30_000) },
      ],
      { precision: 'ms' },
    );
    const res = await fetch(`${dashboard.url}/api/history?measurement=telemetry&field=speed&line=A&from=-5m&agg=none`);
    expect(res.status).toBe(200);
    const body = (await res.json()) as { series: Array<{ device: string; points: Array<[number, number]> }> };
    const byDevice = Object.fromEntries(body.series.map((s) => [s.device, s.points.map((p) => p[1])]));
    expect(byDevice).toEqual({ 'conv-1': [10, 20], 'conv-2': [30] });
    const bucketed = (await (await fetch(`${dashboard.url}/api/history?measurement=telemetry&field=speed&line=A&device=conv-1&from=-5m&every=1h`)).json()) as {
      series: Array<{ points: Array<[number, number]> }>;
    };
    const values = bucketed.series.flatMap((s) => s.points.map((p) => p[1]));
    expect(values.reduce((a, b) => a + b, 0) / values.length).toBeGreaterThan(0);
  });
});

describe('start', () => {
  it('says which port is taken and how to choose another', async () => {
    const clash = new DashboardServer({ bus: broker.broker.bus, config: { host: '127.0.0.1', port: dashboard.port, token: null } });
    await expect(clash.start()).rejects.toThrow(`127.0.0.1:${dashboard.port} is already in use (another program, or another linewatch, listens there), so the dashboard cannot listen on it; set dashboard.port to another port (0 picks a free one)`);
    await clash.stop(); // nothing to undo, and no error
  });
});

describe('metrics', () => {
  it('exposes the dashboard and every registered service counters with a service label', async () => {
    const res = await fetch(`${dashboard.url}/metrics`);
    expect(res.status).toBe(200);
    const text = await res.text();
    expect(text).toMatch(/^linewatch_http_requests\{service="dashboard"\} [1-9]/m);
    const brokerKeys = Object.keys(broker.broker.counters());
    expect(brokerKeys.length).toBeGreaterThan(0);
    expect(text).toContain(`service="broker"`);
    expect(text).toMatch(/^linewatch_process_cpu_user_seconds_total /m);
  });
});
