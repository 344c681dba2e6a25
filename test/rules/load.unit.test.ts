import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { formatLoadError, loadRuleDir, parseRuleFile, type ParsedFile } from '../../rules/load.js';
import { folder, removeFolders } from './rule-folder.js';

afterEach(removeFolders);

const GOOD = `rules:
  - id: hot
    match: { device: conv-*, kind: telemetry }
    when: values.temp > 80
    for: 10s
    actions:
      - alert: { severity: warning, message: "{device} hot" }
`;

describe('rule files', () => {
  it('loads and compiles a valid file', () => {
    const f = parseRuleFile('/x/good.yaml', GOOD);
    expect(f.errors).toEqual([]);
    expect(f.rules.map((r) => [r.id, r.forMs, r.kind])).toEqual([['hot', 10_000, 'telemetry']]);
  });

  it('names file, line and rule id for a schema error', () => {
    const f = parseRuleFile(
      '/x/bad.yaml',
      `rules:
  - id: ok
    when: values.t > 1
    actions: [{ alert: { message: m } }]
  - id: slow-down
    when: values.t > 1
    for: ten seconds
    actions: [{ alert: { message: m } }]
`,
    );
    expect(f.errors).toHaveLength(1);
    expect(formatLoadError(f.errors[0]!)).toMatch(/^bad\.yaml:7 \[slow-down\]: rules\.4?\.?.*for: expected a duration/);
  });

  it('names file, line and rule id for a bad expression and an unknown name', () => {
    const f = parseRuleFile(
      '/x/expr.yaml',
      `rules:
  - id: broken
    when: values.t >
    actions: [{ alert: { message: m } }]
  - id: typo
    when: valeus.t > 3
    actions: [{ alert: { message: m } }]
`,
    );
    const msgs = f.errors.map(formatLoadError);
    expect(msgs[0]).toMatch(/^expr\.yaml:3 \[broken\]: when: .*cannot parse/);
    expect(msgs[1]).toMatch(/^expr\.yaml:6 \[typo\]: when: unknown name "valeus".*available: device, line/);
    expect(f.rules).toEqual([]);
  });

  it('reports YAML syntax errors with the line', () => {
    const f = parseRuleFile('/x/syntax.yaml', 'rules:\n  - id: a\n    when: [unclosed\n');
    expect(formatLoadError(f.errors[0]!)).toMatch(/^syntax\.yaml:\d+: YAML syntax error/);
  });

  it('refuses rules that mix triggers or lack one', () => {
    const f = parseRuleFile(
      '/x/mix.yaml',
      `rules:
  - id: nothing
    actions: [{ alert: { message: m } }]
  - id: absent-wild
    match: { line: "*" }
    absent: { after: 5s, devices: [a] }
    actions: [{ alert: { message: m } }]
`,
    );
    const msgs = f.errors.map(formatLoadError).join('\n');
    expect(msgs).toContain('[nothing]');
    expect(msgs).toMatch(/needs one of when, transition, absent or lineCount/);
    expect(msgs).toMatch(/mix\.yaml:5 \[absent-wild\].*concrete line/);
  });

  it('refuses duplicate rule ids across files, naming both places', () => {
    const set = loadRuleDir(folder({ 'a.yaml': GOOD, 'b.yaml': GOOD }));
    expect(set.rules).toHaveLength(1);
    expect(set.errors.map(formatLoadError)[0]).toMatch(/^b\.yaml:2 \[hot\]: duplicate rule id; already defined in a\.yaml:2/);
  });

  it('reads no rule tests (*.test.yaml, *.test.yml) as rule files: they sit beside the rules', () => {
    const set = loadRuleDir(folder({ 'a.yaml': GOOD, 'a.test.yaml': 'cases: []\n', 'b.test.yml': 'cases: []\n' }));
    expect(set.errors.map(formatLoadError)).toEqual([]);
    expect(set.rules.map((r) => r.id)).toEqual(['hot']);
  });

  it('keeps the last good version of a file that breaks', () => {
    const dir = folder({ 'r.yaml': GOOD });
    const lastGood = new Map<string, ParsedFile>();
    expect(loadRuleDir(dir, lastGood).rules).toHaveLength(1);
    writeFileSync(join(dir, 'r.yaml'), GOOD.replace('values.temp > 80', 'values.temp >>> 80'));
    const second = loadRuleDir(dir, lastGood);
    expect(second.errors).toHaveLength(1);
    expect(second.rules.map((r) => r.id)).toEqual(['hot']);
  });
});
