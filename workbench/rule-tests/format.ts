// Rule test files (`*.test.yaml` beside the rules): their schema, and loading them with errors that
// name the file, the line, the case and the key, e.g.
// `demo-line.test.yaml:14 [jam stops the feeder]: cases.1.expect.0.command.whithin: unknown key; …`.
//
//   cases:
//     - name: overheat slows the line
//       scenario: ../../simulators/scenarios/demo.yaml     # a scenario file, relative to this file…
//       seed: 1
//       duration: 12m
//       expect:
//         - command: { target: line-ctl, action: set_speed, params: { speed: { lte: 25 } }, within: [30s, 2m] }
//     - name: a jam stops the feeder
//       scenario:                                          # …or timed device messages, no simulator
//         - at 5s st-2 state FAULT reason jam
//         - at 20s st-2 state RUNNING
//       expect:
//         - command: { target: st-1, action: stop, by: 6s, outcome: done }
import { readFileSync } from 'node:fs';
import { basename, dirname, resolve } from 'node:path';
import { LineCounter, parseDocument } from 'yaml';
import { z } from 'zod';
import { ALARM_ACTIONS, COMMAND_ACTIONS, COMMAND_OUTCOMES, DEVICE_STATES, DEVICE_TYPES, STRATEGIES } from '../../contracts/schemas.js';
import { ID_PATTERN } from '../../contracts/topics.js';
import { FileLocator, type LoadError } from '../../rules/locate.js';

const strict = <T extends z.ZodRawShape>(shape: T) => z.strictObject(shape);

const TIME_UNITS_MS: Record<string, number> = { h: 3_600_000, m: 60_000, s: 1000, ms: 1 };
/** `500ms`, `10s`, `2m`, `1h`, or one of each run together as the report prints them (`1m30s`, `2m5.5s`); a number is milliseconds (as in rule files). */
export const timeSchema = z
  .union([z.number().nonnegative(), z.string().regex(/^(\d+(\.\d+)?(ms|h|m|s))+$/, 'expected a time such as 500ms, 10s, 2m, 1m30s or 1h')])
  .transform((v) => (typeof v === 'number' ? v : Math.round([...v.matchAll(/(\d+(?:\.\d+)?)(ms|h|m|s)/g)].reduce((ms, [, n, unit]) => ms + Number(n) * TIME_UNITS_MS[unit!]!, 0))));
const durationSchema = timeSchema;
const deviceId = z.string().regex(ID_PATTERN, 'expected a device id (letters, digits, - and _)');
/** A device id or a glob of them (`st-*`). */
const devicePattern = z.string().regex(/^[A-Za-z0-9_*?-]+$/, 'expected a device id or a glob such as st-*');

/**
 * One of two schemas, picked by the value's JS type (a string or a list; a scalar or a map), so an
 * error is the chosen schema's own — at its key — not zod's bare "Invalid input" of a union.
 */
function byType<A extends z.ZodType, B extends z.ZodType>(isA: (value: unknown) => boolean, a: A, b: B, otherwise: string, isB: (value: unknown) => boolean = () => true) {
  return z.unknown().transform((value, ctx): z.output<A> | z.output<B> => {
    const schema = isA(value) ? a : isB(value) ? b : undefined;
    if (!schema) {
      ctx.addIssue({ code: 'custom', message: otherwise });
      return z.NEVER;
    }
    const parsed = schema.safeParse(value);
    if (parsed.success) return parsed.data as z.output<A> | z.output<B>;
    for (const issue of parsed.error.issues) ctx.addIssue({ ...issue } as Parameters<typeof ctx.addIssue>[0]);
    return z.NEVER;
  });
}
const isString = (value: unknown): boolean => typeof value === 'string';
const isMap = (value: unknown): boolean => typeof value === 'object' && value !== null && !Array.isArray(value);

// ---- conditions on a value (a command's param, a reported setpoint) ----

const scalar = z.union([z.number(), z.string(), z.boolean()]);
const comparisonSchema = strict({ eq: scalar.optional(), ne: scalar.optional(), lt: z.number().optional(), lte: z.number().optional(), gt: z.number().optional(), gte: z.number().optional() }).refine(
  (c) => Object.values(c).some((v) => v !== undefined),
  'give at least one of eq, ne, lt, lte, gt, gte',
);
/** `40` or `energy-saving` (equal), `any` (present, any value), or a comparison `{ lte: 25 }`. */
export const valueConditionSchema = byType(isMap, comparisonSchema, scalar, 'expected a value (equal), "any" or a comparison such as { lte: 25 }', (value) => ['number', 'string', 'boolean'].includes(typeof value));
export type ValueCondition = z.infer<typeof valueConditionSchema>;

// ---- time windows ----

