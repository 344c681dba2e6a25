// Each rule operator on a real broker's in-process bus, with time driven by hand (ManualClock).
import { afterEach, describe, expect, it } from 'vitest';
import { startFixture, T0, type Fixture } from './fixture.js';

let f: Fixture | undefined;
afterEach(async () => {
  await f?.stop();
  f = undefined;
});

const raised = (fx: Fixture): string[] => fx.alerts.filter((a) => a.state === 'raised').map((a) => a.id);
const cleared = (fx: Fixture): string[] => fx.alerts.filter((a) => a.state === 'cleared').map((a) => a.id);

describe('match', () => {
  it('matches line and device wildcards, device type and message kind', async () => {
    f = await startFixture(`rules:
  - id: hot-conveyor
    match: { line: "A*", device: "conv-?", type: conveyor, kind: telemetry }
    when: values.temp > 80
    actions: [{ alert: { severity: warning, message: "{line}/{device} at {values.temp}" } }]
`);
    await f.telemetry('conv-1', { temp: 90 }, { type: 'conveyor' }); // match
    await f.telemetry('conv-2', { temp: 90 }, { line: 'B', type: 'conveyor' }); // wrong line
    await f.telemetry('conv-10', { temp: 90 }, { type: 'conveyor' }); // ? is one character
    await f.telemetry('conv-3', { temp: 90 }, { type: 'station' }); // wrong type
    await f.state('conv-4', 'RUNNING', { type: 'conveyor' }); // wrong kind
    await f.telemetry('conv-4', { temp: 90 }); // type learned from its state message
    await f.telemetry('conv-5', { temp: 70 }, { line: 'A2', type: 'conveyor' }); // condition false
    expect(raised(f)).toEqual(['hot-conveyor:A/conv-1', 'hot-conveyor:A/conv-4']);
    expect(f.alerts[0]).toMatchObject({ rule: 'hot-conveyor', severity: 'warning', device: 'conv-1', message: 'A/conv-1 at 90', ts: T0 });
  });
});

describe('condition, for and hysteresis', () => {
  const RULE = `rules:
  - id: overheat
    match: { device: conv-1 }
    when: values.temp > 80
    for: 10s
    clear: values.temp < 70
    actions: [{ alert: { severity: critical, message: "hot" } }]
`;

  it('fires only when the condition holds for the whole duration', async () => {
    f = await startFixture(RULE);
    await f.telemetry('conv-1', { temp: 85 });
    await f.advance(5_000);
    await f.telemetry('conv-1', { temp: 79 }); // dips: the timer restarts
    await f.advance(1_000);
    await f.telemetry('conv-1', { temp: 85 });
    await f.advance(9_000);
    await f.telemetry('conv-1', { temp: 86 });
    expect(raised(f)).toEqual([]);
    await f.advance(1_000);
    await f.telemetry('conv-1', { temp: 86 }); // 10 s of event time since it went above
    expect(raised(f)).toEqual(['overheat:A/conv-1']);
  });

  it('fires from the timer when no further message arrives', async () => {
    f = await startFixture(RULE);
    await f.telemetry('conv-1', { temp: 85 });
    await f.advance(9_900);
    expect(raised(f)).toEqual([]);
    await f.advance(200);
    expect(raised(f)).toEqual(['overheat:A/conv-1']);
  });

  it('clears only below the hysteresis threshold', async () => {
    f = await startFixture(RULE);
    await f.telemetry('conv-1', { temp: 85 });
    await f.advance(10_000);
    await f.telemetry('conv-1', { temp: 75 }); // below 80 but above 70: still active
    await f.advance(1_000);
    expect(cleared(f)).toEqual([]);
    await f.telemetry('conv-1', { temp: 69 });
    expect(cleared(f)).toEqual(['overheat:A/conv-1']);
    expect(f.alerts.map((a) => a.state)).toEqual(['raised', 'cleared']);
  });

  it('clearFor needs the clear condition to last', async () => {
    f = await startFixture(RULE.replace('clear: values.temp < 70', 'clear: values.temp < 70\n    clearFor: 5s').replace('for: 10s', 'for: 0s'));
    await f.telemetry('conv-1', { temp: 85 });
    await f.telemetry('conv-1', { temp: 60 });
    await f.advance(4_000);
    expect(cleared(f)).toEqual([]);
    await f.advance(1_200);
    expect(cleared(f)).toEqual(['overheat:A/conv-1']);
  });
});

