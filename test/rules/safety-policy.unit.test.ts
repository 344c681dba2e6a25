// The actuator-safety policy on its own: each limit's decision from a given history, no broker, no clock.
import { describe, expect, it } from 'vitest';
import { safetySchema, type TargetSafety } from '../../rules/schema.js';
import { historyWith, isSafer, MAX_CHANGES, valuesOf } from '../../rules/oscillation.js';
import { countReversals, decideCommand, recentSends, setpointOf, stepEvery, TargetLimits, type CommandRequest, type PolicyInput, type SetpointChange, type TargetState } from '../../rules/safety-policy.js';

const NOW = 1_000_000;
const OSCILLATION = { window: 60_000, reversals: 3, suspendFor: 300_000 };

function request(overrides: Partial<CommandRequest> = {}): CommandRequest {
  return { ruleId: 'r', priority: 0, holder: 'r|A/knob', line: 'A', target: 'ctl', action: 'set_speed', params: { speed: 30 }, ...overrides };
}

function emptyTarget(): TargetState {
  return { sent: [], setpoints: {}, changes: {} };
}

function input(overrides: Partial<PolicyInput> = {}, limits: TargetSafety = {}): PolicyInput {
  return { request: request(), now: NOW, limits, oscillation: OSCILLATION, target: emptyTarget(), suspendedUntil: undefined, ...overrides };
}

/** Speed 40 → 30 (by `down`) → 40 (by `up`) → 30 (by `down`): a further 40 is the third reversal. */
function speedFight(down: { ruleId: string; priority: number }, up: { ruleId: string; priority: number }): TargetState {
  return {
    ...emptyTarget(),
    setpoints: { speed: { value: 30, at: NOW - 1_000, ...down, commandId: 'c-3' } },
    changes: {
      speed: [
        { value: 30, from: 40, ...down, at: NOW - 3_000 },
        { value: 40, from: 30, ...up, at: NOW - 2_000 },
        { value: 30, from: 40, ...down, at: NOW - 1_000 },
      ],
    },
  };
}

function reasonOf(decision: ReturnType<typeof decideCommand>): string | undefined {
  return decision.allowed ? undefined : decision.reason;
}

