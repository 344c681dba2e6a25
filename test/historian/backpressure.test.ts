// Spool full → no acknowledgement (issue 9, item 3). With InfluxDB away and a tiny spool, the
// events the spool cannot take must not be acknowledged: on the in-process bus the device gets
// no PUBACK and sends them again; standalone, the broker's delivery to the historian is not
// acknowledged and comes again on its persistent session. Once InfluxDB is there, everything the
// device sent is stored, each event once. A refusal disconnects the device without publishing its
// will (it is not reported offline), and a QoS 1 message published in-process that the historian
// refused is delivered to it again until its spool takes it (issue 9 review, findings 3 and 5).
// Real broker, real MQTT clients, real influxd (started late, on the port the historian was given).
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import mqtt, { type MqttClient } from 'mqtt';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { MqttBus } from '../../bus/index.js';
import { topics } from '../../contracts/index.js';
import { Historian } from '../../historian/index.js';
import { freePort, startManagedInfluxd, type ManagedInfluxd } from '../../historian/influxd.js';
import { historianConfigSchema } from '../../historian/config.js';
import { waitFor } from '../../lib/wait.js';
import { startTestBroker, type TestBroker } from '../harness/broker.js';

// Recent enough for the raw retention policy.
const T0 = Math.floor(Date.now() / 1000) * 1000 - 3_600_000;
const SPOOL_MAX = 1024 * 1024; // the smallest spool historian.spoolMaxBytes allows
const TOTAL = 20_000; // ~83 bytes of line protocol each: about half as much again as the spool holds