const windowShape = {
  /** `[30s, 2m]`: from, to (simulated time since the start, both included). */
  within: z.tuple([durationSchema, durationSchema]).optional(),
  /** `2m`: from the start to this. */
  by: durationSchema.optional(),
};
function oneWindow(w: { within?: [number, number]; by?: number }, ctx: z.RefinementCtx): void {
  if (w.within && w.by !== undefined) ctx.addIssue({ code: 'custom', path: ['by'], message: 'give within: [from, to] or by: time, not both' });
  if (w.within && w.within[0] > w.within[1]) ctx.addIssue({ code: 'custom', path: ['within'], message: 'within: [from, to] needs from ≤ to' });
}

// ---- expectations ----

const commandMatch = {
  target: devicePattern,
  action: z.enum(COMMAND_ACTIONS).optional(),
  params: z.record(z.string(), valueConditionSchema).optional(),
  /** Only commands of this rule (their origin is `rule:<id>`). */
  rule: z.string().min(1).optional(),
  ...windowShape,
};
const alarmMatch = {
  /** The alarm (alert) id, e.g. `conveyor-overheat:A/conv-2`, or a glob (`oscillation:*`). */
  id: z.string().min(1).optional(),
  rule: z.string().min(1).optional(),
  device: devicePattern.optional(),
  /** raised / cleared: the rule's alert; acknowledged: an operator's ack; normal: the alarm is over. */
  state: z.enum(['raised', 'cleared', 'acknowledged', 'normal']).default('raised'),
  ...windowShape,
};

const commandExpectation = strict({ ...commandMatch, outcome: z.enum(COMMAND_OUTCOMES).optional() }).superRefine(oneWindow);
const noCommandExpectation = strict(commandMatch).superRefine(oneWindow);
const alarmExpectation = strict(alarmMatch).superRefine(oneWindow);
const setpointExpectation = z
  .object({ device: deviceId })
  .catchall(valueConditionSchema)
  .refine((s) => Object.keys(s).length > 1, 'name at least one reading besides device, e.g. { device: line-ctl, speed: 40 }');
const countExpectation = strict({
  ...commandMatch,
  atMost: z.number().int().nonnegative().optional(),
  atLeast: z.number().int().nonnegative().optional(),
  /** In any window of this length (sliding), instead of in the whole window. */
  per: durationSchema.refine((ms) => ms > 0, 'per must be longer than 0').optional(),
}).superRefine((c, ctx) => {
  oneWindow(c, ctx);
  if (c.atMost === undefined && c.atLeast === undefined) ctx.addIssue({ code: 'custom', message: 'give atMost or atLeast (or both)' });
});

export const EXPECTATION_KINDS = ['command', 'no-command', 'alarm', 'no-alarm', 'setpoint', 'count'] as const;

const expectationSchema = strict({
  command: commandExpectation.optional(),
  'no-command': noCommandExpectation.optional(),
  alarm: alarmExpectation.optional(),
  'no-alarm': alarmExpectation.optional(),
  setpoint: setpointExpectation.optional(),
  count: countExpectation.optional(),
}).superRefine((e, ctx) => {
  const present = EXPECTATION_KINDS.filter((k) => e[k] !== undefined);
  if (present.length !== 1) ctx.addIssue({ code: 'custom', message: `each expectation needs exactly one of ${EXPECTATION_KINDS.join(', ')} (found ${present.length === 0 ? 'none' : present.join(', ')})` });
});

export type CommandExpectation = z.infer<typeof commandExpectation>;
export type NoCommandExpectation = z.infer<typeof noCommandExpectation>;
export type AlarmExpectation = z.infer<typeof alarmExpectation>;
export type SetpointExpectation = z.infer<typeof setpointExpectation>;
export type CountExpectation = z.infer<typeof countExpectation>;
export type Expectation =
  | { kind: 'command'; spec: CommandExpectation }
  | { kind: 'no-command'; spec: NoCommandExpectation }
  | { kind: 'alarm'; spec: AlarmExpectation }
  | { kind: 'no-alarm'; spec: AlarmExpectation }
  | { kind: 'setpoint'; spec: SetpointExpectation }
  | { kind: 'count'; spec: CountExpectation };

// ---- inline device messages ----

