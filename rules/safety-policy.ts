// The actuator-safety policy: whether the winning intent for a setpoint (intents.ts) may be sent to
// its target now, and in what form (docs/rules.md#actuator-safety). Pure: it reads the limits and
// the target's history and returns a decision; the command loop (commands.ts) applies it — records
// the setpoint, sends, counts, logs and publishes the outcome. Checks in order: suspended rule
// (refused for good, unless an intent under way steps toward a safer value), cooldown, minimum dwell, budget
// (each a delay, with the time it ends), max step (a bigger speed change goes one step now),
// oscillation (oscillation.ts).
// Stopping is never delayed by cooldown, dwell or budget: it is the safe direction.
import type { CommandAction } from '../contracts/schemas.js';
import { globMatcher, type ParamValue } from './load.js';
import { countReversals, heldNote, historyWith, isSafer, valuesOf, type OscillationLimits, type SetpointChange } from './oscillation.js';
import type { SafetyDefinition, TargetSafety } from './schema.js';

export { countReversals, type OscillationLimits, type SetpointChange } from './oscillation.js';

export interface CommandRequest {
  ruleId: string;
  priority: number;
  /** The rule instance issuing it (rule id + key); its intent holds until released. */
  holder: string;
  line: string;
  target: string;
  action: CommandAction;
  params: Record<string, ParamValue>;
  ttlMs?: number;
  /** The target's own reading of the setpoint (e.g. its reported speed): the base for maxStep before anything was commanded. */
  current?: number;
}

/** The last value commanded for one setpoint key of a target. */
export interface Setpoint {
  value: ParamValue;
  previous?: ParamValue;
  at: number;
  ruleId: string;
  priority: number;
  commandId: string;
}

/** What the policy knows of one target (`line/device`). */
export interface TargetState {
  lastCommandAt?: number;
  lastPriority?: number;
  /** Send times within the last minute, for the budget. */
  sent: number[];
  setpoints: Record<string, Setpoint>;
  /** Recent setpoint changes per key, for oscillation detection (oscillation.ts). */
  changes: Record<string, SetpointChange[]>;
}

/** The budget counts the commands of the last minute. */
export const BUDGET_WINDOW_MS = 60_000;

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

/** The send times still inside the budget window at `now`. */
export function recentSends(sent: readonly number[], now: number): number[] {
  return sent.filter((at) => now - at < BUDGET_WINDOW_MS);
}

/** How long a ramp waits between steps: the target's dwell or cooldown, at least 1 s. */
export function stepEvery(limits: TargetSafety): number {
  return Math.max(limits.minDwell ?? 0, limits.cooldown ?? 0, 1000);
}

/** The limits per target from a rule set's `safety:` (the first matching `targets` entry over the defaults), looked up once per target. */
export class TargetLimits {
  private readonly byTarget = new Map<string, TargetSafety>();

  constructor(readonly safety: SafetyDefinition) {}

  of(line: string, target: string): TargetSafety {
    const name = `${line}/${target}`;
    let limits = this.byTarget.get(name);
    if (!limits) {
      const entry = Object.entries(this.safety.targets).find(([pattern]) => {
        const [linePattern, devicePattern] = pattern.split('/') as [string, string];
        return globMatcher(linePattern).test(line) && globMatcher(devicePattern).test(target);
      });
      limits = { ...this.safety.defaults, ...(entry?.[1] ?? {}) };
      this.byTarget.set(name, limits);
    }
    return limits;
  }
}

export interface PolicyInput {
  request: CommandRequest;
  now: number;
  limits: TargetSafety;
  oscillation: OscillationLimits;
  /** The target's history; `sent` already trimmed to the budget window (recentSends). */
  target: Readonly<TargetState>;
  /** Until when the request's rule is suspended, if it is now. */
  suspendedUntil: number | undefined;
  /** A command was already sent for this intent: this is its next step toward it (a speed change bigger than maxStep). */
  underWay?: boolean;
}

/** A speed change bigger than maxStep: the first step goes now; the intent's next step follows after the dwell or cooldown. */
export interface Split {
  goal: number;
  stepEveryMs: number;
  note: string;
}

