// The quantized-weight matmul (kernels/matmul-quant.ts: matmul/gemv and matmul/tiled composed with
// the block-reading parts over shaders/common/quant.wgsl): Q8_0, Q4_0, Q4_K and Q6_K blocks kept
// as the file's bytes in GPU memory, dequantized in registers, against the twin (ggml's
// dequantization, then the f32 matmul twin), on random blocks with rows of extreme scales. Runs on
// the adapter (CONCORD_REQUIRE_GPU=1).
import { describe, expect, it } from 'vitest';
import { EXTREME_HALVES, QUANT_MATMUL_TYPES, quantMatmulConfigs, quantMatmulSpec, quantMatmulCpu, quantMatmulGpu, quantWeightBytes, randomQuantBlocks, uploadQuantWeight, validateQuantMatmul } from '../kernels/matmul-quant.js';
import { matmulCpu } from '../kernels/matmul.js';
import { dequantize } from '../src/quant/dequant.js';
import { quantizeQ4_0, quantizeQ4_K, quantizeQ6_K, quantizeQ8_0 } from '../src/quant/quantize.js';
import { GGML_TYPE, ggmlTypeName } from '../src/quant/types.js';
import { gpuRuntime, randn, rng } from './helpers/gpu.js';
import { programSource } from '../src/gpu/runtime.js';

