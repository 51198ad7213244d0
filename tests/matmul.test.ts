import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { loadModel } from '../src/models/index.js';
import { buildTinyModel } from './helpers/tiny-models.js';
import { chooseMatmulVariant, matmulConfigs, matmulCpu, matmulFusedCpu, matmulGpu, matmulSpec, subgroupMatrixProblem, validateMatmulVariant, type BLayout, type MatmulConfig, type MatmulVariant } from '../kernels/matmul.js';
import type { GateAct } from '../kernels/act.js';
import { programKey, programSource } from '../src/gpu/runtime.js';
import { clearTuned, setTuned, shapeClass } from '../src/gpu/variants.js';
import { validate } from '../src/validate.js';
import { roundThroughF16, toF16 } from '../src/util/f16.js';
import { gpuRuntime, randInt, randn, rng } from './helpers/gpu.js';
import { scratchDir } from './helpers/scratch.js';

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

  // ---- the hardware variants, validated here on the software adapter (correctness only) ----

  /** One GPU run of a (fused) matmul against the twin composition. */
  async function check(variant: MatmulVariant, layout: BLayout, f16: boolean, M: number, N: number, K: number,
    o: { bias?: boolean; accumulate?: boolean; glu?: GateAct | null; config?: MatmulConfig } = {}): Promise<void> {
    const nB = o.glu ? 2 * N : N;
    let B = randn(r, nB * K);
    if (f16) B = roundThroughF16(B);
    const A = randn(r, M * K), bias = o.bias ? randn(r, nB) : null, C0 = randn(r, M * N);
    const bufs = [rt!.upload(A), rt!.upload(f16 ? toF16(B) : B), bias ? rt!.upload(bias) : null, rt!.upload(C0)];
    matmulGpu(rt!, { A: bufs[0]!, B: bufs[1]!, bias: bufs[2], C: bufs[3]!, M, N, K, layout, f16, variant, accumulate: o.accumulate, glu: o.glu, config: o.config });
    const got = await rt!.readF32(bufs[3]!, M * N);
    const want = matmulFusedCpu(A, B, bias, M, N, K, layout, { glu: o.glu, residual: o.accumulate ? C0 : null });
    const v = validate(got, want, { atol: 2e-4, rtol: 2e-4 });
    expect(v.ok, `${variant} ${layout}${f16 ? ' f16' : ''} M=${M} N=${N} K=${K} ${JSON.stringify(o)}: ${v.summary}`).toBe(true);
    for (const b of bufs) if (b) rt!.release(b);
  }

  const shapesFor = (variant: MatmulVariant, trial: number): [number, number, number] => {
    // blocked: K a multiple of 4 (vec4 loads); M past its 128-row tile in the last trial.
    // gemv is for few rows: its largest M (17–40) still spans several 8-row passes.
    const M = [1, randInt(r, 2, 40), variant === 'gemv' ? randInt(r, 17, 40) : randInt(r, 129, 170)][trial];
    const N = [randInt(r, 1, 90), randInt(r, 100, 200), randInt(r, 129, 270)][trial];
    let K = [randInt(r, 1, 40), randInt(r, 41, 97), randInt(r, 98, 150)][trial];
    if (variant === 'blocked') K = Math.max(4, K - (K % 4));
    return [M, N, K];
  };

  for (const variant of ['blocked', 'gemv'] as const) {
    for (const layout of ['nk', 'kn'] as const) {
      for (const f16 of [false, true]) {
        it.skipIf(!rt || (f16 && !rt.hasF16))(`GPU ${variant} ${layout} ${f16 ? 'f16' : 'f32'} weights match the CPU twin (M = 1, small, above a tile; bias)`, async () => {
          for (let trial = 0; trial < 3; trial++) {
            const [M, N0, K] = shapesFor(variant, trial);
            // 'kn' blocked loads B as vec4 along N.
            const N = variant === 'blocked' && layout === 'kn' ? Math.max(4, N0 - (N0 % 4)) : N0;
            await check(variant, layout, f16, M, N, K, { bias: trial !== 1 });
          }
        });
      }
    }
  }

  for (const variant of ['blocked', 'gemv', 'tiled', 'direct'] as const) {
    it.skipIf(!rt)(`GPU ${variant}: residual (accumulate) and SwiGLU / GeGLU epilogues match the twin composition`, async () => {
      for (const trial of [0, 2]) {
        const [M, N, K] = shapesFor(variant === 'gemv' ? 'gemv' : 'blocked', trial);
        await check(variant, 'nk', false, M, N, K, { bias: true, accumulate: true });
        await check(variant, 'kn', false, M, N - (N % 4) || 4, K, { accumulate: true });
        await check(variant, 'nk', false, M, N, K, { glu: trial === 0 ? 'gelu_tanh' : 'silu', bias: trial !== 0 });
        await check(variant, 'nk', false, M, N, K, { glu: 'silu', accumulate: true });
      }
      if (rt!.hasF16 && variant !== 'direct') await check(variant, 'nk', true, 37, 75, 64, { glu: 'gelu_tanh', bias: true, accumulate: true });
    });
  }

  it.skipIf(!rt)('every blocked and gemv config that fits the adapter runs and matches the twin', async () => {
    const blocked = matmulConfigs(rt!, 'blocked'), gemv = matmulConfigs(rt!, 'gemv');
    expect(blocked.length).toBeGreaterThan(0);
    expect(gemv.length).toBeGreaterThan(0);
    // One pipeline per config (compiling is what costs on lavapipe); GLU on the first of each.
    for (const config of [...blocked, ...gemv]) await check(config.variant, 'nk', false, 70, 150, 52, { bias: true, config });
    for (const config of [blocked[0], gemv[0]]) await check(config.variant, 'nk', false, 9, 33, 20, { glu: 'silu', config });
    // Limits are respected: a 32 KiB double buffer is the most a config may ask for.
    const small = matmulConfigs({ limits: { ...rt!.limits, maxComputeWorkgroupStorageSize: 16384 } as GPUSupportedLimits }, 'blocked');
    expect(small.every((c) => c.variant === 'blocked' && 2 * c.bk * 8 * (c.wgx + c.wgy) * 4 <= 16384)).toBe(true);
    expect(small.length).toBeLessThan(blocked.length + 1);
  });

  it.skipIf(!rt)('shapes and variants that cannot run throw clear errors', () => {
    const b = rt!.scratch(1024);
    const base = { A: b, B: b, C: b, M: 8, N: 8, layout: 'nk' as const };
    expect(() => matmulGpu(rt!, { ...base, K: 7, variant: 'blocked' })).toThrow(/blocked.*K = 7 is not a multiple of 4/);
    expect(() => matmulGpu(rt!, { ...base, K: 8, layout: 'kn', glu: 'silu', variant: 'tiled' })).toThrow(/GLU epilogue needs 'nk'/);
    expect(() => matmulGpu(rt!, { ...base, K: 8, variant: 'blocked', config: { variant: 'blocked', wgx: 16, wgy: 16, bk: 64 } })).toThrow(/cannot run here/);
    expect(() => matmulGpu(rt!, { ...base, K: 8, variant: 'gemv', config: { variant: 'blocked', wgx: 16, wgy: 16, bk: 16 } })).toThrow(/config for 'blocked' given with variant 'gemv'/);
    // Neither software adapter offers cooperative matrices: a clear error, never a silent fallback.
    expect(subgroupMatrixProblem(rt!)).toMatch(/chromium-experimental-subgroup-matrix/);
    expect(() => matmulGpu(rt!, { ...base, K: 8, f16: rt!.hasF16, variant: 'subgroup-matrix' })).toThrow(/subgroup-matrix' cannot run on .*chromium-experimental-subgroup-matrix/);
  });

  it.skipIf(!rt)('validateMatmulVariant: passes a runnable variant, reports an unavailable one without throwing', async () => {
    const good = await validateMatmulVariant(rt!, 'blocked');
    expect(good.ok, good.summary).toBe(true);
    expect(good.maxAbsErr).toBeLessThan(1e-3);
    const sm = await validateMatmulVariant(rt!, 'subgroup-matrix');
    expect(sm.ok).toBe(false);
    expect(sm.summary).toMatch(/FAILED .*cannot run/);
  });

  it('policy: direct on software adapters, gemv for few rows and blocked elsewhere on hardware, subgroup-matrix only as a runnable tuned winner', () => {
    const old = process.env.CONCORD_KERNEL_VARIANT;
    delete process.env.CONCORD_KERNEL_VARIANT;
    try {
      const fake = (software: boolean) => ({ handle: { info: { software }, adapter: { info: {} } }, device: { features: new Set<string>() }, hasF16: true }) as never;
      const hw = fake(false);
      expect(chooseMatmulVariant(fake(true), { M: 4, N: 64, K: 64, layout: 'nk' })).toBe('direct');
      expect(chooseMatmulVariant(hw, { M: 4, N: 64, K: 64, layout: 'nk', f16: true })).toBe('gemv');
      expect(chooseMatmulVariant(hw, { M: 512, N: 896, K: 896, layout: 'nk', f16: true })).toBe('blocked');
      expect(chooseMatmulVariant(hw, { M: 512, N: 896, K: 895, layout: 'nk' })).toBe('tiled');
      // A tuned winner is taken where this shape and device can run it, else the default.
      const big = { M: 512, N: 896, K: 896, layout: 'nk' as const, f16: true };
      setTuned(hw, [{ op: 'matmul', shapeClass: shapeClass('matmul', big), variant: 'tiled' }]);
      expect(chooseMatmulVariant(hw, big)).toBe('tiled');
      setTuned(hw, [{ op: 'matmul', shapeClass: shapeClass('matmul', big), variant: 'subgroup-matrix' }]);
      expect(chooseMatmulVariant(hw, big)).toBe('blocked'); // the device lacks the feature
      clearTuned(hw);
      process.env.CONCORD_KERNEL_VARIANT = 'matmul=tiled';
      expect(chooseMatmulVariant(hw, { M: 4, N: 64, K: 64, layout: 'nk' })).toBe('tiled');
    } finally {
      if (old === undefined) delete process.env.CONCORD_KERNEL_VARIANT; else process.env.CONCORD_KERNEL_VARIANT = old;
    }
  });

  // The prefill's fused matmuls (residual accumulate, [gate; up] GLU) through each hardware
  // variant, forced as a benchmark would force them; gemma2 keeps the post-norm path.
  for (const variant of ['blocked', 'gemv', 'tiled'] as const) {
    it.skipIf(!rt)(`prefill with matmul=${variant} (fused residual and GLU) matches the CPU twin (≤1e-4)`, async () => {
      const old = process.env.CONCORD_KERNEL_VARIANT;
      process.env.CONCORD_KERNEL_VARIANT = `matmul=${variant}`;
      try {
        const dir = scratchDir('concord-matmul-');
        const models = [buildTinyModel('hf-qwen2', join(dir, 'qwen2')).path, fileURLToPath(new URL('./fixtures/hf/gemma2', import.meta.url))];
        for (const path of models) {
          const cpu = await loadModel(path, { device: 'cpu-twin' });
          const gpu = await loadModel(path, { device: rt!, f16: false });
          const seqs = [[1, 5, 9, 2, 7, 3, 8, 4, 6, 10, 11], [1, 2, 3]].map((ids) => ({ ids: ids.map((t) => t % cpu.config.vocabSize) }));
          const [want, got] = [await cpu.scoreBatch(seqs), await gpu.scoreBatch(seqs)];
          seqs.forEach((_, i) => {
            const v = validate(got[i].logprobs, want[i].logprobs, { atol: 1e-4 });
            expect(v.ok, `${path} seq ${i}: ${v.summary}`).toBe(true);
          });
          gpu.dispose();
        }
      } finally {
        if (old === undefined) delete process.env.CONCORD_KERNEL_VARIANT; else process.env.CONCORD_KERNEL_VARIANT = old;
      }
    });
  }

  // 'subgroup-matrix' cannot run on a software adapter; its WGSL (every epilogue) is at least
  // compile-checked on Dawn's null backend, which offers the feature but runs nothing.
  it('subgroup-matrix WGSL (plain, SwiGLU, GeGLU) compiles without errors or warnings on Dawn\'s null backend', async () => {
    const { create } = await import('webgpu');
    const gpu = create(['backend=null', 'enable-dawn-features=allow_unsafe_apis']);
    const adapter = await gpu.requestAdapter();
    expect(adapter, 'dawn.node null backend adapter').toBeTruthy();
    const feature = 'chromium-experimental-subgroup-matrix' as GPUFeatureName;
    expect(adapter!.features.has(feature)).toBe(true);
    const device = await adapter!.requestDevice({ requiredFeatures: ['shader-f16', 'subgroups', feature], requiredLimits: { maxComputeWorkgroupStorageSize: adapter!.limits.maxComputeWorkgroupStorageSize } });
    for (const glu of [null, 'silu', 'gelu_tanh'] as const) {
      const spec = matmulSpec('nk', true, 'subgroup-matrix', { glu, subgroupSize: 32 });
      const module = device.createShaderModule({ code: programSource(spec) });
      const messages = (await module.getCompilationInfo()).messages.map((m) => `${m.type} ${m.lineNum}:${m.linePos} ${m.message}`);
      expect(messages, `glu=${glu}`).toEqual([]);
      // The pipeline (override constants applied) needs 24 KiB of workgroup memory: more than the
      // null adapter's 16 KiB (NVIDIA allows 48), so it is created only where the adapter allows it.
      if (adapter!.limits.maxComputeWorkgroupStorageSize >= 24576) {
        await device.createComputePipelineAsync({ layout: 'auto', compute: { module, entryPoint: spec.entryPoint ?? 'main', constants: spec.constants } });
      }
    }
    device.destroy();
  });
});
