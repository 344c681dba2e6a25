// Turns a raw MQTT payload into a typed message, or an error that names the field and says
// what was wrong — the one validator the broker, gateway, rules and historian all use.
import type { z } from 'zod';
import { fastValidated } from './fast-validate.js';
import { schemas, type PayloadOf } from './schemas.js';
import type { MessageKind } from './topics.js';

export type ValidationResult<T> = { ok: true; value: T } | { ok: false; error: string };

/** Largest payload any linewatch topic accepts; bigger ones are refused before JSON.parse. */
export const MAX_PAYLOAD_BYTES = 16 * 1024;

export function validatePayload<K extends MessageKind>(kind: K, payload: Buffer | string): ValidationResult<PayloadOf[K]> {
  const size = typeof payload === 'string' ? Buffer.byteLength(payload) : payload.length;
  if (size > MAX_PAYLOAD_BYTES) {
    return { ok: false, error: `${kind}: payload is ${size} bytes, more than the ${MAX_PAYLOAD_BYTES} allowed; send smaller messages` };
  }
  let json: unknown;
  try {
    json = JSON.parse(typeof payload === 'string' ? payload : payload.toString('utf8'));
  } catch (err) {
    return { ok: false, error: `${kind}: payload is not valid JSON (${(err as Error).message}); send a UTF-8 JSON object` };
  }
  // What the fast path accepts, zod would too, with an equal value; the rest (every refusal) is zod's (contracts/fast-validate.ts).
  const fast = fastValidated(kind, json);
  return fast !== undefined ? { ok: true, value: fast } : validateValue(kind, json);
}

export function validateValue<K extends MessageKind>(kind: K, value: unknown): ValidationResult<PayloadOf[K]> {
  const schema = schemas[kind] as unknown as z.ZodType<PayloadOf[K]>;
  const parsed = schema.safeParse(value);
  if (parsed.success) return { ok: true, value: parsed.data };
  return { ok: false, error: formatIssues(kind, parsed.error.issues) };
}

/** `telemetry.values.temp: expected number, received string` — one line per problem, joined by '; '. */
export function formatIssues(prefix: string, issues: readonly z.core.$ZodIssue[]): string {
  return issues
    .slice(0, 5)
    .map((issue) => {
      const path = [prefix, ...issue.path.map(String)].join('.');
      return `${path}: ${issue.message}`;
    })
    .join('; ');
}
