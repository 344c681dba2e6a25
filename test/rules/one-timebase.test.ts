// One timebase (issue 14, item 6; docs/rules.md#which-time): a line whose devices' clock is far
// from the host's — here 2030, running ×20 — gets its alert, alarm transitions, commands and their
// outcomes stored in InfluxDB among the device events they answer, not at the host's time. Real
// parts: the linewatch broker over TCP, the rules engine and the historian each on their own MQTT
// connection and account, a real influxd, and the devices as MQTT.js clients with device accounts.
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import mqtt from 'mqtt';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MqttBus } from '../../bus/mqtt.js';
import type { CommandPayload } from '../../contracts/schemas.js';
import { historianConfigSchema } from '../../historian/config.js';
import { Historian } from '../../historian/index.js';
import { waitFor } from '../../lib/wait.js';
import { RulesEngine } from '../../rules/engine.js';
import { startTestBroker, type TestBroker } from '../harness/broker.js';
import { startTestInflux, type TestInflux } from '../harness/influx.js';

/** The devices' clock: 2030-01-01 at the start, running SPEEDUP× the host's. */
const DEVICE_START = Date.UTC(2030, 0, 1);
const SPEEDUP = 20;
const DATABASE = 'timebase';
const CLI = fileURLToPath(new URL('../../bin/linewatch.js', import.meta.url));

const RULES = `rules:
  - id: overheat
    match: { line: A, device: conv-2, kind: telemetry }
    when: values.motorTemp > 80
    clear: values.motorTemp < 60
    actions:
      - command: { target: line-ctl, action: set_speed, params: { speed: 20 } }
      - command: { target: conv-9, action: stop, ttl: 400ms }
      - alert: { severity: warning, message: "conv-2 motor at {values.motorTemp} °C" }
`;

let broker: TestBroker;
let influx: TestInflux;
let dir: string;
const cleanups: (() => Promise<unknown>)[] = [];

beforeAll(async () => {
  [broker, influx] = await Promise.all([startTestBroker({ wsPort: null }), startTestInflux()]);
  dir = mkdtempSync(join(tmpdir(), 'linewatch-timebase-'));
  writeFileSync(join(dir, 'rules.yaml'), RULES);
  await broker.addAccount('rules-engine', 'rules-password', 'rules');
  await broker.addAccount('hist', 'hist-password', 'historian');
  for (const device of ['conv-2', 'line-ctl']) await broker.addAccount(`A/${device}`, `pw-${device}-secret`, 'device');
});

afterAll(async () => {
  for (const cleanup of cleanups.reverse()) await cleanup();
  await Promise.all([broker?.stop(), influx?.stop()]);
  if (dir) rmSync(dir, { recursive: true, force: true });
});

async function select(q: string): Promise<Record<string, unknown>[]> {
  const [result] = await influx.query(q, DATABASE);
  if (result?.error) throw new Error(result.error);
  return (result?.series ?? []).flatMap((s) => s.values.map((row) => ({ ...s.tags, ...Object.fromEntries(s.columns.map((c, i) => [c, row[i]])) })));
}

