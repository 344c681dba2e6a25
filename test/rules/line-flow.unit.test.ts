// Rules for a whole line: the `lines:` flow order (parsed, checked, merged over a folder) and the
// expressions that read it — upstream(), downstream(), device("id") — with the three-valued logic.
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { DeviceTable } from '../../rules/device-table.js';
import { compileExpression, LINE_VIEW_KEY, parseTemplate, truth, UNKNOWN, type Scope } from '../../rules/expr.js';
import { LineFlows, lineView } from '../../rules/line-flow.js';
import { formatLoadError, loadRuleDir, parseRuleFile, type LoadError } from '../../rules/load.js';
import { folder, removeFolders } from './rule-folder.js';

afterEach(removeFolders);

const messages = (f: { errors: LoadError[] }): string[] => f.errors.map(formatLoadError);

const FLOW = ['st-1', 'st-2', 'st-3'];
const DEVICES = new Set(['line-ctl', 'conv-1', ...FLOW]);
const SCENARIO = { line: 'A', ids: DEVICES, flow: FLOW };

/** A device table of line A with conv-1 hot and st-2 running, and the scope of a message of `device`. */
function scopeOf(device: string, flows = new Map([['A', FLOW]])): Scope {
  const devices = new DeviceTable({ reorderToleranceMs: 1000, maxLatenessMs: 5000, maxClockSkewMs: 5000 });
  devices.observe({ kind: 'telemetry', line: 'A', device: 'conv-1', payload: { ts: 1, values: { motorTemp: 85 } } } as never, 1);
  devices.observe({ kind: 'state', line: 'A', device: 'st-2', payload: { ts: 1, state: 'RUNNING' } } as never, 1);
  return { device, line: 'A', [LINE_VIEW_KEY]: lineView('A', new LineFlows(flows), devices) };
}

const run = (source: string, scope: Scope): unknown => compileExpression(source).evaluate(scope);

describe('upstream(), downstream() and device() in expressions', () => {
  it('gives the neighbours in flow order; none (null, known) past either end; unknown for a device in no flow', () => {
    expect(run('upstream(device)', scopeOf('st-2'))).toBe('st-1');
    expect(run('downstream(device)', scopeOf('st-2'))).toBe('st-3');
    expect(run('upstream(device)', scopeOf('st-1'))).toBeNull();
    expect(run('downstream(device)', scopeOf('st-3'))).toBeNull();
    expect(run('upstream(upstream(device))', scopeOf('st-1'))).toBeNull(); // none's neighbour is none
    expect(run('upstream(device)', scopeOf('conv-1'))).toBe(UNKNOWN);
    expect(run('upstream(device)', scopeOf('st-2', new Map()))).toBe(UNKNOWN); // the line states no flow
    // "the first station" is a known fact, so it is a condition like any other
    expect(truth(run('upstream(device) != null', scopeOf('st-1')))).toBe(false);
    expect(truth(run('upstream(device) != null', scopeOf('st-2')))).toBe(true);
    expect(truth(run('upstream(device) != null', scopeOf('conv-1')))).toBeUndefined();
  });

  it('reads another device of the line with device(): its readings and state; one never heard from, or none, is unknown', () => {
    expect(run('device("conv-1").values.motorTemp', scopeOf('st-2'))).toBe(85);
    expect(truth(run('device("conv-1").values.motorTemp > 80', scopeOf('st-2')))).toBe(true);
    expect(run('device(upstream(device)).state', scopeOf('st-3'))).toBe('RUNNING');
    expect(run('device("conv-2").values.motorTemp', scopeOf('st-2'))).toBe(UNKNOWN);
    expect(run('device(upstream(device)).state', scopeOf('st-1'))).toBe(UNKNOWN); // no device to read
    // missing ≠ false: unknown unless the other side decides
    expect(truth(run('device("conv-2").values.motorTemp > 80 && state == "FAULT"', { ...scopeOf('st-2'), state: 'RUNNING' }))).toBe(false);
    expect(truth(run('device("conv-2").values.motorTemp > 80 || state == "FAULT"', { ...scopeOf('st-2'), state: 'RUNNING' }))).toBeUndefined();
    expect(run('device(upstream(device)).values.motorTemp ?? 0', scopeOf('st-1'))).toBe(0);
  });

  it('is unknown in a scope without a line view, and refuses a call without exactly one argument', () => {
    expect(run('upstream(device)', { device: 'st-2' })).toBe(UNKNOWN);
    expect(() => compileExpression('upstream()')).toThrow(/upstream\(\) takes one device id, e.g. upstream\(device\)/);
    expect(() => compileExpression('device("a", "b")')).toThrow(/device\(\) takes one device id/);
    expect(() => compileExpression('downstream.x')).not.toThrow(); // a name, not a call: checked against the scope at load
    expect(compileExpression('device("conv-1").values.x + device(upstream(device)).values.y').reads).toEqual({ functions: new Set(['device', 'upstream']), devices: new Set(['conv-1']) });
  });

  it('renders a command target as none when a placeholder has no value, where a message prints it', () => {
    const target = parseTemplate('{upstream(device)}');
    expect(target.renderKnown(scopeOf('st-2'))).toBe('st-1');
    expect(target.renderKnown(scopeOf('st-1'))).toBeUndefined();
    expect(target.renderKnown(scopeOf('conv-1'))).toBeUndefined();
    expect(parseTemplate('pre-{upstream(device)}').renderKnown(scopeOf('st-1'))).toBeUndefined();
    expect(parseTemplate('feeder {upstream(device)}').render(scopeOf('st-1'))).toBe('feeder null');
  });
});

