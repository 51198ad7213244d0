// The cost model (bench/cost.ts): FLOPs and fewest bytes of every kernel on small shapes counted
// by hand, a whole prefill summed kernel by kernel (and its matmuls against 2 × parameters × tokens),
// the peak lookup from adapter strings, and the roofline's choice of bound and fraction.

import { describe, expect, test } from 'vitest';
import {
  actCost, addCost, attentionCost, cosineAllPairsCost, cosineRowsCost, embedCost, formatRoofline, kernelClassOf, l2NormalizeCost,
  logprobCost, lookupPeak, matmulCost, meanPoolCost, normCost, PEAK_NAMES, prefillCost, roofline, ropeCost, rowMaxCost,
} from '../bench/cost.js';
import type { ModelConfig } from '../src/models/types.js';

describe('kernel costs (hand-counted)', () => {
  test('matmul: 2·M·N·K FLOPs; A, B (f32 or f16), bias and C once', () => {
    // 2×3×4: A 2·4·4 = 32 B, B 3·4·4 = 48, bias 3·4 = 12, C 2·3·4 = 24
    expect(matmulCost(2, 3, 4, { bias: true })).toEqual({ flops: 48, bytes: 116 });
    expect(matmulCost(2, 3, 4, { f16Weights: true })).toEqual({ flops: 48, bytes: 32 + 24 + 24 });
  });

  test('fused LM head: 2·T·V·d FLOPs; H, W, targets, mask and logp — never the T×V logits', () => {
    // T2 V5 d3: H 24 B, W 60 (f16: 30), targets + mask + logp 3·2·4 = 24
    expect(logprobCost(2, 5, 3)).toEqual({ flops: 60, bytes: 108 });
    expect(logprobCost(2, 5, 3, { f16Weights: true })).toEqual({ flops: 60, bytes: 78 });
  });

  test('attention: 4·hd FLOPs per (query, key) pair and head; causal, window, bidirectional, GQA, real lengths', () => {
    const a = { B: 1, L: 4, nHeads: 2, nKvHeads: 1, headDim: 2 };
    // causal pairs 1+2+3+4 = 10 → 4·2·2·10; Q and O 2·4·4·4 = 128 B, K and V (one KV head) 2·4·2·4 = 64, lengths 4
    expect(attentionCost(a)).toEqual({ flops: 160, bytes: 196 });
    expect(attentionCost({ ...a, window: 2 }).flops).toBe(4 * 2 * 2 * (1 + 2 + 2 + 2));
    expect(attentionCost({ ...a, causal: false }).flops).toBe(4 * 2 * 2 * 16);
    // real length 3 of 4: pairs 6, rows 3
    expect(attentionCost({ ...a, seqLens: [3] })).toEqual({ flops: 96, bytes: 2 * 3 * 4 * 4 + 2 * 3 * 2 * 4 + 4 });
    // two sequences, lengths 4 and 2: pairs 10 + 3; window 2 over n = 5: 1+2+2+2+2
    expect(attentionCost({ ...a, B: 2, seqLens: [4, 2] }).flops).toBe(4 * 2 * 2 * 13);
    expect(attentionCost({ ...a, L: 5, window: 2 }).flops).toBe(4 * 2 * 2 * 9);
    // grouped heads: K/V bytes follow the KV heads, f16 K/V halve them
    expect(attentionCost({ ...a, nKvHeads: 2 }).bytes - attentionCost(a).bytes).toBe(64);
    expect(attentionCost({ ...a, kvBytes: 2 }).bytes).toBe(128 + 32 + 4);
  });

  test('element-wise kernels', () => {
    expect(normCost(3, 4, 'rms')).toEqual({ flops: 48, bytes: 2 * 12 * 4 + 16 });
    expect(normCost(3, 4, 'layer')).toEqual({ flops: 96, bytes: 2 * 12 * 4 + 32 });
    // T2, 2 + 1 heads, hd 4: 2·3·2 = 12 pairs; read + write 2·2·12·4, table 2·4; rotary dim 2: half
    expect(ropeCost(2, 2, 1, 4)).toEqual({ flops: 72, bytes: 192 + 8 });
    expect(ropeCost(2, 2, 1, 4, 2)).toEqual({ flops: 36, bytes: 96 + 4 });
    expect(actCost(10, 'swiglu')).toEqual({ flops: 50, bytes: 120 });
    expect(actCost(10, 'geglu')).toEqual({ flops: 100, bytes: 120 });
    expect(actCost(10, 'gelu_tanh')).toEqual({ flops: 90, bytes: 80 });
    expect(actCost(10, 'gelu_erf')).toEqual({ flops: 50, bytes: 80 });
    expect(addCost(10)).toEqual({ flops: 10, bytes: 120 });
    // B2 L3 d4: ids 6·4, rows 6·4·4, out 6·4·4; learned positions (2 rows < L) once and a scale: 2 FLOPs per element
    expect(embedCost(2, 3, 4)).toEqual({ flops: 0, bytes: 216 });
    expect(embedCost(2, 3, 4, { nPos: 2, scale: 2 })).toEqual({ flops: 48, bytes: 216 + 32 });
    expect(cosineRowsCost(2, 3)).toEqual({ flops: 36, bytes: 56 });
    expect(l2NormalizeCost(2, 4)).toEqual({ flops: 24, bytes: 64 });
    expect(cosineAllPairsCost(2, 3, 4)).toEqual({ flops: 24 + 36 + 48, bytes: 64 + 96 + 104 });
    expect(cosineAllPairsCost(2, 3, 4, { normalize: false })).toEqual(matmulCost(2, 3, 4));
    expect(meanPoolCost(2, 3, 4, [3, 1])).toEqual({ flops: 16 + 8, bytes: 64 + 32 + 8 });
    expect(rowMaxCost(2, 3)).toEqual({ flops: 6, bytes: 24 + 12 + 32 });
  });
});

