// Setpoints as held intents: a limit delays the winning intent, never drops it; a device that
// reports another setpoint than it acknowledged is commanded again; intents survive a restart.
import { afterEach, describe, expect, it } from 'vitest';
import type { DeferEvent } from '../../rules/commands.js';
import { startFixture, type Fixture } from './fixture.js';

let f: Fixture | undefined;
afterEach(async () => {
  await f?.stop();
  f = undefined;
});

/** The demo's overheat rule in small: hot slows ctl to 15, and once it clears wants 40 back. */
const HOT = `  - id: hot
    priority: 20
    match: { device: conv }
    when: values.temp > 80
    clear: values.temp < 70
    actions: [{ command: { target: ctl, action: set_speed, params: { speed: 15 } } }]
    onClear: [{ command: { target: ctl, action: set_speed, params: { speed: 40 } } }]
`;

/** A lower-priority rule that wants 30 while eco is 1. */
const ECO = `  - id: eco
    priority: 5
    match: { device: meter }
    when: values.eco == 1
    actions: [{ command: { target: ctl, action: set_speed, params: { speed: 30 } } }]
`;

function speeds(fx: Fixture): unknown[] {
  return fx.commands.map((c) => [c.origin, c.params.speed, c.ts - fx.commands[0]!.ts]);
}

function deferrals(fx: Fixture): DeferEvent[] {
  return fx.events.filter((e): e is DeferEvent => e.type === 'deferred');
}

