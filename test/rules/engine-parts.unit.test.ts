// The engine's pure parts on their own: windows, the device table, the rule index and the
// instance state machine, with rules compiled from YAML as the engine gets them.
import { describe, expect, it } from 'vitest';
import { DeviceTable, type DeviceEvent } from '../../rules/device-table.js';
import { InstanceTable } from '../../rules/instance-state.js';
import { parseRuleFile, type CompiledRule } from '../../rules/load.js';
import { RuleIndex } from '../../rules/rule-index.js';
import { addToWindow, aggregate, type Window } from '../../rules/windows.js';

const T0 = 1_000_000;

function compile(yaml: string): CompiledRule[] {
  const parsed = parseRuleFile('/rules/test.yaml', yaml);
  expect(parsed.errors).toEqual([]);
  return parsed.rules;
}

function telemetry(device: string, ts: number, values: Record<string, number>, seq?: number): DeviceEvent {
  return { kind: 'telemetry', line: 'A', device, payload: { ts, values, ...(seq !== undefined ? { seq } : {}) } } as DeviceEvent;
}

describe('windows', () => {
  it('keeps event-time order (a late value is inserted where it belongs) and the last `count` values', () => {
    const window: Window = { ts: [], v: [] };
    for (const [ts, value] of [[10, 1], [30, 3], [20, 2], [40, 4]] as const) addToWindow(window, { count: 3 }, ts, value);
    expect(window).toEqual({ ts: [20, 30, 40], v: [2, 3, 4] });
  });

  it('drops values older than `timeMs` before the newest', () => {
    const window: Window = { ts: [], v: [] };
    for (const [ts, value] of [[0, 1], [500, 2], [1_500, 3]] as const) addToWindow(window, { timeMs: 1_000 }, ts, value);
    expect(window).toEqual({ ts: [500, 1_500], v: [2, 3] });
  });

  it('aggregates avg, min, max, count, delta and rate per second; empty is count 0', () => {
    expect(aggregate({ ts: [0, 2_000], v: [10, 20] })).toEqual({ avg: 15, min: 10, max: 20, count: 2, delta: 10, rate: 5 });
    expect(aggregate({ ts: [5], v: [7] })).toMatchObject({ count: 1, delta: 0, rate: 0 });
    expect(aggregate(undefined)).toEqual({ avg: undefined, min: undefined, max: undefined, count: 0, delta: undefined, rate: undefined });
  });
});

describe('device table', () => {
  const lateness = { reorderToleranceMs: 1_000, maxLatenessMs: 5_000, maxClockSkewMs: 5_000 };

  it('keeps the newest readings and the watermark; a slightly older message is reordered, a much older one late', () => {
    const devices = new DeviceTable(lateness);
    expect(devices.observe(telemetry('m', T0, { temp: 50 }), T0)).toMatchObject({ late: false, reordered: false, alive: true });
    expect(devices.observe(telemetry('m', T0 - 500, { temp: 40 }), T0)).toMatchObject({ late: false, reordered: true });
    expect(devices.observe(telemetry('m', T0 - 2_000, { temp: 30 }), T0)).toMatchObject({ late: true, reordered: false });
    expect(devices.get('A', 'm')).toMatchObject({ watermark: T0, values: { temp: 50 }, aliveAt: T0 });
  });

  it('refuses a message further ahead of engine time than maxClockSkewMs, counting it on the device; never a status', () => {
    const devices = new DeviceTable(lateness);
    expect(devices.refuseFuture(telemetry('m', T0 + 5_000, { temp: 1 }), T0)).toBeUndefined();
    expect(devices.refuseFuture(telemetry('m', T0 + 5_001, { temp: 1 }), T0)).toMatchObject({ futureTs: 1, aliveAt: T0 });
    expect(devices.refuseFuture({ kind: 'status', line: 'A', device: 'm', payload: { ts: T0 + 3_600_000, status: 'online' } } as DeviceEvent, T0)).toBeUndefined();
    expect(devices.get('A', 'm')).toMatchObject({ futureTs: 1, watermark: 0, values: {} });
  });

  it('a message older than maxLateness against engine time is late even as the device’s first', () => {
    const devices = new DeviceTable(lateness);
    expect(devices.observe(telemetry('m', T0 - 6_000, { temp: 1 }), T0).late).toBe(true);
  });

  it('remembers the state entered from; an offline status is no sign of life; a repeated seq is a duplicate', () => {
    const devices = new DeviceTable(lateness);
    devices.observe({ kind: 'state', line: 'A', device: 's', payload: { ts: T0, state: 'RUNNING' } } as DeviceEvent, T0);
    devices.observe({ kind: 'state', line: 'A', device: 's', payload: { ts: T0 + 1, state: 'FAULT', reason: 'jam' } } as DeviceEvent, T0 + 1);
    expect(devices.get('A', 's')).toMatchObject({ state: 'FAULT', enteredFrom: 'RUNNING', reason: 'jam' });
    const offline = devices.observe({ kind: 'status', line: 'A', device: 's', payload: { ts: T0 + 2, status: 'offline' } } as DeviceEvent, T0 + 5);
    expect(offline).toMatchObject({ alive: false });
    expect(devices.get('A', 's')).toMatchObject({ status: 'offline', aliveAt: T0 + 1 });
    expect(devices.isDuplicate(telemetry('m', T0, {}, 7))).toBe(false);
    expect(devices.isDuplicate(telemetry('m', T0, {}, 7))).toBe(true);
    expect(devices.onLine('A').map((record) => record.device)).toEqual(['s']);
  });
});