const tiny: ModelConfig = {
  arch: 'llama', name: 'tiny', vocabSize: 10, dim: 4, hiddenDim: 8, nLayers: 1, nHeads: 2, nKvHeads: 1, headDim: 2, maxSeqLen: 16,
  normEps: 1e-5, norm: 'rms', act: 'swiglu', pos: 'rope', ropeTheta: 10000, ropeLayout: 'interleaved', qkvBias: false, mlpBias: false,
  tiedEmbeddings: false, bosId: 1, eosId: 2, padId: 0,
};

describe('prefillCost', () => {
  test('a one-layer model at B1×L2, kernel by kernel', () => {
    const { perClass, total } = prefillCost(tiny, 1, 2);
    expect(perClass.embed).toEqual({ flops: 0, bytes: 8 + 32 + 32, calls: 1 });
    expect(perClass.norm).toEqual({ flops: 3 * 32, bytes: 3 * 80, calls: 3 }); // attention, MLP, final
    // q 2×4×4, k and v 2×2×4; o 2×4×4 accumulating into the residual (C read and written);
    // gate and up as one GLU matmul 2×(2·8)×4 with SwiGLU's 5 FLOPs per output in its epilogue;
    // down 2×4×8 accumulating. No add or act passes.
    expect(perClass.matmul).toEqual({ flops: 64 + 32 + 32 + 64 + (256 + 80) + 128, bytes: 128 + 80 + 80 + 160 + 352 + 256, calls: 6 });
    // RoPE fused into attention: its 36 FLOPs, and only its 1-entry frequency table read
    expect(perClass.rope).toBeUndefined();
    expect(perClass.attention).toEqual({ flops: 48 + 36, bytes: 100 + 4, calls: 1 });
    expect(perClass.act).toBeUndefined();
    expect(perClass.add).toBeUndefined();
    expect(perClass.logprob).toEqual({ flops: 160, bytes: 216, calls: 1 });
    expect(total.flops).toBe(0 + 96 + 656 + 84 + 160);
    expect(total.calls).toBe(12);
    // unfused RoPE: a pass of its own
    const u = prefillCost(tiny, 1, 2, { ropeFused: false });
    expect(u.perClass.rope).toEqual({ flops: 36, bytes: 100, calls: 1 });
    expect(u.perClass.attention).toEqual({ flops: 48, bytes: 100, calls: 1 });
    // f16 weights halve the weight bytes of the 6 matmuls (16+8+8+16+32+32+32 = 144 weights) and the head (40)
    const h = prefillCost(tiny, 1, 2, { f16Weights: true });
    expect(perClass.matmul!.bytes - h.perClass.matmul!.bytes).toBe(2 * 144);
    expect(perClass.logprob!.bytes - h.perClass.logprob!.bytes).toBe(2 * 40);
  });

  test('options and config: q/k norms, post norms, GELU, biases, learned positions, windows, no head', () => {
    const qk = prefillCost(tiny, 1, 2, { qkNorm: true, postNorms: true, head: false });
    expect(qk.perClass.norm!.calls).toBe(3 + 2 + 2);
    // post norms: the o- and down-projections write proj, which is normed and added (no accumulate)
    expect(qk.perClass.add!.calls).toBe(2);
    expect(qk.perClass.matmul!.bytes).toBe(prefillCost(tiny, 1, 2).perClass.matmul!.bytes - 2 * (2 * 4 * 4));
    expect(qk.perClass.logprob).toBeUndefined();
    const gpt: ModelConfig = { ...tiny, arch: 'gpt2', act: 'gelu_tanh', pos: 'learned', norm: 'layer', qkvBias: true, mlpBias: true };
    const g = prefillCost(gpt, 1, 2);
    expect(g.perClass.rope).toBeUndefined();
    expect(g.perClass.matmul!.calls).toBe(6);
    expect(g.perClass.act).toEqual({ flops: 9 * 16, bytes: 2 * 16 * 4, calls: 1 });
    expect(g.perClass.embed!.flops).toBe(8); // the position add
    const win = prefillCost({ ...tiny, nLayers: 2, layerWindows: [0, 1] }, 1, 4, { ropeFused: false });
    expect(win.perClass.attention!.flops).toBe(4 * 2 * 2 * (10 + 4));
  });

  test('stories15M shape: the matmuls are 2 × linear parameters × tokens (+ the GLU epilogue), the head 2 × V·d × tokens', () => {
    const s: ModelConfig = { ...tiny, vocabSize: 32000, dim: 288, hiddenDim: 768, nLayers: 6, nHeads: 6, nKvHeads: 6, headDim: 48, maxSeqLen: 256 };
    const T = 4 * 64;
    const { perClass } = prefillCost(s, 4, 64);
    const params = 6 * (4 * 288 * 288 + 3 * 288 * 768);
    expect(perClass.matmul!.flops).toBe(2 * params * T + 6 * 5 * T * 768);
    expect(perClass.logprob!.flops).toBe(2 * 32000 * 288 * T);
  });

  test('kernelClassOf maps profiled pass labels (programKey) onto classes', () => {
    expect(kernelClassOf('matmul/tiled<f16>:main[TILE=64]')).toBe('matmul');
    expect(kernelClassOf('rmsnorm:main[WG=64]')).toBe('norm');
    expect(kernelClassOf('layernorm:main')).toBe('norm');
    expect(kernelClassOf('act/swiglu:inplace[WG=256]')).toBe('act');
    expect(kernelClassOf('logprob/combine:main')).toBe('logprob');
    expect(kernelClassOf('attention:main[CAUSAL=0]')).toBe('attention');
    // composed shaders (composeShader names)
    expect(kernelClassOf('rope+sincos:main[HALF=1,WG=64]')).toBe('rope');
    expect(kernelClassOf('attention/flash[hd=64,bk=32]:main')).toBe('attention');
    expect(kernelClassOf('matmul/blocked+glu<f16>:main[BK=16]')).toBe('matmul');
    expect(kernelClassOf('something-new:main')).toBeNull();
  });
});

