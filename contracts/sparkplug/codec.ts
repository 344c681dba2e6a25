// The Sparkplug B payload codec, a contract the Sparkplug host (sparkplug/) and the simulated
// edge nodes (simulators/) both speak: Eclipse Tahu's `sparkplug-payload` (the protobuf schema of the
// spec, kept by the Tahu project; docs/sparkplug.md#codec) behind one small layer that turns its
// decoded objects into plain values: `Long` (uint64 timestamps, seq, bdSeq, Int64/UInt64
// metrics) becomes a number, or the payload is refused when it does not fit one exactly; each
// metric keeps its datatype name. Nothing else in linewatch touches the codec.
import sparkplugPayload from 'sparkplug-payload';

import { NUMBER_TYPES } from './datatypes.js';

export { SCALAR_TYPES, isIntegerType, isNumberType, isStringType, type ScalarType } from './datatypes.js';

export type MetricValue = number | boolean | string | null;

/** One metric as linewatch reads it. */
export interface Metric {
  name?: string;
  alias?: number;
  /** The datatype name (`Float`, `Boolean`…); undefined in NDATA/DDATA, where the birth gave it. */
  type?: string;
  /** null when the metric says isNull, or for a datatype linewatch does not read (DataSet, Template, Bytes…). */
  value: MetricValue;
  timestamp?: number;
}

export interface Payload {
  timestamp?: number;
  seq?: number;
  metrics: Metric[];
}

// The package is CommonJS: its default export is `{ get }`; `get('spBv1.0')` is the codec.
// Guarded so an upgrade that renames it fails here, at load, with a clear message.
const codec = sparkplugPayload.get('spBv1.0');
if (!codec || typeof codec.encodePayload !== 'function' || typeof codec.decodePayload !== 'function') {
  throw new Error("sparkplug-payload: get('spBv1.0') no longer returns { encodePayload, decodePayload }; sparkplug/codec.ts needs updating for this version");
}

interface LongLike {
  toNumber(): number;
  toString(): string;
}

function isLong(value: unknown): value is LongLike {
  return typeof value === 'object' && value !== null && typeof (value as LongLike).toNumber === 'function' && 'low' in value && 'high' in value;
}

/** A protobuf integer (number or Long) as a number; throws when it is beyond 2^53. */
export function toSafeNumber(value: unknown, what: string): number {
  if (typeof value === 'number') return value;
  if (isLong(value)) {
    const number = value.toNumber();
    if (!Number.isSafeInteger(number)) throw new Error(`${what} ${value.toString()} is beyond 2^53 and cannot be read exactly`);
    return number;
  }
  throw new Error(`${what} is not an integer (got ${typeof value})`);
}

function valueOf(type: string | undefined, raw: unknown, name: string): MetricValue {
  if (raw === null || raw === undefined) return null;
  if (type !== undefined && NUMBER_TYPES.has(type)) return toSafeNumber(raw, `metric ${name}`);
  if (typeof raw === 'number' || typeof raw === 'boolean' || typeof raw === 'string') return raw;
  if (isLong(raw)) return toSafeNumber(raw, `metric ${name}`);
  return null; // DataSet, Template, Bytes, PropertySet…: kept by name and type, not read
}

/** Decodes a Sparkplug B payload; throws an Error naming what is wrong (not protobuf, a number beyond 2^53). */
export function decodeSparkplug(bytes: Uint8Array): Payload {
  let raw: ReturnType<NonNullable<typeof codec>['decodePayload']>;
  try {
    raw = codec!.decodePayload(bytes);
  } catch (err) {
    throw new Error(`not a Sparkplug B payload: ${(err as Error).message}`, { cause: err });
  }
  const metrics: Metric[] = (raw.metrics ?? []).map((metric, index) => {
    const name = typeof metric.name === 'string' ? metric.name : undefined;
    const label = name ?? `#${index}`;
    const alias = metric.alias === null || metric.alias === undefined ? undefined : toSafeNumber(metric.alias, `alias of metric ${label}`);
    const type = typeof metric.type === 'string' ? metric.type : undefined;
    const timestamp = metric.timestamp === null || metric.timestamp === undefined ? undefined : toSafeNumber(metric.timestamp, `timestamp of metric ${label}`);
    const value = metric.isNull ? null : valueOf(type, metric.value, label);
    return { ...(name !== undefined ? { name } : {}), ...(alias !== undefined ? { alias } : {}), ...(type !== undefined ? { type } : {}), value, ...(timestamp !== undefined ? { timestamp } : {}) };
  });
  const timestamp = raw.timestamp === null || raw.timestamp === undefined ? undefined : toSafeNumber(raw.timestamp, 'payload timestamp');
  const seq = raw.seq === null || raw.seq === undefined ? undefined : toSafeNumber(raw.seq, 'payload seq');
  return { ...(timestamp !== undefined ? { timestamp } : {}), ...(seq !== undefined ? { seq } : {}), metrics };
}

/** A metric to write or publish: its name and/or alias, datatype and value. */
export interface OutgoingMetric {
  name?: string;
  alias?: number;
  type: string;
  value: number | boolean | string;
  timestamp?: number;
}

export function encodeSparkplug(payload: { timestamp: number; seq?: number; metrics: OutgoingMetric[] }): Buffer {
  return Buffer.from(codec!.encodePayload(payload as Parameters<NonNullable<typeof codec>['encodePayload']>[0]));
}
