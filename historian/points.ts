// One linewatch message → one InfluxDB point in line protocol (docs/historian.md, "Schema").
//
// A point's identity in InfluxDB is measurement + tag set + time, and writing the same identity
// again overwrites it. So the time is derived only from the event itself: the device's timestamp
// (ms) plus a sub-millisecond disambiguator (the device's `seq`, or a hash of the event's id)
// in the nanosecond digits. Replaying an event writes the same point again (harmless); two
// distinct events of one device in the same millisecond do not overwrite each other.
import { crc32 } from 'node:zlib';
import { escape } from 'influx';
import { DEVICE_STATES, parseTopic, validatePayload, type MessageKind, type PayloadOf } from '../contracts/index.js';

export const MEASUREMENTS = ['telemetry', 'state', 'status', 'commands', 'alerts', 'line', 'dead_letters'] as const;
export type Measurement = (typeof MEASUREMENTS)[number];

export type PointResult =
  | { ok: true; line: string; measurement: Measurement; kind: MessageKind | 'dead_letter'; lineId?: string; device?: string; value: unknown }
  | { ok: false; reason: 'topic' | 'schema'; error: string };

type Fields = Record<string, number | string | boolean | bigint | undefined>;
type Tags = Record<string, string | undefined>;

/** Parses, validates and converts one message. Never throws. */
export function toPoint(topic: string, payload: Buffer | string): PointResult {
  const parsed = parseTopic(topic);
  if (!parsed) {
    const dead = /^lw\/_dead\/([^/]+)$/.exec(topic);
    if (dead) return deadLetterPoint(dead[1]!, payload);
    return { ok: false, reason: 'topic', error: `${topic}: not a linewatch topic (expected lw/{line}/{device}/{kind} or lw/{line}/alerts|summary)` };
  }
  const v = validatePayload(parsed.kind, payload);
  if (!v.ok) return { ok: false, reason: 'schema', error: `${topic}: ${v.error}` };
  const line = parsed.line;
  const device = parsed.device;
  const base = { ok: true as const, kind: parsed.kind, lineId: line, device, value: v.value };
  switch (parsed.kind) {
    case 'telemetry': {
      const p = v.value as PayloadOf['telemetry'];
      const fields: Fields = {};
      for (const [k, n] of Object.entries(p.values)) fields[k === 'seq' ? 'seq_value' : k] = n;
      fields.seq = BigInt(p.seq);
      return { ...base, measurement: 'telemetry', line: serialize('telemetry', { line, device, station: p.station, type: p.type }, fields, p.ts, p.seq) };
    }
    case 'state': {
      const p = v.value as PayloadOf['state'];
      const fields: Fields = { state: p.state, code: BigInt(DEVICE_STATES.indexOf(p.state)), reason: p.reason, seq: BigInt(p.seq) };
      return { ...base, measurement: 'state', line: serialize('state', { line, device, station: p.station, type: p.type }, fields, p.ts, p.seq) };
    }
    case 'status': {
      const p = v.value as PayloadOf['status'];
      const fields: Fields = { status: p.status, online: BigInt(p.status === 'online' ? 1 : 0), seq: p.seq === undefined ? undefined : BigInt(p.seq) };
      return { ...base, measurement: 'status', line: serialize('status', { line, device, type: p.type }, fields, p.ts, p.seq ?? hash(p.status)) };
    }
    case 'cmd': {
      const p = v.value as PayloadOf['cmd'];
      const fields: Fields = { id: p.id, params: JSON.stringify(p.params), origin: p.origin, expiresAt: BigInt(p.expiresAt) };
      return { ...base, measurement: 'commands', line: serialize('commands', { line, device, event: 'issued', action: p.action }, fields, p.ts, hash(p.id)) };
    }
    case 'ack': {
      const p = v.value as PayloadOf['ack'];
      const fields: Fields = { id: p.id, reason: p.reason, seq: p.seq === undefined ? undefined : BigInt(p.seq) };
      return { ...base, measurement: 'commands', line: serialize('commands', { line, device, event: 'ack', result: p.result }, fields, p.ts, hash(`${p.id}/${p.result}`)) };
    }
    case 'outcome': {
      const p = v.value as PayloadOf['outcome'];
      const fields: Fields = {
        id: p.id,
        params: JSON.stringify(p.params),
        origin: p.origin,
        attempts: BigInt(p.attempts),
        reason: p.reason,
        issuedAt: BigInt(p.issuedAt),
        latencyMs: BigInt(Math.max(0, p.ts - p.issuedAt)),
      };
      const tags = { line, device: p.target, event: 'outcome', action: p.action, outcome: p.outcome };
      return { ...base, device: p.target, measurement: 'commands', line: serialize('commands', tags, fields, p.ts, hash(`${p.id}/${p.outcome}`)) };
    }
    case 'alert': {
      const p = v.value as PayloadOf['alert'];
      const fields: Fields = { id: p.id, state: p.state, message: p.message, origin: p.origin, raised: BigInt(p.state === 'raised' ? 1 : 0) };
      const tags = { line, device: p.device, rule: p.rule, severity: p.severity };
      return { ...base, device: p.device, measurement: 'alerts', line: serialize('alerts', tags, fields, p.ts, hash(`${p.id}/${p.state}`)) };
    }
    case 'summary': {
      const p = v.value as PayloadOf['summary'];
      const fields: Fields = {
        speed: p.speed,
        strategy: p.strategy,
        availability: p.availability,
        performance: p.performance,
        quality: p.quality,
        oee: p.oee,
        goodCount: p.goodCount === undefined ? undefined : BigInt(p.goodCount),
        scrapCount: p.scrapCount === undefined ? undefined : BigInt(p.scrapCount),
      };
      if (Object.values(fields).every((f) => f === undefined)) return { ok: false, reason: 'schema', error: `${topic}: summary has no figures to store` };
      return { ...base, measurement: 'line', line: serialize('line', { line }, fields, p.ts, 0) };
    }
  }
}