describe('peaks', () => {
  test('adapter strings as Dawn gives them find their part; the first (most specific) entry wins', () => {
    const at = (device: string, description = '', vendor = 'nvidia') => lookupPeak({ vendor, architecture: '', device, description })?.name ?? null;
    expect(at('nvidia-h200', 'NVIDIA: 580.159')).toBe('NVIDIA H200 SXM');
    expect(lookupPeak({ device: 'nvidia-h200' })).toEqual({ name: 'NVIDIA H200 SXM', f32: 67, f16: 133.8, matrix: 989, gbps: 4800 });
    expect(at('nvidia-h200-nvl')).toBe('NVIDIA H200 NVL');
    expect(at('NVIDIA H100 80GB HBM3')).toBe('NVIDIA H100 SXM5');
    expect(at('nvidia-h100-pcie')).toBe('NVIDIA H100 PCIe');
    expect(at('NVIDIA A100-SXM4-40GB')).toBe('NVIDIA A100 40GB');
    expect(at('NVIDIA A100 80GB PCIe')).toBe('NVIDIA A100 80GB PCIe');
    expect(at('NVIDIA A100-SXM4-80GB')).toBe('NVIDIA A100 SXM4 80GB');
    expect(at('nvidia-l4')).toBe('NVIDIA L4');
    expect(at('NVIDIA GeForce RTX 4070 Ti SUPER')).toBe('NVIDIA GeForce RTX 4070 Ti SUPER');
    expect(at('NVIDIA GeForce RTX 4070 Ti')).toBe('NVIDIA GeForce RTX 4070 Ti');
    expect(at('NVIDIA GeForce RTX 4070')).toBe('NVIDIA GeForce RTX 4070');
    expect(at('nvidia-geforce-rtx-3060')).toBe('NVIDIA GeForce RTX 3060');
    expect(at('NVIDIA GeForce RTX 5090')).toBe('NVIDIA GeForce RTX 5090');
    expect(at('NVIDIA GeForce RTX 4090 Laptop GPU')).toBeNull();
    expect(at('apple-m2-max', 'Metal driver', 'apple')).toBe('Apple M2 Max');
    expect(at('Apple M1', '', 'apple')).toBe('Apple M1');
    expect(at('Apple M4 Pro', '', 'apple')).toBe('Apple M4 Pro');
    expect(at('Intel(R) Arc(TM) B580 Graphics', '', 'intel')).toBe('Intel Arc B580');
    expect(at('intel-r-arc-tm-a770-graphics', '', 'intel')).toBe('Intel Arc A770');
    for (const need of ['H100', 'H200', 'A100', 'L4', 'RTX 30', 'RTX 40', 'RTX 50', 'Apple M1', 'Apple M2', 'Apple M3', 'Apple M4', 'Arc A770', 'Arc B580']) {
      expect(PEAK_NAMES.some((n) => n.includes(need)), need).toBe(true);
    }
  });

  test('software and unknown adapters have no peak', () => {
    expect(lookupPeak({ vendor: 'mesa', architecture: 'software', device: 'llvmpipe-llvm-15-0-6-256-bits-', description: 'llvmpipe: Mesa 25.0.7' })).toBeNull();
    expect(lookupPeak({ vendor: 'google', device: 'swiftshader-device-subzero', description: 'SwiftShader driver' })).toBeNull();
    expect(lookupPeak({ vendor: 'nvidia', architecture: 'hopper', device: '', description: '' })).toBeNull();
    expect(lookupPeak({})).toBeNull();
  });
});

