// End to end: the simulated line (one MQTT connection and account per device) and the rules
// engine (its own MQTT connection, rules-role account) on a real broker over TCP. The overheat
// scenario must produce exactly the expected commands; the line controller acks each one, the
// hot conveyor slows, and the alert clears only once the motor is below the hysteresis threshold.
import { cpSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import mqtt from 'mqtt';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MqttBus } from '../../bus/mqtt.js';
import type { AckPayload, AlertPayload, CommandPayload, TelemetryPayload } from '../../contracts/schemas.js';
import { parseTopic } from '../../contracts/topics.js';
import { waitFor } from '../../lib/wait.js';
import type { Clock } from '../../rules/clock.js';
import { RulesEngine, type EngineEvent } from '../../rules/engine.js';
import { LineSimulator, parseScenario } from '../../simulators/index.js';
import { startTestBroker, type TestBroker } from '../harness/broker.js';

const EXAMPLES = fileURLToPath(new URL('../../rules/examples', import.meta.url));
const SPEEDUP = 25;

interface Seen {
  at: number;
  topic: string;
}

let tb: TestBroker;
let dir: string;
let sim: LineSimulator | undefined;
let engine: RulesEngine | undefined;
let engineBus: MqttBus | undefined;
let observer: mqtt.MqttClient | undefined;

beforeAll(async () => {
  tb = await startTestBroker({ wsPort: null });
  dir = mkdtempSync(join(tmpdir(), 'linewatch-rules-e2e-'));
  cpSync(EXAMPLES, join(dir, 'rules'), { recursive: true });
  await tb.addAccount('rules-engine', 'rules-password', 'rules');
  await tb.addAccount('observer', 'observer-password', 'admin');
  for (const d of ['line-ctl', 'conv-1', 'conv-2', 'conv-3', 'st-1', 'st-2', 'st-3', 'st-4', 'st-5', 'env-1', 'env-2']) await tb.addAccount(`A/${d}`, `pw-${d}-secret`, 'device');
});

afterAll(async () => {
  await sim?.stop();
  await engine?.stop();
  await engineBus?.close();
  observer?.end(true);
  await tb.stop();
  rmSync(dir, { recursive: true, force: true });
});