function deadLetterPoint(client: string, payload: Buffer | string): PointResult {
  let value: { ts?: unknown; topic?: unknown; reason?: unknown; payload?: unknown };
  try {
    value = JSON.parse(payload.toString()) as typeof value;
  } catch {
    return { ok: false, reason: 'schema', error: `lw/_dead/${client}: payload is not valid JSON` };
  }
  if (typeof value?.ts !== 'number' || !Number.isInteger(value.ts) || value.ts < 0) {
    return { ok: false, reason: 'schema', error: `lw/_dead/${client}.ts: expected an integer timestamp in ms` };
  }
  const fields: Fields = { topic: String(value.topic ?? ''), reason: String(value.reason ?? ''), payload: String(value.payload ?? '') };
  const point = serialize('dead_letters', { client }, fields, value.ts, hash(`${String(value.topic)}/${String(value.reason)}/${String(value.payload)}`));
  return { ok: true, line: point, measurement: 'dead_letters', kind: 'dead_letter', value };
}

/** Sub-millisecond disambiguator for events without a sequence number. */
function hash(s: string): number {
  return crc32(s);
}

/** `measurement,tag=v field=1,s="x" <ns>` with tags sorted (InfluxDB's own series key order). */
export function serialize(measurement: Measurement, tags: Tags, fields: Fields, tsMs: number, disambiguator: number): string {
  let out = escape.measurement(measurement);
  for (const key of Object.keys(tags).sort()) {
    const value = tags[key];
    if (value === undefined || value === '') continue;
    out += `,${escape.tag(key)}=${escape.tag(value)}`;
  }
  let sep = ' ';
  for (const [key, value] of Object.entries(fields)) {
    if (value === undefined) continue;
    out += sep + escape.tag(key) + '=' + fieldValue(value);
    sep = ',';
  }
  // ms timestamp followed by six nanosecond digits: exact in a string, beyond Number's 2^53.
  const ns = String(disambiguator % 1_000_000).padStart(6, '0');
  return `${out} ${tsMs}${ns}`;
}

function fieldValue(value: number | string | boolean | bigint): string {
  switch (typeof value) {
    case 'bigint':
      return `${value}i`;
    case 'number':
      // Without an `i` suffix a number is a float, also when it happens to be whole.
      return String(value);
    case 'boolean':
      return value ? 'true' : 'false';
    default:
      // Only `\` and `"` are escaped in a string field; a newline inside the quotes is kept as is.
      return `"${value.replace(/\\/g, '\\\\').replace(/"/g, '\\"')}"`;
  }
}
