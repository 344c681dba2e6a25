// The alarm state machine (ISA-18.2), pure: no bus, no clock, no I/O (docs/rules.md, "Alarm states").
//
//   raise ──► active-unacked ──ack──► active-acked
//                  │ return               │ return
//                  ▼                      ▼
//             rtn-unacked ────ack────► normal (gone: its retained topic is emptied)
//
// A raise of an alarm that is active already changes nothing (a restart does not raise it twice);
// a raise of a returned, unacknowledged one makes it active-unacked again. An operator's `clear`
// takes any state to normal (the rule raises it again only on its next activation). Shelving is
// apart from the state: `shelvedUntil` hides the alarm from the active list until then (or an
// unshelve), whatever happens to its condition meanwhile.
import { alarmTopicId, type AlarmPayload, type AlertPayload } from '../contracts/index.js';

/** An alarm with the line it belongs to (the line is in its topic, not its payload). */
export interface LineAlarm {
  line: string;
  alarm: AlarmPayload;
}

export interface OperatorAct {
  operator: string;
  comment?: string;
}

export type AlarmEvent =
  /** The rule's instance became active; the alert gives severity, message and device. */
  | { type: 'raise'; alert: AlertPayload }
  /** The rule's instance cleared: the condition returned to normal. */
  | { type: 'return' }
  | ({ type: 'ack' | 'clear' | 'unshelve' } & OperatorAct)
  | ({ type: 'shelve'; forMs: number } & OperatorAct)
  /** The shelving time ran out. */
  | { type: 'shelve-expired' };

export type AlarmStep =
  /** The new state to publish; `rev` is the previous + 1. */
  | { kind: 'changed'; alarm: AlarmPayload }
  /** Nothing to do (e.g. a raise of an active alarm, a return of a normal one); why, for the log. */
  | { kind: 'unchanged'; why: string }
  /** An operator's request that cannot apply (no such alarm); the error says why and what to do. */
  | { kind: 'refused'; error: string };

/** Whether the alarm's condition is active. */
export function isActive(alarm: AlarmPayload): boolean {
  return alarm.state === 'active-unacked' || alarm.state === 'active-acked';
}

/** Whether the alarm is shelved at `now`. */
export function isShelved(alarm: AlarmPayload, now: number): boolean {
  return alarm.shelvedUntil !== undefined && alarm.shelvedUntil > now;
}

/**
 * The next state of one alarm (`current` undefined: there is none, i.e. normal) for `event` at
 * engine time `now` (shelving: `shelvedUntil` is engine time, a real timeout), stamped `at` (its
 * `ts` and `raisedAt`: the line's event time, docs/rules.md#which-time; `now` unless given);
 * `lastRev` is the highest rev this alarm id ever had, so a new life of it never reuses one.
 */
export function nextAlarm(current: AlarmPayload | undefined, event: AlarmEvent, now: number, lastRev = current?.rev ?? 0, at = now): AlarmStep {
  const rev = Math.max(lastRev, current?.rev ?? 0) + 1;
  if (event.type === 'raise') {
    if (current && isActive(current)) return { kind: 'unchanged', why: 'the alarm is active already' };
    const { id, rule, severity, message, device } = event.alert;
    const shelf = current?.shelvedUntil !== undefined && current.shelvedUntil > now ? { shelvedUntil: current.shelvedUntil } : {};
    return { kind: 'changed', alarm: { id, rule, severity, message, ...(device ? { device } : {}), state: 'active-unacked', ...shelf, transition: 'raise', raisedAt: at, rev, ts: at } };
  }
  if (!current) {
    if (event.type === 'return' || event.type === 'shelve-expired') return { kind: 'unchanged', why: 'the alarm is normal already' };
    return { kind: 'refused', error: 'no such alarm: it is normal (returned and acknowledged) or was never raised' };
  }
  const { operator: _operator, comment: _comment, ...base } = current;
  const next = (changes: Partial<AlarmPayload> & Pick<AlarmPayload, 'transition'>, act?: OperatorAct): AlarmStep => {
    const alarm: AlarmPayload = { ...base, ...changes, rev, ts: at };
    if (act) {
      alarm.operator = act.operator;
      if (act.comment !== undefined && act.comment !== '') alarm.comment = act.comment;
    }
    if (alarm.state === 'normal' || alarm.shelvedUntil === undefined) delete alarm.shelvedUntil;
    return { kind: 'changed', alarm };
  };
  const act = (e: OperatorAct): OperatorAct => ({ operator: e.operator, ...(e.comment !== undefined ? { comment: e.comment } : {}) });
  switch (event.type) {
    case 'return':
      if (current.state === 'active-unacked') return next({ state: 'rtn-unacked', transition: 'return' });
      if (current.state === 'active-acked') return next({ state: 'normal', transition: 'return' });
      return { kind: 'unchanged', why: 'the condition returned to normal already' };
    case 'ack':
      if (current.state === 'active-unacked') return next({ state: 'active-acked', transition: 'ack' }, act(event));
      if (current.state === 'rtn-unacked') return next({ state: 'normal', transition: 'ack' }, act(event));
      return { kind: 'unchanged', why: 'the alarm is acknowledged already' };
    case 'clear':
      return next({ state: 'normal', transition: 'clear' }, act(event));
    case 'shelve':
      return next({ shelvedUntil: now + event.forMs, transition: 'shelve' }, act(event));
    case 'unshelve':
      if (current.shelvedUntil === undefined) return { kind: 'refused', error: 'the alarm is not shelved' };
      return next({ shelvedUntil: undefined, transition: 'unshelve' }, act(event));
    case 'shelve-expired':
      if (current.shelvedUntil === undefined || current.shelvedUntil > now) return { kind: 'unchanged', why: 'not shelved, or not yet due' };
      return next({ shelvedUntil: undefined, transition: 'unshelve' });
  }
}

