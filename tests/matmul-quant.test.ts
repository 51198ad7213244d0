// The quantized-weight matmul (kernels/matmul-quant.ts, shaders/matmul/gemv-q.wgsl): Q8_0 and Q4_0
// blocks kept as the file's bytes in GPU memory, dequantized in registers, against the twin
// (ggml's dequantization, then the f32 matmul twin). Runs on the adapter (CONCORD_REQUIRE_GPU=1).
import { describe, expect, it } from 'vitest';
import { QUANT_GEMV_CANDIDATES, quantMatmulCpu, quantMatmulGpu, quantWeightBytes, uploadQuantWeight, validateQuantMatmul } from '../kernels/matmul-quant.js';
import { matmulCpu } from '../kernels/matmul.js';
import { dequantize } from '../src/quant/dequant.js';
import { quantizeQ4_0, quantizeQ8_0 } from '../src/quant/quantize.js';
import { GGML_TYPE } from '../src/quant/types.js';
import { gpuRuntime, randn, rng } from './helpers/gpu.js';

describe('quantized-weight matmul (Q8_0, Q4_0)', async () => {
  const rt = await gpuRuntime();

  it('twin = dequantize then matmul; GPU bytes: Q4_0 0.28×, Q8_0 0.53× the f16 weight', () => {
    const r = rng(7);
    const M = 3, N = 5, K = 64;
    const A = randn(r, M * K), W = randn(r, N * K, 0.1);
    const raw = quantizeQ8_0(W);
    expect(Array.from(quantMatmulCpu(A, raw, GGML_TYPE.Q8_0, null, M, N, K))).toEqual(Array.from(matmulCpu(A, dequantize(GGML_TYPE.Q8_0, raw, N * K), null, M, N, K, 'nk')));
    expect(quantWeightBytes(GGML_TYPE.Q4_0, 288, 288) / (288 * 288 * 2)).toBeCloseTo(18 / 64, 3);
    expect(quantWeightBytes(GGML_TYPE.Q8_0, 288, 288) / (288 * 288 * 2)).toBeCloseTo(34 / 64, 3);
  });

  for (const t of [GGML_TYPE.Q8_0, GGML_TYPE.Q4_0] as const) {
    for (const config of QUANT_GEMV_CANDIDATES) {
      it.skipIf(!rt)(`GPU ${t === GGML_TYPE.Q8_0 ? 'Q8_0' : 'Q4_0'} kl ${config.kl} nc ${config.nc}: matches the twin (random blocks; plain, bias + accumulate, SwiGLU)`, async () => {
        const v = await validateQuantMatmul(rt!, t, { config });
        expect(v.ok, v.summary).toBe(true);
      }, 120_000);
    }
  }

  it.skipIf(!rt)('GPU: weights from the reference quantizers (stories15M-like shape 288) match the twin', async () => {
    const r = rng(11);
    const M = 4, N = 48, K = 288;
    const W = randn(r, N * K, 0.05), A = randn(r, M * K);
    for (const [t, raw] of [[GGML_TYPE.Q8_0, quantizeQ8_0(W)], [GGML_TYPE.Q4_0, quantizeQ4_0(W)]] as const) {
      const bA = rt!.upload(A), bB = uploadQuantWeight(rt!, raw), bC = rt!.upload(new Float32Array(M * N));
      quantMatmulGpu(rt!, { A: bA, B: bB, C: bC, M, N, K, type: t });
      const got = await rt!.readF32(bC, M * N);
      const want = quantMatmulCpu(A, raw, t, null, M, N, K);
      let max = 0;
      for (let i = 0; i < want.length; i++) max = Math.max(max, Math.abs(got[i] - want[i]));
      expect(max).toBeLessThan(1e-4);
      for (const b of [bA, bB, bC]) rt!.release(b);
    }
  });

  it.skipIf(!rt)('refuses K not a multiple of 32 and other types', () => {
    const b = rt!.upload(new Float32Array(4));
    expect(() => quantMatmulGpu(rt!, { A: b, B: b, C: b, M: 1, N: 1, K: 48, type: GGML_TYPE.Q8_0 })).toThrow(/multiple of the block size 32/);
    expect(() => quantMatmulGpu(rt!, { A: b, B: b, C: b, M: 1, N: 1, K: 32, type: GGML_TYPE.Q6_K as never })).toThrow(/not Q8_0 or Q4_0/);
    rt!.release(b);
  });
});
