// Every Hugging Face fixture family (tests/fixtures/hf/<family>: real config fields and tensor
// names, random tiny weights) on the onnxruntime CPU path against the float64 PyTorch reference
// (scripts/reference_torch.py hf), with the twin's tolerance (≤ 1e-5 nats/token), in one padded
// batch of mixed lengths; plus batch invariance (each sequence alone = inside the batch).
import { readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
import { loadModel } from '../src/models/index.js';
import { validate } from '../src/validate.js';

const FIX = join(resolve(import.meta.dirname, '..'), 'tests', 'fixtures', 'hf');
export const HF_FAMILIES = ['llama3', 'smollm2', 'qwen3', 'mistral', 'ministral', 'smollm3', 'phi3', 'gemma2', 'gemma3'] as const;

interface Reference { sequences: { ids: number[]; logprobs: number[] }[] }
const ref = (family: string): Reference => JSON.parse(readFileSync(join(FIX, family, 'reference.json'), 'utf8'));

describe('every HF fixture family on onnxruntime vs the PyTorch float64 reference', () => {
  for (const family of HF_FAMILIES) {
    it(`${family}: onnxruntime (not the twin) matches the reference ≤1e-5 in a padded batch; batch-invariant ≤1e-5`, async () => {
      const lm = await loadModel(join(FIX, family), { device: 'cpu', cpuBackend: 'onnxruntime' });
      expect(lm.deviceName).toMatch(/^cpu: onnxruntime \d/);
      const r = ref(family);
      const seqs = r.sequences.map((s) => ({ ids: s.ids }));
      expect(new Set(seqs.map((s) => s.ids.length)).size, 'mixed lengths').toBeGreaterThan(1);
      const got = await lm.scoreBatch(seqs);
      let worst = 0;
      r.sequences.forEach((s, i) => {
        const v = validate(got[i].logprobs, s.logprobs, { atol: 1e-5, rtol: 0 });
        expect(v.ok, `${family} len ${s.ids.length}: ${v.summary}`).toBe(true);
        worst = Math.max(worst, v.maxAbsErr);
      });
      for (let i = 0; i < seqs.length; i++) {
        const [alone] = await lm.scoreBatch([seqs[i]]);
        const v = validate(alone.logprobs, got[i].logprobs, { atol: 1e-5, rtol: 0 });
        expect(v.ok, `${family} seq ${i} alone vs batched: ${v.summary}`).toBe(true);
      }
      console.log(`[${family}] onnxruntime vs PyTorch f64: max |Δ| ${worst.toExponential(2)} nats/token over ${seqs.length} sequences`);
      lm.dispose();
    });
  }
});
