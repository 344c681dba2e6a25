// The contract check of the device events a backtest rebuilds from stored rows (history.ts): the
// one a live message gets (contracts/validate.ts, validateValue), done once per shape instead of
// once per row. A day of one line is about a million rows but a few hundred shapes: the same
// device, tags, state, reason and reading names, only other numbers. So a row is checked by
// validateValue when its shape is new; a row of a shape that passed is one whose numbers alone
// differ, and those are checked here by the rules the schemas give them (contracts/schemas.ts):
// `ts` an integer in [0, MAX_TIMESTAMP_MS], `seq` an integer ≥ 0, a reading a finite number. A
// number anywhere else, or one that fails these, sends the row to validateValue (whose error is
// the one reported). The result is the same as validateValue's on every row
// (test/workbench/backtest-event-check.unit.test.ts); the payload is handed on as built, not copied.
import { MAX_TIMESTAMP_MS } from '../../contracts/schemas.js';
import { validateValue, type ValidationResult } from '../../contracts/validate.js';

export type StoredKind = 'state' | 'telemetry' | 'status';

/** Shapes remembered at most (then forgotten all at once: the next rows are checked in full again). */
const SHAPES_KEPT = 10_000;

export class StoredEventCheck {
  private readonly passed = new Set<string>();

  check<T>(kind: StoredKind, payload: Record<string, unknown>): ValidationResult<T> {
    const shape = shapeOf(kind, payload);
    if (shape !== undefined && this.passed.has(shape)) return { ok: true, value: payload as T };
    const result = validateValue(kind, payload) as ValidationResult<T>;
    if (result.ok && shape !== undefined) {
      if (this.passed.size >= SHAPES_KEPT) this.passed.clear();
      this.passed.add(shape);
    }
    return result;
  }
}

/**
 * The payload with its numbers left out — kind, keys, strings, reading names — when each number
 * in it passes the rule checked here for its place; undefined when one does not, or there is a
 * number (or anything but a string) elsewhere.
 */
function shapeOf(kind: StoredKind, payload: Record<string, unknown>): string | undefined {
  let shape = kind;
  for (const key in payload) {
    const value = payload[key];
    if (key === 'ts') {
      if (!(Number.isInteger(value) && (value as number) >= 0 && (value as number) <= MAX_TIMESTAMP_MS)) return undefined;
      shape += '\u0000ts';
    } else if (key === 'seq') {
      if (!(Number.isInteger(value) && (value as number) >= 0)) return undefined;
      shape += '\u0000seq';
    } else if (key === 'values' && kind === 'telemetry' && typeof value === 'object' && value !== null && !Array.isArray(value)) {
      shape += '\u0000values';
      const readings = value as Record<string, unknown>;
      for (const name in readings) {
        const reading = readings[name];
        if (typeof reading !== 'number' || !Number.isFinite(reading)) return undefined;
        shape += `\u0001${JSON.stringify(name)}`;
      }
    } else if (typeof value === 'string') {
      shape += `\u0000${key}=${JSON.stringify(value)}`;
    } else {
      return undefined;
    }
  }
  return shape;
}