describe('decideCommand', () => {
  it('allows a command with no limits and no history, unchanged', () => {
    const decision = decideCommand(input());
    expect(decision).toMatchObject({ allowed: true, key: 'speed', value: 30, params: { speed: 30 } });
    expect(decision.split).toBeUndefined();
    expect(decision.suspension).toBeUndefined();
    expect(decision.changes).toEqual([{ value: 30, from: undefined, ruleId: 'r', priority: 0, at: NOW }]);
  });

  it('refuses a suspended rule for good (no retry time), naming when the suspension ends', () => {
    const decision = decideCommand(input({ suspendedUntil: NOW + 5_000 }));
    expect(decision).toMatchObject({ allowed: false, reason: `suspended: rule r is suspended for oscillation until ${new Date(NOW + 5_000).toISOString()}` });
    expect(decision).not.toHaveProperty('retryAt');
  });

  it('cooldown: delays within it until it ends, allows after it, for a higher priority and for stop', () => {
    const target = { ...emptyTarget(), lastCommandAt: NOW - 1_000, lastPriority: 0 };
    expect(decideCommand(input({ target }, { cooldown: 5_000 }))).toMatchObject({ allowed: false, reason: 'cooldown: A/ctl was commanded 1000 ms ago (cooldown 5000 ms)', retryAt: NOW + 4_000 });
    expect(decideCommand(input({ target: { ...target, lastCommandAt: NOW - 5_000 } }, { cooldown: 5_000 })).allowed).toBe(true);
    expect(decideCommand(input({ target, request: request({ priority: 1 }) }, { cooldown: 5_000 })).allowed).toBe(true);
    expect(decideCommand(input({ target, request: request({ action: 'stop', params: {} }) }, { cooldown: 5_000 })).allowed).toBe(true);
  });

  it('minimum dwell: delays a different value until the dwell ends, allows the same value', () => {
    const target: TargetState = { ...emptyTarget(), setpoints: { speed: { value: 40, at: NOW - 2_000, ruleId: 'r', priority: 0, commandId: 'c-1' } } };
    expect(decideCommand(input({ target }, { minDwell: 10_000 }))).toMatchObject({ allowed: false, reason: 'dwell: speed of A/ctl changed 2000 ms ago (minimum dwell 10000 ms)', retryAt: NOW + 8_000 });
    expect(decideCommand(input({ target, request: request({ params: { speed: 40 } }) }, { minDwell: 10_000 })).allowed).toBe(true);
  });

  it('budget: delays once the last minute’s sends reach it, until enough leave the window; stop still goes', () => {
    const target = { ...emptyTarget(), sent: [NOW - 30_000, NOW - 10_000] };
    expect(decideCommand(input({ target }, { budgetPerMinute: 2 }))).toMatchObject({ allowed: false, reason: 'budget: A/ctl already had 2 commands in the last minute (budget 2)', retryAt: NOW + 30_000 });
    expect(decideCommand(input({ target: { ...target, sent: [NOW - 40_000, NOW - 30_000, NOW - 10_000] } }, { budgetPerMinute: 2 }))).toMatchObject({ retryAt: NOW + 30_000 });
    expect(decideCommand(input({ target, request: request({ action: 'stop', params: {} }) }, { budgetPerMinute: 2 })).allowed).toBe(true);
  });

  it('checks in order: a suspended rule is refused before its cooldown', () => {
    const target = { ...emptyTarget(), lastCommandAt: NOW - 1_000 };
    expect(reasonOf(decideCommand(input({ target, suspendedUntil: NOW + 1 }, { cooldown: 5_000 })))).toMatch(/^suspended: /);
  });

  it('max step: clamps a big speed change to one step and returns the ramp toward the goal', () => {
    const target: TargetState = { ...emptyTarget(), setpoints: { speed: { value: 40, at: NOW - 60_000, ruleId: 'r', priority: 0, commandId: 'c-1' } } };
    const decision = decideCommand(input({ target, request: request({ params: { speed: 15 } }) }, { maxStep: 0.2, minDwell: 5_000 }));
    expect(decision).toMatchObject({ allowed: true, value: 32, params: { speed: 32 } });
    expect(decision.split).toEqual({ goal: 15, stepEveryMs: 5_000, note: 'speed 15 split: 32 now (max step 20 % from 40), then a step every 5000 ms' });
  });

  it('max step: with nothing commanded yet the base is the target’s reading; no base, no clamp', () => {
    expect(decideCommand(input({ request: request({ params: { speed: 100 }, current: 50 }) }, { maxStep: 0.1 }))).toMatchObject({ allowed: true, value: 55 });
    expect(decideCommand(input({ request: request({ params: { speed: 100 } }) }, { maxStep: 0.1 }))).toMatchObject({ allowed: true, value: 100, split: undefined });
  });

  it('oscillation: the third reversal suspends the lowest-priority rule involved; the higher one still sends', () => {
    const target = speedFight({ ruleId: 'low', priority: 1 }, { ruleId: 'high', priority: 9 });
    const decision = decideCommand(input({ target, request: request({ ruleId: 'high', priority: 9, params: { speed: 40 } }) }));
    expect(decision.allowed).toBe(true);
    expect(decision.suspension).toEqual({ offender: 'low', until: NOW + 300_000, key: 'speed', reason: 'speed of A/ctl reversed direction 3 times within 60000 ms (rules: low, high); speed follows rule high (priority 9)' });
    expect(decision.changes).toHaveLength(4);
  });

  it('oscillation: a rule fighting itself is its own offender; its speed-up is refused (the lower speed holds), and the history starts again', () => {
    const target = speedFight({ ruleId: 'r', priority: 0 }, { ruleId: 'r', priority: 0 });
    const decision = decideCommand(input({ target, request: request({ params: { speed: 40 } }) }));
    expect(reasonOf(decision)).toBe('suspended: speed of A/ctl reversed direction 3 times within 60000 ms (rules: r); holding speed at 30 (the lower speed)');
    expect(decision.suspension?.offender).toBe('r');
    expect(decision.changes).toEqual([]);
  });

  it('oscillation: changes older than the window are forgotten; reset_fault and an unchanged value are no change', () => {
    const old = [{ value: 30, from: 40, ruleId: 'r', priority: 0, at: NOW - 120_000 }];
    const decision = decideCommand(input({ target: { ...emptyTarget(), changes: { speed: old } } }));
    expect(decision.changes).toEqual([{ value: 30, from: undefined, ruleId: 'r', priority: 0, at: NOW }]);
    expect(decideCommand(input({ request: request({ action: 'reset_fault', params: {} }) })).changes).toBeUndefined();
    const same: TargetState = { ...emptyTarget(), setpoints: { speed: { value: 30, at: NOW - 1_000, ruleId: 'r', priority: 0, commandId: 'c-1' } } };
    expect(decideCommand(input({ target: same })).changes).toBeUndefined();
  });
});

