// `linewatch rules backtest DIR --influx URL --from T1 [--to T2]`: the rules replayed over the
// device events stored in InfluxDB and compared with what was stored (workbench/backtest/).
import { existsSync } from 'node:fs';
import type { Command } from 'commander';
import { loadConfig } from '../../config/load.js';
import { parseInfluxUrl } from '../../lib/influx-url.js';
import { rootLogger } from '../../lib/log.js';
import { TIME_FORMS } from '../../lib/time-arg.js';
import { engineSettings } from '../../rules/config.js';
import { formatLoadError, loadRuleDir } from '../../rules/load.js';
import { durationSchema } from '../../rules/schema.js';
import { runBacktest } from '../../workbench/backtest/backtest.js';
import { DEFAULT_PAGE_ROWS } from '../../workbench/backtest/history.js';
import { backtestJson, formatBacktest } from '../../workbench/backtest/report.js';
import { DEFAULT_TOLERANCE_MS } from '../../contracts/timeline-tolerance.js';
import { countsFromNow, storedNow } from '../../workbench/stored-now.js';
import { isSameTimeline } from '../../workbench/timeline-diff.js';
import { UserError } from '../errors.js';
import { timeFlag } from '../flags.js';

interface BacktestFlags {
  influx: string;
  from: string;
  to: string;
  line?: string;
  against?: string;
  database?: string;
  json?: boolean;
  tolerance?: string;
  warmup?: string;
  pageSize?: string;
}

export function registerBacktest(rules: Command): void {
  rules
    .command('backtest <dir>')
    .description(
      'replay the rules in DIR over the device events stored in InfluxDB for a time range (no command is sent: the engine runs on a private broker) and compare the commands and alerts they would have made with what was stored; exits 0 with no differences, 1 with differences',
    )
    .requiredOption('--influx <url>', 'InfluxDB 1.x base URL the historian writes to, e.g. http://127.0.0.1:8086 (credentials in the URL are used)')
    .requiredOption('--from <time>', `start of the range: ${TIME_FORMS}`)
    .option('--to <time>', 'end of the range (exclusive), same forms', 'now')
    .option('--line <id>', 'only this line (default: every line stored)')
    .option('--against <dir>', 'compare with a second rules folder replayed over the same events, instead of with what was stored')
    .option('--database <name>', 'InfluxDB database (default: historian.database)')
    .option('--tolerance <duration>', `how far apart a stored and a replayed item may be and still be the same, e.g. 2s (default ${DEFAULT_TOLERANCE_MS / 1000}s)`)
    .option('--warmup <duration>', 'replay this much history before --from as well (not compared), so windows and timers are warm, e.g. 10m (default 0)')
    .option('--page-size <rows>', `rows per chunk of each measurement's InfluxDB stream and per page replayed: bounds the memory used (default ${DEFAULT_PAGE_ROWS})`)
    .option('--json', 'print the result as one JSON object')
    .action(async (dir: string, flags: BacktestFlags, command: Command) => {
      // The report is the output; log lines would be mixed into it. The replayed engine's warnings
      // (e.g. a device reporting another speed than it commanded: the devices obeyed the live engine) are expected.
      if (!process.env.LINEWATCH_LOG_LEVEL) rootLogger.level = 'error';
      // `rules --config FILE` (the parent's flag): its rules: settings and historian: database.
      const config = loadConfig((command.optsWithGlobals() as { config?: string }).config);
      const settings = engineSettings(config.rules);
      for (const [flag, folder] of [['DIR', dir], ['--against', flags.against]] as const) {
        if (folder === undefined) continue;
        if (!existsSync(folder)) throw new UserError(`${flag}: the rules folder ${folder} does not exist; pass a folder of rule YAML files`);
        const problems = loadRuleDir(folder).errors;
        if (problems.length > 0) throw new UserError(`${flag}: ${problems.length} error(s) in ${folder}:\n  ${problems.map(formatLoadError).join('\n  ')}`);
      }
      try {
        parseInfluxUrl(flags.influx);
      } catch (err) {
        throw new UserError(`--influx: ${(err as Error).message}`);
      }
      const database = flags.database ?? config.historian.database;
      // "now" of the stored history: its devices' time when that is ahead of the host's (docs/rules.md#which-time).
      const now = countsFromNow(flags.from) || countsFromNow(flags.to) ? await storedNow({ url: flags.influx, database, requestTimeoutMs: config.historian.requestTimeoutMs }, Date.now(), flags.line) : Date.now();
      const from = timeFlag('--from', flags.from, now);
      const to = timeFlag('--to', flags.to, now);
      if (!(from < to)) throw new UserError(`--from ${flags.from} (${new Date(from).toISOString()}) must be before --to ${flags.to} (${new Date(to).toISOString()})`);
      const result = await runBacktest({
        dir,
        against: flags.against,
        influx: {
          url: flags.influx,
          database,
          line: flags.line,
          pageRows: flags.pageSize === undefined ? undefined : rows('--page-size', flags.pageSize),
          requestTimeoutMs: config.historian.requestTimeoutMs,
        },
        from,
        to,
        warmupMs: flags.warmup === undefined ? undefined : duration('--warmup', flags.warmup),
        toleranceMs: flags.tolerance === undefined ? undefined : duration('--tolerance', flags.tolerance),
        settings,
      });
      if (flags.json) console.log(JSON.stringify(backtestJson(result)));
      else for (const line of formatBacktest(result)) console.log(line);
      process.exitCode = isSameTimeline(result.diff) ? 0 : 1;
    });
}

function duration(flag: string, value: string): number {
  const parsed = durationSchema.safeParse(value);
  if (!parsed.success) throw new UserError(`${flag} ${value}: expected a duration such as 500ms, 2s, 10m or 1h`);
  return parsed.data;
}

function rows(flag: string, value: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1) throw new UserError(`${flag} ${value}: expected a whole number of rows, at least 1`);
  return n;
}
