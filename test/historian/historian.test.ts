// The historian against a real broker and a real influxd: what is stored and how, database
// setup, batching by size and by interval, bad input, idempotent replay, acknowledge-after-persist.
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import mqtt from 'mqtt';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { InProcessBus } from '../../broker/in-process-bus.js';
import { MessageRefused, MqttBus } from '../../bus/index.js';
import { Historian } from '../../historian/index.js';
import { freePort, ping, startManagedInfluxd } from '../../historian/influxd.js';
import { historianConfigSchema } from '../../historian/config.js';
import { toPoint } from '../../historian/points.js';
import { waitFor } from '../../lib/wait.js';
import { NO_REDELIVERY, startTestBroker, type TestBroker } from '../harness/broker.js';
import { startTestInflux, type TestInflux } from '../harness/influx.js';

// Recent enough for the raw retention policy (InfluxDB drops points older than it).
const T0 = Math.floor(Date.now() / 1000) * 1000 - 3_600_000;

describe('Historian', () => {
  let influx: TestInflux;
  let broker: TestBroker;
  let dir: string;
  const running: Historian[] = [];
  let dbCounter = 0;

  beforeAll(async () => {
    [influx, broker] = await Promise.all([startTestInflux(), startTestBroker({ wsPort: null })]);
    await broker.addAccount('hist', 'hist-password', 'historian');
    await broker.addAccount('gw', 'gw-password-1', 'gateway');
    await broker.addAccount('ops', 'ops-password', 'admin');
    dir = mkdtempSync(join(tmpdir(), 'lw-historian-'));
  });
  afterEach(async () => {
    await Promise.all(running.splice(0).map((h) => h.stop()));
  });
  afterAll(async () => {
    await Promise.all([influx?.stop(), broker?.stop()]);
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  /** A historian on the broker's in-process bus, with its own database and spool. */
  async function startHistorian(overrides: Record<string, unknown> = {}): Promise<{ historian: Historian; database: string }> {
    const database = `h${++dbCounter}`;
    const config = historianConfigSchema.parse({ influxUrl: influx.url, database, spoolDir: join(dir, database), flushIntervalMs: 50, ...overrides });
    const historian = new Historian({ bus: broker.broker.bus, config, dataDir: dir });
    await historian.start();
    running.push(historian);
    return { historian, database };
  }

  async function select(database: string, q: string): Promise<Record<string, unknown>[]> {
    const [result] = await influx.query(q, database);
    if (result?.error) throw new Error(result.error);
    return (result?.series ?? []).flatMap((s) => s.values.map((row) => ({ ...s.tags, ...Object.fromEntries(s.columns.map((c, i) => [c, row[i]])) })));
  }

  const publish = (topic: string, payload: unknown): Promise<void> => broker.broker.bus.publish(topic, JSON.stringify(payload), { qos: 1 });

  it('sets up the database, retention policies and continuous queries on first start', async () => {
    const { database } = await startHistorian({ retention: { raw: '3d', minute: '30d', hour: 'INF', periods: '520w' } });
    const rps = await select(database, `SHOW RETENTION POLICIES ON "${database}"`);
    const byName = Object.fromEntries(rps.map((r) => [r.name, r]));
    expect(byName.raw).toMatchObject({ duration: '72h0m0s', default: true });
    expect(byName['1m']).toMatchObject({ duration: '720h0m0s', default: false });
    expect(byName['1h']).toMatchObject({ duration: '0s', default: false });
    expect(byName.periods).toMatchObject({ duration: '87360h0m0s', default: false });
    const [cqs] = await influx.query('SHOW CONTINUOUS QUERIES');
    const ours = cqs!.series!.find((s) => s.name === database)!.values.map((v) => v[0]);
    expect(ours).toEqual(expect.arrayContaining(['lw_telemetry_1m', 'lw_telemetry_1h', 'lw_line_1m', 'lw_state_1m', 'lw_commands_1h', 'lw_alerts_1m']));
  });

  it('copies the period rows an earlier version left in raw into the period policy when it creates it', async () => {
    // As an earlier version set the database up and wrote an OEE and a downtime row: into raw.
    const database = 'legacy_periods';
    await influx.query(`CREATE DATABASE ${database}`);
    await influx.query(`CREATE RETENTION POLICY "raw" ON ${database} DURATION 7d REPLICATION 1 DEFAULT`);
    const lines = [
      toPoint('lw/A/oee', JSON.stringify({ ts: T0 + 60_000, period: 'hour', scope: 'line', start: T0, end: T0 + 3_600_000, complete: true, oee: 0.61, availability: 0.8, performance: 0.8, quality: 0.95, plannedMs: 60_000, runMs: 48_000, downMs: { FAULT: 12_000 }, microStops: 0, microStopMs: 0, plannedStopMs: 0, unknownMs: 0, goodCount: 20, scrapCount: 1 })),
      toPoint('lw/A/downtime', JSON.stringify({ ts: T0 + 5000, scope: 'line', device: 'st-3', state: 'FAULT', reason: 'jam', start: T0, end: T0 + 5000, durationMs: 5000, plannedMs: 0, micro: false, open: false })),
    ].map((point) => (point.ok ? point.line : ''));
    const res = await fetch(`${influx.url}/write?db=${database}`, { method: 'POST', body: lines.join('\n') });
    expect(res.status).toBe(204);
    await startHistorian({ database });
    expect(await select(database, 'SELECT "oee", "goodCount", "period", "scope" FROM "periods"."oee"')).toEqual([{ time: T0, oee: 0.61, goodCount: 20, period: 'hour', scope: 'line' }]);
    expect(await select(database, 'SELECT "durationMs", "reason", "state" FROM "periods"."downtime"')).toEqual([{ time: T0, durationMs: 5000, reason: 'jam', state: 'FAULT' }]);
  });

  it('stores every kind of event under the documented schema, at the device time', async () => {
    const { historian, database } = await startHistorian();
    await publish('lw/A/conv-1/telemetry', { ts: T0, seq: 1, values: { speed: 12.5, temperature: 61 }, station: 's1', type: 'conveyor' });
    await publish('lw/A/conv-1/state', { ts: T0 + 1, seq: 2, state: 'FAULT', reason: 'motor "overload" \\\' C:\\motor', station: 'bay-1' });
    await publish('lw/A/conv-1/status', { ts: T0 + 2, status: 'offline' });
    await publish('lw/A/conv-1/cmd', { id: 'c1', action: 'set_speed', params: { speed: 8 }, origin: 'rule:overheat', ts: T0 + 3, expiresAt: T0 + 5000 });
    await publish('lw/A/conv-1/cmd/ack', { id: 'c1', result: 'done', ts: T0 + 4 });
    await publish('lw/A/conv-1/cmd/outcome', { id: 'c1', action: 'set_speed', params: { speed: 8 }, origin: 'rule:overheat', target: 'conv-1', outcome: 'done', attempts: 1, issuedAt: T0 + 3, ts: T0 + 5 });
    await publish('lw/A/alerts', { id: 'a1', rule: 'overheat', severity: 'critical', state: 'raised', message: 'conv-1 at 95 °C\nslowing down', device: 'conv-1', ts: T0 + 6 });
    await publish('lw/A/summary', { ts: T0 + 7, speed: 8, strategy: 'safe', oee: 0.5 });
    await historian.flush();

    expect(await select(database, 'SELECT * FROM telemetry')).toEqual([
      { time: T0, line: 'A', device: 'conv-1', station: 's1', type: 'conveyor', speed: 12.5, temperature: 61, seq: 1 },
    ]);
    expect(await select(database, 'SELECT * FROM state')).toEqual([
      { time: T0 + 1, line: 'A', device: 'conv-1', station: 'bay-1', state: 'FAULT', code: 4, reason: 'motor "overload" \\\' C:\\motor', seq: 2 },
    ]);
    expect(await select(database, 'SELECT * FROM status')).toEqual([{ time: T0 + 2, line: 'A', device: 'conv-1', status: 'offline', online: 0 }]);
    // event, action, result and outcome are tags (InfluxQL returns tags only next to a field).
    const commands = await select(database, 'SELECT "id", "event", "action", "result", "outcome", "params", "attempts", "latencyMs" FROM commands');
    expect(commands).toEqual([
      { time: T0 + 3, id: 'c1', event: 'issued', action: 'set_speed', result: null, outcome: null, params: '{"speed":8}', attempts: null, latencyMs: null },
      { time: T0 + 4, id: 'c1', event: 'ack', action: null, result: 'done', outcome: null, params: null, attempts: null, latencyMs: null },
      { time: T0 + 5, id: 'c1', event: 'outcome', action: 'set_speed', result: null, outcome: 'done', params: '{"speed":8}', attempts: 1, latencyMs: 2 },
    ]);
    expect(await select(database, 'SELECT "id", "state", "message", "raised", "rule", "severity", "device" FROM alerts')).toEqual([
      { time: T0 + 6, id: 'a1', state: 'raised', message: 'conv-1 at 95 °C\nslowing down', raised: 1, rule: 'overheat', severity: 'critical', device: 'conv-1' },
    ]);
    expect(await select(database, 'SELECT "speed", "strategy", "oee" FROM line WHERE "line" = \'A\'')).toEqual([{ time: T0 + 7, speed: 8, strategy: 'safe', oee: 0.5 }]);
    expect(historian.counters()).toMatchObject({ received: 8, spooled: 8, written: 8, dropped_invalid_payload: 0 });
  });

  it('stores every alarm transition as a point (tags alarm, rule, line, device, state; operator and comment fields), and skips an emptied alarm topic and an operator request without counting them invalid', async () => {
    const { historian, database } = await startHistorian();
    const topic = 'lw/A/alarms/overheat:A.conv-1';
    const alarm = { id: 'overheat:A/conv-1', rule: 'overheat', severity: 'warning', message: 'conv-1 hot', device: 'conv-1', raisedAt: T0 };
    await publish(topic, { ...alarm, state: 'active-unacked', transition: 'raise', rev: 1, ts: T0 });
    await publish(`${topic}/set`, { action: 'acknowledge', operator: 'user:ana', comment: 'on it', ts: T0 + 1 });
    await publish(topic, { ...alarm, state: 'active-acked', transition: 'ack', operator: 'user:ana', comment: 'on it', rev: 2, ts: T0 + 2 });
    await publish(topic, { ...alarm, state: 'normal', transition: 'return', rev: 3, ts: T0 + 3 });
    await broker.broker.bus.publish(topic, '', { qos: 1, retain: true });
    await publish(topic, { ...alarm, state: 'active-unacked', transition: 'raise', rev: 1, ts: T0 }); // the same state again (a restarted engine republishes it): the same point
    await historian.flush();
    expect(await select(database, 'SELECT "transition", "operator", "comment", "active", "rev", "alarm", "rule", "line", "device", "state", "severity" FROM alarms')).toEqual([
      { time: T0, transition: 'raise', operator: null, comment: null, active: 1, rev: 1, alarm: 'overheat:A/conv-1', rule: 'overheat', line: 'A', device: 'conv-1', state: 'active-unacked', severity: 'warning' },
      { time: T0 + 2, transition: 'ack', operator: 'user:ana', comment: 'on it', active: 1, rev: 2, alarm: 'overheat:A/conv-1', rule: 'overheat', line: 'A', device: 'conv-1', state: 'active-acked', severity: 'warning' },
      { time: T0 + 3, transition: 'return', operator: null, comment: null, active: 0, rev: 3, alarm: 'overheat:A/conv-1', rule: 'overheat', line: 'A', device: 'conv-1', state: 'normal', severity: 'warning' },
    ]);
    expect(historian.counters()).toMatchObject({ received: 6, not_stored: 2, dropped_invalid_payload: 0, dropped_invalid_topic: 0 });
  });

  it('counts bad input by reason and stores none of it', async () => {
    const { historian, database } = await startHistorian();
    await publish('lw/A/s1/telemetry', { ts: T0, seq: 1, values: { temp: 'hot' } });
    await broker.broker.bus.publish('lw/A/s1/state', '{not json', { qos: 1 });
    await publish('lw/A/s1/bogus', { ts: T0 });
    await publish('lw/A/s1/telemetry', { ts: T0, seq: 2, values: { temp: 20 } });
    await historian.flush();
    expect(historian.counters()).toMatchObject({ received: 4, dropped_invalid_payload: 2, dropped_invalid_topic: 1, written: 1 });
    expect(await select(database, 'SELECT count("temp") FROM telemetry')).toEqual([{ time: 0, count: 1 }]);
  });

  it('writes a replayed event as the same point, and two events in one millisecond as two', async () => {
    const { historian, database } = await startHistorian();
    const event = { ts: T0, seq: 7, values: { temp: 20 } };
    await publish('lw/A/s1/telemetry', event);
    await publish('lw/A/s1/telemetry', event);
    await publish('lw/A/s1/telemetry', { ts: T0, seq: 8, values: { temp: 21 } });
    await historian.flush();
    expect(historian.counters()).toMatchObject({ written: 3, seq_duplicates: 1 });
    expect(await select(database, 'SELECT count("temp") FROM telemetry')).toEqual([{ time: 0, count: 2 }]);
  });

  it('batches by size: 1000 events with batchSize 100 take about ten writes', async () => {
    const { historian, database } = await startHistorian({ batchSize: 100, flushIntervalMs: 60_000 });
    for (let i = 0; i < 1000; i++) await publish('lw/B/s1/telemetry', { ts: T0 + i, seq: i, values: { v: i } });
    await waitFor(() => historian.counters().written === 1000, 15_000, '1000 points written by batch size alone');
    expect(historian.counters().write_batches).toBeGreaterThanOrEqual(10);
    expect(historian.counters().write_batches).toBeLessThanOrEqual(11);
    expect(await select(database, 'SELECT count("v") FROM telemetry')).toEqual([{ time: 0, count: 1000 }]);
  });

  it('batches by interval: a few events are written after flushIntervalMs in one batch', async () => {
    const { historian } = await startHistorian({ batchSize: 10_000, flushIntervalMs: 2000 });
    for (let i = 0; i < 5; i++) await publish('lw/B/s2/telemetry', { ts: T0 + i, seq: i, values: { v: i } });
    expect(historian.counters()).toMatchObject({ spooled: 5, written: 0 });
    await waitFor(() => historian.counters().written === 5, 10_000, 'the interval flush');
    expect(historian.counters().write_batches).toBe(1);
  });

  it('starts a managed influxd under the data dir when no InfluxDB is configured, and stops it with itself', async () => {
    const dataDir = join(dir, 'managed');
    const config = historianConfigSchema.parse({ database: 'managed', flushIntervalMs: 50 });
    const historian = new Historian({ bus: broker.broker.bus, config, dataDir });
    await historian.start();
    const url = historian.influxUrl!;
    try {
      expect(url).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
      expect(existsSync(join(dataDir, 'influxd', 'influxd.conf'))).toBe(true);
      await publish('lw/M/s1/telemetry', { ts: T0, seq: 1, values: { v: 1 } });
      await historian.flush();
      const res = await fetch(`${url}/query?epoch=ms&db=managed&q=${encodeURIComponent('SELECT count("v") FROM telemetry')}`);
      expect(JSON.stringify(await res.json())).toContain('[0,1]');
    } finally {
      await historian.stop();
    }
    expect(await ping(url)).toBe(false);
  });

  it('spools while InfluxDB is not there at start, then sets the database up and writes everything', async () => {
    const port = await freePort();
    const database = 'late';
    const config = historianConfigSchema.parse({ influxUrl: `http://127.0.0.1:${port}`, database, spoolDir: join(dir, 'late-spool'), flushIntervalMs: 50, retryInitialMs: 50, retryMaxMs: 200 });
    const historian = new Historian({ bus: broker.broker.bus, config, dataDir: dir });
    await historian.start();
    running.push(historian);
    for (let i = 0; i < 100; i++) await publish('lw/L/s1/telemetry', { ts: T0 + i, seq: i, values: { v: i } });
    await waitFor(() => historian.counters().write_failures > 0, 10_000, 'a failed write');
    expect(historian.counters()).toMatchObject({ spooled: 100, written: 0, influx_up: 0 });
    const late = await startManagedInfluxd({ dataDir: join(dir, 'late-influxd'), port });
    try {
      await historian.flush(20_000);
      const res = await fetch(`${late.url}/query?epoch=ms&db=${database}&q=${encodeURIComponent('SELECT count("v") FROM telemetry')}`);
      expect(JSON.stringify(await res.json())).toContain('[0,100]');
      expect(historian.counters()).toMatchObject({ written: 100, influx_up: 1 });
    } finally {
      await historian.stop();
      await late.stop();
    }
  });

  it('replays the spool of an earlier run on the next start, counting it as replayed', async () => {
    const spoolDir = join(dir, 'replay-spool');
    const deadPort = await freePort();
    const away = new Historian({ bus: broker.broker.bus, config: historianConfigSchema.parse({ influxUrl: `http://127.0.0.1:${deadPort}`, database: 'replay', spoolDir }), dataDir: dir });
    await away.start();
    for (let i = 0; i < 200; i++) await publish('lw/Q/s1/telemetry', { ts: T0 + i, seq: i, values: { v: i } });
    expect(away.counters()).toMatchObject({ spooled: 200, written: 0 });
    await away.stop(); // InfluxDB unreachable: the 200 stay in the spool, with the data_quality point of s1's last interval
    expect(away.counters().data_quality_points).toBe(1);
    const back = new Historian({ bus: broker.broker.bus, config: historianConfigSchema.parse({ influxUrl: influx.url, database: 'replay', spoolDir }), dataDir: dir });
    running.push(back);
    await back.start();
    await back.flush();
    expect(back.counters()).toMatchObject({ received: 0, written: 201, replayed: 201 });
    expect(await select('replay', 'SELECT count("v") FROM telemetry')).toEqual([{ time: 0, count: 200 }]);
    expect(await select('replay', 'SELECT sum("messages") FROM "periods"."data_quality"')).toEqual([{ time: 0, sum: 200 }]);
  });

  it('bounds the spool: raises the alarm as it fills, then refuses what does not fit (the publish fails, nothing is acknowledged and dropped)', async () => {
    const port = await freePort(); // nothing listens: InfluxDB is away for this whole test
    const config = historianConfigSchema.parse({
      influxUrl: `http://127.0.0.1:${port}`,
      database: 'full',
      spoolDir: join(dir, 'full-spool'),
      spoolMaxBytes: 1024 * 1024,
      spoolAlarmRatio: 0.5,
      retryInitialMs: 1000,
    });
    const historian = new Historian({ bus: broker.broker.bus, config, dataDir: dir });
    await historian.start();
    running.push(historian);
    const values = { a: 1.5, b: 2.5, c: 3.5, d: 4.5 };
    // A publisher that stands for devices: a refused publish fails at once (no in-process redelivery).
    const device = new InProcessBus(broker.broker.aedes, { redelivery: NO_REDELIVERY });
    let sent = 0;
    let refused = 0;
    while (historian.counters().refused_spool_full === 0 && sent < 50_000) {
      const results = await Promise.allSettled(Array.from({ length: 100 }, () => device.publish('lw/F/s1/telemetry', JSON.stringify({ ts: T0 + sent, seq: sent++, values }), { qos: 1 })));
      for (const result of results) {
        if (result.status === 'rejected') {
          expect(result.reason).toBeInstanceOf(MessageRefused);
          expect((result.reason as Error).message).toMatch(/: refusing events: spool full/);
          refused++;
        }
      }
      if (historian.counters().spool_alarm === 0) expect(historian.counters().spool_fill_ratio).toBeLessThan(0.5 + 0.01);
    }
    const c = historian.counters();
    expect(c.spool_alarm).toBe(1);
    expect(c.refused_spool_full).toBeGreaterThan(0);
    expect(refused).toBe(c.refused_spool_full);
    expect(c.spooled + c.refused_spool_full).toBe(c.received);
    expect(c.spool_pending_bytes).toBeLessThanOrEqual(1024 * 1024);
  });

  it('sets the database up again when it disappears, and skips points InfluxDB refuses', async () => {
    const { historian, database } = await startHistorian();
    await publish('lw/R/s1/telemetry', { ts: T0, seq: 0, values: { v: 0 } });
    await historian.flush();
    await influx.query(`DROP DATABASE "${database}"`);
    await publish('lw/R/s1/telemetry', { ts: T0 + 1, seq: 1, values: { v: 1 } });
    await historian.flush();
    expect(await select(database, 'SELECT count("v") FROM telemetry')).toEqual([{ time: 0, count: 1 }]);
    // 30 days old: beyond the raw policy's 7 days, so InfluxDB answers 400 for this batch.
    await publish('lw/R/s1/telemetry', { ts: T0 - 30 * 86_400_000, seq: 2, values: { v: 2 } });
    await historian.flush();
    await publish('lw/R/s1/telemetry', { ts: T0 + 3, seq: 3, values: { v: 3 } });
    await historian.flush();
    expect(historian.counters()).toMatchObject({ dropped_rejected: 1, written: 3 });
    expect(await select(database, 'SELECT count("v") FROM telemetry')).toEqual([{ time: 0, count: 2 }]);
  });

  it('acknowledges a device’s QoS 1 publish only once the event is in the spool file (in-process bus)', async () => {
    const { historian, database } = await startHistorian({ flushIntervalMs: 60_000 });
    const device = await mqtt.connectAsync(broker.url, { username: 'gw', password: 'gw-password-1', clientId: 'gw:device' });
    try {
      const spoolDir = join(dir, database);
      for (let i = 0; i < 20; i++) {
        await device.publishAsync('lw/P/d1/telemetry', JSON.stringify({ ts: T0 + i, seq: 1000 + i, values: { v: i } }), { qos: 1 });
        // The PUBACK came back: the event must already be on disk (in the page cache), no waiting.
        expect(historian.counters().spooled).toBe(i + 1);
        const onDisk = readdirSync(spoolDir)
          .filter((f) => f.startsWith('seg-'))
          .map((f) => readFileSync(join(spoolDir, f), 'latin1'))
          .join('');
        expect(onDisk).toContain(`seq=${1000 + i}i`);
      }
    } finally {
      await device.endAsync();
    }
  });

  // Acknowledge-after-persist across a crash is proven by crash.test.ts (SIGKILL, nothing lost).
  it('takes QoS 1 messages over its own MQTT connection (persistent session) into InfluxDB', async () => {
    const database = `h${++dbCounter}`;
    const config = historianConfigSchema.parse({ influxUrl: influx.url, database, spoolDir: join(dir, database), flushIntervalMs: 50 });
    const bus = await MqttBus.connect(broker.url, { username: 'hist', password: 'hist-password', clientId: 'hist:historian-test', clean: false });
    const historian = new Historian({ bus, config, dataDir: dir });
    await historian.start();
    const device = await mqtt.connectAsync(broker.url, { username: 'gw', password: 'gw-password-1', clientId: 'gw:device' });
    try {
      for (let i = 0; i < 50; i++) await device.publishAsync('lw/C/d1/telemetry', JSON.stringify({ ts: T0 + i, seq: i, values: { v: i } }), { qos: 1 });
      await waitFor(() => historian.counters().spooled === 50, 10_000, '50 events in the spool');
      await historian.flush();
      expect(await select(database, 'SELECT count("v") FROM telemetry')).toEqual([{ time: 0, count: 50 }]);
    } finally {
      await device.endAsync();
      await historian.stop();
      await bus.close();
    }
  });
});
