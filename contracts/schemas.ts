// Payload schemas for every linewatch topic (docs/topics-and-payloads.md). JSON, UTF-8.
// Device messages carry the device's own timestamp (`ts`, ms since the Unix epoch) and a
// per-device sequence number (`seq`) so duplicates are recognised and order is checked.
import { z } from 'zod';
import { ID_PATTERN } from './topics.js';

export const DEVICE_STATES = ['RUNNING', 'IDLE', 'BLOCKED', 'STARVED', 'FAULT', 'MAINTENANCE', 'STOPPED'] as const;
export type DeviceState = (typeof DEVICE_STATES)[number];

export const DEVICE_TYPES = ['line-controller', 'conveyor', 'station', 'sensor', 'plc', 'other'] as const;
export type DeviceType = (typeof DEVICE_TYPES)[number];

export const COMMAND_ACTIONS = ['set_speed', 'set_strategy', 'stop', 'start', 'reset_fault'] as const;
export type CommandAction = (typeof COMMAND_ACTIONS)[number];

export const STRATEGIES = ['max-throughput', 'energy-saving', 'quality-first', 'safe'] as const;
export type Strategy = (typeof STRATEGIES)[number];

export const ACK_RESULTS = ['accepted', 'done', 'rejected', 'failed'] as const;
export type AckResult = (typeof ACK_RESULTS)[number];

export const SEVERITIES = ['info', 'warning', 'critical'] as const;
export type Severity = (typeof SEVERITIES)[number];

/**
 * The latest `ts` InfluxDB can store as a point's time. InfluxDB 1.x times are int64 nanoseconds,
 * at most 9223372036854775806 (2262-04-11T23:47:16.854775806Z), and the historian puts a
 * disambiguator of up to 999999 ns after the millisecond (historian/points.ts), so the largest
 * millisecond whose every point time fits is floor((9223372036854775806 - 999999) / 10^6).
 * The earliest (1677-09-21) is before 0, which `ts` cannot go below anyway.
 */
export const MAX_TIMESTAMP_MS = 9_223_372_036_853;

const timestamp = z
  .number()
  .int()
  .nonnegative()
  .max(MAX_TIMESTAMP_MS, `must be at most ${MAX_TIMESTAMP_MS} (${new Date(MAX_TIMESTAMP_MS).toISOString()}), the latest time InfluxDB can store; send ms since the Unix epoch`)
  .describe('device time, ms since the Unix epoch');
const sequence = z.number().int().nonnegative().describe('per-device sequence number, +1 per message');
const label = z.string().min(1).max(256);
/**
 * Free-form names that become InfluxDB tags (station, an alert's device, a command's target) follow
 * the device id pattern, so no tag value can carry line-protocol syntax (newlines, `,`, `=`, `\`).
 */
const tagId = (what: string) => z.string().regex(ID_PATTERN, `must be ${what}: 1–64 of A–Z a–z 0–9 _ - (the device id pattern; no spaces, newlines or punctuation)`);
/** A rule's id (rules/schema.ts uses it): an alert's `rule` is a tag too. */
export const RULE_ID_PATTERN = /^[A-Za-z0-9_.-]{1,64}$/;

/** A reading name in telemetry `values`: it becomes an InfluxDB field key. */
export const READING_NAME_PATTERN = /^[A-Za-z_][A-Za-z0-9_]{0,63}$/;
/**
 * Reading names the historian stores renamed to `<name>_value`, because the telemetry measurement
 * already uses them (tags `device`, `line`, `station`, `type`; field `seq`) or InfluxDB reserves
 * them (`time`: a field so named is dropped, a tag refused). See docs/historian.md, "Schema".
 */
export const RESERVED_READING_NAMES = ['device', 'line', 'station', 'type', 'seq', 'time'] as const;

/**
 * JSON.parse makes "__proto__" an own key, but copying it into a plain object (as the record
 * parser does) sets the prototype instead, so the reading would vanish: refuse it before.
 */
const noProtoKey = (raw: unknown, ctx: z.RefinementCtx): unknown => {
  if (typeof raw === 'object' && raw !== null && Object.prototype.hasOwnProperty.call(raw, '__proto__')) {
    ctx.addIssue({ code: 'custom', message: 'the name "__proto__" is not allowed: it names the prototype of a JavaScript object; rename it' });
    return z.NEVER;
  }
  return raw;
};

