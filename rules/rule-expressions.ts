// The expressions and templates of one rule (when, clear, window.of, lineCount.where, `=` params,
// command targets, alert messages), read from the rule's raw YAML value so that they are checked
// even when the rule also has schema errors: each is compiled once, its names are checked against
// the rule's scope, and a literal command target or `device("…")` id against the line's devices
// when they are known; upstream()/downstream() on a line whose flow the folder does not state is refused.
import { compileExpression, parseTemplate, type Evaluator, type LineReads, type Scope } from './expr.js';
import { globMatcher } from './glob.js';
import type { FieldPath } from './locate.js';

/** Names a rule expression (or a `{placeholder}`) may read; anything else is a typo caught at load. */
export const SCOPE_NAMES = {
  base: ['device', 'line', 'kind', 'ts', 'values', 'last', 'state', 'previous', 'reason', 'status', 'type', 'target', 'silentFor', 'neverSeen'],
  window: ['avg', 'min', 'max', 'count', 'rate', 'delta'],
  lineCount: ['matching'],
};

/** The devices of one line (from a scenario's layout): a literal target on that line must be one of them. */
export interface KnownDevices {
  line: string;
  ids: ReadonlySet<string>;
  /** The line's flow order as the scenario simulates it (its stations), when it comes from a scenario. */
  flow?: readonly string[];
}

/** What the folder knows about its lines when a rule's expressions are checked. */
export interface LineKnowledge {
  /** Lines whose devices are known (the scenario's; a `lines:` entry with `devices`). */
  devices: readonly KnownDevices[];
  /** Lines whose flow order the folder states (`lines:`). */
  flowLines: ReadonlySet<string>;
}

/** How many device ids an unknown-target error lists before it shortens the list. */
const LISTED_DEVICES = 20;

/** A line's device ids for an error message, shortened after the first LISTED_DEVICES. */
export function listDevices(devices: ReadonlySet<string>): string {
  const ids = [...devices];
  return ids.slice(0, LISTED_DEVICES).join(', ') + (ids.length > LISTED_DEVICES ? `, … (${ids.length} in all)` : '');
}

export type Render = (scope: Scope) => string;

/** The compiled expressions and templates of a rule, by field path. */
export interface RuleExpressions {
  expression(field: FieldPath): Evaluator;
  template(field: FieldPath): Render;
  /** A command target: its text, or undefined when a placeholder has no value (none: upstream() of the first station). */
  target(field: FieldPath): (scope: Scope) => string | undefined;
}

type Report = (field: FieldPath, message: string) => void;

function record(value: unknown): Record<string, unknown> | undefined {
  return typeof value === 'object' && value !== null && !Array.isArray(value) ? (value as Record<string, unknown>) : undefined;
}

function text(value: unknown): string | undefined {
  return typeof value === 'string' && value.length > 0 ? value : undefined;
}

