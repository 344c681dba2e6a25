// Event-time guards (issue 11, item 4) on a real broker's in-process bus and a real engine on a
// ManualClock: a device timestamp too far in the future is refused (it never moves a watermark,
// never reaches a window, is counted and reported on the dead-letter topic), and a message that
// lacks a value a condition reads leaves the rule's state as it was (missing ≠ false).
import { afterEach, describe, expect, it } from 'vitest';
import { deadLetterSchema, type DeadLetterPayload } from '../../contracts/schemas.js';
import { topics } from '../../contracts/topics.js';
import { startFixture, type Fixture } from './fixture.js';

let f: Fixture | undefined;
let unsubscribeDead: (() => Promise<void>) | undefined;
afterEach(async () => {
  await unsubscribeDead?.();
  unsubscribeDead = undefined;
  await f?.stop();
  f = undefined;
});

const HOUR = 3_600_000;
const raised = (fx: Fixture): string[] => fx.alerts.filter((a) => a.state === 'raised').map((a) => a.id);
const cleared = (fx: Fixture): string[] => fx.alerts.filter((a) => a.state === 'cleared').map((a) => a.id);

/** Every dead letter published on the bus, validated against its contract. */
async function deadLetters(fx: Fixture): Promise<DeadLetterPayload[]> {
  const letters: DeadLetterPayload[] = [];
  unsubscribeDead = await fx.broker.broker.bus.subscribe(topics.deadLetters, (_topic, payload) => {
    letters.push(deadLetterSchema.parse(JSON.parse(payload.toString())));
  });
  return letters;
}

const OVERHEAT = `rules:
  - id: overheat
    match: { line: A, device: conv-2, kind: telemetry }
    when: values.motorTemp > 80
    clear: values.motorTemp < 70
    actions:
      - command: { target: line-ctl, action: set_speed, params: { speed: 15 } }
      - alert: { severity: warning, message: "{device} at {values.motorTemp}" }
`;

describe('a device timestamp in the future', () => {
  it('is refused, counted and dead-lettered: it does not mute the device, the next hot reading fires the rule', async () => {
    f = await startFixture(OVERHEAT);
    const letters = await deadLetters(f);
    await f.telemetry('conv-2', { motorTemp: 50 });
    await f.telemetry('conv-2', { motorTemp: 55 }, { ts: f.clock.now() + HOUR }); // a device clock an hour ahead
    await f.advance(1_000);
    await f.telemetry('conv-2', { motorTemp: 92 }); // a real hot reading
    expect(f.commands.map((c) => `${c.target} ${c.action} ${JSON.stringify(c.params)}`)).toEqual(['line-ctl set_speed {"speed":15}']);
    expect(raised(f)).toEqual(['overheat:A/conv-2']);
    expect(f.alerts[0]!.message).toBe('conv-2 at 92');
    const counters = f.engine.counters();
    expect(counters.future_ts).toBe(1);
    expect(counters.late).toBe(0);
    expect(letters).toHaveLength(1);
    expect(letters[0]).toMatchObject({ clientId: 'rules', topic: 'lw/A/conv-2/telemetry', ts: f.clock.now() - 1_000 });
    expect(letters[0]!.reason).toMatch(/^future_ts: ts is 3600000 ms ahead of the engine's clock \(rules\.maxClockSkewMs 5000\).*1 from A\/conv-2/);
    expect(JSON.parse(Buffer.from(letters[0]!.payload, 'base64').toString())).toMatchObject({ values: { motorTemp: 55 } });
  });

  it('never enters a window; a skew within maxClockSkewMs is taken as usual; the count is per device', async () => {
    f = await startFixture(
      `rules:
  - id: hot-average
    match: { line: A, device: "conv-*", kind: telemetry }
    window: { of: values.motorTemp, count: 3 }
    when: count >= 2 && avg > 80
    actions: [{ alert: { severity: warning, message: "{device} avg {avg}" } }]
`,
      { maxClockSkewMs: 2_000 },
    );
    const letters = await deadLetters(f);
    await f.telemetry('conv-1', { motorTemp: 200 }, { ts: f.clock.now() + 2_001 }); // refused: just beyond the skew
    await f.telemetry('conv-1', { motorTemp: 60 });
    await f.telemetry('conv-1', { motorTemp: 70 });
    expect(raised(f)).toEqual([]); // 200 is not in the window: avg 65
    await f.telemetry('conv-3', { motorTemp: 300 }, { ts: f.clock.now() + 10 * HOUR });
    await f.telemetry('conv-3', { motorTemp: 300 }, { ts: f.clock.now() + 10 * HOUR + 1 });
    await f.telemetry('conv-2', { motorTemp: 90 }, { ts: f.clock.now() + 2_000 }); // within the skew: taken
    await f.telemetry('conv-2', { motorTemp: 90 }, { ts: f.clock.now() + 2_000 });
    expect(raised(f)).toEqual(['hot-average:A/conv-2']);
    expect(f.engine.counters().future_ts).toBe(3);
    expect(letters.map((letter) => /(\d+) from (\S+)\)$/.exec(letter.reason)?.slice(1).join(' '))).toEqual(['1 A/conv-1', '1 A/conv-3', '2 A/conv-3']);
  });
});

