// Commands as a closed loop: intents in, commands out, acks back (docs/rules.md#intents).
//
// A rule states what it wants of a setpoint (intents.ts); per setpoint the loop drives the device
// towards the winning intent: whether a command may go now is the actuator-safety policy's decision
// (safety-policy.ts). A limit that only delays it (cooldown, dwell, budget, the next step of a
// speed change bigger than maxStep) is reported once (`deferred … until T`) and the then winning
// intent is sent when it allows; only what is refused for good (a suspended rule) is `blocked`.
// A sent command: publish lw/{line}/{target}/cmd (QoS 1) → wait for cmd/ack with the same id →
// re-send the same id on ack timeout, a bounded number of times → `accepted` stays pending until
// `done`/`failed` or the action's completion timeout. Each outcome goes to
// lw/{line}/{target}/cmd/outcome; one that arrives after the loop stopped waiting is still recorded
// (`acks_late`). A device reporting a setpoint other than the one it acknowledged is re-commanded
// (at most recommandLimit times until it reports the value again).
import type { AckPayload, CommandOutcome, CommandOutcomePayload, CommandPayload } from '../contracts/schemas.js';
import { DELIVERY, topics } from '../contracts/topics.js';
import { logger } from '../lib/log.js';
import { LogLimiter } from '../lib/log-limit.js';
import type { Acknowledged, CommandCenterOptions, CommandCenterSnapshot, GivenUp, Pending } from './command-types.js';
import type { DeviceEvent } from './device-table.js';
import { IntentTable, reportedSetpoints, setpointKeyOf, type Intent } from './intents.js';
import type { ParamValue } from './load.js';
import type { SafetyDefinition, TargetSafety } from './schema.js';
import { decideCommand, recentSends, setpointOf, TargetLimits, type CommandRequest, type PolicyDecision, type Refusal, type TargetState } from './safety-policy.js';

export type { CommandRequest } from './safety-policy.js';
export type { CommandCenterOptions, CommandCenterSnapshot, CommandEvent, DeferEvent, OutcomeEvent } from './command-types.js';

const log = logger('rules');

/** Commands given up on whose late outcome is still recorded; the oldest are forgotten beyond this. */
const GIVEN_UP_KEPT = 1000;

/** The first word of a refusal (`cooldown`, `dwell`, `budget`, `suspended`), which names its counter. */
function limitOf(reason: string): string {
  const [kind = reason] = reason.split(':', 1);
  return kind.replace(/ /g, '_');
}

function sameValue(a: ParamValue, b: ParamValue): boolean {
  return typeof a === 'number' && typeof b === 'number' ? Math.abs(a - b) < 1e-6 : a === b;
}

export class CommandCenter {
  private targets = new Map<string, TargetState>();
  private readonly intents = new IntentTable();
  private suspended = new Map<string, number>();
  private pending = new Map<string, Pending>();
  private givenUp = new Map<string, GivenUp>();
  /** Per setpoint key, what the device last acknowledged; removed when a report differs (until the re-command's ack). */
  private acknowledged = new Map<string, Acknowledged>();
  /** Per setpoint key, re-commands since the device last reported the acknowledged value. */
  private readonly recommands = new Map<string, number>();
  private nextId = 0;
  private limits: TargetLimits;
  private readonly limited: LogLimiter;

