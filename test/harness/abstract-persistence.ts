// The abstract persistence suite aedes-persistence ships for store implementations
// (aedes-persistence/abstract.js, written for node:test), run as vitest tests: each of its cases
// becomes one `it`, given a context with what the suite uses of node:test's `t` — `t.assert`
// (node:assert's functions, counted), `t.plan(n)` (the case fails unless exactly n assertions ran,
// as in node:test) and `t.diagnostic` (kept with the case's failure). Any store can be run
// through it: `abstractPersistenceSuite('redis', () => openRedisStore(...))`.
import assert from 'node:assert';
import { createRequire } from 'node:module';
import { describe, it } from 'vitest';

const require = createRequire(import.meta.url);

type Case = (t: NodeTestContext) => Promise<void>;
interface AbstractSuiteOptions {
  test(name: string, run: Case): void;
  persistence(): Promise<unknown> | unknown;
  /** The message emitter of the suite's broker (default: mqemitter in memory). */
  buildEmitter?: () => unknown;
  /** The store is aedes-persistence's async interface (setup(broker) awaited), which aedes 1.2.0 calls. */
  testAsync: true;
}
const abstractSuite = require('aedes-persistence/abstract.js') as (options: AbstractSuiteOptions) => void;

/** node:assert's functions that node:test puts on `t.assert`. */
const ASSERTIONS = ['deepEqual', 'deepStrictEqual', 'doesNotMatch', 'doesNotReject', 'doesNotThrow', 'equal', 'fail', 'ifError', 'match', 'notDeepEqual', 'notDeepStrictEqual', 'notEqual', 'notStrictEqual', 'ok', 'rejects', 'strictEqual', 'throws'] as const;

interface NodeTestContext {
  assert: Record<(typeof ASSERTIONS)[number], (...args: unknown[]) => unknown>;
  plan(count: number): void;
  diagnostic(message: string): void;
}

/** Runs one case of the suite with a node:test-like context; throws what node:test would report. */
async function runCase(run: Case): Promise<void> {
  let assertions = 0;
  let planned: number | undefined;
  const diagnostics: string[] = [];
  const functions = assert as unknown as Record<string, (...args: unknown[]) => unknown>;
  const counted = Object.fromEntries(
    ASSERTIONS.map((name) => [
      name,
      (...args: unknown[]) => {
        assertions++;
        return functions[name]!(...args);
      },
    ]),
  ) as NodeTestContext['assert'];
  const context: NodeTestContext = { assert: counted, plan: (count) => (planned = count), diagnostic: (message) => void diagnostics.push(message) };
  try {
    await run(context);
  } catch (err) {
    throw new Error(`${(err as Error).message} (diagnostics: ${diagnostics.join('; ') || 'none'})`, { cause: err });
  }
  if (planned !== undefined && assertions !== planned) throw new Error(`plan expected ${planned} assertions but ${assertions} ran (diagnostics: ${diagnostics.join('; ') || 'none'})`);
}

/** Every case of aedes-persistence's abstract suite against the stores `create` makes (a fresh one per case); `buildEmitter`: the suite broker's emitter (e.g. mqemitter-redis, as in a cluster). */
export function abstractPersistenceSuite(name: string, create: () => Promise<unknown> | unknown, options: { buildEmitter?: () => unknown } = {}): void {
  describe(`aedes-persistence abstract suite: ${name}`, () => {
    abstractSuite({ test: (caseName, run) => it(caseName, () => runCase(run)), persistence: create, ...(options.buildEmitter ? { buildEmitter: options.buildEmitter } : {}), testAsync: true });
  });
}

/** How many cases the suite has (so a test can check that all of them ran). */
export function abstractSuiteCaseCount(): number {
  let count = 0;
  abstractSuite({ test: () => void count++, persistence: () => undefined, testAsync: true });
  return count;
}
