// Which time each thing the engine says is in (docs/rules.md#which-time), on a real broker's
// in-process bus with engine time driven by hand (ManualClock at T0) and line A's devices a year
// ahead of it: stamps (alerts, alarm transitions, commands, outcomes) in the line's event time,
// timeouts (command expiry, shelving) in engine time.
import { afterEach, describe, expect, it } from 'vitest';
import { topics } from '../../contracts/topics.js';
import { settle } from '../../rules/clock.js';
import { startFixture, T0, type Fixture } from './fixture.js';

const AHEAD = 365 * 86_400_000;
const DEVICE = T0 + AHEAD;

const RULES = `rules:
  - id: overheat
    match: { line: A, device: conv-2, kind: telemetry }
    when: values.temp > 80
    clear: values.temp < 70
    actions:
      - command: { target: line-ctl, action: set_speed, params: { speed: 20 }, ttl: 3s }
      - alert: { severity: warning, message: "conv-2 at {values.temp}" }
`;

let f: Fixture | undefined;
afterEach(async () => {
  await f?.stop();
  f = undefined;
});

async function request(fx: Fixture, action: string, extra: Record<string, unknown> = {}): Promise<void> {
  await fx.broker.broker.bus.publish(topics.alarmSet('A', 'overheat:A/conv-2'), JSON.stringify({ action, operator: 'user:ana', ts: fx.clock.now(), ...extra }), { qos: 1 });
  await settle();
}

describe('which time', () => {
  it("stamps alerts, alarm transitions, the command and its expired outcome in the line's time; expiry and shelving run on engine time", async () => {
    f = await startFixture(RULES, { maxClockSkewMs: 2 * AHEAD, ackTimeoutMs: 1000, retries: 10 });
    await f.telemetry('conv-2', { temp: 60 }, { ts: DEVICE });
    await f.advance(200);
    await f.telemetry('conv-2', { temp: 90 }, { ts: DEVICE + 1000 }); // the devices' clock runs ahead: 1 s of theirs in 0.2 s
    expect(f.alerts.map((a) => [a.state, a.ts])).toEqual([['raised', DEVICE + 1000]]);
    expect(f.alarms.map((a) => [a.transition, a.ts, a.raisedAt])).toEqual([['raise', DEVICE + 1000, DEVICE + 1000]]);
    expect(f.commands.map((c) => [c.target, c.ts, c.expiresAt])).toEqual([['line-ctl', DEVICE + 1000, DEVICE + 4000]]);

    // An operator's ack 0.5 s (engine) later: its transition at the line's time; a shelve lasts 60 s of engine time.
    await f.advance(500);
    await request(f, 'acknowledge');
    await request(f, 'shelve', { shelveForMs: 60_000 });
    expect(f.alarms.slice(1).map((a) => [a.transition, a.ts, a.shelvedUntil])).toEqual([
      ['ack', DEVICE + 1500, undefined],
      ['shelve', DEVICE + 1500, T0 + 700 + 60_000],
    ]);

    // Nobody acks the command: it expires after its ttl of engine time (3 s: 3 attempts of the 11
    // its retries allow), at engine T0 + 3200: its outcome at the line's time then, DEVICE + 4000.
    await f.advance(3000);
    expect(f.outcomes.map((o) => [o.outcome, o.attempts, o.issuedAt, o.ts])).toEqual([['expired', 3, DEVICE + 1000, DEVICE + 4000]]);

    // A status far ahead (a connect's ts) does not move the line's time.
    await f.broker.broker.bus.publish(topics.status('A', 'conv-9'), JSON.stringify({ ts: DEVICE + AHEAD, status: 'online' }), { qos: 1 });
    await f.advance(57_300); // engine T0 + 61 s; the shelving ran out at T0 + 60.7 s, the line's DEVICE + 61.5 s
    expect(f.alarms.at(-1)).toMatchObject({ transition: 'unshelve', ts: DEVICE + 61_500 });
    expect(f.alarms.at(-1)).not.toHaveProperty('shelvedUntil');
    await f.telemetry('conv-2', { temp: 60 }, { ts: DEVICE + 70_000 });
    expect(f.alerts.at(-1)).toMatchObject({ state: 'cleared', ts: DEVICE + 70_000 });
    expect(f.alarms.at(-1)).toMatchObject({ transition: 'return', ts: DEVICE + 70_000 });
  });

  it("takes an outcome's ts from the device's ack", async () => {
    f = await startFixture(RULES, { maxClockSkewMs: 2 * AHEAD });
    await f.telemetry('conv-2', { temp: 90 }, { ts: DEVICE });
    const id = f.commands[0]!.id;
    await f.advance(100);
    await f.broker.broker.bus.publish(topics.ack('A', 'line-ctl'), JSON.stringify({ id, result: 'done', ts: DEVICE + 777 }), { qos: 1 });
    await settle();
    expect(f.outcomes.map((o) => [o.outcome, o.issuedAt, o.ts])).toEqual([['done', DEVICE, DEVICE + 777]]);
  });

  it('is engine time on a line no device was heard from', async () => {
    f = await startFixture(`rules:
  - id: silent
    match: { line: A }
    absent: { after: 5s, devices: [env-1] }
    actions: [{ alert: { severity: warning, message: "{device} silent" } }]
`);
    await f.advance(20_000);
    expect(f.alerts.map((a) => a.id)).toEqual(['silent:A/env-1']);
    expect(f.alerts[0]!.ts).toBeGreaterThanOrEqual(T0 + 5000);
    expect(f.alerts[0]!.ts).toBeLessThanOrEqual(T0 + 20_000);
  });
});
