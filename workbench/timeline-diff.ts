// Compares two timelines of what rules did — the commands they sent and the alarm (alert) states
// they set — and says what one has that the other has not: added, missing, changed, each with its
// times. `rules backtest` compares what the rules would have done with what was stored (or two
// rule versions on the same history), `rules diff` compares shadow rules with the live ones.
//
// Pure: no I/O, no clock, no imports from the services. Items are matched within a time tolerance
// (DEFAULT_TOLERANCE_MS of contracts/, unless told): two items are the same when they have the same identity
// (a command's target and action, an alarm's id — or its rule and device), the same content
// (params and, when both sides know it, outcome; the alarm state) and times at most the tolerance
// apart. What is left is then paired by identity alone within the tolerance: those pairs are
// "changed" (e.g. set_speed 32 where the other side sent set_speed 28 at about the same time).
// Whatever still has no partner is "added" (only in the candidate) or "missing" (only in the
// baseline). Nearest in time pairs first; ties go to the earlier item, so the result is deterministic.
import { DEFAULT_TOLERANCE_MS } from '../contracts/timeline-tolerance.js';

export type TimelineParam = number | string | boolean;

export interface TimelineCommand {
  kind: 'command';
  /** ms; any origin (device time, or since the start of a run), the same on both sides. */
  at: number;
  target: string;
  action: string;
  params: Record<string, TimelineParam>;
  /** The command's final outcome (done, blocked, expired…), when known; compared only when both sides have one. */
  outcome?: string;
  line?: string;
  /** Who sent it (rule:…); shown, never compared (rule ids change when rules are rewritten). */
  origin?: string;
  /** The command's id; shown, never compared (ids are per engine start). */
  id?: string;
}

export interface TimelineAlarm {
  kind: 'alarm';
  at: number;
  /** The alarm (alert) id, `rule:line/device`; when absent the identity is rule + device. */
  id?: string;
  rule?: string;
  device?: string;
  /** An alarm state (active-unacked, rtn-unacked…) or an alert state (raised, cleared…). */
  state: string;
  line?: string;
}

export type TimelineItem = TimelineCommand | TimelineAlarm;

export interface TimelineChange {
  /** As in the baseline. */
  before: TimelineItem;
  /** As in the candidate. */
  after: TimelineItem;
  /** What differs: `params`, `outcome`, `state`; `time` is not listed (within the tolerance by construction). */
  fields: string[];
}

export interface TimelineDiff {
  /** In the candidate only. */
  added: TimelineItem[];
  /** In the baseline only. */
  missing: TimelineItem[];
  changed: TimelineChange[];
  /** Items found on both sides alike. */
  same: number;
  toleranceMs: number;
}

export interface TimelineDiffOptions {
  /** How far apart (ms) two items may be and still match; default DEFAULT_TOLERANCE_MS. */
  toleranceMs?: number;
}

/** Compares `candidate` with `baseline`: added = only in the candidate, missing = only in the baseline. */
export function diffTimelines(baseline: readonly TimelineItem[], candidate: readonly TimelineItem[], options: TimelineDiffOptions = {}): TimelineDiff {
  const toleranceMs = options.toleranceMs ?? DEFAULT_TOLERANCE_MS;
  if (!(toleranceMs >= 0) || !Number.isFinite(toleranceMs)) throw new RangeError(`toleranceMs must be a finite number ≥ 0; got ${toleranceMs}`);
  const before = byTime(baseline);
  const after = byTime(candidate);
  const beforeLeft = new Set(before.keys());
  const afterLeft = new Set(after.keys());

  let same = 0;
  for (const [b, a] of pairs(before, after, beforeLeft, afterLeft, toleranceMs, (x, y) => sameContent(x, y))) {
    beforeLeft.delete(b);
    afterLeft.delete(a);
    same++;
  }
  const changed: TimelineChange[] = [];
  for (const [b, a] of pairs(before, after, beforeLeft, afterLeft, toleranceMs, () => true)) {
    beforeLeft.delete(b);
    afterLeft.delete(a);
    changed.push({ before: before[b]!, after: after[a]!, fields: differences(before[b]!, after[a]!) });
  }
  return {
    added: [...afterLeft].map((i) => after[i]!),
    missing: [...beforeLeft].map((i) => before[i]!),
    changed,
    same,
    toleranceMs,
  };
}

