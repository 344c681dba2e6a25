// `linewatch rules test DIR` with the built CLI (dist/), as a user and CI run it: the shipped
// example tests pass, a broken example rule is caught, the report and the JUnit XML of a failing
// case, a malformed test file.
import { cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { run } from '../harness/mosquitto-clients.js';

const BIN = fileURLToPath(new URL('../../bin/linewatch.js', import.meta.url));
const BUILT = fileURLToPath(new URL('../../dist/cli/main.js', import.meta.url));
const EXAMPLES = fileURLToPath(new URL('../../rules/examples', import.meta.url));
const DEMO = fileURLToPath(new URL('../../simulators/scenarios/demo.yaml', import.meta.url));
/** Seven cases, five of them 5–12 simulated minutes of the demo line, two at a time on a loaded 2-core machine. */
const EXAMPLES_MS = 240_000;

let dir: string;
beforeAll(() => {
  if (!existsSync(BUILT)) throw new Error('dist/ is missing: run `npm run build` before these tests (npm test does)');
  dir = mkdtempSync(join(tmpdir(), 'linewatch-rule-tests-'));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const linewatch = (timeoutMs: number, ...args: string[]) => run(process.execPath, [BIN, ...args], timeoutMs);

/** A copy of rules/examples, beside a copy of the demo scenario where its tests look for it (../../simulators/scenarios). */
function copyExamples(name: string, edit: (rules: string) => string): string {
  const root = join(dir, name);
  const rules = join(root, 'rules', 'examples');
  mkdirSync(join(root, 'simulators', 'scenarios'), { recursive: true });
  cpSync(DEMO, join(root, 'simulators', 'scenarios', 'demo.yaml'));
  cpSync(EXAMPLES, rules, { recursive: true });
  const file = join(rules, 'demo-line.yaml');
  const before = readFileSync(file, 'utf8');
  const after = edit(before);
  if (after === before) throw new Error(`the edit of ${name} changed nothing in demo-line.yaml: the example rules changed; update this test`);
  writeFileSync(file, after);
  return rules;
}

const CASES = [
  'an overheating conveyor slows the line to 20 m/min and restores 40 after cooling',
  'a jam stops the station feeding it and starts it when the jam clears',
  'a jam at st-2 stops st-1 (device messages, no simulator)',
  'starved stations switch the strategy to energy-saving and back',
  'the demo does not oscillate and keeps line-ctl within 10 commands in any 10 minutes',
  'an acknowledged overheat alarm returns to normal when the overheat is over',
  'a device that goes silent raises an alert until it speaks again',
];

describe('the example rules come with tests', () => {
  it(
    'linewatch rules test rules/examples passes every case',
    async () => {
      const r = await linewatch(EXAMPLES_MS, 'rules', 'test', EXAMPLES);
      expect(r.code, r.stdout + r.stderr).toBe(0);
      expect(r.stdout.split('\n')).toEqual(['demo-line.test.yaml', ...CASES.map((c) => `  ✓ ${c}`), '7 passed, 0 failed (7 cases in 1 file)', '']);
    },
    EXAMPLES_MS,
  );

  it(
    'a changed threshold in the examples (motorTemp > 80 → > 95) fails the overheat case, with its first mismatch',
    async () => {
      const rules = copyExamples('hotter', (text) => text.replace('when: values.motorTemp > 80', 'when: values.motorTemp > 95'));
      const r = await linewatch(EXAMPLES_MS, 'rules', 'test', rules);
      expect(r.code, r.stdout + r.stderr).toBe(1);
      const lines = r.stdout.split('\n');
      const failed = lines.indexOf(`  ✗ ${CASES[0]}`);
      expect(failed, r.stdout).toBeGreaterThan(0);
      // At > 95 the drive trips (95 °C) before the rule fires: the line is never slowed.
      expect(lines[failed + 1]).toMatch(/^ {6}expected a command to line-ctl set_speed speed ≤ 25 between 30s and 2m; got none; line-ctl got set_strategy energy-saving at 1m48\.8s/);
      expect(lines[failed + 3]).toMatch(/^ {6}timeline around 1m48\.8s:$/);
      expect(lines[failed + 4]).toMatch(/^ {8}\+ +\d+\.\ds {2}/);
      expect(lines.at(-2)).toMatch(/^\d passed, [1-7] failed \(7 cases in 1 file\)$/);
    },
    EXAMPLES_MS,
  );

  it(
    'a jam rule with the wrong target (a jammed station stops the one after it, not its feeder) fails the jam case',
    async () => {
      const rules = copyExamples('wrong-feeder', (text) => text.replace('- command: { target: "{upstream(device)}", action: stop }', '- command: { target: "{downstream(device)}", action: stop }'));
      const r = await linewatch(EXAMPLES_MS, 'rules', 'test', rules, '--grep', '^a jam stops');
      expect(r.code, r.stdout + r.stderr).toBe(1);
      const lines = r.stdout.split('\n');
      expect(lines.slice(0, 3)).toEqual([
        'demo-line.test.yaml',
        `  ✗ ${CASES[1]}`,
        '      expected a command to st-2 stop between 59s and 1m5s with outcome done; got none; st-2 got start at 2m29.9s (accepted, done)',
      ]);
      expect(lines.at(-2)).toBe('0 passed, 1 failed (1 case in 1 file)');
    },
    EXAMPLES_MS,
  );
});

const JAM_RULE = `rules:
  - id: jam-stops-feeder
    match: { line: A, device: st-2, kind: state }
    transition: { to: FAULT }
    actions:
      - command: { target: st-1, action: stop }
      - alert: { severity: critical, message: "st-2 {reason}: feeder st-1 stopped" }
    onClear: [{ command: { target: st-1, action: start } }]
`;

const JAM_TESTS = `cases:
  - name: a jam stops the feeder & starts it after
    scenario: &jam
      - at 5s st-2 state FAULT reason jam
      - at 20s st-2 state RUNNING
    duration: 30s
    expect:
      - command: { target: st-1, action: stop, by: 6s, outcome: done }
      - command: { target: st-1, action: start, within: [20s, 21s] }
  - name: the feeder is never started
    scenario: *jam
    duration: 30s
    expect:
      - alarm: { device: st-2, state: raised, by: 6s }
      - no-command: { target: st-1, action: start }
`;

function folder(name: string, files: Record<string, string>): string {
  const path = join(dir, name);
  mkdirSync(path, { recursive: true });
  for (const [file, text] of Object.entries(files)) writeFileSync(join(path, file), text);
  return path;
}

/** The attributes of each `<tag …>` in `xml`, and the text of each `<failure>`: enough XML for these checks. */
function elements(xml: string, tag: string): { attributes: Record<string, string>; body: string }[] {
  const unescape = (s: string): string => s.replace(/&lt;/g, '<').replace(/&gt;/g, '>').replace(/&quot;/g, '"').replace(/&apos;/g, "'").replace(/&amp;/g, '&');
  return [...xml.matchAll(new RegExp(`<${tag}((?:\\s+[a-z]+="[^"]*")*)\\s*(?:/>|>([\\s\\S]*?)</${tag}>)`, 'g'))].map((m) => ({
    attributes: Object.fromEntries([...m[1]!.matchAll(/([a-z]+)="([^"]*)"/g)].map((a) => [a[1]!, unescape(a[2]!)])),
    body: unescape(m[2] ?? ''),
  }));
}

describe('linewatch rules test DIR: the report', () => {
  it('prints ✓ for a passing case, ✗ with the first mismatch and the timeline around it for a failing one, exits 1; writes JUnit XML', async () => {
    const rules = folder('jam', { 'jam.yaml': JAM_RULE, 'jam.test.yaml': JAM_TESTS });
    const xmlFile = join(dir, 'jam-junit.xml');
    const r = await linewatch(60_000, 'rules', 'test', rules, '--reporter', 'junit', '--output', xmlFile);
    expect(r.code, r.stderr).toBe(1);
    expect(r.stdout.split('\n')).toEqual([
      'jam.test.yaml',
      '  ✓ a jam stops the feeder & starts it after',
      '  ✗ the feeder is never started',
      '      expected no command to st-1 start; got st-1 start at 20s from rule:jam-stops-feeder',
      '      timeline around 20s:',
      '        +    5.0s  alert    raised   critical jam-stops-feeder:A/st-2  "st-2 jam: feeder st-1 stopped"',
      '        +    5.1s  outcome  cmjuohs00-1  accepted',
      '        +    5.1s  outcome  cmjuohs00-1  done',
      '        +   20.0s  alert    cleared  critical jam-stops-feeder:A/st-2  "st-2 jam: feeder st-1 stopped"',
      '        +   20.0s  command  cmjuohs00-2  st-1 start {}  rule:jam-stops-feeder',
      '        +   20.1s  outcome  cmjuohs00-2  accepted',
      '        +   20.1s  outcome  cmjuohs00-2  done',
      '1 passed, 1 failed (2 cases in 1 file)',
      '',
    ]);

    const xml = readFileSync(xmlFile, 'utf8');
    expect(xml.startsWith('<?xml version="1.0" encoding="UTF-8"?>\n<testsuites ')).toBe(true);
    expect(elements(xml, 'testsuites')[0]!.attributes).toMatchObject({ tests: '2', failures: '1', errors: '0' });
    expect(elements(xml, 'testsuite').map((s) => s.attributes)).toEqual([expect.objectContaining({ name: 'jam.test.yaml', tests: '2', failures: '1', errors: '0' })]);
    const cases = elements(xml, 'testcase');
    expect(cases.map((c) => c.attributes.name)).toEqual(['a jam stops the feeder & starts it after', 'the feeder is never started']);
    expect(cases.map((c) => c.attributes.classname)).toEqual(['jam.test.yaml', 'jam.test.yaml']);
    for (const c of cases) expect(Number(c.attributes.time)).toBeGreaterThanOrEqual(0);
    const failures = elements(xml, 'failure');
    expect(failures).toHaveLength(1);
    expect(failures[0]!.attributes.message).toBe('expected no command to st-1 start; got st-1 start at 20s from rule:jam-stops-feeder');
    expect(failures[0]!.body.split('\n').slice(0, 2)).toEqual(['expected no command to st-1 start; got st-1 start at 20s from rule:jam-stops-feeder', 'timeline around 20s:']);
    expect(cases[1]!.body).toContain('<failure');
    expect(cases[0]!.body).toBe('');
  });

  it('runs one case with --case, and refuses a name no case has (exit 2)', async () => {
    const rules = folder('jam-one', { 'jam.yaml': JAM_RULE, 'jam.test.yaml': JAM_TESTS });
    const one = await linewatch(60_000, 'rules', 'test', rules, '--case', 'a jam stops the feeder & starts it after');
    expect(one.code, one.stdout + one.stderr).toBe(0);
    expect(one.stdout).toBe('jam.test.yaml\n  ✓ a jam stops the feeder & starts it after\n1 passed, 0 failed (1 case in 1 file)\n');
    const none = await linewatch(60_000, 'rules', 'test', rules, '--case', 'no such case');
    expect(none.code).toBe(2);
    expect(none.stderr).toContain('no case of the rule tests in');
  });

  it('exits 2 on a malformed test file, naming file:line, the case and the key, and runs nothing', async () => {
    const rules = folder('bad', {
      'jam.yaml': JAM_RULE,
      'jam.test.yaml': JAM_TESTS.replace('by: 6s, outcome: done', 'by: 6s, outcome: finished'),
      'more.test.yaml': 'cases:\n  - name: no scenario\n    expect: [{ no-alarm: {} }]\n',
    });
    const r = await linewatch(60_000, 'rules', 'test', rules);
    expect(r.code).toBe(2);
    expect(r.stdout).toBe('');
    expect(r.stderr.split('\n')).toEqual([
      expect.stringMatching(/^jam\.test\.yaml:8 \[a jam stops the feeder & starts it after\]: cases\.0\.expect\.0\.command\.outcome: Invalid option: expected one of "accepted"\|"done"\|/),
      'more.test.yaml:2 [no scenario]: cases.0.scenario: expected a scenario file (relative to this test file) or a list of timed device messages',
      expect.stringMatching(/^2 error\(s\) in the rule tests of .*; nothing was run$/),
      '',
    ]);
  });
});
