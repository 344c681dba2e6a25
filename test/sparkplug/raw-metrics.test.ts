// Raw Sparkplug metrics in InfluxDB: Eclipse Tahu's sparkplug-client as an independent edge node
// on the real embedded broker (authentication and ACL on), the Sparkplug host, the historian on
// the broker's bus and a real influxd. Births and data land in sparkplug_metrics with the field of
// their datatype; a replayed raw metrics message stores nothing twice; the series bound drops
// and counts; no device account may publish or read lw/_sparkplug/.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import mqtt from 'mqtt';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { Historian, historianConfigSchema } from '../../historian/index.js';
import { sleep, waitFor } from '../../lib/wait.js';
import { SparkplugHost, sparkplugConfigSchema, type SparkplugConfig } from '../../sparkplug/index.js';
import { grantedQos, startTestBroker, type TestBroker } from '../harness/broker.js';
import { startTestInflux, type TestInflux } from '../harness/influx.js';
import { TestEdge, type EdgeMetric } from '../harness/sparkplug-edge.js';

const PASSWORD = 'Sparkplug-raw-secret-7';
const HOST_ID = 'lw-raw-host';
const DATABASE = 'sparkplug_raw';

let tb: TestBroker;
let influx: TestInflux;
let historian: Historian;
let dataDir: string;
const edges: TestEdge[] = [];
const hosts: SparkplugHost[] = [];

const NODE: EdgeMetric[] = [{ name: 'Properties/Firmware', alias: 100, type: 'String', value: '1.4.2' }];
const OVEN: EdgeMetric[] = [
  { name: 'temperature', alias: 1, type: 'Double', value: 180.25 },
  { name: 'Motor/Load', alias: 2, type: 'Float', value: 0.5 },
  { name: 'count', alias: 3, type: 'Int32', value: 7 },
  { name: 'energyWh', alias: 4, type: 'UInt64', value: 123456789012 },
  { name: 'running', alias: 5, type: 'Boolean', value: true },
  { name: 'recipe', alias: 6, type: 'String', value: 'bread' },
];

beforeAll(async () => {
  [tb, influx] = await Promise.all([startTestBroker({ wsPort: null }), startTestInflux()]);
  await tb.addAccount(HOST_ID, PASSWORD, 'sparkplug');
  for (const edge of ['edge-1', 'edge-2']) await tb.addAccount(`G1/${edge}`, PASSWORD, 'sparkplug-edge');
  await tb.addAccount('_sparkplug/G1', PASSWORD, 'device');
  dataDir = mkdtempSync(join(tmpdir(), 'lw-sparkplug-raw-'));
  historian = new Historian({ bus: tb.broker.bus, config: historianConfigSchema.parse({ influxUrl: influx.url, database: DATABASE, flushIntervalMs: 50 }), dataDir });
  await historian.start();
}, 60_000);

afterEach(async () => {
  for (const edge of edges.splice(0)) edge.stop();
  for (const host of hosts.splice(0)) await host.stop();
});

afterAll(async () => {
  await historian?.stop();
  await tb?.stop();
  await influx?.stop();
  if (dataDir) rmSync(dataDir, { recursive: true, force: true });
});

async function startHost(overrides: Partial<SparkplugConfig> = {}): Promise<SparkplugHost> {
  const config = sparkplugConfigSchema.parse({ enabled: true, hostId: HOST_ID, rebirthThrottleMs: 0, ...overrides });
  const host = new SparkplugHost({ bus: tb.broker.bus, config, mqtt: { url: tb.url, username: HOST_ID, password: PASSWORD } });
  hosts.push(host);
  await host.start();
  return host;
}

async function startEdge(edge: string, devices: Record<string, EdgeMetric[]>, nodeMetrics: EdgeMetric[] = []): Promise<TestEdge> {
  const node = new TestEdge({ url: tb.url, group: 'G1', edge, password: PASSWORD, devices, nodeMetrics });
  edges.push(node);
  await node.connected();
  return node;
}

type Row = Record<string, unknown>;

