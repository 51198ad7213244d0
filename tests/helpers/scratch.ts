// Scratch folders for tests: scratchDir() makes one under the OS temp folder and remembers it;
// tests/helpers/scratch-setup.ts (a vitest setup file) removes them after each test file, so a run
// leaves no /tmp/concord-* behind.

import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

const made: string[] = [];

/** mkdtemp under the OS temp folder, removed after the test file (tests/helpers/scratch-setup.ts). */
export function scratchDir(prefix = 'concord-test-'): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), prefix));
  made.push(dir);
  return dir;
}

/** Remove every folder scratchDir made so far (the setup file's afterAll). */
export function removeScratch(): void {
  // Retried: a daemon a test started (the Slurm test's slurmctld) may still be writing its state
  // as it shuts down. A folder that still cannot be removed is reported, not a failed test file.
  for (const d of made.splice(0)) {
    try {
      fs.rmSync(d, { recursive: true, force: true, maxRetries: 10, retryDelay: 200 });
    } catch (e) {
      process.stderr.write(`tests: could not remove the scratch folder ${d}: ${(e as Error).message}\n`);
    }
  }
}
