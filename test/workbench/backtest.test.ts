// `rules backtest` against a real influxd: a demo run is recorded by the real historian (the
// example rules on the simulated line, runScenario, so the stored commands and alerts are the
// live engine's), then replayed from InfluxDB.
import { spawnSync } from 'node:child_process';
import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { historianConfigSchema } from '../../historian/config.js';
import { Historian } from '../../historian/index.js';
import { loadScenarioFile } from '../../simulators/scenario.js';
import { runBacktest, type BacktestResult } from '../../workbench/backtest/backtest.js';
import { HistoryReader, type HistoryEvent, type PageStats } from '../../workbench/backtest/history.js';
import { runScenario, type ScenarioRunResult } from '../../workbench/scenario-run.js';
import { describeItem, diffTimelines, isSameTimeline, type TimelineCommand, type TimelineItem } from '../../workbench/timeline-diff.js';
import { startTestInflux, type TestInflux } from '../harness/influx.js';

const EXAMPLES = fileURLToPath(new URL('../../rules/examples', import.meta.url));
const DEMO = fileURLToPath(new URL('../../simulators/scenarios/demo.yaml', import.meta.url));
const CLI = fileURLToPath(new URL('../../bin/linewatch.js', import.meta.url));
const DATABASE = 'linewatch';
/** The demo's overheat, jam, starvation and silence, and the overheat's end (the speed restored at about 694 s). */
const DURATION_MS = 720_000;

let influx: TestInflux;
let dir: string;
let hotter: string;
/** Device time of the recording's start: recent, inside the raw retention policy (7 days). */
let from: number;
let to: number;
let live: ScenarioRunResult;

/** Whole timeline items as text with their time since the start, for comparisons that read well. */
const listed = (items: TimelineItem[]): string[] => items.map((item) => `${((item.at - from) / 1000).toFixed(1)} s ${describeItem(item)}`);

beforeAll(async () => {
  influx = await startTestInflux();
  dir = mkdtempSync(join(tmpdir(), 'lw-backtest-'));
  // The same rules with the overheat threshold at 82 °C instead of 80 °C: the recorded motor passes 82 °C about 5 s later (at 98 s).
  hotter = join(dir, 'hotter');
  cpSync(EXAMPLES, hotter, { recursive: true });
  const file = join(hotter, 'demo-line.yaml');
  const original = readFileSync(file, 'utf8');
  const changed = original.replace('when: values.motorTemp > 80', 'when: values.motorTemp > 82');
  expect(changed).not.toBe(original);
  writeFileSync(file, changed);

  from = Math.floor(Date.now() / 60_000) * 60_000 - 3_600_000;
  to = from + DURATION_MS;
  live = await runScenario({
    dir: EXAMPLES,
    scenario: loadScenarioFile(DEMO),
    seed: 1,
    startTime: from,
    durationMs: DURATION_MS,
    beside: async (bus) => {
      const historian = new Historian({ bus, config: historianConfigSchema.parse({ influxUrl: influx.url, database: DATABASE, flushIntervalMs: 100 }), dataDir: join(dir, 'historian') });
      await historian.start();
      return {
        async stop() {
          await historian.flush(30_000);
          await historian.stop();
        },
      };
    },
  });
}, 180_000);

