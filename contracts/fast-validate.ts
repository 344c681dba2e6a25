// A fast path in front of the zod schemas for what devices publish most (telemetry, state,
// status): hand-written checks that only ever ACCEPT. A payload they accept is one the kind's zod
// schema accepts too, with an equal value (test/contracts/fast-validate.test.ts proves it over
// generated valid and invalid payloads); anything they are not sure of — every invalid payload,
// and the rare valid one outside what they check — goes to zod, which stays the source of truth
// and words the error. So a refused payload's message is zod's, exactly as before.
//
// Why: zod 4 builds a fresh output object per object and record it parses, and runs each check
// through its generic issue machinery; at 20k msgs/s that was 14–21 % of the broker's busy time
// (docs/broker.md#cost-per-message). These checks allocate nothing and return the parsed JSON
// object itself (it is the caller's: JSON.parse just made it).
import { DEVICE_STATES, DEVICE_TYPES, MAX_TIMESTAMP_MS, READING_NAME_PATTERN, RESERVED_READING_NAMES, STRATEGIES, type PayloadOf } from './schemas.js';
import { ID_PATTERN, type MessageKind } from './topics.js';

type Json = Record<string, unknown>;

const DEVICE_TYPE_SET: ReadonlySet<unknown> = new Set(DEVICE_TYPES);
const DEVICE_STATE_SET: ReadonlySet<unknown> = new Set(DEVICE_STATES);
const STRATEGY_SET: ReadonlySet<unknown> = new Set(STRATEGIES);
const STATUSES: ReadonlySet<unknown> = new Set(['online', 'offline']);
/** zod's `label`: 1–256 characters. Counted here in UTF-16 units, never fewer than zod counts, so no accepted label is one zod refuses. */
const LABEL_MAX = 256;

function isPlainObject(value: unknown): value is Json {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** The schemas' `timestamp`: an integer from 0 to MAX_TIMESTAMP_MS. */
function isTimestamp(value: unknown): boolean {
  return typeof value === 'number' && Number.isSafeInteger(value) && value >= 0 && value <= MAX_TIMESTAMP_MS;
}

/** The schemas' `sequence`: a non-negative (safe) integer. */
function isSequence(value: unknown): boolean {
  return typeof value === 'number' && Number.isSafeInteger(value) && value >= 0;
}

function isLabel(value: unknown): boolean {
  return typeof value === 'string' && value.length >= 1 && value.length <= LABEL_MAX;
}

function isTagId(value: unknown): boolean {
  return typeof value === 'string' && ID_PATTERN.test(value);
}

/** The schemas' `readings`: own string keys that are reading names, finite numbers, no `__proto__`, no reserved name sent next to its `_value` rename. */
function isReadings(value: unknown): boolean {
  if (!isPlainObject(value) || Object.getPrototypeOf(value) !== Object.prototype) return false;
  // for…in visits inherited keys too: a plain object from JSON.parse has none, and a `__proto__` key is an own one (refused below).
  for (const name in value) {
    if (name === '__proto__' || !Object.prototype.hasOwnProperty.call(value, name)) return false;
    const reading = value[name];
    if (typeof reading !== 'number' || !Number.isFinite(reading) || !READING_NAME_PATTERN.test(name)) return false;
  }
  for (const name of RESERVED_READING_NAMES) if (name in value && `${name}_value` in value) return false;
  return true;
}

/** Whether every own key of `value` is one of `allowed` (a strict object), and none of them is `__proto__`. */
function onlyKeys(value: Json, allowed: ReadonlySet<string>): boolean {
  for (const key in value) if (!allowed.has(key) || !Object.prototype.hasOwnProperty.call(value, key)) return false;
  return Object.getPrototypeOf(value) === Object.prototype;
}

/** An optional key: absent, or present with a value `check` accepts (JSON has no `undefined`; a present undefined goes to zod). */
function optional(value: Json, key: string, check: (field: unknown) => boolean): boolean {
  return !(key in value) || check(value[key]);
}

const TELEMETRY_KEYS: ReadonlySet<string> = new Set(['ts', 'seq', 'values', 'type', 'station']);
const STATE_KEYS: ReadonlySet<string> = new Set(['ts', 'seq', 'state', 'reason', 'type', 'station', 'strategy']);
const STATUS_KEYS: ReadonlySet<string> = new Set(['ts', 'seq', 'status', 'type']);

const isDeviceType = (field: unknown): boolean => DEVICE_TYPE_SET.has(field);

const FAST: Partial<{ [K in MessageKind]: (value: Json) => boolean }> = {
  telemetry: (value) => onlyKeys(value, TELEMETRY_KEYS) && isTimestamp(value.ts) && isSequence(value.seq) && isReadings(value.values) && optional(value, 'type', isDeviceType) && optional(value, 'station', isTagId),
  state: (value) =>
    onlyKeys(value, STATE_KEYS) &&
    isTimestamp(value.ts) &&
    isSequence(value.seq) &&
    DEVICE_STATE_SET.has(value.state) &&
    optional(value, 'reason', isLabel) &&
    optional(value, 'type', isDeviceType) &&
    optional(value, 'station', isTagId) &&
    optional(value, 'strategy', (field) => STRATEGY_SET.has(field)),
  status: (value) => onlyKeys(value, STATUS_KEYS) && isTimestamp(value.ts) && optional(value, 'seq', isSequence) && STATUSES.has(value.status) && optional(value, 'type', isDeviceType),
};

/** The kinds with a fast path. */
export const FAST_KINDS = Object.keys(FAST) as MessageKind[];

/**
 * `value` as a valid payload of `kind` when the fast checks are sure of it (then zod would accept
 * it with an equal value); undefined when they are not: ask the zod schema (validateValue).
 */
export function fastValidated<K extends MessageKind>(kind: K, value: unknown): PayloadOf[K] | undefined {
  const check = FAST[kind];
  return check && isPlainObject(value) && check(value) ? (value as PayloadOf[K]) : undefined;
}
