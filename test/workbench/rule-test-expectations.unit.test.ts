// Rule tests' pieces that start nothing: the file format (and its errors), inline event lines, and
// the matcher of expectations against a timeline written out here.
import { describe, expect, it } from 'vitest';
import type { AlarmPayload } from '../../contracts/schemas.js';
import { formatLoadError } from '../../rules/locate.js';
import { checkExpectations, formatTime, type RunRecord } from '../../workbench/rule-tests/expectations.js';
import { parseEventLine, parseRuleTestFile, type Expectation } from '../../workbench/rule-tests/format.js';
import { expandScript } from '../../workbench/rule-tests/scripted-line.js';
import type { TimelineEntry } from '../../workbench/scenario-run.js';

const T0 = Date.UTC(2026, 0, 1);

function command(at: number, id: string, target: string, action: 'set_speed' | 'stop' | 'start' | 'set_strategy', params: Record<string, number | string> = {}, origin = 'rule:r'): TimelineEntry {
  return { at, event: { type: 'command', line: 'A', target, command: { id, action, params, origin, ts: T0 + at, expiresAt: T0 + at + 30_000 } } };
}
function outcome(at: number, id: string, target: string, action: 'set_speed' | 'stop', result: 'done' | 'expired' | 'blocked', params: Record<string, number> = {}): TimelineEntry {
  return { at, event: { type: 'outcome', line: 'A', outcome: { id, action, params, origin: 'rule:r', target, outcome: result, attempts: result === 'blocked' ? 0 : 1, issuedAt: T0 + at, ts: T0 + at } } };
}
function alert(at: number, id: string, state: 'raised' | 'cleared', device: string): TimelineEntry {
  return { at, event: { type: 'alert', line: 'A', alert: { id, rule: id.split(':')[0]!, severity: 'warning', state, message: 'm', device, ts: T0 + at } } };
}
function alarm(at: number, id: string, state: AlarmPayload['state'], transition: AlarmPayload['transition']): RunRecord['alarms'][number] {
  return { at, alarm: { id, rule: id.split(':')[0]!, severity: 'warning', message: 'm', device: 'conv-2', state, transition, raisedAt: T0, rev: 1, ts: T0 + at } };
}

// The overheat of the demo, written out: line-ctl ramped 40 → 32 → 25.6 → 20, conv-2's alarm raised,
// acknowledged at 3 min, cleared; a stop to st-2 that expired; one blocked speed command.
const RUN: RunRecord = {
  timeline: [
    alert(103_900, 'overheat:A/conv-2', 'raised', 'conv-2'),
    command(103_900, 'c1', 'line-ctl', 'set_speed', { speed: 32 }),
    outcome(104_000, 'c1', 'line-ctl', 'set_speed', 'done', { speed: 32 }),
    command(108_900, 'c2', 'line-ctl', 'set_speed', { speed: 25.6 }),
    command(118_900, 'c3', 'line-ctl', 'set_speed', { speed: 20 }),
    outcome(119_000, 'c3', 'line-ctl', 'set_speed', 'done', { speed: 20 }),
    command(150_000, 'c4', 'st-2', 'stop'),
    outcome(160_000, 'c4', 'st-2', 'stop', 'expired'),
    outcome(170_000, 'c5', 'line-ctl', 'set_speed', 'blocked', { speed: 40 }),
    alert(678_900, 'overheat:A/conv-2', 'cleared', 'conv-2'),
  ],
  alarms: [alarm(103_900, 'overheat:A/conv-2', 'active-unacked', 'raise'), alarm(180_000, 'overheat:A/conv-2', 'active-acked', 'ack'), alarm(678_900, 'overheat:A/conv-2', 'normal', 'return')],
  devices: { 'line-ctl': { values: { speedSetpoint: 20 }, state: { ts: T0, seq: 1, state: 'RUNNING', strategy: 'energy-saving' } } },
  durationMs: 750_000,
};

const judge = (e: Expectation) => checkExpectations([e], RUN)[0]!;
const MINUTE = 60_000;

