// What a rule instance does when it fires and when it clears: raise and clear its alerts on
// lw/{line}/alerts (and through the alarm desk, their alarm states), state its commands as
// intents to the command loop (commands.ts: what it wants while active, and from onClear what it
// wants after), and the critical alert of a rule the oscillation guard suspends — cleared when the
// suspension ends (the rule's waiting intents are then sent by the command loop's reconcile: the resume).
import { createHash } from 'node:crypto';
import type { Bus } from '../bus/bus.js';
import type { AlertPayload } from '../contracts/schemas.js';
import { DELIVERY, isValidId, topics } from '../contracts/topics.js';
import { logger } from '../lib/log.js';
import { LogLimiter } from '../lib/log-limit.js';
import type { AlarmDesk } from './alarm-desk.js';
import type { Clock } from './clock.js';
import type { CommandCenter, CommandEvent, DeferEvent, OutcomeEvent } from './commands.js';
import type { DeviceTable } from './device-table.js';
import type { Scope } from './expr.js';
import type { Instance } from './instance-state.js';
import type { CompiledCommand, CompiledRule } from './load.js';

const log = logger('rules');

export interface AlertEvent {
  type: 'alert';
  line: string;
  alert: AlertPayload;
}

export interface SuspendEvent {
  type: 'suspended';
  line: string;
  ruleId: string;
  target: string;
  until: number;
  reason: string;
}

export type EngineEvent = CommandEvent | OutcomeEvent | DeferEvent | AlertEvent | SuspendEvent;

export interface RuleActionsOptions {
  bus: Bus;
  clock: Clock;
  /** The line's event time, which alerts are stamped in (docs/rules.md#which-time). */
  lineNow: (line: string) => number;
  commands: CommandCenter;
  devices: DeviceTable;
  /** Every alert raised or cleared drives its alarm's state (rules/alarms.ts). */
  alarms: AlarmDesk;
  count: (counter: string) => void;
  onEvent?: (event: EngineEvent) => void;
}

/** The alerts' message field is at most this long (contracts/schemas.ts). */
const ALERT_MESSAGE_CHARS = 1024;

/** `rule:line/device`, within the alert schema's 128 characters (long ids get a hash of the key). */
export function alertId(ruleId: string, key: string): string {
  const id = `${ruleId}:${key}`;
  return id.length <= 128 ? id : `${ruleId}:${createHash('sha1').update(key).digest('hex').slice(0, 16)}`;
}

/** The setpoint holder of a rule instance in the command loop. */
export function holderOf(rule: CompiledRule, instance: Instance): string {
  return `${rule.id}|${instance.key}`;
}

export class RuleActions {
  /** Rules suspended by the oscillation guard, with their raised alert (none for a suspension restored from the state file). */
  private readonly suspensions = new Map<string, { line: string; alert: AlertPayload } | undefined>();
  private readonly limited: LogLimiter;

  constructor(private readonly options: RuleActionsOptions) {
    this.limited = new LogLimiter(log, { now: () => options.clock.now() });
  }

  /** The instance became active: its actions run (alerts raised, stamped in its line's event time; commands issued). */
  fire(rule: CompiledRule, instance: Instance, scope: Scope): void {
    for (const action of rule.actions) {
      if (action.kind === 'command') {
        this.command(rule, instance, action, scope, 'active');
        continue;
      }
      const alert: AlertPayload = {
        id: alertId(rule.id, instance.key),
        rule: rule.id,
        severity: action.severity,
        state: 'raised',
        message: action.message(scope).slice(0, ALERT_MESSAGE_CHARS),
        ...(instance.device ? { device: instance.device } : {}),
        ts: this.options.lineNow(instance.line),
      };
      instance.alert = alert;
      this.publishAlert(instance.line, alert);
    }
  }

  /**
   * The instance went idle: its alert clears, its onClear commands state what it wants after
   * (unless the rule itself went away), and its active intents end.
   */
  clear(rule: CompiledRule, instance: Instance, scope: Scope, runOnClear: boolean): void {
    if (instance.alert) {
      this.publishAlert(instance.line, { ...instance.alert, state: 'cleared', ts: this.options.lineNow(instance.line) });
      instance.alert = undefined;
    }
    if (runOnClear) for (const action of rule.onClear) this.command(rule, instance, action, scope, 'after');
    this.options.commands.release(holderOf(rule, instance));
  }

