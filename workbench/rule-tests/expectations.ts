// A rule test's expectations against the timeline of a run, pure: each expectation is met or not,
// and when not, the first mismatch in words — what was expected, what came instead — and the time
// the report shows the timeline around, e.g. `expected a command to line-ctl set_speed speed ≤ 25
// between 30s and 2m; got none; line-ctl got set_speed 32 at 1m43.9s`.
import { globMatcher } from '../../rules/glob.js';
import type { AlarmEntry, ScenarioRunResult, TimelineEntry } from '../scenario-run.js';
import type { AlarmExpectation, CommandExpectation, CountExpectation, Expectation, NoCommandExpectation, SetpointExpectation, ValueCondition } from './format.js';

/** What a run left to judge: its timeline, alarm states, what each device said last, how long it ran. */
export interface RunRecord {
  timeline: readonly TimelineEntry[];
  alarms: readonly AlarmEntry[];
  devices: ScenarioRunResult['devices'];
  durationMs: number;
}

export interface Verdict {
  ok: boolean;
  /** The expectation in words: `a command to line-ctl set_speed speed ≤ 25 between 30s and 2m`. */
  expected: string;
  /** When not met: what the run did instead. */
  mismatch?: string;
  /** Where in the run (simulated ms) the report shows the timeline. */
  focusAt: number;
}

/** `41s`, `59.9s`, `2m`, `1m43.9s`, `1h2m`: simulated time since the start. */
export function formatTime(ms: number): string {
  if (!Number.isFinite(ms)) return 'the end';
  const tenths = Math.round(ms / 100);
  const hours = Math.floor(tenths / 36_000);
  const minutes = Math.floor((tenths % 36_000) / 600);
  const seconds = (tenths % 600) / 10;
  const parts = [hours > 0 ? `${hours}h` : '', minutes > 0 ? `${minutes}m` : '', seconds > 0 || (hours === 0 && minutes === 0) ? `${seconds}s` : ''];
  return parts.join('');
}

// ---- values ----

type Scalar = number | string | boolean;

export function conditionMet(value: Scalar | undefined, condition: ValueCondition): boolean {
  if (value === undefined) return false;
  if (condition === 'any') return true;
  if (typeof condition !== 'object') return value === condition;
  const n = typeof value === 'number' ? value : undefined;
  if (condition.eq !== undefined && value !== condition.eq) return false;
  if (condition.ne !== undefined && value === condition.ne) return false;
  if (condition.lt !== undefined && !(n !== undefined && n < condition.lt)) return false;
  if (condition.lte !== undefined && !(n !== undefined && n <= condition.lte)) return false;
  if (condition.gt !== undefined && !(n !== undefined && n > condition.gt)) return false;
  if (condition.gte !== undefined && !(n !== undefined && n >= condition.gte)) return false;
  return true;
}

/** `speed 40`, `speed ≤ 25`, `speed > 10 and < 30`, `speed (any)`. */
export function describeCondition(key: string, condition: ValueCondition): string {
  if (condition === 'any') return `${key} (any)`;
  if (typeof condition !== 'object') return `${key} ${String(condition)}`;
  const symbols: [keyof typeof condition, string][] = [['eq', '='], ['ne', '≠'], ['lt', '<'], ['lte', '≤'], ['gt', '>'], ['gte', '≥']];
  const parts = symbols.filter(([k]) => condition[k] !== undefined).map(([k, symbol]) => `${symbol} ${String(condition[k])}`);
  return `${key} ${parts.join(' and ')}`;
}

// ---- windows ----

interface Window {
  from: number;
  to: number;
}

function windowOf(spec: { within?: [number, number]; by?: number }, durationMs: number): Window {
  if (spec.within) return { from: spec.within[0], to: spec.within[1] };
  if (spec.by !== undefined) return { from: 0, to: spec.by };
  return { from: 0, to: durationMs };
}

function describeWindow(spec: { within?: [number, number]; by?: number }): string {
  if (spec.within) return ` between ${formatTime(spec.within[0])} and ${formatTime(spec.within[1])}`;
  if (spec.by !== undefined) return ` by ${formatTime(spec.by)}`;
  return '';
}

const inWindow = (at: number, w: Window): boolean => at >= w.from && at <= w.to;
const distance = (at: number, w: Window): number => (inWindow(at, w) ? 0 : Math.min(Math.abs(at - w.from), Math.abs(at - w.to)));

