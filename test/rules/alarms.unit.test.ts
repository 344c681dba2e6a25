// The alarm state machine (rules/alarms.ts) on its own: every ISA-18.2 transition, shelving with
// its expiry, operator identity and comment, the revs that keep an engine's own late echo from
// undoing a newer state, and the table that drops an alarm once it is normal.
import { describe, expect, it } from 'vitest';
import type { AlarmPayload, AlertPayload } from '../../contracts/index.js';
import { AlarmTable, isShelved, nextAlarm, type AlarmEvent, type AlarmStep } from '../../rules/alarms.js';

const T0 = 1_700_000_000_000;
const ALERT: AlertPayload = { id: 'overheat:A/conv-2', rule: 'overheat', severity: 'warning', state: 'raised', message: 'conv-2 is hot', device: 'conv-2', ts: T0 };
const RAISE: AlarmEvent = { type: 'raise', alert: ALERT };
const BY_ANA = { operator: 'user:ana', comment: 'seen, cooling it' };

function changed(step: AlarmStep): AlarmPayload {
  if (step.kind !== 'changed') throw new Error(`expected a change, got ${JSON.stringify(step)}`);
  return step.alarm;
}

/** Runs events one after the other, each 1 s after the last, from no alarm. */
function run(...events: AlarmEvent[]): AlarmPayload[] {
  const states: AlarmPayload[] = [];
  let current: AlarmPayload | undefined;
  events.forEach((event, index) => {
    current = changed(nextAlarm(current, event, T0 + index * 1000));
    states.push(current);
  });
  return states;
}

describe('the alarm state machine', () => {
  it('raise → ack → return: active-unacked, active-acked, normal, with the operator and comment of the ack', () => {
    const [raised, acked, normal] = run(RAISE, { type: 'ack', ...BY_ANA }, { type: 'return' });
    expect(raised).toEqual({ id: ALERT.id, rule: 'overheat', severity: 'warning', message: 'conv-2 is hot', device: 'conv-2', state: 'active-unacked', transition: 'raise', raisedAt: T0, rev: 1, ts: T0 });
    expect(acked).toMatchObject({ state: 'active-acked', transition: 'ack', operator: 'user:ana', comment: 'seen, cooling it', rev: 2, ts: T0 + 1000 });
    expect(normal).toMatchObject({ state: 'normal', transition: 'return', rev: 3, raisedAt: T0 });
  });

  it('raise → return → ack: returned-to-normal unacknowledged until the operator acknowledges it', () => {
    const states = run(RAISE, { type: 'return' }, { type: 'ack', operator: 'user:bo' });
    expect(states.map((s) => [s.state, s.transition])).toEqual([
      ['active-unacked', 'raise'],
      ['rtn-unacked', 'return'],
      ['normal', 'ack'],
    ]);
    expect(states[2]).toMatchObject({ operator: 'user:bo' });
    expect(states[2]).not.toHaveProperty('comment');
  });

  it('a raise of an active alarm changes nothing (a restart does not raise it twice); a raise of a returned one makes it unacknowledged again', () => {
    const [raised] = run(RAISE);
    expect(nextAlarm(raised, RAISE, T0 + 5000).kind).toBe('unchanged');
    const acked = changed(nextAlarm(raised, { type: 'ack', operator: 'user:ana' }, T0 + 1000));
    expect(nextAlarm(acked, RAISE, T0 + 5000).kind).toBe('unchanged');
    const returned = changed(nextAlarm(raised, { type: 'return' }, T0 + 2000));
    expect(changed(nextAlarm(returned, RAISE, T0 + 3000))).toMatchObject({ state: 'active-unacked', transition: 'raise', raisedAt: T0 + 3000, rev: 3 });
  });

  it('an operator clear takes any state to normal, with who and why', () => {
    const [raised] = run(RAISE);
    expect(changed(nextAlarm(raised, { type: 'clear', operator: 'user:ana', comment: 'sensor swapped' }, T0 + 1))).toMatchObject({ state: 'normal', transition: 'clear', operator: 'user:ana', comment: 'sensor swapped' });
  });

  it('shelving hides the alarm for its time, then it unshelves by itself in its state; an operator may unshelve it before', () => {
    const [raised] = run(RAISE);
    const shelved = changed(nextAlarm(raised, { type: 'shelve', forMs: 60_000, ...BY_ANA }, T0 + 1000));
    expect(shelved).toMatchObject({ state: 'active-unacked', transition: 'shelve', shelvedUntil: T0 + 61_000, operator: 'user:ana' });
    expect(isShelved(shelved, T0 + 60_999)).toBe(true);
    expect(nextAlarm(shelved, { type: 'shelve-expired' }, T0 + 60_999).kind).toBe('unchanged');
    const back = changed(nextAlarm(shelved, { type: 'shelve-expired' }, T0 + 61_000));
    expect(back).toMatchObject({ state: 'active-unacked', transition: 'unshelve' });
    expect(back).not.toHaveProperty('shelvedUntil');
    expect(back).not.toHaveProperty('operator'); // time unshelved it, not an operator
    expect(changed(nextAlarm(shelved, { type: 'unshelve', operator: 'user:bo' }, T0 + 2000))).toMatchObject({ transition: 'unshelve', operator: 'user:bo' });
    expect(nextAlarm(back, { type: 'unshelve', operator: 'user:bo' }, T0 + 62_000)).toEqual({ kind: 'refused', error: 'the alarm is not shelved' });
  });

  it('a shelved alarm keeps following its condition: it returns, and is raised again still shelved', () => {
    const [, shelved, returned, again] = run(RAISE, { type: 'shelve', forMs: 600_000, operator: 'user:ana' }, { type: 'return' }, RAISE);
    expect(returned).toMatchObject({ state: 'rtn-unacked', shelvedUntil: shelved!.shelvedUntil });
    expect(again).toMatchObject({ state: 'active-unacked', shelvedUntil: shelved!.shelvedUntil });
  });

  it('refuses an operator request for an alarm that is not there, and ignores a return of one', () => {
    expect(nextAlarm(undefined, { type: 'ack', operator: 'user:ana' }, T0)).toEqual({ kind: 'refused', error: expect.stringMatching(/^no such alarm/) });
    expect(nextAlarm(undefined, { type: 'return' }, T0).kind).toBe('unchanged');
  });
});

