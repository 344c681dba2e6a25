// Payload schemas for every linewatch topic (docs/topics-and-payloads.md). JSON, UTF-8.
// Device messages carry the device's own timestamp (`ts`, ms since the Unix epoch) and a
// per-device sequence number (`seq`) so duplicates are recognised and order is checked.
import { z } from 'zod';

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

const timestamp = z.number().int().nonnegative().describe('device time, ms since the Unix epoch');
const sequence = z.number().int().nonnegative().describe('per-device sequence number, +1 per message');
const label = z.string().min(1).max(256);

export const stateSchema = z.strictObject({
  ts: timestamp,
  seq: sequence,
  state: z.enum(DEVICE_STATES),
  reason: label.optional(),
  type: z.enum(DEVICE_TYPES).optional(),
  station: z.string().max(64).optional(),
  /** A line controller's current strategy, so consumers know it without waiting for a command. */
  strategy: z.enum(STRATEGIES).optional(),
});
export type StatePayload = z.infer<typeof stateSchema>;

export const telemetrySchema = z.strictObject({
  ts: timestamp,
  seq: sequence,
  /** Numeric readings, e.g. { speed: 12.5, temperature: 61.2 }. */
  values: z.record(z.string().regex(/^[A-Za-z_][A-Za-z0-9_]{0,63}$/), z.number().finite()),
  type: z.enum(DEVICE_TYPES).optional(),
  station: z.string().max(64).optional(),
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
  params: z.record(z.string(), z.union([z.number(), z.string(), z.boolean()])).default({}),
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
  rule: label,
  severity: z.enum(SEVERITIES),
  state: z.enum(['raised', 'cleared', 'acknowledged']),
  message: z.string().max(1024),
  device: z.string().max(64).optional(),
  /** Who changed it when not the rule itself, e.g. `user:dashboard` for an acknowledge or clear. */
  origin: label.optional(),
  ts: timestamp,
});
export type AlertPayload = z.infer<typeof alertSchema>;

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
});
export type SummaryPayload = z.infer<typeof summarySchema>;

export const COMMAND_OUTCOMES = ['accepted', 'done', 'rejected', 'failed', 'expired', 'blocked'] as const;
export type CommandOutcome = (typeof COMMAND_OUTCOMES)[number];

/**
 * What became of a command, published by its sender on lw/{line}/{device}/cmd/outcome.
 * `accepted` may be followed by `done` for the same id; `done`, `rejected`, `failed`, `expired`
 * and `blocked` (never sent: an actuator-safety limit refused it, see `reason`) are final.
 */
export const commandOutcomeSchema = z.strictObject({
  id: z.string().min(1).max(128),
  action: z.enum(COMMAND_ACTIONS),
  params: z.record(z.string(), z.union([z.number(), z.string(), z.boolean()])).default({}),
  origin: label,
  /** The device the command was addressed to (the line is in the topic). */
  target: z.string().min(1).max(64),
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

/** What the broker publishes on lw/_dead/{clientId} for a refused payload. */
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
};