/** One device message of an inline scenario, at `at` (and every `every` until `until`). */
const scriptedEventSchema = strict({
  at: durationSchema,
  every: durationSchema.refine((ms) => ms > 0, 'every must be longer than 0').optional(),
  until: durationSchema.optional(),
  device: deviceId,
  /** Default: from the demo line's names (line-ctl, conv-N, st-N, env-N), else none. */
  type: z.enum(DEVICE_TYPES).optional(),
  state: z.enum(DEVICE_STATES).optional(),
  reason: z.string().min(1).optional(),
  strategy: z.enum(STRATEGIES).optional(),
  telemetry: z.record(z.string(), z.number()).optional(),
  status: z.enum(['online', 'offline']).optional(),
}).superRefine((e, ctx) => {
  const present = (['state', 'telemetry', 'status'] as const).filter((k) => e[k] !== undefined);
  if (present.length !== 1) ctx.addIssue({ code: 'custom', message: `each event needs exactly one of state, telemetry, status (found ${present.length === 0 ? 'none' : present.join(', ')})` });
  if ((e.every === undefined) !== (e.until === undefined)) ctx.addIssue({ code: 'custom', path: ['every'], message: 'every and until go together: every 1s until 60s' });
  if (e.until !== undefined && e.until < e.at) ctx.addIssue({ code: 'custom', path: ['until'], message: 'until must not be before at' });
  if ((e.reason !== undefined || e.strategy !== undefined) && e.state === undefined) ctx.addIssue({ code: 'custom', path: ['reason'], message: 'reason and strategy go with a state' });
});
export type ScriptedEvent = z.infer<typeof scriptedEventSchema>;

const LINE_GRAMMAR =
  'expected "at 5s [every 1s until 60s] DEVICE [type TYPE] state STATE [strategy S] [reason WORDS…]", "… telemetry name=number …" or "… status online|offline"';

/** `at 5s st-2 state FAULT reason jam`, `at 10s every 1s until 60s conv-2 telemetry motorTemp=85`, `at 30s env-2 status offline` → the object form. */
export function parseEventLine(text: string): Record<string, unknown> | string {
  const words = text.trim().split(/\s+/);
  const event: Record<string, unknown> = {};
  let i = 0;
  const next = (): string | undefined => words[i++];
  if (next() !== 'at') return `${LINE_GRAMMAR}; got "${text}"`;
  event.at = next();
  if (words[i] === 'every') {
    i++;
    event.every = next();
    if (next() !== 'until') return `"every" needs "until": at 10s every 1s until 60s …; got "${text}"`;
    event.until = next();
  }
  event.device = next();
  if (words[i] === 'type') {
    i++;
    event.type = next();
  }
  const kind = next();
  if (kind === 'state') {
    event.state = next();
    while (i < words.length) {
      const key = next();
      if (key === 'strategy') event.strategy = next();
      else if (key === 'reason') {
        event.reason = words.slice(i).join(' ');
        i = words.length;
      } else return `after the state, expected strategy S or reason WORDS…; got "${key}" in "${text}"`;
    }
  } else if (kind === 'telemetry') {
    const values: Record<string, number> = {};
    for (const pair of words.slice(i)) {
      const m = /^([A-Za-z_][A-Za-z0-9_]*)=(-?\d+(?:\.\d+)?)$/.exec(pair);
      if (!m) return `telemetry takes name=number pairs (motorTemp=85); got "${pair}" in "${text}"`;
      values[m[1]!] = Number(m[2]);
    }
    if (Object.keys(values).length === 0) return `telemetry needs at least one name=number; got "${text}"`;
    event.telemetry = values;
  } else if (kind === 'status') {
    event.status = next();
    if (i < words.length) return `status takes online or offline only; got "${text}"`;
  } else return `${LINE_GRAMMAR}; got "${text}"`;
  return event;
}

const scriptedLineSchema = z.string().transform((text, ctx) => {
  const parsed = parseEventLine(text);
  if (typeof parsed === 'string') {
    ctx.addIssue({ code: 'custom', message: parsed });
    return z.NEVER;
  }
  const event = scriptedEventSchema.safeParse(parsed);
  if (!event.success) {
    for (const issue of event.error.issues) ctx.addIssue({ code: 'custom', message: `${issue.path.length > 0 ? `${issue.path.join('.')}: ` : ''}${issue.message} (in "${text}")` });
    return z.NEVER;
  }
  return event.data;
});

// ---- cases and files ----

const alarmRequestSchema = strict({
  at: durationSchema,
  /** The alarm's id, e.g. conveyor-overheat:A/conv-2. */
  alarm: z.string().min(1),
  action: z.enum(ALARM_ACTIONS),
  /** For shelve: how long. */
  for: durationSchema.optional(),
}).refine((r) => r.action !== 'shelve' || r.for !== undefined, { path: ['for'], message: 'shelve needs for: how long, e.g. 10m' });

