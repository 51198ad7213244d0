// Decoder.scoreTokens and Decoder.truncate (src/generate/types.ts) on all three decoders: the
// TypeScript twin, onnxruntime and WebGPU (lavapipe). A prefix prefilled once (from = its length:
// nothing scored), continuations scored from its cache and the slot truncated back between them,
// a slot scored from empty in the same call: each equals scoreBatch of the whole sequence
// (twin and onnxruntime against their own scoreBatch ≤ 1e-5; WebGPU f32 against the twin ≤ 1e-4;
// relative to max(1, |log p|), as the tokens are random).

import { join, resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
import type { Decoder, DecoderOptions } from '../src/generate/types.js';
import { loadModel, type LanguageModel } from '../src/models/index.js';
import { gpuRuntime, randInt, rng } from './helpers/gpu.js';

const ROOT = resolve(import.meta.dirname, '..');
const FIX = join(ROOT, 'tests', 'fixtures', 'hf');
const MODELS = [
  { name: 'stories15M', path: join(ROOT, 'models', 'stories15M') },
  { name: 'gemma2 (soft-caps, sliding window)', path: join(FIX, 'gemma2') },
  { name: 'qwen3', path: join(FIX, 'qwen3') },
];

/** Largest |a − b| / max(1, |b|): random tokens have log-probs near −20, where f32 sums differ by ~1e-6 relative. */
function maxDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  expect(a.length).toBe(b.length);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]) / Math.max(1, Math.abs(b[i])));
  return m;
}

/** Prefix + two continuations through one slot (truncated between), a full sequence in another slot of the same calls. */
async function check(dec: Decoder, ref: LanguageModel, tol: number, seed: number): Promise<void> {
  const r = rng(seed);
  const V = ref.config.vocabSize;
  const tok = (n: number) => Array.from({ length: n }, () => randInt(r, 3, V - 1));
  const prefix = tok(11), c1 = tok(7), c2 = tok(5), other = tok(9);
  const want = await ref.scoreBatch([{ ids: [...prefix, ...c1] }, { ids: [...prefix, ...c2] }, { ids: other }]);
  dec.reset(0);
  dec.reset(2);
  const [pre] = await dec.scoreTokens([{ slot: 0, ids: prefix, from: prefix.length }]);
  expect(pre.length).toBe(0);
  // log p(c1[0] | prefix) is read at the prefix's last row, which must be in the call: truncate
  // it off and feed [last, ...c1] (the way src/signals/icl.ts continues a prefix).
  dec.truncate(0, prefix.length - 1);
  const [a, o] = await dec.scoreTokens([{ slot: 0, ids: [prefix[prefix.length - 1], ...c1] }, { slot: 2, ids: other }]);
  expect(maxDiff(a, want[0].logprobs.slice(prefix.length - 1))).toBeLessThanOrEqual(tol);
  expect(maxDiff(o, want[2].logprobs)).toBeLessThanOrEqual(tol);
  dec.truncate(0, prefix.length - 1);
  const [b] = await dec.scoreTokens([{ slot: 0, ids: [prefix[prefix.length - 1], ...c2], from: 3 }]);
  expect(maxDiff(b, want[1].logprobs.slice(prefix.length - 1 + 2))).toBeLessThanOrEqual(tol);
  // The cache holds prefix + c2 now: a step continues from it like a fresh prefill would.
  dec.truncate(0, prefix.length + c2.length);
  expect(() => dec.truncate(0, prefix.length + c2.length + 1)).toThrow(/cannot truncate/);
  await expect(dec.scoreTokens([{ slot: 0, ids: [1, 2], from: 3 }])).rejects.toThrow(/from 3/);
}

describe('Decoder.scoreTokens / truncate', async () => {
  for (const m of MODELS) {
    it(`${m.name}: CPU twin = its scoreBatch (≤1e-5)`, async () => {
      const lm = await loadModel(m.path, { device: 'cpu-twin', threads: 1 });
      const dec = await lm.createDecoder!({ slots: 3, maxLen: 40 });
      await check(dec, lm, 1e-5, 7);
      dec.dispose();
      lm.dispose();
    });
    it(`${m.name}: onnxruntime = its scoreBatch (≤1e-5)`, async () => {
      const lm = await loadModel(m.path, { device: 'cpu', cpuBackend: 'onnxruntime' });
      const dec = await lm.createDecoder!({ slots: 3, maxLen: 40 });
      await check(dec, lm, 1e-5, 8);
      dec.dispose();
      lm.dispose();
    });
  }
  const rt = await gpuRuntime();
  for (const m of MODELS) {
    it.skipIf(!rt)(`${m.name}: WebGPU f32 = the twin's scoreBatch (≤1e-4), also in passes of at most 4 rows`, async () => {
      const gpu = await loadModel(m.path, { device: rt!, f16: false });
      const cpu = await loadModel(m.path, { device: 'cpu-twin', threads: 1 });
      for (const maxTokens of [undefined, 4]) {
        const dec = await gpu.createDecoder!({ slots: 3, maxLen: 40, maxTokens } as DecoderOptions);
        await check(dec, cpu, 1e-4, 9);
        dec.dispose();
      }
      gpu.dispose();
      cpu.dispose();
    });
  }
});
