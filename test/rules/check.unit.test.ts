// `rules check` in one run: the loader reports every error of every rule of every file, each at
// the line of the offending key, and loads the rules that have none.
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { COMMAND_ACTIONS } from '../../contracts/schemas.js';
import { formatLoadError, loadRuleDir, parseRuleFile, type LoadError, type ParsedFile } from '../../rules/load.js';
import { folder, removeFolders } from './rule-folder.js';

afterEach(removeFolders);

const messages = (f: { errors: LoadError[] }): string[] => f.errors.map(formatLoadError);

const rule = (id: string, extra = ''): string => `  - id: ${id}
    when: values.t > 1${extra}
    actions: [{ alert: { message: "{device} hot" } }]
`;

describe('rules check: every error in one run', () => {
  it('reports a schema error and an expression error of two rules of one file together, and loads the good rule', () => {
    const f = parseRuleFile(
      '/x/mixed.yaml',
      `rules:
  - id: slow
    when: values.t > 1
    for: ten seconds
    actions: [{ alert: { message: m } }]
  - id: typo
    when: valus.t > 1
    actions: [{ alert: { message: m } }]
${rule('fine')}`,
    );
    expect(messages(f)).toEqual([
      expect.stringMatching(/^mixed\.yaml:4 \[slow\]: rules\.0\.for: expected a duration/),
      expect.stringMatching(/^mixed\.yaml:7 \[typo\]: when: unknown name "valus"/),
    ]);
    expect(f.rules.map((r) => r.id)).toEqual(['fine']);
  });

  it('reports an unknown key at its own line, naming the keys that exist', () => {
    const f = parseRuleFile(
      '/x/keys.yaml',
      `rules:
  - id: spelled
    when: values.t > 1
    match:
      device: conv-*
      kidn: telemetry
    priorty: 3
    actions: [{ alert: { message: m } }]
`,
    );
    expect(messages(f)).toEqual([
      expect.stringMatching(/^keys\.yaml:6 \[spelled\]: rules\.0\.match\.kidn: unknown key; use one of line, device, type, kind$/),
      expect.stringMatching(/^keys\.yaml:7 \[spelled\]: rules\.0\.priorty: unknown key; use one of id, description, enabled, priority, match, when/),
    ]);
  });

  it('names the valid actions for a wrong action name', () => {
    const f = parseRuleFile(
      '/x/action.yaml',
      `rules:
  - id: slow-line
    when: values.t > 1
    actions:
      - alert: { message: m }
      - command: { target: line-ctl, action: set_sped, params: { speed: 15 } }
`,
    );
    expect(messages(f)).toEqual([`action.yaml:6 [slow-line]: rules.0.actions.1.command.action: unknown action "set_sped"; use one of ${COMMAND_ACTIONS.join(', ')}`]);
  });

  it('says what an action must be when it is neither a command nor an alert', () => {
    const f = parseRuleFile('/x/neither.yaml', `rules:\n  - id: r\n    when: values.t > 1\n    actions:\n      - notify: { message: m }\n`);
    expect(messages(f)).toEqual([
      expect.stringMatching(/^neither\.yaml:5 \[r\]: rules\.0\.actions\.0\.notify: unknown key; use one of command, alert$/),
      expect.stringMatching(/^neither\.yaml:5 \[r\]: rules\.0\.actions\.0: an action is either command: or alert:/),
    ]);
  });

  it('refuses unknown names in the placeholders of a target and of a message', () => {
    const f = parseRuleFile(
      '/x/placeholders.yaml',
      `rules:
  - id: wrong-device
    when: values.t > 1
    actions:
      - command: { target: "{devce}", action: stop }
      - alert: { message: "{device} at {valus.x} °C" }
    onClear:
      - command:
          target: "{device}"
          action: start
          params: { speed: "=valeus.s * 2" }
`,
    );
    expect(messages(f)).toEqual([
      expect.stringMatching(/^placeholders\.yaml:5 \[wrong-device\]: actions\.0\.command\.target: unknown name "devce" in "\{devce\}"; available: device, line/),
      expect.stringMatching(/^placeholders\.yaml:6 \[wrong-device\]: actions\.1\.alert\.message: unknown name "valus" in "\{device\} at \{valus\.x\} °C"/),
      expect.stringMatching(/^placeholders\.yaml:11 \[wrong-device\]: onClear\.0\.command\.params\.speed: unknown name "valeus"/),
    ]);
    expect(f.rules).toEqual([]);
  });

  it('refuses a literal target that is not a device of the line when the devices are known, and only then', () => {
    const text = `rules:
  - id: ghost
    match: { line: A }
    when: values.t > 1
    actions: [{ command: { target: line-ctrl, action: stop } }]
    onClear: [{ command: { target: "{device}", action: start } }]
  - id: other-line
    match: { line: B }
    when: values.t > 1
    actions: [{ command: { target: line-ctrl, action: stop } }]
`;
    const devices = { line: 'A', ids: new Set(['line-ctl', 'conv-1', 'st-1']) };
    const known = parseRuleFile('/x/targets.yaml', text, { devices });
    expect(messages(known)).toEqual(['targets.yaml:5 [ghost]: actions.0.command.target: no device "line-ctrl" on line A; its devices are line-ctl, conv-1, st-1']);
    expect(known.rules.map((r) => r.id)).toEqual(['other-line']);
    const unknown = parseRuleFile('/x/targets.yaml', text);
    expect(unknown.errors).toEqual([]);
  });

  it('reports duplicate ids at each later occurrence with the first one’s file:line, also when those files have other errors', () => {
    const dir = folder({
      'a.yaml': `rules:\n${rule('hot')}${rule('broken', '\n    for: soon')}`,
      'b.yaml': `rules:\n${rule('cold')}${rule('hot')}${rule('hot')}  - id: nothing\n    actions: [{ alert: { message: m } }]\n`,
    });
    const set = loadRuleDir(dir);
    expect(messages(set)).toEqual([
      expect.stringMatching(/^a\.yaml:7 \[broken\]: rules\.1\.for: expected a duration/),
      'b.yaml:5 [hot]: duplicate rule id; already defined in a.yaml:2 — rename one (only the first is loaded)',
      'b.yaml:8 [hot]: duplicate rule id; already defined in a.yaml:2 — rename one (only the first is loaded)',
      expect.stringMatching(/^b\.yaml:11 \[nothing\]: rules\.3: a rule needs one of when/),
    ]);
    expect(set.rules.map((r) => `${r.file}:${r.line} ${r.id}`)).toEqual(['a.yaml:2 hot', 'b.yaml:2 cold']);
  });

  it('on a reload keeps the last good version of a broken rule and loads the new version of the others', () => {
    const dir = folder({ 'r.yaml': `rules:\n${rule('one')}${rule('two')}` });
    const lastGood = new Map<string, ParsedFile>();
    expect(loadRuleDir(dir, lastGood).rules.map((r) => r.id)).toEqual(['one', 'two']);
    writeFileSync(join(dir, 'r.yaml'), `rules:\n${rule('one', '\n    for: 5s')}${rule('two').replace('values.t > 1', 'values.t >>> 1')}${rule('three')}`);
    const second = loadRuleDir(dir, lastGood);
    expect(messages(second)).toEqual([expect.stringMatching(/^r\.yaml:7 \[two\]: when: /)]);
    expect(second.rules.map((r) => [r.id, r.forMs])).toEqual([
      ['one', 5000],
      ['two', 0],
      ['three', 0],
    ]);
  });
});
