// The standalone historian's MQTT side: a persistent session's queued messages are handled, not
// acknowledged unhandled before the subscription is back (bus/mqtt.ts holds them until then);
// a refused subscription fails the start cleanly.
import { join } from 'node:path';
import mqtt from 'mqtt';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MqttBus } from '../../bus/index.js';
import { historianConfigSchema } from '../../historian/config.js';
import { Historian } from '../../historian/index.js';
import { sleep, waitFor } from '../../lib/wait.js';
import type { TestBroker } from '../harness/broker.js';
import type { TestInflux } from '../harness/influx.js';
import { startHistorianRig, type HistorianRig } from './rig.js';

describe('historian MQTT session', () => {
  let influx: TestInflux;
  let broker: TestBroker;
  let dir: string;

  let rig: HistorianRig | undefined;

  beforeAll(async () => {
    rig = await startHistorianRig('lw-hist-session-');
    ({ influx, broker, dir } = rig);
  });
  afterAll(async () => {
    await rig?.stop();
  });

  it('handles every message the broker kept for its persistent session, even if it subscribes late', async () => {
    const options = { username: 'hist', password: 'hist-password', clientId: 'hist:session', clean: false };
    // First visit: subscribe (the broker remembers the session), then leave.
    const first = await MqttBus.connect(broker.url, options);
    await first.subscribe('lw/#', () => undefined, { qos: 1 });
    await first.close();
    const device = await mqtt.connectAsync(broker.url, { username: 'gw', password: 'gw-password-1', clientId: 'gw:session' });
    const t0 = Date.now() - 60_000;
    for (let i = 0; i < 300; i++) await device.publishAsync('lw/S/d1/telemetry', JSON.stringify({ ts: t0 + i, seq: i, values: { v: i } }), { qos: 1 });
    await device.endAsync();
    // Back: the broker sends the 300 right after CONNACK, before the historian has subscribed.
    const bus = await MqttBus.connect(broker.url, options);
    await sleep(300);
    const historian = new Historian({ bus, config: historianConfigSchema.parse({ influxUrl: influx.url, database: 'session', flushIntervalMs: 50 }), dataDir: join(dir, 'a') });
    try {
      await historian.start();
      await waitFor(() => historian.counters().spooled === 300, 10_000, 'the 300 queued messages in the spool');
      await historian.flush();
      const [r] = await influx.query('SELECT count("v") FROM telemetry', 'session');
      expect(r?.series?.[0]?.values[0]?.[1]).toBe(300);
    } finally {
      await historian.stop();
      await bus.close();
    }
  });

  it('fails the start with the broker’s reason when the account may not read lw/#, leaving nothing behind', async () => {
    const bus = await MqttBus.connect(broker.url, { username: 'gw', password: 'gw-password-1' });
    const config = historianConfigSchema.parse({ influxUrl: influx.url, database: 'refused', spoolDir: join(dir, 'refused') });
    try {
      await expect(new Historian({ bus, config, dataDir: dir }).start()).rejects.toThrow(/could not subscribe to lw\/# .*--role historian/);
      // The spool was closed: a new historian can open the same directory and work.
      const retry = new Historian({ bus: broker.broker.bus, config, dataDir: dir });
      await retry.start();
      await retry.stop();
    } finally {
      await bus.close();
    }
  });
});
