// `linewatch rules test`: runs a rules folder against the simulated line (simulators/model.ts) in
// simulated time. The model, the engine (on a ManualClock) and the linewatch broker between them
// (startBroker, as in `linewatch up`: the same validation, ordering and delivery fixes; its
// in-process bus, no client connects) advance in lockstep, so the timeline depends only on the
// rules, scenario and seed. `speedup` plays what `linewatch up --speedup N` does: the devices run
// on simulated time while the engine's clock (its cooldowns, dwells, ticks, ack timeouts) runs on
// wall time, N times slower; commands' expiry is judged on the engine's clock, as the simulator
// judges it on the wall clock. Rule tests (workbench/rule-tests/) may play the devices from a
// script of timed messages instead of the model (`source`), give operators' alarm requests at set
// times (`alarmRequests`) and read every alarm state the engine published (`alarms`).
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Bus } from '../bus/bus.js';
import { roleGrants } from '../config/services.js';
import { brokerConfigSchema, startBroker, type LinewatchBroker } from '../broker/index.js';
import { alarmSchema, commandSchema, type AlarmAction, type AlarmPayload, type CommandPayload, type DeviceType, type StatePayload, type TelemetryPayload } from '../contracts/schemas.js';
import { DELIVERY, parseTopic, topicOf, topics } from '../contracts/topics.js';
import { ManualClock, settle } from '../rules/clock.js';
import { RulesEngine, type EngineEvent } from '../rules/engine.js';
import type { KnownDevices } from '../rules/load.js';
import { LineModel, type SimEvent } from '../simulators/model.js';
import type { Scenario } from '../simulators/scenario.js';

/**
 * What plays the devices: the simulated line (LineModel), or a script of timed device messages
 * (workbench/rule-tests/scripted-line.ts). `advance` moves its clock on and returns what the devices said.
 */
export interface DeviceSource {
  advance(ms: number): SimEvent[];
  /** Hands a device a command; returns its immediate answer. */
  command(device: string, command: CommandPayload, expiryClock: number): SimEvent[];
  now(): number;
  deviceType(id: string): DeviceType | undefined;
}

/** An operator's request about an alarm, published on lw/{line}/alarms/{id}/set at `at` (simulated ms). */
export interface AlarmRequestAt {
  at: number;
  alarm: string;
  action: AlarmAction;
  shelveForMs?: number;
}

export interface ScenarioRunOptions {
  dir: string;
  /** The simulated line plays this scenario… */
  scenario?: Scenario;
  /** …or this source plays the devices (then durationMs is required). */
  source?: (startTime: number) => DeviceSource;
  /** Operators' alarm requests (acknowledge, shelve, …) at given times. */
  alarmRequests?: AlarmRequestAt[];
  seed: number;
  line?: string;
  /** Simulated time to run; default: until 1 minute after the last scenario event ends. */
  durationMs?: number;
  /** Simulated step (ms). */
  stepMs?: number;
  /** Device time at t = 0; fixed so the printed timeline is the same on every run. */
  startTime?: number;
  /** Simulated (device) ms per engine ms, as `linewatch up --speedup`; default 1 (one clock for both). */
  speedup?: number;
  /** Started on the run's bus before the engine and stopped after it, e.g. a historian recording the run. */
  beside?: (bus: Bus) => Promise<{ stop(): Promise<void> }>;
}

export interface TimelineEntry {
  /** Simulated (device) ms since the start: engine time × speedup. */
  at: number;
  event: EngineEvent;
  /** For a deferred command: when it may go, as `at`. */
  untilAt?: number;
}

/** An alarm's state as the engine published it (lw/{line}/alarms/{id}), at simulated ms since the start. */
export interface AlarmEntry {
  at: number;
  alarm: AlarmPayload;
}

