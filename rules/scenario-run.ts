// `linewatch rules test`: runs a rules folder against the simulated line (simulators/model.ts) in
// simulated time. The model, the engine (on a ManualClock) and a real in-process Aedes broker
// between them advance in lockstep, so the timeline depends only on the rules, scenario and seed.
import { Aedes } from 'aedes';
import { InProcessBus } from '../broker/in-process-bus.js';
import { commandSchema } from '../contracts/schemas.js';
import { DELIVERY, parseTopic, topicOf, topics } from '../contracts/topics.js';
import { LineModel, type SimEvent } from '../simulators/model.js';
import type { Scenario } from '../simulators/scenario.js';
import { ManualClock, settle } from './clock.js';
import { RulesEngine, type EngineEvent } from './engine.js';

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
}

export interface TimelineEntry {
  /** Simulated ms since the start. */
  at: number;
  event: EngineEvent;
}

export interface ScenarioRunResult {
  timeline: TimelineEntry[];
  durationMs: number;
  counters: Record<string, number>;
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
  const durationMs = o.durationMs ?? defaultDuration(o.scenario);
  const aedes = await Aedes.createBroker();
  const bus = new InProcessBus(aedes);
  const clock = new ManualClock(startTime);
  const model = new LineModel({ seed: o.seed, scenario: o.scenario, startTime });
  const timeline: TimelineEntry[] = [];
  const engine = new RulesEngine({ bus, dir: o.dir, clock, watch: false, settings: { tickMs: stepMs }, onEvent: (event) => timeline.push({ at: clock.now() - startTime, event }) });

  const publish = async (events: SimEvent[]): Promise<void> => {
    for (const e of events) {
      if (e.type === 'message') {
        await bus.publish(topicOf(e.kind, line, e.device), JSON.stringify(e.payload), DELIVERY[e.kind]);
      } else if (e.type === 'offline' || e.type === 'online') {
        await bus.publish(topics.status(line, e.device), JSON.stringify({ ts: model.now(), status: e.type, type: model.deviceType(e.device) }), DELIVERY.status);
      }
    }
  };
  // Commands reach the simulated devices through the broker, as they would over MQTT.
  const inbox: { device: string; payload: Buffer }[] = [];
  await bus.subscribe('lw/+/+/cmd', (topic, payload) => {
    const t = parseTopic(topic);
    if (t?.device && t.line === line) inbox.push({ device: t.device, payload });
  });

  try {
    await engine.start();
    for (let t = 0; t < durationMs; t += stepMs) {
      await publish(model.advance(stepMs));
      await settle();
      await clock.advance(stepMs);
      while (inbox.length > 0) {
        const { device, payload } = inbox.shift()!;
        const cmd = commandSchema.safeParse(JSON.parse(payload.toString()));
        if (cmd.success) await publish(model.command(device, cmd.data));
      }
      await settle();
    }
    return { timeline, durationMs, counters: engine.counters() };
  } finally {
    await engine.stop();
    await bus.close();
    await new Promise<void>((resolve) => aedes.close(() => resolve()));
  }
}

/** One line per event: `+  65.0s  command  line-ctl set_speed {"speed":32}  rule:conveyor-overheat  (note)`. */
export function formatTimeline(entries: TimelineEntry[]): string[] {
  return entries.map(({ at, event: e }) => {
    const time = `+${(at / 1000).toFixed(1).padStart(7)}s`;
    switch (e.type) {
      case 'alert':
        return `${time}  alert    ${e.alert.state.padEnd(8)} ${e.alert.severity.padEnd(8)} ${e.alert.id}  "${e.alert.message}"`;
      case 'command':
        return `${time}  command  ${e.command.id}  ${e.target} ${e.command.action} ${JSON.stringify(e.command.params)}  ${e.command.origin}${e.note ? `  (${e.note})` : ''}`;
      case 'outcome':
        return `${time}  outcome  ${e.outcome.id}  ${e.outcome.outcome}${e.outcome.attempts > 1 ? ` after ${e.outcome.attempts} attempts` : ''}${e.outcome.reason ? `: ${e.outcome.reason}` : ''}`;
      case 'suspended':
        return `${time}  suspend  rule ${e.ruleId} until ${new Date(e.until).toISOString()}: ${e.reason}`;
    }
  });
}
