// The oscillation guard's part of the safety policy (docs/rules.md#oscillation), pure: per target
// and setpoint key the history of commanded changes over `oscillation.window`, the count of
// direction reversals in it, and which of two values the guard keeps when it suspends a rule.
// The window is long (default 10 minutes) so that slow limit cycles — a rule that slows the line,
// lets it cool and speeds it up again every couple of minutes — are caught, not only fast flapping.
import type { Strategy } from '../contracts/schemas.js';
import type { ParamValue } from './load.js';
import type { SafetyDefinition } from './schema.js';

export type OscillationLimits = SafetyDefinition['oscillation'];

/** One change of a setpoint — or a run of one rule's changes in one direction (a ramp) — kept for oscillation detection. */
export interface SetpointChange {
  value: ParamValue;
  /** The value before the change (before the run's first step). */
  from?: ParamValue;
  ruleId: string;
  priority: number;
  /** When it was commanded (a run's last step). */
  at: number;
}

/** At most this many changes are kept per setpoint, whatever the window and budget (one-direction runs are merged first). */
export const MAX_CHANGES = 64;

/** Counts direction reversals: sign changes of numeric steps, or A→B→A returns for other values. */
export function countReversals(values: ParamValue[]): number {
  let reversals = 0;
  if (values.every((value) => typeof value === 'number')) {
    let lastSign = 0;
    for (let index = 1; index < values.length; index++) {
      const sign = Math.sign((values[index] as number) - (values[index - 1] as number));
      if (sign === 0) continue;
      if (lastSign !== 0 && sign !== lastSign) reversals++;
      lastSign = sign;
    }
    return reversals;
  }
  for (let index = 2; index < values.length; index++) if (values[index] === values[index - 2] && values[index] !== values[index - 1]) reversals++;
  return reversals;
}

function direction(change: SetpointChange): number {
  return typeof change.value === 'number' && typeof change.from === 'number' ? Math.sign(change.value - change.from) : 0;
}

/**
 * The key's history with `change` added: changes that ended more than `window` before it are
 * dropped, and a step continuing the last change in the same direction by the same rule (the next
 * step of a ramp) extends it instead of adding one — a ramp is one move, never a reversal.
 */
export function historyWith(changes: readonly SetpointChange[], change: SetpointChange, limits: OscillationLimits): SetpointChange[] {
  const kept = changes.filter((earlier) => change.at - earlier.at <= limits.window);
  const last = kept.at(-1);
  if (last && last.ruleId === change.ruleId && last.value === change.from && direction(last) !== 0 && direction(last) === direction(change)) {
    kept[kept.length - 1] = { ...change, from: last.from };
  } else kept.push(change);
  return kept.slice(-MAX_CHANGES);
}

/** The values the setpoint went through in `history`: the first change's starting value, then each change's. */
export function valuesOf(history: readonly SetpointChange[]): ParamValue[] {
  const first = history[0]?.from;
  return [...(first !== undefined ? [first] : []), ...history.map((change) => change.value)];
}

/** Strategies from the lowest line speed (and energy use) to the highest. */
const STRATEGIES_SAFEST_FIRST: readonly Strategy[] = ['safe', 'energy-saving', 'quality-first', 'max-throughput'];

/**
 * Whether `requested` is safer than the `current` setpoint — what the guard keeps when it suspends a
 * rule: the lower speed (less heat, wear and energy; slowing down is the direction the policy never
 * delays), stop over start, the lower-energy strategy. Any other setpoint: no change is the safer.
 */
export function isSafer(key: string, requested: ParamValue, current: ParamValue | undefined): boolean {
  if (current === undefined || requested === current) return false;
  switch (key) {
    case 'speed':
      return typeof requested === 'number' && typeof current === 'number' && requested < current;
    case 'run':
      return requested === 'stop';
    case 'strategy': {
      const rank = (value: ParamValue): number => {
        const index = STRATEGIES_SAFEST_FIRST.indexOf(value as Strategy);
        return index < 0 ? Infinity : index;
      };
      return rank(requested) < rank(current);
    }
    default:
      return false;
  }
}

/** How the guard's choice reads in a reason: `holding speed at 15 (the lower speed)`. */
export function heldNote(key: string, held: ParamValue): string {
  const why = key === 'speed' ? 'the lower speed' : key === 'run' ? 'stopped is the safe state' : key === 'strategy' ? 'the lower-energy strategy' : 'no change';
  return `holding ${key} at ${String(held)} (${why})`;
}
