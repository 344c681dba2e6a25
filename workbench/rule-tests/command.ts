// `linewatch rules test DIR` without --scenario: runs every case of every `*.test.yaml` in DIR and
// prints the report. Returns the exit code: 0 all passed, 1 a case failed, 2 a test file (or the
// selection of cases) is wrong, so nothing ran.
import { writeFileSync } from 'node:fs';
import { formatLoadError } from '../../rules/locate.js';
import type { RuleTestCase } from './format.js';
import { formatJunit } from './junit.js';
import { formatReport } from './report.js';
import { listRuleTestFiles, passed, prepareRuleTests, runRuleTests } from './run.js';

export const REPORTERS = ['text', 'junit'] as const;

export interface RuleTestFlags {
  reporter: string;
  /** Where the JUnit XML goes (default: stdout, instead of the text report). */
  output?: string;
  /** Only the case of this name. */
  case?: string;
  /** Only the cases whose name matches this regular expression. */
  grep?: string;
  concurrency?: number;
}

export const EXIT_FAILED = 1;
export const EXIT_BAD_TEST = 2;

function selection(flags: RuleTestFlags): ((c: RuleTestCase) => boolean) | string {
  let pattern: RegExp | undefined;
  if (flags.grep !== undefined) {
    try {
      pattern = new RegExp(flags.grep);
    } catch (err) {
      return `--grep ${flags.grep}: not a regular expression (${(err as Error).message})`;
    }
  }
  return (c) => (flags.case === undefined || c.name === flags.case) && (pattern === undefined || pattern.test(c.name));
}

export async function ruleTestCommand(dir: string, flags: RuleTestFlags): Promise<number> {
  if (!(REPORTERS as readonly string[]).includes(flags.reporter)) {
    console.error(`--reporter ${flags.reporter}: use one of ${REPORTERS.join(', ')}`);
    return EXIT_BAD_TEST;
  }
  const select = selection(flags);
  if (typeof select === 'string') {
    console.error(select);
    return EXIT_BAD_TEST;
  }
  const files = listRuleTestFiles(dir);
  if (files.length === 0) {
    console.error(`no rule tests (*.test.yaml) in ${dir}; write one beside the rules (docs/rules.md, "Test"), or pass --scenario FILE to print a timeline`);
    return EXIT_BAD_TEST;
  }
  const prepared = prepareRuleTests(files, select);
  if (prepared.errors.length > 0) {
    for (const e of prepared.errors) console.error(formatLoadError(e));
    console.error(`${prepared.errors.length} error(s) in the rule tests of ${dir}; nothing was run`);
    return EXIT_BAD_TEST;
  }
  const cases = prepared.files.reduce((n, f) => n + f.cases.length, 0);
  if (cases === 0) {
    console.error(`no case of the rule tests in ${dir} matches${flags.case !== undefined ? ` --case "${flags.case}"` : ''}${flags.grep !== undefined ? ` --grep ${flags.grep}` : ''}`);
    return EXIT_BAD_TEST;
  }
  const results = await runRuleTests(dir, prepared.files, { concurrency: flags.concurrency });
  const junitToStdout = flags.reporter === 'junit' && flags.output === undefined;
  if (flags.reporter === 'junit') {
    const xml = formatJunit(results);
    if (flags.output !== undefined) writeFileSync(flags.output, xml);
    else process.stdout.write(xml);
  }
  if (!junitToStdout) for (const line of formatReport(results)) console.log(line);
  return results.every((f) => f.cases.every(passed)) ? 0 : EXIT_FAILED;
}
