// Commands as a closed loop, guarded per target by actuator-safety limits.
//
// issue(): safety checks (suspended rule, priority hold, cooldown, minimum dwell, budget, max
// step, oscillation) → publish lw/{line}/{target}/cmd (QoS 1) → wait for cmd/ack with the same
// id → re-send the same id on ack timeout, a bounded number of times → publish the outcome on
// lw/{line}/{target}/cmd/outcome. A command a limit refuses is never sent; its outcome is `blocked`.
// A speed change bigger than maxStep is split: the first step goes now, the rest follow as a ramp
// (one step per max(minDwell, cooldown, 1 s)) until the value is reached or another command for
// the same setpoint supersedes it.
import type { Bus } from '../bus/bus.js';
import type { AckPayload, CommandAction, CommandOutcome, CommandOutcomePayload, CommandPayload } from '../contracts/schemas.js';
import { DELIVERY, topics } from '../contracts/topics.js';
import { logger } from '../lib/log.js';
import type { Clock } from './clock.js';
import { globMatcher, type ParamValue } from './load.js';
import type { SafetyDefinition, TargetSafety } from './schema.js';

const log = logger('rules');

export interface CommandRequest {
  ruleId: string;
  priority: number;
  /** The rule instance issuing it (rule id + key); it holds the setpoint until released. */
  holder: string;
  line: string;
  target: string;
  action: CommandAction;
  params: Record<string, ParamValue>;
  ttlMs?: number;
  /** The target's own reading of the setpoint (e.g. its reported speed): the base for maxStep before anything was commanded. */
  current?: number;
}

export type IssueResult = { sent: true; id: string; params: Record<string, ParamValue>; note?: string } | { sent: false; id: string; reason: string };

export interface CommandEvent {
  type: 'command';
  line: string;
  target: string;
  command: CommandPayload;
  note?: string;
}

export interface OutcomeEvent {
  type: 'outcome';
  line: string;
  outcome: CommandOutcomePayload;
}

export interface CommandCenterOptions {
  bus: Bus;
  clock: Clock;
  /** Prefix of command ids; unique per engine start. */
  idPrefix: string;
  ackTimeoutMs: number;
  retries: number;
  ttlMs: number;
  safety: SafetyDefinition;
  onEvent: (e: CommandEvent | OutcomeEvent) => void;
  /** Called when oscillation detection suspends a rule. */
  onSuspend: (s: { ruleId: string; line: string; target: string; key: string; until: number; reason: string }) => void;
  count: (counter: string) => void;
}

interface Setpoint {
  value: ParamValue;
  previous?: ParamValue;
  at: number;
  ruleId: string;
  priority: number;
  commandId: string;
}

interface Hold {
  holder: string;
  ruleId: string;
  priority: number;
}

interface TargetState {
  lastCommandAt?: number;
  lastPriority?: number;
  /** Send times within the last minute, for the budget. */
  sent: number[];
  setpoints: Record<string, Setpoint>;
  /** Recent setpoint changes per key, for oscillation detection. */
  changes: Record<string, { value: ParamValue; from?: ParamValue; ruleId: string; priority: number; at: number }[]>;
}

interface Ramp {
  req: CommandRequest;
  /** Where the ramp ends. */
  goal: number;
  nextAt: number;
}

interface Pending {
  command: CommandPayload;
  line: string;
  target: string;
  attempts: number;
  retryAt: number;
  accepted: boolean;
}

export interface CommandCenterSnapshot {
  targets: Record<string, TargetState>;
  holds: Record<string, Hold>;
  suspended: Record<string, number>;
  pending: Pending[];
  ramps: Record<string, Ramp>;
  nextId: number;
}

/** Which setpoint an action changes and to what; actions on one key can fight each other. */
export function setpointOf(action: CommandAction, params: Record<string, ParamValue>): { key: string; value: ParamValue } {
  switch (action) {
    case 'set_speed':
      return { key: 'speed', value: params.speed ?? 0 };
    case 'set_strategy':
      return { key: 'strategy', value: params.strategy ?? '' };
    case 'stop':
    case 'start':
      return { key: 'run', value: action };
    case 'reset_fault':
      return { key: 'reset', value: 'reset' };
  }
}

