// `concord bench kernels` / `npm run bench:kernels`: every kernel at a few sizes, on WebGPU and on
// the CPU path. Each case is validated first (GPU against the CPU twin on the full output; the
// CPU twin against a naive reference on sampled entries), then timed: the first run is reported
// separately (pipeline compilation, first upload), then repeated runs until ~0.5 s have passed.
// GPU time is wall-clock around submit + onSubmittedWorkDone, so it includes the dispatch and
// synchronisation overheads a real caller pays.
// Each case carries its cost-model figures (bench/cost.ts: FLOPs and fewest bytes of one run);
// the report adds achieved GFLOP/s and GB/s, and on an adapter in the peak table the fraction of
// the applicable ceiling and which bound (compute or memory) applies.

import { benchAttention } from './attention.js';
import { cosineAllPairsCpu, cosineAllPairsGpu, cosineRowsCpu, cosineRowsGpu } from '../kernels/cosine.js';
import { candidateLogprobCpu, candidateLogprobGpu, logprobCpu, logprobGemmConfigFor, sgmatProblem, logprobFlops, logprobGpu, LogprobVariant, logprobWorkgroupBytes } from '../kernels/logprob.js';
import { kernelVariant } from '../src/gpu/variants.js';
import { matmulCpu, matmulFlops, matmulGpu, MatmulVariant } from '../kernels/matmul.js';
import { logSoftmaxGpu } from '../kernels/decode-attention.js';
import { cosineAllPairsCost, cosineRowsCost, formatPeak, formatRoofline, logprobCost, lookupPeak, matmulCost, type MathKind, roofline } from './cost.js';
import { GpuRuntime } from '../src/gpu/runtime.js';
import { QUANT_MATMUL_TYPES, quantMatmulCpu, quantMatmulGpu, randomQuantBlocks, type QuantMatmulType } from '../kernels/matmul-quant.js';
import { quantizeQ4_0, quantizeQ4_K, quantizeQ6_K, quantizeQ8_0 } from '../src/quant/quantize.js';
import { ggmlTypeName } from '../src/quant/types.js';
import { rng } from '../src/util/rng.js';

/** llama.cpp's reference quantizers per block type (src/quant/quantize.ts). */
const QUANTIZERS: Record<QuantMatmulType, (x: Float32Array) => Uint8Array> = { 8: quantizeQ8_0, 2: quantizeQ4_0, 12: quantizeQ4_K, 14: quantizeQ6_K };
import { roundThroughF16, toF16 } from '../src/util/f16.js';
import { validate } from '../src/validate.js';

export interface KernelBenchResult {
  kernel: string;
  variant: string;
  device: string;
  shape: string;
  validated: boolean;
  maxAbsErr: number;
  firstMs: number;
  ms: number;
  iters: number;
  gflops?: number;
  gbps?: number;
  /** Cost model (bench/cost.ts): FLOPs and fewest bytes of one run. */
  flops?: number;
  bytes?: number;
  /** Arithmetic the variant uses, so which FLOP ceiling applies (default f32; 'matrix' for subgroup-matrix variants). */
  math?: MathKind;
  /** From flops / bytes and ms. */
  achievedGflops?: number;
  achievedGbps?: number;
  /** The peak-table entry used (null: peak unknown, e.g. software adapters and the CPU). */
  peak?: string | null;
  /** 'compute' or 'memory': which ceiling is the larger time; null when the peak is unknown. */
  bound?: 'compute' | 'memory' | null;
  /** Achieved / the applicable ceiling; null when the peak is unknown. */
  peakFraction?: number | null;
  /** The applicable ceiling, e.g. 'f32 67 TFLOP/s' or '4800 GB/s'. */
  ceiling?: string | null;
  /** GPU bytes of the weight buffer as uploaded (qmatmul rows: the blocks, or the peer's f16/f32 values). */
  weightBytes?: number;
}

export interface KernelBenchOptions {
  /** 'small' fits software adapters; 'large' is for real GPUs; 'tiny' is the GPU bundle's short rehearsal (bench/gpu). */
  size?: 'tiny' | 'small' | 'large';
  devices?: ('webgpu' | 'cpu')[];
  rt?: GpuRuntime | null;
  log?: (line: string) => void;
}

