// The end-to-end failover: two `linewatch broker --cluster` processes on one real
// redis-server, 20 devices publishing QoS 1 at 1k/s in total to node A, a standalone `linewatch
// historian --broker A,B` writing to a real influxd. Node A is SIGKILLed mid-stream: the devices
// (mqtt.js with `servers: [A, B]`) reconnect to B and send again what A never acknowledged; the
// historian moves to B too, where its persistent session (in Redis) has kept what was published
// meanwhile and what A had sent it unacknowledged; InfluxDB ends with every event exactly once.
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import type { Socket } from 'node:net';
import mqtt, { type MqttClient } from 'mqtt';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { waitFor, withTimeout } from '../../lib/wait.js';
import { startBrokerProcess, type BrokerProcess } from '../harness/broker-process.js';
import { startTestInflux, type TestInflux } from '../harness/influx.js';
import { startTestRedis, type TestRedis } from '../harness/redis.js';

const CLI = resolve('dist/cli/main.js');
const DEVICES = 20;
/** Each device publishes one event per tick: 20 devices every 20 ms is 1k events/s in total. */
const TICK_MS = 20;
const TICKS = 500;
/** Node A is killed after this many ticks (4 s of the 10 s at the nominal rate). */
const KILL_AFTER_TICKS = 200;
const LINE = 'FO';
const DATABASE = 'failover';

let dir: string;
let redis: TestRedis;
let influx: TestInflux;
const nodes: BrokerProcess[] = [];
const devices: MqttClient[] = [];
let historian: ChildProcess | undefined;
let historianOutput = '';

beforeAll(async () => {
  if (!existsSync(CLI)) throw new Error(`${CLI} is missing: run \`npm run build\` before this test`);
  dir = mkdtempSync(join(tmpdir(), 'lw-failover-'));
  [redis, influx] = await Promise.all([startTestRedis(), startTestInflux()]);
}, 60_000);

afterAll(async () => {
  for (const device of devices) device.end(true);
  historian?.kill('SIGKILL');
  for (const node of nodes) await node.kill('SIGKILL').catch(() => undefined);
  await Promise.all([redis?.stop(), influx?.stop()]);
  if (dir) rmSync(dir, { recursive: true, force: true });
});

let historianHealth = '';

/** Starts `linewatch historian --broker <urls>` and resolves once it runs, with the URL of its /healthz. */
async function startHistorian(brokerUrls: string[]): Promise<ChildProcess> {
  const args = ['historian', '--broker', brokerUrls.join(','), '--client-id', 'hist:failover', '--health-port', '0', '--influx', influx.url, '--database', DATABASE, '--data-dir', join(dir, 'historian'), '--batch-size', '500', '--flush-interval', '50'];
  const child = spawn(process.execPath, [CLI, ...args], { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, LINEWATCH_LOG_LEVEL: 'warn' } });
  child.stderr!.on('data', (data: Buffer) => (historianOutput += data.toString()));
  historianHealth = await withTimeout(
    new Promise<string>((started, failed) => {
      child.stdout!.on('data', (data: Buffer) => {
        historianOutput += data.toString();
        const match = /health: \/healthz and \/metrics at (http:\/\/127\.0\.0\.1:\d+)[\s\S]*linewatch historian:/.exec(historianOutput);
        if (match) started(match[1]!);
      });
      child.once('exit', (code) => failed(new Error(`linewatch historian exited with ${code}: ${historianOutput}`)));
    }),
    30_000,
    'linewatch historian to start',
  );
  return child;
}

/** Whether the historian says (/healthz) it is connected to the broker on `port`. */
async function historianConnectedTo(port: number): Promise<boolean> {
  const health = (await (await fetch(`${historianHealth}/healthz`, { signal: AbortSignal.timeout(5_000) })).json()) as { services: { mqtt: { status: string; details: { broker: string } } } };
  return health.services.mqtt.status === 'ok' && health.services.mqtt.details.broker === `mqtt://127.0.0.1:${port}`;
}

