// Reads rule files, validates them and compiles each rule once. Every error names the file,
// the line of the offending key and the rule id, e.g. `overheat.yaml:12 [conveyor-overheat]: when: "values.t >": ...`.
// One load finds every error of every file (schema, expressions, placeholders, targets, duplicate
// ids); a rule with an error is not loaded, the other rules of its file are.
import { createHash } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import { basename, join } from 'node:path';
import { LineCounter, parseDocument } from 'yaml';
import type { CommandAction, DeviceState, DeviceType, Severity } from '../contracts/schemas.js';
import type { Evaluator, Scope } from './expr.js';
import { globMatcher, type IdMatcher } from './glob.js';
import { FileLocator, type FieldPath, type LoadError } from './locate.js';
import type { Flow } from './line-flow.js';
import { lineKnowledge, linesOfFolder, parseLines } from './lines.js';
import { compileRuleExpressions, type KnownDevices, type RuleExpressions } from './rule-expressions.js';
import { ruleFileOutlineSchema, ruleSchema, safetySchema, type CommandActionDefinition, type LineDefinition, type RuleDefinition, type SafetyDefinition } from './schema.js';

export { formatLoadError, type LoadError } from './locate.js';
export { SCOPE_NAMES, type KnownDevices } from './rule-expressions.js';
export { globMatcher, type IdMatcher } from './glob.js';

export type ParamValue = number | string | boolean;

export interface CompiledCommand {
  kind: 'command';
  /** The target's id, or undefined when it evaluates to none (`{upstream(device)}` of the first station). */
  target: (scope: Scope) => string | undefined;
  action: CommandAction;
  params: (scope: Scope) => Record<string, ParamValue>;
  ttlMs?: number;
}

export interface CompiledAlert {
  kind: 'alert';
  severity: Severity;
  message: (scope: Scope) => string;
}

export type CompiledAction = CompiledCommand | CompiledAlert;

export interface CompiledRule {
  id: string;
  file: string;
  line?: number;
  priority: number;
  /** Changes when the rule's definition changes; restored state is kept only for the same hash. */
  hash: string;
  kind: 'state' | 'telemetry' | 'status';
  lineMatcher: IdMatcher;
  deviceMatchers: IdMatcher[];
  type?: DeviceType;
  /** One instance per device, or one per line (lineCount). Absence instances are per expected device. */
  keyBy: 'device' | 'line';
  when?: Evaluator;
  clear?: Evaluator;
  forMs: number;
  clearForMs: number;
  window?: { of: Evaluator; timeMs?: number; count?: number };
  transition?: { from?: Set<DeviceState>; to: Set<DeviceState> };
  absent?: { afterMs: number; graceMs: number; devices: string[] };
  lineCount?: { where: Evaluator; atLeast: number };
  actions: CompiledAction[];
  onClear: CompiledCommand[];
}

export interface RuleSet {
  rules: CompiledRule[];
  safety: SafetyDefinition;
  /** Per line, its flow order (`lines:`), for upstream() and downstream(). */
  flows: ReadonlyMap<string, Flow>;
  errors: LoadError[];
}

export const DEFAULT_SAFETY: SafetyDefinition = safetySchema.parse({});

export interface LoadOptions {
  /** The devices of a line (a scenario's): a literal command target, a device("…") id and a `lines:` flow on it must be among them (unchecked when absent). */
  devices?: KnownDevices;
  /** The `lines:` blocks of every file of the folder, as written (loadRuleDir reads them first); default: this file's own. */
  folderLines?: readonly unknown[];
}

/** A rule id as written in a file, loaded or not: duplicate ids are found over these. */
export interface RuleOccurrence {
  id: string;
  line?: number;
  /** The rule has errors (on a reload its last good version stays loaded). */
  broken: boolean;
  /** The compiled rule, when it has no errors and is enabled. */
  rule?: CompiledRule;
}

