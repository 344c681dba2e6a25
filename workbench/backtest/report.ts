// What `rules backtest` prints: a readable report (the differences in time order, each with its
// time and what differs) or one JSON object (--json).
import { describeItem, isSameTimeline, type TimelineItem } from '../timeline-diff.js';
import type { BacktestResult } from './backtest.js';

/** The report's lines: a header, then one line per difference in time order, then the verdict. */
export function formatBacktest(result: BacktestResult): string[] {
  const { diff, pages } = result;
  const iso = (ms: number): string => new Date(ms).toISOString();
  const since = (ms: number): string => `+${formatDuration(ms - result.from)}`;
  const counts = (items: TimelineItem[]): string => `${items.filter((i) => i.kind === 'command').length} commands, ${items.filter((i) => i.kind === 'alarm').length} alert changes`;
  const lines = [
    `# backtest of ${result.dir}${result.line !== undefined ? ` on line ${result.line}` : ''}, ${iso(result.from)} → ${iso(result.to)} (${formatDuration(result.to - result.from)}${result.warmupMs > 0 ? `, after a ${formatDuration(result.warmupMs)} warm-up` : ''})`,
    `# ${result.events} device events in ${pages.pages} pages (at most ${pages.largestPage} rows each; ${pages.queries} streamed queries, ${pages.chunks} chunks, ${(pages.queryMs / 1000).toFixed(1)} s waiting for InfluxDB), ${(result.elapsedMs / 1000).toFixed(1)} s in all`,
    result.againstReplayed
      ? `# ${result.dir}: ${counts(result.replayed)}; compared with ${result.against}: ${counts(result.againstReplayed)} (stored for the range: ${counts(result.stored)})`
      : `# stored for the range: ${counts(result.stored)}; the rules of ${result.dir} would have made ${counts(result.replayed)}`,
  ];
  if (result.skipped.count > 0) lines.push(`# ${result.skipped.count} stored rows skipped, not device events as the historian writes them (first: ${result.skipped.first.map((s) => `${s.measurement} at ${iso(s.time)}: ${s.why}`).join('; ')})`);
  const rows: { at: number; text: string }[] = [
    ...diff.missing.map((item) => ({ at: item.at, text: `missing  ${iso(item.at)} ${since(item.at)}  ${describeItem(item)}` })),
    ...diff.added.map((item) => ({ at: item.at, text: `added    ${iso(item.at)} ${since(item.at)}  ${describeItem(item)}` })),
    ...diff.changed.map(({ before, after, fields }) => ({
      at: before.at,
      text: `changed  ${iso(before.at)} ${since(before.at)}  ${describeItem(before)}  →  ${describeItem(after)}${after.at !== before.at ? ` at ${iso(after.at)}` : ''} (${fields.join(', ')})`,
    })),
  ];
  rows.sort((x, y) => x.at - y.at);
  for (const row of rows) lines.push(row.text);
  const [baseline, candidate] = result.againstReplayed ? [result.dir, result.against!] : ['stored', result.dir];
  const verdict = isSameTimeline(diff)
    ? `# no differences: ${diff.same} items the same within ${formatDuration(diff.toleranceMs)}`
    : `# ${rows.length} differences (missing: in ${baseline} only; added: in ${candidate} only; changed: ${candidate} differs near the same time), ${diff.same} items the same within ${formatDuration(diff.toleranceMs)}`;
  lines.push(verdict);
  return lines;
}

/** The result as one JSON object: the differences, with ISO times beside the ms. */
export function backtestJson(result: BacktestResult): Record<string, unknown> {
  const timed = (item: TimelineItem): Record<string, unknown> => ({ time: new Date(item.at).toISOString(), ...item });
  return {
    dir: result.dir,
    ...(result.against !== undefined ? { against: result.against } : {}),
    ...(result.line !== undefined ? { line: result.line } : {}),
    from: new Date(result.from).toISOString(),
    to: new Date(result.to).toISOString(),
    warmupMs: result.warmupMs,
    events: result.events,
    pages: result.pages,
    skipped: result.skipped,
    toleranceMs: result.diff.toleranceMs,
    same: result.diff.same,
    differences: result.diff.added.length + result.diff.missing.length + result.diff.changed.length,
    missing: result.diff.missing.map(timed),
    added: result.diff.added.map(timed),
    changed: result.diff.changed.map((c) => ({ before: timed(c.before), after: timed(c.after), fields: c.fields })),
    stored: result.stored.length,
    replayed: result.replayed.length,
    ...(result.againstReplayed ? { againstReplayed: result.againstReplayed.length } : {}),
    counters: result.counters,
    elapsedMs: Math.round(result.elapsedMs),
  };
}

/** 750 ms, 12.5 s, 3 min 20 s, 2 h 5 min. */
function formatDuration(ms: number): string {
  if (ms < 1000) return `${ms} ms`;
  if (ms < 60_000) return `${Number((ms / 1000).toFixed(1))} s`;
  if (ms < 3_600_000) return `${Math.floor(ms / 60_000)} min${ms % 60_000 >= 1000 ? ` ${Math.floor((ms % 60_000) / 1000)} s` : ''}`;
  return `${Math.floor(ms / 3_600_000)} h${ms % 3_600_000 >= 60_000 ? ` ${Math.floor((ms % 3_600_000) / 60_000)} min` : ''}`;
}
