// Routes what happens to the rules: a device message through the device table, the rule index
// and each matching rule's instance state machine, into the rule's actions; the engine's tick
// through the instances' timers and the absence rules. The index is replaced on every (re)load.
import { logger } from '../lib/log.js';
import type { Clock } from './clock.js';
import type { DeadLetters } from './dead-letters.js';
import { deviceId, type DeviceEvent, type DeviceRecord, type DeviceTable } from './device-table.js';
import { truth, type Scope, type Truth } from './expr.js';
import type { Instance, InstanceTable, Transition } from './instance-state.js';
import { LineFlows, LineViews, type Flow } from './line-flow.js';
import type { CompiledRule } from './load.js';
import type { RuleActions } from './rule-actions.js';
import { RuleIndex } from './rule-index.js';
import { countMatching, messageScope, timerScope } from './scopes.js';
import { addToWindow, aggregateInto } from './windows.js';

const log = logger('rules');

/** The router's counters, incremented in place on the hot path (the engine's counters() reads them). */
export interface RouterCounts {
  received: number;
  duplicates: number;
  /** Messages refused for a device ts further ahead than maxClockSkewMs (per device: DeviceRecord.futureTs). */
  future_ts: number;
  late: number;
  reordered: number;
  evaluations: number;
  activations: number;
  deactivations: number;
}

export interface RuleRouterOptions {
  clock: Clock;
  devices: DeviceTable;
  instances: InstanceTable;
  actions: RuleActions;
  counts: RouterCounts;
  /** Where refused messages are reported (lw/_dead/rules). */
  deadLetters: DeadLetters;
  /** Whether this engine owns `line` (rules.lines / rules.worker): an absence rule of another worker's line does nothing here. */
  ownsLine: (line: string) => boolean;
  /** A state or telemetry message taken in (not refused, not a duplicate, not late): its line's event time goes on from its `ts` (docs/rules.md#which-time). */
  heard: (line: string, ts: number) => void;
}

export class RuleRouter {
  private index = new RuleIndex([]);
  /** What expressions read of each line (its flow order, its devices); replaced with the flows of each (re)load. */
  private views: LineViews;
  /** Engine time of the start: absence rules count silence (and their grace) from it. */
  private startedAt = 0;
  /** expectedDevices(), per compiled rule (a reload compiles new ones). */
  private readonly expected = new WeakMap<CompiledRule, readonly { device: string; id: string }[]>();

  constructor(private readonly options: RuleRouterOptions) {
    this.views = new LineViews(LineFlows.NONE, options.devices);
  }

  get rulesById(): ReadonlyMap<string, CompiledRule> {
    return this.index.byId;
  }

  started(now: number): void {
    this.startedAt = now;
  }

  /** Routes through `rules` (on lines in the order of `flows`) from now on; instances of removed or changed rules are dropped (their alerts cleared, no onClear). */
  install(rules: readonly CompiledRule[], flows: ReadonlyMap<string, Flow> = new Map()): void {
    const next = new RuleIndex(rules);
    for (const [ruleId, instances] of [...this.options.instances.entries()]) {
      const old = this.index.byId.get(ruleId);
      const replacement = next.byId.get(ruleId);
      if (old && replacement && old.hash === replacement.hash) continue;
      if (old) for (const instance of instances.values()) if (instance.phase === 'active') this.deactivate(old, instance, timerScope(old, instance, this.options.devices, this.views), false);
      this.options.instances.dropRule(ruleId);
    }
    this.index = next;
    this.views = new LineViews(new LineFlows(flows), this.options.devices);
  }

  /** One validated device message (the bus path ends here; the benchmark calls it directly). */
  ingest(event: DeviceEvent): void {
    this.options.counts.received++;
    const now = this.options.clock.now();
    const early = this.options.devices.refuseFuture(event, now);
    if (early) return this.refusedFuture(event, early, now);
    if (this.options.devices.isDuplicate(event)) {
      this.options.counts.duplicates++;
      return;
    }
    const { record, late, reordered, alive } = this.options.devices.observe(event, now);
    // A status's ts only dates a connect (a will's is old) and is never refused; a late message (a
    // backfill, a retained state of an earlier run) is the past: neither moves the line's time.
    if (!late && event.kind !== 'status') this.options.heard(event.line, event.payload.ts);
    if (late) this.options.counts.late++;
    else if (reordered) this.options.counts.reordered++;
    if (alive) for (const rule of this.index.absenceFor(record.id)) this.deviceBack(rule, record.id);
    let scope: Scope | undefined;
    this.index.forEachMatching(event.kind, record, (rule) => {
      scope ??= messageScope(event, record, this.views);
      this.evaluate(rule, record, scope, event.payload.ts, late);
    });
  }

  /** A message from a device clock too far ahead: counted and dead-lettered; it only says the device is alive. */
  private refusedFuture(event: DeviceEvent, record: DeviceRecord, now: number): void {
    this.options.counts.future_ts++;
    for (const rule of this.index.absenceFor(record.id)) this.deviceBack(rule, record.id);
    const reason = `ts is ${event.payload.ts - now} ms ahead of the engine's clock (rules.maxClockSkewMs ${this.options.devices.maxClockSkewMs}): not taken into windows or the watermark; check the device's clock (refused so far: ${record.futureTs} from ${record.id})`;
    this.options.deadLetters.refused(event, 'future_ts', reason);
  }