/** Counts direction reversals: sign changes of numeric steps, or A→B→A returns for other values. */
export function countReversals(values: ParamValue[]): number {
  let reversals = 0;
  if (values.every((v) => typeof v === 'number')) {
    let lastSign = 0;
    for (let i = 1; i < values.length; i++) {
      const sign = Math.sign((values[i] as number) - (values[i - 1] as number));
      if (sign === 0) continue;
      if (lastSign !== 0 && sign !== lastSign) reversals++;
      lastSign = sign;
    }
    return reversals;
  }
  for (let i = 2; i < values.length; i++) if (values[i] === values[i - 2] && values[i] !== values[i - 1]) reversals++;
  return reversals;
}

export class CommandCenter {
  private targets = new Map<string, TargetState>();
  private holds = new Map<string, Hold>();
  private suspended = new Map<string, number>();
  private pending = new Map<string, Pending>();
  private ramps = new Map<string, Ramp>();
  private nextId = 0;
  private safetyCache = new Map<string, TargetSafety>();

  constructor(private readonly o: CommandCenterOptions) {}

  setSafety(safety: SafetyDefinition): void {
    this.o.safety = safety;
    this.safetyCache.clear();
  }

  /** The limits for `line/target`: the first matching `targets` entry over the defaults. */
  safetyFor(line: string, target: string): TargetSafety {
    const name = `${line}/${target}`;
    let s = this.safetyCache.get(name);
    if (!s) {
      const entry = Object.entries(this.o.safety.targets).find(([pattern]) => {
        const [l, d] = pattern.split('/') as [string, string];
        return globMatcher(l).test(line) && globMatcher(d).test(target);
      });
      s = { ...this.o.safety.defaults, ...(entry?.[1] ?? {}) };
      this.safetyCache.set(name, s);
    }
    return s;
  }

  isSuspended(ruleId: string): boolean {
    const until = this.suspended.get(ruleId);
    if (until === undefined) return false;
    if (this.o.clock.now() >= until) {
      this.suspended.delete(ruleId);
      return false;
    }
    return true;
  }

  suspendedRules(): Record<string, number> {
    return Object.fromEntries(this.suspended);
  }

  pendingCount(): number {
    return this.pending.size;
  }

