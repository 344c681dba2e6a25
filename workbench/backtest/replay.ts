// One rule set replayed over stored device events (docs/rules.md, "Backtest"): the real rules
// engine on a ManualClock, advanced to each event's device time before the event is handed to it
// (through ingest(), where the bus path ends once a message is decoded: history.ts checks each
// stored event against the contract as decode does, once for all replays), on a
// private broker of its own (workbench/scenario-run.ts: loopback, port 0, an empty devices file
// so nobody can connect). That broker is the engine's only bus: nothing here connects to another
// broker, so no command of a backtest can reach a device.
//
// Nothing answers the engine's commands in a backtest, so the replay does, as a device that
// takes every command at once: each command gets `accepted` and `done` acks at the moment it is
// sent. Without them the engine would send each one again after ackTimeoutMs and report it
// expired — noise a backtest would invent. The replayed devices report what they did under the
// live engine's commands, not this one's: a setpoint they report that differs from what this
// engine commanded is expected here, so it is not commanded again (recommandLimit 0).
import type { LinewatchBroker } from '../../broker/index.js';
import { topics } from '../../contracts/topics.js';
import { ManualClock, settle } from '../../rules/clock.js';
import type { RulesSettingsInput } from '../../rules/config.js';
import { RulesEngine, type EngineEvent } from '../../rules/engine.js';
import { startScenarioBroker } from '../scenario-run.js';
import type { TimelineItem } from '../timeline-diff.js';
import type { HistoryEvent } from './history.js';

/** What a replay changes in the engine's settings (the rest are rules/config.ts's defaults or the caller's). */
const REPLAY_SETTINGS: RulesSettingsInput = { recommandLimit: 0 };

export interface ReplayOptions {
  dir: string;
  /** Engine time at the start: the first event's time or earlier. */
  startTime: number;
  /** Engine settings; the replay's own (REPLAY_SETTINGS) win. */
  settings?: RulesSettingsInput;
}

export class Replay {
  /** The commands the engine sent and the alerts it raised and cleared, in order. */
  readonly items: TimelineItem[] = [];
  private readonly unanswered: { line: string; target: string; id: string }[] = [];
  private answering = false;
  private stopped = false;

  private readonly engine: RulesEngine;
  private readonly clock: ManualClock;

  private constructor(
    options: ReplayOptions,
    private readonly broker: LinewatchBroker,
    private readonly remove: () => void,
  ) {
    this.clock = new ManualClock(options.startTime);
    this.engine = new RulesEngine({ bus: broker.bus, dir: options.dir, clock: this.clock, watch: false, settings: { ...options.settings, ...REPLAY_SETTINGS }, onEvent: (event) => this.record(event) });
  }

  /** A private broker and an engine on it, started at `startTime` with the rules of `dir` (throws listing their errors). */
  static async start(options: ReplayOptions): Promise<Replay> {
    const { broker, remove } = await startScenarioBroker();
    try {
      const replay = new Replay(options, broker, remove);
      await replay.engine.start();
      return replay;
    } catch (err) {
      await broker.stop();
      remove();
      throw err;
    }
  }

  /**
   * Moves the clock to the event's device time (the timers due on the way run, in order) and hands
   * the event to the engine. Synchronous: the engine's work on an event or a timer is, and its
   * commands are answered right after it (answer()); what its broker publishes goes out when the
   * caller lets promises settle (backtest.ts: after each page).
   */
  feed(event: HistoryEvent): void {
    this.runUntil(event.payload.ts);
    this.engine.ingest(event);
    this.answer();
  }

  /** Runs the clock on to `time` (timers, ticks), then stops the engine and its broker. */
  async finish(time: number): Promise<void> {
    try {
      this.runUntil(time);
      await settle();
    } finally {
      await this.stop();
    }
  }

  /** The timers due until `time`, each followed by the answers to the commands it sent; then the clock at `time`. */
  private runUntil(time: number): void {
    while (this.clock.runNext(time)) this.answer();
    this.clock.set(time);
  }

  /** Stops the engine and its broker (once; finish() does it too). */
  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    try {
      await this.engine.stop();
    } finally {
      await this.broker.stop();
      this.remove();
    }
  }

  counters(): Record<string, number> {
    return this.engine.counters();
  }

  private record(event: EngineEvent): void {
    if (event.type === 'command') {
      const { command } = event;
      this.items.push({ kind: 'command', at: command.ts, line: event.line, target: event.target, action: command.action, params: command.params, origin: command.origin, id: command.id });
      // Answered once the engine has finished sending it: after the event or the timer that sent it (runUntil, feed).
      this.unanswered.push({ line: event.line, target: event.target, id: command.id });
    } else if (event.type === 'alert') {
      const { alert } = event;
      this.items.push({ kind: 'alarm', at: alert.ts, line: event.line, id: alert.id, rule: alert.rule, state: alert.state, ...(alert.device ? { device: alert.device } : {}) });
    }
  }

  /** The device side of the commands sent so far: each is taken and done now. */
  private answer(): void {
    if (this.answering) return;
    this.answering = true;
    try {
      for (let next = this.unanswered.shift(); next; next = this.unanswered.shift()) {
        const topic = topics.ack(next.line, next.target);
        const ts = this.clock.now();
        this.engine.handle(topic, Buffer.from(JSON.stringify({ id: next.id, result: 'accepted', ts })));
        this.engine.handle(topic, Buffer.from(JSON.stringify({ id: next.id, result: 'done', ts })));
      }
    } finally {
      this.answering = false;
    }
  }
}