describe('windows', () => {
  it('rate of change over a time window', async () => {
    f = await startFixture(`rules:
  - id: heating-fast
    match: { device: conv-1 }
    window: { of: values.temp, time: 10s }
    when: rate > 1
    actions: [{ alert: { message: "rising {rate} °C/s" } }]
`);
    for (let i = 0; i <= 10; i++) {
      await f.telemetry('conv-1', { temp: 50 + i * 0.5 }); // 0.5 °C/s
      await f.advance(1_000);
    }
    expect(raised(f)).toEqual([]);
    for (let i = 1; i <= 6; i++) {
      await f.telemetry('conv-1', { temp: 55 + i * 3 }); // now 3 °C/s
      await f.advance(1_000);
    }
    expect(raised(f)).toEqual(['heating-fast:A/conv-1']);
    expect(f.alerts[0]!.message).toMatch(/^rising \d+\.\d °C\/s$/);
  });

  it('average over a time window forgets old samples', async () => {
    f = await startFixture(`rules:
  - id: avg-hot
    match: { device: s1 }
    window: { of: values.temp, time: 5s }
    when: avg > 60 && count >= 3
    actions: [{ alert: { message: "avg {avg}" } }]
`);
    await f.telemetry('s1', { temp: 100 });
    await f.advance(6_000);
    await f.telemetry('s1', { temp: 40 });
    await f.advance(1_000);
    await f.telemetry('s1', { temp: 40 }); // the 100 left the window: avg 40
    await f.advance(1_000);
    await f.telemetry('s1', { temp: 40 });
    expect(raised(f)).toEqual([]);
    await f.telemetry('s1', { temp: 200 }); // avg (40+40+40+200)/4 = 80
    expect(raised(f)).toEqual(['avg-hot:A/s1']);
    expect(f.alerts[0]!.message).toBe('avg 80');
  });

  it('min and max over a count window', async () => {
    f = await startFixture(`rules:
  - id: spread
    match: { device: s1 }
    window: { of: values.p, count: 3 }
    when: max - min > 10
    actions: [{ alert: { message: "spread" } }]
`);
    await f.telemetry('s1', { p: 0 });
    await f.telemetry('s1', { p: 5 });
    await f.telemetry('s1', { p: 9 });
    await f.telemetry('s1', { p: 12 }); // window [5, 9, 12]: the 0 is out
    expect(raised(f)).toEqual([]);
    await f.telemetry('s1', { p: 20 }); // [9, 12, 20]
    expect(raised(f)).toEqual(['spread:A/s1']);
  });
});

describe('state transitions', () => {
  it('fires on from → to, not on other ways into the state, and clears on leaving', async () => {
    f = await startFixture(`rules:
  - id: jam
    match: { device: "st-*" }
    transition: { from: RUNNING, to: [FAULT, BLOCKED] }
    actions: [{ alert: { severity: critical, message: "{device} {previous} -> {state}" } }]
`);
    await f.state('st-1', 'IDLE');
    await f.state('st-1', 'FAULT'); // IDLE → FAULT: not from RUNNING
    await f.state('st-2', 'RUNNING');
    await f.state('st-2', 'RUNNING'); // no change
    expect(raised(f)).toEqual([]);
    await f.state('st-2', 'BLOCKED');
    expect(raised(f)).toEqual(['jam:A/st-2']);
    expect(f.alerts[0]!.message).toBe('st-2 RUNNING -> BLOCKED');
    await f.state('st-2', 'RUNNING');
    expect(cleared(f)).toEqual(['jam:A/st-2']);
  });
});

describe('counts across a line', () => {
  it('fires when at least N of the line devices are in a state', async () => {
    f = await startFixture(`rules:
  - id: many-blocked
    match: { device: "st-*", kind: state }
    lineCount: { where: state == "BLOCKED", atLeast: 2 }
    actions: [{ alert: { message: "{matching} stations blocked" } }]
`);
    await f.state('st-1', 'BLOCKED');
    await f.state('st-2', 'RUNNING');
    await f.state('conv-1', 'BLOCKED'); // not a station
    await f.state('st-3', 'BLOCKED', { line: 'B' }); // another line
    expect(raised(f)).toEqual([]);
    await f.state('st-3', 'BLOCKED');
    expect(raised(f)).toEqual(['many-blocked:A']);
    expect(f.alerts[0]).toMatchObject({ message: '2 stations blocked' });
    expect(f.alerts[0]!.device).toBeUndefined();
    await f.state('st-1', 'RUNNING');
    expect(cleared(f)).toEqual(['many-blocked:A']);
  });
});

describe('absence (deadman)', () => {
  it('raises for a silent device and for one that never reported, after the startup grace; clears when it speaks', async () => {
    f = await startFixture(`rules:
  - id: silent
    match: { line: A }
    absent: { after: 5s, grace: 8s, devices: [s1, s2] }
    actions: [{ alert: { severity: warning, message: "{device} silent for {silentFor} s" } }]
`);
    await f.telemetry('s1', { x: 1 });
    await f.advance(6_000); // s1 silent 6 s but still within the grace
    expect(raised(f)).toEqual([]);
    await f.advance(2_100); // grace over: both (s2 never reported)
    expect(raised(f).sort()).toEqual(['silent:A/s1', 'silent:A/s2']);
    await f.telemetry('s2', { x: 1 });
    expect(cleared(f)).toEqual(['silent:A/s2']);
    await f.advance(3_000);
    await f.telemetry('s2', { x: 1 });
    await f.advance(3_000);
    expect(raised(f).filter((id) => id === 'silent:A/s2')).toHaveLength(1); // still talking
    await f.advance(5_000);
    expect(raised(f).filter((id) => id === 'silent:A/s2')).toHaveLength(2);
  });
});