  /**
   * Checks the limits and sends the command (or records why not). `fromRamp` marks the next step of
   * a split speed change: it does not take a priority hold (its rule may have cleared meanwhile).
   */
  issue(req: CommandRequest, fromRamp = false): IssueResult {
    const now = this.o.clock.now();
    const id = `${this.o.idPrefix}-${++this.nextId}`;
    const name = `${req.line}/${req.target}`;
    const t = this.targetState(name);
    const limits = this.safetyFor(req.line, req.target);
    let params = { ...req.params };
    const { key, value } = setpointOf(req.action, params);
    const holdKey = `${name}|${key}`;
    const setpoint = t.setpoints[key];
    if (!fromRamp) this.ramps.delete(holdKey); // a new command supersedes a ramp in progress
    // Stopping is never delayed by cooldown, dwell or budget: it is the safe direction.
    const urgent = req.action === 'stop';

    const block = (reason: string): IssueResult => {
      // A ramp step that must wait for its own dwell or cooldown is simply tried again later.
      if (fromRamp && /^(dwell|cooldown)/.test(reason)) return { sent: false, id, reason };
      this.o.count(`blocked_${reason.split(':')[0]!.replace(/ /g, '_')}`);
      this.record(req.line, req.target, { id, action: req.action, params, origin: `rule:${req.ruleId}`, ts: now, expiresAt: now }, 'blocked', 0, reason);
      return { sent: false, id, reason };
    };

    if (this.isSuspended(req.ruleId)) return block(`suspended: rule ${req.ruleId} is suspended for oscillation until ${new Date(this.suspended.get(req.ruleId)!).toISOString()}`);
    const hold = this.holds.get(holdKey);
    if (hold && hold.holder !== req.holder && hold.priority > req.priority) {
      return block(`priority: ${key} of ${name} is held by rule ${hold.ruleId} (priority ${hold.priority} > ${req.priority})`);
    }
    const outranks = (p: number | undefined): boolean => p !== undefined && req.priority > p;
    if (!urgent && limits.cooldown && t.lastCommandAt !== undefined && now - t.lastCommandAt < limits.cooldown && !outranks(t.lastPriority)) {
      return block(`cooldown: ${name} was commanded ${now - t.lastCommandAt} ms ago (cooldown ${limits.cooldown} ms)`);
    }
    if (!urgent && limits.minDwell && setpoint && setpoint.value !== value && now - setpoint.at < limits.minDwell && !outranks(setpoint.priority)) {
      return block(`dwell: ${key} of ${name} changed ${now - setpoint.at} ms ago (minimum dwell ${limits.minDwell} ms)`);
    }
    t.sent = t.sent.filter((at) => now - at < 60_000);
    if (!urgent && limits.budgetPerMinute && t.sent.length >= limits.budgetPerMinute) {
      return block(`budget: ${name} already had ${t.sent.length} commands in the last minute (budget ${limits.budgetPerMinute})`);
    }

    let note: string | undefined;
    let finalValue = value;
    if (req.action === 'set_speed' && limits.maxStep && typeof value === 'number') {
      const base = typeof setpoint?.value === 'number' ? setpoint.value : req.current;
      if (base !== undefined && base > 0) {
        const clamped = Math.min(base * (1 + limits.maxStep), Math.max(base * (1 - limits.maxStep), value));
        if (Math.abs(clamped - value) > 1e-9) {
          finalValue = Math.round(clamped * 1000) / 1000;
          params = { ...params, speed: finalValue };
          const every = this.stepEvery(limits);
          note = `speed ${value} split: ${finalValue} now (max step ${Math.round(limits.maxStep * 100)} % from ${base}), then a step every ${every} ms`;
          this.o.count('commands_split');
          this.ramps.set(holdKey, { req: { ...req, params: { ...req.params, speed: value } }, goal: value, nextAt: now + every });
        }
      }
    }

    // Oscillation: would this change reverse the setpoint's direction too often within the window?
    if (key !== 'reset' && (!setpoint || setpoint.value !== finalValue)) {
      const osc = this.o.safety.oscillation;
      const recent = (t.changes[key] ?? []).filter((c) => now - c.at <= osc.window);
      const candidate = [...recent, { value: finalValue, from: setpoint?.value, ruleId: req.ruleId, priority: req.priority, at: now }];
      const first = candidate[0]!.from;
      const values = [...(first !== undefined ? [first] : []), ...candidate.map((c) => c.value)];
      if (countReversals(values) >= osc.reversals) {
        const involved = new Map(candidate.map((c) => [c.ruleId, c.priority]));
        // The lowest-priority rule involved is the offender; a rule fighting itself is its own offender.
        let offender = req.ruleId;
        for (const [ruleId, priority] of involved) if (priority < (involved.get(offender) ?? Infinity)) offender = ruleId;
        const until = now + osc.suspendFor;
        this.suspended.set(offender, until);
        t.changes[key] = [];
        this.o.count('rules_suspended');
        const reason = `${key} of ${name} reversed direction ${osc.reversals} times within ${osc.window} ms (rules: ${[...involved.keys()].join(', ')})`;
        log.warn({ rule: offender, target: name, key }, `oscillation: suspending rule ${offender}: ${reason}`);
        this.o.onSuspend({ ruleId: offender, line: req.line, target: req.target, key, until, reason });
        if (offender === req.ruleId) return block(`suspended: ${reason}`);
      }
      t.changes[key] = candidate.filter((c) => now - c.at <= osc.window);
    }

    const command: CommandPayload = { id, action: req.action, params, origin: `rule:${req.ruleId}`, ts: now, expiresAt: now + (req.ttlMs ?? this.o.ttlMs) };
    t.lastCommandAt = now;
    t.lastPriority = req.priority;
    t.sent.push(now);
    if (!setpoint || setpoint.value !== finalValue) {
      t.setpoints[key] = { value: finalValue, previous: setpoint?.value, at: now, ruleId: req.ruleId, priority: req.priority, commandId: id };
    }
    if (!fromRamp) this.holds.set(holdKey, { holder: req.holder, ruleId: req.ruleId, priority: req.priority });
    this.pending.set(id, { command, line: req.line, target: req.target, attempts: 1, retryAt: now + this.o.ackTimeoutMs, accepted: false });
    this.o.count('commands_sent');
    this.o.onEvent({ type: 'command', line: req.line, target: req.target, command, note });
    this.send(req.line, req.target, command);
    return { sent: true, id, params, note };
  }

  /** Releases every setpoint `holder` holds (its rule instance cleared). */
  release(holder: string): void {
    for (const [key, hold] of this.holds) if (hold.holder === holder) this.holds.delete(key);
  }

  onAck(line: string, device: string, ack: AckPayload): void {
    const p = this.pending.get(ack.id);
    if (!p || p.line !== line || p.target !== device) {
      this.o.count('acks_unknown');
      return;
    }
    if (ack.result === 'accepted') {
      if (p.accepted) return;
      p.accepted = true;
      this.record(line, device, p.command, 'accepted', p.attempts, ack.reason);
      return;
    }
    this.pending.delete(ack.id);
    if (ack.result === 'rejected' || ack.result === 'failed') this.revert(p);
    this.record(line, device, p.command, ack.result, p.attempts, ack.reason);
  }

