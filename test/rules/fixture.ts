// A rules engine on a real broker's in-process bus, with a hand-driven clock and a temp rules folder.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { AckPayload, AlarmPayload, AlertPayload, CommandOutcomePayload, CommandPayload } from '../../contracts/schemas.js';
import { parseTopic } from '../../contracts/topics.js';
import { ManualClock, settle } from '../../rules/clock.js';
import type { RulesSettingsInput } from '../../rules/config.js';
import { RulesEngine, type EngineEvent } from '../../rules/engine.js';
import { startTestBroker, type TestBroker } from '../harness/broker.js';

export const T0 = 1_767_000_000_000;

export interface Fixture {
  broker: TestBroker;
  clock: ManualClock;
  engine: RulesEngine;
  dir: string;
  stateFile: string;
  events: EngineEvent[];
  /** Messages seen on the bus by topic kind. */
  commands: (CommandPayload & { target: string })[];
  alerts: AlertPayload[];
  outcomes: CommandOutcomePayload[];
  /** Every alarm state the engine published (lw/{line}/alarms/…), in order; emptied topics left out. */
  alarms: AlarmPayload[];
  telemetry(device: string, values: Record<string, number>, opts?: { line?: string; ts?: number; type?: string }): Promise<void>;
  state(device: string, state: string, opts?: { line?: string; ts?: number; type?: string }): Promise<void>;
  ack(device: string, id: string, result: AckPayload['result'], opts?: { line?: string; reason?: string }): Promise<void>;
  /** Acks every command to `device` with `result` from now on. */
  autoAck(device: string, result?: AckPayload['result']): void;
  advance(ms: number): Promise<void>;
  /** Stops the engine and starts a fresh one on the same folder and state file. */
  restart(): Promise<void>;
  stop(): Promise<void>;
}

export async function startFixture(rulesYaml: string, settings: RulesSettingsInput = {}): Promise<Fixture> {
  const broker = await startTestBroker({ open: true, wsPort: null });
  const dir = mkdtempSync(join(tmpdir(), 'linewatch-rules-'));
  writeFileSync(join(dir, 'rules.yaml'), rulesYaml);
  const stateFile = join(dir, 'state', 'rules-state.json');
  const clock = new ManualClock(T0);
  const bus = broker.broker.bus;
  const seqs = new Map<string, number>();
  const autoAcks = new Map<string, AckPayload['result']>();
  const f: Fixture = {
    broker,
    clock,
    engine: undefined as unknown as RulesEngine,
    dir,
    stateFile,
    events: [],
    commands: [],
    alerts: [],
    outcomes: [],
    alarms: [],
    async telemetry(device, values, opts = {}) {
      await publishDevice(opts.line ?? 'A', device, 'telemetry', { ts: opts.ts ?? clock.now(), values, ...(opts.type ? { type: opts.type } : {}) });
    },
    async state(device, state, opts = {}) {
      await publishDevice(opts.line ?? 'A', device, 'state', { ts: opts.ts ?? clock.now(), state, ...(opts.type ? { type: opts.type } : {}) });
    },
    async ack(device, id, result, opts = {}) {
      await bus.publish(`lw/${opts.line ?? 'A'}/${device}/cmd/ack`, JSON.stringify({ id, result, ts: clock.now(), ...(opts.reason ? { reason: opts.reason } : {}) }), { qos: 1 });
      await settle();
    },
    autoAck(device, result = 'done') {
      autoAcks.set(device, result);
    },
    advance: (ms) => clock.advance(ms),
    async restart() {
      await f.engine.stop();
      f.engine = makeEngine();
      await f.engine.start();
    },
    async stop() {
      await f.engine.stop();
      await unsubscribe();
      await broker.stop();
      rmSync(dir, { recursive: true, force: true });
    },
  };
  async function publishDevice(line: string, device: string, kind: string, payload: Record<string, unknown>): Promise<void> {
    const key = `${line}/${device}`;
    const seq = (seqs.get(key) ?? -1) + 1;
    seqs.set(key, seq);
    await bus.publish(`lw/${line}/${device}/${kind}`, JSON.stringify({ seq, ...payload }), { qos: 1 });
    await settle();
  }
  const unsubscribe = await bus.subscribe('lw/#', (topic, payload) => {
    const t = parseTopic(topic);
    if (!t || payload.length === 0) return; // an emptied (normal) alarm topic has no body
    const body = JSON.parse(payload.toString()) as never;
    if (t.kind === 'cmd') {
      const cmd = body as CommandPayload;
      f.commands.push({ ...cmd, target: t.device! });
      const result = autoAcks.get(t.device!);
      if (result) void bus.publish(`lw/${t.line}/${t.device}/cmd/ack`, JSON.stringify({ id: cmd.id, result, ts: clock.now() }), { qos: 1 });
    } else if (t.kind === 'alert') f.alerts.push(body);
    else if (t.kind === 'outcome') f.outcomes.push(body);
    else if (t.kind === 'alarm') f.alarms.push(body);
  });
  const makeEngine = (): RulesEngine =>
    new RulesEngine({ bus, dir, stateFile, clock, watch: false, settings: { tickMs: 100, ...settings }, onEvent: (e) => f.events.push(e) });
  f.engine = makeEngine();
  await f.engine.start();
  return f;
}

export function writeRules(f: Fixture, yaml: string, file = 'rules.yaml'): void {
  writeFileSync(join(f.dir, file), yaml);
}
