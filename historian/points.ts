// One linewatch message → one InfluxDB point in line protocol (docs/historian.md, "Schema").
//
// A point's identity in InfluxDB is measurement + tag set + time, and writing the same identity
// again overwrites it. So the time is derived only from the event itself: the device's timestamp
// (ms) plus a sub-millisecond disambiguator (the device's `seq`, or a hash of the event's id)
// in the nanosecond digits. Replaying an event writes the same point again (harmless); two
// distinct events of one device in the same millisecond do not overwrite each other.
import { crc32 } from 'node:zlib';
import { decode, DEVICE_STATES, MAX_TIMESTAMP_MS, RESERVED_READING_NAMES, STOP_STATES, unshadowTopic, type Decoded, type Message } from '../contracts/index.js';
import { parseRawMetricsTopic } from '../contracts/sparkplug/raw-metrics.js';
import { QUALITY_FIELDS, type DeviceQuality } from './data-quality.js';
import { escapeKey, escapeMeasurement, quoteString } from './line-protocol.js';
import { sparkplugMetricsPoints } from './sparkplug-points.js';

export const MEASUREMENTS = ['telemetry', 'state', 'status', 'commands', 'alerts', 'alarms', 'line', 'oee', 'downtime', 'data_quality', 'dead_letters', 'shadow_commands', 'shadow_alerts', 'shadow_alarms', 'sparkplug_metrics'] as const;
export type Measurement = (typeof MEASUREMENTS)[number];

/** Where a shadow rule set's output is stored (lw/_shadow/…, docs/rules.md#shadow): the live measurement's fields and tags, its own name. */
const SHADOW_MEASUREMENT = { commands: 'shadow_commands', alerts: 'shadow_alerts', alarms: 'shadow_alarms' } as const;
type ShadowedMeasurement = keyof typeof SHADOW_MEASUREMENT;

export type PointResult =
  /**
   * `line`: one line of line protocol, or several joined by '\n' (a Sparkplug raw metrics message: one per metric), kept as one spool record, stored all or none;
   * `device`: the device the point is about (a command outcome's target, an alert's device); `lineId` and `message`: absent for dead letters.
   */
  | { ok: true; line: string; measurement: Measurement; lineId?: string; device?: string; message?: Message }
  | { ok: false; reason: 'topic' | 'schema'; error: string }
  /** Nothing to store, not an error: an alarm's retained topic emptied (its last transition, to normal, was stored before), an operator's request (the state it leads to is stored). */
  | { ok: false; reason: 'not-stored'; error: string };

/**
 * Converts one message; `decoded` is the bus's (decoded once per message), or it is decoded here.
 * Never throws.
 */
export function toPoint(topic: string, payload: Buffer | string, decoded: () => Decoded = () => decode(topic, payload)): PointResult {
  const result = decoded();
  if (result.ok) return pointOf(topic, result.message);
  if (result.reason === 'removed') return { ok: false, reason: 'not-stored', error: `${topic}: ${result.error}` };
  if (result.reason === 'topic') {
    const dead = /^lw\/_dead\/([^/]+)$/.exec(topic);
    if (dead) return deadLetterPoint(dead[1]!, payload);
    const sparkplug = parseRawMetricsTopic(topic);
    if (sparkplug) return sparkplugMetricsPoints(topic, sparkplug, payload);
    const live = unshadowTopic(topic);
    if (live !== undefined) return shadowPoint(topic, live, payload);
  }
  return { ok: false, reason: result.reason, error: `${topic}: ${result.error}` };
}

/**
 * A shadow rule set's command, outcome, alert or alarm (lw/_shadow/X): the point of X in its
 * shadow measurement. Its dead letters are not stored (the live engine reports the same refusal).
 */
