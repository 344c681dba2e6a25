// Commands as a closed loop: intents in, commands out, acks back (docs/rules.md#intents).
//
// A rule states what it wants of a setpoint (intents.ts); per setpoint the loop drives the device
// towards the winning intent: whether a command may go now is the actuator-safety policy's decision
// (safety-policy.ts). A limit that only delays it (cooldown, dwell, budget, the next step of a
// speed change bigger than maxStep) is reported once (`deferred … until T`) and the then winning
// intent is sent when it allows; only what is refused for good (a suspended rule) is `blocked`.
// A sent command waits for its acks in pending-commands.ts (retry, expiry, completion timeout,
// late outcomes); a device reporting another setpoint than it acknowledged is found by
// setpoint-reports.ts and commanded again here; command-publisher.ts puts commands and outcomes
// on the bus.
import type { AckPayload, CommandOutcome, CommandPayload } from '../contracts/schemas.js';
import { logger } from '../lib/log.js';
import { LogLimiter } from '../lib/log-limit.js';
import { CommandPublisher } from './command-publisher.js';
import type { CommandCenterOptions, CommandCenterSnapshot } from './command-types.js';
import { PendingCommands } from './pending-commands.js';
import type { DeviceEvent } from './device-table.js';
import { IntentTable, setpointKeyOf, type Intent } from './intents.js';
import { sameValue, SetpointReports } from './setpoint-reports.js';
import type { ParamValue } from './load.js';
import type { SafetyDefinition, TargetSafety } from './schema.js';
import { decideCommand, recentSends, setpointOf, TargetLimits, type CommandRequest, type PolicyDecision, type Refusal, type TargetState } from './safety-policy.js';

export type { CommandRequest } from './safety-policy.js';
export type { CommandCenterOptions, CommandCenterSnapshot, CommandEvent, DeferEvent, OutcomeEvent } from './command-types.js';

const log = logger('rules');

/** The first word of a refusal (`cooldown`, `dwell`, `budget`, `suspended`), which names its counter. */
function limitOf(reason: string): string {
  const [kind = reason] = reason.split(':', 1);
  return kind.replace(/ /g, '_');
}

export class CommandCenter {
  private targets = new Map<string, TargetState>();
  private readonly intents = new IntentTable();
  private suspended = new Map<string, number>();
  /** Intents whose last command expired (never reached the device): sent again when it speaks. */
  private readonly expiredKeys = new Set<string>();
  private readonly pending: PendingCommands;
  private readonly reports: SetpointReports;
  private readonly publisher: CommandPublisher;
  private nextId = 0;
  private limits: TargetLimits;
  private readonly limited: LogLimiter;