const now = () => performance.now();

function lcg(seed: number) {
  let s = seed >>> 0;
  return () => ((s = (Math.imul(s, 1664525) + 1013904223) >>> 0) / 2 ** 32) * 2 - 1;
}
function rand(n: number, seed: number, scale = 1): Float32Array {
  const r = lcg(seed), out = new Float32Array(n);
  for (let i = 0; i < n; i++) out[i] = r() * scale;
  return out;
}

async function timeIt(run: () => Promise<void> | void, minMs = 500, maxIters = 50): Promise<{ firstMs: number; ms: number; iters: number }> {
  let t = now();
  await run();
  const firstMs = now() - t;
  let iters = 0;
  t = now();
  while (iters < 3 || (now() - t < minMs && iters < maxIters)) {
    await run();
    iters++;
  }
  return { firstMs, ms: (now() - t) / iters, iters };
}

/** Independent naive references for sampled entries, to validate the CPU twins themselves. */
function naiveDot(a: Float32Array, ao: number, b: Float32Array, bo: number, n: number, bStride = 1): number {
  let s = 0;
  for (let k = 0; k < n; k++) s += a[ao + k] * b[bo + k * bStride];
  return s;
}

interface Shapes { matmul: [number, number, number][]; qmatmul: [number, number, number][]; logprob: [number, number, number][]; candidates: [number, number, number, number][]; cosine: [number, number][]; allpairs: [number, number, number][] }

const SHAPES: Record<'tiny' | 'small' | 'large', Shapes> = {
  tiny: { matmul: [[32, 96, 64]], qmatmul: [[1, 256, 256], [40, 256, 256]], logprob: [[8, 2000, 64]], candidates: [[4, 5, 2000, 64]], cosine: [[64, 64]], allpairs: [[32, 32, 64]] },
  // (M, N, K): a stories15M-sized projection and FFN; (T, V, d): stories15M's head; candidates
  // (R prompts, K candidates, V, d): a group of rating prompts on stories15M's head.
  small: { matmul: [[128, 288, 288], [128, 768, 288]], qmatmul: [[1, 768, 512], [128, 768, 512]], logprob: [[32, 32000, 288]], candidates: [[16, 5, 32000, 288]], cosine: [[256, 384]], allpairs: [[256, 256, 384]] },
  large: { matmul: [[2048, 2048, 2048], [4096, 4096, 4096]], qmatmul: [[1, 4096, 4096], [512, 4096, 4096]], logprob: [[1024, 32000, 2048], [512, 151936, 896]], candidates: [[64, 9, 151936, 896]], cosine: [[16384, 768]], allpairs: [[4096, 4096, 384]] },
};

