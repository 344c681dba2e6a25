// Commands as a closed loop (ack, retry, outcome) and each actuator-safety limit on the winning intent.
import { afterEach, describe, expect, it } from 'vitest';
import { countReversals } from '../../rules/safety-policy.js';
import { startFixture, type Fixture } from './fixture.js';

let f: Fixture | undefined;
afterEach(async () => {
  await f?.stop();
  f = undefined;
});

/** A rule that sends `set_speed speed: values.want` to ctl whenever `go` becomes 1 (and clears at 0). */
function speedRule(id: string, priority = 0, device = 'knob'): string {
  return `  - id: ${id}
    priority: ${priority}
    match: { device: ${device} }
    when: values.go == 1
    actions:
      - command: { target: ctl, action: set_speed, params: { speed: "=values.want" } }
`;
}

/** Fires the rule once: go 1 (fires), then go 0 (clears). */
async function pulse(fx: Fixture, want: number, device = 'knob'): Promise<void> {
  await fx.telemetry(device, { go: 1, want });
  await fx.telemetry(device, { go: 0, want });
}

describe('closed loop', () => {
  it('records done after the device acks, with the command id and origin', async () => {
    f = await startFixture(`rules:\n${speedRule('r')}`);
    await pulse(f, 30);
    const cmd = f.commands[0]!;
    expect(cmd).toMatchObject({ action: 'set_speed', params: { speed: 30 }, origin: 'rule:r', target: 'ctl' });
    expect(cmd.expiresAt - cmd.ts).toBe(10_000);
    await f.ack('ctl', cmd.id, 'accepted');
    await f.ack('ctl', cmd.id, 'done');
    expect(f.outcomes.map((o) => [o.id, o.outcome, o.attempts, o.target, o.origin])).toEqual([
      [cmd.id, 'accepted', 1, 'ctl', 'rule:r'],
      [cmd.id, 'done', 1, 'ctl', 'rule:r'],
    ]);
  });

  it('re-sends the same id on ack timeout, a bounded number of times, then records expired', async () => {
    f = await startFixture(`rules:\n${speedRule('r')}`, { ackTimeoutMs: 1_000, retries: 2 });
    await pulse(f, 30);
    await f.advance(10_000);
    expect(f.commands).toHaveLength(3);
    expect(new Set(f.commands.map((c) => c.id)).size).toBe(1);
    expect(f.outcomes.map((o) => [o.outcome, o.attempts])).toEqual([['expired', 3]]);
    expect(f.engine.counters()).toMatchObject({ commands_sent: 1, commands_retried: 2, outcome_expired: 1 });
  });

  it('stops retrying once acked after a retry', async () => {
    f = await startFixture(`rules:\n${speedRule('r')}`, { ackTimeoutMs: 1_000, retries: 3 });
    await pulse(f, 30);
    await f.advance(1_100);
    expect(f.commands).toHaveLength(2);
    await f.ack('ctl', f.commands[0]!.id, 'done');
    await f.advance(5_000);
    expect(f.commands).toHaveLength(2);
    expect(f.outcomes.map((o) => [o.outcome, o.attempts])).toEqual([['done', 2]]);
  });

  it('records rejected and failed with the device reason; ignores acks for unknown ids or from another device', async () => {
    f = await startFixture(`rules:\n${speedRule('r')}`);
    await pulse(f, 30);
    await pulse(f, 31);
    await f.ack('other', f.commands[0]!.id, 'done');
    await f.ack('ctl', 'no-such-id', 'done');
    await f.ack('ctl', f.commands[0]!.id, 'rejected', { reason: 'speed out of range' });
    await f.ack('ctl', f.commands[1]!.id, 'failed', { reason: 'motor fault' });
    expect(f.outcomes.map((o) => [o.outcome, o.reason])).toEqual([
      ['rejected', 'speed out of range'],
      ['failed', 'motor fault'],
    ]);
    expect(f.engine.counters().acks_unknown).toBe(2);
  });
});

