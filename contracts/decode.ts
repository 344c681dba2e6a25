// A topic and its raw payload → one typed message: the kind, line and device from the topic and
// the payload validated against the kind's schema. The broker decodes what devices publish and
// the bus hands that result on, so a message is JSON-parsed and schema-checked once per process
// (docs/architecture.md, "Decoded once"); services switch on `kind` instead of casting.
import type { PayloadOf } from './schemas.js';
import { alarmTopicId, parseTopic, type AlarmMessageKind, type DeviceTopicKind, type MessageKind, type ParsedTopic } from './topics.js';
import { validatePayload } from './validate.js';

/** One decoded message; `device` is absent for the line-level kinds (alert, summary, alarms), `alarm` (the topic level) present for the alarm kinds. */
export type Message = {
  [K in MessageKind]: { kind: K; line: string; device: K extends DeviceTopicKind ? string : undefined; payload: PayloadOf[K] } & (K extends AlarmMessageKind ? { alarm: string } : unknown);
}[MessageKind];

/** The message of one kind, e.g. `MessageOf<'telemetry'>`. */
export type MessageOf<K extends MessageKind> = Extract<Message, { kind: K }>;

export type Decoded =
  | { ok: true; message: Message }
  /** Outside the namespace (lw/_dead/…, $SYS/…, anything else): nothing was parsed. */
  | { ok: false; reason: 'topic'; error: string }
  /** A linewatch topic whose payload fails its kind's schema; `error` names the field. */
  | { ok: false; reason: 'schema'; topic: ParsedTopic; error: string }
  /** An empty retained payload on lw/{line}/alarms/{alarmId}: the alarm is normal and gone (not an error). */
  | { ok: false; reason: 'removed'; topic: ParsedTopic & { kind: 'alarm'; alarm: string }; error: string };

const NOT_A_LINEWATCH_TOPIC = 'not a linewatch topic (expected lw/{line}/{device}/{kind}, lw/{line}/alerts|summary|oee|downtime or lw/{line}/alarms/{alarmId}[/set])';

/** Decodes one message. Never throws; bad input is an error that names the field (contracts/validate.ts). */
export function decode(topic: string, payload: Buffer | string): Decoded {
  const parsed = parseTopic(topic);
  if (!parsed) return { ok: false, reason: 'topic', error: NOT_A_LINEWATCH_TOPIC };
  if (parsed.kind === 'alarm' && payload.length === 0) return { ok: false, reason: 'removed', topic: { ...parsed, kind: 'alarm', alarm: parsed.alarm! }, error: 'alarm: removed (empty retained payload: the alarm is normal)' };
  const result = validatePayload(parsed.kind, payload);
  if (!result.ok) return { ok: false, reason: 'schema', topic: parsed, error: result.error };
  if (parsed.kind === 'alarm' && alarmTopicId((result.value as PayloadOf['alarm']).id) !== parsed.alarm) {
    return { ok: false, reason: 'schema', topic: parsed, error: `alarm.id: "${(result.value as PayloadOf['alarm']).id}" is not the alarm of this topic (${parsed.alarm}); publish each alarm on lw/{line}/alarms/{its id with / as .}` };
  }
  // parseTopic gives a device exactly for the device-level kinds (an alarm id for the alarm kinds), and the payload was validated for `kind`.
  const message = { kind: parsed.kind, line: parsed.line, device: parsed.device, payload: result.value, ...(parsed.alarm !== undefined ? { alarm: parsed.alarm } : {}) };
  return { ok: true, message: message as Message };
}
