// The `sparkplug:` section of linewatch.yaml (docs/configuration.md#sparkplug, docs/sparkplug.md):
// the Sparkplug B primary host, how Sparkplug edge nodes and devices become linewatch devices,
// and how linewatch commands become metric writes.
import { z } from 'zod';
import { COMMAND_ACTIONS, DEVICE_TYPES } from '../contracts/schemas.js';
import { ID_PATTERN } from '../contracts/topics.js';

const id = z.string().regex(ID_PATTERN, "must be 1–64 of A–Z a–z 0–9 _ - (a linewatch line or device id)");

/** How one Sparkplug device (GROUP/EDGE/DEVICE) or edge node (GROUP/EDGE) becomes a linewatch device. */
export const sparkplugDeviceMappingSchema = z.strictObject({
  line: id.optional().describe('the linewatch line (default: the group id)'),
  device: id.optional().describe('the linewatch device (default: the Sparkplug device id, or the edge node id for node metrics)'),
  type: z.enum(DEVICE_TYPES).optional().describe("the device type (default: the device's `type` metric, else none)"),
  /** Metric name → reading name (renames); a metric mapped to null is stored raw only, never a reading. */
  readings: z.record(z.string(), z.string().regex(/^[A-Za-z_][A-Za-z0-9_]{0,63}$/, 'must be a reading name: 1–64 of A–Z a–z 0–9 _, not starting with a digit').nullable()).default({}),
});
export type SparkplugDeviceMapping = z.infer<typeof sparkplugDeviceMappingSchema>;

/** A linewatch command action as a metric write: the first of `metrics` the device's birth defines gets `params[param]` or `value`. */
export const sparkplugCommandSchema = z
  .strictObject({
    metrics: z.array(z.string().min(1)).min(1).describe('the metric names to write, first defined one wins'),
    param: z.string().optional().describe("the command parameter written (e.g. speed); else `value`"),
    value: z.union([z.number(), z.boolean(), z.string()]).optional().describe('a fixed value written'),
  })
  .refine((command) => (command.param === undefined) !== (command.value === undefined), { message: 'give either param (the command parameter to write) or value (a fixed value), not both or neither' });
export type SparkplugCommand = z.infer<typeof sparkplugCommandSchema>;

const DEFAULT_COMMANDS = {
  set_speed: { metrics: ['speedSetpoint', 'setpoint'], param: 'speed' },
  set_strategy: { metrics: ['strategy'], param: 'strategy' },
  stop: { metrics: ['running'], value: false },
  start: { metrics: ['running'], value: true },
  reset_fault: { metrics: ['resetFault'], value: true },
};

export const sparkplugConfigSchema = z.strictObject({
  enabled: z.boolean().default(false).describe('run the Sparkplug B primary host (linewatch up, or `linewatch up --sparkplug`)'),
  hostId: z.string().regex(/^[A-Za-z0-9_.-]{1,64}$/, "must be 1–64 of A–Z a–z 0–9 _ . - (it is the host's STATE topic level and, on the embedded broker, its account name)").default('linewatch'),
  brokerUrl: z.string().nullable().default(null).describe('the MQTT broker the edge nodes speak to; null: the embedded broker'),
  username: z.string().nullable().default(null).describe('account on brokerUrl (null: none; on the embedded broker `up` makes one named hostId)'),
  password: z.string().nullable().default(null),
  reorderTimeoutMs: z.number().int().min(0).max(60_000).default(2000).describe('how long a message out of seq order waits for the missing ones before a rebirth is requested'),
  rebirthThrottleMs: z.number().int().min(0).default(5000).describe('at most one rebirth request per edge node per this many ms'),
  /** Keys GROUP/EDGE/DEVICE (a device) or GROUP/EDGE (the edge node's own metrics). */
  devices: z.record(z.string().regex(/^[^/+#]+\/[^/+#]+(\/[^/+#]+)?$/, 'must be GROUP/EDGE or GROUP/EDGE/DEVICE'), sparkplugDeviceMappingSchema).default({}),
  /** The String metric whose value is the device state (RUNNING, FAULT…); `reason` and `strategy` metrics go with it. */
  stateMetric: z.string().min(1).default('state'),
  rawMetrics: z.boolean().default(true).describe('publish every birth, data and death with its metrics and datatypes on lw/_sparkplug/… for the historian (measurement sparkplug_metrics)'),
  rawMetricsMaxSeries: z.number().int().min(0).default(10_000).describe('at most this many distinct raw metric series (group, edge, device, metric, datatype); metrics of new series beyond it are not published, counted raw_metrics_dropped'),
  commands: z.partialRecord(z.enum(COMMAND_ACTIONS), sparkplugCommandSchema).default(DEFAULT_COMMANDS),
});
export type SparkplugConfig = z.infer<typeof sparkplugConfigSchema>;