describe('decideCommand: the oscillation guard’s hold', () => {
  it('a rule whose own slowdown is the reversal: the slowdown goes out (the safer value), the rule is suspended, the history starts again', () => {
    // 30 → 40 → 30 → 40: a further 30 is the third reversal, toward the lower speed.
    const target: TargetState = {
      ...emptyTarget(),
      setpoints: { speed: { value: 40, at: NOW - 1_000, ruleId: 'r', priority: 0, commandId: 'c-3' } },
      changes: {
        speed: [
          { value: 40, from: 30, ruleId: 'r', priority: 0, at: NOW - 3_000 },
          { value: 30, from: 40, ruleId: 'r', priority: 0, at: NOW - 2_000 },
          { value: 40, from: 30, ruleId: 'r', priority: 0, at: NOW - 1_000 },
        ],
      },
    };
    const decision = decideCommand(input({ target }));
    expect(decision).toMatchObject({ allowed: true, value: 30, params: { speed: 30 }, changes: [], note: 'oscillation guard: holding speed at 30 (the lower speed) while rule r is suspended' });
    expect(decision.suspension).toMatchObject({ offender: 'r', until: NOW + 300_000, reason: 'speed of A/ctl reversed direction 3 times within 60000 ms (rules: r); holding speed at 30 (the lower speed)' });
  });

  it('a suspended rule: the next steps of its intent already under way toward a lower speed go on (the guard’s hold), anything else is refused', () => {
    // Ramps are the reconcile's steps now: `underWay` (a command was sent for the intent) replaces main's fromRamp.
    const target: TargetState = { ...emptyTarget(), setpoints: { speed: { value: 32, at: NOW - 5_000, ruleId: 'r', priority: 0, commandId: 'c-1' } } };
    const suspendedUntil = NOW + 60_000;
    expect(decideCommand(input({ target, suspendedUntil, underWay: true, request: request({ params: { speed: 15 } }) }, { maxStep: 0.2 }))).toMatchObject({ allowed: true, value: 25.6 });
    expect(reasonOf(decideCommand(input({ target, suspendedUntil, underWay: true, request: request({ params: { speed: 40 } }) })))).toMatch(/^suspended: /);
    const fresh = decideCommand(input({ target, suspendedUntil, request: request({ params: { speed: 15 } }) }));
    expect(reasonOf(fresh)).toMatch(/^suspended: /);
    expect(fresh.allowed === false && fresh.retryAt).toBeUndefined(); // refused for good while suspended (blocked), not a delay
  });
});