describe('roofline', () => {
  const h200 = lookupPeak({ device: 'nvidia-h200' })!;

  test('a large matmul is compute-bound: fraction = achieved GFLOP/s over the f32 (or matrix) ceiling', () => {
    const c = matmulCost(4096, 4096, 4096);
    const r = roofline(c, 10, h200);
    expect(r.bound).toBe('compute');
    expect(r.gflops).toBeCloseTo((2 * 4096 ** 3) / 0.01 / 1e9, 6);
    expect(r.fraction!).toBeCloseTo(r.gflops / 67000, 12);
    expect(r.ceiling).toBe('f32 67 TFLOP/s');
    const m = roofline(c, 10, h200, 'matrix');
    expect(m.bound).toBe('compute');
    expect(m.fraction!).toBeCloseTo(r.gflops / 989000, 12);
    expect(formatRoofline(r)).toMatch(/^13743\.90 GFLOP\/s {2}\d+\.\d\d GB\/s {2}20\.5% of f32 67 TFLOP\/s \(compute-bound\)$/);
  });

  test('an add is memory-bound: fraction = achieved GB/s over the bandwidth', () => {
    const r = roofline(addCost(1e6), 1, h200);
    expect(r.bound).toBe('memory');
    expect(r.gbps).toBeCloseTo(12, 9);
    expect(r.fraction!).toBeCloseTo(12 / 4800, 12);
    expect(r.ceiling).toBe('4800 GB/s');
  });

  test('the bound follows the ceiling: a skinny f16-weight matmul is compute-bound on f32 ALUs, memory-bound on matrix units', () => {
    const c = matmulCost(64, 4096, 4096, { f16Weights: true });
    // f32: 2.15e9 / 67e12 = 32 µs > 35.7e6 B / 4.8e12 = 7.4 µs; matrix: 2.2 µs < 7.4 µs
    expect(roofline(c, 0.1, h200, 'f32').bound).toBe('compute');
    expect(roofline(c, 0.1, h200, 'matrix').bound).toBe('memory');
    expect(roofline(c, 0.1, h200, 'matrix').fraction!).toBeCloseTo(c.bytes / 1e-4 / 1e9 / 4800, 12);
  });

  test('without a peak: rates only, "peak unknown"', () => {
    const r = roofline(matmulCost(2, 3, 4), 1, null);
    expect(r).toEqual({ gflops: 48 / 1e-3 / 1e9, gbps: 104 / 1e-3 / 1e9, bound: null, fraction: null, ceiling: null });
    expect(formatRoofline(r)).toMatch(/peak unknown$/);
  });
});