export interface ScenarioRunResult {
  timeline: TimelineEntry[];
  /** Every alarm state the engine published, in order. */
  alarms: AlarmEntry[];
  durationMs: number;
  counters: Record<string, number>;
  /** The broker's counters at the end of the run (broker/stats.ts: messages, rejects by reason…). */
  brokerCounters: Record<string, number>;
  /** What each device said last: its state message and its latest readings. */
  devices: Record<string, { state?: StatePayload; values: Record<string, number> }>;
}

export const DEFAULT_START_TIME = Date.UTC(2026, 0, 1);

/** The simulated line as rules are checked against it: its devices, and its flow order (the stations, each feeding the next). */
export function scenarioLine(scenario: Scenario, line: string): KnownDevices {
  const model = new LineModel({ seed: 1, scenario, startTime: 0 });
  return { line, ids: new Set(model.deviceIds()), flow: model.stations.map((station) => station.id) };
}

export function defaultDuration(scenario: Scenario): number {
  const ends = scenario.events.map((e) => {
    const d = e.overheat?.duration ?? e.jam?.duration ?? e.drift?.duration ?? e.silence?.duration ?? e.offline?.duration ?? e.maintenance?.duration ?? 0;
    return e.at + d;
  });
  return Math.max(60_000, ...ends) + 60_000;
}

export async function runScenario(o: ScenarioRunOptions): Promise<ScenarioRunResult> {
  const line = o.line ?? 'A';
  const startTime = o.startTime ?? DEFAULT_START_TIME;
  const stepMs = o.stepMs ?? 100;
  const speedup = o.speedup ?? 1;
  if (!(speedup > 0)) throw new RangeError(`speedup must be positive; got ${speedup}`);
  if ((o.scenario === undefined) === (o.source === undefined)) throw new TypeError('runScenario needs a scenario or a source, not both');
  const durationMs = o.durationMs ?? (o.scenario ? defaultDuration(o.scenario) : undefined);
  if (durationMs === undefined) throw new TypeError('runScenario: durationMs is required with a source');
  const { broker, remove } = await startScenarioBroker();
  const bus = broker.bus;
  const clock = new ManualClock(startTime);
  const model: DeviceSource = o.scenario ? new LineModel({ seed: o.seed, scenario: o.scenario, startTime }) : o.source!(startTime);
  const timeline: TimelineEntry[] = [];
  const alarms: AlarmEntry[] = [];
  const requests = [...(o.alarmRequests ?? [])].sort((a, b) => a.at - b.at);
  const devices: ScenarioRunResult['devices'] = {};
  const engine = new RulesEngine({ bus, dir: o.dir, clock, watch: false, settings: { tickMs: stepMs }, onEvent: (event) => {
      const sinceStart = (engineTime: number): number => (engineTime - startTime) * speedup;
      timeline.push({ at: sinceStart(clock.now()), event, ...(event.type === 'deferred' ? { untilAt: sinceStart(event.until) } : {}) });
    }, });

  const publish = async (events: SimEvent[]): Promise<void> => {
    for (const event of events) {
      if (event.type === 'message') {
        const last = (devices[event.device] ??= { values: {} });
        if (event.kind === 'state') last.state = event.payload as StatePayload;
        else if (event.kind === 'telemetry') Object.assign(last.values, (event.payload as TelemetryPayload).values);
        await bus.publish(topicOf(event.kind, line, event.device), JSON.stringify(event.payload), DELIVERY[event.kind]);
      } else if (event.type === 'offline' || event.type === 'online') {
        await bus.publish(topics.status(line, event.device), JSON.stringify({ ts: model.now(), status: event.type, type: model.deviceType(event.device) }), DELIVERY.status);
      }
    }
  };
  let companion: { stop(): Promise<void> } | undefined;
  try {
    companion = await o.beside?.(bus);
    // Commands reach the simulated devices through the broker, as they would over MQTT.
    const inbox: { device: string; payload: Buffer }[] = [];
    await bus.subscribe('lw/+/+/cmd', (topic, payload) => {
      const parsed = parseTopic(topic);
      if (parsed?.device && parsed.line === line) inbox.push({ device: parsed.device, payload });
    });
    await bus.subscribe(topics.allAlarms, (_topic, payload) => {
      // An empty payload removes a normal alarm's retained state; its normal state came before it.
      const alarm = payload.length === 0 ? undefined : alarmSchema.safeParse(JSON.parse(payload.toString()));
      if (alarm?.success) alarms.push({ at: (clock.now() - startTime) * speedup, alarm: alarm.data });
    });
    await engine.start();
    for (let t = 0; t < durationMs; t += stepMs) {
      for (let request = requests[0]; request && request.at <= t; request = requests[0]) {
        requests.shift();
        const payload = { action: request.action, operator: 'rules-test', ts: clock.now(), ...(request.shelveForMs !== undefined ? { shelveForMs: request.shelveForMs } : {}) };
        await bus.publish(topics.alarmSet(line, request.alarm), JSON.stringify(payload), DELIVERY.alarmSet);
      }
      await publish(model.advance(stepMs));
      await settle();
      await clock.advance(stepMs / speedup);
      for (let delivered = inbox.shift(); delivered; delivered = inbox.shift()) {
        const command = commandSchema.safeParse(JSON.parse(delivered.payload.toString()));
        if (command.success) await publish(model.command(delivered.device, command.data, clock.now()));
      }
      await settle();
    }
    return { timeline, alarms, durationMs, counters: engine.counters(), brokerCounters: broker.counters(), devices };
  } finally {
    await engine.stop();
    await companion?.stop();
    await broker.stop();
    remove();
  }
}

