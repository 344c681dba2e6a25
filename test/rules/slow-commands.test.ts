// Commands that take time: an accepted command stays pending until done/failed or its action's
// completion timeout (rules.completionTimeoutMs); an outcome after that is still recorded.
import { afterEach, describe, expect, it } from 'vitest';
import { startFixture, type Fixture } from './fixture.js';

let f: Fixture | undefined;
afterEach(async () => {
  await f?.stop();
  f = undefined;
});

/** A rule sending set_speed 20 to the conveyor conv-2, which takes its time to get there. */
const SLOW = `rules:
  - id: slow-down
    match: { device: knob }
    when: values.go == 1
    actions: [{ command: { target: conv-2, action: set_speed, params: { speed: 20 } } }]
`;

describe('slow commands', () => {
  it('an accepted command is still pending after expiresAt + ackTimeout; its done then is its outcome', async () => {
    f = await startFixture(SLOW); // ttl 10 s, ack timeout 2 s: the old loop gave up at 12 s
    await f.telemetry('knob', { go: 1 });
    const command = f.commands[0]!;
    await f.ack('conv-2', command.id, 'accepted');
    await f.advance(20_000);
    expect(f.engine.counters().pending_commands).toBe(1);
    await f.ack('conv-2', command.id, 'done');
    expect(f.outcomes.map((o) => [o.id, o.outcome])).toEqual([
      [command.id, 'accepted'],
      [command.id, 'done'],
    ]);
    expect(f.engine.counters()).toMatchObject({ pending_commands: 0, outcome_done: 1 });
    expect(f.engine.counters().acks_unknown ?? 0).toBe(0);
    expect(f.engine.counters().acks_late ?? 0).toBe(0);
  });

  it('a done or failed after the completion timeout is recorded as the outcome, counted acks_late, never acks_unknown', async () => {
    f = await startFixture(SLOW, { completionTimeoutMs: { set_speed: 5_000 } });
    await f.telemetry('knob', { go: 1 });
    const first = f.commands[0]!;
    await f.ack('conv-2', first.id, 'accepted');
    await f.advance(6_000);
    expect(f.engine.counters()).toMatchObject({ pending_commands: 0, completions_timed_out: 1 });
    await f.ack('conv-2', first.id, 'failed', { reason: 'did not reach the speed within 30 s' });
    // The same for a late done: a second command, given up on the same way.
    await f.telemetry('knob', { go: 0 });
    await f.telemetry('knob', { go: 1 }); // restated after the failure: sent again
    const second = f.commands[1]!;
    await f.ack('conv-2', second.id, 'accepted');
    await f.advance(6_000);
    await f.ack('conv-2', second.id, 'done');
    expect(f.outcomes.map((o) => [o.id, o.outcome])).toEqual([
      [first.id, 'accepted'],
      [first.id, 'failed'],
      [second.id, 'accepted'],
      [second.id, 'done'],
    ]);
    expect(f.outcomes[1]!.reason).toBe('late (accepted, no done or failed within 5000 ms (rules.completionTimeoutMs.set_speed)): did not reach the speed within 30 s');
    expect(f.engine.counters()).toMatchObject({ acks_late: 2, outcome_failed: 1, outcome_done: 1, completions_timed_out: 2 });
    expect(f.engine.counters().acks_unknown ?? 0).toBe(0);
  });

  it('a done for a command that expired without any ack is recorded too', async () => {
    f = await startFixture(SLOW, { ackTimeoutMs: 1_000, retries: 1 });
    await f.telemetry('knob', { go: 1 });
    const command = f.commands[0]!;
    await f.advance(3_000);
    expect(f.outcomes.map((o) => o.outcome)).toEqual(['expired']);
    await f.ack('conv-2', command.id, 'done');
    expect(f.outcomes.map((o) => o.outcome)).toEqual(['expired', 'done']);
    expect(f.engine.counters()).toMatchObject({ acks_late: 1 });
    expect(f.engine.counters().acks_unknown ?? 0).toBe(0);
  });

  it('an intent whose command expired (the device was away) is sent again once the device is heard from, not dropped', async () => {
    f = await startFixture(SLOW, { ackTimeoutMs: 1_000, retries: 1 });
    await f.telemetry('knob', { go: 1 });
    await f.advance(3_000);
    expect(f.outcomes.map((o) => o.outcome)).toEqual(['expired']);
    const sentBefore = f.commands.length;
    await f.advance(10_000); // nothing from conv-2: nothing sent again yet
    expect(f.commands.length).toBe(sentBefore);
    f.autoAck('conv-2');
    await f.telemetry('conv-2', { speed: 40 }); // back: the winning intent goes again
    await f.advance(500);
    expect(f.commands.slice(sentBefore).map((c) => [c.target, c.action, c.params])).toEqual([['conv-2', 'set_speed', { speed: 20 }]]);
    expect(f.engine.counters()).toMatchObject({ expired_resent: 1 });
  });
});
