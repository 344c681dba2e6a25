// Data quality per device over a real broker, a real MQTT client and a real influxd: a known
// sequence of gaps, duplicates, reorders, late and future timestamps gives exactly those counts,
// per device, in /metrics (counters with line/device labels, devices beyond maxDevices together
// as `*`) and in the data_quality rows of the period policy (the intervals' deltas add up to the
// same totals), also across a restart whose last interval waited in the spool for InfluxDB.
import type { MqttClient } from 'mqtt';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { historianConfigSchema } from '../../historian/config.js';
import { QUALITY_FIELDS, type QualityCounts } from '../../historian/data-quality.js';
import { Historian } from '../../historian/index.js';
import { Metrics } from '../../lib/metrics.js';
import { waitFor } from '../../lib/wait.js';
import { connectedClient } from '../harness/mqtt-client.js';
import { startHistorianRig, type HistorianRig } from './rig.js';

const T0 = Date.now() - 600_000;
const DATABASE = 'quality';

type Expected = Record<string, Partial<QualityCounts>>;

/** Every field of `counts`, the ones not given as 0. */
function full(counts: Partial<QualityCounts>): QualityCounts {
  return Object.fromEntries(QUALITY_FIELDS.map((field) => [field, counts[field] ?? 0])) as QualityCounts;
}

/** `linewatch_quality_<field>{…line, device…}` of a /metrics text, per LINE/DEVICE. */
function fromMetrics(text: string): Record<string, QualityCounts> {
  const out: Record<string, QualityCounts> = {};
  for (const match of text.matchAll(/^linewatch_quality_([a-z_]+)\{([^}]*)\} (\d+)$/gm)) {
    const labels = Object.fromEntries([...match[2]!.matchAll(/(\w+)="([^"]*)"/g)].map((l) => [l[1], l[2]]));
    const key = `${labels.line}/${labels.device}`;
    out[key] ??= full({});
    out[key][match[1] as keyof QualityCounts] = Number(match[3]);
  }
  return out;
}

