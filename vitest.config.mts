import { defineConfig } from 'vitest/config';

// Native code runs in forked processes: a crash fails one test file instead of the runner.
export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    pool: 'forks',
    testTimeout: 30_000,
  },
});