describe('rule test expectations', () => {
  it('a command: target, action, a param condition, a window, an outcome; the first mismatch names what came instead', () => {
    expect(judge({ kind: 'command', spec: { target: 'line-ctl', action: 'set_speed', params: { speed: { lte: 25 } }, within: [30_000, 2 * MINUTE] } })).toMatchObject({ ok: true, focusAt: 118_900 }) // 25.6 is not ≤ 25;
    expect(judge({ kind: 'command', spec: { target: 'line-ctl', action: 'set_speed', params: { speed: 'any' }, outcome: 'done' } })).toMatchObject({ ok: true });
    const late = judge({ kind: 'command', spec: { target: 'line-ctl', action: 'set_speed', params: { speed: { lte: 25 } }, within: [30_000, 100_000] } });
    expect(late.ok).toBe(false);
    expect(`expected ${late.expected}; ${late.mismatch}`).toBe(
      'expected a command to line-ctl set_speed speed ≤ 25 between 30s and 1m40s; got none; line-ctl got set_speed 32 at 1m43.9s, set_speed 25.6 at 1m48.9s, set_speed 20 at 1m58.9s (4 in all)',
    );
    const expired = judge({ kind: 'command', spec: { target: 'st-2', action: 'stop', outcome: 'done' } });
    expect(expired.mismatch).toBe('got none; st-2 got stop at 2m30s (expired)');
    // A blocked command was never sent: it is found only as a blocked one.
    expect(judge({ kind: 'command', spec: { target: 'line-ctl', params: { speed: 40 } } }).ok).toBe(false);
    expect(judge({ kind: 'command', spec: { target: 'line-ctl', params: { speed: 40 }, outcome: 'blocked' } }).ok).toBe(true);
    expect(judge({ kind: 'command', spec: { target: 'st-1', action: 'stop' } }).mismatch).toBe('got none; st-1 got no command at all');
    expect(judge({ kind: 'command', spec: { target: 'line-ctl', rule: 'other' } }).ok).toBe(false);
  });

  it('no command: the first offending command with its time and origin', () => {
    expect(judge({ kind: 'no-command', spec: { target: 'st-1' } }).ok).toBe(true);
    expect(judge({ kind: 'no-command', spec: { target: 'line-ctl', action: 'set_speed', by: 100_000 } }).ok).toBe(true);
    const verdict = judge({ kind: 'no-command', spec: { target: 'line-ctl', action: 'set_speed', params: { speed: { gt: 20 } } } });
    expect(`expected ${verdict.expected}; ${verdict.mismatch}`).toBe('expected no command to line-ctl set_speed speed > 20; got line-ctl set_speed 32 at 1m43.9s from rule:r (and 1 more)');
    expect(verdict.focusAt).toBe(103_900);
  });

  it('an alarm raised, acknowledged, cleared, normal — by id, rule or device (globs) — within a window', () => {
    expect(judge({ kind: 'alarm', spec: { device: 'conv-*', state: 'raised', by: 2 * MINUTE } }).ok).toBe(true);
    expect(judge({ kind: 'alarm', spec: { id: 'overheat:*', state: 'acknowledged', within: [3 * MINUTE, 3 * MINUTE + 5000] } }).ok).toBe(true);
    expect(judge({ kind: 'alarm', spec: { rule: 'overheat', state: 'normal', within: [10 * MINUTE, 12 * MINUTE] } }).ok).toBe(true);
    const early = judge({ kind: 'alarm', spec: { rule: 'overheat', state: 'cleared', by: 10 * MINUTE } });
    expect(`expected ${early.expected}; ${early.mismatch}`).toBe(
      'expected an alarm of rule overheat cleared by 10m; got none; that alarm: overheat:A/conv-2 raised at 1m43.9s, overheat:A/conv-2 acknowledged at 3m, overheat:A/conv-2 cleared at 11m18.9s, overheat:A/conv-2 normal at 11m18.9s',
    );
    expect(judge({ kind: 'alarm', spec: { rule: 'jam', state: 'raised' } }).mismatch).toBe('got none; no such alarm at all; raised: overheat:A/conv-2 raised at 1m43.9s');
    expect(judge({ kind: 'no-alarm', spec: { id: 'oscillation:*', state: 'raised' } }).ok).toBe(true);
    expect(judge({ kind: 'no-alarm', spec: { device: 'conv-2', state: 'raised' } }).mismatch).toBe('got overheat:A/conv-2 raised at 1m43.9s');
  });

  it('a setpoint at the end: the device’s last reported value (speed reads speedSetpoint; strategy its last state)', () => {
    expect(judge({ kind: 'setpoint', spec: { device: 'line-ctl', speed: 20, strategy: 'energy-saving' } }).ok).toBe(true);
    const verdict = judge({ kind: 'setpoint', spec: { device: 'line-ctl', speed: 40 } });
    expect(`expected ${verdict.expected}; ${verdict.mismatch}`).toBe('expected line-ctl to report speed 40 at the end; it reported speed 20 (speedSetpoint)');
    expect(judge({ kind: 'setpoint', spec: { device: 'line-ctl', motorTemp: { lt: 60 } } }).mismatch).toBe('it never reported motorTemp');
    expect(judge({ kind: 'setpoint', spec: { device: 'conv-9', speed: 1 } }).mismatch).toBe('conv-9 reported nothing');
  });

  it('a count bound: at most / at least N, in any sliding window (per) or in a given window', () => {
    expect(judge({ kind: 'count', spec: { target: 'line-ctl', atMost: 3, per: 10 * MINUTE } }).ok).toBe(true);
    // 103.9 s and 108.9 s are within 10 s of each other, 118.9 s is not: 2 at most in any 10 s, 3 in 20 s.
    expect(judge({ kind: 'count', spec: { target: 'line-ctl', atMost: 2, per: 10_000 } }).ok).toBe(true);
    const three = judge({ kind: 'count', spec: { target: 'line-ctl', atMost: 2, per: 20_000 } });
    expect(three).toMatchObject({ ok: false, expected: 'at most 2 commands to line-ctl in any 20s', mismatch: 'got 3 between 1m43.9s and 1m58.9s', focusAt: 103_900 });
    expect(judge({ kind: 'count', spec: { target: 'line-ctl', atLeast: 3, per: 10_000 } }).mismatch).toBe('got at most 2 between 1m43.9s and 1m48.9s');
    expect(judge({ kind: 'count', spec: { target: 'st-2', action: 'stop', atLeast: 2 } }).mismatch).toBe('got 1 (at 2m30s)');
    expect(judge({ kind: 'count', spec: { target: 'line-ctl', atLeast: 1, within: [5 * MINUTE, 10 * MINUTE] } }).mismatch).toBe('got 0');
  });

  it('prints simulated times as the report does', () => {
    expect([0, 4900, 41_000, 120_000, 103_900, 3_720_000].map(formatTime)).toEqual(['0s', '4.9s', '41s', '2m', '1m43.9s', '1h2m']);
  });
});

