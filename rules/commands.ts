// Commands as a closed loop: send, ack, retry, expire, outcome. Whether a command may go at all
// is the actuator-safety policy's decision (safety-policy.ts); this loop applies it.
//
// issue(): the policy decides → publish lw/{line}/{target}/cmd (QoS 1) → wait for cmd/ack with
// the same id → re-send the same id on ack timeout, a bounded number of times → publish the
// outcome on lw/{line}/{target}/cmd/outcome. A command the policy refuses is never sent; its
// outcome is `blocked`. A speed change bigger than maxStep is split: the first step goes now, the
// rest follow as a ramp (one step per max(minDwell, cooldown, 1 s)) until the value is reached or
// another command for the same setpoint supersedes it.
import type { AckPayload, CommandOutcome, CommandOutcomePayload, CommandPayload } from '../contracts/schemas.js';
import { DELIVERY, topics } from '../contracts/topics.js';
import { logger } from '../lib/log.js';
import type { ParamValue } from './load.js';
import type { SafetyDefinition, TargetSafety } from './schema.js';
import type { CommandCenterOptions, CommandCenterSnapshot, IssueResult, Pending, Ramp } from './command-types.js';
import { decideCommand, recentSends, setpointOf, stepEvery, TargetLimits, type CommandRequest, type Hold, type PolicyDecision, type Split, type Suspension, type TargetState } from './safety-policy.js';

export type { CommandRequest } from './safety-policy.js';
export type { CommandCenterOptions, CommandCenterSnapshot, CommandEvent, IssueResult, OutcomeEvent } from './command-types.js';

const log = logger('rules');

/** `blocked_<kind>`: the counter of a refusal, named by its reason's first word (`blocked_cooldown`). */
function blockedCounter(reason: string): string {
  const [kind = reason] = reason.split(':', 1);
  return `blocked_${kind.replace(/ /g, '_')}`;
}

/** A ramp step that must wait for its own dwell or cooldown is simply tried again later. */
function waitsForDwellOrCooldown(reason: string): boolean {
  return /^(dwell|cooldown)/.test(reason);
}

export class CommandCenter {
  private targets = new Map<string, TargetState>();
  private holds = new Map<string, Hold>();
  private suspended = new Map<string, number>();
  private pending = new Map<string, Pending>();
  private ramps = new Map<string, Ramp>();
  private nextId = 0;
  private limits: TargetLimits;

  constructor(private readonly options: CommandCenterOptions) {
    this.limits = new TargetLimits(options.safety);
  }

  setSafety(safety: SafetyDefinition): void {
    this.options.safety = safety;
    this.limits = new TargetLimits(safety);
  }

  /** The limits for `line/target`: the first matching `targets` entry over the defaults. */
  safetyFor(line: string, target: string): TargetSafety {
    return this.limits.of(line, target);
  }

  /** Until when `ruleId` is suspended by the oscillation guard; undefined once that has passed. */
  suspendedUntil(ruleId: string): number | undefined {
    const until = this.suspended.get(ruleId);
    if (until === undefined) return undefined;
    if (this.options.clock.now() >= until) {
      this.suspended.delete(ruleId);
      return undefined;
    }
    return until;
  }

  isSuspended(ruleId: string): boolean {
    return this.suspendedUntil(ruleId) !== undefined;
  }

  /** The rules suspended now, with the time each suspension ends. */
  suspendedRules(): Record<string, number> {
    const now = this.options.clock.now();
    return Object.fromEntries([...this.suspended].filter(([, until]) => now < until));
  }

  pendingCount(): number {
    return this.pending.size;
  }

