// `linewatch rules` — run the rules engine against a broker; `rules check DIR` lints rule files;
// `rules test DIR` runs the rule tests beside them (workbench/rule-tests/); `rules test DIR --scenario FILE`
// runs them against the simulated line in simulated time and prints the timeline.
import { existsSync } from 'node:fs';
import { basename, dirname, extname, join, resolve } from 'node:path';
import type { Command } from 'commander';
import { brokerList } from '../flags.js';
import { loadConfig } from '../../config/load.js';
import { ownershipLabel, ownershipOf } from '../../contracts/line-workers.js';
import { rootLogger } from '../../lib/log.js';
import { formatLoadError, loadRuleDir } from '../../rules/load.js';
import { formatTimeline, runScenario, scenarioLine } from '../../workbench/scenario-run.js';
import { DEFAULT_CONCURRENCY } from '../../workbench/rule-tests/run.js';
import { ruleTestCommand, type RuleTestFlags } from '../../workbench/rule-tests/command.js';
import { formatShadowDiff, shadowDiff } from '../../workbench/shadow-diff.js';
import { countsFromNow, storedNow } from '../../workbench/stored-now.js';
import { durationSchema } from '../../rules/schema.js';
import { loadScenarioFile } from '../../simulators/scenario.js';
import { UserError } from '../errors.js';
import { timeFlag } from '../flags.js';
import { TIME_FORMS } from '../../lib/time-arg.js';
import { connectBus, mqttPassword, runUntilSignal, withHealthOptions, withWorkerOptions, workerClientId, type HealthFlags, type WorkerFlags } from '../standalone.js';
import { engineSettings } from '../../rules/config.js';
import { rulesModule } from '../../rules/module.js';
import { registerBacktest } from './rules-backtest.js';

interface RunFlags extends HealthFlags, WorkerFlags {
  config?: string;
  broker?: string;
  dir?: string;
  stateFile?: string;
  shadow?: string;
  username?: string;
  password?: string;
  clientId?: string;
}

interface CheckFlags {
  scenario?: string;
  line: string;
}

interface TestFlags extends RuleTestFlags {
  scenario?: string;
  seed: number;
  duration?: string;
  line: string;
  json?: boolean;
}

interface DiffFlags {
  influx: string;
  database?: string;
  from: string;
  to: string;
  line?: string;
  toleranceMs?: number;
  json?: boolean;
  config?: string;
}

function integer(value: string): number {
  const n = Number(value);
  if (!Number.isInteger(n)) throw new UserError(`"${value}" is not a whole number`);
  return n;
}

/** A worker's state file: rules-state.json → rules-state.<worker>.json beside it (unchanged for every line). */
export function workerStateFile(stateFile: string, worker: string | undefined): string {
  if (worker === undefined) return stateFile;
  const extension = extname(stateFile);
  return join(dirname(stateFile), `${basename(stateFile, extension)}.${worker}${extension}`);
}

function requireDir(dir: string): string {
  if (!existsSync(dir)) throw new UserError(`the rules folder ${dir} does not exist; pass a folder of rule YAML files`);
  return dir;
}