describe('several actions per rule', () => {
  it('sends commands and raises an alert on one activation, and runs onClear', async () => {
    f = await startFixture(`rules:
  - id: overheat
    match: { device: conv-1 }
    when: values.temp > 80
    clear: values.temp < 70
    actions:
      - command: { target: ctl, action: set_speed, params: { speed: "=target.speed * 0.8" } }
      - command: { target: "{device}", action: set_strategy, params: { strategy: safe } }
      - alert: { severity: warning, message: hot }
    onClear:
      - command: { target: "{device}", action: set_strategy, params: { strategy: max-throughput } }
`);
    f.autoAck('ctl');
    f.autoAck('conv-1');
    await f.telemetry('ctl', { speed: 50 });
    await f.telemetry('conv-1', { temp: 90 });
    await f.advance(100);
    expect(f.commands.map((c) => [c.target, c.action, c.params, c.origin])).toEqual([
      ['ctl', 'set_speed', { speed: 40 }, 'rule:overheat'],
      ['conv-1', 'set_strategy', { strategy: 'safe' }, 'rule:overheat'],
    ]);
    expect(raised(f)).toEqual(['overheat:A/conv-1']);
    await f.telemetry('conv-1', { temp: 60 });
    await f.advance(100);
    expect(f.commands.map((c) => c.params)).toEqual([{ speed: 40 }, { strategy: 'safe' }, { strategy: 'max-throughput' }]);
    expect(f.outcomes.map((o) => o.outcome)).toEqual(['done', 'done', 'done']);
  });
});

describe('event time', () => {
  const RULE = `rules:
  - id: hot
    match: { device: conv-1 }
    when: values.temp > 80
    actions:
      - command: { target: ctl, action: stop }
      - alert: { message: hot }
`;

  it('a late (backfilled) event that would have matched fires nothing', async () => {
    f = await startFixture(RULE);
    await f.telemetry('conv-1', { temp: 50 });
    await f.advance(20_000);
    await f.telemetry('conv-1', { temp: 95 }, { ts: T0 + 5_000 }); // older than what we have seen (watermark)
    await f.telemetry('conv-2', { temp: 95 }, { ts: T0 }); // a fresh device, but 20 s in the past
    await f.advance(1_000);
    expect(f.commands).toEqual([]);
    expect(f.alerts).toEqual([]);
    expect(f.engine.counters().late).toBe(2);
    await f.telemetry('conv-1', { temp: 95 }); // now, it does
    expect(f.commands.map((c) => c.action)).toEqual(['stop']);
  });

  it('a late event still updates its window', async () => {
    f = await startFixture(`rules:
  - id: avg
    match: { device: s1 }
    window: { of: values.v, count: 3 }
    when: avg >= 10
    actions: [{ alert: { message: "avg {avg}" } }]
`);
    await f.telemetry('s1', { v: 0 });
    await f.advance(3_000);
    await f.telemetry('s1', { v: 0 });
    await f.telemetry('s1', { v: 30 }, { ts: T0 + 500 }); // 2.5 s behind (tolerance 1 s): late, lands in the window but fires nothing
    expect(f.alerts).toEqual([]);
    await f.advance(1_000);
    await f.telemetry('s1', { v: 0 }); // window [30, 0, 0]: avg 10
    expect(f.alerts.map((a) => a.message)).toEqual(['avg 10']);
  });

  it('acts on an event reordered in transit by less than the tolerance, without letting it overwrite newer state', async () => {
    f = await startFixture(RULE);
    await f.advance(2_000);
    await f.telemetry('conv-1', { temp: 50 });
    await f.telemetry('conv-1', { temp: 95 }, { ts: T0 + 1_700 }); // 300 ms older than the newest
    expect(f.engine.counters()).toMatchObject({ reordered: 1, late: 0 });
    expect(f.commands.map((c) => c.action)).toEqual(['stop']);
  });

  it('ignores duplicates (same seq again)', async () => {
    f = await startFixture(RULE);
    await f.broker.broker.bus.publish('lw/A/conv-1/telemetry', JSON.stringify({ ts: T0, seq: 7, values: { temp: 50 } }));
    await f.broker.broker.bus.publish('lw/A/conv-1/telemetry', JSON.stringify({ ts: T0, seq: 7, values: { temp: 50 } }));
    await f.advance(10);
    expect(f.engine.counters()).toMatchObject({ received: 2, duplicates: 1 });
  });
});