/** The oscillation guard suspends `offender` (the lowest-priority rule involved) until `until`. */
export interface Suspension {
  offender: string;
  until: number;
  key: string;
  reason: string;
}

interface DecisionParts {
  /** The params to send (or record as blocked): the request's, with a clamped speed if split. */
  params: Record<string, ParamValue>;
  split?: Split;
  suspension?: Suspension;
  /** The setpoint key's change history to keep from now on; undefined: unchanged. */
  changes?: SetpointChange[];
}

/** Why a command may not go now; `retryAt`: when the limit allows it (a delay), undefined: refused for good. */
export interface Refusal {
  reason: string;
  retryAt?: number;
}

export type PolicyDecision = (DecisionParts & Refusal & { allowed: false }) | (DecisionParts & { allowed: true; key: string; value: ParamValue; note?: string });

/** Whether the command may go now, and in what form. */
export function decideCommand(input: PolicyInput): PolicyDecision {
  const { request } = input;
  const params = { ...request.params };
  const { key, value } = setpointOf(request.action, params);
  const early = suspendedReason(input, key, value) ?? cooldownReason(input) ?? dwellReason(input, key, value) ?? budgetReason(input);
  if (early !== undefined) return { allowed: false, ...early, params };
  const step = clampStep(input, key, value, params);
  const history = changesSetpoint(input, key, step.value) ? candidateChanges(input, key, step.value) : undefined;
  const suspension = history ? oscillationSuspension(input, key, history, value) : undefined;
  // A rule suspended by its own command: the key's history starts again, and of the setpoint and
  // this command the safer stays (oscillation.ts isSafer) — the command goes out only if it is the safer.
  if (suspension?.offender === request.ruleId) {
    if (!isSafer(key, step.value, input.target.setpoints[key]?.value)) return { allowed: false, reason: `suspended: ${suspension.reason}`, params: step.params, suspension, changes: [] };
    const note = [step.split?.note, `oscillation guard: ${heldNote(key, value)} while rule ${request.ruleId} is suspended`].filter(Boolean).join('; ');
    return { allowed: true, key, value: step.value, params: step.params, note, split: step.split, suspension, changes: [] };
  }
  return { allowed: true, key, value: step.value, params: step.params, note: step.split?.note, split: step.split, suspension, changes: history };
}

function targetName(request: CommandRequest): string {
  return `${request.line}/${request.target}`;
}

/** A rule priority above the one recorded outranks it (and may skip cooldown and dwell). */
function outranks(request: CommandRequest, priority: number | undefined): boolean {
  return priority !== undefined && request.priority > priority;
}

function isUrgent(request: CommandRequest): boolean {
  return request.action === 'stop';
}

/**
 * A suspended rule's intent waits (refused for good until the suspension ends: blocked once, then
 * sent when it ends) — except the next steps of an intent already under way toward a safer value
 * than the current setpoint (the guard's hold, see decideCommand): the reconcile still steps toward it.
 */
function suspendedReason({ request, suspendedUntil, underWay, target }: PolicyInput, key: string, value: ParamValue): Refusal | undefined {
  if (suspendedUntil === undefined) return undefined;
  if (underWay && isSafer(key, value, target.setpoints[key]?.value)) return undefined;
  return { reason: `suspended: rule ${request.ruleId} is suspended for oscillation until ${new Date(suspendedUntil).toISOString()}` };
}

function cooldownReason({ request, now, limits, target }: PolicyInput): Refusal | undefined {
  if (isUrgent(request) || !limits.cooldown || target.lastCommandAt === undefined) return undefined;
  if (now - target.lastCommandAt >= limits.cooldown || outranks(request, target.lastPriority)) return undefined;
  return { reason: `cooldown: ${targetName(request)} was commanded ${now - target.lastCommandAt} ms ago (cooldown ${limits.cooldown} ms)`, retryAt: target.lastCommandAt + limits.cooldown };
}

function dwellReason({ request, now, limits, target }: PolicyInput, key: string, value: ParamValue): Refusal | undefined {
  const setpoint = target.setpoints[key];
  if (isUrgent(request) || !limits.minDwell || !setpoint || setpoint.value === value) return undefined;
  if (now - setpoint.at >= limits.minDwell || outranks(request, setpoint.priority)) return undefined;
  return { reason: `dwell: ${key} of ${targetName(request)} changed ${now - setpoint.at} ms ago (minimum dwell ${limits.minDwell} ms)`, retryAt: setpoint.at + limits.minDwell };
}