const caseSchema = strict({
  name: z.string().min(1),
  /** A scenario file (relative to the test file), or device messages at given times. */
  scenario: byType(
    isString,
    z.string().min(1),
    z.array(byType(isString, scriptedLineSchema, scriptedEventSchema, 'expected "at 5s st-2 state FAULT" or { at, device, state | telemetry | status }', isMap)).min(1),
    'expected a scenario file (relative to this test file) or a list of timed device messages',
    Array.isArray,
  ),
  seed: z.number().int().default(1),
  /** Default: a scenario file's own (a minute after its last event ends); inline events: a minute after the last. */
  duration: durationSchema.optional(),
  line: z.string().regex(ID_PATTERN, 'expected a line id').default('A'),
  /** Operators' requests about alarms at given times (acknowledge, shelve, unshelve, clear). */
  operator: z.array(alarmRequestSchema).default([]),
  expect: z.array(expectationSchema).min(1, 'a case needs at least one expectation'),
});

const testFileSchema = strict({
  description: z.string().optional(),
  cases: z.array(caseSchema).min(1, 'a test file needs at least one case'),
});

export interface RuleTestCase {
  name: string;
  /** A scenario file (resolved) or inline device messages. */
  scenario: { file: string } | { events: ScriptedEvent[] };
  seed: number;
  durationMs?: number;
  line: string;
  operator: { at: number; alarm: string; action: (typeof ALARM_ACTIONS)[number]; shelveForMs?: number }[];
  expect: Expectation[];
}

export interface RuleTestFile {
  file: string;
  cases: RuleTestCase[];
}

function expectationOf(e: z.infer<typeof expectationSchema>): Expectation {
  if (e.command) return { kind: 'command', spec: e.command };
  if (e['no-command']) return { kind: 'no-command', spec: e['no-command'] };
  if (e.alarm) return { kind: 'alarm', spec: e.alarm };
  if (e['no-alarm']) return { kind: 'no-alarm', spec: e['no-alarm'] };
  if (e.setpoint) return { kind: 'setpoint', spec: e.setpoint };
  return { kind: 'count', spec: e.count! };
}

/** Parses one test file's text; `file` is its path (scenario files resolve against its folder). */
export function parseRuleTestFile(file: string, text: string): { file?: RuleTestFile; errors: LoadError[] } {
  const name = basename(file);
  const lineCounter = new LineCounter();
  const doc = parseDocument(text, { lineCounter, prettyErrors: false });
  if (doc.errors.length > 0) return { errors: doc.errors.map((e) => ({ file: name, line: lineCounter.linePos(e.pos[0]).line, message: `YAML syntax error: ${e.message.split('\n')[0]}` })) };
  const raw: unknown = doc.toJS() ?? {};
  const parsed = testFileSchema.safeParse(raw);
  const locator = new FileLocator(name, doc, lineCounter);
  if (!parsed.success) {
    const cases = (raw as { cases?: unknown }).cases;
    const caseName = (index: unknown): string | undefined => {
      const c: unknown = Array.isArray(cases) && typeof index === 'number' ? cases[index] : undefined;
      const n = typeof c === 'object' && c !== null ? (c as { name?: unknown }).name : undefined;
      return typeof n === 'string' ? n : typeof index === 'number' ? `case ${index + 1}` : undefined;
    };
    const errors = parsed.error.issues.flatMap((issue) => {
      const one = new z.ZodError([issue]);
      return locator.issues(one, [], issue.path[0] === 'cases' ? caseName(issue.path[1]) : undefined);
    });
    return { errors: errors.sort((a, b) => (a.line ?? 0) - (b.line ?? 0)) };
  }
  const errors: LoadError[] = [];
  const seen = new Map<string, number>();
  parsed.data.cases.forEach((c, index) => {
    const first = seen.get(c.name);
    if (first !== undefined) errors.push({ file: name, line: locator.lineOf(['cases', index, 'name']), ruleId: c.name, message: `cases.${index}.name: a case of this name is already at cases.${first}; give each case its own name` });
    else seen.set(c.name, index);
  });
  if (errors.length > 0) return { errors };
  const cases = parsed.data.cases.map(
    (c): RuleTestCase => ({
      name: c.name,
      scenario: typeof c.scenario === 'string' ? { file: resolve(dirname(file), c.scenario) } : { events: c.scenario },
      seed: c.seed,
      ...(c.duration !== undefined ? { durationMs: c.duration } : {}),
      line: c.line,
      operator: c.operator.map((r) => ({ at: r.at, alarm: r.alarm, action: r.action, ...(r.for !== undefined ? { shelveForMs: r.for } : {}) })),
      expect: c.expect.map(expectationOf),
    }),
  );
  return { file: { file, cases }, errors: [] };
}

export function loadRuleTestFile(file: string): { file?: RuleTestFile; errors: LoadError[] } {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    return { errors: [{ file: basename(file), message: `cannot read the test file: ${(err as Error).message}` }] };
  }
  return parseRuleTestFile(file, text);
}