describe('rules engine with the simulated line over MQTT', () => {
  it('overheat: exact slow-down and restore commands, acked by the controller; the conveyor slows; the alert clears below 55 °C', async () => {
    const scenario = parseScenario({ name: 'overheat', events: [{ at: '2s', overheat: { device: 'conv-2', heat: 60, duration: '150s' } }] });
    sim = new LineSimulator({
      line: 'A',
      seed: 7,
      scenario,
      speedup: SPEEDUP,
      mqtt: { url: tb.url, mode: 'per-device', credentials: (line, device) => ({ username: `${line}/${device}`, password: `pw-${device}-secret` }) },
    });

    // Everything on the line as an observer sees it (admin account), stamped with simulated time.
    const messages: (Seen & { payload: unknown })[] = [];
    observer = await mqtt.connectAsync(tb.url, { username: 'observer', password: 'observer-password', clientId: 'observer' });
    observer.on('message', (topic, payload) => messages.push({ at: sim!.model.now(), topic, payload: JSON.parse(payload.toString()) as unknown }));
    await observer.subscribeAsync('lw/#', { qos: 1 });

    // The engine keeps simulated time: its clock is the simulator's, its timers run SPEEDUP× faster.
    const clock: Clock = {
      now: () => sim!.model.now(),
      after: (ms, fn) => {
        const t = setTimeout(fn, ms / SPEEDUP);
        return () => clearTimeout(t);
      },
    };
    const events: EngineEvent[] = [];
    engineBus = await MqttBus.connect(tb.url, { username: 'rules-engine', password: 'rules-password', clientId: 'rules-engine:e2e' });
    engine = new RulesEngine({
      bus: engineBus,
      dir: join(dir, 'rules'),
      clock,
      watch: false,
      settings: { tickMs: 100, ackTimeoutMs: 10_000, commandTtlMs: 30_000 },
      onEvent: (e) => events.push(e),
    });
    await engine.start();
    await sim.start();

    const overheatCommands = (): CommandPayload[] => {
      const byId = new Map<string, CommandPayload>();
      for (const m of messages) {
        const t = parseTopic(m.topic);
        const c = m.payload as CommandPayload;
        if (t?.kind === 'cmd' && t.device === 'line-ctl' && c.origin === 'rule:conveyor-overheat') byId.set(c.id, c);
      }
      return [...byId.values()];
    };
    const speeds = [32, 25.6, 20.48, 20, 24, 28.8, 34.56, 40];
    await waitFor(() => overheatCommands().length >= speeds.length, 40_000, 'the slow-down and restore ramps at line-ctl', 100).catch((err: unknown) => {
      const conv2 = messages.filter((m) => m.topic === 'lw/A/conv-2/telemetry').map((m) => (m.payload as TelemetryPayload).values);
      throw new Error(`${(err as Error).message}; commands: ${JSON.stringify(overheatCommands().map((c) => c.params))}; events: ${JSON.stringify(events.slice(0, 20))}; conv-2: ${JSON.stringify(conv2.filter((_, i) => i % 10 === 0))}; engine: ${JSON.stringify(engine!.counters())}`);
    });
    await waitFor(
      () => events.filter((e) => e.type === 'outcome' && e.outcome.outcome === 'done' && e.outcome.origin === 'rule:conveyor-overheat').length >= speeds.length,
      10_000,
      'done outcomes for every overheat command',
    );

    // Exactly the expected commands: the ramp down to 20 m/min and, after the clear, back up to 40.
    const cmds = overheatCommands();
    expect(cmds.map((c) => [c.action, c.params.speed])).toEqual(speeds.map((s) => ['set_speed', s]));

    // The controller acked every one of them with done.
    const acks = messages.filter((m) => parseTopic(m.topic)?.kind === 'ack').map((m) => m.payload as AckPayload);
    for (const c of cmds) expect(acks.filter((a) => a.id === c.id).map((a) => a.result)).toContain('done');

    // The alert was raised once and cleared once, after the motor fell below 55 °C (for 30 s), not just below 80.
    const alerts = messages.filter((m) => m.topic === 'lw/A/alerts' && (m.payload as AlertPayload).id === 'conveyor-overheat:A/conv-2');
    expect(alerts.map((a) => (a.payload as AlertPayload).state)).toEqual(['raised', 'cleared']);
    const raisedAt = (alerts[0]!.payload as AlertPayload).ts;
    const clearedAt = (alerts[1]!.payload as AlertPayload).ts;
    const conv2 = messages
      .filter((m) => m.topic === 'lw/A/conv-2/telemetry')
      .map((m) => m.payload as TelemetryPayload)
      .map((p) => ({ ts: p.ts, temp: p.values.motorTemp!, speed: p.values.speed! }));
    const whileRaised = conv2.filter((p) => p.ts > raisedAt && p.ts < clearedAt);
    expect(whileRaised.some((p) => p.temp < 80 && p.temp >= 55)).toBe(true); // below the trigger, above the clear: still raised
    const lastBeforeClear = conv2.filter((p) => p.ts <= clearedAt).at(-1)!;
    expect(lastBeforeClear.temp).toBeLessThan(55);

    // The simulated conveyor slowed down while the alert was raised (from ~40 m/min to the 20 m/min setpoint).
    const before = conv2.filter((p) => p.ts <= raisedAt).at(-1)!;
    expect(before.speed).toBeGreaterThan(35);
    expect(Math.min(...whileRaised.map((p) => p.speed))).toBeLessThan(22);

    // No command was blocked, retried into expiry or rejected.
    expect(events.filter((e) => e.type === 'outcome' && ['blocked', 'expired', 'rejected', 'failed'].includes(e.outcome.outcome))).toEqual([]);
  }, 90_000);

  it('a backfilled (late) event that would have matched fires nothing; a restart restores the active rule, which then clears', async () => {
    const rulesDir = join(dir, 'late-rules');
    mkdirSync(rulesDir);
    writeFileSync(
      join(rulesDir, 'r.yaml'),
      `rules:
  - id: too-hot
    match: { line: L2, device: dev-1 }
    when: values.t > 80
    clear: values.t < 60
    actions:
      - command: { target: dev-1, action: stop }
      - alert: { severity: critical, message: "dev-1 at {values.t}" }
`,
    );
    await tb.addAccount('L2/dev-1', 'dev-1-password', 'device');
    const stateFile = join(dir, 'late-state.json');
    const bus = await MqttBus.connect(tb.url, { username: 'rules-engine', password: 'rules-password', clientId: 'rules-engine:e2e-late' });
    const start = async (): Promise<RulesEngine> => {
      const e = new RulesEngine({ bus, dir: rulesDir, stateFile, watch: false });
      await e.start();
      return e;
    };
    let e = await start();
    const device = await mqtt.connectAsync(tb.url, { username: 'L2/dev-1', password: 'dev-1-password', clientId: 'L2/dev-1' });
    const alertsSeen: AlertPayload[] = [];
    observer!.on('message', (topic, payload) => {
      if (topic === 'lw/L2/alerts') alertsSeen.push(JSON.parse(payload.toString()) as AlertPayload);
    });
    const commands: CommandPayload[] = [];
    device.on('message', (_t, p) => commands.push(JSON.parse(p.toString()) as CommandPayload));
    await device.subscribeAsync('lw/L2/dev-1/cmd', { qos: 1 });
    let seq = 0;
    const send = (t: number, ts: number) => device.publishAsync('lw/L2/dev-1/telemetry', JSON.stringify({ ts, seq: seq++, values: { t } }), { qos: 1 });
    try {
      const now = Date.now();
      await send(20, now);
      // A gateway replaying its spool: readings from a minute ago, one of them hot.
      await send(99, now - 60_000);
      await send(30, now - 59_000);
      await waitFor(() => e.counters().late! >= 2, 5_000, 'the engine to see the backfilled readings');
      await send(25, Date.now());
      await waitFor(() => e.counters().received! >= 4, 5_000, 'the live reading after the backfill');
      expect(commands).toEqual([]);
      expect(alertsSeen).toEqual([]);

      // Now, live, it fires.
      await send(95, Date.now());
      await waitFor(() => commands.length === 1 && alertsSeen.length === 1, 5_000, 'the stop command and the alert');
      expect(commands[0]).toMatchObject({ action: 'stop', origin: 'rule:too-hot' });

      // Restart: the active instance (and its raised alert) come back from the state file.
      await e.stop();
      e = await start();
      expect(e.counters().restored_instances).toBe(1);
      expect(e.activeInstances().map((i) => i.key)).toEqual(['L2/dev-1']);
      await send(70, Date.now()); // below 80 but above the clear threshold: still active
      await send(50, Date.now());
      await waitFor(() => alertsSeen.length === 2, 5_000, 'the alert to clear after the restart');
      expect(alertsSeen.map((a) => [a.id, a.state])).toEqual([
        ['too-hot:L2/dev-1', 'raised'],
        ['too-hot:L2/dev-1', 'cleared'],
      ]);
      expect(commands).toHaveLength(1); // no second stop after the restart
    } finally {
      device.end(true);
      await e.stop();
      await bus.close();
    }
  });
});
