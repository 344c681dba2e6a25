// Which lines a worker owns, when the historian or the rules engine runs as several processes
// (docs/historian.md and docs/rules.md, "Running several workers"): every worker of every
// version must agree on who owns a line, so the hash below is part of the contract — its values
// are pinned by test/contracts/line-workers.unit.test.ts and must never change.
//
//   all                 one worker for every line (the default)
//   lines: [A, B]       exactly these lines (--lines A,B)
//   worker: 2/3         the lines whose hash falls on worker 2 of 3 (--worker 2/3)
import { z } from 'zod';
import { ID_PATTERN, ROOT, shadowTopic, unshadowTopic } from './topics.js';

/** The line a dead letter (lw/_dead/{clientId}) belongs to for ownership: it names no line. */
export const DEAD_LETTER_LINE = '_dead';

export type LineOwnership =
  | { readonly kind: 'all' }
  | { readonly kind: 'lines'; readonly lines: readonly string[] }
  | { readonly kind: 'hash'; readonly index: number; readonly count: number };

export const ALL_LINES: LineOwnership = { kind: 'all' };

/**
 * FNV-1a (32 bit) of the line id's UTF-8 bytes, the standard one (FNV-1a("a") = 0xe40c292c).
 * Pure and fixed forever: changing it would make two versions of a worker disagree on who owns
 * a line (one line stored twice, another never).
 */
export function lineHash(line: string): number {
  let hash = 0x811c9dc5;
  for (const byte of Buffer.from(line, 'utf8')) {
    hash ^= byte;
    hash = Math.imul(hash, 0x01000193) >>> 0;
  }
  return hash;
}

/** The worker (1 … count) that owns `line` among `count` hashed workers: lineHash modulo count, plus 1. */
export function workerOfLine(line: string, count: number): number {
  return (lineHash(line) % count) + 1;
}

/** Whether a worker with `ownership` owns `line`. */
export function ownsLine(ownership: LineOwnership, line: string): boolean {
  switch (ownership.kind) {
    case 'all':
      return true;
    case 'lines':
      return ownership.lines.includes(line);
    case 'hash':
      return workerOfLine(line, ownership.count) === ownership.index;
  }
}

/**
 * The line a linewatch topic belongs to (`_dead` for a dead letter), or undefined outside lw/. A
 * shadow rule set's topic is its line's: lw/_shadow/A/… belongs to line A, as lw/A/… does.
 */
export function lineOfTopic(topic: string): string | undefined {
  const live = unshadowTopic(topic) ?? topic;
  const first = live.indexOf('/');
  if (first < 0 || live.slice(0, first) !== ROOT) return undefined;
  const second = live.indexOf('/', first + 1);
  return second < 0 ? undefined : live.slice(first + 1, second);
}

/**
 * The subscription filters of a worker: `filters` (each starting lw/+/…, lw/#, lw/_shadow/+/… or
 * lw/_shadow/#) narrowed to its lines when it has a list (lw/+/+/state → lw/A/+/state,
 * lw/_shadow/# → lw/_shadow/A/#); lw/#, which holds the shadow topics, becomes lw/A/# and
 * lw/_shadow/A/#. Unchanged for all lines and for hashed workers, which cannot name their lines
 * before hearing them (they subscribe to all and skip what is not theirs).
 */
export function ownedFilters(ownership: LineOwnership, filters: readonly string[]): string[] {
  if (ownership.kind !== 'lines') return [...filters];
  const narrowed: string[] = [];
  for (const line of ownership.lines) {
    for (const filter of filters) {
      const shadow = unshadowTopic(filter) !== undefined;
      const levels = (unshadowTopic(filter) ?? filter).split('/');
      if (levels[0] !== ROOT || (levels[1] !== '+' && levels[1] !== '#')) throw new Error(`cannot narrow ${filter} to line ${line}: not an lw/+/…, lw/#, lw/_shadow/+/… or lw/_shadow/# filter`);
      const live = levels[1] === '#' ? `${ROOT}/${line}/#` : [ROOT, line, ...levels.slice(2)].join('/');
      if (shadow) narrowed.push(shadowTopic(live));
      else narrowed.push(...(levels[1] === '#' ? [live, shadowTopic(live)] : [live]));
    }
  }
  return narrowed;
}

/** A short name for the worker, for default client ids, spool dirs and state files: undefined for all lines. */
export function ownershipLabel(ownership: LineOwnership): string | undefined {
  switch (ownership.kind) {
    case 'all':
      return undefined;
    case 'lines':
      return `lines-${ownership.lines.join('+')}`;
    case 'hash':
      return `worker-${ownership.index}-of-${ownership.count}`;
  }
}

/** What the worker owns, for logs, /healthz and /metrics labels: "all lines", "lines A, B", "worker 1/2 (hash of the line id)". */
export function describeOwnership(ownership: LineOwnership): string {
  switch (ownership.kind) {
    case 'all':
      return 'all lines';
    case 'lines':
      return `lines ${ownership.lines.join(', ')}`;
    case 'hash':
      return `worker ${ownership.index}/${ownership.count} (lines by hash of the line id)`;
  }
}

/** `I/N` with 1 ≤ I ≤ N: this worker's number and how many there are. */
export const WORKER_PATTERN = /^([1-9]\d*)\/([1-9]\d*)$/;

/** The config keys `lines` and `worker` of a section that can run as several workers (historian, rules). */
export const lineOwnershipShape = {
  lines: z
    .array(z.string().regex(ID_PATTERN, 'must be a line id (letters, digits, - and _), or _dead for dead letters'))
    .min(1, 'name at least one line, or set null for every line')
    .nullable()
    .default(null)
    .describe('the lines this worker owns (null: every line, or as `worker` says)'),
  worker: z
    .string()
    .regex(WORKER_PATTERN, 'must be I/N, e.g. 1/2 (this worker is number I of N)')
    .refine((text) => {
      const [, index, count] = WORKER_PATTERN.exec(text) ?? [];
      return Number(index) <= Number(count);
    }, 'I/N needs I between 1 and N')
    .nullable()
    .default(null)
    .describe('I/N: this worker owns the lines whose hash falls on worker I of N (null: every line, or as `lines` says)'),
};

interface OwnershipKeys {
  lines: readonly string[] | null;
  worker: string | null;
}

function bothSet(section: string): string {
  return `${section}.lines and ${section}.worker (--lines, --worker) are both set: give one — the lines by name, or this worker's share I/N of the hash`;
}

/** A section schema's check (superRefine) that `lines` and `worker` are not both set. */
export function oneOwnership(section: string): (config: OwnershipKeys, ctx: z.RefinementCtx) => void {
  return (config, ctx) => {
    if (config.lines !== null && config.worker !== null) ctx.addIssue({ code: 'custom', path: ['worker'], message: bothSet(section) });
  };
}

/** The ownership a section's `lines` / `worker` give (throws, naming `section`'s keys, when both are set). */
export function ownershipOf(config: OwnershipKeys, section: string): LineOwnership {
  if (config.lines !== null && config.worker !== null) throw new Error(bothSet(section));
  if (config.lines !== null) return { kind: 'lines', lines: [...new Set(config.lines)] };
  if (config.worker !== null) {
    const [, index, count] = WORKER_PATTERN.exec(config.worker)!;
    return Number(count) === 1 ? ALL_LINES : { kind: 'hash', index: Number(index), count: Number(count) };
  }
  return ALL_LINES;
}
