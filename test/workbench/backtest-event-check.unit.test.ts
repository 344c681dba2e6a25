// workbench/backtest/event-check.ts: the contract check of rebuilt stored events, once per shape,
// gives validateValue's answer on every row — also on a row whose shape passed before and whose
// numbers alone are wrong.
import { describe, expect, it } from 'vitest';
import { MAX_TIMESTAMP_MS } from '../../contracts/schemas.js';
import { validateValue } from '../../contracts/validate.js';
import { StoredEventCheck, type StoredKind } from '../../workbench/backtest/event-check.js';

const telemetry = (extra: Record<string, unknown> = {}, values: Record<string, unknown> = { motorTemp: 61.5, speed: 40 }): Record<string, unknown> => ({ ts: 1_000, seq: 7, type: 'conveyor', values, ...extra });
const state = (extra: Record<string, unknown> = {}): Record<string, unknown> => ({ ts: 1_000, seq: 3, type: 'station', station: 'st-2', state: 'FAULT', reason: 'jam', ...extra });
const status = (extra: Record<string, unknown> = {}): Record<string, unknown> => ({ ts: 1_000, status: 'online', ...extra });

/** Each row after a valid one of its shape: the numbers alone wrong, or other strings, keys, names. */
const ROWS: Array<[StoredKind, Record<string, unknown>]> = [
  ['telemetry', telemetry()],
  ['telemetry', telemetry({ ts: 2_000, seq: 8 }, { motorTemp: 80.25, speed: 32 })],
  ['telemetry', telemetry({ seq: 8.5 })],
  ['telemetry', telemetry({ seq: -1 })],
  ['telemetry', telemetry({ seq: '8' })],
  ['telemetry', telemetry({ ts: MAX_TIMESTAMP_MS + 1 })],
  ['telemetry', telemetry({ ts: -5 })],
  ['telemetry', telemetry({ ts: 1.5 })],
  ['telemetry', telemetry({}, { motorTemp: Infinity, speed: 40 })],
  ['telemetry', telemetry({}, { motorTemp: '61.5', speed: 40 })],
  ['telemetry', telemetry({}, { motorTemp: true, speed: 40 })],
  ['telemetry', telemetry({}, { 'motor temp': 61.5, speed: 40 })],
  ['telemetry', telemetry({}, { seq: 1, seq_value: 2 })],
  ['telemetry', telemetry({ type: 'toaster' })],
  ['telemetry', telemetry({ station: 'st 2' })],
  ['telemetry', telemetry({ extra: 'x' })],
  ['telemetry', telemetry({ seq: undefined })],
  ['state', state()],
  ['state', state({ ts: 5_000, seq: 4 })],
  ['state', state({ seq: 4.25 })],
  ['state', state({ state: 'ON_FIRE' })],
  ['state', state({ reason: '' })],
  ['state', state({ reason: 'x'.repeat(257) })],
  ['state', state({ reason: 42 })],
  ['state', state({ strategy: 'energy-saving' })],
  ['state', state({ strategy: 'fastest' })],
  ['status', status()],
  ['status', status({ ts: 9_000 })],
  ['status', status({ status: 'asleep' })],
  ['status', status({ seq: 1 })],
  ['status', status({ seq: -1 })],
];

describe('StoredEventCheck', () => {
  it('answers as validateValue does on every row, valid or not, whether its shape passed before or not', () => {
    const check = new StoredEventCheck();
    const answers = ROWS.map(([kind, payload]) => check.check(kind, payload));
    const expected = ROWS.map(([kind, payload]) => validateValue(kind, payload));
    expect(answers.map((answer) => answer.ok)).toEqual(expected.map((answer) => answer.ok));
    for (const [index, answer] of answers.entries()) {
      const reference = expected[index]!;
      if (answer.ok && reference.ok) expect(answer.value).toEqual(reference.value);
      else expect(answer).toEqual(reference);
    }
    // Not all one way: both valid and refused rows are among them.
    expect(answers.filter((answer) => answer.ok).length).toBeGreaterThan(4);
    expect(answers.filter((answer) => !answer.ok).length).toBeGreaterThan(15);
  });

  it('the same rows in reverse order (the refused ones first, before their shape passed) give the same answers', () => {
    const check = new StoredEventCheck();
    const reversed = [...ROWS].reverse();
    expect(reversed.map(([kind, payload]) => check.check(kind, payload).ok)).toEqual(reversed.map(([kind, payload]) => validateValue(kind, payload).ok));
  });
});