export interface ParsedFile {
  file: string;
  /** The rules this file loads: per id, its first occurrence's rule (for a broken one: its last good version, on a reload). */
  rules: CompiledRule[];
  safety?: SafetyDefinition;
  /** The safety section has errors (on a reload the last good one stays). */
  safetyBroken?: boolean;
  /** Its `lines:` entries that have no errors, by line id. */
  lines?: Map<string, LineDefinition>;
  /** The lines section has errors (on a reload the last good one stays). */
  linesBroken?: boolean;
  occurrences: RuleOccurrence[];
  /** The file could not be read as a list of rules at all (YAML syntax, no rules list): its last good version stays. */
  unreadable?: boolean;
  errors: LoadError[];
}

function record(value: unknown): Record<string, unknown> | undefined {
  return typeof value === 'object' && value !== null && !Array.isArray(value) ? (value as Record<string, unknown>) : undefined;
}

function byLine(a: LoadError, b: LoadError): number {
  return (a.line ?? 0) - (b.line ?? 0);
}

/** Parses, validates and compiles one file's text: every error of every rule, and every rule that has none. */
export function parseRuleFile(file: string, text: string, options: LoadOptions = {}): ParsedFile {
  const name = basename(file);
  const lineCounter = new LineCounter();
  const doc = parseDocument(text, { lineCounter, prettyErrors: false });
  if (doc.errors.length > 0) {
    const errors = doc.errors.map((e) => ({ file: name, line: lineCounter.linePos(e.pos[0]).line, message: `YAML syntax error: ${e.message.split('\n')[0]}` }));
    return { file, rules: [], occurrences: [], unreadable: true, errors };
  }
  const raw: unknown = doc.toJS() ?? {};
  const locator = new FileLocator(name, doc, lineCounter);
  const outline = ruleFileOutlineSchema.safeParse(raw);
  const errors: LoadError[] = outline.success ? [] : locator.issues(outline.error, []);
  const top = record(raw);
  const rawRules = top?.rules ?? [];
  if (!top || !Array.isArray(rawRules)) return { file, rules: [], occurrences: [], unreadable: true, errors };

  let safety: SafetyDefinition | undefined;
  let safetyBroken = false;
  if (top.safety !== undefined) {
    const parsed = safetySchema.safeParse(top.safety);
    if (parsed.success) safety = parsed.data;
    else {
      safetyBroken = true;
      errors.push(...locator.issues(parsed.error, ['safety']));
    }
  }

  const ownLines = parseLines(top.lines, locator, options.devices);
  errors.push(...ownLines.errors);
  const knowledge = lineKnowledge(options.folderLines ?? [top.lines], options.devices);

  const occurrences: RuleOccurrence[] = [];
  rawRules.forEach((item: unknown, i) => {
    const id = typeof record(item)?.id === 'string' ? (record(item)!.id as string) : undefined;
    const shownId = id ?? `rules[${i}]`;
    const ruleErrors: LoadError[] = [];
    const parsed = ruleSchema.safeParse(item);
    if (!parsed.success) ruleErrors.push(...locator.issues(parsed.error, ['rules', i], shownId));
    const report = (field: FieldPath, message: string): void => void ruleErrors.push({ file: name, line: locator.lineOf(['rules', i, ...field]), ruleId: shownId, message });
    const code = compileRuleExpressions(item, report, knowledge);
    errors.push(...ruleErrors);
    if (id === undefined) return;
    const line = locator.lineOf(['rules', i]);
    const broken = ruleErrors.length > 0;
    const rule = parsed.success && !broken && parsed.data.enabled ? buildRule(parsed.data, code, name, line) : undefined;
    occurrences.push({ id, line, broken, rule });
  });
  return { file, rules: rulesOf(occurrences), safety, safetyBroken, lines: ownLines.lines, linesBroken: ownLines.broken, occurrences, errors: errors.sort(byLine) };
}

