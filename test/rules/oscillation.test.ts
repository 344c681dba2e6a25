// The oscillation guard end to end on a real broker (hand-driven clock): a fast-flapping rule is
// suspended, holds the safer value, and acts again from the current conditions when suspendFor
// ends, its critical alert cleared.
import { afterEach, describe, expect, it } from 'vitest';
import { startFixture, type Fixture } from './fixture.js';

let f: Fixture | undefined;
afterEach(async () => {
  await f?.stop();
  f = undefined;
});

/**
 * A rule that sets ctl's speed to `hot` when conv-1 is hot and to `cool` when it cools: with the
 * slowdown cooling it, it flaps. Default window and reversals, a 1 minute suspension.
 */
function flappingRule(id: string, hot: number, cool: number): string {
  return `safety:
  oscillation: { suspendFor: 1m }
rules:
  - id: ${id}
    match: { device: conv-1 }
    when: values.temp > 80
    actions: [{ command: { target: ctl, action: set_speed, params: { speed: ${hot} } } }]
    onClear: [{ command: { target: ctl, action: set_speed, params: { speed: ${cool} } } }]
`;
}
const FLAPPING = flappingRule('flap', 40, 60);

async function flap(fx: Fixture, times: number): Promise<void> {
  for (let i = 0; i < times; i++) {
    await fx.telemetry('conv-1', { temp: 85 });
    await fx.advance(3_000);
    await fx.telemetry('conv-1', { temp: 70 });
    await fx.advance(3_000);
  }
}

describe('oscillation guard: suspend, hold, resume', () => {
  it('a rule flapping every few seconds is suspended on its 4th reversal, holding the lower speed; when suspendFor ends its alert clears and it acts again from the current conditions', async () => {
    f = await startFixture(FLAPPING);
    f.autoAck('ctl');
    await flap(f, 3);
    // 40, 60, 40, 60, 40: three reversals; the next 60 would be the fourth and is refused, so 40 (the lower) holds.
    expect(f.commands.map((c) => c.params.speed)).toEqual([40, 60, 40, 60, 40]);
    const raised = f.alerts.filter((a) => a.id === 'oscillation:flap');
    expect(raised).toHaveLength(1);
    expect(raised[0]).toMatchObject({ state: 'raised', severity: 'critical', rule: 'flap', device: 'ctl' });
    expect(raised[0]!.message).toMatch(/reversed direction 4 times within 600000 ms/);
    const suspendedAt = raised[0]!.ts;
    expect(f.engine.counters().suspended_rules).toBe(1);
    // Still flapping while suspended: nothing goes out. Each new intent that differs from the held 40
    // is blocked as suspended, once (the refused 60, then each cool's 60); a hot's 40 is what the device has, so no command at all.
    await flap(f, 2);
    expect(f.commands).toHaveLength(5);
    expect(f.outcomes.filter((o) => o.outcome === 'blocked').map((o) => [o.params.speed, o.reason!.split(':', 1)[0]])).toEqual([
      [60, 'suspended'],
      [60, 'suspended'],
      [60, 'suspended'],
    ]);
    // conv-1 is cool now (the last reading 70): when the minute ends the rule's clear wish, 60, goes out.
    await f.advance(suspendedAt + 60_000 - f.clock.now() + 100);
    expect(f.alerts.filter((a) => a.id === 'oscillation:flap').map((a) => a.state)).toEqual(['raised', 'cleared']);
    expect(f.engine.counters().suspended_rules).toBe(0);
    expect(f.engine.health().status).toBe('ok');
    expect(f.commands.map((c) => c.params.speed)).toEqual([40, 60, 40, 60, 40, 60]);
    expect(f.commands.at(-1)!.ts).toBeGreaterThanOrEqual(suspendedAt + 60_000);
    // And it follows the conditions again: hot → 40.
    await f.telemetry('conv-1', { temp: 85 });
    expect(f.commands.map((c) => c.params.speed)).toEqual([40, 60, 40, 60, 40, 60, 40]);
  });

  // With the speeds swapped the trip is a slowdown (sent, held); the instance active again while suspended wants 60, not what is held.
  const INVERSE = flappingRule('inverse', 60, 40);

  it('an instance active when the suspension ends gets its actions’ command sent (the condition still holds)', async () => {
    f = await startFixture(INVERSE);
    f.autoAck('ctl');
    await flap(f, 3); // its last 40 is the 4th reversal: the lower speed, sent; suspended
    const suspendedAt = f.alerts.find((a) => a.id === 'oscillation:inverse')!.ts;
    await f.telemetry('conv-1', { temp: 85 }); // active again while suspended: its 60 is blocked (once), 40 held
    expect(f.outcomes.filter((o) => o.outcome === 'blocked').map((o) => o.params.speed)).toEqual([60]);
    const sentBefore = f.commands.length;
    await f.advance(suspendedAt + 60_000 - f.clock.now() + 100);
    expect(f.commands.slice(sentBefore).map((c) => [c.params.speed, c.origin])).toEqual([[60, 'rule:inverse']]);
  });

  it('a suspension restored from the state file after a restart also ends with the rule resuming', async () => {
    f = await startFixture(INVERSE);
    f.autoAck('ctl');
    await flap(f, 3);
    const suspendedAt = f.alerts.find((a) => a.id === 'oscillation:inverse')!.ts;
    await f.telemetry('conv-1', { temp: 85 }); // active (kept in the state file, with its intent); its 60 is blocked
    await f.restart();
    expect(f.engine.counters().suspended_rules).toBe(1);
    const sentBefore = f.commands.length;
    await f.advance(suspendedAt + 60_000 - f.clock.now() + 100);
    expect(f.engine.counters().suspended_rules).toBe(0);
    expect(f.commands.slice(sentBefore).map((c) => [c.params.speed, c.origin])).toEqual([[60, 'rule:inverse']]);
  });

  it('a trip on a slowdown sends the slowdown (the lower speed is the one held)', async () => {
    // The same flapping with the speeds swapped, so that the 4th reversal is a slowdown.
    f = await startFixture(flappingRule('inverse', 60, 40));
    f.autoAck('ctl');
    await flap(f, 3);
    // 60, 40, 60, 40, 60, and the 4th reversal is the slowdown to 40: it goes out, then the rule is suspended.
    expect(f.commands.map((c) => c.params.speed)).toEqual([60, 40, 60, 40, 60, 40]);
    expect(f.alerts.filter((a) => a.id === 'oscillation:inverse').map((a) => a.state)).toEqual(['raised']);
    await flap(f, 1);
    expect(f.commands).toHaveLength(6);
  });
});
