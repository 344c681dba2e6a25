// The fast path of contracts/fast-validate.ts against the zod schemas, over generated payloads:
// whatever it accepts, zod accepts with an equal value; the valid payloads devices send take it;
// every payload it does not accept gets zod's verdict and zod's words from validatePayload.
import { describe, expect, it } from 'vitest';
import { FAST_KINDS, fastValidated } from '../../contracts/fast-validate.js';
import { DEVICE_STATES, DEVICE_TYPES, MAX_TIMESTAMP_MS, RESERVED_READING_NAMES, STRATEGIES, schemas } from '../../contracts/schemas.js';
import type { MessageKind } from '../../contracts/topics.js';
import { formatIssues, validatePayload } from '../../contracts/validate.js';
import { chance, pick, random, type Rand } from '../harness/random.js';

const timestamp = (rand: Rand): number => pick(rand, [0, 1, Date.now(), MAX_TIMESTAMP_MS, Math.floor(rand() * 2e12)]);
const sequence = (rand: Rand): number => pick(rand, [0, 1, 65_535, Number.MAX_SAFE_INTEGER, Math.floor(rand() * 1e9)]);
const readingName = (rand: Rand): string => pick(rand, ['v', 'temp', 'speed', '_x', 'A9_b', 'x'.repeat(64), ...RESERVED_READING_NAMES.filter((name) => name !== 'time'), 'time', 'seq_value', 'line_value']);
const tagId = (rand: Rand): string => pick(rand, ['st-1', 'A', 'x_y-Z9', 'a'.repeat(64)]);

function values(rand: Rand): Record<string, number> {
  const out: Record<string, number> = {};
  const count = Math.floor(rand() * 5);
  for (let i = 0; i < count; i++) {
    const name = readingName(rand);
    // A reserved name and its `_value` rename together is invalid: keep generated valid readings clear of that.
    if ((RESERVED_READING_NAMES as readonly string[]).some((reserved) => name === `${reserved}_value` ? reserved in out : `${name}_value` in out)) continue;
    out[name] = pick(rand, [0, -1.5, 1e300, rand() * 100, -0]);
  }
  return out;
}

/** A payload of `kind` the schema accepts, with its optional fields present or not. */
function valid(kind: MessageKind, rand: Rand): Record<string, unknown> {
  const optional = (payload: Record<string, unknown>, key: string, make: () => unknown): void => {
    if (chance(rand, 0.5)) payload[key] = make();
  };
  const payload: Record<string, unknown> = { ts: timestamp(rand) };
  if (kind === 'telemetry') {
    payload.seq = sequence(rand);
    payload.values = values(rand);
    optional(payload, 'type', () => pick(rand, DEVICE_TYPES));
    optional(payload, 'station', () => tagId(rand));
  } else if (kind === 'state') {
    payload.seq = sequence(rand);
    payload.state = pick(rand, DEVICE_STATES);
    optional(payload, 'reason', () => pick(rand, ['jam', 'x', 'é'.repeat(256), 'line\nbreak', 'm'.repeat(200)]));
    optional(payload, 'type', () => pick(rand, DEVICE_TYPES));
    optional(payload, 'station', () => tagId(rand));
    optional(payload, 'strategy', () => pick(rand, STRATEGIES));
  } else {
    optional(payload, 'seq', () => sequence(rand));
    payload.status = pick(rand, ['online', 'offline']);
    optional(payload, 'type', () => pick(rand, DEVICE_TYPES));
  }
  return payload;
}

/** Values that break some rule of some field: wrong types, out of range, not integers, patterns not matched, too long. */
const BAD_VALUES: unknown[] = [
  null, true, 'x', '', '12', [], {}, [1], -1, 1.5, Number.MAX_SAFE_INTEGER + 1, 2 ** 64, MAX_TIMESTAMP_MS + 1, 1e21,
  'RUNNING ', 'running', 'Online', 'st 1', 'a'.repeat(65), 'a'.repeat(257), '😀'.repeat(129), 'st/1', { v: 'x' }, { '1v': 1 }, { 'v-x': 1 }, { ['x'.repeat(65)]: 1 },
];

/** A copy of the payload's readings to break further (an empty object if a mutation replaced them). */
function readingsOf(payload: Record<string, unknown>): Record<string, unknown> {
  const readings = payload.values;
  return typeof readings === 'object' && readings !== null && !Array.isArray(readings) ? { ...(readings as Record<string, unknown>) } : {};
}