describe('rule index', () => {
  const rules = compile(`rules:
  - id: exact
    match: { line: A, device: [m-1, m-*], kind: telemetry }
    when: values.t > 1
    actions: [{ alert: { severity: info, message: x } }]
  - id: wildcard
    match: { device: "m-*", kind: telemetry }
    when: values.t > 1
    actions: [{ alert: { severity: info, message: x } }]
  - id: other-line
    match: { line: B, kind: telemetry }
    when: values.t > 1
    actions: [{ alert: { severity: info, message: x } }]
  - id: states
    match: { kind: state }
    when: state == "FAULT"
    actions: [{ alert: { severity: info, message: x } }]
  - id: silent
    match: { line: A }
    absent: { devices: [m-1], after: 10s }
    actions: [{ alert: { severity: info, message: x } }]
`);

  function matching(index: RuleIndex, kind: 'telemetry' | 'state', device: string): string[] {
    const seen: string[] = [];
    index.forEachMatching(kind, { id: `A/${device}`, line: 'A', device, values: {}, watermark: 0 }, (rule) => seen.push(rule.id));
    return seen;
  }

  it('gives each matching rule once (a rule matched by two of its patterns too), exact matches first', () => {
    const index = new RuleIndex(rules);
    expect(matching(index, 'telemetry', 'm-1')).toEqual(['exact', 'wildcard']);
    expect(matching(index, 'telemetry', 'm-2')).toEqual(['exact', 'wildcard']);
    expect(matching(index, 'telemetry', 'x')).toEqual([]);
    expect(matching(index, 'state', 'x')).toEqual(['states']);
  });

  it('keeps absence rules apart, by expected device', () => {
    const index = new RuleIndex(rules);
    expect(index.absenceRules.map((rule) => rule.id)).toEqual(['silent']);
    expect(index.absenceFor('A/m-1').map((rule) => rule.id)).toEqual(['silent']);
    expect(index.absenceFor('A/m-2')).toEqual([]);
  });
});

describe('instance state machine', () => {
  const [rule] = compile(`rules:
  - id: hot
    match: { device: m }
    when: values.t > 80
    for: 10s
    clearFor: 5s
    actions: [{ alert: { severity: info, message: x } }]
`);

  it('idle → pending → active after `for` of event time; back to idle only after `clearFor`', () => {
    const table = new InstanceTable();
    const instance = table.of(rule!, 'A/m', 'A', 'm');
        expect(table.step(rule!, instance, true, false, T0, T0)).toBeUndefined();
    expect(instance.phase).toBe('pending');
    expect(table.step(rule!, instance, true, false, T0 + 9_999, T0)).toBeUndefined();
    expect(table.step(rule!, instance, true, false, T0 + 10_000, T0)).toBe('activate');
    table.activated(instance, T0 + 10_000);
    expect(table.step(rule!, instance, false, true, T0 + 11_000, T0 + 11_000)).toBeUndefined();
    expect(table.withTimers()).toEqual([instance]);
    expect(table.step(rule!, instance, false, true, T0 + 16_000, T0 + 16_000)).toBe('deactivate');
    table.deactivated(instance);
    expect(instance.phase).toBe('idle');
    expect(table.withTimers()).toEqual([]);
  });

  it('a pending condition that stops holding goes back to idle; a timer runs out on the engine clock', () => {
    const table = new InstanceTable();
    const instance = table.of(rule!, 'A/m', 'A', 'm');
    table.step(rule!, instance, true, false, T0, T0);
    table.step(rule!, instance, false, false, T0 + 1, T0 + 1);
    expect(instance.phase).toBe('idle');
    table.step(rule!, instance, true, false, T0 + 2, T0 + 2);
    expect(table.due(rule!, instance, T0 + 5_000)).toBeUndefined();
    expect(table.due(rule!, instance, T0 + 10_002)).toBe('activate');
  });
});
