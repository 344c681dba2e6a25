// A Sparkplug raw metrics message (lw/_sparkplug/…, contracts/sparkplug/raw-metrics.ts) → one
// point per metric in the measurement sparkplug_metrics (docs/historian.md, "Schema").
//
// Tags: group, edge, device (absent for an edge node's own metrics), metric, datatype. The value
// goes in the field of its datatype — value_int (Int8…UInt64, DateTime), value_float (Float,
// Double), value_bool (Boolean), value_str (String, Text, UUID) — so each field keeps one type
// whatever the edge nodes send and InfluxDB never refuses a point for a field type conflict; a
// value whose JSON type does not fit its datatype, or of a datatype without a field (DataSet,
// Bytes, Template…), is left out and the point keeps the rest. Beside it: stale and online
// (0/1), alias, seq and the Sparkplug message type.
//
// Identity: the metric's timestamp with, in the nanosecond digits, the message's seq (0–255; 256
// for an NDEATH, which has none) × 1000 + the metric's occurrence in its message (0 for the first
// value of that name; a DATA message may carry several buffered values of one metric, and without
// their own timestamps they share the message's). So a replayed message writes the same points
// again (stored once), and neither two messages of one metric in the same millisecond nor two
// values of it in one message overwrite each other (up to 1000 values of one name per message).
import { isIntegerType, isNumberType, isStringType } from '../contracts/sparkplug/datatypes.js';
import { parseRawMetrics, type RawMetric, type RawMetricsSource } from '../contracts/sparkplug/raw-metrics.js';
import { PointBuilder, type PointResult } from './points.js';

/** The nanosecond digits of a message without a seq (NDEATH): one past seq's 0–255. */
const NO_SEQ = 256;

export function sparkplugMetricsPoints(topic: string, source: RawMetricsSource, payload: Buffer | string): PointResult {
  const parsed = parseRawMetrics(payload);
  if (!parsed.ok) return { ok: false, reason: 'schema', error: `${topic}: ${parsed.error}` };
  const { message, seq, online, metrics } = parsed.value;
  if (metrics.length === 0) return { ok: false, reason: 'not-stored', error: `${topic}: no metrics` };
  const occurrences = new Map<string, number>();
  const lines = metrics.map((metric) => {
    const occurrence = occurrences.get(metric.name) ?? 0;
    occurrences.set(metric.name, occurrence + 1);
    const b = new PointBuilder('sparkplug_metrics').tag('datatype', metric.type).tag('device', source.device).tag('edge', source.edge).tag('group', source.group).tag('metric', metric.name);
    valueField(b, metric);
    b.int('stale', metric.stale ? 1 : 0).int('online', online ? 1 : 0).int('alias', metric.alias).int('seq', seq).str('message', message);
    return b.at(metric.ts, (seq ?? NO_SEQ) * 1000 + (occurrence % 1000));
  });
  // One spool record for the message: its points reach InfluxDB in one write, or come again together.
  return { ok: true, line: lines.join('\n'), measurement: 'sparkplug_metrics', ...(source.device !== undefined ? { device: source.device } : {}) };
}

/** The value in the field of its datatype, when its JSON type fits that datatype. */
function valueField(b: PointBuilder, metric: RawMetric): void {
  const { type, value } = metric;
  if (isIntegerType(type)) {
    if (typeof value === 'number' && Number.isSafeInteger(value)) b.int('value_int', value);
  } else if (isNumberType(type)) {
    if (typeof value === 'number' && Number.isFinite(value)) b.float('value_float', value);
  } else if (type === 'Boolean') {
    if (typeof value === 'boolean') b.bool('value_bool', value);
  } else if (isStringType(type)) {
    if (typeof value === 'string') b.str('value_str', value);
  }
}
