// `linewatch rules` — run the rules engine against a broker; `rules check DIR` lints rule files;
// `rules test DIR` runs the rule tests beside them (workbench/rule-tests/); `rules test DIR --scenario FILE`
// runs them against the simulated line in simulated time and prints the timeline.
import { existsSync } from 'node:fs';
import { resolve } from 'node:path';
import type { Command } from 'commander';
import { brokerList } from '../flags.js';
import { loadConfig } from '../../config/load.js';
import { rootLogger } from '../../lib/log.js';
import { formatLoadError, loadRuleDir } from '../../rules/load.js';
import { formatTimeline, runScenario } from '../../workbench/scenario-run.js';
import { DEFAULT_CONCURRENCY } from '../../workbench/rule-tests/run.js';
import { ruleTestCommand, type RuleTestFlags } from '../../workbench/rule-tests/command.js';
import { durationSchema } from '../../rules/schema.js';
import { LineModel } from '../../simulators/model.js';
import { loadScenarioFile } from '../../simulators/scenario.js';
import { UserError } from '../errors.js';
import { connectBus, mqttPassword, runUntilSignal, serviceClientId, withHealthOptions, type HealthFlags } from '../standalone.js';
import { rulesModule } from '../../rules/module.js';

interface RunFlags extends HealthFlags {
  config?: string;
  broker?: string;
  dir?: string;
  stateFile?: string;
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

function integer(value: string): number {
  const n = Number(value);
  if (!Number.isInteger(n)) throw new UserError(`"${value}" is not a whole number`);
  return n;
}

function requireDir(dir: string): string {
  if (!existsSync(dir)) throw new UserError(`the rules folder ${dir} does not exist; pass a folder of rule YAML files`);
  return dir;
}

export function registerRules(program: Command): void {
  const command = program
    .command('rules')
    .description('run the rules engine against an MQTT broker (or: rules check DIR, rules test DIR [--scenario FILE])')
    .option('--broker <url>', 'MQTT broker URL, or several separated by commas (the next one is used when the current one goes away), e.g. mqtt://127.0.0.1:1883 (required to run the engine)', brokerList)
    .option('--dir <dir>', 'folder of rule YAML files, reloaded on change (default: rules.dir, rules/examples)')
    .option('--state-file <file>', 'windows, timers and alerts kept across restarts (default: rules.stateFile)')
    .option('--username <name>', 'MQTT username (an account with the rules role)')
    .option('--password <password>', 'MQTT password (or set LINEWATCH_MQTT_PASSWORD)')
    .option('--client-id <id>', 'MQTT client id; kept stable so the broker holds QoS 1 messages while the engine restarts (default: the --username, else linewatch-rules)')
    .option('--config <file>', 'linewatch.yaml (its rules: section)');
  const rules = withHealthOptions(command, rulesModule).action(async (flags: RunFlags) => {
      if (!flags.broker) throw new UserError('rules: --broker URL is required to run the engine (or use `linewatch rules check DIR` / `linewatch rules test DIR --scenario FILE`)');
      const config = loadConfig(flags.config, { rules: { dir: flags.dir, stateFile: flags.stateFile } });
      const { enabled: _enabled, dir, stateFile, ...settings } = config.rules;
      requireDir(dir);
      const problems = loadRuleDir(dir).errors;
      if (problems.length > 0) throw new UserError(`${problems.length} error(s) in ${dir}:\n  ${problems.map(formatLoadError).join('\n  ')}`);
      const bus = await connectBus(flags.broker, { username: flags.username, password: mqttPassword(flags.password), clientId: flags.clientId ?? serviceClientId(flags.username, 'linewatch-rules'), clean: false });
      const engine = rulesModule.create({ bus, dir, stateFile, settings });
      await runUntilSignal({ module: rulesModule, service: engine, bus, flags });
      console.log(`linewatch rules: ${engine.rules().rules.length} rules from ${resolve(dir)} running against ${flags.broker}; Ctrl-C stops`);
    });

  rules
    .command('check <dir>')
    .description(
      'lint the rule files in DIR in one run: schema errors, expressions, {placeholders} of targets and messages, duplicate ids and, with --scenario, targets that are not devices of the line; prints every error as file:line [rule id]: what is wrong; exits 1 if any. Without --scenario, literal targets are not checked against devices (there is no device list to check them against).',
    )
    .option('--scenario <file>', "scenario YAML whose layout gives the line's devices (e.g. simulators/scenarios/demo.yaml): a literal command target must be one of them")
    .option('--line <id>', 'line id of those devices (rules matching other lines are not checked against them)', 'A')
    .action((dir: string, flags: CheckFlags) => {
      requireDir(dir);
      const devices = flags.scenario === undefined ? undefined : { line: flags.line, ids: new Set(new LineModel({ seed: 1, scenario: loadScenarioFile(flags.scenario), startTime: 0 }).deviceIds()) };
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
      const set = loadRuleDir(dir);
      if (set.errors.length > 0) throw new UserError(`${set.errors.length} error(s) in ${dir}:\n  ${set.errors.map(formatLoadError).join('\n  ')}`);
      if (flags.scenario === undefined) {
        process.exitCode = await ruleTestCommand(dir, flags);
        return;
      }
      const scenario = loadScenarioFile(flags.scenario);
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
}
