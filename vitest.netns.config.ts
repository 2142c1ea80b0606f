import { defineConfig } from 'vitest/config';

// Namespace tests: real kernels, real tools, root. One process per file (forks pool) so a
// crashed test cannot leave state in another; files run two at a time on the 2-core machines.
export default defineConfig({
  test: {
    include: ['netns-tests/**/*.test.ts'],
    exclude: ['dist/**', 'node_modules/**'],
    pool: 'forks',
    maxWorkers: 2,
    testTimeout: 180_000,
    hookTimeout: 120_000,
  },
});