/**
 * Every alarm that is not normal, per line and alarm topic id, and the highest rev each id had
 * (kept after an alarm goes normal, so its engine's own late echo of an older state is not taken
 * for a newer one).
 */
export class AlarmTable {
  private readonly alarms = new Map<string, LineAlarm>();
  private readonly revs = new Map<string, number>();

  /** Applies `event` to the alarm `id` of `line` at engine time `now`, stamped `at` (nextAlarm); a changed alarm is stored (or dropped when normal). */
  apply(line: string, id: string, event: AlarmEvent, now: number, at = now): AlarmStep {
    return this.applyAt(keyOf(line, alarmTopicId(id)), event, now, at);
  }

  /** As apply, for the alarm named by its topic level (an operator's request on lw/{line}/alarms/{level}/set). */
  applyByTopicId(line: string, topicId: string, event: AlarmEvent, now: number, at = now): AlarmStep {
    return this.applyAt(keyOf(line, topicId), event, now, at);
  }

  /**
   * A state read from the bus (the retained topic after a restart, or the engine's own echo):
   * taken if its rev is newer than any this table had for it. True if it was taken.
   */
  adopt(line: string, alarm: AlarmPayload): boolean {
    const key = keyOf(line, alarmTopicId(alarm.id));
    if (alarm.rev <= (this.revs.get(key) ?? 0)) return false;
    this.store(key, line, alarm);
    return true;
  }

  /** Whether the alarm named by its topic level on `line` is not normal. */
  hasTopicId(line: string, topicId: string): boolean {
    return this.alarms.has(keyOf(line, topicId));
  }

  get(line: string, id: string): AlarmPayload | undefined {
    return this.alarms.get(keyOf(line, alarmTopicId(id)))?.alarm;
  }

  /** Every alarm that is not normal. */
  all(): LineAlarm[] {
    return [...this.alarms.values()];
  }

  /** Alarms whose shelving ran out at engine time `now`, each with its unshelved state (stored), stamped `atOf(line)`. */
  unshelveDue(now: number, atOf: (line: string) => number = () => now): LineAlarm[] {
    // On every tick: the table is copied only when some shelving ran out (applyAt changes it).
    let expired: [string, LineAlarm][] | undefined;
    for (const entry of this.alarms) if (entry[1].alarm.shelvedUntil !== undefined && entry[1].alarm.shelvedUntil <= now) (expired ??= []).push(entry);
    const due: LineAlarm[] = [];
    for (const [key, entry] of expired ?? []) {
      const step = this.applyAt(key, { type: 'shelve-expired' }, now, atOf(entry.line));
      if (step.kind === 'changed') due.push({ line: entry.line, alarm: step.alarm });
    }
    return due;
  }

  get size(): number {
    return this.alarms.size;
  }

  private applyAt(key: string, event: AlarmEvent, now: number, at: number): AlarmStep {
    const entry = this.alarms.get(key);
    const line = entry?.line ?? key.slice(0, key.indexOf('\u0000'));
    const step = nextAlarm(entry?.alarm, event, now, this.revs.get(key) ?? 0, at);
    if (step.kind === 'changed') this.store(key, line, step.alarm);
    return step;
  }

  private store(key: string, line: string, alarm: AlarmPayload): void {
    this.revs.set(key, Math.max(alarm.rev, this.revs.get(key) ?? 0));
    if (alarm.state === 'normal') this.alarms.delete(key);
    else this.alarms.set(key, { line, alarm });
  }
}

function keyOf(line: string, topicId: string): string {
  return `${line}\u0000${topicId}`;
}