/** True when the diff found nothing added, missing or changed. */
export function isSameTimeline(diff: TimelineDiff): boolean {
  return diff.added.length === 0 && diff.missing.length === 0 && diff.changed.length === 0;
}

/** What makes two items candidates for each other: a command's target + action, an alarm's id (or rule + device). */
export function identityOf(item: TimelineItem): string {
  if (item.kind === 'command') return `command\u0000${item.line ?? ''}\u0000${item.target}\u0000${item.action}`;
  return item.id !== undefined ? `alarm\u0000${item.id}` : `alarm\u0000${item.line ?? ''}\u0000${item.rule ?? ''}\u0000${item.device ?? ''}`;
}

/** One line for a report: `command line-ctl set_speed {"speed":32}` or `alarm overheat:A/conv-2 active-unacked`. */
export function describeItem(item: TimelineItem): string {
  if (item.kind === 'command') {
    return `command ${item.target} ${item.action} ${canonical(item.params)}${item.outcome ? ` → ${item.outcome}` : ''}${item.origin ? `  ${item.origin}` : ''}`;
  }
  return `alarm ${item.id ?? `${item.rule ?? '?'}/${item.device ?? '?'}`} ${item.state}`;
}

function byTime(items: readonly TimelineItem[]): TimelineItem[] {
  // Stable: equal times keep their given order.
  return [...items].sort((x, y) => x.at - y.at);
}

/**
 * Nearest-first pairing of the items still left on both sides that have the same identity and
 * satisfy `match`: every such pair at most the tolerance apart, taken in order of their gap
 * (then of the baseline item's time, then of the candidate's), each item in one pair at most.
 */
function pairs(
  before: TimelineItem[],
  after: TimelineItem[],
  beforeLeft: ReadonlySet<number>,
  afterLeft: ReadonlySet<number>,
  toleranceMs: number,
  match: (b: TimelineItem, a: TimelineItem) => boolean,
): [number, number][] {
  const candidates = new Map<string, number[]>();
  for (const index of afterLeft) {
    const key = identityOf(after[index]!);
    const list = candidates.get(key);
    if (list) list.push(index);
    else candidates.set(key, [index]);
  }
  // Each list is in time order (indexes into the time-sorted `after`, visited in order).
  const options: { b: number; a: number; gap: number }[] = [];
  for (const b of beforeLeft) {
    const item = before[b]!;
    const list = candidates.get(identityOf(item));
    if (!list) continue;
    for (let i = firstAtOrAfter(list, after, item.at - toleranceMs); i < list.length; i++) {
      const a = list[i]!;
      const gap = after[a]!.at - item.at;
      if (gap > toleranceMs) break;
      if (match(item, after[a]!)) options.push({ b, a, gap: Math.abs(gap) });
    }
  }
  options.sort((x, y) => x.gap - y.gap || x.b - y.b || x.a - y.a);
  const takenBefore = new Set<number>();
  const takenAfter = new Set<number>();
  const chosen: [number, number][] = [];
  for (const { b, a } of options) {
    if (takenBefore.has(b) || takenAfter.has(a)) continue;
    takenBefore.add(b);
    takenAfter.add(a);
    chosen.push([b, a]);
  }
  return chosen.sort((x, y) => x[0] - y[0]);
}

/** The first position in `list` whose item is at or after `time` (binary search). */
function firstAtOrAfter(list: number[], items: TimelineItem[], time: number): number {
  let low = 0;
  let high = list.length;
  while (low < high) {
    const mid = (low + high) >> 1;
    if (items[list[mid]!]!.at < time) low = mid + 1;
    else high = mid;
  }
  return low;
}

function sameContent(x: TimelineItem, y: TimelineItem): boolean {
  return differences(x, y).length === 0;
}

function differences(x: TimelineItem, y: TimelineItem): string[] {
  const fields: string[] = [];
  if (x.kind === 'command' && y.kind === 'command') {
    if (canonical(x.params) !== canonical(y.params)) fields.push('params');
    if (x.outcome !== undefined && y.outcome !== undefined && x.outcome !== y.outcome) fields.push('outcome');
  } else if (x.kind === 'alarm' && y.kind === 'alarm') {
    if (x.state !== y.state) fields.push('state');
  }
  return fields;
}

/** Params as JSON with sorted keys, so {a,b} and {b,a} compare equal. */
function canonical(params: Record<string, TimelineParam>): string {
  return JSON.stringify(Object.fromEntries(Object.keys(params).sort().map((key) => [key, params[key]])));
}