// ---- commands ----

/** A command of the run: sent (with its outcomes), or blocked (never sent). */
export interface CommandRecord {
  at: number;
  id: string;
  target: string;
  action: string;
  params: Record<string, Scalar>;
  origin: string;
  outcomes: string[];
  sent: boolean;
}

export function commandsOf(timeline: readonly TimelineEntry[]): CommandRecord[] {
  const byId = new Map<string, CommandRecord>();
  const out: CommandRecord[] = [];
  for (const { at, event } of timeline) {
    if (event.type === 'command') {
      const known = byId.get(event.command.id);
      if (known) continue; // the same command again (a re-send keeps its id)
      const record = { at, id: event.command.id, target: event.target, action: event.command.action, params: event.command.params, origin: event.command.origin, outcomes: [], sent: true };
      byId.set(record.id, record);
      out.push(record);
    } else if (event.type === 'outcome') {
      const o = event.outcome;
      const known = byId.get(o.id);
      if (known) known.outcomes.push(o.outcome);
      else if (o.outcome === 'blocked') out.push({ at, id: o.id, target: o.target, action: o.action, params: o.params, origin: o.origin, outcomes: ['blocked'], sent: false });
    }
  }
  return out;
}

/** `set_speed 32`, `stop`, `set_strategy energy-saving`; several params as name=value. */
function describeCommand(c: CommandRecord): string {
  const params = Object.entries(c.params);
  if (params.length === 0) return c.action;
  if (params.length === 1) return `${c.action} ${String(params[0]![1])}`;
  return `${c.action} ${params.map(([k, v]) => `${k}=${String(v)}`).join(' ')}`;
}

type CommandMatch = Pick<CommandExpectation, 'target' | 'action' | 'params' | 'rule'>;

function commandMatches(c: CommandRecord, spec: CommandMatch): boolean {
  if (!globMatcher(spec.target).test(c.target)) return false;
  if (spec.action !== undefined && c.action !== spec.action) return false;
  if (spec.rule !== undefined && c.origin !== `rule:${spec.rule}`) return false;
  return Object.entries(spec.params ?? {}).every(([key, condition]) => conditionMet(c.params[key], condition));
}

function describeCommandMatch(spec: CommandMatch): string {
  const params = Object.entries(spec.params ?? {}).map(([k, c]) => ` ${describeCondition(k, c)}`);
  return `${spec.target}${spec.action ? ` ${spec.action}` : ''}${params.join(',')}${spec.rule ? ` from rule ${spec.rule}` : ''}`;
}

/** What else the target got — of that action if it got any, else any — nearest the window first (at most 3, in time order). */
function nearMisses(commands: CommandRecord[], spec: CommandMatch, w: Window, withOutcomes: boolean): { text: string; at?: number } {
  const target = globMatcher(spec.target);
  const toTarget = commands.filter((c) => target.test(c.target));
  if (toTarget.length === 0) return { text: `${spec.target} got no command at all` };
  const sameAction = toTarget.filter((c) => c.action === spec.action);
  const others = sameAction.length > 0 ? sameAction : toTarget;
  const nearest = [...others].sort((a, b) => distance(a.at, w) - distance(b.at, w) || a.at - b.at).slice(0, 3).sort((a, b) => a.at - b.at);
  const what = nearest.map((c) => `${describeCommand(c)} at ${formatTime(c.at)}${withOutcomes ? ` (${c.outcomes.join(', ') || 'no outcome'})` : ''}${c.sent ? '' : ' (blocked, not sent)'}`);
  return { text: `${spec.target} got ${what.join(', ')}${others.length > nearest.length ? ` (${others.length} in all)` : ''}`, at: nearest[0]!.at };
}

function checkCommand(spec: CommandExpectation, run: RunRecord, commands: CommandRecord[]): Verdict {
  const w = windowOf(spec, run.durationMs);
  const expected = `a command to ${describeCommandMatch(spec)}${describeWindow(spec)}${spec.outcome ? ` with outcome ${spec.outcome}` : ''}`;
  const wantsBlocked = spec.outcome === 'blocked';
  const found = commands.find((c) => c.sent !== wantsBlocked && commandMatches(c, spec) && inWindow(c.at, w) && (spec.outcome === undefined || c.outcomes.includes(spec.outcome)));
  if (found) return { ok: true, expected, focusAt: found.at };
  const near = nearMisses(commands, spec, w, spec.outcome !== undefined);
  return { ok: false, expected, mismatch: `got none; ${near.text}`, focusAt: near.at ?? w.from };
}