const readingsRecord = z.record(z.string(), z.number().finite()).superRefine((values, ctx) => {
  for (const name of Object.keys(values)) {
    if (!READING_NAME_PATTERN.test(name)) {
      ctx.addIssue({ code: 'custom', message: `reading name ${JSON.stringify(name.slice(0, 80))} is not allowed: use 1–64 of A–Z a–z 0–9 _, not starting with a digit` });
    }
  }
  for (const name of RESERVED_READING_NAMES) {
    if (name in values && `${name}_value` in values) {
      ctx.addIssue({ code: 'custom', path: [`${name}_value`], message: `a reading named "${name}" is stored as "${name}_value", so both cannot be sent in one message; rename one` });
    }
  }
});
const readings = z.preprocess(noProtoKey, readingsRecord);
/** A command's parameters (also echoed in its outcome); `__proto__` refused like a reading name. */
const commandParams = z.preprocess(noProtoKey, z.record(z.string(), z.union([z.number(), z.string(), z.boolean()]))).default({});

export const stateSchema = z.strictObject({
  ts: timestamp,
  seq: sequence,
  state: z.enum(DEVICE_STATES),
  reason: label.optional(),
  type: z.enum(DEVICE_TYPES).optional(),
  station: tagId('a station id').optional(),
  /** A line controller's current strategy, so consumers know it without waiting for a command. */
  strategy: z.enum(STRATEGIES).optional(),
});
export type StatePayload = z.infer<typeof stateSchema>;

export const telemetrySchema = z.strictObject({
  ts: timestamp,
  seq: sequence,
  /** Numeric readings, e.g. { speed: 12.5, temperature: 61.2 }. */
  values: readings,
  type: z.enum(DEVICE_TYPES).optional(),
  station: tagId('a station id').optional(),
});
export type TelemetryPayload = z.infer<typeof telemetrySchema>;

export const statusSchema = z.strictObject({
  ts: timestamp,
  seq: sequence.optional(),
  status: z.enum(['online', 'offline']),
  type: z.enum(DEVICE_TYPES).optional(),
});
export type StatusPayload = z.infer<typeof statusSchema>;

export const commandSchema = z.strictObject({
  id: z.string().min(1).max(128),
  action: z.enum(COMMAND_ACTIONS),
  params: commandParams,
  /** Where it came from, e.g. `rule:overheat-slowdown` or `user:dashboard`. */
  origin: label,
  ts: timestamp,
  /** After this time (ms since epoch) the device must not act on it. */
  expiresAt: timestamp,
});
export type CommandPayload = z.infer<typeof commandSchema>;

export const ackSchema = z.strictObject({
  id: z.string().min(1).max(128),
  result: z.enum(ACK_RESULTS),
  reason: label.optional(),
  ts: timestamp,
  seq: sequence.optional(),
});
export type AckPayload = z.infer<typeof ackSchema>;

export const alertSchema = z.strictObject({
  id: z.string().min(1).max(128),
  rule: z.string().regex(RULE_ID_PATTERN, 'must be a rule id: 1–64 of A–Z a–z 0–9 _ . - (as in the rules files)'),
  severity: z.enum(SEVERITIES),
  state: z.enum(['raised', 'cleared', 'acknowledged']),
  message: z.string().max(1024),
  device: tagId('a device id').optional(),
  /** Who changed it when not the rule itself, e.g. `user:dashboard` for an acknowledge or clear. */
  origin: label.optional(),
  ts: timestamp,
});
export type AlertPayload = z.infer<typeof alertSchema>;

/**
 * An alarm's states (ISA-18.2): the condition active or returned to normal (rtn), × unacknowledged
 * or acknowledged. `normal` (returned and acknowledged) is the last state an alarm publishes: then
 * its retained topic is emptied. Shelving is apart (`shelvedUntil`): it hides an alarm from the
 * active list for a time, whatever its state.
 */
export const ALARM_STATES = ['active-unacked', 'active-acked', 'rtn-unacked', 'normal'] as const;
export type AlarmState = (typeof ALARM_STATES)[number];

/** What changed an alarm: its rule (raise, return), an operator (ack, shelve, unshelve, clear), its shelving time running out (unshelve, no operator). */
export const ALARM_TRANSITIONS = ['raise', 'return', 'ack', 'shelve', 'unshelve', 'clear'] as const;
export type AlarmTransition = (typeof ALARM_TRANSITIONS)[number];

/** What an operator may ask of an alarm on lw/{line}/alarms/{alarmId}/set. */
export const ALARM_ACTIONS = ['acknowledge', 'shelve', 'unshelve', 'clear'] as const;
export type AlarmAction = (typeof ALARM_ACTIONS)[number];

/** The longest an alarm may be shelved: a day (ISA-18.2 wants shelving time-limited). */
export const MAX_SHELVE_MS = 24 * 3600_000;

