import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts', 'renderer/**/*.test.ts'],
    testTimeout: 30_000,
    hookTimeout: 30_000,
    // Tests start real servers and processes; two cores run two files at a time well.
    maxWorkers: 2,
    // CI shares a noisy 2-core machine: a test that fails is run once more there, and .ci/run names
    // each that passed only then. A broken test fails twice; hooks (beforeAll) are not retried.
    retry: process.env.CI ? 1 : 0,
  },
});