/** Per id, the rule of its first occurrence in the file; a broken one is replaced by its version in `previous`, if any. */
function rulesOf(occurrences: RuleOccurrence[], previous?: ParsedFile): CompiledRule[] {
  const rules: CompiledRule[] = [];
  const seen = new Set<string>();
  for (const o of occurrences) {
    if (seen.has(o.id)) continue;
    seen.add(o.id);
    const rule = o.broken ? previous?.rules.find((r) => r.id === o.id) : o.rule;
    if (rule) rules.push(rule);
  }
  return rules;
}

/** Builds a rule that validated and whose expressions all compiled (`code`). */
function buildRule(def: RuleDefinition, code: RuleExpressions, file: string, line: number | undefined): CompiledRule {
  const command = (field: FieldPath, c: CommandActionDefinition['command']): CompiledCommand => {
    const params: [string, ParamValue | Evaluator][] = Object.entries(c.params).map(([k, v]) => [k, typeof v === 'string' && v.startsWith('=') ? code.expression([...field, 'params', k]) : v]);
    return {
      kind: 'command',
      target: code.target([...field, 'target']),
      action: c.action,
      ttlMs: c.ttl,
      params: (scope) => {
        const out: Record<string, ParamValue> = {};
        for (const [k, v] of params) {
          const value = typeof v === 'function' ? v(scope) : v;
          // NaN/Infinity (e.g. a reading that is missing) is left out: the device then says what it lacks.
          if ((typeof value === 'number' && Number.isFinite(value)) || typeof value === 'string' || typeof value === 'boolean') out[k] = value;
        }
        return out;
      },
    };
  };
  const optional = (field: FieldPath, source: string | undefined): Evaluator | undefined => (source === undefined ? undefined : code.expression(field));

  return {
    id: def.id,
    file,
    line,
    priority: def.priority,
    hash: createHash('sha1').update(JSON.stringify(def)).digest('hex').slice(0, 12),
    kind: def.match.kind ?? (def.transition ? 'state' : 'telemetry'),
    lineMatcher: globMatcher(def.match.line),
    deviceMatchers: (Array.isArray(def.match.device) ? def.match.device : [def.match.device]).map(globMatcher),
    type: def.match.type,
    keyBy: def.lineCount ? 'line' : 'device',
    when: optional(['when'], def.when),
    clear: optional(['clear'], def.clear),
    forMs: def.for ?? 0,
    clearForMs: def.clearFor ?? 0,
    window: def.window ? { of: code.expression(['window', 'of']), timeMs: def.window.time, count: def.window.count } : undefined,
    transition: def.transition
      ? {
          from: def.transition.from === '*' ? undefined : new Set(toList(def.transition.from)),
          to: new Set(toList(def.transition.to)),
        }
      : undefined,
    absent: def.absent ? { afterMs: def.absent.after, graceMs: def.absent.grace ?? def.absent.after, devices: def.absent.devices } : undefined,
    lineCount: def.lineCount ? { where: code.expression(['lineCount', 'where']), atLeast: def.lineCount.atLeast } : undefined,
    actions: def.actions.map((a, j): CompiledAction =>
      'command' in a ? command(['actions', j, 'command'], a.command) : { kind: 'alert', severity: a.alert.severity, message: code.template(['actions', j, 'alert', 'message']) },
    ),
    onClear: def.onClear.map((a, j) => command(['onClear', j, 'command'], a.command)),
  };
}

function toList<T>(v: T | T[]): T[] {
  return Array.isArray(v) ? v : [v];
}

/** Rule tests (`linewatch rules test DIR`, workbench/rule-tests/) sit beside the rules and are no rule files. */
export function isRuleTestFile(name: string): boolean {
  return name.endsWith('.test.yaml') || name.endsWith('.test.yml');
}

export function listRuleFiles(dir: string): string[] {
  return readdirSync(dir)
    .filter((f) => (f.endsWith('.yaml') || f.endsWith('.yml')) && !isRuleTestFile(f))
    .sort()
    .map((f) => join(dir, f));
}

