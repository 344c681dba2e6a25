// The rule-file format (docs/rules.md): what a YAML file in the rules folder may say.
import { z } from 'zod';
import { COMMAND_ACTIONS, DEVICE_STATES, DEVICE_TYPES, RULE_ID_PATTERN, SEVERITIES } from '../contracts/schemas.js';

/** A strict object whose unknown keys are refused with the keys it does have (each at its own line: rules/locate.ts). */
function strict<Shape extends z.ZodRawShape>(shape: Shape) {
  const keys = Object.keys(shape).join(', ');
  return z.strictObject(shape, { error: (issue) => (issue.code === 'unrecognized_keys' ? `unknown key; use one of ${keys}` : undefined) });
}

const UNITS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 };

/** `500ms`, `10s`, `2m`, `1h`, or a number of milliseconds. */
export const durationSchema = z
  .union([z.number().nonnegative(), z.string().regex(/^\d+(\.\d+)?(ms|s|m|h)$/, 'expected a duration such as 500ms, 10s, 2m or 1h')])
  .transform((v) => {
    if (typeof v === 'number') return v;
    const m = /^(\d+(?:\.\d+)?)(ms|s|m|h)$/.exec(v)!;
    return Math.round(Number(m[1]) * UNITS[m[2]!]!);
  });

/** `20%` or a fraction such as 0.2. */
const percentSchema = z
  .union([z.number().positive(), z.string().regex(/^\d+(\.\d+)?%$/, 'expected a percentage such as 20%')])
  .transform((v) => (typeof v === 'number' ? v : Number(v.slice(0, -1)) / 100));

/** A line or device id, or a glob over them with `*` and `?`. */
const patternSchema = z.string().regex(/^[A-Za-z0-9_*?-]{1,64}$/, 'expected an id or a glob with * and ? (letters, digits, _ and -)');
const idSchema = z.string().regex(/^[A-Za-z0-9_-]{1,64}$/, 'expected an id: 1–64 letters, digits, _ or -');
const expressionSchema = z.string().min(1);
const stateList = z.union([z.enum(DEVICE_STATES), z.array(z.enum(DEVICE_STATES)).min(1)]);

export const matchSchema = strict({
  line: patternSchema.default('*'),
  device: z.union([patternSchema, z.array(patternSchema).min(1)]).default('*'),
  type: z.enum(DEVICE_TYPES).optional(),
  /** Default: `state` for a transition rule, else `telemetry`. */
  kind: z.enum(['state', 'telemetry', 'status']).optional(),
});

const paramValue = z.union([z.number(), z.string(), z.boolean()]);

const actionNameSchema = z.enum(COMMAND_ACTIONS, {
  error: (issue) => `${issue.input === undefined ? 'no action given' : `unknown action ${JSON.stringify(issue.input)}`}; use one of ${COMMAND_ACTIONS.join(', ')}`,
});

const commandBodySchema = strict({
  /** A device id on the matched line, or a template such as `{device}`. */
  target: z.string().min(1),
  action: actionNameSchema,
  /** A string starting with `=` is an expression, e.g. `speed: "=target.speed * 0.8"`. */
  params: z.record(z.string(), paramValue).default({}),
  ttl: durationSchema.optional(),
});

const alertBodySchema = strict({
  severity: z.enum(SEVERITIES).default('warning'),
  message: z.string().min(1).max(1024),
});

export const commandActionSchema = strict({ command: commandBodySchema });

type CommandBody = z.infer<typeof commandBodySchema>;
type AlertBody = z.infer<typeof alertBodySchema>;

/**
 * `{ command: … }` or `{ alert: … }`. One object with both keys optional rather than a union, so
 * an error inside either (a wrong action name, an unknown key) is reported as itself instead of
 * the union's "Invalid input".
 */
export const actionSchema = strict({ command: commandBodySchema.optional(), alert: alertBodySchema.optional() })
  .superRefine((a, ctx) => {
    if ((a.command === undefined) === (a.alert === undefined)) ctx.addIssue({ code: 'custom', message: 'an action is either command: or alert: (exactly one of them)' });
  })
  .transform((a): { command: CommandBody } | { alert: AlertBody } => (a.command ? { command: a.command } : { alert: a.alert! }));

