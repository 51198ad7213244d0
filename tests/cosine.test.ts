import { describe, expect, it } from 'vitest';
import { cosineAllPairsCpu, cosineAllPairsGpu, cosineRowsCpu, cosineRowsGpu, l2NormalizeCpu, l2NormalizeGpu } from '../kernels/cosine.js';
import { validate } from '../src/validate.js';
import { gpuRuntime, randInt, randn, rng } from './helpers/gpu.js';

describe('cosine similarity', async () => {
  const rt = await gpuRuntime();
  const r = rng(7);

  it('CPU twin: pinned cases', () => {
    const A = new Float32Array([1, 0, 3, 4, 0, 0]);
    const B = new Float32Array([0, 1, 6, 8, 1, 1]);
    expect(Array.from(cosineRowsCpu(A, B, 3, 2))).toEqual([0, 1, 0]); // orthogonal, parallel, zero row
    const C = cosineAllPairsCpu(new Float32Array([1, 0]), new Float32Array([1, 1, -2, 0]), 1, 2, 2);
    expect(C[0]).toBeCloseTo(Math.SQRT1_2, 6);
    expect(C[1]).toBeCloseTo(-1, 6);
  });

  it.skipIf(!rt)('GPU row-pair cosine matches the CPU twin (odd d, N = 1, a zero row)', async () => {
    for (const [N, d] of [[1, 5], [37, 129], [100, 384]]) {
      const A = randn(r, N * d), B = randn(r, N * d);
      if (N > 1) B.fill(0, 0, d); // zero row → 0, not NaN
      const out = rt!.acquire(N * 4);
      cosineRowsGpu(rt!, { A: rt!.upload(A), B: rt!.upload(B), out, N, d });
      const v = validate(await rt!.readF32(out, N), cosineRowsCpu(A, B, N, d), { atol: 1e-5 });
      expect(v.ok, `N=${N} d=${d}: ${v.summary}`).toBe(true);
    }
  });

  it.skipIf(!rt)('GPU L2 normalisation matches the CPU twin', async () => {
    const N = 13, d = 77;
    const X = randn(r, N * d, 30);
    const Y = rt!.acquire(N * d * 4);
    l2NormalizeGpu(rt!, { X: rt!.upload(X), Y, N, d });
    const v = validate(await rt!.readF32(Y, N * d), l2NormalizeCpu(X, N, d), { atol: 1e-6 });
    expect(v.ok, v.summary).toBe(true);
  });

  it.skipIf(!rt)('GPU all-pairs block matches the CPU twin, normalised and raw', async () => {
    for (const normalize of [true, false]) {
      const N = randInt(r, 1, 90), M = randInt(r, 1, 70), d = 2 * randInt(r, 5, 60) + 1;
      const A = randn(r, N * d), B = randn(r, M * d);
      const C = rt!.acquire(N * M * 4);
      cosineAllPairsGpu(rt!, { A: rt!.upload(A), B: rt!.upload(B), C, N, M, d, normalize });
      const v = validate(await rt!.readF32(C, N * M), cosineAllPairsCpu(A, B, N, M, d, normalize), { atol: 1e-4, rtol: 1e-5 });
      expect(v.ok, `N=${N} M=${M} d=${d} normalize=${normalize}: ${v.summary}`).toBe(true);
    }
  });
});