const jamRule = `  - id: station-jam
    match: { line: A, device: "st-*", kind: state }
    transition: { to: FAULT }
    actions: [{ command: { target: "{upstream(device)}", action: stop } }]
`;

describe('the lines: flow order', () => {
  it('loads a flow and hands it to the rule set', () => {
    const set = loadRuleDir(folder({ 'a.yaml': `lines:\n  A:\n    flow: [st-1, st-2, st-3]\nrules:\n${jamRule}` }));
    expect(messages(set)).toEqual([]);
    expect([...set.flows]).toEqual([['A', FLOW]]);
    expect(set.rules.map((r) => r.id)).toEqual(['station-jam']);
  });

  it('refuses a device twice in a flow (a cycle) at the key of the second, and keeps the line out of the rule set', () => {
    const f = parseRuleFile('/x/cycle.yaml', `lines:\n  A:\n    flow:\n      - st-1\n      - st-2\n      - st-1\n    devices: [st-2]\nrules: []\n`);
    expect(messages(f)).toEqual([
      'cycle.yaml:6: lines.A.flow.2: "st-1" is already at flow.0: a device appears once in a flow (twice would make a cycle, and it would have two upstream neighbours)',
      'cycle.yaml:7: lines.A.devices.0: "st-2" is already at flow.1: a device is listed once (in flow or in devices)',
    ]);
    expect(f.lines).toEqual(new Map());
    expect(f.linesBroken).toBe(true);
  });

  it('refuses a flow that is no list, a bad line id and unknown keys, each at its key', () => {
    const f = parseRuleFile('/x/shape.yaml', `lines:\n  A:\n    flow: st-1\n  "B/1":\n    flow: [st-1]\n  C:\n    flow: [st-1]\n    order: [st-1]\nrules: []\n`);
    expect(messages(f)).toEqual([
      expect.stringMatching(/^shape\.yaml:3: lines\.A\.flow: /),
      'shape.yaml:4: lines.B/1: expected a line id: 1–64 letters, digits, _ or -',
      expect.stringMatching(/^shape\.yaml:8: lines\.C\.order: unknown key; use one of flow, devices$/),
    ]);
    expect(parseRuleFile('/x/list.yaml', 'lines: [st-1]\nrules: []\n').errors.map(formatLoadError)).toEqual([expect.stringMatching(/^list\.yaml:1: lines: expected a map of line id/)]);
  });

  it('with a scenario: names a device the line lacks and an order the simulator does not run', () => {
    const f = parseRuleFile('/x/scenario.yaml', `lines:\n  A:\n    flow: [st-1, st-3, st-2, st-9]\n  B:\n    flow: [x-1]\nrules: []\n`, { devices: SCENARIO });
    expect(messages(f)).toEqual([
      'scenario.yaml:3: lines.A.flow.3: no device "st-9" on line A of the scenario; its devices are line-ctl, conv-1, st-1, st-2, st-3',
      "scenario.yaml:3: lines.A.flow: st-1 → st-3 here, but the scenario's line runs st-1 → st-2 → st-3; state the order the line has",
    ]);
    expect([...(f.lines?.keys() ?? [])]).toEqual(['B']); // another line than the scenario's is not checked against it
  });

  it('on a reload keeps the last good flow of a file whose lines: became broken, and says why', () => {
    const dir = folder({ 'a.yaml': `lines: { A: { flow: [st-1, st-2, st-3] } }\nrules:\n${jamRule}` });
    const lastGood = new Map();
    expect(loadRuleDir(dir, lastGood).flows.get('A')).toEqual(FLOW);
    writeFileSync(join(dir, 'a.yaml'), `lines: { A: { flow: [st-1, st-2, st-1] } }\nrules:\n${jamRule}`);
    const reloaded = loadRuleDir(dir, lastGood);
    expect(messages(reloaded)).toEqual([expect.stringMatching(/^a\.yaml:1: lines\.A\.flow\.2: "st-1" is already at flow\.0/)]);
    expect(reloaded.flows.get('A')).toEqual(FLOW);
    expect(reloaded.rules.map((r) => r.id)).toEqual(['station-jam']);
  });

  it('states each line once per folder, naming the file that has it', () => {
    const set = loadRuleDir(folder({ 'a.yaml': 'lines: { A: { flow: [st-1, st-2] } }\n', 'b.yaml': `lines: { A: { flow: [st-2, st-1] } }\nrules:\n${jamRule}` }));
    expect(messages(set)).toEqual(["b.yaml: lines.A is already stated in a.yaml; state each line's flow once per rules folder"]);
    expect(set.flows.get('A')).toEqual(['st-1', 'st-2']);
  });
});

