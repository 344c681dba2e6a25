// historian.thread "worker": the historian in a worker thread of its own (historian/thread.ts,
// bus/thread-bridge.ts), fed by the embedded broker's in-process bus as in `linewatch up`. Every
// QoS 1 event a device publishes is in InfluxDB once; the figures, health, data quality and log
// lines of the worker reach this thread; stop ends the worker.
//
// It runs the built code (dist/), as `npm test` builds first: the worker thread loads
// dist/historian/thread-entry.js, and the broker, bus and historian on this side are the same
// modules (one MessageRefused class on both sides of the bridge).
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import mqtt from 'mqtt';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { waitFor, withTimeout } from '../../lib/wait.js';
import { startTestInflux, type TestInflux } from '../harness/influx.js';

type Dist = {
  broker: typeof import('../../broker/index.js');
  inProcess: typeof import('../../broker/in-process-bus.js');
  module: typeof import('../../historian/module.js');
  config: typeof import('../../historian/config.js');
  services: typeof import('../../config/services.js');
};
const dist: Dist = {
  broker: (await import(new URL('../../dist/broker/index.js', import.meta.url).href)) as Dist['broker'],
  inProcess: (await import(new URL('../../dist/broker/in-process-bus.js', import.meta.url).href)) as Dist['inProcess'],
  module: (await import(new URL('../../dist/historian/module.js', import.meta.url).href)) as Dist['module'],
  config: (await import(new URL('../../dist/historian/config.js', import.meta.url).href)) as Dist['config'],
  services: (await import(new URL('../../dist/config/services.js', import.meta.url).href)) as Dist['services'],
};

const DEVICES = 5;
const EVENTS = 3000;

let influx: TestInflux;
let dir: string;
beforeAll(async () => {
  influx = await startTestInflux();
  dir = mkdtempSync(join(tmpdir(), 'lw-hist-thread-'));
});
afterAll(async () => {
  await influx?.stop();
  rmSync(dir, { recursive: true, force: true });
});

/** The embedded broker (open mode, memory store), as `linewatch up` runs it; `file` its own devices file. */
const openBroker = (file: string): ReturnType<Dist['broker']['startBroker']> =>
  dist.broker.startBroker(dist.broker.brokerConfigSchema.parse({ host: '127.0.0.1', persistence: 'memory', port: 0, wsPort: null, open: true, devicesFile: join(dir, file) }), { roles: dist.services.roleGrants(), dataDir: dir });