  /**
   * Asks the safety policy and sends the command (or records why not). `fromRamp` marks the next
   * step of a split speed change: it does not take a priority hold (its rule may have cleared meanwhile).
   */
  issue(req: CommandRequest, fromRamp = false): IssueResult {
    const now = this.options.clock.now();
    const id = `${this.options.idPrefix}-${++this.nextId}`;
    const target = this.targetState(`${req.line}/${req.target}`);
    const holdKey = this.holdKeyOf(req);
    if (!fromRamp) this.ramps.delete(holdKey); // a new command supersedes a ramp in progress
    target.sent = recentSends(target.sent, now);
    const decision = decideCommand({
      request: req,
      fromRamp,
      now,
      limits: this.safetyFor(req.line, req.target),
      oscillation: this.options.safety.oscillation,
      target,
      hold: this.holds.get(holdKey),
      suspendedUntil: this.suspendedUntil(req.ruleId),
    });
    if (decision.split) this.startRamp(req, holdKey, decision.split, now);
    if (decision.suspension) this.suspend(req, decision.suspension);
    if (decision.changes) target.changes[setpointOf(req.action, req.params).key] = decision.changes;
    if (!decision.allowed) return this.block(req, id, decision.params, decision.reason, fromRamp, now);
    return this.dispatch(req, id, target, holdKey, decision, fromRamp, now);
  }

  /** `line/target|key`: the setpoint a request changes; holds and ramps are per setpoint. */
  private holdKeyOf(req: CommandRequest): string {
    return `${req.line}/${req.target}|${setpointOf(req.action, req.params).key}`;
  }

  /** The rest of a split speed change follows as a ramp, one step every `stepEveryMs`. */
  private startRamp(req: CommandRequest, holdKey: string, split: Split, now: number): void {
    this.options.count('commands_split');
    this.ramps.set(holdKey, { req: { ...req, params: { ...req.params, speed: split.goal } }, goal: split.goal, nextAt: now + split.stepEveryMs });
  }

  private suspend(req: CommandRequest, suspension: Suspension): void {
    const { offender, until, key, reason } = suspension;
    this.suspended.set(offender, until);
    this.options.count('rules_suspended');
    log.warn({ rule: offender, target: `${req.line}/${req.target}`, key }, `oscillation: suspending rule ${offender}: ${reason}`);
    this.options.onSuspend({ ruleId: offender, line: req.line, target: req.target, key, until, reason });
  }

  /** A refused command: counted by reason and published as a `blocked` outcome — except a ramp step waiting for its dwell or cooldown, tried again later. */
  private block(req: CommandRequest, id: string, params: Record<string, ParamValue>, reason: string, fromRamp: boolean, now: number): IssueResult {
    if (fromRamp && waitsForDwellOrCooldown(reason)) return { sent: false, id, reason };
    this.options.count(blockedCounter(reason));
    this.record(req.line, req.target, { id, action: req.action, params, origin: `rule:${req.ruleId}`, ts: now, expiresAt: now }, 'blocked', 0, reason);
    return { sent: false, id, reason };
  }

  /** Records what is sent (the target's history, the setpoint, the hold), sends it and waits for its ack. */
  private dispatch(req: CommandRequest, id: string, target: TargetState, holdKey: string, decision: PolicyDecision & { allowed: true }, fromRamp: boolean, now: number): IssueResult {
    const { key, value, params, note } = decision;
    const command: CommandPayload = { id, action: req.action, params, origin: `rule:${req.ruleId}`, ts: now, expiresAt: now + (req.ttlMs ?? this.options.ttlMs) };
    target.lastCommandAt = now;
    target.lastPriority = req.priority;
    target.sent.push(now);
    const setpoint = target.setpoints[key];
    if (!setpoint || setpoint.value !== value) {
      target.setpoints[key] = { value, previous: setpoint?.value, at: now, ruleId: req.ruleId, priority: req.priority, commandId: id };
    }
    if (!fromRamp) this.holds.set(holdKey, { holder: req.holder, ruleId: req.ruleId, priority: req.priority });
    this.pending.set(id, { command, line: req.line, target: req.target, attempts: 1, retryAt: now + this.options.ackTimeoutMs, accepted: false });
    this.options.count('commands_sent');
    this.options.onEvent({ type: 'command', line: req.line, target: req.target, command, note });
    this.send(req.line, req.target, command);
    return { sent: true, id, params, note };
  }

  /** Releases every setpoint `holder` holds (its rule instance cleared). */
  release(holder: string): void {
    for (const [key, hold] of this.holds) if (hold.holder === holder) this.holds.delete(key);
  }

