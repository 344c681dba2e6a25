import { configDefaults, defineConfig } from 'vitest/config';

// Tests run files in parallel (2 workers for the 2-core machines we target); each test file
// starts the real services it needs on free ports and stops them in afterAll.
//
// Two projects, each file in exactly one, so `vitest run` (npm test) runs every test once:
// - unit: `*.unit.test.ts`, pure tests that start nothing (no broker, no influxd, no socat, no
//   Chromium, no child process, no socket): `npm run test:unit`, a few seconds;
// - integration: every other `*.test.ts`, against real services.
const UNIT = 'test/**/*.unit.test.ts';

export default defineConfig({
  test: {
    pool: 'forks',
    maxWorkers: 2,
    testTimeout: 30_000,
    hookTimeout: 60_000,
    teardownTimeout: 20_000,
    reporters: ['default'],
    projects: [
      { extends: true, test: { name: 'unit', include: [UNIT] } },
      { extends: true, test: { name: 'integration', include: ['test/**/*.test.ts'], exclude: [...configDefaults.exclude, UNIT] } },
    ],
  },
});