function shadowPoint(topic: string, live: string, payload: Buffer | string): PointResult {
  const result = decode(live, payload);
  if (!result.ok) {
    if (result.reason === 'removed') return { ok: false, reason: 'not-stored', error: `${topic}: ${result.error}` };
    if (/^lw\/_dead\/[^/]+$/.test(live)) return { ok: false, reason: 'not-stored', error: `${topic}: a shadow rule set's dead letter; the live engine reports the same message` };
    return { ok: false, reason: result.reason, error: `${topic}: ${result.error}` };
  }
  const kind = result.message.kind;
  if (kind !== 'cmd' && kind !== 'outcome' && kind !== 'alert' && kind !== 'alarm') return { ok: false, reason: 'topic', error: `${topic}: a shadow rule set publishes commands, outcomes, alerts and alarms only, not ${kind}` };
  return pointOf(topic, result.message, true);
}

/** One decoded message as a point (`shadow`: a shadow rule set's, in the shadow measurement). */
function pointOf(topic: string, message: Message, shadow = false): PointResult {
  const { line, device } = message;
  const base = { ok: true as const, lineId: line, device, message };
  const named = (measurement: ShadowedMeasurement): Measurement => (shadow ? SHADOW_MEASUREMENT[measurement] : measurement);
  switch (message.kind) {
    case 'telemetry': {
      const p = message.payload;
      const b = new PointBuilder('telemetry').tag('device', message.device).tag('line', line).tag('station', p.station).tag('type', p.type);
      for (const key in p.values) b.float(readingField(key), p.values[key]);
      return { ...base, measurement: 'telemetry', line: b.int('seq', p.seq).at(p.ts, p.seq) };
    }
    case 'state': {
      const p = message.payload;
      const b = new PointBuilder('state').tag('device', message.device).tag('line', line).tag('station', p.station).tag('type', p.type);
      b.str('state', p.state).int('code', DEVICE_STATES.indexOf(p.state)).str('reason', p.reason).str('strategy', p.strategy).int('seq', p.seq);
      return { ...base, measurement: 'state', line: b.at(p.ts, p.seq) };
    }
    case 'status': {
      const p = message.payload;
      const b = new PointBuilder('status').tag('device', message.device).tag('line', line).tag('type', p.type);
      b.str('status', p.status).int('online', p.status === 'online' ? 1 : 0).int('seq', p.seq);
      return { ...base, measurement: 'status', line: b.at(p.ts, p.seq ?? hash(p.status)) };
    }
    case 'cmd': {
      const p = message.payload;
      const b = new PointBuilder(named('commands')).tag('action', p.action).tag('device', message.device).tag('event', 'issued').tag('line', line);
      b.str('id', p.id).str('params', JSON.stringify(p.params)).str('origin', p.origin).int('expiresAt', p.expiresAt);
      return { ...base, measurement: named('commands'), line: b.at(p.ts, hash(p.id)) };
    }
    case 'ack': {
      const p = message.payload;
      const b = new PointBuilder(named('commands')).tag('device', message.device).tag('event', 'ack').tag('line', line).tag('result', p.result);
      b.str('id', p.id).str('reason', p.reason).int('seq', p.seq);
      return { ...base, measurement: named('commands'), line: b.at(p.ts, hash(`${p.id}/${p.result}`)) };
    }
    case 'outcome': {
      const p = message.payload;
      const b = new PointBuilder(named('commands')).tag('action', p.action).tag('device', p.target).tag('event', 'outcome').tag('line', line).tag('outcome', p.outcome);
      b.str('id', p.id).str('params', JSON.stringify(p.params)).str('origin', p.origin).int('attempts', p.attempts).str('reason', p.reason);
      b.int('issuedAt', p.issuedAt).int('latencyMs', Math.max(0, p.ts - p.issuedAt));
      return { ...base, device: p.target, measurement: named('commands'), line: b.at(p.ts, hash(`${p.id}/${p.outcome}`)) };
    }
    case 'alert': {
      const p = message.payload;
      const b = new PointBuilder(named('alerts')).tag('device', p.device).tag('line', line).tag('rule', p.rule).tag('severity', p.severity);
      b.str('id', p.id).str('state', p.state).str('message', p.message).str('origin', p.origin).int('raised', p.state === 'raised' ? 1 : 0);
      return { ...base, device: p.device, measurement: named('alerts'), line: b.at(p.ts, hash(`${p.id}/${p.state}`)) };
    }
    case 'alarm': {
      // One point per transition: rev makes each its own point, a republished state (restart) the same one again.
      const p = message.payload;
      const b = new PointBuilder(named('alarms')).tag('alarm', p.id).tag('device', p.device).tag('line', line).tag('rule', p.rule).tag('severity', p.severity).tag('state', p.state);
      b.str('transition', p.transition).str('operator', p.operator).str('comment', p.comment).str('message', p.message);
      b.int('active', p.state === 'active-unacked' || p.state === 'active-acked' ? 1 : 0).int('shelvedUntil', p.shelvedUntil).int('raisedAt', p.raisedAt).int('rev', p.rev);
      return { ...base, device: p.device, measurement: named('alarms'), line: b.at(p.ts, hash(`${p.id}/${p.rev}`)) };
    }
    case 'alarmSet':
      // The request is not stored: the engine's resulting state (with operator and comment) is.
      return { ok: false, reason: 'not-stored', error: `${topic}: an operator's request; the alarm state it leads to is stored` };
    case 'summary': {
      const p = message.payload;
      const b = new PointBuilder('line').tag('line', line);
      b.float('speed', p.speed).str('strategy', p.strategy).float('availability', p.availability).float('performance', p.performance);
      b.float('quality', p.quality).float('oee', p.oee).int('goodCount', p.goodCount).int('scrapCount', p.scrapCount);
      if (b.empty()) return { ok: false, reason: 'schema', error: `${topic}: summary has no figures to store` };
      return { ...base, measurement: 'line', line: b.at(p.ts, 0) };
    }
    case 'oeePeriod': {
      // Timed at the period's start: each publish of the same period (it is republished while it can change) overwrites the last.
      const p = message.payload;
      const b = new PointBuilder('oee').tag('device', p.device).tag('line', line).tag('period', p.period).tag('scope', p.scope).tag('shift', p.shift);
      b.float('availability', p.availability).float('performance', p.performance).float('quality', p.quality).float('oee', p.oee);
      b.int('plannedMs', p.plannedMs).int('runMs', p.runMs).int('microStops', p.microStops).int('microStopMs', p.microStopMs).int('plannedStopMs', p.plannedStopMs).int('unknownMs', p.unknownMs);
      b.int('downMs', Object.values(p.downMs).reduce((sum, ms) => sum + ms, 0));
      for (const state of STOP_STATES) b.int(`down_${state}`, p.downMs[state] ?? 0);
      b.int('goodCount', p.goodCount).int('scrapCount', p.scrapCount).int('end', p.end).int('complete', p.complete ? 1 : 0);
      return { ...base, measurement: 'oee', line: b.at(p.start, 0) };
    }
    case 'downtime': {
      // Timed at the stop's start with its identity in the tags: the open publishes and the final one are one point.
      const p = message.payload;
      const b = new PointBuilder('downtime').tag('device', p.device).tag('line', line).tag('scope', p.scope).tag('state', p.state);
      b.str('reason', p.reason).str('station', p.station).int('start', p.start).int('end', p.end).int('durationMs', p.durationMs);
      b.int('plannedMs', p.plannedMs).int('unplannedMs', p.durationMs - p.plannedMs).int('planned', p.plannedMs === p.durationMs ? 1 : 0).int('micro', p.micro ? 1 : 0).int('open', p.open ? 1 : 0);
      return { ...base, device: p.device, measurement: 'downtime', line: b.at(p.start, 0) };
    }
  }
}