function checkNoCommand(spec: NoCommandExpectation, run: RunRecord, commands: CommandRecord[]): Verdict {
  const w = windowOf(spec, run.durationMs);
  const expected = `no command to ${describeCommandMatch(spec)}${describeWindow(spec)}`;
  const offending = commands.filter((c) => c.sent && commandMatches(c, spec) && inWindow(c.at, w));
  if (offending.length === 0) return { ok: true, expected, focusAt: w.from };
  const first = offending[0]!;
  const more = offending.length > 1 ? ` (and ${offending.length - 1} more)` : '';
  return { ok: false, expected, mismatch: `got ${first.target} ${describeCommand(first)} at ${formatTime(first.at)} from ${first.origin}${more}`, focusAt: first.at };
}

function checkCount(spec: CountExpectation, run: RunRecord, commands: CommandRecord[]): Verdict {
  const w = windowOf(spec, run.durationMs);
  const bounds = [spec.atLeast !== undefined ? `at least ${spec.atLeast}` : '', spec.atMost !== undefined ? `at most ${spec.atMost}` : ''].filter(Boolean).join(' and ');
  const expected = `${bounds} commands to ${describeCommandMatch(spec)}${spec.per !== undefined ? ` in any ${formatTime(spec.per)}` : ''}${describeWindow(spec)}`;
  const times = commands.filter((c) => c.sent && commandMatches(c, spec) && inWindow(c.at, w)).map((c) => c.at);
  // The busiest stretch: with `per`, the most commands in [t, t + per) over every command's time t.
  let most = times.length;
  let busiest: Window = times.length > 0 ? { from: times[0]!, to: times[times.length - 1]! } : w;
  if (spec.per !== undefined) {
    most = 0;
    for (let i = 0, j = 0; i < times.length; i++) {
      while (j < times.length && times[j]! < times[i]! + spec.per) j++;
      if (j - i > most) {
        most = j - i;
        busiest = { from: times[i]!, to: times[j - 1]! };
      }
    }
  }
  const where = most === 0 ? '' : spec.per !== undefined || most > 1 ? ` between ${formatTime(busiest.from)} and ${formatTime(busiest.to)}` : ` (at ${formatTime(busiest.from)})`;
  const got = `got ${spec.per !== undefined && spec.atMost === undefined ? 'at most ' : ''}${most}${where}`;
  if (spec.atMost !== undefined && most > spec.atMost) return { ok: false, expected, mismatch: got, focusAt: busiest.from };
  if (spec.atLeast !== undefined && most < spec.atLeast) return { ok: false, expected, mismatch: got, focusAt: most > 0 ? busiest.from : w.from };
  return { ok: true, expected, focusAt: w.from };
}

// ---- alarms ----

interface AlarmRecord {
  at: number;
  id: string;
  rule: string;
  device?: string;
  state: AlarmExpectation['state'];
}

/** Raised and cleared from the rules' alerts; acknowledged and normal from the alarm states the engine published. */
export function alarmsOf(run: Pick<RunRecord, 'timeline' | 'alarms'>): AlarmRecord[] {
  const out: AlarmRecord[] = [];
  for (const { at, event } of run.timeline) {
    if (event.type === 'alert' && (event.alert.state === 'raised' || event.alert.state === 'cleared')) out.push({ at, id: event.alert.id, rule: event.alert.rule, device: event.alert.device, state: event.alert.state });
  }
  for (const { at, alarm } of run.alarms) {
    const state = alarm.transition === 'ack' ? 'acknowledged' : alarm.state === 'normal' ? 'normal' : undefined;
    if (state) out.push({ at, id: alarm.id, rule: alarm.rule, device: alarm.device, state });
  }
  return out.sort((a, b) => a.at - b.at);
}

function alarmSelected(a: AlarmRecord, spec: AlarmExpectation): boolean {
  if (spec.id !== undefined && !globMatcher(spec.id).test(a.id)) return false;
  if (spec.rule !== undefined && a.rule !== spec.rule) return false;
  return spec.device === undefined || (a.device !== undefined && globMatcher(spec.device).test(a.device));
}