async function rows(where: string): Promise<Row[]> {
  const [result] = await influx.query(`SELECT * FROM "sparkplug_metrics" WHERE ${where}`, DATABASE);
  const series = result?.series?.[0];
  if (!series) return [];
  return series.values.map((values) => Object.fromEntries(series.columns.map((column, index) => [column, values[index]])));
}

describe('raw Sparkplug metrics in InfluxDB', () => {
  it("stores an edge node's births and data with their datatypes, each in the field of its datatype, and a replay stores nothing twice", async () => {
    const raw: { topic: string; payload: Buffer }[] = [];
    const stopWatching = await tb.broker.bus.subscribe('lw/_sparkplug/#', (topic, payload) => void raw.push({ topic, payload: Buffer.from(payload) }));
    const host = await startHost();
    const edge = await startEdge('edge-1', { 'oven-1': OVEN }, NODE);
    edge.data('oven-1', [
      { alias: 1, type: 'Double', value: 181.5 },
      { alias: 3, type: 'Int32', value: 8 },
      { alias: 5, type: 'Boolean', value: false },
      { alias: 6, type: 'String', value: 'rye' },
    ]);
    await waitFor(() => host.counters().data >= 1, 10_000, 'the DDATA at the host');
    await historian.flush();
    const oven = await waitFor(async () => {
      const found = await rows(`"edge" = 'edge-1' AND "device" = 'oven-1'`);
      return found.length >= OVEN.length + 4 ? found : undefined;
    }, 20_000, "oven-1's births and data in sparkplug_metrics");
    const of = (metric: string): Row[] => oven.filter((row) => row.metric === metric);
    // The birth and the data, each point with its datatype tag and the value in the field of that datatype.
    expect(of('temperature').map((row) => [row.datatype, row.value_float, row.message])).toEqual([['Double', 180.25, 'DBIRTH'], ['Double', 181.5, 'DDATA']]);
    expect(of('Motor/Load').map((row) => [row.datatype, row.value_float, row.alias])).toEqual([['Float', 0.5, 2]]);
    expect(of('count').map((row) => [row.datatype, row.value_int])).toEqual([['Int32', 7], ['Int32', 8]]);
    expect(of('energyWh').map((row) => [row.datatype, row.value_int])).toEqual([['UInt64', 123456789012]]);
    expect(of('running').map((row) => [row.datatype, row.value_bool])).toEqual([['Boolean', true], ['Boolean', false]]);
    expect(of('recipe').map((row) => [row.datatype, row.value_str])).toEqual([['String', 'bread'], ['String', 'rye']]);
    expect(oven.every((row) => row.group === 'G1' && row.stale === 0 && row.online === 1 && typeof row.seq === 'number')).toBe(true);
    // The node's own metrics, without a device tag; bdSeq (added by Tahu) too.
    const node = await rows(`"edge" = 'edge-1' AND "device" = ''`);
    expect(node.map((row) => [row.metric, row.datatype, row.value_str ?? row.value_int, row.message]).sort()).toEqual([
      ['Properties/Firmware', 'String', '1.4.2', 'NBIRTH'],
      ['bdSeq', 'UInt64', 0, 'NBIRTH'],
    ]);
    // InfluxDB holds one type per field: the schema it inferred.
    const [fields] = await influx.query('SHOW FIELD KEYS FROM "sparkplug_metrics"', DATABASE);
    const types = Object.fromEntries((fields?.series?.[0]?.values ?? []).map(([key, type]) => [key, type]));
    expect(types).toMatchObject({ value_int: 'integer', value_float: 'float', value_bool: 'boolean', value_str: 'string', stale: 'integer', online: 'integer', seq: 'integer', alias: 'integer' });

    // A replay: every raw metrics message again, as after a redelivery or a spool replayed.
    await stopWatching();
    const before = (await rows(`"edge" = 'edge-1'`)).length;
    const written = historian.counters().written;
    expect(raw.length).toBeGreaterThanOrEqual(3);
    for (const message of raw) await tb.broker.bus.publish(message.topic, message.payload, { qos: 1 });
    await waitFor(() => historian.counters().written >= written + raw.length, 10_000, 'the replayed messages written');
    expect((await rows(`"edge" = 'edge-1'`)).length).toBe(before);
  }, 60_000);

  it('marks the metrics stale and offline on a death, without a value', async () => {
    const host = await startHost();
    const edge = await startEdge('edge-2', { 'press-1': [{ name: 'pressure', alias: 1, type: 'Float', value: 2.5 }] });
    await waitFor(() => host.counters().device_births >= 1, 10_000, 'the DBIRTH at the host');
    edge.cut();
    await waitFor(() => host.counters().deaths >= 1, 10_000, 'the NDEATH at the host');
    await historian.flush();
    const press = await waitFor(async () => {
      const found = await rows(`"edge" = 'edge-2' AND "metric" = 'pressure'`);
      return found.length >= 2 ? found : undefined;
    }, 20_000, "press-1's birth and death in sparkplug_metrics");
    expect(press.map((row) => [row.message, row.value_float ?? null, row.stale, row.online])).toEqual([
      ['DBIRTH', 2.5, 0, 1],
      ['NDEATH', null, 1, 0],
    ]);
  }, 30_000);

  it('publishes at most rawMetricsMaxSeries series; the metrics of new ones are dropped and counted, the known ones keep flowing', async () => {
    const host = await startHost({ rawMetricsMaxSeries: 3 });
    const raw: string[] = [];
    const stopWatching = await tb.broker.bus.subscribe('lw/_sparkplug/#', (_topic, payload) => void raw.push(payload.toString()));
    const edge = await startEdge('edge-1', { 'oven-1': OVEN });
    edge.data('oven-1', [{ alias: 1, type: 'Double', value: 190 }, { alias: 6, type: 'String', value: 'spelt' }]);
    await waitFor(() => host.counters().data >= 1 && raw.length >= 3, 10_000, 'births and data through the host');
    const counters = host.counters();
    // bdSeq, temperature and Motor/Load are the 3 series; count… recipe (4 in the DBIRTH, then recipe again) are dropped.
    expect(counters.raw_series).toBe(3);
    expect(counters.raw_metrics_dropped).toBe(OVEN.length - 2 + 1);
    const names = raw.flatMap((payload) => (JSON.parse(payload) as { metrics: { name: string }[] }).metrics.map((metric) => metric.name));
    expect(new Set(names)).toEqual(new Set(['bdSeq', 'temperature', 'Motor/Load']));
    expect(names.filter((name) => name === 'temperature')).toHaveLength(2);
    await stopWatching();
  }, 30_000);

  it('publishes nothing raw with sparkplug.rawMetrics false', async () => {
    const host = await startHost({ rawMetrics: false });
    const raw: string[] = [];
    const stopWatching = await tb.broker.bus.subscribe('lw/_sparkplug/#', (topic) => void raw.push(topic));
    await startEdge('edge-1', { 'oven-1': OVEN });
    await waitFor(() => host.counters().device_births >= 1, 10_000, 'the DBIRTH at the host');
    await sleep(200);
    expect(raw).toEqual([]);
    expect(host.counters().raw_messages_published).toBe(0);
    await stopWatching();
  }, 30_000);

  it('no device account may publish or subscribe under lw/_sparkplug/, not even one named _sparkplug/G1', async () => {
    const client = await mqtt.connectAsync(tb.url, { clientId: '_sparkplug/G1', username: '_sparkplug/G1', password: PASSWORD, reconnectPeriod: 0 });
    try {
      expect(await grantedQos(client, 'lw/_sparkplug/G1/edge-1/metrics')).toBe(128);
      expect(await grantedQos(client, 'lw/_sparkplug/#')).toBe(128);
      const denied = tb.broker.stats().rejects.publish_denied;
      await client.publishAsync('lw/_sparkplug/G1/edge-1/metrics', JSON.stringify({ message: 'NDATA', ts: Date.now(), seq: 1, online: true, metrics: [] }), { qos: 1 });
      await waitFor(() => tb.broker.stats().rejects.publish_denied > denied, 5000, 'the publish denied');
    } finally {
      await client.endAsync(true);
    }
  });
});
