// `linewatch rules test`: runs a rules folder against the simulated line (simulators/model.ts) in
// simulated time. The model, the engine (on a ManualClock) and the linewatch broker between them
// (startBroker, as in `linewatch up`: the same validation, ordering and delivery fixes; its
// in-process bus, no client connects) advance in lockstep, so the timeline depends only on the
// rules, scenario and seed. `speedup` plays what `linewatch up --speedup N` does: the devices run
// on simulated time while the engine's clock (its cooldowns, dwells, ticks, ack timeouts) runs on
// wall time, N times slower; commands' expiry is judged on the engine's clock, as the simulator
// judges it on the wall clock.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { roleGrants } from '../config/services.js';
import { brokerConfigSchema, startBroker, type LinewatchBroker } from '../broker/index.js';
import { commandSchema, type StatePayload, type TelemetryPayload } from '../contracts/schemas.js';
import { DELIVERY, parseTopic, topicOf, topics } from '../contracts/topics.js';
import { ManualClock, settle } from '../rules/clock.js';
import { RulesEngine, type EngineEvent } from '../rules/engine.js';
import { LineModel, type SimEvent } from '../simulators/model.js';
import type { Scenario } from '../simulators/scenario.js';

export interface ScenarioRunOptions {
  dir: string;
  scenario: Scenario;
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
}

export interface TimelineEntry {
  /** Simulated (device) ms since the start: engine time × speedup. */
  at: number;
  event: EngineEvent;
  /** For a deferred command: when it may go, as `at`. */
  untilAt?: number;
}

export interface ScenarioRunResult {
  timeline: TimelineEntry[];
  durationMs: number;
  counters: Record<string, number>;
  /** The broker's counters at the end of the run (broker/stats.ts: messages, rejects by reason…). */
  brokerCounters: Record<string, number>;
  /** What each device said last: its state message and its latest readings. */
  devices: Record<string, { state?: StatePayload; values: Record<string, number> }>;
}

export const DEFAULT_START_TIME = Date.UTC(2026, 0, 1);

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
  const durationMs = o.durationMs ?? defaultDuration(o.scenario);
  const { broker, remove } = await startScenarioBroker();
  const bus = broker.bus;
  const clock = new ManualClock(startTime);
  const model = new LineModel({ seed: o.seed, scenario: o.scenario, startTime });
  const timeline: TimelineEntry[] = [];
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
  try {
    // Commands reach the simulated devices through the broker, as they would over MQTT.
    const inbox: { device: string; payload: Buffer }[] = [];
    await bus.subscribe('lw/+/+/cmd', (topic, payload) => {
      const parsed = parseTopic(topic);
      if (parsed?.device && parsed.line === line) inbox.push({ device: parsed.device, payload });
    });
    await engine.start();
    for (let t = 0; t < durationMs; t += stepMs) {
      await publish(model.advance(stepMs));
      await settle();
      await clock.advance(stepMs / speedup);
      for (let delivered = inbox.shift(); delivered; delivered = inbox.shift()) {
        const command = commandSchema.safeParse(JSON.parse(delivered.payload.toString()));
        if (command.success) await publish(model.command(delivered.device, command.data, clock.now()));
      }
      await settle();
    }
    return { timeline, durationMs, counters: engine.counters(), brokerCounters: broker.counters(), devices };
  } finally {
    await engine.stop();
    await broker.stop();
    remove();
  }
}

/**
 * The linewatch broker for a run: on loopback, port 0, no WebSocket listener (startBroker always
 * opens its TCP listener; nothing connects to it), authenticated with an empty devices file in a
 * temp dir (so nobody could; open mode would print its warning into the timeline's output).
 */
async function startScenarioBroker(): Promise<{ broker: LinewatchBroker; remove: () => void }> {
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
