import { defineConfig } from 'vitest/config';

// Native and kernel-facing tests run in forked processes: a crash in the addon then fails
// one test file instead of taking the runner down.
export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    pool: 'forks',
    testTimeout: 60_000,
    hookTimeout: 900_000,
    reporters: ['default'],
  },
});