describe('actuator safety', () => {
  it('cooldown: a second command to the target within the cooldown is deferred until it ends, not blocked', async () => {
    f = await startFixture(`safety:\n  targets:\n    A/ctl: { cooldown: 5s }\nrules:\n${speedRule('r')}`);
    f.autoAck('ctl');
    await pulse(f, 30);
    await f.advance(1_000);
    await f.telemetry('knob', { go: 1, want: 31 }); // wants 31 while active
    expect(f.commands.map((c) => c.params.speed)).toEqual([30]);
    expect(f.events.find((e) => e.type === 'deferred')).toMatchObject({ target: 'ctl', params: { speed: 31 }, limit: 'cooldown', until: f.commands[0]!.ts + 5_000 });
    await f.advance(4_100);
    expect(f.commands.map((c) => [c.params.speed, c.ts - f!.commands[0]!.ts])).toEqual([[30, 0], [31, 5_000]]);
    expect(f.outcomes.filter((o) => o.outcome === 'blocked')).toHaveLength(0);
    expect(f.engine.counters()).toMatchObject({ commands_deferred: 1, deferred_cooldown: 1 });
  });

  it('cooldown: what a rule wanted only while it was active is not sent once it cleared', async () => {
    f = await startFixture(`safety:\n  targets:\n    A/ctl: { cooldown: 5s }\nrules:\n${speedRule('r')}`);
    f.autoAck('ctl');
    await pulse(f, 30);
    await f.advance(1_000);
    await pulse(f, 31); // deferred, then released before the cooldown ends
    await f.advance(5_000);
    expect(f.commands.map((c) => c.params.speed)).toEqual([30]);
    expect(f.engine.counters().intents).toBe(0);
  });

  it('minimum dwell: a setpoint holds before it may change again (a different setpoint may)', async () => {
    f = await startFixture(`safety:\n  defaults: { minDwell: 10s }\nrules:\n${speedRule('r')}  - id: strat
    match: { device: knob2 }
    when: values.go == 1
    actions: [{ command: { target: ctl, action: set_strategy, params: { strategy: safe } } }]
`);
    f.autoAck('ctl');
    await pulse(f, 30);
    await f.advance(3_000);
    await f.telemetry('knob', { go: 1, want: 40 }); // speed changed 3 s ago: deferred by the dwell
    await f.telemetry('knob2', { go: 1 }); // strategy is another setpoint: sent
    expect(f.commands.map((c) => (c.action === 'set_speed' ? c.params.speed : c.params.strategy))).toEqual([30, 'safe']);
    await f.advance(7_100);
    expect(f.commands.map((c) => (c.action === 'set_speed' ? c.params.speed : c.params.strategy))).toEqual([30, 'safe', 40]);
    expect(f.events.find((e) => e.type === 'deferred')).toMatchObject({ limit: 'dwell', reason: expect.stringMatching(/^dwell: speed of A\/ctl changed 3000 ms ago/) as unknown });
  });

  it('max step: a big speed change is split into steps of at most 20 %, one per dwell, until reached', async () => {
    f = await startFixture(`safety:\n  defaults: { maxStep: 20%, minDwell: 5s }\nrules:\n${speedRule('r')}`);
    f.autoAck('ctl');
    await f.telemetry('ctl', { speedSetpoint: 40 });
    await f.telemetry('knob', { go: 1, want: 20 }); // wants 20 while active
    await f.advance(30_000);
    expect(f.commands.map((c) => [c.params.speed, c.ts - f!.commands[0]!.ts])).toEqual([
      [32, 0],
      [25.6, 5_000],
      [20.48, 10_000],
      [20, 15_000],
    ]);
    expect(f.outcomes.map((o) => o.outcome)).toEqual(['done', 'done', 'done', 'done']);
    expect(f.events.find((e) => e.type === 'command')).toMatchObject({ note: 'speed 20 split: 32 now (max step 20 % from 40), then a step every 5000 ms' });
    expect(f.events.filter((e) => e.type === 'deferred')).toHaveLength(0); // a ramp's own pace is no deferral
  });

  it('max step: a winning intent of a higher priority replaces the goal of a ramp in progress', async () => {
    f = await startFixture(`safety:\n  defaults: { maxStep: 20% }\nrules:\n${speedRule('low', 1, 'knob-l')}${speedRule('high', 2, 'knob-h')}`);
    f.autoAck('ctl');
    await f.telemetry('ctl', { speed: 50 }); // the controller reports its speed
    await f.telemetry('knob-l', { go: 1, want: 10 }); // wants 10: 40 now
    await f.telemetry('knob-h', { go: 1, want: 45 }); // wins: within 20 % of 40
    expect(f.commands.map((c) => c.params.speed)).toEqual([40, 45]);
    await f.advance(5_000);
    expect(f.commands.map((c) => c.params.speed)).toEqual([40, 45]); // no more steps toward 10 while high holds
    await f.telemetry('knob-h', { go: 0, want: 45 }); // high clears: low's 10 wins again, ramped from 45
    expect(f.commands.map((c) => c.params.speed)).toEqual([40, 45, 36]);
  });

  it('budget: at most N commands per target per minute, the rest deferred until the budget allows; stop is always allowed', async () => {
    f = await startFixture(`safety:\n  defaults: { budgetPerMinute: 3 }\n  oscillation: { reversals: 100 }\nrules:\n${speedRule('r')}  - id: halt
    match: { device: estop }
    when: values.go == 1
    actions: [{ command: { target: ctl, action: stop } }]
`);
    f.autoAck('ctl');
    for (let i = 0; i < 3; i++) {
      await pulse(f, 30 + i);
      await f.advance(1_000);
    }
    await f.telemetry('knob', { go: 1, want: 40 }); // over budget: deferred
    await f.telemetry('estop', { go: 1 });
    expect(f.commands.map((c) => (c.action === 'stop' ? 'stop' : c.params.speed))).toEqual([30, 31, 32, 'stop']);
    expect(f.events.find((e) => e.type === 'deferred')).toMatchObject({ limit: 'budget', params: { speed: 40 } });
    await f.advance(60_000);
    expect(f.commands.at(-1)!.params.speed).toBe(40);
    expect(f.outcomes.filter((o) => o.outcome === 'blocked')).toHaveLength(0);
  });

  it('priority: a higher-priority rule’s intent wins while active; a lower one’s waits and is sent when it clears', async () => {
    f = await startFixture(`rules:\n${speedRule('high', 10, 'knob-h')}${speedRule('low', 1, 'knob-l')}`);
    f.autoAck('ctl');
    await f.telemetry('knob-h', { go: 1, want: 20 }); // high fires and stays active
    await f.telemetry('knob-l', { go: 1, want: 60 }); // low wants another speed: outranked, nothing sent
    expect(f.commands.map((c) => [c.origin, c.params.speed])).toEqual([['rule:high', 20]]);
    await f.telemetry('knob-h', { go: 0, want: 20 }); // high clears: low's intent wins now
    expect(f.commands.map((c) => [c.origin, c.params.speed])).toEqual([['rule:high', 20], ['rule:low', 60]]);
    expect(f.outcomes.filter((o) => o.outcome === 'blocked')).toHaveLength(0);
  });

  it('oscillation: two rules fighting over a setpoint — the lower-priority one is suspended and an alert raised', async () => {
    f = await startFixture(`safety:\n  oscillation: { window: 60s, reversals: 3, suspendFor: 5m }\nrules:\n${speedRule('up', 2, 'knob-u')}${speedRule('down', 1, 'knob-d')}`);
    f.autoAck('ctl');
    for (let i = 0; i < 3; i++) {
      await pulse(f, 60, 'knob-u');
      await f.advance(2_000);
      await pulse(f, 40, 'knob-d');
      await f.advance(2_000);
    }
    // 60,40,60,40 → the 3rd reversal (the 2nd "up" back to 60 after two downs) suspends "down", the lower priority
    const alert = f.alerts.find((a) => a.id === 'oscillation:down');
    expect(alert).toMatchObject({ rule: 'down', severity: 'critical', state: 'raised', device: 'ctl' });
    expect(alert!.message).toMatch(/suspended until .*speed of A\/ctl reversed direction 3 times.*rules: .*up.*down|rules: .*down.*up/);
    const sent = f.commands.map((c) => c.origin);
    const afterSuspension = f.outcomes.filter((o) => o.outcome === 'blocked');
    expect(afterSuspension.length).toBeGreaterThan(0);
    expect(afterSuspension.every((o) => o.origin === 'rule:down' && o.reason!.startsWith('suspended'))).toBe(true);
    expect(sent.filter((o) => o === 'rule:up').length).toBe(3);
    expect(f.engine.counters().rules_suspended).toBe(1);
  });

  it('oscillation: a rule re-triggered by its own command effect is suspended', async () => {
    // Slows the line when the conveyor is hot, speeds it up when it cools: the slowdown cools it, so it loops.
    f = await startFixture(`safety:\n  oscillation: { window: 60s, reversals: 3 }\nrules:
  - id: loop
    match: { device: conv-1 }
    when: values.temp > 80
    actions: [{ command: { target: ctl, action: set_speed, params: { speed: 40 } } }]
    onClear: [{ command: { target: ctl, action: set_speed, params: { speed: 60 } } }]
`);
    f.autoAck('ctl');
    for (let i = 0; i < 4; i++) {
      await f.telemetry('conv-1', { temp: 85 });
      await f.advance(3_000);
      await f.telemetry('conv-1', { temp: 70 });
      await f.advance(3_000);
    }
    // The third reversal is the slowdown to 40: it goes out (the lower speed is the one held), then the rule is suspended.
    expect(f.commands.map((c) => c.params.speed)).toEqual([40, 60, 40, 60, 40]);
    expect(f.alerts.map((a) => a.id)).toEqual(['oscillation:loop']);
    expect(f.outcomes.filter((o) => o.outcome === 'blocked').every((o) => o.reason!.startsWith('suspended'))).toBe(true);
  });

  it('counts reversals of numeric and categorical setpoints', () => {
    expect(countReversals([100, 80, 100, 80, 100])).toBe(3);
    expect(countReversals([100, 80, 60, 40])).toBe(0);
    expect(countReversals([100, 100, 80, 80, 90])).toBe(1);
    expect(countReversals(['stop', 'start', 'stop', 'start'])).toBe(2);
    expect(countReversals(['safe', 'energy-saving', 'quality-first'])).toBe(0);
  });
});