  onAck(line: string, device: string, ack: AckPayload): void {
    const waiting = this.pending.get(ack.id);
    if (!waiting || waiting.line !== line || waiting.target !== device) {
      this.options.count('acks_unknown');
      return;
    }
    if (ack.result === 'accepted') {
      if (waiting.accepted) return;
      waiting.accepted = true;
      this.record(line, device, waiting.command, 'accepted', waiting.attempts, ack.reason);
      return;
    }
    this.pending.delete(ack.id);
    if (ack.result === 'rejected' || ack.result === 'failed') this.revert(waiting);
    this.record(line, device, waiting.command, ack.result, waiting.attempts, ack.reason);
  }

  /** Retries, expiries and ramp steps; called by the engine's tick. */
  tick(): void {
    const now = this.options.clock.now();
    for (const [key, ramp] of this.ramps) {
      if (now < ramp.nextAt) continue;
      this.ramps.delete(key);
      // Re-issued toward the goal: clamped again (and a new ramp set) if still more than one step away.
      // A ramp step that a limit blocks ends the ramp; its blocked outcome says why.
      const result = this.issue(ramp.req, true);
      // Our own earlier step (or another command to the target) may still be in its dwell or cooldown: try again later.
      if (!result.sent && waitsForDwellOrCooldown(result.reason)) this.ramps.set(key, { ...ramp, nextAt: now + stepEvery(this.safetyFor(ramp.req.line, ramp.req.target)) });
    }
    for (const [id, waiting] of this.pending) {
      if (waiting.accepted) {
        // Accepted stands as the outcome if `done` never comes.
        if (now >= waiting.command.expiresAt + this.options.ackTimeoutMs) this.pending.delete(id);
        continue;
      }
      if (now < waiting.retryAt) continue;
      if (waiting.attempts <= this.options.retries && now < waiting.command.expiresAt) {
        waiting.attempts++;
        waiting.retryAt = now + this.options.ackTimeoutMs;
        this.options.count('commands_retried');
        this.send(waiting.line, waiting.target, waiting.command);
        continue;
      }
      this.pending.delete(id);
      this.revert(waiting);
      this.record(waiting.line, waiting.target, waiting.command, 'expired', waiting.attempts, `no ack after ${waiting.attempts} attempt(s)`);
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

  restore(snapshot: CommandCenterSnapshot): void {
    this.targets = new Map(Object.entries(snapshot.targets));
    this.holds = new Map(Object.entries(snapshot.holds));
    this.suspended = new Map(Object.entries(snapshot.suspended));
    this.pending = new Map(snapshot.pending.map((waiting) => [waiting.command.id, waiting]));
    this.ramps = new Map(Object.entries(snapshot.ramps ?? {}));
    this.nextId = snapshot.nextId;
  }

  private targetState(name: string): TargetState {
    let target = this.targets.get(name);
    if (!target) {
      target = { sent: [], setpoints: {}, changes: {} };
      this.targets.set(name, target);
    }
    return target;
  }

  /** A command that failed or never arrived did not change the setpoint. */
  private revert(waiting: Pending): void {
    const target = this.targets.get(`${waiting.line}/${waiting.target}`);
    const { key } = setpointOf(waiting.command.action, waiting.command.params);
    const setpoint = target?.setpoints[key];
    if (target && setpoint && setpoint.commandId === waiting.command.id) {
      if (setpoint.previous === undefined) delete target.setpoints[key];
      else target.setpoints[key] = { ...setpoint, value: setpoint.previous, previous: undefined };
    }
  }

  private send(line: string, target: string, command: CommandPayload): void {
    this.options.bus.publish(topics.cmd(line, target), JSON.stringify(command), DELIVERY.cmd).catch((err: unknown) => {
      // The retry in tick() sends it again; the outcome says if it never got through.
      this.options.count('publish_errors');
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
      ts: this.options.clock.now(),
    };
    this.options.count(`outcome_${outcome}`);
    this.options.onEvent({ type: 'outcome', line, outcome: payload });
    this.options.bus.publish(topics.outcome(line, target), JSON.stringify(payload), DELIVERY.outcome).catch((err: unknown) => {
      this.options.count('publish_errors');
      log.warn({ err: (err as Error).message, id: command.id }, 'could not publish a command outcome');
    });
  }
}