/**
 * The linewatch broker for a run: on loopback, port 0, no WebSocket listener (startBroker always
 * opens its TCP listener; nothing connects to it), authenticated with an empty devices file in a
 * temp dir (so nobody could; open mode would print its warning into the timeline's output).
 */
export async function startScenarioBroker(): Promise<{ broker: LinewatchBroker; remove: () => void }> {
  const dir = mkdtempSync(join(tmpdir(), 'linewatch-rules-test-'));
  const remove = (): void => rmSync(dir, { recursive: true, force: true });
  try {
    const broker = await startBroker(brokerConfigSchema.parse({ host: '127.0.0.1', persistence: 'memory', port: 0, wsPort: null, devicesFile: join(dir, 'devices.json') }), { roles: roleGrants() });
    return { broker, remove };
  } catch (err) {
    remove();
    throw err;
  }
}

/** One line per event: `+  65.0s  command  line-ctl set_speed {"speed":32}  rule:conveyor-overheat  (note)`. */
export function formatTimeline(entries: TimelineEntry[]): string[] {
  const seconds = (ms: number): string => `+${(ms / 1000).toFixed(1).padStart(7)}s`;
  return entries.map(({ at, event: e, untilAt }) => {
    const time = seconds(at);
    switch (e.type) {
      case 'alert':
        return `${time}  alert    ${e.alert.state.padEnd(8)} ${e.alert.severity.padEnd(8)} ${e.alert.id}  "${e.alert.message}"`;
      case 'command':
        return `${time}  command  ${e.command.id}  ${e.target} ${e.command.action} ${JSON.stringify(e.command.params)}  ${e.command.origin}${e.note ? `  (${e.note})` : ''}`;
      case 'outcome':
        return `${time}  outcome  ${e.outcome.id}  ${e.outcome.outcome}${e.outcome.attempts > 1 ? ` after ${e.outcome.attempts} attempts` : ''}${e.outcome.reason ? `: ${e.outcome.reason}` : ''}`;
      case 'deferred':
        return `${time}  deferred ${e.target} ${e.action} ${JSON.stringify(e.params)}  ${e.origin}  until ${seconds(untilAt ?? at).trim()} (${e.reason})`;
      case 'suspended':
        return `${time}  suspend  rule ${e.ruleId} until ${new Date(e.until).toISOString()}: ${e.reason}`;
    }
  });
}