describe('one timebase', () => {
  it('stores the alert, alarm, commands and outcomes of a line in 2030 (×20) among its device events, not at the host time', async () => {
    const hostStart = Date.now();
    const deviceNow = (): number => DEVICE_START + (Date.now() - hostStart) * SPEEDUP;

    const historianBus = await MqttBus.connect(broker.url, { username: 'hist', password: 'hist-password' });
    const historian = new Historian({ bus: historianBus, config: historianConfigSchema.parse({ influxUrl: influx.url, database: DATABASE, spoolDir: join(dir, 'spool'), flushIntervalMs: 50 }), dataDir: dir });
    await historian.start();
    cleanups.push(() => historianBus.close(), () => historian.stop());

    const engineBus = await MqttBus.connect(broker.url, { username: 'rules-engine', password: 'rules-password' });
    // maxClockSkewMs off, as `linewatch up --speedup` does: these devices' clock is years ahead by design.
    const engine = new RulesEngine({ bus: engineBus, dir, watch: false, settings: { maxClockSkewMs: Number.MAX_SAFE_INTEGER, ackTimeoutMs: 100, retries: 10, tickMs: 20 } });
    await engine.start();
    cleanups.push(() => engineBus.close(), () => engine.stop());

    // The line controller acks each command with its own clock; conv-9 never answers (its command expires).
    const controller = await mqtt.connectAsync(broker.url, { username: 'A/line-ctl', password: 'pw-line-ctl-secret', clientId: 'A/line-ctl' });
    cleanups.push(() => controller.endAsync(true));
    let controllerSeq = 0;
    controller.on('message', (_topic, payload) => {
      const command = JSON.parse(payload.toString()) as CommandPayload;
      void controller.publishAsync('lw/A/line-ctl/cmd/ack', JSON.stringify({ id: command.id, result: 'done', ts: deviceNow() }), { qos: 1 });
      void controller.publishAsync('lw/A/line-ctl/telemetry', JSON.stringify({ ts: deviceNow(), seq: ++controllerSeq, values: { speedSetpoint: Number(command.params.speed) } }), { qos: 1 });
    });
    await controller.subscribeAsync('lw/A/line-ctl/cmd', { qos: 1 });

    // conv-2 heats up past 80 °C, then cools below 60 °C, one reading every 50 ms (1 s of its time).
    const conveyor = await mqtt.connectAsync(broker.url, { username: 'A/conv-2', password: 'pw-conv-2-secret', clientId: 'A/conv-2' });
    cleanups.push(() => conveyor.endAsync(true));
    const temps = [60, 70, 78, 85, 90, 92, 90, 85, 75, 65, 55, 50];
    const sent: number[] = [];
    for (let i = 0; i < temps.length; i++) {
      const ts = deviceNow();
      sent.push(ts);
      await conveyor.publishAsync('lw/A/conv-2/telemetry', JSON.stringify({ ts, seq: i + 1, values: { motorTemp: temps[i] } }), { qos: 1 });
      if (i === 5) await waitFor(() => engine.counters().outcome_expired === 1, 10_000, "conv-9's command expired (its ttl, 400 ms of engine time)");
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    await waitFor(() => engine.counters().alerts_cleared === 1 && engine.counters().outcome_done === 1, 10_000, 'the alert cleared and the command done');
    await waitFor(async () => (await select('SELECT count(active) FROM alarms')).some((row) => row.count === 2), 15_000, 'both alarm transitions stored');
    // Two issued, the controller's ack, two outcomes.
    await waitFor(async () => (await select('SELECT count(id) FROM commands')).some((row) => row.count === 5), 15_000, 'the commands, the ack and the outcomes stored');

    // The devices' time window: from the first reading to the last one (+ the time it took to get here, in device time).
    const from = sent[0]!;
    const to = deviceNow();
    const at = (row: Record<string, unknown>): number => Number(row.time); // the harness asks for epoch ms
    const inWindow = (rows: Record<string, unknown>[]): [string, string][] => rows.map((row) => [new Date(at(row)).toISOString(), at(row) >= from && at(row) <= to ? 'in' : 'out']);
    const alerts = await select('SELECT state, id FROM alerts');
    expect(alerts.map((row) => row.state)).toEqual(['raised', 'cleared']);
    const alarms = await select('SELECT "state", raisedAt FROM alarms');
    const commands = await select('SELECT id, event, outcome, attempts, expiresAt, issuedAt FROM commands');
    expect(commands.map((row) => [row.event, row.outcome ?? null]).sort()).toEqual([['ack', null], ['issued', null], ['issued', null], ['outcome', 'done'], ['outcome', 'expired']].sort());
    for (const [name, rows] of [['alerts', alerts], ['alarms', alarms], ['commands', commands]] as const) {
      expect(inWindow(rows), `${name} stored between ${new Date(from).toISOString()} and ${new Date(to).toISOString()}`).toEqual(rows.map((row) => [new Date(at(row)).toISOString(), 'in']));
    }
    // The alert answers the first reading above 80 °C: it is stored at or after it, before the next one.
    const hot = sent[temps.findIndex((t) => t > 80)]!;
    const raisedAt = at(alerts[0]!);
    expect(raisedAt).toBeGreaterThanOrEqual(hot);
    expect(raisedAt).toBeLessThan(sent[temps.findIndex((t) => t > 80) + 1]!);
    expect(alarms.every((row) => Number(row.raisedAt) === raisedAt)).toBe(true);
    // The commands' expiresAt is in the same time (ts + ttl); the expiry itself ran on engine time:
    // 400 ms real, so before the 11 attempts its retries allowed.
    for (const row of commands.filter((r) => r.event === 'issued')) expect(Number(row.expiresAt)).toBeGreaterThan(at(row));
    const expired = commands.find((row) => row.outcome === 'expired')!;
    expect(Number(expired.attempts)).toBeLessThan(11);
    expect(Number(expired.issuedAt)).toBeGreaterThanOrEqual(hot);
  
    // What `rules diff` and `rules backtest` count "now" and "-1m" from: the stored devices' time,
    // ahead of the host's here (docs/rules.md#which-time), so the last minute holds this run.
    const cli = async (...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> => {
      try {
        const { stdout, stderr } = await promisify(execFile)(process.execPath, [CLI, 'rules', ...args], { encoding: 'utf8', timeout: 60_000, env: { ...process.env, LINEWATCH_LOG_LEVEL: 'error' } });
        return { code: 0, stdout, stderr };
      } catch (err) {
        const failed = err as { code?: number; stdout?: string; stderr?: string };
        return { code: failed.code ?? -1, stdout: failed.stdout ?? '', stderr: failed.stderr ?? '' };
      }
    };
    const diff = await cli('diff', '--influx', influx.url, '--database', DATABASE, '--from', '-1m', '--json');
    expect(diff.stderr).toBe('');
    const diffResult = JSON.parse(diff.stdout) as { from: number; to: number; live: { commands: number; alarms: number } };
    expect(diffResult.to).toBeGreaterThan(sent[sent.length - 1]!);
    expect(diffResult.live).toEqual({ commands: 2, alarms: 2 });
    // Replayed over the same events, the rules make the same alert changes and commands, at the same times (within 2 s).
    const backtest = await cli('backtest', dir, '--influx', influx.url, '--database', DATABASE, '--from', '-1m', '--json');
    expect(backtest.stderr).toBe('');
    const backtestResult = JSON.parse(backtest.stdout) as { differences: number; same: number; missing: unknown[]; added: unknown[]; changed: unknown[]; stored: number };
    expect(backtestResult, JSON.stringify(backtestResult)).toMatchObject({ differences: 0, missing: [], added: [], changed: [] });
    expect(backtestResult.same).toBeGreaterThanOrEqual(4);
    expect(backtest.code).toBe(0);
  });
});
