import { defineConfig } from 'vitest/config';

// Unit tests: pure code, beside the modules they test. No root, no namespaces.
export default defineConfig({
  test: {
    include: ['{cli,common,cluster,proxy,dns,ipam,test-apiserver,bench,manifests,image}/**/*.test.ts'],
    exclude: ['dist/**', 'node_modules/**'],
    testTimeout: 60_000,
    hookTimeout: 60_000,
  },
});
