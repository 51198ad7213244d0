import { defineConfig } from 'vitest/config';

// dawn.node must live in a forked process (not a worker thread), and one GPU
// process at a time keeps SwiftShader's thread pool from oversubscribing 2 cores.
export default defineConfig({
  test: {
    pool: 'forks',
    fileParallelism: false,
    include: ['tests/**/*.test.ts'],
    testTimeout: 300_000,
    hookTimeout: 300_000,
    reporters: ['default'],
  },
});