export async function runKernelBench(opts: KernelBenchOptions = {}): Promise<KernelBenchResult[]> {
  const size = opts.size ?? 'small';
  const shapes = SHAPES[size];
  const devices = opts.devices ?? ['webgpu', 'cpu'];
  const rt = opts.rt ?? null;
  const log = opts.log ?? (() => {});
  const out: KernelBenchResult[] = [];
  const cpuName = `cpu (JavaScript, 1 thread)`;
  const gpuName = rt ? `webgpu: ${rt.name}` : '';
  const gpuPeak = rt ? lookupPeak(rt.handle.info) : null;
  if (rt) log(gpuPeak ? `peak ${formatPeak(gpuPeak)}` : `peak unknown for ${rt.name}: no % of peak column`);
  const push = (r: KernelBenchResult) => {
    let rates = (r.gflops !== undefined ? `  ${r.gflops.toFixed(2)} GFLOP/s` : '') + (r.gbps !== undefined ? `  ${r.gbps.toFixed(2)} GB/s` : '');
    if (r.flops !== undefined && r.bytes !== undefined) {
      const peak = r.device === gpuName ? gpuPeak : null;
      const math = r.math ?? (/matrix|subgroup/i.test(r.variant) ? 'matrix' : 'f32');
      const roof = roofline({ flops: r.flops, bytes: r.bytes }, r.ms, peak, math);
      Object.assign(r, { math, achievedGflops: roof.gflops, achievedGbps: roof.gbps, peak: peak?.name ?? null, bound: roof.bound, peakFraction: roof.fraction, ceiling: roof.ceiling });
      rates = `  ${formatRoofline(roof)}`;
    }
    out.push(r);
    log(`${r.kernel.padEnd(8)} ${r.variant.padEnd(12)} ${r.device.padEnd(28).slice(0, 28)} ${r.shape.padEnd(22)} ${r.validated ? 'valid' : 'INVALID'} err ${r.maxAbsErr.toExponential(1)}  ${r.ms.toFixed(2)} ms${rates}`);
  };

  // ---- matmul ----
  for (const [M, N, K] of shapes.matmul) {
    const A = rand(M * K, 1), B = rand(N * K, 2), bias = rand(N, 3);
    const shape = `${M}x${N}x${K}`;
    const flops = matmulFlops(M, N, K);
    // Large shapes: the CPU twin (one JavaScript thread) computes the first 64 rows only, and the
    // GPU result is validated on those rows (a 4096³ product takes minutes in JavaScript).
    const Mref = size === 'large' ? Math.min(M, 64) : M;
    const want = matmulCpu(A.subarray(0, Mref * K), B, bias, Mref, N, K, 'nk');
    if (devices.includes('cpu')) {
      let maxErr = 0;
      for (let i = 0; i < 64; i++) {
        const m = (i * 7919) % Mref, n = (i * 104729) % N;
        maxErr = Math.max(maxErr, Math.abs(want[m * N + n] - (naiveDot(A, m * K, B, n * K, K) + bias[n])));
      }
      const t = await timeIt(() => { matmulCpu(A, B, bias, M, N, K, 'nk'); });
      push({ kernel: 'matmul', variant: 'f32 nk', device: cpuName, shape, validated: maxErr < 1e-3, maxAbsErr: maxErr, ...t, gflops: flops / t.ms / 1e6, ...matmulCost(M, N, K, { bias: true }) });
    }
    if (rt && devices.includes('webgpu')) {
      const names: MatmulVariant[] = ['blocked', 'gemv', 'tiled', 'direct']; // 'subgroup-matrix' is timed by the tune step (src/tune/index.ts), where the adapter offers it
      const variants = names.map((variant) => ({ variant, f16: false }));
      if (rt.hasF16) variants.push({ variant: 'blocked', f16: true }, { variant: 'gemv', f16: true }, { variant: 'tiled', f16: true });
      for (const { variant, f16 } of variants) {
        const bufs = { A: rt.upload(A), B: rt.upload(f16 ? toF16(B) : B), bias: rt.upload(bias), C: rt.acquire(M * N * 4) };
        const ref = f16 ? matmulCpu(A.subarray(0, Mref * K), roundThroughF16(B), bias, Mref, N, K, 'nk') : want;
        const run = async () => { matmulGpu(rt, { ...bufs, M, N, K, layout: 'nk', f16, variant }); await rt.sync(); };
        await run();
        const v = validate((await rt.readF32(bufs.C, M * N)).subarray(0, Mref * N), ref, { atol: 1e-3, rtol: 1e-4 });
        const t = await timeIt(run);
        push({ kernel: 'matmul', variant: f16 ? `${variant} f16-W` : `${variant} f32`, device: gpuName, shape, validated: v.ok, maxAbsErr: v.maxAbsErr, ...t, gflops: flops / t.ms / 1e6, ...matmulCost(M, N, K, { bias: true, f16Weights: f16 }) });
        for (const b of Object.values(bufs)) rt.release(b);
      }
    }
  }

  // ---- matmul over GGUF blocks (kernels/matmul-quant.ts): each type × variant against its twin,
  // then timed, with the f16-weight matmul (the policy's variant for the shape, or f32 without
  // shader-f16) as the peer in the same run. weightBytes: the uploaded buffers' sizes. ----
  if (rt && devices.includes('webgpu')) {
    const quantCache = new Map<string, Uint8Array>(); // the same W (seeded) per N×K: quantized once
    for (const [M, N, K] of shapes.qmatmul) {
      const A = rand(M * K, 6), W = rand(N * K, 7, 0.05);
      const shape = `${M}x${N}x${K}`, flops = matmulFlops(M, N, K);
      const Mref = size === 'large' ? Math.min(M, 16) : M;
      const minMs = size === 'tiny' ? 50 : 200;
      const f16 = rt.hasF16;
      {
        // Weights in persistent buffers (exact sizes; the pool rounds uploads up to its buckets), as models hold them.
        const bufs = { A: rt.upload(A), B: rt.persistent(f16 ? toF16(W) : W, 'bench peer W'), C: rt.acquire(M * N * 4) };
        const ref = matmulCpu(A.subarray(0, Mref * K), f16 ? roundThroughF16(W) : W, null, Mref, N, K, 'nk');
        const run = async () => { matmulGpu(rt, { ...bufs, M, N, K, layout: 'nk', f16 }); await rt.sync(); };
        await run();
        const v = validate((await rt.readF32(bufs.C, M * N)).subarray(0, Mref * N), ref, { atol: 1e-3, rtol: 1e-4 });
        const t = await timeIt(run, minMs);
        push({ kernel: 'qmatmul', variant: `${f16 ? 'f16' : 'f32'}-W peer`, device: gpuName, shape, validated: v.ok, maxAbsErr: v.maxAbsErr, ...t, gflops: flops / t.ms / 1e6, weightBytes: bufs.B.size, ...matmulCost(M, N, K, { f16Weights: f16 }) });
        rt.release(bufs.A); rt.release(bufs.C); rt.dropPersistent(bufs.B);
      }
      for (const type of QUANT_MATMUL_TYPES) {
        // The reference quantizers on small shapes; random blocks on 'large' ones, where the JavaScript
        // Q4_K quantizer would take ~12 s per 4096² weight (the timing does not depend on the values).
        const key = `${type}:${N}x${K}`;
        const raw = quantCache.get(key) ?? (size === 'large' ? randomQuantBlocks(type, N, K, rng(8 + type), 0) : QUANTIZERS[type](W));
        quantCache.set(key, raw);
        const ref = quantMatmulCpu(A.subarray(0, Mref * K), raw, type, null, Mref, N, K);
        for (const variant of ['gemv', 'tiled'] as const) {
          const bufs = { A: rt.upload(A), B: rt.persistent(raw.length % 4 ? Uint8Array.from({ length: raw.length + 4 - (raw.length % 4) }, (_, i) => raw[i] ?? 0) : raw, 'bench blocks'), C: rt.acquire(M * N * 4) };
          const run = async () => { quantMatmulGpu(rt, { ...bufs, M, N, K, type, variant }); await rt.sync(); };
          await run();
          const v = validate((await rt.readF32(bufs.C, M * N)).subarray(0, Mref * N), ref, { atol: 1e-3, rtol: 1e-4 });
          const t = await timeIt(run, minMs);
          push({ kernel: 'qmatmul', variant: `${ggmlTypeName(type)} ${variant}`, device: gpuName, shape, validated: v.ok, maxAbsErr: v.maxAbsErr, ...t, gflops: flops / t.ms / 1e6, weightBytes: bufs.B.size, flops, bytes: 4 * M * K + 4 * M * N + bufs.B.size });
          rt.release(bufs.A); rt.release(bufs.C); rt.dropPersistent(bufs.B);
        }
      }
    }
  }

  // ---- fused LM-head log-likelihood ----
  for (const [T, V, d] of shapes.logprob) {
    const H = rand(T * d, 4), W = rand(V * d, 5, 0.2);
    const targets = new Uint32Array(T).map((_, i) => (i * 7919) % V);
    const mask = new Uint32Array(T).fill(1);
    const shape = `T${T} V${V} d${d}`;
    const flops = logprobFlops(T, V, d);
    const cpuT = Math.min(T, size === 'large' ? 16 : T); // the CPU twin on a slice of rows for large shapes
    const want = logprobCpu(H.subarray(0, cpuT * d), W, targets.subarray(0, cpuT), mask.subarray(0, cpuT), cpuT, V, d);
    if (devices.includes('cpu')) {
      // naive reference: materialise all logits, then log-softmax, for a few rows
      let maxErr = 0;
      for (const t of [0, cpuT >> 1, cpuT - 1]) {
        const logits = Array.from({ length: V }, (_, v) => naiveDot(H, t * d, W, v * d, d));
        const m = Math.max(...logits);
        const lse = m + Math.log(logits.reduce((s, x) => s + Math.exp(x - m), 0));
        maxErr = Math.max(maxErr, Math.abs(want.logp[t] - (logits[targets[t]] - lse)));
      }
      const t = await timeIt(() => { logprobCpu(H.subarray(0, cpuT * d), W, targets.subarray(0, cpuT), mask.subarray(0, cpuT), cpuT, V, d); }, 300, 5);
      push({ kernel: 'logprob', variant: 'f64', device: cpuName, shape: cpuT === T ? shape : `T${cpuT} V${V} d${d}`, validated: maxErr < 1e-4, maxAbsErr: maxErr, ...t, gflops: logprobFlops(cpuT, V, d) / t.ms / 1e6, ...logprobCost(cpuT, V, d) });
    }
    if (rt && devices.includes('webgpu')) {
      const variants: LogprobVariant[] = [];
      for (const wg of [32, 64, 128]) if (logprobWorkgroupBytes(wg) <= rt.limits.maxComputeWorkgroupStorageSize) variants.push({ wg, f16: false, kind: 'tiled' });
      variants.push({ wg: 64, f16: false, kind: 'direct' });
      if (rt.hasF16) variants.push({ wg: 64, f16: true, kind: 'tiled' });
      variants.push({ f16: false, kind: 'gemm' });
      if (rt.hasF16) variants.push({ f16: true, kind: 'gemm' });
      variants.push({ f16: false }); // kind from kernelVariant(): the adapter's default or CONCORD_KERNEL_VARIANT's
      // sgmat only where the adapter can run it (sgmatProblem says why not); validated on f16-rounded H and W.
      if (sgmatProblem(rt).problem === null) variants.push({ f16: true, kind: 'sgmat' });
      const { bm, bn, bk } = logprobGemmConfigFor(T, rt.limits);
      const label = (v: LogprobVariant) => (!v.kind ? `default=${kernelVariant(rt, 'logprob')}` : v.kind === 'gemm' ? `gemm ${bm}x${bn}x${bk}` : v.kind === 'sgmat' ? 'sgmat subgroup-matrix' : `${v.kind} wg${v.wg}`) + (v.f16 ? ' f16-W' : '');
      for (const variant of variants) {
        const bufs = { H: rt.upload(H), W: rt.upload(variant.f16 ? toF16(W) : W), targets: rt.upload(targets), mask: rt.upload(mask), logp: rt.acquire(T * 4) };
        const hRef = variant.kind === 'sgmat' ? roundThroughF16(H.subarray(0, cpuT * d)) : H.subarray(0, cpuT * d); // sgmat: H in f16 too
        const ref = variant.f16 ? logprobCpu(hRef, roundThroughF16(W), targets.subarray(0, cpuT), mask.subarray(0, cpuT), cpuT, V, d) : want;
        const run = async () => { logprobGpu(rt, { ...bufs, T, V, d, variant }); await rt.sync(); };
        await run();
        const got = (await rt.readF32(bufs.logp, T)).subarray(0, cpuT);
        const v = validate(got, ref.logp, { atol: 1e-4 });
        const t = await timeIt(run, 500, 20);
        push({ kernel: 'logprob', variant: label(variant), device: gpuName, shape, validated: v.ok, maxAbsErr: v.maxAbsErr, ...t, gflops: flops / t.ms / 1e6, ...logprobCost(T, V, d, { f16Weights: variant.f16 }) });
        for (const b of Object.values(bufs)) rt.release(b);
      }
    }
  }

  // ---- the candidate head (rating prompts): K log-probs per prompt at its last row ----
  // Timed with the readback, as src/signals/candidates.ts pays it, beside the route it replaced:
  // full logits (the LM-head matmul), the log-softmax rows and R×V floats read back.
  for (const [R, K, V, d] of shapes.candidates) {
    const H = rand(R * d, 10), W = rand(V * d, 11, 0.2);
    const cands = new Uint32Array(K).map((_, j) => (j * 7919 + 13) % V);
    const shape = `R${R} K${K} V${V} d${d}`;
    const want = candidateLogprobCpu(H, W, cands, R, V, d);
    if (devices.includes('cpu')) {
      let maxErr = 0; // the twin against materialised logits for a few rows
      for (const r of [0, R - 1]) {
        const logits = Array.from({ length: V }, (_, v) => naiveDot(H, r * d, W, v * d, d));
        const m = Math.max(...logits);
        const lse = m + Math.log(logits.reduce((s, x) => s + Math.exp(x - m), 0));
        cands.forEach((c, j) => { maxErr = Math.max(maxErr, Math.abs(want[r * K + j] - (logits[c] - lse))); });
      }
      const t = await timeIt(() => { candidateLogprobCpu(H, W, cands, R, V, d); }, 300, 5);
      push({ kernel: 'cand', variant: 'f64', device: cpuName, shape, validated: maxErr < 1e-4, maxAbsErr: maxErr, ...t, gflops: logprobFlops(R, V, d) / t.ms / 1e6, ...logprobCost(R, V, d) });
    }
    if (rt && devices.includes('webgpu')) {
      const variants: LogprobVariant[] = [{ f16: false }, { f16: false, kind: 'direct' }, { f16: false, kind: 'gemm' }];
      if (rt.hasF16) variants.push({ f16: true, kind: 'gemm' });
      for (const variant of variants) {
        const bufs = { H: rt.upload(H), W: rt.upload(variant.f16 ? toF16(W) : W), candidates: rt.upload(cands), out: rt.acquire(R * K * 4) };
        const ref = variant.f16 ? candidateLogprobCpu(H, roundThroughF16(W), cands, R, V, d) : want;
        let got: ArrayLike<number> = [];
        const run = async () => { candidateLogprobGpu(rt, { ...bufs, R, K, V, d, variant }); got = await rt.readF32(bufs.out, R * K); };
        await run();
        const v = validate(got, ref, { atol: 1e-4, rtol: 1e-5 });
        const t = await timeIt(run, 500, 20);
        const name = (variant.kind ?? `default=${kernelVariant(rt, 'logprob')}`) + (variant.f16 ? ' f16-W' : '');
        push({ kernel: 'cand', variant: name, device: gpuName, shape, validated: v.ok, maxAbsErr: v.maxAbsErr, ...t, gflops: logprobFlops(R, V, d) / t.ms / 1e6, ...logprobCost(R, V, d, { f16Weights: variant.f16 }) });
        for (const b of Object.values(bufs)) rt.release(b);
      }
      // The replaced route: logits [R, V], log-softmax in place, every row read back, gathered on the host.
      const bufs = { A: rt.upload(H), B: rt.upload(W), C: rt.acquire(R * V * 4) };
      const rows = new Float64Array(R * K);
      const run = async () => {
        matmulGpu(rt, { A: bufs.A, B: bufs.B, bias: null, C: bufs.C, M: R, N: V, K: d, layout: 'nk', f16: false });
        logSoftmaxGpu(rt, { x: bufs.C, R, V });
        const all = await rt.readF32(bufs.C, R * V);
        for (let r = 0; r < R; r++) cands.forEach((c, j) => { rows[r * K + j] = all[r * V + c]; });
      };
      await run();
      const v = validate(rows, want, { atol: 1e-4, rtol: 1e-5 });
      const t = await timeIt(run, 500, 20);
      // Cost: the matmul's, plus the log-softmax reading and rewriting the [R, V] rows.
      const mm = matmulCost(R, V, d);
      push({ kernel: 'cand', variant: 'full rows', device: gpuName, shape, validated: v.ok, maxAbsErr: v.maxAbsErr, ...t, gflops: logprobFlops(R, V, d) / t.ms / 1e6, flops: mm.flops, bytes: mm.bytes + 2 * R * V * 4 });
      for (const b of Object.values(bufs)) rt.release(b);
    }
  }

  // ---- cosine: row pairs (bandwidth-bound, GB/s) and all-pairs block (GFLOP/s) ----
  for (const [N, d] of shapes.cosine) {
    const A = rand(N * d, 6), B = rand(N * d, 7);
    const shape = `rows N${N} d${d}`;
    const bytes = 2 * N * d * 4;
    const want = cosineRowsCpu(A, B, N, d);
    if (devices.includes('cpu')) {
      let maxErr = 0;
      for (let i = 0; i < N; i += 17) {
        const c = naiveDot(A, i * d, B, i * d, d) / Math.sqrt(naiveDot(A, i * d, A, i * d, d) * naiveDot(B, i * d, B, i * d, d));
        maxErr = Math.max(maxErr, Math.abs(c - want[i]));
      }
      const t = await timeIt(() => { cosineRowsCpu(A, B, N, d); });
      push({ kernel: 'cosine', variant: 'rows', device: cpuName, shape, validated: maxErr < 1e-5, maxAbsErr: maxErr, ...t, gbps: bytes / t.ms / 1e6, ...cosineRowsCost(N, d) });
    }
    if (rt && devices.includes('webgpu')) {
      const bufs = { A: rt.upload(A), B: rt.upload(B), out: rt.acquire(N * 4) };
      const run = async () => { cosineRowsGpu(rt, { ...bufs, N, d }); await rt.sync(); };
      await run();
      const v = validate(await rt.readF32(bufs.out, N), want, { atol: 1e-5 });
      const t = await timeIt(run);
      push({ kernel: 'cosine', variant: 'rows', device: gpuName, shape, validated: v.ok, maxAbsErr: v.maxAbsErr, ...t, gbps: bytes / t.ms / 1e6, ...cosineRowsCost(N, d) });
      for (const b of Object.values(bufs)) rt.release(b);
    }
  }
  for (const [N, M, d] of shapes.allpairs) {
    const A = rand(N * d, 8), B = rand(M * d, 9);
    const shape = `all-pairs ${N}x${M} d${d}`;
    const flops = 2 * N * M * d;
    const want = cosineAllPairsCpu(A, B, N, M, d);
    if (devices.includes('cpu')) {
      let maxErr = 0;
      for (let i = 0; i < 32; i++) {
        const a = (i * 31) % N, b = (i * 57) % M;
        const c = naiveDot(A, a * d, B, b * d, d) / Math.sqrt(naiveDot(A, a * d, A, a * d, d) * naiveDot(B, b * d, B, b * d, d));
        maxErr = Math.max(maxErr, Math.abs(c - want[a * M + b]));
      }
      const t = await timeIt(() => { cosineAllPairsCpu(A, B, N, M, d); });
      push({ kernel: 'cosine', variant: 'all-pairs', device: cpuName, shape, validated: maxErr < 1e-5, maxAbsErr: maxErr, ...t, gflops: flops / t.ms / 1e6, ...cosineAllPairsCost(N, M, d) });
    }
    if (rt && devices.includes('webgpu')) {
      const bufs = { A: rt.upload(A), B: rt.upload(B), C: rt.acquire(N * M * 4) };
      const run = async () => { cosineAllPairsGpu(rt, { ...bufs, N, M, d }); await rt.sync(); };
      await run();
      const v = validate(await rt.readF32(bufs.C, N * M), want, { atol: 1e-4 });
      const t = await timeIt(run);
      push({ kernel: 'cosine', variant: 'all-pairs', device: gpuName, shape, validated: v.ok, maxAbsErr: v.maxAbsErr, ...t, gflops: flops / t.ms / 1e6, ...cosineAllPairsCost(N, M, d) });
      for (const b of Object.values(bufs)) rt.release(b);
    }
  }
  // ---- attention (bench/attention.ts) ----
  await benchAttention({ rt, size, devices, rand, timeIt, push, cpuName, gpuName });
  return out;
}