  constructor(private readonly options: CommandCenterOptions) {
    this.limits = new TargetLimits(options.safety);
    this.limited = new LogLimiter(log, { now: () => options.clock.now() });
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

  intentCount(): number {
    return this.intents.size();
  }

  /** A rule instance states what it wants of a setpoint: while it is active, or (onClear) after. The winner is driven to at once if the limits allow. */
  issue(req: CommandRequest, phase: Intent['phase'] = 'active'): void {
    const now = this.options.clock.now();
    this.reconcile(this.intents.state(req, phase, now), now);
  }

  /** The instance `holder` cleared: its active intents end, and the setpoints they held go to the next winner. */
  release(holder: string): void {
    const now = this.options.clock.now();
    for (const key of this.intents.release(holder)) this.reconcile(key, now);
  }

  /** Keeps the intents `keep` says: after a reload, those of rules still loaded; after a restart, the active ones of instances restored. */
  retainIntents(keep: (intent: Intent) => boolean): void {
    const now = this.options.clock.now();
    for (const key of this.intents.retain(keep)) this.reconcile(key, now);
  }

  /** Sends the winning intent of `key` unless the device has it (or it is on its way), a limit delays it, or it is refused. */
  private reconcile(key: string, now: number): void {
    const intent = this.intents.winner(key);
    if (!intent || intent.settled) return;
    const req = intent.request;
    const setpointKey = setpointOf(req.action, req.params).key;
    const oneShot = setpointKey === 'reset';
    const target = this.targetState(`${req.line}/${req.target}`);
    const commanded = target.setpoints[setpointKey];
    if (!oneShot && commanded && sameValue(commanded.value, intent.value)) return;
    target.sent = recentSends(target.sent, now);
    const decision = decideCommand({
      request: req,
      now,
      limits: this.safetyFor(req.line, req.target),
      oscillation: this.options.safety.oscillation,
      target,
      suspendedUntil: this.suspendedUntil(req.ruleId),
    });
    if (decision.suspension) this.suspend(req, decision.suspension);
    if (decision.changes) target.changes[setpointKey] = decision.changes;
    if (!decision.allowed) {
      if (decision.retryAt === undefined) this.block(intent, decision.params, decision.reason, now);
      else this.defer(intent, decision, decision.retryAt);
      return;
    }
    this.dispatch(intent, target, decision, now);
    if (oneShot) this.intents.consume(key, intent);
  }

  private suspend(req: CommandRequest, suspension: NonNullable<PolicyDecision['suspension']>): void {
    const { offender, until, key, reason } = suspension;
    this.suspended.set(offender, until);
    this.options.count('rules_suspended');
    log.warn({ rule: offender, target: `${req.line}/${req.target}`, key }, `oscillation: suspending rule ${offender}: ${reason}`);
    this.options.onSuspend({ ruleId: offender, line: req.line, target: req.target, key, until, reason });
  }

  /** Refused for good (a suspended rule): counted, published as a `blocked` outcome and logged, once per intent; it is tried again while it wins. */
  private block(intent: Intent, params: Record<string, ParamValue>, reason: string, now: number): void {
    if (intent.blockedReported) return;
    intent.blockedReported = true;
    const req = intent.request;
    const id = `${this.options.idPrefix}-${++this.nextId}`;
    this.options.count(`blocked_${limitOf(reason)}`);
    this.limited.write('warn', 'command_blocked', { rule: req.ruleId, target: `${req.line}/${req.target}`, action: req.action }, `command ${req.action} to ${req.line}/${req.target} from rule ${req.ruleId} blocked: ${reason}`);
    this.record(req.line, req.target, { id, action: req.action, params, origin: `rule:${req.ruleId}`, ts: now, expiresAt: now }, 'blocked', 0, reason);
  }

  /** A limit delays the intent: reported once per limit (not for the next step of a speed change already under way). */
  private defer(intent: Intent, refusal: Refusal, until: number): void {
    const limit = limitOf(refusal.reason);
    if (intent.deferredBy === limit || (intent.commandId !== undefined && limit !== 'budget')) return;
    intent.deferredBy = limit;
    const req = intent.request;
    this.options.count('commands_deferred');
    this.options.count(`deferred_${limit}`);
    this.limited.write('info', 'command_deferred', { rule: req.ruleId, target: `${req.line}/${req.target}`, until }, `command ${req.action} to ${req.line}/${req.target} from rule ${req.ruleId} deferred until ${new Date(until).toISOString()}: ${refusal.reason}`);
    this.options.onEvent({ type: 'deferred', line: req.line, target: req.target, action: req.action, params: req.params, origin: `rule:${req.ruleId}`, until, limit, reason: refusal.reason });
  }

  /** Records what is sent (the target's history, the setpoint), sends it and waits for its ack. */
  private dispatch(intent: Intent, target: TargetState, decision: PolicyDecision & { allowed: true }, now: number): void {
    const req = intent.request;
    const { key, value, params, note } = decision;
    const id = `${this.options.idPrefix}-${++this.nextId}`;
    const command: CommandPayload = { id, action: req.action, params, origin: `rule:${req.ruleId}`, ts: now, expiresAt: now + (req.ttlMs ?? this.options.settings.commandTtlMs) };
    target.lastCommandAt = now;
    target.lastPriority = req.priority;
    target.sent.push(now);
    const setpoint = target.setpoints[key];
    if (!setpoint || setpoint.value !== value) {
      target.setpoints[key] = { value, previous: setpoint?.value, at: now, ruleId: req.ruleId, priority: req.priority, commandId: id };
    }
    intent.commandId = id;
    intent.deferredBy = undefined;
    if (decision.split) this.options.count('commands_split');
    this.pending.set(id, { command, line: req.line, target: req.target, attempts: 1, retryAt: now + this.options.settings.ackTimeoutMs, accepted: false });
    this.options.count('commands_sent');
    this.options.onEvent({ type: 'command', line: req.line, target: req.target, command, note });
    this.send(req.line, req.target, command);
  }

  onAck(line: string, device: string, ack: AckPayload): void {
    const waiting = this.pending.get(ack.id);
    if (!waiting || waiting.line !== line || waiting.target !== device) return this.lateAck(line, device, ack);
    if (ack.result === 'accepted') {
      if (waiting.accepted) return;
      waiting.accepted = true;
      waiting.acceptedAt = this.options.clock.now();
      this.acknowledge(waiting.line, waiting.target, waiting.command, ack.ts);
      this.record(line, device, waiting.command, 'accepted', waiting.attempts, ack.reason);
      return;
    }
    this.pending.delete(ack.id);
    if (ack.result === 'done') this.acknowledge(waiting.line, waiting.target, waiting.command, ack.ts);
    else this.refused(waiting.line, waiting.target, waiting.command, ack.result);
    this.record(line, device, waiting.command, ack.result, waiting.attempts, ack.reason);
  }

  /** An ack for a command no longer pending: the outcome of one given up on (counted acks_late), else unknown. */
  private lateAck(line: string, device: string, ack: AckPayload): void {
    const late = this.givenUp.get(ack.id);
    if (!late || late.line !== line || late.target !== device) {
      this.options.count('acks_unknown');
      return;
    }
    this.options.count('acks_late');
    if (ack.result !== 'accepted') this.givenUp.delete(ack.id);
    if (ack.result === 'done' || ack.result === 'accepted') this.lateSuccess(late, ack);
    else this.refused(line, device, late.command, ack.result);
    this.limited.write('warn', 'ack_late', { id: ack.id, target: `${line}/${device}`, result: ack.result }, `command ${ack.id} to ${line}/${device}: ${ack.result} arrived after the engine stopped waiting (${late.why}); recorded as its outcome`);
    this.record(line, device, late.command, ack.result, late.attempts, `late (${late.why})${ack.reason ? `: ${ack.reason}` : ''}`);
  }

  /** The device did take a command given up on: unless a newer command changed the setpoint since, it is what was commanded. */
  private lateSuccess(late: GivenUp, ack: AckPayload): void {
    const { key, value } = setpointOf(late.command.action, late.command.params);
    const setpoint = this.targets.get(`${late.line}/${late.target}`)?.setpoints[key];
    if (setpoint?.commandId === late.command.id) setpoint.value = value;
    const intent = this.intents.byCommand(setpointKeyOf({ ...late.command, line: late.line, target: late.target }), late.command.id);
    if (intent) intent.settled = undefined;
    this.acknowledge(late.line, late.target, late.command, ack.ts);
  }

  /** Retries, expiries, completion timeouts and the intents a limit delayed; called by the engine's tick. */
  tick(): void {
    const now = this.options.clock.now();
    for (const key of this.intents.keys()) this.reconcile(key, now);
    const { ackTimeoutMs, retries, completionTimeoutMs } = this.options.settings;
    for (const [id, waiting] of this.pending) {
      if (waiting.accepted) {
        const timeout = completionTimeoutMs[waiting.command.action];
        if (now < (waiting.acceptedAt ?? waiting.command.ts) + timeout) continue;
        this.pending.delete(id);
        this.options.count('completions_timed_out');
        this.giveUp(waiting, `accepted, no done or failed within ${timeout} ms (rules.completionTimeoutMs.${waiting.command.action})`);
        continue;
      }
      if (now < waiting.retryAt) continue;
      if (waiting.attempts <= retries && now < waiting.command.expiresAt) {
        waiting.attempts++;
        waiting.retryAt = now + ackTimeoutMs;
        this.options.count('commands_retried');
        this.send(waiting.line, waiting.target, waiting.command);
        continue;
      }
      this.pending.delete(id);
      this.refused(waiting.line, waiting.target, waiting.command, 'expired');
      this.giveUp(waiting, `expired: no ack after ${waiting.attempts} attempt(s)`);
      this.record(waiting.line, waiting.target, waiting.command, 'expired', waiting.attempts, `no ack after ${waiting.attempts} attempt(s)`);
    }
  }

  /** A device's message: a setpoint it reports other than the one it acknowledged is commanded again (bounded). */
  reported(event: DeviceEvent): void {
    for (const { key: setpointKey, value } of reportedSetpoints(event)) {
      const key = `${event.line}/${event.device}|${setpointKey}`;
      const acked = this.acknowledged.get(key);
      if (!acked || event.payload.ts < acked.ts) continue;
      if (sameValue(value, acked.value)) {
        this.recommands.delete(key);
        continue;
      }
      this.mismatch(key, event, setpointKey, value, acked);
    }
  }

  private mismatch(key: string, event: DeviceEvent, setpointKey: string, value: ParamValue, acked: Acknowledged): void {
    const name = `${event.line}/${event.device}`;
    const tries = this.recommands.get(key) ?? 0;
    const limit = this.options.settings.recommandLimit;
    if (tries > limit) return; // given up until it reports the acknowledged value again
    this.options.count('setpoint_mismatches');
    const fields = { target: name, key: setpointKey, reported: value, acknowledged: acked.value };
    if (tries === limit) {
      this.recommands.set(key, tries + 1);
      this.options.count('recommands_gave_up');
      this.limited.write('warn', 'recommand_gave_up', fields, `${name} reports ${setpointKey} ${String(value)}, not the acknowledged ${String(acked.value)}; not commanded again after ${tries} re-command(s) (rules.recommandLimit) until it reports it`);
      return;
    }
    const setpoint = this.targets.get(name)?.setpoints[setpointKey];
    if (!setpoint) return;
    this.acknowledged.delete(key); // the re-command's ack is judged next: one re-command per difference
    this.recommands.set(key, tries + 1);
    this.options.count('recommands');
    this.limited.write('warn', 'recommand', fields, `${name} reports ${setpointKey} ${String(value)}, not the acknowledged ${String(acked.value)}: commanding it again (${tries + 1} of ${this.options.settings.recommandLimit})`);
    // What the device has is the base from now on: the winning intent differs from it and is sent (within the limits).
    setpoint.value = value;
    setpoint.previous = undefined;
    this.reconcile(key, this.options.clock.now());
  }

  snapshot(): CommandCenterSnapshot {
    return {
      targets: Object.fromEntries(this.targets),
      suspended: Object.fromEntries(this.suspended),
      pending: [...this.pending.values()],
      intents: this.intents.snapshot(),
      givenUp: [...this.givenUp.values()],
      acknowledged: Object.fromEntries(this.acknowledged),
      nextId: this.nextId,
    };
  }

  restore(snapshot: CommandCenterSnapshot): void {
    this.targets = new Map(Object.entries(snapshot.targets));
    this.suspended = new Map(Object.entries(snapshot.suspended));
    this.pending = new Map(snapshot.pending.map((waiting) => [waiting.command.id, waiting]));
    this.intents.restore(snapshot.intents);
    this.givenUp = new Map((snapshot.givenUp ?? []).map((late) => [late.command.id, late]));
    this.acknowledged = new Map(Object.entries(snapshot.acknowledged ?? {}));
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

  /** The device took the command: for a reported setpoint, what it should report from the ack's device time on. */
  private acknowledge(line: string, target: string, command: CommandPayload, ts: number): void {
    const { key, value } = setpointOf(command.action, command.params);
    if (key === 'speed' || key === 'strategy') this.acknowledged.set(`${line}/${target}|${key}`, { value, ts, commandId: command.id });
  }

  /** A command that was rejected, failed or never arrived did not change the setpoint, and its intent is not sent again until restated. */
  private refused(line: string, targetName: string, command: CommandPayload, outcome: CommandOutcome): void {
    const target = this.targets.get(`${line}/${targetName}`);
    const { key } = setpointOf(command.action, command.params);
    const setpoint = target?.setpoints[key];
    if (target && setpoint && setpoint.commandId === command.id) {
      if (setpoint.previous === undefined) delete target.setpoints[key];
      else target.setpoints[key] = { ...setpoint, value: setpoint.previous, previous: undefined };
    }
    const intent = this.intents.byCommand(setpointKeyOf({ ...command, line, target: targetName }), command.id);
    if (intent) intent.settled = outcome;
  }

  private giveUp(waiting: Pending, why: string): void {
    this.givenUp.set(waiting.command.id, { command: waiting.command, line: waiting.line, target: waiting.target, attempts: waiting.attempts, why });
    if (this.givenUp.size > GIVEN_UP_KEPT) this.givenUp.delete(this.givenUp.keys().next().value!);
    if (waiting.accepted) this.limited.write('warn', 'completion_timeout', { id: waiting.command.id, target: `${waiting.line}/${waiting.target}` }, `command ${waiting.command.id} to ${waiting.line}/${waiting.target}: ${why}; a later done or failed is still recorded`);
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
