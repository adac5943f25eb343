import { defineConfig } from 'vitest/config';

/** The test set-up every SkySense package shares: one process per file, files one after another (2-core CI). */
export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    testTimeout: 120_000,
    hookTimeout: 120_000,
    pool: 'forks',
    fileParallelism: false,
  },
});