/**
 * One device's data quality over one interval (historian/data-quality.ts): the interval's counts
 * (deltas, not totals), timed at the interval's start with `run` (this historian run's number) in
 * the nanosecond digits, so a replay of the spool writes the same point again and a restarted
 * historian's first interval is a point of its own, never overwriting the last one's.
 */
export function qualityLine(quality: DeviceQuality, intervalStartMs: number, intervalMs: number, run: number): string {
  const b = new PointBuilder('data_quality').tag('device', quality.device).tag('line', quality.line);
  for (const field of QUALITY_FIELDS) b.int(field, quality.delta[field]);
  return b.int('intervalMs', intervalMs).at(intervalStartMs, run);
}

function deadLetterPoint(client: string, payload: Buffer | string): PointResult {
  let value: { ts?: unknown; topic?: unknown; reason?: unknown; payload?: unknown };
  try {
    value = JSON.parse(payload.toString()) as typeof value;
  } catch {
    return { ok: false, reason: 'schema', error: `lw/_dead/${client}: payload is not valid JSON` };
  }
  if (typeof value?.ts !== 'number' || !Number.isInteger(value.ts) || value.ts < 0 || value.ts > MAX_TIMESTAMP_MS) {
    return { ok: false, reason: 'schema', error: `lw/_dead/${JSON.stringify(client)}.ts: expected an integer timestamp in ms, 0 to ${MAX_TIMESTAMP_MS}` };
  }
  const b = new PointBuilder('dead_letters').tag('client', client);
  b.str('topic', String(value.topic ?? '')).str('reason', String(value.reason ?? '')).str('payload', String(value.payload ?? ''));
  const point = b.at(value.ts, hash(`${String(value.topic)}/${String(value.reason)}/${String(value.payload)}`));
  return { ok: true, line: point, measurement: 'dead_letters' };
}