describe('held intents', () => {
  it('a restore within the cooldown is sent once the cooldown passes (it was blocked for good before)', async () => {
    f = await startFixture(`safety:\n  defaults: { cooldown: 1s }\nrules:\n${HOT}`);
    f.autoAck('ctl');
    await f.telemetry('conv', { temp: 85 });
    await f.advance(700);
    await f.telemetry('conv', { temp: 60 }); // clears 700 ms after the slowdown: wants 40, within the cooldown
    expect(speeds(f)).toEqual([['rule:hot', 15, 0]]);
    expect(deferrals(f)).toMatchObject([{ target: 'ctl', params: { speed: 40 }, limit: 'cooldown', until: f.commands[0]!.ts + 1_000 }]);
    expect(deferrals(f)[0]!.reason).toMatch(/^cooldown: A\/ctl was commanded 700 ms ago \(cooldown 1000 ms\)/);
    await f.advance(400);
    expect(speeds(f)).toEqual([['rule:hot', 15, 0], ['rule:hot', 40, 1_000]]);
    expect(f.outcomes.filter((o) => o.outcome === 'blocked')).toEqual([]);
    expect(f.engine.counters()).toMatchObject({ commands_deferred: 1, deferred_cooldown: 1 });
  });

  it('what is sent when a dwell ends is the winning intent at that time, not the one the dwell delayed', async () => {
    f = await startFixture(`safety:\n  defaults: { minDwell: 5s }\nrules:\n${HOT}${ECO}`);
    f.autoAck('ctl');
    await f.telemetry('conv', { temp: 85 }); // 15 at 0 s
    await f.advance(2_000);
    await f.telemetry('conv', { temp: 60 }); // hot clears at 2 s: wants 40 after, delayed by the dwell until 5 s
    expect(deferrals(f)).toMatchObject([{ params: { speed: 40 }, limit: 'dwell', until: f.commands[0]!.ts + 5_000 }]);
    await f.advance(1_000);
    await f.telemetry('meter', { eco: 1 }); // eco, active, wants 30 at 3 s: an active intent outranks hot's "after"
    await f.advance(2_100);
    expect(speeds(f)).toEqual([['rule:hot', 15, 0], ['rule:eco', 30, 5_000]]);
    await f.telemetry('meter', { eco: 0 }); // eco clears: hot's 40 wins again (its higher priority may change eco's setpoint at once)
    expect(speeds(f)).toEqual([['rule:hot', 15, 0], ['rule:eco', 30, 5_000], ['rule:hot', 40, 5_100]]);
    expect(f.outcomes.filter((o) => o.outcome === 'blocked')).toEqual([]);
  });

  it('an intent a limit delays survives a restart of the engine (rules-state.json) and is sent after it', async () => {
    f = await startFixture(`safety:\n  defaults: { cooldown: 10s }\nrules:\n${HOT}`);
    f.autoAck('ctl');
    await f.telemetry('conv', { temp: 85 });
    await f.advance(1_000);
    await f.telemetry('conv', { temp: 60 }); // wants 40, delayed until 10 s
    await f.restart();
    expect(f.engine.counters().intents).toBe(1);
    await f.advance(9_200);
    expect(speeds(f)).toEqual([['rule:hot', 15, 0], ['rule:hot', 40, 10_000]]);
  });

  it('an active intent ends with its instance: an instance not restored after a restart leaves no intent behind', async () => {
    f = await startFixture(`rules:\n${ECO}`);
    f.autoAck('ctl');
    await f.telemetry('meter', { eco: 1 });
    expect(f.engine.counters().intents).toBe(1);
    await f.engine.stop();
    // The rule changed while the engine was down: its instance is not restored, so neither is its intent.
    const { writeRules } = await import('./fixture.js');
    writeRules(f, `rules:\n${ECO.replace('speed: 30', 'speed: 31')}`);
    await f.restart();
    expect(f.engine.counters()).toMatchObject({ restored_instances: 0, intents: 0 });
  });

  it('a suspended rule’s command is blocked (once, for good while suspended), the setpoint held; when the suspension ends its current intent is sent', async () => {
    f = await startFixture(`safety:\n  oscillation: { window: 60s, reversals: 3, suspendFor: 30s }\nrules:
  - id: loop
    match: { device: conv-1 }
    when: values.temp > 80
    actions: [{ command: { target: ctl, action: set_speed, params: { speed: 40 } } }]
    onClear: [{ command: { target: ctl, action: set_speed, params: { speed: 60 } } }]
`);
    f.autoAck('ctl');
    for (let i = 0; i < 2; i++) {
      await f.telemetry('conv-1', { temp: 85 });
      await f.advance(3_000);
      await f.telemetry('conv-1', { temp: 70 });
      await f.advance(3_000);
    }
    // 40, 60, 40, 60, and its own 40 again is the third reversal: the lower speed, so it goes out (the safer value is held), and the rule is suspended.
    await f.telemetry('conv-1', { temp: 85 });
    expect(f.commands.map((c) => c.params.speed)).toEqual([40, 60, 40, 60, 40]);
    expect(f.engine.counters().suspended_rules).toBe(1);
    await f.telemetry('conv-1', { temp: 70 }); // cleared while suspended: its after intent 60 is blocked, the speed held at 40
    expect(f.commands).toHaveLength(5);
    expect(f.outcomes.filter((o) => o.outcome === 'blocked').map((o) => [o.params.speed, o.reason!.split(':')[0]])).toEqual([[60, 'suspended']]);
    await f.advance(29_000);
    expect(f.commands).toHaveLength(5);
    expect(f.outcomes.filter((o) => o.outcome === 'blocked')).toHaveLength(1); // once per intent, not per tick
    await f.advance(1_200); // the suspension (30 s) ends: what the rule wants now (60, cleared) is sent
    expect(f.commands.map((c) => c.params.speed)).toEqual([40, 60, 40, 60, 40, 60]);
  });

  it('re-commands a device that reports another setpoint than it acknowledged, a bounded number of times', async () => {
    f = await startFixture(`rules:\n${ECO}`, { recommandLimit: 2 });
    f.autoAck('ctl');
    await f.telemetry('meter', { eco: 1 });
    await f.advance(200);
    await f.telemetry('ctl', { speedSetpoint: 30 }); // as acknowledged: nothing to do
    expect(f.commands.map((c) => c.params.speed)).toEqual([30]);
    for (let round = 0; round < 3; round++) {
      await f.advance(200);
      await f.telemetry('ctl', { speedSetpoint: 22 }); // someone set it to 22 at the panel
    }
    await f.advance(200);
    await f.telemetry('ctl', { speedSetpoint: 22 });
    expect(f.commands.map((c) => c.params.speed)).toEqual([30, 30, 30]);
    expect(f.engine.counters()).toMatchObject({ setpoint_mismatches: 3, recommands: 2, recommands_gave_up: 1 });
    // Once it reports the acknowledged value again, a later difference is commanded again.
    await f.telemetry('ctl', { speedSetpoint: 30 });
    await f.advance(200);
    await f.telemetry('ctl', { speedSetpoint: 25 });
    expect(f.commands.map((c) => c.params.speed)).toEqual([30, 30, 30, 30]);
    expect(f.engine.counters()).toMatchObject({ setpoint_mismatches: 4, recommands: 3, recommands_gave_up: 1 });
  });

  it('a report older than the acknowledgement (sent before the device took the command) is no mismatch', async () => {
    f = await startFixture(`rules:\n${ECO}`);
    f.autoAck('ctl');
    await f.telemetry('ctl', { speedSetpoint: 40 });
    const before = f.clock.now();
    await f.advance(500);
    await f.telemetry('meter', { eco: 1 });
    await f.advance(200);
    await f.telemetry('ctl', { speedSetpoint: 40 }, { ts: before + 100 }); // reordered, from before the command
    expect(f.commands.map((c) => c.params.speed)).toEqual([30]);
    expect(f.engine.counters().setpoint_mismatches ?? 0).toBe(0);
  });
});