afterAll(async () => {
  await influx?.stop();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

/** The stored device events of the recorded range as the backtest reads them, `pageRows` rows a chunk. */
async function readEvents(pageRows: number): Promise<{ events: HistoryEvent[]; stats: PageStats }> {
  const reader = new HistoryReader({ url: influx.url, database: DATABASE, line: 'A', pageRows });
  try {
    const events: HistoryEvent[] = [];
    for await (const page of reader.events(from, to)) events.push(...page);
    return { events, stats: reader.stats };
  } finally {
    reader.close();
  }
}

const backtest = (options: { rules?: string; against?: string; pageRows?: number } = {}): Promise<BacktestResult> =>
  runBacktest({ dir: options.rules ?? EXAMPLES, against: options.against, influx: { url: influx.url, database: DATABASE, line: 'A', pageRows: options.pageRows }, from, to });

describe('rules backtest on a recorded demo run', () => {
  it('the same rules reproduce what the live engine stored: every command and alert, no differences', async () => {
    const liveCommands = live.timeline.filter((entry) => entry.event.type === 'command').length;
    const result = await backtest();
    // What was stored is what the live engine did (not an empty comparison).
    expect(result.stored.filter((item) => item.kind === 'command')).toHaveLength(liveCommands);
    expect(liveCommands).toBeGreaterThanOrEqual(10);
    expect(result.stored.some((item) => item.kind === 'alarm' && item.state === 'raised')).toBe(true);
    expect({ missing: listed(result.diff.missing), added: listed(result.diff.added), changed: result.diff.changed }).toEqual({ missing: [], added: [], changed: [] });
    expect(result.diff.same).toBe(result.stored.length);
    // The device events came back as the engine took them: none refused, none late or from the future.
    const counters = result.counters[EXAMPLES]!;
    expect({ invalid: counters.invalid, late: counters.late, future_ts: counters.future_ts, acks_unknown: counters.acks_unknown ?? 0, outcome_expired: counters.outcome_expired ?? 0 }).toEqual({ invalid: 0, late: 0, future_ts: 0, acks_unknown: 0, outcome_expired: 0 });
    expect(result.events).toBeGreaterThan(DURATION_MS / 1000 * 10);
    expect(result.skipped.count).toBe(0);
  });

  it('a changed threshold shows what it changes: the overheat alert moves later and its first slow-down is missing; the rest is the same', async () => {
    const result = await backtest({ rules: hotter });
    const first = result.stored.find((item): item is TimelineCommand => item.kind === 'command' && item.target === 'line-ctl' && item.action === 'set_speed')!;
    expect(first.params).toEqual({ speed: 32 });
    const raised = result.stored.find((item) => item.kind === 'alarm' && item.id === 'conveyor-overheat:A/conv-2' && item.state === 'raised')!;
    // At 82 °C the rule fires when the recorded motor has been above 82 °C for 10 s: about 5 s later.
    // The recorded line then already runs at 32 m/min (the live engine's first step), so the ramp
    // from there is the stored one (25.6, 20.48, 20 at their times): only the first step is missing.
    expect({ missing: listed(result.diff.missing).sort(), changed: result.diff.changed }).toEqual({ missing: listed([raised, first]).sort(), changed: [] });
    expect(result.diff.added).toHaveLength(1);
    expect(result.diff.added[0]).toMatchObject({ kind: 'alarm', id: 'conveyor-overheat:A/conv-2', state: 'raised' });
    const moved = result.diff.added[0]!.at - raised.at;
    expect(moved).toBeGreaterThan(2_000);
    expect(moved).toBeLessThan(8_000);
    expect(result.diff.same).toBe(result.stored.length - 2);
  });

  it('--against compares two rule versions on the same history: the differences are those of the changed threshold', async () => {
    const [alone, against] = await Promise.all([backtest({ rules: hotter }), backtest({ against: hotter })]);
    expect(against.againstReplayed).toBeDefined();
    expect(against.diff.missing.length + against.diff.added.length).toBeGreaterThan(0);
    // The examples replayed are what was stored (first test), so against them the hotter rules differ as against the store:
    // the same items missing and added, at the same times (within the tolerance: the live engine ran 100 ms steps).
    expect(isSameTimeline(diffTimelines(alone.diff.missing, against.diff.missing))).toBe(true);
    expect(isSameTimeline(diffTimelines(alone.diff.added, against.diff.added))).toBe(true);
    expect(against.diff.changed.map((c) => describeItem(c.after))).toEqual(alone.diff.changed.map((c) => describeItem(c.after)));
  });

  it('reads each measurement as one chunked stream merged in device-time order: the events of a plain query of the range, sorted by time, line, device, seq, kind', async () => {
    const streamed = await readEvents(10_000);
    // The reference: the whole range at once per measurement (one plain answer, not chunked), sorted here.
    const kinds = ['state', 'telemetry', 'status'];
    const reference: { kind: string; device: string; ts: number; seq?: number }[] = [];
    for (const kind of kinds) {
      const [result] = await influx.query(`SELECT * FROM "${kind}" WHERE "line" = 'A' AND time >= ${from}ms AND time < ${to}ms`, DATABASE);
      // No device went offline in the recording: no status rows, no series.
      const series = result?.series?.[0];
      if (!series) continue;
      const column = (name: string): number => series.columns.indexOf(name);
      for (const values of series.values) {
        const seq = values[column('seq')];
        reference.push({ kind, device: values[column('device')] as string, ts: values[0] as number, ...(typeof seq === 'number' ? { seq } : {}) });
      }
    }
    reference.sort((x, y) => x.ts - y.ts || (x.device < y.device ? -1 : x.device > y.device ? 1 : 0) || (x.seq ?? 0) - (y.seq ?? 0) || kinds.indexOf(x.kind) - kinds.indexOf(y.kind));
    expect(reference.length).toBeGreaterThan(DURATION_MS / 1000 * 10);
    expect(streamed.events.map((event) => ({ kind: event.kind, device: event.device, ts: event.payload.ts, ...(event.payload.seq !== undefined ? { seq: event.payload.seq } : {}) }))).toEqual(reference);
    // One query per measurement, not one per window.
    expect(streamed.stats.queries).toBe(3);
  });

  it('memory stays bounded by the chunk size: with 50 rows a chunk the history comes in many chunks, at most 4 × 50 rows are held, and the events and the backtest are the same', async () => {
    const [small, large] = await Promise.all([readEvents(50), readEvents(1_000_000)]);
    expect(small.stats.chunks).toBeGreaterThanOrEqual(small.events.length / 50);
    expect(small.stats.largestChunk).toBeLessThanOrEqual(50);
    // Three streams' chunks and the page being filled (plus the rest of a millisecond: a few rows).
    expect(small.stats.peakRows).toBeLessThanOrEqual(4 * 50 + 20);
    // One chunk per measurement that has rows (the recording has no status rows).
    expect(large.stats.chunks).toBe(new Set(large.events.map((event) => event.kind)).size);
    expect(large.stats.peakRows).toBeGreaterThan(small.events.length / 2);
    expect(small.events).toEqual(large.events);
    const [paged, onePage] = await Promise.all([backtest({ pageRows: 50 }), backtest({ pageRows: 1_000_000 })]);
    expect(paged.events).toBe(onePage.events);
    expect(paged.replayed).toEqual(onePage.replayed);
    expect(paged.stored).toEqual(onePage.stored);
  });
});

describe('rules backtest when InfluxDB stops sending', () => {
  it('a stream InfluxDB keeps waiting longer than the request timeout fails with an error naming InfluxDB and the wait', async () => {
    // influxd stopped (SIGSTOP): the request is taken by the kernel, nothing is answered.
    process.kill(influx.pid(), 'SIGSTOP');
    try {
      await expect(runBacktest({ dir: EXAMPLES, influx: { url: influx.url, database: DATABASE, line: 'A', requestTimeoutMs: 1_000 }, from, to })).rejects.toThrow(
        new RegExp(`InfluxDB at ${influx.url} could not be queried for \\w+: no answer within 1000 ms; check --influx`),
      );
    } finally {
      process.kill(influx.pid(), 'SIGCONT');
    }
  });
});

describe('linewatch rules backtest (CLI)', () => {
  // The log level as a user has it (unset): the report alone on stdout.
  const env = Object.fromEntries(Object.entries(process.env).filter(([name]) => name !== 'LINEWATCH_LOG_LEVEL'));
  const cli = (...args: string[]) => spawnSync(process.execPath, [CLI, 'rules', 'backtest', ...args], { encoding: 'utf8', timeout: 120_000, env });

  it('exits 0 with no differences, 1 with differences; --json is one object', () => {
    const range = ['--influx', influx.url, '--from', new Date(from).toISOString(), '--to', String(to), '--line', 'A'];
    const same = cli(EXAMPLES, ...range);
    expect(same.stderr).toBe('');
    expect(same.stdout).toMatch(/# no differences: \d+ items the same within 2 s/);
    expect(same.status).toBe(0);
    const changed = cli(hotter, ...range, '--json');
    expect(changed.status).toBe(1);
    const report = JSON.parse(changed.stdout) as { differences: number; missing: { time: string; target: string }[] };
    expect(report.differences).toBeGreaterThan(0);
    expect(report.missing.some((item) => item.target === 'line-ctl')).toBe(true);
  });

  it('bad input is refused with the flag named', () => {
    const bad = cli(EXAMPLES, '--influx', influx.url, '--from', 'yesterday');
    expect(bad.status).toBe(1);
    expect(bad.stderr).toContain('linewatch: --from yesterday: expected "now", a relative time like "-6h"');
    const empty = cli(EXAMPLES, '--influx', influx.url, '--from', new Date(from).toISOString(), '--to', String(to), '--line', 'Z');
    expect(empty.status).toBe(1);
    expect(empty.stderr).toContain('no device events are stored for line Z between');
    const database = cli(EXAMPLES, '--influx', influx.url, '--from', new Date(from).toISOString(), '--to', String(to), '--database', 'nope');
    expect(database.status).toBe(1);
    expect(database.stderr).toMatch(/has no database "nope" \(it has: [^)]*linewatch[^)]*\); check --database/);
  });
});