describe('data quality per device', () => {
  let rig: HistorianRig;
  const clients: MqttClient[] = [];
  let device: MqttClient;

  beforeAll(async () => {
    rig = await startHistorianRig('lw-quality-');
    device = await connectedClient(clients, rig.broker.url, { username: 'gw', password: 'gw-password-1', clientId: 'gw' });
  });
  afterAll(async () => {
    await Promise.all(clients.map((client) => client.endAsync()));
    await rig?.stop();
  });

  function historian(): Historian {
    const config = historianConfigSchema.parse({
      influxUrl: rig.influx.url,
      database: DATABASE,
      spoolDir: `${rig.dir}/spool`,
      flushIntervalMs: 50,
      quality: { intervalMs: 1000, lateAfterMs: 1000, futureAheadMs: 60_000, maxDevices: 2 },
    });
    return new Historian({ bus: rig.broker.broker.bus, config, dataDir: rig.dir });
  }

  let sent = 0;
  async function telemetry(name: string, seq: number, ts: number): Promise<void> {
    await device.publishAsync(`lw/A/${name}/telemetry`, JSON.stringify({ ts, seq, values: { v: seq } }), { qos: 1 });
    sent++;
  }
  async function status(name: string, ts: number): Promise<void> {
    await device.publishAsync(`lw/A/${name}/status`, JSON.stringify({ ts, status: 'online' }), { qos: 1 });
    sent++;
  }
  const received = (h: Historian, count: number): Promise<boolean> => waitFor(() => h.counters().received >= count, 10_000, `${count} messages at the historian`);

  async function stored(): Promise<Record<string, QualityCounts>> {
    const [result] = await rig.influx.query(`SELECT ${QUALITY_FIELDS.map((f) => `sum("${f}") AS "${f}"`).join(', ')} FROM "periods"."data_quality" GROUP BY "line", "device"`, DATABASE);
    if (result?.error) throw new Error(result.error);
    const out: Record<string, QualityCounts> = {};
    for (const series of result?.series ?? []) {
      out[`${series.tags?.line}/${series.tags?.device}`] = Object.fromEntries(QUALITY_FIELDS.map((field) => [field, Number(series.values[0]![series.columns.indexOf(field)])])) as QualityCounts;
    }
    return out;
  }

  it('counts each device exactly, in /metrics and in the stored rows, across a restart and a replay', async () => {
    const first = historian();
    await first.start();
    // d1: 0..9 in order, then 13 (10, 11, 12 skipped: one gap, 3 skipped), 11 and 12 late (2 reorders),
    // 13 again (a duplicate), 14; 15 5 s older than its newest (late_ts); a status as old (a will's ts
    // dates from the connect: only counted as a message); 16 an hour ahead (future_ts).
    for (let seq = 0; seq < 10; seq++) await telemetry('d1', seq, T0 + seq * 100);
    await received(first, sent);
    // Into the next interval: each of its points has only its own deltas.
    await waitFor(() => first.counters().data_quality_points >= 1, 10_000, 'the first data_quality point');
    await telemetry('d1', 13, T0 + 1300);
    await telemetry('d1', 11, T0 + 1100);
    await telemetry('d1', 13, T0 + 1300);
    await telemetry('d1', 12, T0 + 1200);
    await telemetry('d1', 14, T0 + 1400);
    await telemetry('d1', 15, T0 + 1400 - 5000);
    await status('d1', T0 + 1400 - 5000);
    await telemetry('d1', 16, Date.now() + 3_600_000);
    // d2: 0..4, 2 twice more (2 duplicates), 8 (5..7 skipped), 9.
    for (const seq of [0, 1, 2, 3, 4, 2, 2, 8, 9]) await telemetry('d2', seq, T0 + seq * 100);
    // d3, d4: beyond maxDevices 2, counted together as */*; d4 loses 1.
    for (const seq of [0, 1, 2]) await telemetry('d3', seq, T0 + seq * 100);
    for (const seq of [0, 2]) await telemetry('d4', seq, T0 + seq * 100);
    await received(first, sent);

    const expected: Expected = {
      'A/d1': { messages: 18, gaps: 1, skipped: 3, duplicates: 1, reorders: 2, late_ts: 1, future_ts: 1 },
      'A/d2': { messages: 9, gaps: 1, skipped: 3, duplicates: 2 },
      '*/*': { messages: 5, gaps: 1, skipped: 1 },
    };
    const want = Object.fromEntries(Object.entries(expected).map(([key, counts]) => [key, full(counts)]));
    expect(fromMetrics(await new Metrics(() => [first]).render())).toEqual(want);
    expect(first.counters()).toMatchObject({ data_quality_devices: 2, data_quality_overflow_messages: 5, seq_gaps: 3, seq_skipped: 7, seq_duplicates: 3, seq_reorders: 2 });

    // InfluxDB goes away before the stop: the last interval's points wait in the spool.
    await first.flush();
    await rig.influx.kill();
    await first.stop();
    await rig.influx.restart();

    // The next run replays them, and counts on from zero (d2 starts a new run there).
    const second = historian();
    await second.start();
    const before = second.counters().received;
    for (const seq of [10, 11, 13]) await telemetry('d2', seq, T0 + 2000 + seq * 100);
    await received(second, before + 3);
    expect(fromMetrics(await new Metrics(() => [second]).render())).toEqual({ 'A/d2': full({ messages: 3, gaps: 1, skipped: 1 }) });
    await second.stop();
    expect(second.counters().replayed).toBeGreaterThan(0);

    const total = { ...want, 'A/d2': full({ messages: 12, gaps: 2, skipped: 4, duplicates: 2 }) };
    expect(await stored()).toEqual(total);
    // Period rows only in the period policy, not in raw (whose days expire).
    const [raw] = await rig.influx.query('SELECT count("messages") FROM "raw"."data_quality"', DATABASE);
    expect(raw?.series ?? []).toEqual([]);
    const [points] = await rig.influx.query('SELECT count("messages") FROM "periods"."data_quality" WHERE "device" = \'d1\'', DATABASE);
    expect(Number(points?.series?.[0]?.values[0]?.[1])).toBeGreaterThanOrEqual(2); // one per interval it sent in
  }, 60_000);
});