  /** The oscillation guard suspended a rule: a critical alert says until when and why. */
  suspended(suspension: { ruleId: string; line: string; target: string; until: number; reason: string }): void {
    const { ruleId, line, target, until, reason } = suspension;
    this.options.onEvent?.({ type: 'suspended', line, ruleId, target, until, reason });
    const alert: AlertPayload = {
      id: `oscillation:${ruleId}`,
      rule: ruleId,
      severity: 'critical',
      state: 'raised',
      message: `rule ${ruleId} suspended until ${new Date(until).toISOString()}: ${reason}`.slice(0, ALERT_MESSAGE_CHARS),
      device: target,
      ts: this.options.lineNow(line),
    };
    this.suspensions.set(ruleId, { line, alert });
    this.publishAlert(line, alert);
  }

  /**
   * The rules whose oscillation suspension has ended since the last call (the engine's tick asks);
   * their alert is cleared. Nothing is re-sent here: the rule's intents waited while it was
   * suspended, and the command loop's next reconcile sends the winning ones (commands.ts). Suspensions restored from the state file are followed too (their
   * alert, raised before the restart, is not known here).
   */
  endedSuspensions(): string[] {
    for (const ruleId of Object.keys(this.options.commands.suspendedRules())) if (!this.suspensions.has(ruleId)) this.suspensions.set(ruleId, undefined);
    const ended: string[] = [];
    for (const [ruleId, raised] of this.suspensions) {
      if (this.options.commands.isSuspended(ruleId)) continue;
      this.suspensions.delete(ruleId);
      ended.push(ruleId);
      const message = `rule ${ruleId} resumed after its oscillation suspension`;
      if (raised) this.publishAlert(raised.line, { ...raised.alert, state: 'cleared', message, ts: this.options.lineNow(raised.line) });
      else this.clearRestoredOscillationAlarm(ruleId, message);
      log.info({ rule: ruleId }, `oscillation: rule ${ruleId} resumes`);
    }
    return ended;
  }

  /**
   * A suspension restored from the state file: its alert was raised before the restart, and the
   * alarm desk (restored from the same file, or read back from the broker) still holds its alarm;
   * that alarm returns to normal like any other.
   */
  private clearRestoredOscillationAlarm(ruleId: string, message: string): void {
    const id = `oscillation:${ruleId}`;
    for (const { line, alarm } of this.options.alarms.all()) {
      if (alarm.id !== id) continue;
      this.publishAlert(line, { id, rule: alarm.rule, severity: alarm.severity, state: 'cleared', message, ...(alarm.device ? { device: alarm.device } : {}), ts: this.options.lineNow(line) });
    }
  }

  /** One command action as an intent of the instance: `active` from its actions, `after` from onClear. */
  private command(rule: CompiledRule, instance: Instance, action: CompiledCommand, scope: Scope, phase: 'active' | 'after'): void {
    const target = action.target(scope);
    if (target === undefined) {
      // None: a placeholder of the target has no value, e.g. `{upstream(device)}` of the first station.
      this.options.count('targets_none');
      this.limited.write('warn', 'target_none', { rule: rule.id, key: instance.key }, `rule ${rule.id} (${instance.key}): its command target evaluates to none (a {placeholder} with no value, e.g. upstream() of the first station of the flow); no ${action.action} command is sent`);
      return;
    }
    if (!isValidId(target)) {
      // Refused for good: no outcome can be published for a target that is no device id.
      this.options.count('bad_targets');
      this.limited.write('error', 'bad_target', { rule: rule.id, target }, `rule ${rule.id}: command target "${target}" is not a device id; the command is blocked; fix the rule's target`);
      return;
    }
    const targetRecord = this.options.devices.get(instance.line, target);
    const params = action.params({ ...scope, target: targetRecord?.values ?? {} });
    this.options.commands.issue({
      ruleId: rule.id,
      priority: rule.priority,
      holder: holderOf(rule, instance),
      line: instance.line,
      target,
      action: action.action,
      params,
      ttlMs: action.ttlMs,
      // The base for maxStep before anything was commanded: the target's reported setpoint, else its speed.
      current: targetRecord?.values.speedSetpoint ?? targetRecord?.values.setpoint ?? targetRecord?.values.speed,
    }, phase);
  }

  private publishAlert(line: string, alert: AlertPayload): void {
    this.options.count(alert.state === 'raised' ? 'alerts_raised' : 'alerts_cleared');
    this.options.onEvent?.({ type: 'alert', line, alert });
    this.options.alarms.alert(line, alert);
    this.options.bus.publish(topics.alerts(line), JSON.stringify(alert), DELIVERY.alert).catch((err: unknown) => {
      this.options.count('publish_errors');
      log.warn({ err: (err as Error).message, alert: alert.id }, 'could not publish an alert');
    });
  }
}