  constructor(private readonly options: CommandCenterOptions) {
    this.limits = new TargetLimits(options.safety);
    this.limited = new LogLimiter(log, { now: () => options.clock.now() });
    this.publisher = new CommandPublisher({ bus: options.bus, lineNow: options.lineNow, count: options.count, onOutcome: options.onEvent });
    this.pending = new PendingCommands({
      settings: options.settings,
      now: () => options.clock.now(),
      count: options.count,
      publisher: this.publisher,
      took: (line, target, command, ts, late) => this.took(line, target, command, ts, late),
      refused: (line, target, command, outcome) => this.refused(line, target, command, outcome),
    });
    this.reports = new SetpointReports({
      recommandLimit: options.settings.recommandLimit,
      now: () => options.clock.now(),
      count: options.count,
      recommand: (line, target, key, value) => this.recommand(line, target, key, value),
    });
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
      underWay: intent.commandId !== undefined,
    });
    if (decision.suspension) this.suspend(req, decision.suspension);
    if (decision.changes) target.changes[setpointKey] = decision.changes;
    if (!decision.allowed) {
      if (decision.retryAt === undefined) this.block(intent, decision.params, decision.reason);
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

  /** Refused for good (a suspended rule): counted, published as a `blocked` outcome (at its line's event time) and logged, once per intent; it is tried again while it wins. */
  private block(intent: Intent, params: Record<string, ParamValue>, reason: string): void {
    if (intent.blockedReported) return;
    intent.blockedReported = true;
    const req = intent.request;
    const id = `${this.options.idPrefix}-${++this.nextId}`;
    this.options.count(`blocked_${limitOf(reason)}`);
    this.limited.write('warn', 'command_blocked', { rule: req.ruleId, target: `${req.line}/${req.target}`, action: req.action }, `command ${req.action} to ${req.line}/${req.target} from rule ${req.ruleId} blocked: ${reason}`);
    const at = this.options.lineNow(req.line);
    this.publisher.record(req.line, req.target, { id, action: req.action, params, origin: `rule:${req.ruleId}`, ts: at, expiresAt: at }, 'blocked', 0, reason, at);
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
    // Stamped in its line's event time, expiresAt too (a device judges it by its own clock); the
    // engine's own expiry is `ttl` of engine time from now (pending-commands.ts).
    const ttlMs = req.ttlMs ?? this.options.settings.commandTtlMs;
    const at = this.options.lineNow(req.line);
    const command: CommandPayload = { id, action: req.action, params, origin: `rule:${req.ruleId}`, ts: at, expiresAt: at + ttlMs };
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
    if (!this.options.shadow) this.pending.add(command, req.line, req.target, ttlMs);
    this.options.count('commands_sent');
    this.options.onEvent({ type: 'command', line: req.line, target: req.target, command, note });
    this.publisher.send(req.line, req.target, command);
    // No device answers a shadow command: it is what the device has from now on, as if done.
    if (this.options.shadow) this.publisher.record(req.line, req.target, command, 'shadow', 1, undefined, at);
  }

  onAck(line: string, device: string, ack: AckPayload): void {
    this.pending.onAck(line, device, ack);
  }

  /** The device took a command: what it should report from now; one given up on is, unless a newer command changed the setpoint since, what was commanded. */
  private took(line: string, targetName: string, command: CommandPayload, ts: number, late: boolean): void {
    this.reports.acknowledge(line, targetName, command, ts);
    if (!late) return;
    const { key, value } = setpointOf(command.action, command.params);
    const setpoint = this.targets.get(`${line}/${targetName}`)?.setpoints[key];
    if (setpoint?.commandId === command.id) setpoint.value = value;
    const intent = this.intents.byCommand(setpointKeyOf({ ...command, line, target: targetName }), command.id);
    if (intent) intent.settled = undefined;
  }

  /** Retries, expiries, completion timeouts and the intents a limit delayed; called by the engine's tick. */
  tick(): void {
    const now = this.options.clock.now();
    for (const key of this.intents.keys()) this.reconcile(key, now);
    this.pending.tick(now);
  }

  /** A device's message: a setpoint it reports other than the one it acknowledged is commanded again (bounded). */
  reported(event: DeviceEvent): void {
    if (this.options.shadow) return; // the live engine drives the devices; a shadow never re-commands
    this.reports.judge(event);
    if (this.expiredKeys.size > 0) this.retryExpired(event);
  }

  /**
   * A command that expired was not refused by the device, it never got there (offline, lost): its
   * intent is sent again once the device is heard from, not dropped (cheap when none expired).
   */
  private retryExpired(event: DeviceEvent): void {
    const prefix = `${event.line}/${event.device}|`;
    for (const key of this.expiredKeys) {
      if (!key.startsWith(prefix)) continue;
      this.expiredKeys.delete(key);
      const intent = this.intents.winner(key);
      if (intent?.settled !== 'expired') continue;
      intent.settled = undefined;
      this.options.count('expired_resent');
      this.reconcile(key, this.options.clock.now());
    }
  }

  /** What the device has is the base from now on: the winning intent differs from it and is sent (within the limits). */
  private recommand(line: string, targetName: string, setpointKey: string, value: ParamValue): void {
    const setpoint = this.targets.get(`${line}/${targetName}`)?.setpoints[setpointKey];
    if (setpoint) {
      setpoint.value = value;
      setpoint.previous = undefined;
    }
    this.reconcile(`${line}/${targetName}|${setpointKey}`, this.options.clock.now());
  }

  snapshot(): CommandCenterSnapshot {
    return {
      targets: Object.fromEntries(this.targets),
      suspended: Object.fromEntries(this.suspended),
      ...this.pending.snapshot(),
      intents: this.intents.snapshot(),
      acknowledged: this.reports.snapshot(),
      nextId: this.nextId,
    };
  }

  restore(snapshot: CommandCenterSnapshot): void {
    this.targets = new Map(Object.entries(snapshot.targets));
    this.suspended = new Map(Object.entries(snapshot.suspended));
    this.pending.restore(snapshot.pending, snapshot.givenUp);
    this.intents.restore(snapshot.intents);
    this.reports.restore(snapshot.acknowledged);
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

  /** A command that was rejected, failed or never arrived did not change the setpoint; its intent is not sent again until restated, or — expired — until the device is heard from again (retryExpired). */
  private refused(line: string, targetName: string, command: CommandPayload, outcome: CommandOutcome): void {
    const target = this.targets.get(`${line}/${targetName}`);
    const { key } = setpointOf(command.action, command.params);
    const setpoint = target?.setpoints[key];
    if (target && setpoint && setpoint.commandId === command.id) {
      if (setpoint.previous === undefined) delete target.setpoints[key];
      else target.setpoints[key] = { ...setpoint, value: setpoint.previous, previous: undefined };
    }
    const intentKey = setpointKeyOf({ ...command, line, target: targetName });
    const intent = this.intents.byCommand(intentKey, command.id);
    if (intent) intent.settled = outcome;
    if (intent && outcome === 'expired') this.expiredKeys.add(intentKey);
  }
}
