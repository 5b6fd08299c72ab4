// `npm run test:fault`: the long fault suites (kill -9 rounds, disk full, hostile
// input), kept out of `npm test`. One file at a time: each starts `kiln serve`
// processes and loads them. KILN_FAULT_ROUNDS sets the kill -9 rounds (default 30).
import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/fault/**/*.fault.ts'],
    testTimeout: 240_000,
    hookTimeout: 60_000,
    maxWorkers: 1,
    fileParallelism: false,
  },
});
