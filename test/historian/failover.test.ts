// `linewatch historian --broker A,B` fails over: a standalone historian (its own process, the
// built CLI) stores events from broker A, A is SIGKILLed, the historian reconnects to B, takes up
// its persistent session there (a new one: A and B are separate in-memory brokers, so nothing A
// had queued reaches B — only a cluster shares sessions), says so in /healthz, and stores what
// devices publish on B. Every event published and acknowledged is stored exactly once.
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import mqtt from 'mqtt';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { waitFor, withTimeout } from '../../lib/wait.js';
import { startTestBroker, type TestBroker } from '../harness/broker.js';
import { startTestInflux, type TestInflux } from '../harness/influx.js';
import { run } from '../harness/mosquitto-clients.js';
import { telemetryStream } from './telemetry-stream.js';

const CLI = resolve('dist/cli/main.js');
const DEVICES = 4;
const ON_A = 400;
const IN_ALL = 1000;

interface Started {
  child: ChildProcess;
  output: () => string;
}

/** Spawns `linewatch ARGS` and resolves once its stdout matches `ready` (with the match). */
async function startCli(args: string[], ready: RegExp, children: Set<ChildProcess>): Promise<Started & { match: RegExpExecArray }> {
  const child = spawn(process.execPath, [CLI, ...args], { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, LINEWATCH_LOG_LEVEL: 'warn' } });
  children.add(child);
  child.once('exit', () => children.delete(child));
  let output = '';
  child.stderr!.on('data', (d: Buffer) => (output += d.toString()));
  const match = await withTimeout(
    new Promise<RegExpExecArray>((ok, fail) => {
      child.stdout!.on('data', (d: Buffer) => {
        output += d.toString();
        const m = ready.exec(output);
        if (m) ok(m);
      });
      child.once('exit', (code) => fail(new Error(`linewatch ${args[0]} exited with ${code}: ${output}`)));
    }),
    30_000,
    `linewatch ${args[0]} to start`,
  );
  return { child, match, output: () => output };
}

describe('historian failover between brokers', () => {
  let influx: TestInflux;
  let brokerB: TestBroker;
  let dir: string;
  const children = new Set<ChildProcess>();

  beforeAll(async () => {
    if (!existsSync(CLI)) throw new Error(`${CLI} is missing: run \`npm run build\` before this test`);
    [influx, brokerB] = await Promise.all([startTestInflux(), startTestBroker({ open: true, wsPort: null })]);
    dir = mkdtempSync(join(tmpdir(), 'lw-failover-'));
  });
  afterAll(async () => {
    for (const child of children) child.kill('SIGKILL');
    await Promise.all([influx?.stop(), brokerB?.stop()]);
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('refuses a bad URL in the list with one line naming --broker and the URL', async () => {
    const result = await run(process.execPath, [CLI, 'historian', '--broker', `${brokerB.url},http://127.0.0.1:1883`, '--health-port', '0'], 20_000);
    expect(result.code).toBe(1);
    expect(result.stderr.trim().split('\n')).toEqual(['linewatch: --broker: "http://127.0.0.1:1883" is not an MQTT URL (http://); --broker takes mqtt://HOST:PORT (also mqtts://, ws://HOST:PORT/mqtt, wss://), several separated by commas']);
  });

  it('keeps storing after broker A is SIGKILLed: every event exactly once, /healthz names the broker', { timeout: 120_000 }, async () => {
    const brokerA = await startCli(['broker', '--open', '--port', '0', '--no-ws-port', '--health-port', '0', '--devices-file', join(dir, 'devices.json')], /linewatch broker: mqtt:\/\/127\.0\.0\.1:(\d+)/, children);
    const urlA = `mqtt://127.0.0.1:${brokerA.match[1]}`;
    const historian = await startCli(
      ['historian', '--broker', `${urlA},${brokerB.url}`, '--client-id', 'hist-failover', '--influx', influx.url, '--database', 'failover', '--data-dir', join(dir, 'historian'), '--batch-size', '100', '--flush-interval', '50', '--health-port', '0'],
      /health: \/healthz and \/metrics at (http:\/\/127\.0\.0\.1:\d+)[\s\S]*linewatch historian:/,
      children,
    );
    const healthUrl = historian.match[1]!;
    const connection = async (): Promise<{ status: string; details: { broker: string } }> => ((await (await fetch(`${healthUrl}/healthz`)).json()) as { services: { mqtt: { status: string; details: { broker: string } } } }).services.mqtt;
    const count = async (): Promise<number> => {
      const [r] = await influx.query('SELECT count("v") FROM telemetry', 'failover');
      return (r?.series?.[0]?.values[0]?.[1] as number | undefined) ?? 0;
    };
    const { sendUpTo } = telemetryStream('F', DEVICES);

    expect(await connection()).toMatchObject({ status: 'ok', details: { broker: urlA } });
    const deviceA = await mqtt.connectAsync(urlA, { clientId: 'gw-on-a', reconnectPeriod: 0 });
    await sendUpTo(deviceA, ON_A);
    await waitFor(async () => (await count()) === ON_A, 30_000, `the ${ON_A} events published on A in InfluxDB`);

    brokerA.child.kill('SIGKILL');
    await withTimeout(new Promise((r) => brokerA.child.once('exit', r)), 10_000, 'broker A to die');
    deviceA.end(true);
    await waitFor(async () => {
      const now = await connection();
      return now.status === 'ok' && now.details.broker === brokerB.url;
    }, 30_000, 'the historian to say it is connected to broker B');
    // Its persistent session is taken up on B (a new one there): subscribed again before the devices publish.
    const persistenceB = (brokerB.broker.aedes as unknown as { persistence: { subscriptionsByTopic(topic: string): Promise<Array<{ clientId: string }>> } }).persistence;
    await waitFor(async () => (await persistenceB.subscriptionsByTopic('lw/F/d0/telemetry')).some((s) => s.clientId === 'hist-failover'), 10_000, 'the historian subscribed on broker B');

    const deviceB = await mqtt.connectAsync(brokerB.url, { clientId: 'gw-on-b', reconnectPeriod: 0 });
    try {
      await sendUpTo(deviceB, IN_ALL);
    } finally {
      await deviceB.endAsync();
    }
    let last = 0;
    await waitFor(async () => (last = await count()) >= IN_ALL, 30_000, `all ${IN_ALL} events in InfluxDB`).catch((err: Error) => {
      throw new Error(`${err.message} (${last} arrived)`);
    });
    expect(await count()).toBe(IN_ALL);
    const [perDevice] = await influx.query('SELECT count(distinct("seq")) AS n FROM telemetry GROUP BY "device"', 'failover');
    expect(perDevice!.series!.map((s) => s.values[0]![1])).toEqual(Array(DEVICES).fill(IN_ALL / DEVICES));
    const metrics = await (await fetch(`${healthUrl}/metrics`)).text();
    expect(metrics).toMatch(/^linewatch_broker_failovers\{service="mqtt"\} 1$/m);
  });
});