export const ruleSchema = strict({
  id: z.string().regex(RULE_ID_PATTERN, 'expected a rule id: 1–64 letters, digits, _ . or -'),
  description: z.string().optional(),
  enabled: z.boolean().default(true),
  /** Higher wins when rules command the same target. */
  priority: z.number().int().default(0),
  match: matchSchema.prefault({}),
  when: expressionSchema.optional(),
  for: durationSchema.optional(),
  clear: expressionSchema.optional(),
  clearFor: durationSchema.optional(),
  window: strict({ of: expressionSchema, time: durationSchema.optional(), count: z.number().int().min(1).max(10_000).optional() })
    .refine((w) => (w.time === undefined) !== (w.count === undefined), 'give exactly one of window.time or window.count')
    .optional(),
  transition: strict({ from: z.union([stateList, z.literal('*')]).default('*'), to: stateList }).optional(),
  absent: strict({ after: durationSchema, grace: durationSchema.optional(), devices: z.array(idSchema).min(1) }).optional(),
  lineCount: strict({ where: expressionSchema, atLeast: z.number().int().min(1) }).optional(),
  actions: z.array(actionSchema).min(1),
  onClear: z.array(commandActionSchema).default([]),
}).superRefine((r, ctx) => {
  const triggers = [r.when, r.transition, r.absent, r.lineCount].filter((t) => t !== undefined).length;
  if (triggers === 0) ctx.addIssue({ code: 'custom', message: 'a rule needs one of when, transition, absent or lineCount' });
  if (r.absent && triggers > 1) ctx.addIssue({ code: 'custom', path: ['absent'], message: 'absent cannot be combined with when, transition or lineCount' });
  if (r.absent && r.match.line.includes('*')) ctx.addIssue({ code: 'custom', path: ['match', 'line'], message: 'an absent rule needs a concrete line (the expected devices are on it)' });
  if (r.transition && r.match.kind !== undefined && r.match.kind !== 'state') ctx.addIssue({ code: 'custom', path: ['match', 'kind'], message: 'a transition rule matches kind: state' });
  if (r.window && !r.when) ctx.addIssue({ code: 'custom', path: ['window'], message: 'a window needs a when condition over avg, min, max, count or rate' });
  if (r.window && (r.lineCount || r.absent)) ctx.addIssue({ code: 'custom', path: ['window'], message: 'a window is per device; it cannot be combined with lineCount or absent' });
});

export const targetSafetySchema = strict({
  /** Minimum time between two commands to the target (any rule). */
  cooldown: durationSchema.optional(),
  /** Minimum time a setpoint holds before it may change again. */
  minDwell: durationSchema.optional(),
  /** Largest relative change of a numeric setpoint per command; bigger steps are clamped. */
  maxStep: percentSchema.optional(),
  /** Commands per target in any 60 s. */
  budgetPerMinute: z.number().int().min(1).optional(),
});

export const safetySchema = strict({
  defaults: targetSafetySchema.prefault({}),
  /** Per target, keyed `LINE/DEVICE` (globs allowed, first match wins). */
  targets: z.record(z.string().regex(/^[A-Za-z0-9_*?-]{1,64}\/[A-Za-z0-9_*?-]{1,64}$/, 'expected LINE/DEVICE'), targetSafetySchema).default({}),
  /**
   * A setpoint whose direction reverses `reversals` times within `window` suspends the offending
   * rule for `suspendFor` (rules/oscillation.ts). The window is long enough for slow limit cycles
   * (the demo's old overheat rule cycled every ~110 s), and 4 reversals are two full swings.
   */
  oscillation: strict({ window: durationSchema.default(600_000), reversals: z.number().int().min(2).default(4), suspendFor: durationSchema.default(300_000) })
    .prefault({}),
});

/**
 * `lines: { A: { flow: [st-1, st-2, …] } }`: per line, its devices in flow order (each feeds the
 * next), read by upstream()/downstream(); `devices` optionally lists the line's other devices, so
 * `rules check` can check targets and device("…") against them without a scenario.
 */
export const lineSchema = strict({
  flow: z.array(idSchema).min(1),
  devices: z.array(idSchema).optional(),
}).superRefine((line, ctx) => {
  const seen = new Map<string, string>();
  const check = (key: 'flow' | 'devices', ids: readonly string[]): void =>
    ids.forEach((id, i) => {
      const first = seen.get(id);
      if (first !== undefined) {
        const why = key === 'flow' && first.startsWith('flow.') ? 'a device appears once in a flow (twice would make a cycle, and it would have two upstream neighbours)' : 'a device is listed once (in flow or in devices)';
        ctx.addIssue({ code: 'custom', path: [key, i], message: `"${id}" is already at ${first}: ${why}` });
      } else seen.set(id, `${key}.${i}`);
    });
  check('flow', line.flow);
  check('devices', line.devices ?? []);
});

export const linesSchema = z.record(idSchema, lineSchema);

export const ruleFileSchema = strict({
  rules: z.array(ruleSchema).default([]),
  safety: safetySchema.optional(),
  lines: linesSchema.optional(),
});

/**
 * A file's top level with each rule and the safety section left unparsed: the loader validates
 * them one by one (ruleSchema, safetySchema), so one broken rule neither hides the errors of the
 * others nor keeps them from loading.
 */
export const ruleFileOutlineSchema = strict({
  rules: z.array(z.unknown()).default([]),
  safety: z.unknown().optional(),
  lines: z.unknown().optional(),
});

export type RuleDefinition = z.infer<typeof ruleSchema>;
export type ActionDefinition = z.infer<typeof actionSchema>;
export type CommandActionDefinition = z.infer<typeof commandActionSchema>;
export type TargetSafety = z.infer<typeof targetSafetySchema>;
export type SafetyDefinition = z.infer<typeof safetySchema>;
export type RuleFile = z.infer<typeof ruleFileSchema>;
export type LineDefinition = z.infer<typeof lineSchema>;
export type LinesDefinition = z.infer<typeof linesSchema>;