/** Compiles every expression and template of `raw` (one rule as written), reporting each one that is wrong. */
export function compileRuleExpressions(raw: unknown, report: Report, lines: LineKnowledge = { devices: [], flowLines: new Set() }): RuleExpressions {
  const rule = record(raw) ?? {};
  const allowed = new Set([...SCOPE_NAMES.base, ...(rule.window !== undefined ? SCOPE_NAMES.window : []), ...(rule.lineCount !== undefined ? SCOPE_NAMES.lineCount : [])]);
  const expressions = new Map<string, Evaluator>();
  const templates = new Map<string, ReturnType<typeof parseTemplate>>();
  const name = (field: FieldPath): string => field.join('.');
  const line = typeof record(rule.match)?.line === 'string' ? (record(rule.match)!.line as string) : '*';
  const lineMatcher = globMatcher(line);
  // The known lines this rule can match: a device id it names must be on each of them.
  const knownLines = lines.devices.filter((known) => lineMatcher.test(known.line));
  const unknownDevice = (field: FieldPath, id: string, prefix = ''): void => {
    for (const known of knownLines) if (!known.ids.has(id)) report(field, `${name(field)}: ${prefix}no device "${id}" on line ${known.line}; its devices are ${listDevices(known.ids)}`);
  };
  const checkReads = (field: FieldPath, reads: LineReads): void => {
    for (const id of reads.devices) unknownDevice(field, id, `device(${JSON.stringify(id)}): `);
    const neighbours = [...reads.functions].filter((fn) => fn !== 'device');
    if (neighbours.length === 0) return;
    const flowless = [...new Set([...(lineMatcher.exact !== undefined ? [lineMatcher.exact] : []), ...knownLines.map((known) => known.line)])].filter((l) => !lines.flowLines.has(l));
    for (const l of flowless) report(field, `${name(field)}: ${neighbours.map((fn) => `${fn}()`).join(', ')} reads the flow order of line ${l}, which the rules folder does not state; add lines: { ${l}: { flow: [first, second, …] } } (docs/rules.md#rules-for-a-whole-line)`);
  };

  const namesKnown = (field: FieldPath, names: Set<string>, source: string): boolean => {
    const unknown = [...names].filter((n) => !allowed.has(n));
    if (unknown.length === 0) return true;
    report(field, `${name(field)}: unknown name ${unknown.map((u) => `"${u}"`).join(', ')} in "${source}"; available: ${[...allowed].join(', ')}`);
    return false;
  };
  // Compiles `source` with `parse` and keeps `pick` of it in `into`, if it parses and reads only names of the scope and devices of its line.
  const compile = <Compiled extends { names: Set<string>; reads: LineReads }, T>(field: FieldPath, source: string | undefined, parse: (source: string) => Compiled, pick: (c: Compiled) => T, into: Map<string, T>): void => {
    if (source === undefined) return;
    try {
      const compiled = parse(source);
      checkReads(field, compiled.reads);
      if (namesKnown(field, compiled.names, source)) into.set(name(field), pick(compiled));
    } catch (err) {
      report(field, `${name(field)}: ${(err as Error).message}`);
    }
  };
  const expression = (field: FieldPath, source: string | undefined): void => compile(field, source, compileExpression, (c) => c.evaluate, expressions);
  const template = (field: FieldPath, source: string | undefined): void => compile(field, source, parseTemplate, (t) => t, templates);
  const target = (field: FieldPath, source: string | undefined): void => {
    template(field, source);
    if (source !== undefined && !source.includes('{')) unknownDevice(field, source);
  };

  expression(['when'], text(rule.when));
  expression(['clear'], text(rule.clear));
  expression(['window', 'of'], text(record(rule.window)?.of));
  expression(['lineCount', 'where'], text(record(rule.lineCount)?.where));
  for (const list of ['actions', 'onClear'] as const) {
    const actions = rule[list];
    if (!Array.isArray(actions)) continue;
    actions.forEach((action: unknown, j) => {
      const command = record(record(action)?.command);
      if (command) {
        target([list, j, 'command', 'target'], text(command.target));
        for (const [key, value] of Object.entries(record(command.params) ?? {})) {
          if (typeof value === 'string' && value.startsWith('=')) expression([list, j, 'command', 'params', key], value.slice(1));
        }
      }
      template([list, j, 'alert', 'message'], text(record(record(action)?.alert)?.message));
    });
  }

  // A rule is built only when nothing above was reported, so every field it asks for is here;
  // one that is not means this walk and the builder in load.ts disagree about the rule format.
  const missing = (kind: string, field: FieldPath): never => {
    throw new Error(`rules/rule-expressions: no compiled ${kind} for ${name(field)}; the field walk here misses a field that rules/load.ts builds`);
  };
  return {
    expression: (field) => expressions.get(name(field)) ?? missing('expression', field),
    template: (field) => (templates.get(name(field)) ?? missing('template', field)).render,
    target: (field) => (templates.get(name(field)) ?? missing('template', field)).renderKnown,
  };
}
