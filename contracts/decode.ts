// A topic and its raw payload → one typed message: the kind, line and device from the topic and
// the payload validated against the kind's schema. The broker decodes what devices publish and
// the bus hands that result on, so a message is JSON-parsed and schema-checked once per process
// (docs/architecture.md, "Decoded once"); services switch on `kind` instead of casting.
import type { PayloadOf } from './schemas.js';
import { parseTopic, type LineMessageKind, type MessageKind, type ParsedTopic } from './topics.js';
import { validatePayload } from './validate.js';

/** One decoded message; `device` is absent for the line-level kinds (alert, summary). */
export type Message = {
  [K in MessageKind]: { kind: K; line: string; device: K extends LineMessageKind ? undefined : string; payload: PayloadOf[K] };
}[MessageKind];

/** The message of one kind, e.g. `MessageOf<'telemetry'>`. */
export type MessageOf<K extends MessageKind> = Extract<Message, { kind: K }>;

export type Decoded =
  | { ok: true; message: Message }
  /** Outside the namespace (lw/_dead/…, $SYS/…, anything else): nothing was parsed. */
  | { ok: false; reason: 'topic'; error: string }
  /** A linewatch topic whose payload fails its kind's schema; `error` names the field. */
  | { ok: false; reason: 'schema'; topic: ParsedTopic; error: string };

const NOT_A_LINEWATCH_TOPIC = 'not a linewatch topic (expected lw/{line}/{device}/{kind} or lw/{line}/alerts|summary)';

/** Decodes one message. Never throws; bad input is an error that names the field (contracts/validate.ts). */
export function decode(topic: string, payload: Buffer | string): Decoded {
  const parsed = parseTopic(topic);
  if (!parsed) return { ok: false, reason: 'topic', error: NOT_A_LINEWATCH_TOPIC };
  const result = validatePayload(parsed.kind, payload);
  if (!result.ok) return { ok: false, reason: 'schema', topic: parsed, error: result.error };
  // parseTopic gives a device exactly for the device-level kinds, and the payload was validated for `kind`.
  return { ok: true, message: { kind: parsed.kind, line: parsed.line, device: parsed.device, payload: result.value } as Message };
}