describe('historian.thread worker', () => {
  it('stores every event once from a worker thread, and reports through this one', { timeout: 90_000 }, async () => {
    const broker = await openBroker('devices.json');
    const config = dist.config.historianConfigSchema.parse({ thread: 'worker', influxUrl: influx.url, database: 'thread', batchSize: 500, flushIntervalMs: 50 });
    const historian = dist.module.historianModule.create({ bus: broker.bus, config, dataDir: dir });
    const device = await mqtt.connectAsync(`mqtt://127.0.0.1:${broker.ports.mqtt}`, { clientId: 'thread-device' });
    try {
      await historian.start();
      expect(historian.info()).toMatchObject({ lines: 'all', thread: 'worker' });
      expect(historian.health()).toEqual({ status: 'ok', reasons: [] });
      for (let i = 0; i < EVENTS; i += 300) {
        await Promise.all(
          Array.from({ length: 300 }, (_, k) => {
            const n = i + k;
            const seq = Math.floor(n / DEVICES);
            return device.publishAsync(`lw/A/d${n % DEVICES}/telemetry`, JSON.stringify({ ts: 1_800_000_000_000 + seq * 10, seq, values: { v: n } }), { qos: 1 });
          }),
        );
      }
      // Every PUBACK came after the worker had the event in its spool; now they reach InfluxDB.
      const count = async (): Promise<number> => {
        const [result] = await influx.query('SELECT count("v") FROM telemetry', 'thread');
        return (result?.series?.[0]?.values[0]?.[1] as number | undefined) ?? 0;
      };
      await waitFor(async () => (await count()) >= EVENTS, 60_000, `${EVENTS} points in InfluxDB`);
      expect(await count()).toBe(EVENTS);
      const [perDevice] = await influx.query('SELECT count(distinct("seq")) AS n FROM telemetry GROUP BY "device"', 'thread');
      expect(perDevice!.series!.map((series) => series.values[0]![1])).toEqual(Array(DEVICES).fill(EVENTS / DEVICES));

      // The worker's figures arrive with its snapshots.
      await waitFor(() => historian.counters().written === EVENTS, 10_000, 'the snapshot with every event written');
      expect(historian.counters()).toMatchObject({ received: EVENTS, spooled: EVENTS, refused_spool_full: 0, dropped_invalid_payload: 0 });
      expect(historian.gauges.has('spool_records')).toBe(true);
      expect(historian.deviceQuality('A', 'd1')?.totals).toMatchObject({ messages: EVENTS / DEVICES, gaps: 0, duplicates: 0 });
      expect(historian.labelledCounters?.().find((counter) => counter.key === 'quality_messages' && counter.labels.device === 'd1')?.value).toBe(EVENTS / DEVICES);
    } finally {
      await device.endAsync();
      await historian.stop();
      await broker.stop();
    }
    expect(historian.health().status).toBe('down');
    expect(historian.health().reasons).toContain('stopped');
  });

  it('a historian that cannot start fails start() with its reason', { timeout: 60_000 }, async () => {
    const broker = await openBroker('devices2.json');
    try {
      // A spool dir under a file: the Historian's start fails in the worker.
      writeFileSync(join(dir, 'a-file'), 'not a directory');
      const config = dist.config.historianConfigSchema.parse({ thread: 'worker', influxUrl: influx.url, database: 'thread2', spoolDir: join(dir, 'a-file', 'spool') });
      const historian = dist.module.historianModule.create({ bus: broker.bus, config, dataDir: dir });
      await expect(historian.start()).rejects.toThrow(/a-file/);
      expect(historian.health().status).toBe('down');
      expect(historian.health().reasons.join(' ')).toMatch(/did not start/);
    } finally {
      await broker.stop();
    }
  });

  it('a worker that dies leaves the historian down and refusing, so nothing is acknowledged that nobody stored', { timeout: 60_000 }, async () => {
    const broker = await openBroker('devices3.json');
    const config = dist.config.historianConfigSchema.parse({ thread: 'worker', influxUrl: influx.url, database: 'thread3' });
    const historian = dist.module.historianModule.create({ bus: broker.bus, config, dataDir: join(dir, 'crash') });
    try {
      await historian.start();
      // What a crash of the thread looks like from here (the test reaches the private worker to end it).
      await (historian as unknown as { worker: { terminate(): Promise<number> } }).worker.terminate();
      await waitFor(() => historian.health().status === 'down', 10_000, 'the historian to be down');
      expect(historian.health().reasons.join(' ')).toMatch(/worker thread exited/);
      // A publisher that hears a refusal at once: the event stays with it instead of being acknowledged.
      const device = new dist.inProcess.InProcessBus(broker.aedes, { redelivery: dist.inProcess.NO_REDELIVERY });
      await expect(device.publish('lw/A/d1/telemetry', JSON.stringify({ ts: 1_800_000_000_000, seq: 1, values: { v: 1 } }), { qos: 1 })).rejects.toThrow(/worker thread exited/);
    } finally {
      await historian.stop();
      await broker.stop();
    }
  });

  it('stop() while start() is under way settles both', { timeout: 60_000 }, async () => {
    const broker = await openBroker('devices4.json');
    const config = dist.config.historianConfigSchema.parse({ thread: 'worker', influxUrl: influx.url, database: 'thread4' });
    const historian = dist.module.historianModule.create({ bus: broker.bus, config, dataDir: join(dir, 'early-stop') });
    try {
      const started = historian.start();
      const stopped = historian.stop();
      const outcomes = await withTimeout(Promise.allSettled([started, stopped]), 20_000, 'start() and stop() to settle');
      expect(outcomes[1]).toEqual({ status: 'fulfilled', value: undefined });
      expect(historian.health().status).toBe('down');
    } finally {
      await broker.stop();
    }
  });
});
