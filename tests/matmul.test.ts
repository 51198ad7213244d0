import { describe, expect, it } from 'vitest';
import { matmulCpu, matmulGpu, matmulSpec } from '../kernels/matmul.js';
import { programKey, programSource } from '../src/gpu/runtime.js';
import { validate } from '../src/validate.js';
import { roundThroughF16, toF16 } from '../src/util/f16.js';
import { gpuRuntime, randInt, randn, rng } from './helpers/gpu.js';

describe('matmul', async () => {
  const rt = await gpuRuntime();
  const r = rng(1234);

  it('CPU twin: nk and kn layouts agree with a naive triple loop', () => {
    const M = 5, N = 7, K = 9;
    const A = randn(r, M * K), B = randn(r, K * N), bias = randn(r, N);
    const Bt = new Float32Array(N * K);
    for (let k = 0; k < K; k++) for (let n = 0; n < N; n++) Bt[n * K + k] = B[k * N + n];
    const naive = new Float32Array(M * N);
    for (let m = 0; m < M; m++) for (let n = 0; n < N; n++) {
      let s = bias[n];
      for (let k = 0; k < K; k++) s += A[m * K + k] * B[k * N + n];
      naive[m * N + n] = s;
    }
    expect(validate(matmulCpu(A, B, bias, M, N, K, 'kn'), naive, { atol: 1e-5 }).ok).toBe(true);
    expect(validate(matmulCpu(A, Bt, bias, M, N, K, 'nk'), naive, { atol: 1e-5 }).ok).toBe(true);
  });

  for (const [layout, variant] of [['kn', 'tiled'], ['nk', 'tiled'], ['kn', 'direct'], ['nk', 'direct']] as const) {
    it.skipIf(!rt)(`GPU f32 ${variant} ${layout} matches the CPU twin on random non-tile shapes`, async () => {
      for (let trial = 0; trial < 4; trial++) {
        const M = trial === 0 ? 1 : randInt(r, 2, 150), N = randInt(r, 1, 200), K = randInt(r, 1, 97) | 1;
        const A = randn(r, M * K), B = randn(r, K * N), bias = trial % 2 ? randn(r, N) : null;
        const bufs = [rt!.upload(A), rt!.upload(B), bias ? rt!.upload(bias) : null, rt!.acquire(M * N * 4)];
        matmulGpu(rt!, { A: bufs[0]!, B: bufs[1]!, bias: bufs[2], C: bufs[3]!, M, N, K, layout, variant });
        const got = await rt!.readF32(bufs[3]!, M * N);
        const want = matmulCpu(A, B, bias, M, N, K, layout);
        const v = validate(got, want, { atol: 1e-4, rtol: 1e-4 });
        expect(v.ok, `M=${M} N=${N} K=${K}: ${v.summary}`).toBe(true);
        for (const b of bufs) if (b) rt!.release(b);
      }
    });
  }

  it('f16 weights compile the same shader with only the weight type swapped', () => {
    const f32 = programSource(matmulSpec('nk', false, 'tiled'));
    const f16 = programSource(matmulSpec('nk', true, 'tiled'));
    expect(f32).toContain('alias WeightT = f32;');
    expect(f16.startsWith('enable f16;\n')).toBe(true);
    expect(f16.replace('enable f16;\n', '').replace('alias WeightT = f16;', 'alias WeightT = f32;')).toBe(f32);
    expect(programKey(matmulSpec('nk', true))).not.toBe(programKey(matmulSpec('nk', false, 'tiled')));
    expect(() => programSource({ shader: 'matmul/direct', f16Weights: true })).toThrow(/no f16-weight form/);
  });

  it.skipIf(!rt || !rt.hasF16)('GPU f16-storage weights match the CPU twin on f16-rounded weights', async () => {
    const M = 33, N = 71, K = 45;
    const A = randn(r, M * K), B = randn(r, N * K);
    const C = rt!.acquire(M * N * 4);
    matmulGpu(rt!, { A: rt!.upload(A), B: rt!.upload(toF16(B)), C, M, N, K, layout: 'nk', f16: true });
    const got = await rt!.readF32(C, M * N);
    const v = validate(got, matmulCpu(A, roundThroughF16(B), null, M, N, K, 'nk'), { atol: 1e-4, rtol: 1e-4 });
    expect(v.ok, v.summary).toBe(true);
  });
});