  private evaluate(rule: CompiledRule, record: DeviceRecord, scope: Scope, ts: number, late: boolean): void {
    this.options.counts.evaluations++;
    const byLine = rule.keyBy === 'line';
    const instance = this.options.instances.of(rule, byLine ? record.line : record.id, record.line, byLine ? undefined : record.device);
    if (rule.window) {
      const value = rule.window.of(scope);
      if (typeof value === 'number' && Number.isFinite(value)) addToWindow((instance.window ??= { ts: [], v: [] }), rule.window, ts, value);
      if (late) return; // late events update the window, but fire nothing for the past
      aggregateInto(instance.window, scope); // the message's scope has the window fields; only this rule reads them
    }
    if (late) return;
    if (rule.lineCount) scope.matching = countMatching(rule, record.line, this.options.devices, this.views);
    const holds = this.condition(rule, record, scope);
    // Only an active instance reads its clear condition; unknown (a value it reads is missing) is neither.
    const clears: Truth = instance.phase !== 'active' ? false : rule.clear ? truth(rule.clear(scope)) : holds === undefined ? undefined : !holds;
    this.transition(rule, instance, this.options.instances.step(rule, instance, holds, clears, ts, this.options.clock.now()), scope);
  }

  /** Whether the rule's condition holds; undefined when it reads a value the message lacks (missing ≠ false). */
  private condition(rule: CompiledRule, record: DeviceRecord, scope: Scope): Truth {
    if (rule.transition) {
      const { from, to } = rule.transition;
      if (!record.state || !to.has(record.state)) return false;
      if (from && (!record.enteredFrom || !from.has(record.enteredFrom))) return false;
    }
    if (rule.lineCount && (scope.matching as number) < rule.lineCount.atLeast) return false;
    return rule.when ? truth(rule.when(scope)) : true;
  }

  private transition(rule: CompiledRule, instance: Instance, transition: Transition, scope: Scope): void {
    if (transition === 'activate') this.activate(rule, instance, scope);
    else if (transition === 'deactivate') this.deactivate(rule, instance, scope);
  }

  private activate(rule: CompiledRule, instance: Instance, scope: Scope): void {
    const now = this.options.clock.now();
    this.options.instances.activated(instance, now);
    this.options.counts.activations++;
    // Once per activation, which a busy line does thousands of times a second: counted (activations), logged at debug only.
    log.debug({ rule: rule.id, key: instance.key }, 'rule fired');
    this.options.actions.fire(rule, instance, scope);
  }

  private deactivate(rule: CompiledRule, instance: Instance, scope: Scope, runOnClear = true): void {
    this.options.instances.deactivated(instance);
    this.options.counts.deactivations++;
    this.options.actions.clear(rule, instance, scope, runOnClear);
  }

  private deviceBack(rule: CompiledRule, id: string): void {
    const instance = this.options.instances.find(rule.id, id);
    if (instance?.phase === 'active') this.deactivate(rule, instance, timerScope(rule, instance, this.options.devices, this.views));
  }

  /** Rules whose oscillation suspension ended (their alert clears), timers that ran out without a message (`for`, `clearFor`) and silent devices (absence), at engine time `now`. */
  tick(now: number): void {
    // A rule whose suspension ended: its alert clears; its waiting intents are sent by the command loop's reconcile (the resume).
    this.options.actions.endedSuspensions();
    for (const instance of this.options.instances.withTimers()) {
      const rule = this.index.byId.get(instance.ruleId);
      if (!rule) {
        this.options.instances.stopTimer(instance);
        continue;
      }
      const transition = this.options.instances.due(rule, instance, now);
      if (transition) this.transition(rule, instance, transition, timerScope(rule, instance, this.options.devices, this.views));
    }
    for (const rule of this.index.absenceRules) this.checkAbsence(rule, now);
  }

  /** An absence rule fires for each expected device silent for `after` (and not before `grace` from the start). */
  private checkAbsence(rule: CompiledRule, now: number): void {
    const line = rule.lineMatcher.exact;
    if (!rule.absent || line === undefined) return; // rules/schema.ts: an absent rule names its line
    if (!this.options.ownsLine(line)) return; // another worker's line: that worker watches it
    const { afterMs, graceMs } = rule.absent;
    for (const { device, id } of this.expectedDevices(rule, line)) {
      const instance = this.options.instances.of(rule, id, line, device);
      if (instance.phase === 'active') continue;
      const aliveAt = this.options.devices.byId(id)?.aliveAt;
      const deadline = Math.max(this.startedAt + graceMs, (aliveAt ?? this.startedAt) + afterMs);
      if (now < deadline) continue;
      const scope = { ...timerScope(rule, instance, this.options.devices, this.views), silentFor: Math.round((now - (aliveAt ?? this.startedAt)) / 1000), neverSeen: aliveAt === undefined };
      this.activate(rule, instance, scope);
    }
  }

  /** An absence rule's expected devices with their `line/device` ids, made once per rule (the tick reads them every tickMs). */
  private expectedDevices(rule: CompiledRule, line: string): readonly { device: string; id: string }[] {
    let expected = this.expected.get(rule);
    if (!expected) {
      expected = (rule.absent?.devices ?? []).map((device) => ({ device, id: deviceId(line, device) }));
      this.expected.set(rule, expected);
    }
    return expected;
  }
}
