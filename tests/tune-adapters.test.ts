// Every variant of every op, checked against its CPU twin on BOTH software adapters: Mesa lavapipe
// and Chromium's SwiftShader. One process holds one dawn.node and one Vulkan ICD, so each adapter
// runs `concord tune --dry-run --json --size small` in a child process with VK_ICD_FILENAMES set.
// Nothing may fail. A variant may be 'unavailable' (with its reason) for a shape it does not take,
// but must then be valid in another class — unless a feature is missing (shader-f16 on
// SwiftShader, subgroup matrices on both). Every class has a valid variant, f16 ones wherever the
// adapter has shader-f16.

import * as fs from 'node:fs';
import * as path from 'node:path';
import { describe, expect, test } from 'vitest';
import { tunableOps, type TuneReport } from '../src/tune/index.js';
import { KERNEL_VARIANTS } from '../src/gpu/variants.js';
import { setupCli } from './helpers/cli.js';

const SWIFTSHADER = '/usr/lib/chromium/vk_swiftshader_icd.json';

/** A lavapipe ICD that Dawn accepts (Mesa >= 24 reports Vulkan >= 1.3.274), as src/gpu/device.ts picks. */
function lavapipeIcd(): string | null {
  const dir = '/usr/share/vulkan/icd.d';
  let names: string[] = [];
  try { names = fs.readdirSync(dir).filter((n) => n.startsWith('lvp_icd')); } catch { return null; }
  for (const n of names) {
    const m = /^1\.(\d+)\.(\d+)/.exec(JSON.parse(fs.readFileSync(path.join(dir, n), 'utf8')).ICD?.api_version ?? '');
    if (m && (Number(m[1]) >= 4 || (Number(m[1]) === 3 && Number(m[2]) >= 274))) return path.join(dir, n);
  }
  return null;
}

/** Unavailability a software adapter may report: a feature it lacks. */
const FEATURE_GATED = /shader-f16|subgroup|feature/i;

const cases: { name: string; icd: string | null; adapter: RegExp }[] = [
  { name: 'lavapipe', icd: lavapipeIcd(), adapter: /llvmpipe|lavapipe/i },
  { name: 'SwiftShader', icd: fs.existsSync(SWIFTSHADER) ? SWIFTSHADER : null, adapter: /swiftshader/i },
];

describe('every kernel variant matches its CPU twin on both software adapters (concord tune)', () => {
  const c = setupCli('concord-tune-');
  for (const { name, icd, adapter } of cases) {
    // SwiftShader comes with chromium, which .ci/run installs: with CONCORD_REQUIRE_GPU=1 its absence fails.
    // lavapipe >= 24 comes from bookworm-backports when reachable; .ci/run says when it is not.
    const required = name === 'SwiftShader' && process.env.CONCORD_REQUIRE_GPU === '1';
    test.skipIf(!icd && !required)(name, async () => {
      expect(icd, `${name}: no ICD installed`).not.toBeNull();
      const cacheDir = c.p(`cache-${name}`);
      const r = await c.run(['tune', '--dry-run', '--json', '--size', 'small', '--budget-ms', '1'], {
        VK_ICD_FILENAMES: icd!, CONCORD_REQUIRE_GPU: '1', CONCORD_TUNE_CACHE: cacheDir,
      }, { fake: false });
      expect(r.code, r.stderr).toBe(0);
      const rep = JSON.parse(r.stdout) as TuneReport & { dryRun: boolean; features: string[] };
      const who = `${rep.adapter.vendor}/${rep.adapter.architecture} ${rep.adapter.description}`;
      console.log(`[tune ${name}] ${who}: ${rep.entries.length} shape classes, ${rep.entries.reduce((s, e) => s + e.candidates.length, 0)} candidates`);
      expect(who).toMatch(adapter);
      expect(rep.adapter.software).toBe(true);
      expect(rep.dryRun).toBe(true);
      expect(rep.written).toBe(false);
      expect(fs.existsSync(cacheDir)).toBe(false);
      const ops = new Set(rep.entries.map((e) => e.op));
      expect([...ops].sort()).toEqual(tunableOps().sort());
      for (const e of rep.entries) {
        const where = `${name} ${e.op} ${e.shapeClass}`;
        expect(e.candidates.map((x) => x.variant), where).toEqual([...(KERNEL_VARIANTS as Record<string, readonly string[]>)[e.op]]);
        for (const x of e.candidates) {
          if (x.status === 'unavailable') {
            expect(x.error, `${where} ${x.variant}`).toMatch(/\S/);
          } else {
            expect(x.status, `${where} ${x.variant}: ${x.error ?? ''}`).toBe('valid');
            expect(x.ms!, `${where} ${x.variant}`).toBeGreaterThan(0);
            expect(x.maxError!, `${where} ${x.variant}`).toBeLessThan(1e-2);
          }
        }
        if (e.candidates.some((x) => x.status === 'valid')) expect(e.candidates.map((x) => x.variant)).toContain(e.winner);
      }
      // Every variant ran somewhere (only feature-gated ones may be unavailable everywhere).
      for (const op of tunableOps()) {
        for (const v of (KERNEL_VARIANTS as Record<string, readonly string[]>)[op]) {
          const all = rep.entries.filter((e) => e.op === op).flatMap((e) => e.candidates.filter((x) => x.variant === v));
          if (!all.some((x) => x.status === 'valid')) expect(all.every((x) => FEATURE_GATED.test(x.error ?? '')), `${name} ${op}/${v} never ran`).toBe(true);
        }
      }
      // Every class has a valid variant; f16 classes lack one only without shader-f16.
      expect(rep.entries.some((e) => e.shape.f16)).toBe(true);
      for (const e of rep.entries.filter((x) => !x.shape.f16 || rep.features.includes('shader-f16'))) expect(e.candidates.some((x) => x.status === 'valid'), `${name} ${e.op} ${e.shapeClass}`).toBe(true);
    });
  }
});