describe('quantized-weight matmul (Q8_0, Q4_0, Q4_K, Q6_K)', async () => {
  const rt = await gpuRuntime();

  it('twin = dequantize then matmul; GPU bytes per f16 byte: Q4_0 0.28×, Q4_K 0.28×, Q6_K 0.41×, Q8_0 0.53×', () => {
    const r = rng(7);
    const M = 3, N = 5, K = 256;
    const A = randn(r, M * K), W = randn(r, N * K, 0.1);
    for (const [t, raw] of [[GGML_TYPE.Q8_0, quantizeQ8_0(W)], [GGML_TYPE.Q4_K, quantizeQ4_K(W)], [GGML_TYPE.Q6_K, quantizeQ6_K(W)]] as const) {
      expect(Array.from(quantMatmulCpu(A, raw, t, null, M, N, K))).toEqual(Array.from(matmulCpu(A, dequantize(t, raw, N * K), null, M, N, K, 'nk')));
    }
    expect(quantWeightBytes(GGML_TYPE.Q4_0, 288, 288) / (288 * 288 * 2)).toBeCloseTo(18 / 64, 3);
    expect(quantWeightBytes(GGML_TYPE.Q4_K, 256, 512) / (256 * 512 * 2)).toBeCloseTo(144 / 512, 3);
    expect(quantWeightBytes(GGML_TYPE.Q6_K, 256, 512) / (256 * 512 * 2)).toBeCloseTo(210 / 512, 3);
    expect(quantWeightBytes(GGML_TYPE.Q8_0, 288, 288) / (288 * 288 * 2)).toBeCloseTo(34 / 64, 3);
  });

  it('random blocks put every extreme f16 scale on whole rows', () => {
    const raw = randomQuantBlocks(GGML_TYPE.Q4_K, 5 * EXTREME_HALVES.length, 256, rng(3) as () => number);
    const seen = new Set<number>();
    for (let r = 1; r < 5 * EXTREME_HALVES.length; r += 5) seen.add(raw[r * 144] | (raw[r * 144 + 1] << 8));
    expect([...seen].sort()).toEqual([...EXTREME_HALVES].sort());
  });

  for (const t of QUANT_MATMUL_TYPES) {
    // Every gemv configuration for Q4_K (the one config-dependent part, the K loop, is shared by the types); the default elsewhere.
    const gemv = rt ? quantMatmulConfigs(rt, 'gemv') : [];
    const configs = rt ? [...(t === GGML_TYPE.Q4_K ? gemv : gemv.slice(0, 1)), ...quantMatmulConfigs(rt, 'tiled')] : [];
    for (const config of configs) {
      it.skipIf(!rt)(`GPU ${ggmlTypeName(t)} ${JSON.stringify(config)}: matches the twin (random blocks, extreme-scale rows; plain, bias + accumulate, SwiGLU)`, async () => {
        const v = await validateQuantMatmul(rt!, t, { config });
        expect(v.ok, v.summary).toBe(true);
      }, 120_000);
    }
  }

  it.skipIf(!rt)('GPU: weights from the reference quantizers match the twin, gemv and tiled', async () => {
    const r = rng(11);
    for (const [t, K] of [[GGML_TYPE.Q8_0, 288], [GGML_TYPE.Q4_0, 288], [GGML_TYPE.Q4_K, 512], [GGML_TYPE.Q6_K, 512]] as const) {
      const N = 48, W = randn(r, N * K, 0.05);
      const raw = t === GGML_TYPE.Q8_0 ? quantizeQ8_0(W) : t === GGML_TYPE.Q4_0 ? quantizeQ4_0(W) : t === GGML_TYPE.Q4_K ? quantizeQ4_K(W) : quantizeQ6_K(W);
      for (const M of [4, 40]) {
        const A = randn(r, M * K);
        const bA = rt!.upload(A), bB = uploadQuantWeight(rt!, raw), bC = rt!.upload(new Float32Array(M * N));
        quantMatmulGpu(rt!, { A: bA, B: bB, C: bC, M, N, K, type: t });
        const got = await rt!.readF32(bC, M * N);
        const want = quantMatmulCpu(A, raw, t, null, M, N, K);
        let max = 0;
        for (let i = 0; i < want.length; i++) max = Math.max(max, Math.abs(got[i] - want[i]));
        expect(max, `${ggmlTypeName(t)} M=${M}`).toBeLessThan(1e-4);
        for (const b of [bA, bB, bC]) rt!.release(b);
      }
    }
  }, 120_000);

  it.skipIf(!rt)('subgroup-matrix is refused with the reason where the adapter lacks subgroup matrices (every software adapter)', async () => {
    if (rt!.device.features.has('chromium-experimental-subgroup-matrix' as GPUFeatureName)) return;
    const v = await validateQuantMatmul(rt!, GGML_TYPE.Q4_K, { variant: 'subgroup-matrix' });
    expect(v.ok).toBe(false);
    expect(v.summary).toMatch(/'subgroup-matrix' cannot run on .*chromium-experimental-subgroup-matrix/);
  });

  // Never run here: its WGSL (every type, plain and GLU) is compile-checked on Dawn's null backend,
  // which offers the feature but runs nothing; the GPU bundle's tune step validates it on hardware.
  it('subgroup-matrix form over blocks compiles without errors or warnings on Dawn\'s null backend', async () => {
    const { create } = await import('webgpu');
    const gpu = create(['backend=null', 'enable-dawn-features=allow_unsafe_apis']);
    const adapter = await gpu.requestAdapter();
    expect(adapter, 'dawn.node null backend adapter').toBeTruthy();
    const feature = 'chromium-experimental-subgroup-matrix' as GPUFeatureName;
    const device = await adapter!.requestDevice({ requiredFeatures: ['shader-f16', 'subgroups', feature], requiredLimits: { maxComputeWorkgroupStorageSize: adapter!.limits.maxComputeWorkgroupStorageSize } });
    for (const t of QUANT_MATMUL_TYPES) {
      for (const glu of [null, 'silu'] as const) {
        const spec = quantMatmulSpec(t, 'subgroup-matrix', { glu, subgroupSize: 32 });
        const module = device.createShaderModule({ code: programSource(spec) });
        const messages = (await module.getCompilationInfo()).messages.map((m) => `${m.type} ${m.lineNum}:${m.linePos} ${m.message}`);
        expect(messages, `${ggmlTypeName(t)} glu=${glu}`).toEqual([]);
        if (adapter!.limits.maxComputeWorkgroupStorageSize >= 24576) {
          await device.createComputePipelineAsync({ layout: 'auto', compute: { module, entryPoint: 'main', constants: spec.constants } });
        }
      }
    }
    device.destroy();
  });

  it.skipIf(!rt)('refuses K not a multiple of the block and other types', () => {
    const b = rt!.upload(new Float32Array(4));
    expect(() => quantMatmulGpu(rt!, { A: b, B: b, C: b, M: 1, N: 1, K: 48, type: GGML_TYPE.Q8_0 })).toThrow(/multiple of the Q8_0 block size 32/);
    expect(() => quantMatmulGpu(rt!, { A: b, B: b, C: b, M: 1, N: 1, K: 288, type: GGML_TYPE.Q4_K })).toThrow(/multiple of the Q4_K block size 256/);
    expect(() => quantMatmulGpu(rt!, { A: b, B: b, C: b, M: 1, N: 1, K: 32, type: GGML_TYPE.Q5_0 as never })).toThrow(/Q5_0 is not one of Q8_0, Q4_0, Q4_K, Q6_K/);
    rt!.release(b);
  });
});