/**
 * Loads every rule file in `dir`. `lastGood` holds what each file loaded last time: a broken rule
 * keeps its last good version and an unreadable file its last good rules, so one typo never
 * unloads a line's rules. Errors come sorted by file and line.
 */
export function loadRuleDir(dir: string, lastGood: Map<string, ParsedFile> = new Map(), options: LoadOptions = {}): RuleSet {
  const errors: LoadError[] = [];
  let files: string[];
  try {
    files = listRuleFiles(dir);
  } catch (err) {
    return { rules: [], safety: DEFAULT_SAFETY, flows: new Map(), errors: [{ file: dir, message: `cannot read the rules folder: ${(err as Error).message}` }] };
  }
  for (const gone of [...lastGood.keys()].filter((f) => !files.includes(f))) lastGood.delete(gone);
  const texts = files.map((file): { file: string; text?: string; error?: string } => {
    try {
      return { file, text: readFileSync(file, 'utf8') };
    } catch (err) {
      return { file, error: (err as Error).message };
    }
  });
  // A rule in one file may read the flow of a line another file states.
  const folderLines = linesOfFolder(texts.flatMap((t) => (t.text === undefined ? [] : [t.text])));
  const used: ParsedFile[] = [];
  for (const { file, text, error } of texts) {
    const parsed: ParsedFile =
      text === undefined
        ? { file, rules: [], occurrences: [], unreadable: true, errors: [{ file: basename(file), message: `cannot read: ${error}` }] }
        : parseRuleFile(file, text, { ...options, folderLines });
    errors.push(...parsed.errors);
    const previous = lastGood.get(file);
    const loaded = parsed.unreadable
      ? previous
      : { ...parsed, rules: rulesOf(parsed.occurrences, previous), safety: parsed.safetyBroken ? previous?.safety : parsed.safety, lines: parsed.linesBroken ? previous?.lines : parsed.lines };
    if (!loaded) continue;
    lastGood.set(file, loaded);
    used.push(loaded);
  }
  const set = combine(used, errors);
  set.errors.sort((a, b) => (a.file < b.file ? -1 : a.file > b.file ? 1 : byLine(a, b)));
  return set;
}

/**
 * Merges files: rule ids must be unique (the first occurrence loads; each later one, loaded or
 * not, is an error naming the first), at most one file defines `safety`, and each line's flow is
 * stated once.
 */
export function combine(files: ParsedFile[], errors: LoadError[] = []): RuleSet {
  const first = new Map<string, { file: string; line?: number }>();
  for (const f of files) {
    for (const o of f.occurrences) {
      const place = first.get(o.id);
      if (!place) first.set(o.id, { file: f.file, line: o.line });
      else errors.push({ file: basename(f.file), line: o.line, ruleId: o.id, message: `duplicate rule id; already defined in ${basename(place.file)}:${place.line ?? '?'} — rename one (only the first is loaded)` });
    }
  }
  const rules = files.flatMap((f) => f.rules.filter((r) => first.get(r.id)?.file === f.file));
  let safety: SafetyDefinition | undefined;
  let safetyFile: string | undefined;
  for (const f of files) {
    if (!f.safety) continue;
    if (safety) errors.push({ file: basename(f.file), message: `safety is already defined in ${safetyFile}; keep one safety section per rules folder` });
    else {
      safety = f.safety;
      safetyFile = basename(f.file);
    }
  }
  const flows = new Map<string, Flow>();
  const flowFile = new Map<string, string>();
  for (const f of files) {
    for (const [line, definition] of f.lines ?? []) {
      const first = flowFile.get(line);
      if (first) errors.push({ file: basename(f.file), message: `lines.${line} is already stated in ${first}; state each line's flow once per rules folder` });
      else {
        flows.set(line, definition.flow);
        flowFile.set(line, basename(f.file));
      }
    }
  }
  return { rules, safety: safety ?? DEFAULT_SAFETY, flows, errors };
}