export function registerRules(program: Command): void {
  const command = program
    .command('rules')
    .description('run the rules engine against an MQTT broker (or: rules check DIR, rules test DIR [--scenario FILE], rules backtest DIR, rules diff)')
    .option('--broker <url>', 'MQTT broker URL, or several separated by commas (the next one is used when the current one goes away), e.g. mqtt://127.0.0.1:1883 (required to run the engine)', brokerList)
    .option('--dir <dir>', 'folder of rule YAML files, reloaded on change (default: rules.dir, rules/examples)')
    .option('--state-file <file>', 'windows, timers and alerts kept across restarts (default: rules.stateFile; a worker of some lines: rules-state.<worker>.json beside it)')
    .option('--shadow <dir>', 'a shadow rule set run beside them on the same events; its commands and alarms go only to lw/_shadow/, never to a device (default: rules.shadowDir)')
    .option('--username <name>', 'MQTT username (an account with the rules role)')
    .option('--password <password>', 'MQTT password (or set LINEWATCH_MQTT_PASSWORD)')
    .option('--client-id <id>', 'MQTT client id; kept stable so the broker holds QoS 1 messages while the engine restarts (default: the --username, else linewatch-rules)')
    .option('--config <file>', 'linewatch.yaml (its rules: section)');
  const rules = withHealthOptions(withWorkerOptions(command, 'rules'), rulesModule).action(async (flags: RunFlags) => {
      if (!flags.broker) throw new UserError('rules: --broker URL is required to run the engine (or use `linewatch rules check DIR` / `linewatch rules test DIR --scenario FILE`)');
      const config = loadConfig(flags.config, { rules: { dir: flags.dir, shadowDir: flags.shadow, lines: flags.lines, worker: flags.worker } });
      const { dir, stateFile: configuredStateFile, shadowDir } = config.rules;
      const settings = engineSettings(config.rules);
      const lines = ownershipOf(config.rules, 'rules');
      // Each worker its own state file (the engine locks it) and its own persistent session.
      const stateFile = flags.stateFile ?? workerStateFile(configuredStateFile, ownershipLabel(lines));
      for (const [folder, what] of [[dir, ''], ...(shadowDir === null ? [] : [[shadowDir, 'the shadow rules ']])] as const) {
        requireDir(folder);
        const problems = loadRuleDir(folder).errors;
        if (problems.length > 0) throw new UserError(`${problems.length} error(s) in ${what}${folder}:\n  ${problems.map(formatLoadError).join('\n  ')}`);
      }
      const bus = await connectBus(flags.broker, { username: flags.username, password: mqttPassword(flags.password), clientId: flags.clientId ?? workerClientId(flags.username, 'linewatch-rules', config.rules, 'rules'), clean: false });
      const engine = rulesModule.create({ bus, dir, shadowDir, stateFile, settings, lines });
      await runUntilSignal({ module: rulesModule, service: engine, bus, flags });
      const shadow = engine.shadowRules();
      const beside = shadow && shadowDir !== null ? `, a shadow set of ${shadow.rules.length} rules from ${resolve(shadowDir)} beside them (its commands and alarms only on lw/_shadow/)` : '';
      console.log(`linewatch rules: ${engine.rules().rules.length} rules from ${resolve(dir)}${beside} running against ${flags.broker} for lines: ${engine.info().lines}, state in ${stateFile}; Ctrl-C stops`);
    });

  rules
    .command('check <dir>')
    .description(
      'lint the rule files in DIR in one run: schema errors, expressions, {placeholders} of targets and messages, duplicate ids, the lines: flow orders (duplicates, cycles) and, with --scenario, targets, device("…") ids and flows that are not devices of the line (or not its order); prints every error as file:line [rule id]: what is wrong; exits 1 if any. Without --scenario, literal targets and device("…") ids are checked only on a line whose lines: entry lists its devices (there is no other device list to check them against).',
    )
    .option('--scenario <file>', "scenario YAML whose layout gives the line's devices and flow order (e.g. simulators/scenarios/demo.yaml): a literal command target, a device(\"…\") id and a lines: flow must be among them")
    .option('--line <id>', 'line id of those devices (rules matching other lines are not checked against them)', 'A')
    .action((dir: string, flags: CheckFlags) => {
      requireDir(dir);
      const devices = flags.scenario === undefined ? undefined : scenarioLine(loadScenarioFile(flags.scenario), flags.line);
      const set = loadRuleDir(dir, new Map(), { devices });
      for (const e of set.errors) console.error(formatLoadError(e));
      if (set.errors.length > 0) {
        console.error(`${set.errors.length} error(s) in ${dir}`);
        process.exitCode = 1;
        return;
      }
      const checked = devices ? `; targets checked against the ${devices.ids.size} devices of line ${devices.line}` : '';
      console.log(`${dir}: ${set.rules.length} rules OK (${set.rules.map((r) => r.id).join(', ')})${checked}`);
    });

  rules
    .command('test <dir>')
    .description(
      'run the rule tests (*.test.yaml) in DIR: every case against the rules in DIR, a readable pass/fail report; exits 1 if a case fails, 2 if a test file is wrong. With --scenario FILE: run the rules against the simulated line in simulated time and print the timeline of alerts and commands (deterministic for a seed)',
    )
    .option('--scenario <file>', 'print the timeline of this scenario YAML (e.g. simulators/scenarios/demo.yaml) instead of running the rule tests')
    .option('--seed <n>', 'with --scenario: simulation seed', integer, 1)
    .option('--duration <time>', 'with --scenario: simulated time to run, e.g. 5m (default: 1 minute after the last scenario event ends)')
    .option('--line <id>', 'with --scenario: line id of the simulated line', 'A')
    .option('--json', 'with --scenario: print the timeline as JSON lines')
    .option('--reporter <name>', 'rule tests: text (the report) or junit (JUnit XML, for CI)', 'text')
    .option('--output <file>', 'rule tests: write the JUnit XML here (the text report still goes to stdout); default: the XML to stdout')
    .option('--case <name>', 'rule tests: run only the case of this name')
    .option('--grep <pattern>', 'rule tests: run only the cases whose name matches this regular expression')
    .option('--concurrency <n>', `rule tests: cases run at once, each on its own broker (default ${DEFAULT_CONCURRENCY})`, integer)
    .action(async (dir: string, flags: TestFlags) => {
      // The timeline is the output; logs (with wall-clock times) would make it differ run to run.
      if (!process.env.LINEWATCH_LOG_LEVEL) rootLogger.level = 'warn';
      requireDir(dir);
      if (flags.scenario === undefined) {
        const ruleSet = loadRuleDir(dir);
        if (ruleSet.errors.length > 0) throw new UserError(`${ruleSet.errors.length} error(s) in ${dir}:\n  ${ruleSet.errors.map(formatLoadError).join('\n  ')}`);
        process.exitCode = await ruleTestCommand(dir, flags);
        return;
      }
      const scenario = loadScenarioFile(flags.scenario);
      // Checked against the simulated line, as `rules check --scenario` does: targets, device("…") ids, the flow order.
      const set = loadRuleDir(dir, new Map(), { devices: scenarioLine(scenario, flags.line) });
      if (set.errors.length > 0) throw new UserError(`${set.errors.length} error(s) in ${dir}:\n  ${set.errors.map(formatLoadError).join('\n  ')}`);
      let durationMs: number | undefined;
      if (flags.duration !== undefined) {
        const d = durationSchema.safeParse(flags.duration);
        if (!d.success) throw new UserError(`--duration ${flags.duration}: expected a duration such as 90s or 5m`);
        durationMs = d.data;
      }
      const result = await runScenario({ dir, scenario, seed: flags.seed, durationMs, line: flags.line });
      if (flags.json) for (const e of result.timeline) console.log(JSON.stringify(e));
      else {
        console.log(`# ${set.rules.length} rules from ${dir}, scenario ${scenario.name}, seed ${flags.seed}, ${(result.durationMs / 1000).toFixed(0)} s simulated`);
        for (const line of formatTimeline(result.timeline)) console.log(line);
        const c = result.counters;
        console.log(`# ${c.alerts_raised ?? 0} alerts raised, ${c.alerts_cleared ?? 0} cleared; ${c.commands_sent ?? 0} commands sent, ${c.outcome_done ?? 0} done, ${c.outcome_blocked ?? 0} blocked, ${c.outcome_expired ?? 0} expired`);
      }
    });

  rules
    .command('diff')
    .description('where the shadow rule set (rules.shadowDir) and the live rules differed over a time range, from what the historian stored: commands and alarm raise/return only in the shadow (+), only live (-) or changed (~), with times')
    .requiredOption('--influx <url>', 'the InfluxDB the historian writes to, e.g. http://127.0.0.1:8086')
    .option('--database <name>', 'its database (default: historian.database, linewatch)')
    .requiredOption('--from <time>', `start of the range: ${TIME_FORMS}`)
    .option('--to <time>', 'end of the range (exclusive), same forms', 'now')
    .option('--line <id>', 'only this line')
    .option('--tolerance-ms <ms>', 'how far apart a live and a shadow item may be and still match (default 2000)', integer)
    .option('--json', 'print the comparison as JSON')
    .option('--config <file>', 'linewatch.yaml (its historian: section)')
    .action(async (flags: DiffFlags) => {
      const config = loadConfig(flags.config, {});
      const influx = { url: flags.influx, database: flags.database ?? config.historian.database, username: config.historian.username, password: config.historian.password };
      // "now" of the stored history: its devices' time when that is ahead of the host's (docs/rules.md#which-time).
      const now = countsFromNow(flags.from) || countsFromNow(flags.to) ? await storedNow(influx, Date.now(), flags.line) : Date.now();
      const result = await shadowDiff({
        influx,
        from: timeFlag('--from', flags.from, now),
        to: timeFlag('--to', flags.to, now),
        line: flags.line,
        toleranceMs: flags.toleranceMs,
      }).catch((err: unknown) => {
        throw new UserError(`rules diff: ${(err as Error).message}`);
      });
      if (flags.json) console.log(JSON.stringify(result));
      else for (const line of formatShadowDiff(result)) console.log(line);
    });
  registerBacktest(rules);
}
