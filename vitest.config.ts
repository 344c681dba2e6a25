import { defineConfig } from 'vitest/config';

// Tests run files in parallel (2 workers for the 2-core machines we target); each test file
// starts the real services it needs on free ports and stops them in afterAll.
export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    pool: 'forks',
    maxWorkers: 2,
    testTimeout: 30_000,
    hookTimeout: 60_000,
    teardownTimeout: 20_000,
    reporters: ['default'],
  },
});
