// Runs the abstract test suite that `aedes-persistence` ships for its implementations
// (aedes-persistence/abstract.js, written for node:test) under vitest: each of its tests becomes a
// vitest test, with a `t` that has node:test's `plan` (checked: a test that makes fewer or more
// assertions than it planned fails), `assert` (node:assert, as node:test's `t.assert`) and
// `diagnostic`.
import assert from 'node:assert';
import { createRequire } from 'node:module';
import { test } from 'vitest';

const require = createRequire(import.meta.url);

type SuiteTest = (name: string, body: (t: SuiteContext) => Promise<void>) => void;

interface SuiteContext {
  plan(count: number): void;
  assert: Record<string, (...args: unknown[]) => void>;
  diagnostic(message: string): void;
}

export interface AbstractSuiteOptions {
  /** Builds one fresh, empty store instance (the suite calls setup(broker) on it and destroy() at the end of each test). */
  persistence: () => Promise<unknown>;
  /** Builds the message emitter the suite's fake broker uses (default: mqemitter in memory). */
  buildEmitter?: () => unknown;
}

export function runAbstractPersistenceSuite(options: AbstractSuiteOptions): void {
  const abstractPersistence = require('aedes-persistence/abstract.js') as (suite: { test: SuiteTest; persistence: () => Promise<unknown>; buildEmitter?: () => unknown; testAsync: true }) => void;
  const suiteTest: SuiteTest = (name, body) => {
    test(name, async () => {
      let planned: number | undefined;
      let made = 0;
      const counted = Object.fromEntries(
        (['equal', 'notEqual', 'deepEqual', 'notDeepEqual', 'ok', 'strictEqual', 'deepStrictEqual', 'throws', 'rejects'] as const).map((method) => [
          method,
          (...args: unknown[]) => {
            made++;
            return (assert[method] as (...a: unknown[]) => unknown)(...args);
          },
        ]),
      ) as SuiteContext['assert'];
      const context: SuiteContext = { plan: (count) => (planned = count), assert: counted, diagnostic: () => undefined };
      await body(context);
      if (planned !== undefined) assert.equal(made, planned, `"${name}" planned ${planned} assertions and made ${made}`);
    });
  };
  abstractPersistence({ test: suiteTest, persistence: options.persistence, buildEmitter: options.buildEmitter, testAsync: true });
}