const alarmIdSchema = z.string().regex(/^[A-Za-z0-9_.-]{1,64}:[A-Za-z0-9_./:-]{1,127}$/, 'must be an alarm id: `rule:key` as the rules engine makes it (e.g. overheat:A/conv-2)').max(128);
const operatorSchema = z.string().min(1).max(128).describe('who acted, e.g. user:dashboard or the operator name the dashboard was given');

/** lw/{line}/alarms/{alarmId}: one alarm's full state, published (retained) by the rules engine. */
export const alarmSchema = z.strictObject({
  id: alarmIdSchema,
  rule: z.string().regex(RULE_ID_PATTERN, 'must be a rule id: 1–64 of A–Z a–z 0–9 _ . - (as in the rules files)'),
  severity: z.enum(SEVERITIES),
  message: z.string().max(1024),
  device: tagId('a device id').optional(),
  state: z.enum(ALARM_STATES),
  /** Shelved (hidden from the active list) until this time, ms since epoch. */
  shelvedUntil: timestamp.optional(),
  /** What made this the state, and when. */
  transition: z.enum(ALARM_TRANSITIONS),
  /** The operator and comment of the last operator action (ack, shelve, unshelve, clear). */
  operator: operatorSchema.optional(),
  comment: z.string().max(1024).optional(),
  /** When the condition last became active. */
  raisedAt: timestamp,
  /** +1 per transition: a subscriber keeps the highest (the engine's own echo is older than its table). */
  rev: z.number().int().nonnegative(),
  ts: timestamp,
});
export type AlarmPayload = z.infer<typeof alarmSchema>;

/** lw/{line}/alarms/{alarmId}/set: an operator's request; the engine applies it and publishes the new state. */
export const alarmSetSchema = z
  .strictObject({
    action: z.enum(ALARM_ACTIONS),
    operator: operatorSchema,
    comment: z.string().max(1024).optional(),
    /** For shelve: for how long (ms), at most MAX_SHELVE_MS. */
    shelveForMs: z.number().int().positive().max(MAX_SHELVE_MS, `must be at most ${MAX_SHELVE_MS} ms (a day)`).optional(),
    ts: timestamp,
  })
  .refine((request) => request.action !== 'shelve' || request.shelveForMs !== undefined, { path: ['shelveForMs'], message: 'shelve needs shelveForMs: for how long, in ms' });
export type AlarmSetPayload = z.infer<typeof alarmSetSchema>;

export const summarySchema = z.strictObject({
  ts: timestamp,
  speed: z.number().finite().optional(),
  strategy: z.enum(STRATEGIES).optional(),
  availability: z.number().min(0).max(1).optional(),
  performance: z.number().min(0).optional(),
  quality: z.number().min(0).max(1).optional(),
  oee: z.number().min(0).optional(),
  goodCount: z.number().int().nonnegative().optional(),
  scrapCount: z.number().int().nonnegative().optional(),
  /** The shift the figures are of (the current one, else the last one): they cover its start up to `ts`. */
  shift: z.string().regex(ID_PATTERN).optional(),
  shiftStart: timestamp.optional(),
});
export type SummaryPayload = z.infer<typeof summarySchema>;

export const OEE_PERIOD_KINDS = ['hour', 'shift', 'day'] as const;
/** The stop conditions of a line or device: every state but RUNNING (docs/oee.md). */
export const STOP_STATES = ['FAULT', 'MAINTENANCE', 'BLOCKED', 'STARVED', 'STOPPED', 'IDLE'] as const;
export type StopState = (typeof STOP_STATES)[number];
const duration = z.number().int().nonnegative().describe('ms');

/**
 * lw/{line}/oee: one hour's, shift's or day's OEE of a line (`scope: line`) or of one station
 * (`scope: station`, `device`), from the states and counts within [start, end) (docs/oee.md).
 * Published again while the period can change; `complete` once device time passed its end.
 */