  /** Retries, expiries and ramp steps; called by the engine's tick. */
  tick(): void {
    const now = this.o.clock.now();
    for (const [key, ramp] of this.ramps) {
      if (now < ramp.nextAt) continue;
      this.ramps.delete(key);
      // Re-issued toward the goal: clamped again (and a new ramp set) if still more than one step away.
      // A ramp step that a limit blocks ends the ramp; its blocked outcome says why.
      const r = this.issue(ramp.req, true);
      // Our own earlier step (or another command to the target) may still be in its dwell or cooldown: try again later.
      if (!r.sent && /^(dwell|cooldown)/.test(r.reason)) this.ramps.set(key, { ...ramp, nextAt: now + this.stepEvery(this.safetyFor(ramp.req.line, ramp.req.target)) });
    }
    for (const [id, p] of this.pending) {
      if (p.accepted) {
        // Accepted stands as the outcome if `done` never comes.
        if (now >= p.command.expiresAt + this.o.ackTimeoutMs) this.pending.delete(id);
        continue;
      }
      if (now < p.retryAt) continue;
      if (p.attempts <= this.o.retries && now < p.command.expiresAt) {
        p.attempts++;
        p.retryAt = now + this.o.ackTimeoutMs;
        this.o.count('commands_retried');
        this.send(p.line, p.target, p.command);
        continue;
      }
      this.pending.delete(id);
      this.revert(p);
      this.record(p.line, p.target, p.command, 'expired', p.attempts, `no ack after ${p.attempts} attempt(s)`);
    }
  }

  snapshot(): CommandCenterSnapshot {
    return {
      targets: Object.fromEntries(this.targets),
      holds: Object.fromEntries(this.holds),
      suspended: Object.fromEntries(this.suspended),
      pending: [...this.pending.values()],
      ramps: Object.fromEntries(this.ramps),
      nextId: this.nextId,
    };
  }

  restore(s: CommandCenterSnapshot): void {
    this.targets = new Map(Object.entries(s.targets));
    this.holds = new Map(Object.entries(s.holds));
    this.suspended = new Map(Object.entries(s.suspended));
    this.pending = new Map(s.pending.map((p) => [p.command.id, p]));
    this.ramps = new Map(Object.entries(s.ramps ?? {}));
    this.nextId = s.nextId;
  }

  private stepEvery(limits: TargetSafety): number {
    return Math.max(limits.minDwell ?? 0, limits.cooldown ?? 0, 1000);
  }

  private targetState(name: string): TargetState {
    let t = this.targets.get(name);
    if (!t) {
      t = { sent: [], setpoints: {}, changes: {} };
      this.targets.set(name, t);
    }
    return t;
  }

  /** A command that failed or never arrived did not change the setpoint. */
  private revert(p: Pending): void {
    const t = this.targets.get(`${p.line}/${p.target}`);
    const { key } = setpointOf(p.command.action, p.command.params);
    const sp = t?.setpoints[key];
    if (t && sp && sp.commandId === p.command.id) {
      if (sp.previous === undefined) delete t.setpoints[key];
      else t.setpoints[key] = { ...sp, value: sp.previous, previous: undefined };
    }
  }

  private send(line: string, target: string, command: CommandPayload): void {
    this.o.bus.publish(topics.cmd(line, target), JSON.stringify(command), DELIVERY.cmd).catch((err: unknown) => {
      // The retry in tick() sends it again; the outcome says if it never got through.
      this.o.count('publish_errors');
      log.warn({ err: (err as Error).message, id: command.id }, 'could not publish a command; it will be retried');
    });
  }

  private record(line: string, target: string, command: CommandPayload, outcome: CommandOutcome, attempts: number, reason?: string): void {
    const payload: CommandOutcomePayload = {
      id: command.id,
      action: command.action,
      params: command.params,
      origin: command.origin,
      target,
      outcome,
      attempts,
      ...(reason ? { reason: reason.slice(0, 256) } : {}),
      issuedAt: command.ts,
      ts: this.o.clock.now(),
    };
    this.o.count(`outcome_${outcome}`);
    this.o.onEvent({ type: 'outcome', line, outcome: payload });
    this.o.bus.publish(topics.outcome(line, target), JSON.stringify(payload), DELIVERY.outcome).catch((err: unknown) => {
      this.o.count('publish_errors');
      log.warn({ err: (err as Error).message, id: command.id }, 'could not publish a command outcome');
    });
  }
}
