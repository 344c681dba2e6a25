// Reads rule files, validates them and compiles each rule once. Every error names the file,
// the line and the rule id, e.g. `overheat.yaml:12 [conveyor-overheat]: when: "values.t >": ...`.
import { createHash } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import { basename, join } from 'node:path';
import { LineCounter, parseDocument, type Document } from 'yaml';
import type { CommandAction, DeviceState, DeviceType, Severity } from '../contracts/schemas.js';
import { compileExpression, compileTemplate, ExpressionError, type Evaluator, type Scope } from './expr.js';
import { ruleFileSchema, safetySchema, type CommandActionDefinition, type RuleDefinition, type SafetyDefinition } from './schema.js';

export interface LoadError {
  file: string;
  line?: number;
  ruleId?: string;
  message: string;
}

export function formatLoadError(e: LoadError): string {
  return `${e.file}${e.line ? `:${e.line}` : ''}${e.ruleId ? ` [${e.ruleId}]` : ''}: ${e.message}`;
}

export type ParamValue = number | string | boolean;

export interface CompiledCommand {
  kind: 'command';
  target: (scope: Scope) => string;
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

/** Matches an id against an exact value or a glob; `exact` is set when there is no wildcard (for the index). */
export interface IdMatcher {
  exact?: string;
  test(id: string): boolean;
}

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
  errors: LoadError[];
}

/** Names a rule expression may read; anything else is a typo caught at load. */
export const SCOPE_NAMES = {
  base: ['device', 'line', 'kind', 'ts', 'values', 'last', 'state', 'previous', 'reason', 'status', 'type', 'target', 'silentFor', 'neverSeen'],
  window: ['avg', 'min', 'max', 'count', 'rate', 'delta'],
  lineCount: ['matching'],
};

export const DEFAULT_SAFETY: SafetyDefinition = safetySchema.parse({});

export function globMatcher(pattern: string): IdMatcher {
  if (!/[*?]/.test(pattern)) return { exact: pattern, test: (id) => id === pattern };
  const re = new RegExp(`^${pattern.replace(/[-]/g, '\\-').replace(/\*/g, '.*').replace(/\?/g, '.')}$`);
  return { test: (id) => re.test(id) };
}

interface Located {
  file: string;
  doc: Document;
  lineCounter: LineCounter;
  raw: unknown;
}

function lineOf(loc: Located, path: readonly PropertyKey[]): number | undefined {
  // Walk down as far as the path exists, so a missing key points at its parent.
  for (let n = path.length; n >= 0; n--) {
    const node = loc.doc.getIn(path.slice(0, n) as (string | number)[], true) as { range?: [number, number, number] } | undefined;
    if (node && typeof node === 'object' && node.range) return loc.lineCounter.linePos(node.range[0]).line;
  }
  return undefined;
}

function ruleIdAt(raw: unknown, path: readonly PropertyKey[]): string | undefined {
  if (path[0] !== 'rules' || typeof path[1] !== 'number') return undefined;
  const rules = (raw as { rules?: unknown[] } | null)?.rules;
  const id = (rules?.[path[1]] as { id?: unknown } | undefined)?.id;
  return typeof id === 'string' ? id : `rules[${path[1]}]`;
}

export interface ParsedFile {
  file: string;
  rules: CompiledRule[];
  safety?: SafetyDefinition;
  errors: LoadError[];
}

/** Parses, validates and compiles one file's text. */
export function parseRuleFile(file: string, text: string): ParsedFile {
  const name = basename(file);
  const lineCounter = new LineCounter();
  const doc = parseDocument(text, { lineCounter, prettyErrors: false });
  if (doc.errors.length > 0) {
    return {
      file,
      rules: [],
      errors: doc.errors.map((e) => ({ file: name, line: lineCounter.linePos(e.pos[0]).line, message: `YAML syntax error: ${e.message.split('\n')[0]}` })),
    };
  }
  const raw = doc.toJS() ?? {};
  const loc: Located = { file: name, doc, lineCounter, raw };
  const parsed = ruleFileSchema.safeParse(raw);
  if (!parsed.success) {
    return {
      file,
      rules: [],
      errors: parsed.error.issues.map((issue) => ({
        file: name,
        line: lineOf(loc, issue.path),
        ruleId: ruleIdAt(raw, issue.path),
        message: `${issue.path.map(String).join('.') || '(file)'}: ${issue.message}`,
      })),
    };
  }
  const errors: LoadError[] = [];
  const rules: CompiledRule[] = [];
  parsed.data.rules.forEach((def, i) => {
    const at = (field: (string | number)[]): LoadError => ({ file: name, line: lineOf(loc, ['rules', i, ...field]), ruleId: def.id, message: '' });
    const compiled = compileRule(def, name, lineOf(loc, ['rules', i]), (field, message) => errors.push({ ...at(field), message }));
    if (compiled && def.enabled) rules.push(compiled);
  });
  return { file, rules, safety: parsed.data.safety, errors };
}

type Report = (field: (string | number)[], message: string) => void;

