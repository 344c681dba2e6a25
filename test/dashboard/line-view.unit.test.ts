// LineView: the dashboard's live picture built from bus messages (pure, no I/O).
import { describe, expect, it } from 'vitest';
import { LineView } from '../../dashboard/server/line-view.js';

const msg = (value: unknown): Buffer => Buffer.from(JSON.stringify(value));

describe('LineView', () => {
  it('tracks device state, readings and status, and reports each change once as a delta', () => {
    const view = new LineView();
    view.handle('lw/A/st-1/state', msg({ ts: 1000, seq: 1, state: 'RUNNING', type: 'station' }));
    view.handle('lw/A/st-1/telemetry', msg({ ts: 1100, seq: 2, values: { goodCount: 3 } }));
    view.handle('lw/A/st-1/status', msg({ ts: 1200, status: 'offline' }));
    const delta = view.takeDelta()!;
    expect(delta.devices).toEqual([
      expect.objectContaining({ key: 'A/st-1', state: 'RUNNING', type: 'station', stateSince: 1000, online: false, values: { goodCount: 3 }, lastSeen: 1200 }),
    ]);
    expect(view.takeDelta()).toBeUndefined();
    expect(view.onlineDevices()).toBe(0);
  });

  it('counts and ignores payloads that fail their schema or topics outside the namespace', () => {
    const view = new LineView();
    view.handle('lw/A/st-1/state', msg({ ts: 1, seq: 1, state: 'EXPLODED' }));
    view.handle('lw/A/st-1/telemetry', Buffer.from('{not json'));
    view.handle('other/topic', msg({}));
    expect(view.counters).toMatchObject({ messages: 2, invalid: 2 });
    expect(view.snapshot().devices).toEqual([]);
  });

  it('pairs commands with acks and outcomes, keeps the latest 50, and learns the strategy from a done set_strategy', () => {
    const view = new LineView();
    for (let i = 0; i < 60; i++) view.handle('lw/A/conv-1/cmd', msg({ id: `c${i}`, action: 'set_speed', params: { speed: i }, origin: 'rule:x', ts: i, expiresAt: i + 10 }));
    view.handle('lw/A/conv-1/cmd/ack', msg({ id: 'c59', result: 'done', ts: 70 }));
    view.handle('lw/A/conv-1/cmd/ack', msg({ id: 'c0', result: 'done', ts: 70 })); // long gone: ignored
    const recent = view.recentCommands();
    expect(recent).toHaveLength(50);
    expect(recent[0]).toMatchObject({ id: 'c59', ack: 'done' });
    expect(recent.some((c) => c.id === 'c0')).toBe(false);

    view.handle('lw/A/st-2/cmd/outcome', msg({ id: 'b1', action: 'stop', params: {}, origin: 'rule:y', target: 'st-2', outcome: 'blocked', attempts: 0, reason: 'cooldown', issuedAt: 80, ts: 80 }));
    expect(view.recentCommands()[0]).toMatchObject({ id: 'b1', device: 'st-2', outcome: 'blocked', outcomeReason: 'cooldown', ack: null });

    view.handle('lw/A/line-ctl/cmd', msg({ id: 's1', action: 'set_strategy', params: { strategy: 'safe' }, origin: 'user:x', ts: 90, expiresAt: 100 }));
    view.handle('lw/A/line-ctl/cmd/ack', msg({ id: 's1', result: 'done', ts: 91 }));
    expect(view.snapshot().lines).toEqual([expect.objectContaining({ line: 'A', strategy: 'safe' })]);
  });

  it("learns the strategy from the line controller's state", () => {
    const view = new LineView();
    view.handle('lw/A/line-ctl/state', msg({ ts: 1, seq: 1, state: 'RUNNING', type: 'line-controller', strategy: 'energy-saving' }));
    expect(view.snapshot().lines).toEqual([expect.objectContaining({ line: 'A', strategy: 'energy-saving' })]);
  });

  it('shows the alarm states the engine publishes (the alert stream and requests change nothing), hides shelved ones, drops one when its topic is emptied, and keeps the transitions', () => {
    const view = new LineView();
    const alarm = { id: 'hot:A/conv-2', rule: 'hot', severity: 'warning', message: 'hot', device: 'conv-2', raisedAt: 10 };
    const topic = 'lw/A/alarms/hot:A.conv-2';
    view.handle(topic, msg({ ...alarm, state: 'active-unacked', transition: 'raise', rev: 1, ts: 10 }));
    view.handle('lw/A/alerts', msg({ id: alarm.id, rule: 'hot', severity: 'warning', message: 'hot', state: 'acknowledged', origin: 'user:dashboard', ts: 15 }));
    view.handle(`${topic}/set`, msg({ action: 'acknowledge', operator: 'user:ana', ts: 16 }));
    expect(view.activeAlerts()).toEqual([expect.objectContaining({ id: alarm.id, line: 'A', state: 'active-unacked' })]);
    view.handle(topic, msg({ ...alarm, state: 'active-acked', transition: 'ack', operator: 'user:ana', comment: 'seen', rev: 2, ts: 20 }));
    view.handle(topic, msg({ ...alarm, state: 'active-unacked', transition: 'raise', rev: 1, ts: 10 })); // an older state, e.g. republished late: ignored
    expect(view.activeAlerts()).toEqual([expect.objectContaining({ state: 'active-acked', operator: 'user:ana', comment: 'seen', raisedAt: 10, ts: 20 })]);
    view.handle(topic, msg({ ...alarm, state: 'active-acked', transition: 'shelve', shelvedUntil: 90, operator: 'user:ana', rev: 3, ts: 30 }));
    expect(view.activeAlerts()).toEqual([]);
    expect(view.alarms().map((a) => a.shelvedUntil)).toEqual([90]);
    view.takeDelta();
    view.handle(topic, msg({ ...alarm, state: 'normal', transition: 'return', rev: 4, ts: 40 }));
    view.handle(topic, Buffer.alloc(0));
    expect(view.alarms()).toEqual([]);
    const delta = view.takeDelta();
    expect(delta?.alertsRemoved).toEqual(['A/hot:A/conv-2']);
    expect(delta?.transitions.map((t) => t.transition)).toEqual(['return']);
    expect(view.recentTransitions().map((t) => [t.transition, t.rev])).toEqual([
      ['return', 4],
      ['shelve', 3],
      ['ack', 2],
      ['raise', 1],
    ]);
  });

  it('stops taking new devices and alerts at its limits, and counts what it ignored', () => {
    const view = new LineView({ maxDevices: 2, maxAlerts: 1 });
    for (const d of ['a', 'b', 'c']) view.handle(`lw/A/${d}/state`, msg({ ts: 1, seq: 1, state: 'IDLE' }));
    view.handle('lw/A/a/state', msg({ ts: 2, seq: 2, state: 'RUNNING' })); // known device: still updated
    const raised = { rule: 'r', severity: 'info', message: '', state: 'active-unacked', transition: 'raise', raisedAt: 1, rev: 1, ts: 1 };
    view.handle('lw/A/alarms/r:x', msg({ id: 'r:x', ...raised }));
    view.handle('lw/A/alarms/r:y', msg({ id: 'r:y', ...raised }));
    expect(view.snapshot().devices.map((d) => `${d.device}:${d.state}`)).toEqual(['a:RUNNING', 'b:IDLE']);
    expect(view.activeAlerts().map((a) => a.id)).toEqual(['r:x']);
    expect(view.counters.over_capacity).toBe(2);
  });
});