function describeAlarm(spec: AlarmExpectation): string {
  return `${spec.id !== undefined ? ` ${spec.id}` : ''}${spec.rule !== undefined ? ` of rule ${spec.rule}` : ''}${spec.device !== undefined ? ` on ${spec.device}` : ''} ${spec.state}${describeWindow(spec)}`;
}

function checkAlarm(spec: AlarmExpectation, run: RunRecord, alarms: AlarmRecord[]): Verdict {
  const w = windowOf(spec, run.durationMs);
  const expected = `an alarm${describeAlarm(spec)}`;
  const found = alarms.find((a) => alarmSelected(a, spec) && a.state === spec.state && inWindow(a.at, w));
  if (found) return { ok: true, expected, focusAt: found.at };
  const same = alarms.filter((a) => alarmSelected(a, spec));
  const list = (records: AlarmRecord[]): string => records.slice(0, 4).map((a) => `${a.id} ${a.state} at ${formatTime(a.at)}`).join(', ') + (records.length > 4 ? ` (${records.length} in all)` : '');
  if (same.length > 0) return { ok: false, expected, mismatch: `got none; that alarm: ${list(same)}`, focusAt: same[0]!.at };
  const raised = alarms.filter((a) => a.state === 'raised');
  return { ok: false, expected, mismatch: `got none; no such alarm at all${raised.length > 0 ? `; raised: ${list(raised)}` : '; no alarm was raised'}`, focusAt: w.from };
}

function checkNoAlarm(spec: AlarmExpectation, run: RunRecord, alarms: AlarmRecord[]): Verdict {
  const w = windowOf(spec, run.durationMs);
  const expected = `no alarm${describeAlarm(spec)}`;
  const offending = alarms.filter((a) => alarmSelected(a, spec) && a.state === spec.state && inWindow(a.at, w));
  if (offending.length === 0) return { ok: true, expected, focusAt: w.from };
  const first = offending[0]!;
  return { ok: false, expected, mismatch: `got ${first.id} ${first.state} at ${formatTime(first.at)}${offending.length > 1 ? ` (and ${offending.length - 1} more)` : ''}`, focusAt: first.at };
}

// ---- setpoints at the end ----

/** The reading a setpoint key reads: `speed` is the device's speedSetpoint (else setpoint, else speed); state, strategy and reason its last state. */
function reported(device: RunRecord['devices'][string] | undefined, key: string): { value?: Scalar; from: string } {
  if (key === 'state' || key === 'strategy' || key === 'reason') return { value: device?.state?.[key], from: `${key} of its last state` };
  const values = device?.values ?? {};
  const names = key === 'speed' ? ['speedSetpoint', 'setpoint', 'speed'] : [key];
  const name = names.find((n) => values[n] !== undefined) ?? names[0]!;
  return { value: values[name], from: name };
}

function checkSetpoint(spec: SetpointExpectation, run: RunRecord): Verdict {
  const { device: id, ...wanted } = spec;
  const conditions = Object.entries(wanted) as [string, ValueCondition][];
  const expected = `${id} to report ${conditions.map(([k, c]) => describeCondition(k, c)).join(' and ')} at the end`;
  const device = run.devices[id];
  if (!device) return { ok: false, expected, mismatch: `${id} reported nothing`, focusAt: run.durationMs };
  for (const [key, condition] of conditions) {
    const { value, from } = reported(device, key);
    if (!conditionMet(value, condition)) {
      const said = value === undefined ? `it never reported ${from}` : `it reported ${key} ${String(value)}${from !== key ? ` (${from})` : ''}`;
      return { ok: false, expected, mismatch: said, focusAt: run.durationMs };
    }
  }
  return { ok: true, expected, focusAt: run.durationMs };
}

/** Judges every expectation of a case against its run, in order. */
export function checkExpectations(expectations: readonly Expectation[], run: RunRecord): Verdict[] {
  const commands = commandsOf(run.timeline);
  const alarms = alarmsOf(run);
  return expectations.map((e) => {
    switch (e.kind) {
      case 'command':
        return checkCommand(e.spec, run, commands);
      case 'no-command':
        return checkNoCommand(e.spec, run, commands);
      case 'count':
        return checkCount(e.spec, run, commands);
      case 'alarm':
        return checkAlarm(e.spec, run, alarms);
      case 'no-alarm':
        return checkNoAlarm(e.spec, run, alarms);
      case 'setpoint':
        return checkSetpoint(e.spec, run);
    }
  });
}
