// Zero loss through an InfluxDB crash: 20 000 events stream through a real broker over MQTT
// (QoS 1, persistent session) while influxd is SIGKILLed mid-stream and restarted; InfluxDB ends
// up with exactly 20 000 points, each device's sequence complete, none twice.
import mqtt from 'mqtt';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MqttBus } from '../../bus/index.js';
import { historianConfigSchema } from '../../historian/config.js';
import { Historian } from '../../historian/index.js';
import { waitFor } from '../../lib/wait.js';
import type { TestBroker } from '../harness/broker.js';
import { telemetryStream } from './telemetry-stream.js';
import type { TestInflux } from '../harness/influx.js';
import { startHistorianRig, type HistorianRig } from './rig.js';

const DEVICES = 10;
const TOTAL = 20_000;

describe('historian zero loss', () => {
  let influx: TestInflux;
  let broker: TestBroker;
  let dir: string;

  let rig: HistorianRig | undefined;

  beforeAll(async () => {
    rig = await startHistorianRig('lw-zero-loss-');
    ({ influx, broker, dir } = rig);
  });
  afterAll(async () => {
    await rig?.stop();
  });

  it('keeps every event when influxd is SIGKILLed mid-stream and restarted', { timeout: 120_000 }, async () => {
    const config = historianConfigSchema.parse({
      influxUrl: influx.url,
      database: 'zeroloss',
      batchSize: 1000,
      flushIntervalMs: 50,
      retryInitialMs: 50,
      retryMaxMs: 500,
      requestTimeoutMs: 5000,
    });
    const bus = await MqttBus.connect(broker.url, { username: 'hist', password: 'hist-password', clientId: 'hist:zero-loss', clean: false });
    const historian = new Historian({ bus, config, dataDir: dir });
    await historian.start();
    const gateway = await mqtt.connectAsync(broker.url, { username: 'gw', password: 'gw-password-1', clientId: 'gw:zero-loss' });
    const { sendUpTo } = telemetryStream('Z', DEVICES);
    try {
      await sendUpTo(gateway, 6000);
      await waitFor(() => historian.counters().written > 0, 20_000, 'the first points in InfluxDB');
      await influx.kill('SIGKILL');
      await sendUpTo(gateway, 14_000);
      await waitFor(() => historian.counters().write_failures > 0, 20_000, 'a failed write while influxd is down');
      expect(historian.counters().influx_up).toBe(0);
      expect(historian.counters().spool_pending_bytes).toBeGreaterThan(0);
      await influx.restart();
      await sendUpTo(gateway, TOTAL);
      await waitFor(() => historian.counters().spooled === TOTAL, 30_000, 'every event in the spool');
      await historian.flush(60_000);

      const [count] = await influx.query('SELECT count("v") FROM telemetry', 'zeroloss');
      expect(count?.series?.[0]?.values[0]?.[1]).toBe(TOTAL);
      const [perDevice] = await influx.query('SELECT count(distinct("seq")) AS n, min("seq") AS lo, max("seq") AS hi FROM telemetry GROUP BY "device"', 'zeroloss');
      expect(perDevice?.series).toHaveLength(DEVICES);
      for (const s of perDevice!.series!) expect(s.values[0]!.slice(1)).toEqual([TOTAL / DEVICES, 0, TOTAL / DEVICES - 1]);
      const c = historian.counters();
      expect(c).toMatchObject({ received: TOTAL, spooled: TOTAL, refused_spool_full: 0, refused_disk_full: 0, refused_spool_error: 0, dropped_rejected: 0, influx_up: 1, spool_pending_bytes: 0, seq_missing: 0, seq_duplicates: 0 });
      expect(c.written).toBeGreaterThanOrEqual(TOTAL);
    } finally {
      await gateway.endAsync();
      await historian.stop();
      await bus.close();
    }
  });
});
