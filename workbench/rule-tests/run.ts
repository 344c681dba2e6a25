// Runs rule tests: finds the `*.test.yaml` of a folder, checks every file (and the scenario files
// its cases name) before anything runs, then runs each case on its own broker and engine
// (runScenario) — a few at a time — and judges its expectations.
import { readdirSync } from 'node:fs';
import { basename, join } from 'node:path';
import { isRuleTestFile } from '../../rules/load.js';
import type { LoadError } from '../../rules/locate.js';
import { loadScenarioFile, type Scenario } from '../../simulators/scenario.js';
import { defaultDuration, runScenario, type ScenarioRunResult } from '../scenario-run.js';
import { checkExpectations, type Verdict } from './expectations.js';
import { loadRuleTestFile, type RuleTestCase, type RuleTestFile } from './format.js';
import { ScriptedLine, scriptEnd } from './scripted-line.js';

/** Cases run at once: each starts a broker and an engine; the machines we target have 2 cores. */
export const DEFAULT_CONCURRENCY = 2;
/** An inline scenario runs this long past its last message, unless the case gives a duration. */
export const INLINE_TAIL_MS = 60_000;

/** A case ready to run: its scenario loaded. */
interface PreparedCase {
  testCase: RuleTestCase;
  scenario?: Scenario;
}

export interface PreparedFile {
  file: string;
  cases: PreparedCase[];
}

export interface CaseResult {
  name: string;
  verdicts: Verdict[];
  /** The run, for the report's timeline (absent when the run itself failed). */
  run?: ScenarioRunResult;
  /** The run threw (not an expectation that failed). */
  error?: string;
  /** Wall-clock time the case took (JUnit's time; never judged). */
  elapsedMs: number;
}

export interface FileResult {
  file: string;
  cases: CaseResult[];
}

export const passed = (c: CaseResult): boolean => c.error === undefined && c.verdicts.every((v) => v.ok);

/** The rule test files of a folder, sorted. */
export function listRuleTestFiles(dir: string): string[] {
  return readdirSync(dir)
    .filter(isRuleTestFile)
    .sort()
    .map((f) => join(dir, f));
}

/**
 * Reads and checks every test file and the scenario files their cases name; `select` keeps the
 * cases to run. Any error means nothing runs: a test that cannot be read is no test.
 */
export function prepareRuleTests(files: readonly string[], select: (testCase: RuleTestCase) => boolean = () => true): { files: PreparedFile[]; errors: LoadError[] } {
  const errors: LoadError[] = [];
  const scenarios = new Map<string, Scenario | Error>();
  const prepared: PreparedFile[] = [];
  for (const path of files) {
    const loaded = loadRuleTestFile(path);
    errors.push(...loaded.errors);
    if (!loaded.file) continue;
    const cases = loaded.file.cases.filter(select).map((testCase): PreparedCase => {
      if (!('file' in testCase.scenario)) return { testCase };
      const scenarioFile = testCase.scenario.file;
      if (!scenarios.has(scenarioFile)) {
        try {
          scenarios.set(scenarioFile, loadScenarioFile(scenarioFile));
        } catch (err) {
          scenarios.set(scenarioFile, err as Error);
        }
      }
      const scenario = scenarios.get(scenarioFile)!;
      if (scenario instanceof Error) {
        errors.push({ file: basename(path), ruleId: testCase.name, message: `scenario: ${scenario.message}` });
        return { testCase };
      }
      return { testCase, scenario };
    });
    prepared.push({ file: (loaded.file satisfies RuleTestFile).file, cases });
  }
  return { files: prepared, errors };
}

async function runCase(dir: string, { testCase, scenario }: PreparedCase): Promise<CaseResult> {
  const started = Date.now();
  try {
    const source = 'events' in testCase.scenario ? testCase.scenario.events : undefined;
    const durationMs = testCase.durationMs ?? (scenario ? defaultDuration(scenario) : scriptEnd(source ?? []) + INLINE_TAIL_MS);
    const run = await runScenario({
      dir,
      ...(scenario ? { scenario } : { source: (startTime: number) => new ScriptedLine(source ?? [], startTime) }),
      seed: testCase.seed,
      line: testCase.line,
      durationMs,
      alarmRequests: testCase.operator,
    });
    return { name: testCase.name, verdicts: checkExpectations(testCase.expect, run), run, elapsedMs: Date.now() - started };
  } catch (err) {
    return { name: testCase.name, verdicts: [], error: (err as Error).message, elapsedMs: Date.now() - started };
  }
}

/** Runs every case of every file against the rules in `dir`, `concurrency` at a time; results in file and case order. */
export async function runRuleTests(dir: string, files: readonly PreparedFile[], options: { concurrency?: number; onCase?: (file: string, result: CaseResult) => void } = {}): Promise<FileResult[]> {
  const jobs = files.flatMap((f, fileIndex) => f.cases.map((c, caseIndex) => ({ file: f.file, fileIndex, caseIndex, prepared: c })));
  const results: FileResult[] = files.map((f) => ({ file: f.file, cases: [] }));
  let next = 0;
  const worker = async (): Promise<void> => {
    for (let job = jobs[next++]; job; job = jobs[next++]) {
      const result = await runCase(dir, job.prepared);
      results[job.fileIndex]!.cases[job.caseIndex] = result;
      options.onCase?.(job.file, result);
    }
  };
  const concurrency = Math.max(1, options.concurrency ?? DEFAULT_CONCURRENCY);
  await Promise.all(Array.from({ length: Math.min(concurrency, jobs.length) }, worker));
  return results;
}
