// `linewatch rules backtest` (docs/rules.md, "Backtest"): the rules of DIR replayed over the
// device events stored in InfluxDB for a range, and what they would have done compared with what
// was stored for it — or, with `against`, with a second rule set replayed over the same events.
// One pass over the history (history.ts, in pages): each page is fed to every replay in turn,
// each replay on its own clock and its own private broker (replay.ts).
import { settle } from '../../rules/clock.js';
import type { RulesSettingsInput } from '../../rules/config.js';
import { diffTimelines, type TimelineDiff, type TimelineItem } from '../timeline-diff.js';
import { BacktestError } from './errors.js';
import { HistoryReader, type HistorySource, type PageStats, type SkippedRow } from './history.js';
import { Replay } from './replay.js';

export interface BacktestOptions {
  /** The rules to replay. */
  dir: string;
  /** A second rule set: compared with `dir` on the same history instead of what was stored. */
  against?: string;
  influx: HistorySource;
  /** The range compared, device time (ms since the epoch), [from, to). */
  from: number;
  to: number;
  /** Events before `from` replayed too (not compared), so windows and timers are warm at `from`; default 0. */
  warmupMs?: number;
  /** How far apart two items may be and still match (timeline-diff's default when absent). */
  toleranceMs?: number;
  /** Engine settings as in the rules: section (backtest's own overrides win, replay.ts). */
  settings?: RulesSettingsInput;
}

export interface BacktestResult {
  dir: string;
  against?: string;
  line?: string;
  from: number;
  to: number;
  warmupMs: number;
  /** Device events replayed (warm-up included). */
  events: number;
  pages: PageStats;
  skipped: { count: number; first: SkippedRow[] };
  /** What the rules did as stored for [from, to): commands sent (with their outcome when stored), the rules' alerts. */
  stored: TimelineItem[];
  /** What the rules of `dir` would have done in [from, to). */
  replayed: TimelineItem[];
  /** What the rules of `against` would have done in [from, to). */
  againstReplayed?: TimelineItem[];
  /** baseline: `stored` (or `replayed` with against); candidate: `replayed` (or `againstReplayed`). */
  diff: TimelineDiff;
  /** The engine counters at the end, per rule set. */
  counters: Record<string, Record<string, number>>;
  /** Wall time of the whole backtest (ms). */
  elapsedMs: number;
}

export async function runBacktest(options: BacktestOptions): Promise<BacktestResult> {
  const began = performance.now();
  const { from, to } = options;
  const warmupMs = options.warmupMs ?? 0;
  if (!(from < to)) throw new BacktestError(`--from (${new Date(from).toISOString()}) must be before --to (${new Date(to).toISOString()})`);
  if (!(warmupMs >= 0)) throw new BacktestError(`--warmup must not be negative; got ${warmupMs} ms`);
  const start = from - warmupMs;
  const reader = new HistoryReader(options.influx);
  const replays: Replay[] = [];
  try {
    const dirs = [options.dir, ...(options.against !== undefined ? [options.against] : [])];
    for (const dir of dirs) replays.push(await Replay.start({ dir, startTime: start, settings: options.settings }));
    let events = 0;
    for await (const page of reader.events(start, to)) {
      for (const replay of replays) for (const event of page) replay.feed(event);
      events += page.length;
      // What the engines published on their private brokers (commands, alarm states) goes out.
      await settle();
    }
    if (events === 0) {
      throw new BacktestError(
        `no device events are stored${options.influx.line !== undefined ? ` for line ${options.influx.line}` : ''} between ${new Date(start).toISOString()} and ${new Date(to).toISOString()} in database "${options.influx.database}"; check --from/--to, --line and --database`,
      );
    }
    for (const replay of replays) await replay.finish(to);
    const stored = await reader.outputs(from, to);
    const inRange = (items: TimelineItem[]): TimelineItem[] => items.filter((item) => item.at >= from && item.at < to);
    const [replayed, againstReplayed] = replays.map((replay) => inRange(replay.items));
    const diff = againstReplayed ? diffTimelines(replayed!, againstReplayed, { toleranceMs: options.toleranceMs }) : diffTimelines(stored, replayed!, { toleranceMs: options.toleranceMs });
    return {
      dir: options.dir,
      ...(options.against !== undefined ? { against: options.against, againstReplayed } : {}),
      ...(options.influx.line !== undefined ? { line: options.influx.line } : {}),
      from,
      to,
      warmupMs,
      events,
      pages: reader.stats,
      skipped: { count: reader.skippedCount, first: reader.skipped },
      stored,
      replayed: replayed!,
      diff,
      counters: Object.fromEntries(dirs.map((dir, index) => [dir, replays[index]!.counters()])),
      elapsedMs: performance.now() - began,
    };
  } finally {
    for (const replay of replays) await replay.stop();
    reader.close();
  }
}