describe('the oscillation history (oscillation.ts)', () => {
  const LIMITS = { window: 600_000, reversals: 4, suspendFor: 300_000 };
  const change = (from: number | undefined, value: number, at: number, ruleId = 'r'): SetpointChange => ({ from, value, at, ruleId, priority: 0 });

  it('a ramp is one move: steps in one direction by one rule extend the last change, and are no reversal', () => {
    let history: SetpointChange[] = [];
    for (const [from, value, at] of [[undefined, 32], [32, 25.6], [25.6, 20.48], [20.48, 15]].map(([from, value], index) => [from, value, index * 5_000] as const)) {
      history = historyWith(history, change(from, value!, at), LIMITS);
    }
    expect(history).toEqual([change(undefined, 32, 0), change(32, 15, 15_000)]);
    expect(countReversals(valuesOf(history))).toBe(0);
    history = historyWith(history, change(15, 18, 40_000), LIMITS);
    expect(countReversals(valuesOf(history))).toBe(1);
    // Another rule continuing the same direction is kept apart (it is involved).
    expect(historyWith(history, change(18, 21, 45_000, 'other'), LIMITS)).toHaveLength(4);
  });

  it('a slow cycle (40 → 15 → 40 in ramps, ~110 s a period) makes its 4th reversal within the 10 minute window', () => {
    // Ramp steps of 20 % every 5 s, 30 s at each end: the demo's old overheat rule.
    const steps: { from: number; value: number; at: number }[] = [];
    let at = 0;
    let value = 40;
    for (let period = 0; period < 3; period++) {
      for (const goal of [15, 40]) {
        while (value !== goal) {
          const next = goal < value ? Math.max(goal, value * 0.8) : Math.min(goal, value * 1.2);
          steps.push({ from: value, value: next, at });
          value = next;
          at += 5_000;
        }
        at += 30_000;
      }
    }
    let history: SetpointChange[] = [];
    const fourthAt = steps.find((step) => {
      history = historyWith(history, change(step.from, step.value, step.at), LIMITS);
      return countReversals(valuesOf(history)) === 4;
    })?.at;
    // The 4th reversal is the slowdown of the third period, after two full swings.
    expect(fourthAt).toBeGreaterThan(2 * 110_000);
    expect(fourthAt).toBeLessThan(LIMITS.window);
    expect(history.length).toBe(5);
  });

  it('changes that ended longer than the window ago are dropped; the history is bounded', () => {
    const old = change(40, 30, 0);
    expect(historyWith([old], change(30, 40, 600_001), LIMITS)).toEqual([change(30, 40, 600_001)]);
    let history: SetpointChange[] = [];
    for (let index = 0; index < 200; index++) history = historyWith(history, change(index % 2 ? 40 : 30, index % 2 ? 30 : 40, index), LIMITS);
    expect(history).toHaveLength(MAX_CHANGES);
  });

  it('isSafer: the lower speed, stop over start, the lower-energy strategy; any other setpoint is not changed', () => {
    expect(isSafer('speed', 15, 40)).toBe(true);
    expect(isSafer('speed', 40, 15)).toBe(false);
    expect(isSafer('run', 'stop', 'start')).toBe(true);
    expect(isSafer('run', 'start', 'stop')).toBe(false);
    expect(isSafer('strategy', 'energy-saving', 'max-throughput')).toBe(true);
    expect(isSafer('strategy', 'max-throughput', 'energy-saving')).toBe(false);
    expect(isSafer('strategy', 'safe', 'quality-first')).toBe(true);
    expect(isSafer('strategy', 'unknown', 'safe')).toBe(false);
    expect(isSafer('speed', 15, undefined)).toBe(false);
  });
});

describe('the policy’s helpers', () => {
  it('setpointOf names the key each action changes', () => {
    expect(setpointOf('set_speed', { speed: 3 })).toEqual({ key: 'speed', value: 3 });
    expect(setpointOf('set_strategy', { strategy: 'x' })).toEqual({ key: 'strategy', value: 'x' });
    expect(setpointOf('stop', {})).toEqual({ key: 'run', value: 'stop' });
    expect(setpointOf('reset_fault', {})).toEqual({ key: 'reset', value: 'reset' });
  });

  it('countReversals counts sign changes of numbers and A→B→A returns of other values', () => {
    expect(countReversals([40, 30, 40, 30])).toBe(2);
    expect(countReversals([10, 20, 20, 30])).toBe(0);
    expect(countReversals(['a', 'b', 'a', 'b'])).toBe(2);
  });

  it('recentSends keeps the last minute; stepEvery is the larger of dwell and cooldown, at least 1 s', () => {
    expect(recentSends([NOW - 60_000, NOW - 59_999, NOW], NOW)).toEqual([NOW - 59_999, NOW]);
    expect(stepEvery({})).toBe(1000);
    expect(stepEvery({ minDwell: 5_000, cooldown: 2_000 })).toBe(5_000);
  });

  it('TargetLimits: the first matching target entry over the defaults', () => {
    const safety = safetySchema.parse({ defaults: { cooldown: 1_000, maxStep: 0.2 }, targets: { 'A/line-*': { cooldown: 5_000 }, '*/line-ctl': { cooldown: 9_000 } } });
    const limits = new TargetLimits(safety);
    expect(limits.of('A', 'line-ctl')).toEqual({ cooldown: 5_000, maxStep: 0.2 });
    expect(limits.of('B', 'line-ctl')).toEqual({ cooldown: 9_000, maxStep: 0.2 });
    expect(limits.of('A', 'st-1')).toEqual({ cooldown: 1_000, maxStep: 0.2 });
  });
});