describe('the alarm table', () => {
  it('keeps alarms until they are normal, by line, and finds them by the topic id an operator request names', () => {
    const table = new AlarmTable();
    table.apply('A', ALERT.id, RAISE, T0);
    table.apply('B', ALERT.id, RAISE, T0);
    expect(table.size).toBe(2);
    expect(changed(table.applyByTopicId('A', 'overheat:A.conv-2', { type: 'ack', operator: 'user:ana' }, T0 + 1))).toMatchObject({ state: 'active-acked' });
    table.apply('A', ALERT.id, { type: 'return' }, T0 + 2);
    expect(table.get('A', ALERT.id)).toBeUndefined();
    expect(table.all().map((entry) => entry.line)).toEqual(['B']);
  });

  it('a new life of an alarm continues its revs, so the late echo of its old state is not adopted', () => {
    const table = new AlarmTable();
    const first = changed(table.apply('A', ALERT.id, RAISE, T0));
    table.apply('A', ALERT.id, { type: 'clear', operator: 'user:ana' }, T0 + 1);
    expect(table.adopt('A', first)).toBe(false); // the echo of rev 1, after rev 2 made it normal
    expect(table.size).toBe(0);
    expect(changed(table.apply('A', ALERT.id, RAISE, T0 + 2)).rev).toBe(3);
  });

  it('adopts a newer state read back from the bus (an ack the snapshot missed), not an older one', () => {
    const table = new AlarmTable();
    const raised = changed(table.apply('A', ALERT.id, RAISE, T0));
    const acked = changed(nextAlarm(raised, { type: 'ack', operator: 'user:ana' }, T0 + 1));
    expect(table.adopt('A', acked)).toBe(true);
    expect(table.get('A', ALERT.id)?.state).toBe('active-acked');
    expect(table.adopt('A', raised)).toBe(false);
  });

  it('unshelves what is due, only that', () => {
    const table = new AlarmTable();
    table.apply('A', ALERT.id, RAISE, T0);
    table.apply('A', 'other:A/conv-1', { type: 'raise', alert: { ...ALERT, id: 'other:A/conv-1' } }, T0);
    table.apply('A', ALERT.id, { type: 'shelve', forMs: 1000, operator: 'user:ana' }, T0);
    table.apply('A', 'other:A/conv-1', { type: 'shelve', forMs: 5000, operator: 'user:ana' }, T0);
    expect(table.unshelveDue(T0 + 999)).toEqual([]);
    expect(table.unshelveDue(T0 + 1000).map((entry) => entry.alarm.id)).toEqual([ALERT.id]);
    expect(isShelved(table.get('A', 'other:A/conv-1')!, T0 + 1000)).toBe(true);
  });
});
