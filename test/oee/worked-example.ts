// The worked example of docs/oee.md ("A worked example"), as events: one early shift of line W
// (06:00–14:00 UTC, a break 10:00–10:30) with one station, st-1, whose counters are the line's
// output; ideal rate 1 part/min; micro-stops below 30 s. The unit test and the InfluxDB test
// both replay it; the figures they expect are the document's, written as its fractions.
import type { DeviceState } from '../../contracts/schemas.js';

export const DAY = '2026-12-01';
export const at = (hhmmss: string): number => Date.parse(`${DAY}T${hhmmss}Z`);
export const MIN = 60_000;

export const EXAMPLE_CONFIG = {
  idealRatePerMin: 1,
  microStopMs: 30_000,
  calendar: { timeZone: 'UTC', shifts: [{ name: 'early', start: '06:00', end: '14:00' }, { name: 'late', start: '14:00', end: '22:00' }], breaks: [{ start: '10:00', end: '10:30' }] },
};

export type ExampleEvent =
  | { kind: 'state'; ts: number; state: DeviceState; reason?: string }
  | { kind: 'telemetry'; ts: number; good: number; scrap: number };

const state = (hhmmss: string, value: DeviceState, reason?: string): ExampleEvent => ({ kind: 'state', ts: at(hhmmss), state: value, ...(reason ? { reason } : {}) });
const counts = (hhmmss: string, good: number, scrap: number): ExampleEvent => ({ kind: 'telemetry', ts: at(hhmmss), good, scrap });

/** In time order. Counters are cumulative, reported at hh:59 (that minute belongs to the hour). */
export const EXAMPLE_EVENTS: ExampleEvent[] = [
  counts('06:00:00', 0, 0),
  state('06:00:00', 'RUNNING'),
  counts('06:59:00', 58, 1),
  state('07:00:00', 'FAULT', 'motor over temperature'),
  state('07:20:00', 'RUNNING'),
  counts('07:59:00', 96, 3),
  state('08:30:00', 'BLOCKED', 'downstream buffer full'),
  state('08:30:20', 'RUNNING'),
  counts('08:59:00', 153, 4),
  counts('09:59:00', 211, 5),
  state('10:00:00', 'IDLE', 'break'),
  state('10:30:00', 'RUNNING'),
  counts('10:59:00', 240, 5),
  counts('11:59:00', 298, 6),
  state('12:00:00', 'MAINTENANCE', 'belt change'),
  state('12:30:00', 'RUNNING'),
  counts('12:59:00', 325, 7),
  state('13:00:00', 'STARVED', 'upstream buffer empty'),
  state('13:10:00', 'RUNNING'),
  counts('13:59:00', 351, 9),
  counts('14:00:00', 351, 9),
];

/** Where the replay is cut for the restart test: events before it, then a restart, then the rest; the break's IDLE stop is open across it. */
export const RESTART_AFTER = 11;

/** The document's figures. */
export const EXPECTED = {
  shift: {
    plannedMs: 420 * MIN,
    runMs: 389 * MIN + 40_000,
    microStops: 1,
    microStopMs: 20_000,
    plannedStopMs: 60 * MIN,
    downMs: { FAULT: 20 * MIN, STARVED: 10 * MIN },
    goodCount: 351,
    scrapCount: 9,
    availability: 390 / 420,
    performance: 360 / 390,
    quality: 351 / 360,
    oee: 351 / 420,
  },
  hour07: { plannedMs: 60 * MIN, runMs: 40 * MIN, downMs: { FAULT: 20 * MIN }, availability: 40 / 60, performance: 40 / 40, quality: 38 / 40, oee: (40 / 60) * (38 / 40) },
  hour10: { plannedMs: 30 * MIN, runMs: 30 * MIN, plannedStopMs: 30 * MIN, availability: 1, performance: 29 / 30, quality: 1, oee: 29 / 30 },
  /** Every stop of st-1 (and so of the line, which st-1 alone makes): state, start, end, planned ms, micro. */
  stops: [
    { state: 'FAULT', reason: 'motor over temperature', start: at('07:00:00'), end: at('07:20:00'), plannedMs: 0, micro: false },
    { state: 'BLOCKED', reason: 'downstream buffer full', start: at('08:30:00'), end: at('08:30:20'), plannedMs: 0, micro: true },
    { state: 'IDLE', reason: 'break', start: at('10:00:00'), end: at('10:30:00'), plannedMs: 30 * MIN, micro: false },
    { state: 'MAINTENANCE', reason: 'belt change', start: at('12:00:00'), end: at('12:30:00'), plannedMs: 30 * MIN, micro: false },
    { state: 'STARVED', reason: 'upstream buffer empty', start: at('13:00:00'), end: at('13:10:00'), plannedMs: 0, micro: false },
  ],
} as const;
