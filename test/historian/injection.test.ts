// Issue 9, items 2 and 8 against a real broker and influxd: the line-protocol injection event is
// refused by the contract, and a hostile string that reaches the point builder some other way can
// neither write into another measurement nor cause a field-type conflict in the next-day shard;
// readings named like a tag (or `time`) are stored renamed and /api/history keeps working; the
// latest ts the contract allows is stored.
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { MAX_TIMESTAMP_MS } from '../../contracts/schemas.js';
import { HistoryReader, parseHistoryQuery } from '../../dashboard/server/history.js';
import { historianConfigSchema } from '../../historian/config.js';
import { InfluxClient } from '../../historian/influx.js';
import { Historian } from '../../historian/index.js';
import { PointBuilder } from '../../historian/points.js';
import { startHistorianRig, type HistorianRig } from './rig.js';

const T0 = Math.floor(Date.now() / 1000) * 1000 - 3_600_000;

function tomorrowAt(seconds: number): number {
  const now = new Date();
  return Date.UTC(now.getUTCFullYear(), now.getUTCMonth(), now.getUTCDate() + 1, 0, 0, seconds);
}

describe('line-protocol injection and reserved names (real influxd)', () => {
  let rig: HistorianRig;
  const running: Historian[] = [];
  let dbCounter = 0;

  beforeAll(async () => {
    rig = await startHistorianRig('lw-injection-');
  });
  afterEach(async () => {
    await Promise.all(running.splice(0).map((h) => h.stop()));
  });
  afterAll(async () => {
    await rig?.stop();
  });

  async function startHistorian(): Promise<{ historian: Historian; database: string }> {
    const database = `inj${++dbCounter}`;
    const config = historianConfigSchema.parse({ influxUrl: rig.influx.url, database, spoolDir: `${rig.dir}/${database}`, flushIntervalMs: 50 });
    const historian = new Historian({ bus: rig.broker.broker.bus, config, dataDir: rig.dir });
    await historian.start();
    running.push(historian);
    return { historian, database };
  }

  const publish = (topic: string, payload: string | object): Promise<void> =>
    rig.broker.broker.bus.publish(topic, typeof payload === 'string' ? payload : JSON.stringify(payload), { qos: 1 });

  async function select(database: string, q: string): Promise<Record<string, unknown>[]> {
    const [result] = await rig.influx.query(q, database);
    if (result?.error) throw new Error(result.error);
    return (result?.series ?? []).flatMap((s) => s.values.map((row) => ({ _measurement: s.name, ...s.tags, ...Object.fromEntries(s.columns.map((c, i) => [c, row[i]])) })));
  }

  it('refuses the injection event, and a hostile point written past the schema leaves the next-day state shard intact', async () => {
    const { historian, database } = await startHistorian();
    const ts = tomorrowAt(1);
    await publish('lw/L/d1/telemetry', `{"ts":${ts},"seq":11,"station":"x\\nstate","values":{"state":1}}`);
    expect(historian.counters()).toMatchObject({ received: 1, dropped_invalid_payload: 1, spooled: 0 });

    // The same strings straight into the point builder, written by the historian's InfluxDB client.
    const hostile = [
      new PointBuilder('telemetry').tag('device', 'd1').tag('line', 'L').tag('station', 'x\nstate').float('state', 1).int('seq', 11).at(ts, 11),
      new PointBuilder('telemetry').tag('device', 'd1').tag('line', 'L').tag('station', 'x\\').float('v', 1).at(ts, 12),
      new PointBuilder('telemetry').tag('device', 'd1').tag('line', 'L').float('v\nstate state=1', 2).at(ts, 13),
      new PointBuilder('alerts').tag('device', 'd1').tag('line', 'L').tag('rule', 'r\nstate,device=d9 state=2').str('message', 'm\nstate state=3').at(ts, 14),
    ];
    const client = new InfluxClient({ url: rig.influx.url, database });
    try {
      await client.write(hostile.join('\n'));
    } finally {
      client.close();
    }

    await publish('lw/L/d2/state', { ts: tomorrowAt(2), seq: 1, state: 'RUNNING' });
    await historian.flush();
    expect(historian.counters()).toMatchObject({ written: 1, dropped_rejected: 0 });
    expect(await select(database, 'SELECT "state", "code" FROM "state"')).toEqual([{ _measurement: 'state', time: tomorrowAt(2), state: 'RUNNING', code: 0 }]);
    const measurements = (await select(database, 'SHOW MEASUREMENTS')).map((r) => r.name);
    expect(measurements.sort()).toEqual(['alerts', 'state', 'telemetry']);
    const fieldTypes = await select(database, 'SHOW FIELD KEYS FROM "state"');
    expect(fieldTypes.map((r) => [r.fieldKey, r.fieldType])).toEqual([
      ['code', 'integer'],
      ['seq', 'integer'],
      ['state', 'string'],
    ]);
    // Each hostile point is one point in its own measurement, its unwritable characters replaced.
    const telemetry = await select(database, `SELECT * FROM "telemetry" WHERE "device" = 'd1'`);
    expect(telemetry.map((r) => Object.fromEntries(Object.entries(r).filter(([key, value]) => value !== null && !['_measurement', 'time', 'device', 'line'].includes(key))))).toEqual([
      { station: 'x\uFFFDstate', state: 1, seq: 11 },
      { station: 'x\uFFFD', v: 1 },
      { 'v\uFFFDstate state=1': 2 },
    ]);
    const alerts = await select(database, 'SELECT "message", "rule", "device" FROM "alerts"');
    expect(alerts).toEqual([{ _measurement: 'alerts', time: ts, message: 'm\nstate state=3', rule: 'r\uFFFDstate,device=d9 state=2', device: 'd1' }]);
  });

  it('stores readings named device, line, station, type, seq and time as <name>_value; /api/history keeps working for every device', async () => {
    const { historian, database } = await startHistorian();
    await publish('lw/A/d1/telemetry', { ts: T0, seq: 1, values: { temperature: 21 }, station: 's1' });
    await publish('lw/A/d2/telemetry', { ts: T0 + 1, seq: 1, values: { device: 1, temperature: 20 } });
    await publish('lw/A/d3/telemetry', { ts: T0 + 2, seq: 1, values: { time: 5, line: 6, station: 7, type: 8, seq: 9, temperature: 22 } });
    await historian.flush();
    expect(historian.counters()).toMatchObject({ written: 3, dropped_rejected: 0, dropped_invalid_payload: 0 });

    const rows = await select(database, 'SELECT * FROM "telemetry"');
    expect(rows).toEqual([
      { _measurement: 'telemetry', time: T0, device: 'd1', line: 'A', station: 's1', temperature: 21, seq: 1, device_value: null, time_value: null, line_value: null, station_value: null, type_value: null, seq_value: null },
      { _measurement: 'telemetry', time: T0 + 1, device: 'd2', line: 'A', station: null, temperature: 20, seq: 1, device_value: 1, time_value: null, line_value: null, station_value: null, type_value: null, seq_value: null },
      { _measurement: 'telemetry', time: T0 + 2, device: 'd3', line: 'A', station: null, temperature: 22, seq: 1, device_value: null, time_value: 5, line_value: 6, station_value: 7, type_value: 8, seq_value: 9 },
    ]);

    const reader = new HistoryReader({ url: rig.influx.url, database });
    for (const by of ['device', 'none'] as const) {
      const parsed = parseHistoryQuery(new URLSearchParams({ measurement: 'telemetry', field: 'temperature', from: String(T0 - 60_000), to: String(T0 + 60_000), agg: 'none', by }));
      if (!parsed.ok) throw new Error(parsed.error);
      const result = await reader.read(parsed.query);
      const series = result.series.map((s) => ({ device: s.device, values: s.points.map((p) => p[1]) }));
      expect(series).toEqual(by === 'device' ? [{ device: 'd1', values: [21] }, { device: 'd2', values: [20] }, { device: 'd3', values: [22] }] : [{ device: null, values: [21, 20, 22] }]);
    }
    // Filtering by device (the tag) works for every device, the one with the `device` reading too.
    for (const device of ['d1', 'd2', 'd3']) {
      const one = parseHistoryQuery(new URLSearchParams({ measurement: 'telemetry', field: 'temperature', from: String(T0 - 60_000), to: String(T0 + 60_000), device, every: '1m' }));
      if (!one.ok) throw new Error(one.error);
      expect((await reader.read(one.query)).series.map((s) => s.device)).toEqual([device]);
    }
  });

  it('stores the latest ts the contract allows, with the largest disambiguator', async () => {
    const { historian, database } = await startHistorian();
    await publish('lw/A/d1/telemetry', { ts: MAX_TIMESTAMP_MS, seq: 999_999, values: { v: 1 } });
    await publish('lw/A/d1/telemetry', { ts: 9007199254740991, seq: 1_000_000, values: { v: 2 } });
    await historian.flush();
    expect(historian.counters()).toMatchObject({ spooled: 1, written: 1, dropped_invalid_payload: 1, dropped_rejected: 0 });
    const [result] = await rig.influx.query('SELECT "v", "seq" FROM "telemetry"', database);
    const params = new URLSearchParams({ q: 'SELECT "v" FROM "telemetry"', db: database, epoch: 'ns' });
    const ns = (await (await fetch(`${rig.influx.url}/query`, { method: 'POST', body: params })).text()).match(/\[\[(\d+),/)?.[1];
    expect(result?.series?.[0]?.values).toEqual([[MAX_TIMESTAMP_MS, 1, 999_999]]);
    expect(ns).toBe(`${MAX_TIMESTAMP_MS}999999`);
  });
});
