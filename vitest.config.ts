import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { defineConfig } from 'vitest/config';

// Tests never read or write the developer's kernel-tuning cache (~/.cache/concord/tune): a cache
// written by `concord tune` would otherwise replace the defaults the tests check. Tests of the
// cache set their own folder.
const tuneCache = mkdtempSync(join(tmpdir(), 'concord-test-tune-'));
process.on('exit', () => rmSync(tuneCache, { recursive: true, force: true }));

// dawn.node must live in a forked process (not a worker thread), and one GPU
// process at a time keeps SwiftShader's thread pool from oversubscribing 2 cores.
export default defineConfig({
  test: {
    pool: 'forks',
    fileParallelism: false,
    include: ['tests/**/*.test.ts'],
    // scratchDir() folders (tests/helpers/scratch.ts) are removed after each test file.
    setupFiles: ['tests/helpers/scratch-setup.ts'],
    testTimeout: 300_000,
    hookTimeout: 300_000,
    reporters: ['default'],
    env: { CONCORD_TUNE_CACHE: tuneCache },
  },
});