/** A valid payload broken in one or more ways: a field replaced, removed, added, or its readings broken. */
function mutated(kind: MessageKind, rand: Rand): Record<string, unknown> {
  const payload = valid(kind, rand);
  const mutations = 1 + Math.floor(rand() * 2);
  for (let m = 0; m < mutations; m++) {
    const keys = Object.keys(payload);
    switch (Math.floor(rand() * 6)) {
      case 0:
        payload[pick(rand, keys)] = pick(rand, BAD_VALUES);
        break;
      case 1:
        delete payload[pick(rand, keys)];
        break;
      case 2:
        payload[pick(rand, ['extra', 'value', 'Ts', 'seq', 'reason', 'station', 'strategy', 'type'])] = pick(rand, [...BAD_VALUES, 1, 'conveyor', 'IDLE']);
        break;
      case 3: {
        const readings = readingsOf(payload);
        const reserved = pick(rand, RESERVED_READING_NAMES);
        readings[reserved] = 1;
        readings[`${reserved}_value`] = 2;
        payload.values = readings;
        break;
      }
      case 4: {
        const readings = readingsOf(payload);
        readings[pick(rand, ['v', '9', '', 'a b', 'é'])] = pick(rand, [1, 'x', null, [], true]);
        payload.values = readings;
        break;
      }
      default:
        payload[pick(rand, keys)] = pick(rand, [0, 'online', 'IDLE', 'plc', {}, -0.0]);
    }
  }
  return payload;
}

/** JSON text with a `__proto__` key where JSON.parse makes it an own key (an object literal would set the prototype instead). */
function withProtoKey(kind: MessageKind, rand: Rand, inReadings: boolean): string {
  const text = JSON.stringify(valid(kind, rand));
  if (inReadings && kind === 'telemetry') return text.replace('"values":{', '"values":{"__proto__":1,').replace(',}', '}');
  return text.replace(/^\{/, '{"__proto__":{"ts":1},');
}

const CASES = 3000;

describe('contracts/fast-validate: the fast path accepts only what the zod schema accepts', () => {
  it('has a fast path for the device kinds sent most', () => {
    expect(FAST_KINDS.sort()).toEqual(['state', 'status', 'telemetry']);
  });

  for (const kind of ['telemetry', 'state', 'status'] as const) {
    it(`${kind}: every generated valid payload takes the fast path, with the value zod gives`, () => {
      const rand = random(0x5eed + kind.length);
      for (let n = 0; n < CASES; n++) {
        const text = JSON.stringify(valid(kind, rand));
        const byZod = schemas[kind].safeParse(JSON.parse(text));
        expect(byZod.success, `case ${n}: ${text}`).toBe(true);
        const fast = fastValidated(kind, JSON.parse(text));
        expect(fast, `case ${n}: ${text}`).toBeDefined();
        expect(fast).toEqual(byZod.data);
        expect(validatePayload(kind, text)).toEqual({ ok: true, value: byZod.data });
      }
    });

    it(`${kind}: a broken payload the fast path accepts is one zod accepts too; each one it does not gets zod's verdict and words`, () => {
      const rand = random(0xbad + kind.length);
      let refused = 0;
      for (let n = 0; n < CASES; n++) {
        const text = n % 50 === 0 ? withProtoKey(kind, rand, n % 100 === 0) : JSON.stringify(mutated(kind, rand));
        const byZod = schemas[kind].safeParse(JSON.parse(text));
        const fast = fastValidated(kind, JSON.parse(text));
        if (fast !== undefined) {
          expect(byZod.success, `case ${n}: the fast path accepted what zod refuses: ${text}`).toBe(true);
          expect(fast).toEqual(byZod.data);
        }
        const expected = byZod.success ? { ok: true, value: byZod.data } : { ok: false, error: formatIssues(kind, byZod.error.issues) };
        expect(validatePayload(kind, text), `case ${n}: ${text}`).toEqual(expected);
        if (!byZod.success) refused++;
      }
      // The generator must really break payloads, or the test proves nothing.
      expect(refused).toBeGreaterThan(CASES / 2);
    });
  }

  it('leaves the kinds without a fast path to zod', () => {
    expect(fastValidated('cmd', { id: 'c1', action: 'stop', params: {}, origin: 'x', ts: 1, expiresAt: 2 })).toBeUndefined();
  });
});