describe('spool full: backpressure instead of acknowledged-then-dropped', () => {
  let broker: TestBroker;
  let dir: string;
  const cleanups: (() => Promise<unknown>)[] = [];

  beforeAll(async () => {
    broker = await startTestBroker({ wsPort: null });
    await broker.addAccount('hist', 'hist-password-7Q', 'historian');
    await broker.addAccount('gw', 'gw-password-7Q', 'gateway');
    dir = mkdtempSync(join(tmpdir(), 'lw-backpressure-'));
  });
  afterEach(async () => {
    for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
  });
  afterAll(async () => {
    await broker?.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  function historianConfig(name: string, influxPort: number) {
    return historianConfigSchema.parse({
      influxUrl: `http://127.0.0.1:${influxPort}`,
      database: name,
      spoolDir: join(dir, name),
      spoolMaxBytes: SPOOL_MAX,
      spoolAlarmRatio: 0.5,
      batchSize: 2000,
      flushIntervalMs: 50,
      retryInitialMs: 100,
      retryMaxMs: 300,
    });
  }

  /** A retained `offline` status for device d1 of `line`, as devices set it. */
  function offlineWill(line: string, device: string) {
    return { topic: topics.status(line, device), payload: Buffer.from(JSON.stringify({ ts: T0, status: 'offline' })), qos: 1 as const, retain: true };
  }

  /** The device d1 of `line`: a real MQTT client with a will that publishes TOTAL numbered events at QoS 1 and records each PUBACK. */
  async function startDevice(clientId: string, line = 'BP'): Promise<{ client: MqttClient; acked: Set<number>; reconnects: () => number }> {
    const client = await mqtt.connectAsync(broker.url, { username: 'gw', password: 'gw-password-7Q', clientId, reconnectPeriod: 100, will: offlineWill(line, 'd1') });
    cleanups.push(() => client.endAsync(true));
    let reconnects = 0;
    client.on('reconnect', () => reconnects++);
    const acked = new Set<number>();
    const values = { a: 1.5, b: 2.5, c: 3.5 };
    for (let seq = 0; seq < TOTAL; seq++) {
      client.publish(topics.telemetry(line, 'd1'), JSON.stringify({ ts: T0 + seq, seq, values }), { qos: 1 }, (err) => {
        if (!err) acked.add(seq);
      });
    }
    return { client, acked, reconnects: () => reconnects };
  }

  async function startInfluxd(name: string, port: number): Promise<ManagedInfluxd> {
    const influxd = await startManagedInfluxd({ dataDir: join(dir, `${name}-influxd`), port });
    cleanups.push(() => influxd.stop());
    return influxd;
  }

  async function query(influxd: ManagedInfluxd, database: string, q: string): Promise<unknown[][]> {
    const params = new URLSearchParams({ q, db: database, epoch: 'ms' });
    const res = await fetch(`${influxd.url}/query`, { method: 'POST', body: params, signal: AbortSignal.timeout(20_000) });
    const body = (await res.json()) as { results: { series?: { values: unknown[][] }[] }[] };
    return body.results[0]?.series?.[0]?.values ?? [];
  }

  /** Stored points per seq of device d1. */
  async function storedPerSeq(influxd: ManagedInfluxd, database: string): Promise<Map<number, number>> {
    const rows = (await query(influxd, database, `SELECT "seq", "a" FROM telemetry WHERE "device" = 'd1'`)) as [number, number, number][];
    const perSeq = new Map<number, number>();
    for (const [, seq] of rows) perSeq.set(seq, (perSeq.get(seq) ?? 0) + 1);
    return perSeq;
  }

  function expectEachOnce(perSeq: Map<number, number>): void {
    expect(perSeq.size).toBe(TOTAL);
    expect([...perSeq.values()].every((n) => n === 1)).toBe(true);
    for (let seq = 0; seq < TOTAL; seq++) expect(perSeq.has(seq)).toBe(true);
  }

  it('in-process bus: the device gets no PUBACK for what the spool cannot take, sends it again, and all is stored once', async () => {
    const influxPort = await freePort(); // nothing listens yet: InfluxDB is away
    const historian = new Historian({ bus: broker.broker.bus, config: historianConfig('inproc', influxPort), dataDir: dir });
    await historian.start();
    cleanups.push(() => historian.stop());
    // Another in-process subscriber, as the rules engine and the dashboard are: it must keep getting events.
    let otherReceived = 0;
    cleanups.push(await broker.broker.bus.subscribe('lw/#', () => void otherReceived++));

    const device = await startDevice('gw:bp-device');
    await waitFor(() => historian.counters().spool_pending_bytes > SPOOL_MAX - 1024, 30_000, 'the spool to reach historian.spoolMaxBytes');
    // Either everything was acknowledged (events dropped after their PUBACK), or the device was
    // refused and had to send again, twice.
    await waitFor(() => device.acked.size === TOTAL || device.reconnects() >= 2, 30_000, 'all PUBACKs or two reconnects of the device');
    const c = historian.counters();
    // Every PUBACK the device got is for an event in the spool.
    expect(device.acked.size).toBeLessThanOrEqual(c.spooled);
    expect(device.acked.size).toBeLessThan(TOTAL);
    expect(c.refused_spool_full).toBeGreaterThan(0);
    expect(c.spool_alarm).toBe(1);
    // The others kept receiving meanwhile, refused events included (and again when resent).
    expect(otherReceived).toBeGreaterThan(c.spooled);

    const influxd = await startInfluxd('inproc', influxPort);
    await waitFor(() => device.acked.size === TOTAL, 60_000, 'a PUBACK for every event');
    await historian.flush(30_000);
    expectEachOnce(await storedPerSeq(influxd, 'inproc'));
  }, 180_000);

  it('standalone (MqttBus, persistent session): a delivery the spool cannot take is not acknowledged and comes again', async () => {
    const influxPort = await freePort();
    const bus = await MqttBus.connect(broker.url, { username: 'hist', password: 'hist-password-7Q', clientId: 'hist:bp-historian', clean: false, reconnectPeriod: 100 });
    cleanups.push(() => bus.close());
    const historian = new Historian({ bus, config: historianConfig('standalone', influxPort), dataDir: dir });
    await historian.start();
    cleanups.push(() => historian.stop());

    const device = await startDevice('gw:bp-device-2');
    await waitFor(() => device.acked.size === TOTAL, 30_000, 'the broker to acknowledge every event');
    await waitFor(() => historian.counters().spool_pending_bytes > SPOOL_MAX - 1024, 30_000, 'the spool to reach historian.spoolMaxBytes');

    const influxd = await startInfluxd('standalone', influxPort);
    await waitFor(async () => (await storedPerSeq(influxd, 'standalone')).size === TOTAL, 60_000, `all ${TOTAL} events in InfluxDB`);
    await historian.flush(30_000);
    expectEachOnce(await storedPerSeq(influxd, 'standalone'));
    expect(historian.counters().refused_spool_full).toBeGreaterThan(0);
    expect(bus.refused).toBeGreaterThan(0);
  }, 180_000);

  it('a refused device is disconnected without its will: no "offline" on its status topic while it is refused', async () => {
    const influxPort = await freePort(); // nothing listens: InfluxDB is away, the spool fills
    const historian = new Historian({ bus: broker.broker.bus, config: historianConfig('will', influxPort), dataDir: dir });
    await historian.start();
    cleanups.push(() => historian.stop());
    // A real subscriber to every device's status, as the dashboard and status rules are.
    const watcher = await mqtt.connectAsync(broker.url, { username: 'hist', password: 'hist-password-7Q', clientId: 'hist:status-watch' });
    cleanups.push(() => watcher.endAsync(true));
    const statuses: string[] = [];
    const controlStatuses: string[] = [];
    watcher.on('message', (topic, payload) => {
      const { status } = JSON.parse(payload.toString()) as { status: string };
      if (topic === topics.status('WL', 'd1')) statuses.push(status);
      if (topic === topics.status('WL', 'd2')) controlStatuses.push(status);
    });
    await watcher.subscribeAsync('lw/+/+/status', { qos: 1 });

    const device = await startDevice('gw:will-device', 'WL');
    await waitFor(() => device.reconnects() >= 3, 60_000, 'three reconnects of the refused device');
    expect(historian.counters().refused_spool_full).toBeGreaterThan(0);
    expect(statuses).toEqual([]);
    expect(broker.broker.counters().rejected_publish_refused).toBeGreaterThanOrEqual(3);

    // Wills still work: a device (not refused) whose connection drops without DISCONNECT is reported offline.
    const control = await mqtt.connectAsync(broker.url, { username: 'gw', password: 'gw-password-7Q', clientId: 'gw:will-control', reconnectPeriod: 0, will: offlineWill('WL', 'd2') });
    cleanups.push(() => control.endAsync(true));
    control.stream.destroy();
    await waitFor(() => controlStatuses.includes('offline'), 10_000, 'the will of the control device whose connection dropped');
    expect(statuses).toEqual([]);
  }, 180_000);

  it('an alert published in-process while the spool is full is stored once room returns', async () => {
    const influxPort = await freePort();
    const historian = new Historian({ bus: broker.broker.bus, config: historianConfig('inprocalert', influxPort), dataDir: dir });
    await historian.start();
    cleanups.push(() => historian.stop());
    const device = await startDevice('gw:alert-device', 'AL');
    await waitFor(() => historian.counters().refused_spool_full > 0, 60_000, 'the historian to refuse events (spool full)');

    const alert = { id: 'overheat:AL/d1', rule: 'overheat', severity: 'warning', state: 'raised', message: 'too hot', device: 'd1', ts: T0 + 5 };
    const refusedBefore = historian.counters().refused_spool_full;
    const published = broker.broker.bus.publish(topics.alerts('AL'), JSON.stringify(alert), { qos: 1 });
    let settled = false;
    const outcome = published.then(
      () => 'stored',
      (err: unknown) => `rejected: ${(err as Error).message}`,
    ).finally(() => (settled = true));
    await waitFor(() => historian.counters().refused_spool_full > refusedBefore, 30_000, 'a refusal after the alert was published');
    // The spool is still full (InfluxDB is away): the publish waits for room, it neither failed nor succeeded.
    expect(settled ? await outcome : 'pending').toBe('pending');

    const influxd = await startInfluxd('inprocalert', influxPort);
    expect(await outcome).toBe('stored');
    await waitFor(() => device.acked.size === TOTAL, 60_000, 'a PUBACK for every device event');
    await historian.flush(30_000);
    const rows = await query(influxd, 'inprocalert', `SELECT "message" FROM alerts WHERE "rule" = 'overheat'`);
    expect(rows.map((row) => row[1])).toEqual(['too hot']);
    expect(broker.broker.bus.redelivered).toBeGreaterThan(0);
  }, 180_000);
});
