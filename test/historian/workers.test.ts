// Several `linewatch historian` processes, each owning some lines, on the embedded broker: every
// event stored exactly once, and a SIGKILLed worker's lines wait in its persistent session while
// the other worker's lines flow on. Runs the built CLI (dist/), as `npm test` builds first.
import { join } from 'node:path';
import mqtt, { type MqttClient } from 'mqtt';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { waitFor } from '../../lib/wait.js';
import { runCli, runningChildren, startCliProcess, type CliProcess } from '../harness/cli-process.js';
import { startHistorianRig, type HistorianRig } from './rig.js';
import { telemetryStream } from './telemetry-stream.js';

const DEVICES = 4;

describe('historian workers split by line', () => {
  let rig: HistorianRig;
  let gateway: MqttClient;

  beforeAll(async () => {
    rig = await startHistorianRig('lw-hist-workers-');
    await rig.broker.addAccount('rules', 'rules-password', 'rules');
    gateway = await mqtt.connectAsync(rig.broker.url, { username: 'gw', password: 'gw-password-1', clientId: 'gw:workers' });
  });
  afterAll(async () => {
    for (const child of runningChildren) child.kill('SIGKILL');
    await gateway?.endAsync();
    await rig?.stop();
  });

  const historian = (database: string, dataDir: string, ...worker: string[]): Promise<CliProcess> =>
    startCliProcess(
      ['historian', '--broker', rig.broker.url, '--username', 'hist', '--password', 'hist-password', '--influx', rig.influx.url, '--database', database, '--data-dir', dataDir, '--batch-size', '500', '--flush-interval', '50', '--health-port', '0', ...worker],
      'linewatch historian:',
    );

  const count = async (database: string, line: string): Promise<number> => {
    const [r] = await rig.influx.query(`SELECT count("v") FROM telemetry WHERE "line" = '${line}'`, database);
    return (r?.series?.[0]?.values[0]?.[1] as number | undefined) ?? 0;
  };

  /** Every event of `line` is in InfluxDB once: `n` points, each device's seq 0 … n/DEVICES - 1. */
  const expectExactlyOnce = async (database: string, line: string, n: number): Promise<void> => {
    let last = 0;
    await waitFor(async () => (last = await count(database, line)) >= n, 60_000, `${n} points of line ${line}`).catch((err: Error) => {
      throw new Error(`${err.message} (${last} arrived)`);
    });
    expect(await count(database, line)).toBe(n);
    const [perDevice] = await rig.influx.query(`SELECT count(distinct("seq")) AS n FROM telemetry WHERE "line" = '${line}' GROUP BY "device"`, database);
    expect(perDevice!.series!.map((s) => s.values[0]![1])).toEqual(Array(DEVICES).fill(n / DEVICES));
  };

  const metric = async (worker: CliProcess, name: string): Promise<string> => {
    const text = await (await fetch(`${worker.healthUrl}/metrics`)).text();
    return text.split('\n').find((line) => line.startsWith(name)) ?? '';
  };

  it('--lines: each worker subscribes to its lines only, and every event is stored once', { timeout: 120_000 }, async () => {
    const dataDir = join(rig.dir, 'lines');
    const [first, second] = await Promise.all([historian('lines', dataDir, '--lines', 'A'), historian('lines', dataDir, '--lines', 'B,_dead')]);
    expect(first.output()).toContain('lines: A, subscribed to lw/A/# lw/_shadow/A/# as hist:lines-A');
    expect(second.output()).toContain('lines: B,_dead, subscribed to lw/B/# lw/_shadow/B/# lw/_dead/# lw/_shadow/_dead/# as hist:lines-B+_dead');
    const [a, b] = [telemetryStream('A', DEVICES), telemetryStream('B', DEVICES)];
    await Promise.all([a.sendUpTo(gateway, 2000), b.sendUpTo(gateway, 2000)]);
    await expectExactlyOnce('lines', 'A', 2000);
    await expectExactlyOnce('lines', 'B', 2000);
    // A shadow rule set's command on each line (lw/_shadow/{line}/…) is its line's worker's to store.
    const rules = await mqtt.connectAsync(rig.broker.url, { username: 'rules', password: 'rules-password', clientId: 'rules:shadow-workers' });
    for (const line of ['A', 'B']) {
      const command = { id: `s-${line}`, action: 'stop', params: {}, origin: 'rule:hot', ts: Date.now(), expiresAt: Date.now() + 60_000 };
      await rules.publishAsync(`lw/_shadow/${line}/line-ctl/cmd`, JSON.stringify(command), { qos: 1 });
    }
    await rules.endAsync();
    const shadowCommands = async (): Promise<unknown[]> => (await rig.influx.query(`SELECT "id", "line" FROM shadow_commands`, 'lines'))[0]?.series?.[0]?.values.map((row) => row.slice(1)) ?? [];
    await waitFor(async () => (await shadowCommands()).length >= 2, 20_000, 'the shadow command of each line in shadow_commands');
    expect((await shadowCommands()).sort()).toEqual([['s-A', 'A'], ['s-B', 'B']]);
    expect(await metric(first, 'linewatch_received{service="historian"}')).toBe('linewatch_received{service="historian"} 2001');
    expect(await metric(second, 'linewatch_received{service="historian"}')).toBe('linewatch_received{service="historian"} 2001');
    // Narrowed subscriptions: neither worker heard the other's line at all (its 2000 events and its shadow command).
    const health = (await (await fetch(`${second.healthUrl}/healthz`)).json()) as { services: { historian: { info: Record<string, string> } } };
    expect(health.services.historian.info).toEqual({ lines: 'B,_dead', subscription: 'lw/B/# lw/_shadow/B/# lw/_dead/# lw/_shadow/_dead/#' });
    // A third worker on the same spool (the same lines, so the same default dir) is refused.
    const third = await runCli(['historian', '--broker', rig.broker.url, '--username', 'hist', '--password', 'hist-password', '--influx', rig.influx.url, '--database', 'lines', '--data-dir', dataDir, '--lines', 'A', '--client-id', 'hist:third', '--health-port', '0']);
    expect(third.code).not.toBe(0);
    expect(third.output).toMatch(/historian-spool-lines-A is in use by process \d+/);
    await Promise.all([first.kill('SIGTERM'), second.kill('SIGTERM')]);
  });

  it('--worker 1/2, 2/2: a SIGKILLed worker loses nothing and holds up no other line', { timeout: 180_000 }, async () => {
    const dataDir = join(rig.dir, 'hashed');
    // Line A hashes to worker 1 of 2, line B to worker 2 (pinned in test/contracts/line-workers.unit.test.ts).
    let first = await historian('hashed', dataDir, '--worker', '1/2');
    const second = await historian('hashed', dataDir, '--worker', '2/2');
    expect(first.output()).toContain('lines: hash 1/2, subscribed to lw/# as hist:worker-1-of-2');
    const [a, b] = [telemetryStream('A', DEVICES), telemetryStream('B', DEVICES)];
    // Mid-stream: worker 1 dies while both lines publish.
    const sending = Promise.all([a.sendUpTo(gateway, 6000), b.sendUpTo(gateway, 6000)]);
    await waitFor(async () => (await count('hashed', 'A')) >= 1000, 60_000, 'worker 1 storing line A');
    await first.kill('SIGKILL');
    await sending;
    // Line B flows on without worker 1; line A waits for it in its session.
    await expectExactlyOnce('hashed', 'B', 6000);
    const aWhileDown = await count('hashed', 'A');
    expect(aWhileDown).toBeLessThan(6000);
    // Worker 2 heard line A too (a hashed worker subscribes to every line) and left it alone.
    expect(await metric(second, 'linewatch_skipped_other_worker{service="historian"}')).toMatch(/ (\d{4,})$/);
    expect(await metric(second, 'linewatch_lines_info')).toBe('linewatch_lines_info{service="historian",lines="hash 2/2"} 1');
    // Worker 1 comes back: its spool is replayed, its session delivered.
    first = await historian('hashed', dataDir, '--worker', '1/2');
    await Promise.all([a.sendUpTo(gateway, 8000), b.sendUpTo(gateway, 8000)]);
    await expectExactlyOnce('hashed', 'A', 8000);
    await expectExactlyOnce('hashed', 'B', 8000);
    expect(await count('hashed', 'A')).toBe(8000);
    await Promise.all([first.kill('SIGTERM'), second.kill('SIGTERM')]);
  });
});
