// The raw Sparkplug metrics, a contract between the Sparkplug host (sparkplug/, which publishes
// them) and the historian (which stores them in the measurement sparkplug_metrics): each birth,
// data and death of an edge node or device, its metrics with their Sparkplug datatypes, on
//
//   lw/_sparkplug/{group}/{edge}/metrics            an edge node's own metrics
//   lw/_sparkplug/{group}/{edge}/{device}/metrics   a device's
//
// It is not a line: no device account is granted anything under lw/_sparkplug/ (a device's
// grants all end in state, telemetry, status, cmd or cmd/ack), and none of its topics parses as a
// linewatch topic (parseTopic gives undefined). Sparkplug ids are MQTT topic levels already, so
// they hold no '/', '+' or '#'.
import { z } from 'zod';
import { MAX_TIMESTAMP_MS } from '../schemas.js';
import { ROOT } from '../topics.js';

export const SPARKPLUG_RAW_ROOT = `${ROOT}/_sparkplug`;
const LEAF = 'metrics';

/** The topic of a node's (device undefined) or a device's raw metrics. */
export function rawMetricsTopic(group: string, edge: string, device?: string): string {
  return device === undefined ? `${SPARKPLUG_RAW_ROOT}/${group}/${edge}/${LEAF}` : `${SPARKPLUG_RAW_ROOT}/${group}/${edge}/${device}/${LEAF}`;
}

/** Every raw metrics topic (the historian's lw/# holds them). */
export const RAW_METRICS_FILTER = `${SPARKPLUG_RAW_ROOT}/#`;

export interface RawMetricsSource {
  group: string;
  edge: string;
  /** Absent for an edge node's own metrics. */
  device?: string;
}

/** The node or device a raw metrics topic names; undefined for any other topic. */
export function parseRawMetricsTopic(topic: string): RawMetricsSource | undefined {
  if (!topic.startsWith(`${SPARKPLUG_RAW_ROOT}/`)) return undefined;
  const levels = topic.slice(SPARKPLUG_RAW_ROOT.length + 1).split('/');
  if (levels.at(-1) !== LEAF || levels.some((level) => level.length === 0 || level.includes('+') || level.includes('#'))) return undefined;
  if (levels.length === 3) return { group: levels[0]!, edge: levels[1]! };
  if (levels.length === 4) return { group: levels[0]!, edge: levels[1]!, device: levels[2]! };
  return undefined;
}

const timestamp = z.number().int().min(0).max(MAX_TIMESTAMP_MS);

export const rawMetricSchema = z.strictObject({
  name: z.string().min(1).max(1024),
  alias: z.number().int().min(0).optional(),
  /** The Sparkplug datatype name (Int32, Float, Boolean, String, DataSet…). */
  type: z.string().min(1).max(64),
  /** null: no value (isNull, a datatype linewatch does not read, or a death: the last value is stale). */
  value: z.union([z.number(), z.boolean(), z.string(), z.null()]),
  /** The metric's own timestamp, else its message's. */
  ts: timestamp,
  /** Since its node or device died (NDEATH, DDEATH). */
  stale: z.boolean(),
});
export type RawMetric = z.infer<typeof rawMetricSchema>;

export const RAW_MESSAGE_TYPES = ['NBIRTH', 'NDATA', 'NDEATH', 'DBIRTH', 'DDATA', 'DDEATH'] as const;

export const rawMetricsSchema = z.strictObject({
  /** The Sparkplug message they came in. */
  message: z.enum(RAW_MESSAGE_TYPES),
  /** Its timestamp (the host's receipt time when it had none). */
  ts: timestamp,
  /** Its Sparkplug seq 0–255 (none on NDEATH). */
  seq: z.number().int().min(0).max(255).optional(),
  /** Whether the node (or device) is online after this message. */
  online: z.boolean(),
  metrics: z.array(rawMetricSchema),
});
export type RawMetrics = z.infer<typeof rawMetricsSchema>;

/** Parses a raw metrics payload; an error naming the field when it is not one. */
export function parseRawMetrics(payload: Buffer | string): { ok: true; value: RawMetrics } | { ok: false; error: string } {
  let json: unknown;
  try {
    json = JSON.parse(payload.toString());
  } catch {
    return { ok: false, error: 'payload is not valid JSON' };
  }
  const result = rawMetricsSchema.safeParse(json);
  if (result.success) return { ok: true, value: result.data };
  const issue = result.error.issues[0];
  return { ok: false, error: `${issue?.path.join('.') || 'payload'}: ${issue?.message ?? 'invalid'}` };
}