function compileRule(def: RuleDefinition, file: string, line: number | undefined, report: Report): CompiledRule | undefined {
  let ok = true;
  const allowed = new Set([...SCOPE_NAMES.base, ...(def.window ? SCOPE_NAMES.window : []), ...(def.lineCount ? SCOPE_NAMES.lineCount : [])]);
  const expr = (field: (string | number)[], source: string | undefined): Evaluator | undefined => {
    if (source === undefined) return undefined;
    try {
      const c = compileExpression(source);
      const unknown = [...c.names].filter((n) => !allowed.has(n));
      if (unknown.length > 0) {
        report(field, `${field.join('.')}: unknown name ${unknown.map((u) => `"${u}"`).join(', ')} in "${source}"; available: ${[...allowed].join(', ')}`);
        ok = false;
        return undefined;
      }
      return c.evaluate;
    } catch (err) {
      report(field, `${field.join('.')}: ${(err as Error).message}`);
      ok = false;
      return undefined;
    }
  };
  const template = (field: (string | number)[], text: string): ((s: Scope) => string) => {
    try {
      return compileTemplate(text);
    } catch (err) {
      report(field, `${field.join('.')}: ${err instanceof ExpressionError ? err.message : String(err)}`);
      ok = false;
      return () => text;
    }
  };
  const command = (field: (string | number)[], c: CommandActionDefinition['command']): CompiledCommand => {
    const params: [string, ParamValue | Evaluator][] = Object.entries(c.params).map(([k, v]) => [
      k,
      typeof v === 'string' && v.startsWith('=') ? (expr([...field, 'params', k], v.slice(1)) ?? (() => undefined)) : v,
    ]);
    return {
      kind: 'command',
      target: template([...field, 'target'], c.target),
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

  const rule: CompiledRule = {
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
    when: expr(['when'], def.when),
    clear: expr(['clear'], def.clear),
    forMs: def.for ?? 0,
    clearForMs: def.clearFor ?? 0,
    window: def.window ? { of: expr(['window', 'of'], def.window.of) ?? (() => undefined), timeMs: def.window.time, count: def.window.count } : undefined,
    transition: def.transition
      ? {
          from: def.transition.from === '*' ? undefined : new Set(toList(def.transition.from)),
          to: new Set(toList(def.transition.to)),
        }
      : undefined,
    absent: def.absent ? { afterMs: def.absent.after, graceMs: def.absent.grace ?? def.absent.after, devices: def.absent.devices } : undefined,
    lineCount: def.lineCount ? { where: expr(['lineCount', 'where'], def.lineCount.where) ?? (() => false), atLeast: def.lineCount.atLeast } : undefined,
    actions: def.actions.map((a, j): CompiledAction =>
      'command' in a
        ? command(['actions', j, 'command'], a.command)
        : { kind: 'alert', severity: a.alert.severity, message: template(['actions', j, 'alert', 'message'], a.alert.message) },
    ),
    onClear: def.onClear.map((a, j) => command(['onClear', j, 'command'], a.command)),
  };
  return ok ? rule : undefined;
}

function toList<T>(v: T | T[]): T[] {
  return Array.isArray(v) ? v : [v];
}

export function listRuleFiles(dir: string): string[] {
  return readdirSync(dir)
    .filter((f) => f.endsWith('.yaml') || f.endsWith('.yml'))
    .sort()
    .map((f) => join(dir, f));
}

/**
 * Loads every rule file in `dir`. `lastGood` holds each file's last good parse: a broken file
 * keeps its previous rules (and its errors are returned), so one typo never unloads a line's rules.
 */
export function loadRuleDir(dir: string, lastGood: Map<string, ParsedFile> = new Map()): RuleSet {
  const errors: LoadError[] = [];
  let files: string[];
  try {
    files = listRuleFiles(dir);
  } catch (err) {
    return { rules: [], safety: DEFAULT_SAFETY, errors: [{ file: dir, message: `cannot read the rules folder: ${(err as Error).message}` }] };
  }
  for (const gone of [...lastGood.keys()].filter((f) => !files.includes(f))) lastGood.delete(gone);
  const used: ParsedFile[] = [];
  for (const file of files) {
    let parsed: ParsedFile;
    try {
      parsed = parseRuleFile(file, readFileSync(file, 'utf8'));
    } catch (err) {
      parsed = { file, rules: [], errors: [{ file: basename(file), message: `cannot read: ${(err as Error).message}` }] };
    }
    if (parsed.errors.length === 0) {
      lastGood.set(file, parsed);
      used.push(parsed);
    } else {
      errors.push(...parsed.errors);
      const previous = lastGood.get(file);
      if (previous) used.push(previous);
    }
  }
  return combine(used, errors);
}

/** Merges files: rule ids must be unique, and at most one file defines `safety`. */
export function combine(files: ParsedFile[], errors: LoadError[] = []): RuleSet {
  const seen = new Map<string, CompiledRule>();
  const rules: CompiledRule[] = [];
  let safety: SafetyDefinition | undefined;
  let safetyFile: string | undefined;
  for (const f of files) {
    for (const r of f.rules) {
      const first = seen.get(r.id);
      if (first) {
        errors.push({ file: r.file, line: r.line, ruleId: r.id, message: `duplicate rule id; already defined in ${first.file}:${first.line ?? '?'} — rename one` });
        continue;
      }
      seen.set(r.id, r);
      rules.push(r);
    }
    if (f.safety) {
      if (safety) errors.push({ file: basename(f.file), message: `safety is already defined in ${safetyFile}; keep one safety section per rules folder` });
      else {
        safety = f.safety;
        safetyFile = basename(f.file);
      }
    }
  }
  return { rules, safety: safety ?? DEFAULT_SAFETY, errors };
}