function budgetReason({ request, limits, target }: PolicyInput): Refusal | undefined {
  if (isUrgent(request) || !limits.budgetPerMinute || target.sent.length < limits.budgetPerMinute) return undefined;
  // The budget frees up when enough of the last minute's sends (oldest first) leave the window.
  const freedBy = target.sent[target.sent.length - limits.budgetPerMinute] ?? target.sent[0] ?? 0;
  return { reason: `budget: ${targetName(request)} already had ${target.sent.length} commands in the last minute (budget ${limits.budgetPerMinute})`, retryAt: freedBy + BUDGET_WINDOW_MS };
}

/** A set_speed more than maxStep away from the current setpoint (else the target's reading) goes one step now. */
function clampStep({ request, limits, target }: PolicyInput, key: string, value: ParamValue, params: Record<string, ParamValue>): { value: ParamValue; params: Record<string, ParamValue>; split?: Split } {
  if (request.action !== 'set_speed' || !limits.maxStep || typeof value !== 'number') return { value, params };
  const setpointValue = target.setpoints[key]?.value;
  const base = typeof setpointValue === 'number' ? setpointValue : request.current;
  if (base === undefined || base <= 0) return { value, params };
  const clamped = Math.min(base * (1 + limits.maxStep), Math.max(base * (1 - limits.maxStep), value));
  if (Math.abs(clamped - value) <= 1e-9) return { value, params };
  const firstStep = Math.round(clamped * 1000) / 1000;
  const stepEveryMs = stepEvery(limits);
  const note = `speed ${value} split: ${firstStep} now (max step ${Math.round(limits.maxStep * 100)} % from ${base}), then a step every ${stepEveryMs} ms`;
  return { value: firstStep, params: { ...params, speed: firstStep }, split: { goal: value, stepEveryMs, note } };
}

/** Whether the setpoint key changes: a reset is no setpoint, and an unchanged value is no change. */
function changesSetpoint({ target }: PolicyInput, key: string, value: ParamValue): boolean {
  const setpoint = target.setpoints[key];
  return key !== 'reset' && (!setpoint || setpoint.value !== value);
}

/** The candidate history of the key: its changes within the oscillation window, plus this one (oscillation.ts historyWith). */
function candidateChanges(input: PolicyInput, key: string, value: ParamValue): SetpointChange[] {
  const { request, now, oscillation, target } = input;
  return historyWith(target.changes[key] ?? [], { value, from: target.setpoints[key]?.value, ruleId: request.ruleId, priority: request.priority, at: now }, oscillation);
}

/** Would this change (toward `value`, the intent's, before any split) reverse the setpoint's direction too often within the window? Then the lowest-priority rule involved is suspended. */
function oscillationSuspension(input: PolicyInput, key: string, candidate: SetpointChange[], value: ParamValue): Suspension | undefined {
  const { request, now, oscillation, target } = input;
  if (countReversals(valuesOf(candidate)) < oscillation.reversals) return undefined;
  const involved = new Map(candidate.map((change) => [change.ruleId, change.priority]));
  // The lowest-priority rule involved is the offender; a rule fighting itself is its own offender.
  let offender = request.ruleId;
  for (const [ruleId, priority] of involved) if (priority < (involved.get(offender) ?? Infinity)) offender = ruleId;
  const current = target.setpoints[key]?.value;
  // Its own command: the safer of the setpoint and the command stays; else the other (higher-priority) rule's command goes out.
  const outcome =
    offender !== request.ruleId ? `${key} follows rule ${request.ruleId} (priority ${request.priority})` : heldNote(key, isSafer(key, value, current) || current === undefined ? value : current);
  const reason = `${key} of ${targetName(request)} reversed direction ${oscillation.reversals} times within ${oscillation.window} ms (rules: ${[...involved.keys()].join(', ')}); ${outcome}`;
  return { offender, until: now + oscillation.suspendFor, key, reason };
}