describe('a message that lacks a value the condition reads (missing ≠ false)', () => {
  it('does not clear an active rule, by its condition or by its clear', async () => {
    f = await startFixture(`rules:
  - id: x-high
    match: { device: dev-1, kind: telemetry }
    when: values.x > 5
    actions: [{ alert: { severity: warning, message: "x {values.x}" } }]
  - id: x-high-hysteresis
    match: { device: dev-1, kind: telemetry }
    when: values.x > 5
    clear: values.x < 2
    actions: [{ alert: { severity: warning, message: "x {values.x}" } }]
`);
    await f.telemetry('dev-1', { x: 9 });
    expect(raised(f)).toEqual(['x-high:A/dev-1', 'x-high-hysteresis:A/dev-1']);
    await f.advance(14);
    await f.telemetry('dev-1', { y: 1 }); // another reading, no x
    await f.advance(10_000);
    await f.telemetry('dev-1', { y: 2 });
    expect(cleared(f)).toEqual([]);
    await f.telemetry('dev-1', { x: 1 }); // a known x that no longer holds
    expect(cleared(f)).toEqual(['x-high:A/dev-1', 'x-high-hysteresis:A/dev-1']);
  });

  it('neither starts nor resets a `for` timer; a known false still does, and && / || decide when one side is known', async () => {
    f = await startFixture(`rules:
  - id: x-high-for
    match: { device: dev-1, kind: telemetry }
    when: values.x > 5
    for: 10s
    actions: [{ alert: { severity: warning, message: "x high" } }]
  - id: x-or-y
    match: { device: dev-2, kind: telemetry }
    when: values.x > 5 || values.y > 5
    actions: [{ alert: { severity: warning, message: "x or y high" } }]
  - id: x-and-y
    match: { device: dev-2, kind: telemetry }
    when: values.x > 5 && values.y > 5
    actions: [{ alert: { severity: warning, message: "x and y high" } }]
`);
    await f.telemetry('dev-1', { x: 9 });
    await f.advance(5_000);
    await f.telemetry('dev-1', { y: 0 }); // unknown: the pending timer runs on
    await f.advance(5_000);
    await f.telemetry('dev-1', { x: 9 });
    expect(raised(f)).toEqual(['x-high-for:A/dev-1']);

    await f.telemetry('dev-2', { y: 9 }); // x unknown, y > 5: the || holds; the && is unknown
    expect(raised(f)).toEqual(['x-high-for:A/dev-1', 'x-or-y:A/dev-2']);
    await f.telemetry('dev-2', { y: 1 }); // x unknown, y ≤ 5: the || is unknown (stays active); the && is false
    expect(cleared(f)).toEqual([]);
    await f.telemetry('dev-2', { x: 1, y: 1 });
    expect(cleared(f)).toEqual(['x-or-y:A/dev-2']);
  });
});