export const oeePeriodSchema = z.strictObject({
  ts: timestamp,
  period: z.enum(OEE_PERIOD_KINDS),
  scope: z.enum(['line', 'station']),
  device: tagId('a device id').optional(),
  /** The shift's name (period `shift`). */
  shift: z.string().regex(ID_PATTERN).optional(),
  start: timestamp,
  end: timestamp,
  complete: z.boolean(),
  availability: z.number().min(0).max(1).optional(),
  performance: z.number().min(0).optional(),
  quality: z.number().min(0).max(1).optional(),
  oee: z.number().min(0).optional(),
  /** Planned production time: running + micro-stops + unplanned stops. */
  plannedMs: duration,
  runMs: duration,
  /** Unplanned stops of at least oee.microStopMs, by state. */
  downMs: z.partialRecord(z.enum(STOP_STATES), duration),
  microStops: z.number().int().nonnegative(),
  microStopMs: duration,
  /** Stops outside planned production time: MAINTENANCE, breaks, planned downtime, no shift. */
  plannedStopMs: duration,
  /** No device state known (nothing heard yet, or every device offline). */
  unknownMs: duration,
  goodCount: z.number().int().nonnegative(),
  scrapCount: z.number().int().nonnegative(),
});
export type OeePeriodPayload = z.infer<typeof oeePeriodSchema>;

/**
 * lw/{line}/downtime: one stop interval of a line (`scope: line`, `device` the one that held the
 * line in `state`) or of one device (`scope: device`). Identified by scope, device, state and
 * start: published while open (`open: true`, `end` the latest device time) and once more when it ends.
 */
export const downtimeSchema = z.strictObject({
  ts: timestamp,
  scope: z.enum(['line', 'device']),
  device: tagId('a device id'),
  station: tagId('a station id').optional(),
  state: z.enum(STOP_STATES),
  /** The device's reason when the stop began. */
  reason: label.optional(),
  start: timestamp,
  end: timestamp,
  durationMs: duration,
  /** The part of it outside planned production time (all of it for MAINTENANCE). */
  plannedMs: duration,
  /** Shorter than oee.microStopMs: a micro-stop, counted apart. */
  micro: z.boolean(),
  open: z.boolean(),
});
export type DowntimePayload = z.infer<typeof downtimeSchema>;

export const COMMAND_OUTCOMES = ['accepted', 'done', 'rejected', 'failed', 'expired', 'blocked', 'shadow'] as const;
export type CommandOutcome = (typeof COMMAND_OUTCOMES)[number];

/**
 * What became of a command, published by its sender on lw/{line}/{device}/cmd/outcome.
 * `accepted` may be followed by `done` for the same id; `done`, `rejected`, `failed`, `expired`
 * and `blocked` (never sent: an actuator-safety limit refused it, see `reason`) are final.
 * `shadow` is the one outcome of a shadow rule set's command (lw/_shadow/…): sent to no device,
 * recorded at once (docs/rules.md#shadow).
 */
export const commandOutcomeSchema = z.strictObject({
  id: z.string().min(1).max(128),
  action: z.enum(COMMAND_ACTIONS),
  params: commandParams,
  origin: label,
  /** The device the command was addressed to (the line is in the topic). */
  target: tagId('a device id'),
  outcome: z.enum(COMMAND_OUTCOMES),
  /** How many times the command was sent (1 + retries); 0 when blocked. */
  attempts: z.number().int().nonnegative(),
  reason: label.optional(),
  /** When the command was first issued (ms since epoch). */
  issuedAt: timestamp,
  /** When this outcome was decided. */
  ts: timestamp,
});
export type CommandOutcomePayload = z.infer<typeof commandOutcomeSchema>;

/** The first bytes of a refused payload a dead letter keeps (base64 in `payload`). */
export const DEAD_LETTER_PAYLOAD_BYTES = 1024;

/**
 * What the broker publishes on lw/_dead/{clientId} for a refused payload (clientId: its sender),
 * and the rules engine on lw/_dead/rules for a device message it refused (clientId: `rules`).
 */
export const deadLetterSchema = z.strictObject({
  ts: timestamp,
  clientId: z.string(),
  topic: z.string(),
  reason: z.string(),
  /** The first bytes of the refused payload, base64. */
  payload: z.string(),
});
export type DeadLetterPayload = z.infer<typeof deadLetterSchema>;

export const schemas = {
  state: stateSchema,
  telemetry: telemetrySchema,
  status: statusSchema,
  cmd: commandSchema,
  ack: ackSchema,
  outcome: commandOutcomeSchema,
  alert: alertSchema,
  summary: summarySchema,
  oeePeriod: oeePeriodSchema,
  downtime: downtimeSchema,
  alarm: alarmSchema,
  alarmSet: alarmSetSchema,
} as const;

export type PayloadOf = {
  state: StatePayload;
  telemetry: TelemetryPayload;
  status: StatusPayload;
  cmd: CommandPayload;
  ack: AckPayload;
  outcome: CommandOutcomePayload;
  alert: AlertPayload;
  summary: SummaryPayload;
  oeePeriod: OeePeriodPayload;
  downtime: DowntimePayload;
  alarm: AlarmPayload;
  alarmSet: AlarmSetPayload;
};