describe('rules check: unknown devices and flows in one run', () => {
  const text = `rules:
  - id: cross
    match: { line: A, device: st-2, kind: telemetry }
    when: device("conv-9").values.motorTemp > 80
    actions:
      - alert: { message: "{device(\\"conv-1\\").values.motorTemp} and {device(\\"cnv-1\\").state}" }
  - id: feeder
    match: { line: A, device: "st-*", kind: state }
    transition: { to: FAULT }
    actions: [{ command: { target: "{upstream(device)}", action: stop } }]
  - id: fine
    match: { line: A, device: st-2, kind: telemetry }
    when: device("conv-1").values.motorTemp > 80
    actions: [{ alert: { message: m } }]
`;

  it('names an unknown device("…") id and a flow the folder lacks at their keys, with the rule, all at once', () => {
    const f = parseRuleFile('/x/cross.yaml', text, { devices: SCENARIO });
    expect(messages(f)).toEqual([
      'cross.yaml:4 [cross]: when: device("conv-9"): no device "conv-9" on line A; its devices are line-ctl, conv-1, st-1, st-2, st-3',
      'cross.yaml:6 [cross]: actions.0.alert.message: device("cnv-1"): no device "cnv-1" on line A; its devices are line-ctl, conv-1, st-1, st-2, st-3',
      'cross.yaml:10 [feeder]: actions.0.command.target: upstream() reads the flow order of line A, which the rules folder does not state; add lines: { A: { flow: [first, second, …] } } (docs/rules.md#rules-for-a-whole-line)',
    ]);
    expect(f.rules.map((r) => r.id)).toEqual(['fine']);
  });

  it('checks device ids against a lines: entry that lists its devices, without a scenario (a flow stated in another file counts)', () => {
    const set = loadRuleDir(folder({ 'lines.yaml': 'lines:\n  A:\n    flow: [st-1, st-2, st-3]\n    devices: [line-ctl, conv-1]\n', 'rules.yaml': text }));
    expect(messages(set)).toEqual([
      'rules.yaml:4 [cross]: when: device("conv-9"): no device "conv-9" on line A; its devices are st-1, st-2, st-3, line-ctl, conv-1',
      'rules.yaml:6 [cross]: actions.0.alert.message: device("cnv-1"): no device "cnv-1" on line A; its devices are st-1, st-2, st-3, line-ctl, conv-1',
    ]);
    expect(set.rules.map((r) => r.id)).toEqual(['feeder', 'fine']);
    // A flow without a device list checks no ids (it does not name the line's other devices).
    const flowOnly = loadRuleDir(folder({ 'lines.yaml': 'lines: { A: { flow: [st-1, st-2, st-3] } }\n', 'rules.yaml': text }));
    expect(messages(flowOnly)).toEqual([]);
  });
});