/** A device that starts on A and, when its connection drops, reconnects to B (mqtt.js `servers` round robin). */
async function device(index: number, nodeA: BrokerProcess, nodeB: BrokerProcess): Promise<MqttClient> {
  const client = mqtt.connect({
    servers: [{ host: '127.0.0.1', port: nodeA.port }, { host: '127.0.0.1', port: nodeB.port }],
    protocol: 'mqtt',
    clientId: `${LINE}-d${index}`,
    reconnectPeriod: 200,
    connectTimeout: 5_000,
  });
  devices.push(client);
  await withTimeout(new Promise<void>((connected) => client.once('connect', () => connected())), 15_000, `device d${index} to connect to A`);
  return client;
}

/** The port of the node a device is connected to now. */
const connectedPort = (client: MqttClient): number | undefined => (client.connected ? (client.stream as Socket).remotePort : undefined);

async function pointsPerDevice(): Promise<Map<string, { points: number; seqs: number }>> {
  const [counts] = await influx.query('SELECT count("v") AS points, count(distinct("seq")) AS seqs FROM telemetry GROUP BY "device"', DATABASE);
  const perDevice = new Map<string, { points: number; seqs: number }>();
  for (const series of counts?.series ?? []) perDevice.set(series.tags!.device!, { points: series.values[0]![1] as number, seqs: series.values[0]![2] as number });
  return perDevice;
}

describe('a cluster node SIGKILLed under load', () => {
  it('loses no event: the devices and the historian move to the other node and InfluxDB has every event exactly once', async () => {
    const nodeA = await startBrokerProcess(['--open', '--cluster', redis.url], dir);
    nodes.push(nodeA);
    const nodeB = await startBrokerProcess(['--open', '--cluster', redis.url], dir);
    nodes.push(nodeB);
    historian = await startHistorian([nodeA.url, nodeB.url]);
    const clients = await Promise.all(Array.from({ length: DEVICES }, (_, index) => device(index, nodeA, nodeB)));
    expect(clients.map(connectedPort)).toEqual(Array(DEVICES).fill(nodeA.port));
    // The historian starts on A, the first of its list, and subscribes there.
    await waitFor(() => historianConnectedTo(nodeA.port), 15_000, 'the historian on node A');

    // Ticks, not wall-clock: each tick every device publishes its next seq (ts = t0 + seq, one point each in InfluxDB).
    const t0 = Date.now() - 60_000;
    const acknowledged: Promise<unknown>[] = [];
    let ticks = 0;
    let killed: Promise<number | null> | undefined;
    await withTimeout(
      new Promise<void>((done) => {
        const timer = setInterval(() => {
          clients.forEach((client, index) => {
            acknowledged.push(client.publishAsync(`lw/${LINE}/d${index}/telemetry`, JSON.stringify({ ts: t0 + ticks, seq: ticks, values: { v: ticks } }), { qos: 1 }));
          });
          ticks++;
          if (ticks === KILL_AFTER_TICKS) killed = nodeA.kill('SIGKILL');
          if (ticks === TICKS) {
            clearInterval(timer);
            done();
          }
        }, TICK_MS);
      }),
      120_000,
      `${TICKS} ticks of publishes`,
    );
    expect(await killed).toBeNull();
    // Every publish is acknowledged in the end — by A before it died, or by B after the device resent it.
    await withTimeout(Promise.all(acknowledged), 60_000, `the PUBACKs of all ${DEVICES * TICKS} publishes`);
    expect(clients.map(connectedPort)).toEqual(Array(DEVICES).fill(nodeB.port));

    const expected = new Map(Array.from({ length: DEVICES }, (_, index) => [`d${index}`, { points: TICKS, seqs: TICKS }]));
    let stored = new Map<string, { points: number; seqs: number }>();
    const total = (): number => [...stored.values()].reduce((sum, counts) => sum + counts.points, 0);
    await waitFor(async () => {
      stored = await pointsPerDevice();
      return total() >= DEVICES * TICKS;
    }, 90_000, `all ${DEVICES * TICKS} events in InfluxDB`).catch((err: Error) => {
      throw new Error(`${err.message} (${total()} arrived; historian said: ${historianOutput.slice(-2000)})`);
    });
    expect(stored).toEqual(expected);
    expect(await historianConnectedTo(nodeB.port)).toBe(true);
  }, 300_000);
});