/**
 * The field a reading is stored in: its own name, or `<name>_value` for a name the telemetry
 * measurement already uses as a tag or field, or that InfluxDB reserves (RESERVED_READING_NAMES).
 */
export function readingField(name: string): string {
  return RESERVED.has(name) ? `${name}_value` : name;
}
const RESERVED: ReadonlySet<string> = new Set(RESERVED_READING_NAMES);

/** Sub-millisecond disambiguator for events without a sequence number. */
function hash(s: string): number {
  return crc32(s);
}

/**
 * Builds one line of line protocol: `measurement,tag=v,… field=1,s="x",n=2i <ns>`. Tags are added
 * in key order (InfluxDB's own series-key order); absent tags and fields are left out. Every
 * name and string goes through historian/line-protocol.ts, so no input can end the line or
 * escape a separator (the contract keeps tags to safe ids as well; this holds without it).
 */
export class PointBuilder {
  private out: string;
  private sep = ' ';

  constructor(measurement: Measurement) {
    this.out = escapeMeasurement(measurement);
  }

  tag(key: string, value: string | undefined): this {
    if (value !== undefined && value !== '') this.out += `,${escapeKey(key)}=${escapeKey(value)}`;
    return this;
  }

  /** A float field (a number without `i` is a float in line protocol, also when whole). */
  float(key: string, value: number | undefined): this {
    if (value !== undefined) this.field(key, String(value));
    return this;
  }

  int(key: string, value: number | undefined): this {
    if (value !== undefined) this.field(key, `${Math.trunc(value)}i`);
    return this;
  }

  bool(key: string, value: boolean | undefined): this {
    if (value !== undefined) this.field(key, value ? 'true' : 'false');
    return this;
  }

  /** A string field: `\` and `"` are escaped; a newline inside the quotes is kept as is. */
  str(key: string, value: string | undefined): this {
    if (value !== undefined) this.field(key, quoteString(value));
    return this;
  }

  empty(): boolean {
    return this.sep === ' ';
  }

  /** The finished line, timed at `tsMs` with `disambiguator` (mod 10^6) in the nanosecond digits. */
  at(tsMs: number, disambiguator: number): string {
    // Six more digits after the ms: exact as a string, where a Number would lose them beyond 2^53.
    return `${this.out} ${tsMs}${String(disambiguator % 1_000_000).padStart(6, '0')}`;
  }

  private field(key: string, value: string): void {
    this.out += this.sep + escapeKey(key) + '=' + value;
    this.sep = ',';
  }
}