describe('on the adapter: bench kernels and the profile carry the cost model', async () => {
  const { gpuRuntime } = await import('./helpers/gpu.js');
  const rt = await gpuRuntime();

  test.skipIf(!rt)('runKernelBench (tiny): every case has flops, bytes and achieved rates; a software adapter has no peak', async () => {
    const { runKernelBench } = await import('../bench/kernels.js');
    const lines: string[] = [];
    const results = await runKernelBench({ size: 'tiny', devices: ['webgpu'], rt: rt!, log: (l) => lines.push(l) });
    expect(results.length).toBeGreaterThan(3);
    for (const r of results) {
      expect(r.validated, `${r.kernel} ${r.variant}`).toBe(true);
      expect(r.flops! > 0 && r.bytes! > 0, `${r.kernel} ${r.variant}`).toBe(true);
      expect(r.achievedGflops).toBeCloseTo(r.flops! / r.ms / 1e6, 9);
      expect(r.achievedGbps).toBeCloseTo(r.bytes! / r.ms / 1e6, 9);
      // the old fields keep their meaning
      if (r.kernel === 'matmul') expect(r.gflops).toBeCloseTo(r.achievedGflops!, 9);
      if (rt!.handle.info.software) expect([r.peak, r.bound, r.peakFraction]).toEqual([null, null, null]);
    }
    const mm = results.find((r) => r.kernel === 'matmul')!;
    expect(mm).toMatchObject(matmulCost(32, 96, 64, { bias: true }));
    if (rt!.handle.info.software) {
      expect(lines[0]).toMatch(/^peak unknown for .*: no % of peak column$/);
      expect(lines.slice(1).every((l) => l.endsWith('peak unknown'))).toBe(true);
    }
  }, 300_000);

  test.skipIf(!rt)('runProfile: per-class FLOPs and bytes are prefillCost\'s, every pass is classified, the prefill sums them', async () => {
    const { runProfile } = await import('../bench/profile.js');
    const r = await runProfile({ batch: 2, len: 8, rt: rt! });
    expect(r.validatedMaxAbsErr).toBeLessThan(1e-3);
    const { loadWeights } = await import('../src/models/load.js');
    const cfg = (await loadWeights('default')).config;
    const want = prefillCost(cfg, 2, r.len, { seqLens: r.seqLens });
    for (const c of r.classes) {
      expect(c.class).not.toBe('unclassified');
      const w = want.perClass[c.class as keyof typeof want.perClass]!;
      expect({ flops: c.flops, bytes: c.bytes, calls: c.calls }, c.class).toEqual({ flops: w.flops, bytes: w.bytes, calls: w.calls });
      expect(c.gflops).toBeCloseTo(c.flops / c.ms / 1e6, 6);
    }
    expect(r.classes.find((c) => c.class === 'matmul')!.passes).toBe(6 * cfg.nLayers); // q, k, v, o (+residual), [gate; up] GLU, down (+residual)
    expect(r.prefill).toMatchObject({ flops: want.total.flops, bytes: want.total.bytes, calls: want.total.calls });
    expect(r.prefill.ms).toBeCloseTo(r.classes.reduce((s, c) => s + c.ms, 0), 6);
  }, 300_000);
});
