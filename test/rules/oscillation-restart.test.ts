// A suspension restored from the state file ends with its oscillation alarm returning to normal
// like any other (found in review: the alert raised before the restart was never cleared, so
// `oscillation:<rule>` stayed active-unacked for good).
import { afterEach, expect, it } from 'vitest';
import { startFixture, type Fixture } from './fixture.js';

let fixture: Fixture | undefined;
afterEach(async () => {
  await fixture?.stop();
  fixture = undefined;
});

const RULE = `safety:
  oscillation: { suspendFor: 1m }
rules:
  - id: inverse
    match: { device: conv-1 }
    when: values.temp > 80
    actions: [{ command: { target: ctl, action: set_speed, params: { speed: 60 } } }]
    onClear: [{ command: { target: ctl, action: set_speed, params: { speed: 40 } } }]
`;

it('an oscillation alarm raised before a restart returns to normal when the restored suspension ends', async () => {
  const f = (fixture = await startFixture(RULE));
  f.autoAck('ctl');
  for (let flap = 0; flap < 3; flap++) {
    await f.telemetry('conv-1', { temp: 85 });
    await f.advance(3000);
    await f.telemetry('conv-1', { temp: 70 });
    await f.advance(3000);
  }
  const raised = f.alerts.find((alert) => alert.id === 'oscillation:inverse' && alert.state === 'raised');
  expect(raised, 'the guard tripped').toBeDefined();
  await f.advance(10_500); // a snapshot is written
  await f.restart();
  expect(f.engine.alarms().map((entry) => [entry.alarm.id, entry.alarm.state])).toEqual([['oscillation:inverse', 'active-unacked']]);
  await f.advance(raised!.ts + 60_000 - f.clock.now() + 500);
  expect(f.engine.counters().suspended_rules).toBe(0);
  expect(f.alerts.filter((alert) => alert.id === 'oscillation:inverse').map((alert) => alert.state)).toEqual(['raised', 'cleared']);
  // Returned to normal, waiting for an operator's acknowledgement (ISA-18.2), no longer active.
  expect(f.engine.alarms().map((entry) => [entry.alarm.id, entry.alarm.state])).toEqual([['oscillation:inverse', 'rtn-unacked']]);
});