describe('rule test files', () => {
  const FILE = '/tmp/rules/demo.test.yaml';

  it('reads cases with a scenario file (relative to the test file) or inline device messages, and every kind of expectation', () => {
    const { file, errors } = parseRuleTestFile(
      FILE,
      `cases:
  - name: overheat
    scenario: ../scenarios/demo.yaml
    seed: 3
    duration: 12m30s
    operator: [{ at: 3m, alarm: "overheat:A/conv-2", action: acknowledge }]
    expect:
      - command: { target: line-ctl, action: set_speed, params: { speed: { lte: 25 } }, within: [30s, 2m] }
      - no-command: { target: st-1, action: stop }
      - alarm: { device: conv-2, state: acknowledged, by: 3m5s }
      - no-alarm: { id: "oscillation:*" }
      - setpoint: { device: line-ctl, speed: 40, strategy: max-throughput }
      - count: { target: line-ctl, atMost: 12, per: 10m }
  - name: inline
    scenario:
      - at 5s st-2 state FAULT reason jam at the infeed
      - { at: 20s, device: st-2, state: RUNNING }
      - at 0s every 1s until 3s conv-1 telemetry motorTemp=85 speed=40
    expect: [{ command: { target: st-1, action: stop, by: 6s } }]
`,
    );
    expect(errors.map(formatLoadError)).toEqual([]);
    const [overheat, inline] = file!.cases;
    expect(overheat).toMatchObject({ scenario: { file: '/tmp/scenarios/demo.yaml' }, seed: 3, durationMs: 750_000, line: 'A', operator: [{ at: 180_000, alarm: 'overheat:A/conv-2', action: 'acknowledge' }] });
    expect(overheat!.expect.map((e) => e.kind)).toEqual(['command', 'no-command', 'alarm', 'no-alarm', 'setpoint', 'count']);
    expect(overheat!.expect[0]!.spec).toMatchObject({ within: [30_000, 120_000], params: { speed: { lte: 25 } } });
    expect(inline!.seed).toBe(1);
    const events = 'events' in inline!.scenario ? inline!.scenario.events : [];
    expect(events.slice(0, 2)).toEqual([
      { at: 5000, device: 'st-2', state: 'FAULT', reason: 'jam at the infeed' },
      { at: 20_000, device: 'st-2', state: 'RUNNING' },
    ]);
    expect(expandScript(events).map((m) => m.at)).toEqual([0, 1000, 2000, 3000, 5000, 20_000]);
  });

  it('names the file, the line, the case and the key of each error', () => {
    const { file, errors } = parseRuleTestFile(
      FILE,
      `cases:
  - name: first
    scenario: demo.yaml
    expect:
      - command: { target: line-ctl, whithin: [30s, 2m] }
      - setpoint: { device: line-ctl, speed: { lte: fast } }
  - name: second
    scenario:
      - at 5s st-2 state FAULTY
      - at soon st-2 state RUNNING
    expect:
      - count: { target: st-1 }
      - alarm: { state: raised }
        command: { target: st-1 }
`,
    );
    expect(file).toBeUndefined();
    expect(errors.map(formatLoadError)).toEqual([
      'demo.test.yaml:5 [first]: cases.0.expect.0.command.whithin: Unrecognized key: "whithin"',
      'demo.test.yaml:6 [first]: cases.0.expect.1.setpoint.speed.lte: Invalid input: expected number, received string',
      expect.stringMatching(/^demo\.test\.yaml:9 \[second\]: cases\.1\.scenario\.0: state: Invalid option: expected one of "RUNNING"\|.* \(in "at 5s st-2 state FAULTY"\)$/),
      expect.stringMatching(/^demo\.test\.yaml:10 \[second\]: cases\.1\.scenario\.1: at: expected a time such as 500ms, 10s, 2m, 1m30s or 1h \(in "at soon st-2 state RUNNING"\)$/),
      'demo.test.yaml:12 [second]: cases.1.expect.0.count: give atMost or atLeast (or both)',
      'demo.test.yaml:13 [second]: cases.1.expect.1: each expectation needs exactly one of command, no-command, alarm, no-alarm, setpoint, count (found command, alarm)',
    ]);
  });

  it('refuses two cases of one name, a YAML syntax error, a file without cases', () => {
    const twice = parseRuleTestFile(FILE, 'cases:\n  - { name: a, scenario: x.yaml, expect: [{ no-alarm: {} }] }\n  - { name: a, scenario: x.yaml, expect: [{ no-alarm: {} }] }\n');
    expect(twice.errors.map(formatLoadError)).toEqual(['demo.test.yaml:3 [a]: cases.1.name: a case of this name is already at cases.0; give each case its own name']);
    expect(parseRuleTestFile(FILE, 'cases: [\n').errors.map(formatLoadError)[0]).toMatch(/^demo\.test\.yaml:\d+: YAML syntax error/);
    expect(parseRuleTestFile(FILE, 'description: nothing\n').errors.map(formatLoadError)).toEqual([expect.stringMatching(/^demo\.test\.yaml:1: cases: /)]);
  });

  it('parses the inline line form, and says what it expected when a line is wrong', () => {
    expect(parseEventLine('at 30s env-2 status offline')).toEqual({ at: '30s', device: 'env-2', status: 'offline' });
    expect(parseEventLine('at 1m line-ctl type line-controller state RUNNING strategy energy-saving')).toEqual({ at: '1m', device: 'line-ctl', type: 'line-controller', state: 'RUNNING', strategy: 'energy-saving' });
    expect(parseEventLine('at 5s conv-2 telemetry motorTemp=hot')).toBe('telemetry takes name=number pairs (motorTemp=85); got "motorTemp=hot" in "at 5s conv-2 telemetry motorTemp=hot"');
    expect(parseEventLine('st-2 FAULT')).toMatch(/^expected "at 5s \[every 1s until 60s\] DEVICE/);
  });
});
