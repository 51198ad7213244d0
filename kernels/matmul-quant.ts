// matmul over GGUF-quantized weights that stay as their blocks in GPU memory: C[M,N] = A[M,K] · Wᵀ
// (+ bias) (+ C), or the GLU epilogue, W [N, K] stored Q8_0, Q4_0, Q4_K or Q6_K (the file's bytes,
// read as u32 words), dequantized in registers by shaders/common/quant.wgsl. Two variants, the f32
// kernels of kernels/matmul.ts composed with a block-reading part instead of their f32/f16 one:
//  - 'gemv'   few rows (decode, short batches): matmul/gemv + matmul/gemv-dot-q — lanes over
//             32-element groups, MR rows at a time, the K-split tree reduction of matmul/gemv.
//  - 'tiled'  prefill (M > GEMV_MAX_ROWS): matmul/tiled + matmul/tiled-load-q — 64×64 tiles, the
//             B tile dequantized into workgroup memory as it is loaded.
//  - 'subgroup-matrix'  EXPERIMENTAL, NEVER RUN: matmul/subgroup-matrix + matmul/sgmat-load-q —
//             the dequantized B tile rounded to f16 for the matrix units, A in f16 too. Only where
//             the adapter offers subgroup matrices (subgroupMatrixProblem); never a default: forced,
//             or a tuned winner that passed validation on the device with CONCORD_TUNE_EXPERIMENTAL=1
//             (src/tune/index.ts). Compile-checked on Dawn's null backend (tests/matmul-quant.test.ts);
//             the GPU bundle's tune step validates it on the first hardware run that offers it.
// The twin: ggml's dequantization (src/quant/dequant.ts, bit-exact) then the f32 matmul twin
// (kernels/matmul.ts matmulFusedCpu, f64 accumulation). The variant per shape: CONCORD_KERNEL_VARIANT
// (op 'qmatmul'), else the autotuner's winner for the shape class (src/tune/index.ts probes this op),
// else gemv for M ≤ GEMV_MAX_ROWS and tiled above.

import { ceilDiv, type GpuRuntime, type ProgramSpec, Uniforms } from '../src/gpu/runtime.js';
import { forcedVariant, tunedConfig, tunedVariant } from '../src/gpu/variants.js';
import { dequantize } from '../src/quant/dequant.js';
import { GGML_TYPE, ggmlTypeName, TYPE_LAYOUT, typeBytes } from '../src/quant/types.js';
import { composeWordShader } from '../src/gpu/shaders.js';
import { roundThroughF16 } from '../src/util/f16.js';
import type { GateAct } from './act.js';
import { GEMV_MAX_ROWS, matmulCpu, matmulFusedCpu, subgroupMatrixProblem, validateMatmulCases, type MatmulValidation } from './matmul.js';

/** The ggml types the kernels read. */
export const QUANT_MATMUL_TYPES = [GGML_TYPE.Q8_0, GGML_TYPE.Q4_0, GGML_TYPE.Q4_K, GGML_TYPE.Q6_K] as const;
export type QuantMatmulType = (typeof QUANT_MATMUL_TYPES)[number];
export const isQuantMatmulType = (t: number | undefined): t is QuantMatmulType => t !== undefined && (QUANT_MATMUL_TYPES as readonly number[]).includes(t);

export type QuantMatmulVariant = 'gemv' | 'tiled' | 'subgroup-matrix';
export type QuantMatmulConfig = { variant: 'gemv'; kl: number; nc: number } | { variant: 'tiled' | 'subgroup-matrix' };
/** gemv configurations (lanes along K × columns per workgroup), default first. */
export const QUANT_GEMV_CANDIDATES: { kl: number; nc: number }[] = [{ kl: 32, nc: 4 }, { kl: 16, nc: 8 }, { kl: 8, nc: 16 }];

/** K must be a multiple of this for type t (its block length). */
export const quantBlockElems = (t: QuantMatmulType): number => TYPE_LAYOUT[t].blockElems;

/** GPU bytes of an [N, K] weight kept quantized (the file's blocks, padded to a multiple of 4). */
export const quantWeightBytes = (t: QuantMatmulType, N: number, K: number): number => ceilDiv(typeBytes(t, N * K), 4) * 4;

/** Upload a tensor's GGUF blocks as they are (padded to whole u32 words). */
export function uploadQuantWeight(rt: GpuRuntime, raw: Uint8Array, label = 'quant weight'): GPUBuffer {
  const padded = raw.length % 4 ? new Uint8Array(ceilDiv(raw.length, 4) * 4) : raw;
  if (padded !== raw) padded.set(raw);
  return rt.upload(padded, label);
}

/** The gemv configurations that fit this adapter's limits (for the autotuner); default first. */
export function quantMatmulConfigs(rt: { limits: GPUSupportedLimits }, variant: QuantMatmulVariant): QuantMatmulConfig[] {
  if (variant !== 'gemv') return [{ variant }];
  const l = rt.limits;
  return QUANT_GEMV_CANDIDATES.filter((c) => c.kl * c.nc <= l.maxComputeInvocationsPerWorkgroup && c.kl <= l.maxComputeWorkgroupSizeX
    && c.nc <= l.maxComputeWorkgroupSizeY && 8 * c.kl * c.nc * 4 <= l.maxComputeWorkgroupStorageSize).map((c) => ({ variant, ...c }));
}

export interface QuantMatmulArgs {
  A: GPUBuffer; B: GPUBuffer; bias?: GPUBuffer | null; C: GPUBuffer;
  M: number; N: number; K: number; type: QuantMatmulType;
  accumulate?: boolean;
  /** default: chooseQuantMatmulVariant */
  variant?: QuantMatmulVariant;
  /** a configuration from quantMatmulConfigs (its variant is the variant) */
  config?: QuantMatmulConfig;
  /** Gated epilogue: W = [gate; up] (2N rows), C = act(A·Wgᵀ + bg) · (A·Wuᵀ + bu). */
  glu?: GateAct | null;
}

/** The variant per shape: forced (CONCORD_KERNEL_VARIANT qmatmul=…), tuned, else gemv for M ≤ GEMV_MAX_ROWS, tiled above. */
export function chooseQuantMatmulVariant(rt: GpuRuntime, s: { M: number; N: number; K: number; type: number; glu?: GateAct | null }): QuantMatmulVariant {
  const forced = forcedVariant('qmatmul');
  if (forced) return forced;
  const won = tunedVariant(rt, 'qmatmul', s) as QuantMatmulVariant | undefined;
  if (won && !(won === 'subgroup-matrix' && subgroupMatrixProblem(rt))) return won;
  return s.M <= GEMV_MAX_ROWS ? 'gemv' : 'tiled';
}

const GLU_CODE: Record<GateAct, number> = { silu: 1, gelu_tanh: 2 };

/** The program of a variant: the f32 kernel composed with its block-reading part, the weights read as u32 words. */
export function quantMatmulSpec(type: QuantMatmulType, variant: QuantMatmulVariant, o: { glu?: GateAct | null; config?: QuantMatmulConfig; subgroupSize?: number } = {}): ProgramSpec {
  const glu: Record<string, number> = o.glu ? { GLU: GLU_CODE[o.glu] } : {};
  if (variant === 'gemv') {
    const c = o.config?.variant === 'gemv' ? o.config : { kl: QUANT_GEMV_CANDIDATES[0].kl, nc: QUANT_GEMV_CANDIDATES[0].nc };
    return { shader: composeWordShader('matmul/gemv+q+glu', ['matmul/gemv', 'matmul/gemv-dot-q', 'matmul/glu']), constants: { QTYPE: type, KL: c.kl, NC: c.nc, ...glu } };
  }
  if (variant === 'tiled') return { shader: composeWordShader('matmul/tiled+q+glu', ['matmul/tiled', 'matmul/tiled-load-q', 'matmul/glu']), constants: { QTYPE: type, ...glu } };
  const shader = composeWordShader('matmul/subgroup-matrix+q+glu', ['matmul/subgroup-matrix', 'matmul/sgmat-load-q', 'matmul/glu'], 'enable f16;\n');
  return { shader, constants: { QTYPE: type, SG: o.subgroupSize ?? 32, ...glu } };
}

export function quantMatmulGpu(rt: GpuRuntime, a: QuantMatmulArgs): void {
  if (!isQuantMatmulType(a.type)) throw new Error(`quant matmul: ggml type ${ggmlTypeName(a.type)} is not one of ${QUANT_MATMUL_TYPES.map(ggmlTypeName).join(', ')}`);
  const be = quantBlockElems(a.type);
  if (a.K % be) throw new Error(`quant matmul: K = ${a.K} is not a multiple of the ${ggmlTypeName(a.type)} block size ${be}`);
  if (a.config && a.variant && a.config.variant !== a.variant) throw new Error(`quant matmul: config for '${a.config.variant}' given with variant '${a.variant}'`);
  if (a.M <= 0 || a.N <= 0) return;
  const variant = a.config?.variant ?? a.variant ?? chooseQuantMatmulVariant(rt, a);
  const u = rt.uniform(new Uniforms().u32(a.M).u32(a.N).u32(a.K).u32(a.bias ? 1 : 0).u32(a.accumulate ? 1 : 0).build(), 'qmatmul.params');
  const bias = a.bias ?? rt.scratch(16, 'qmatmul.nobias');
  if (variant === 'gemv') {
    const tuned = a.config ? undefined : tunedConfig(rt, 'qmatmul', a, 'gemv') as QuantMatmulConfig | undefined;
    const c = (a.config ?? tuned ?? quantMatmulConfigs(rt, 'gemv')[0]) as { kl: number; nc: number } | undefined;
    if (!c) throw new Error("quant matmul 'gemv': no configuration fits this adapter's workgroup limits");
    rt.dispatch(quantMatmulSpec(a.type, 'gemv', { glu: a.glu, config: { variant: 'gemv', ...c } }), [u, a.A, a.B, bias, a.C], ceilDiv(a.N, a.glu ? c.nc / 2 : c.nc));
  } else if (variant === 'tiled') {
    const grid: [number, number, number] = [ceilDiv(a.N, a.glu ? 32 : 64), ceilDiv(a.M, 64), 1];
    const max = rt.limits.maxComputeWorkgroupsPerDimension;
    if (grid[0] > max || grid[1] > max) throw new Error(`quant matmul: ${a.M}×${a.N} output needs a ${grid[0]}×${grid[1]} grid, above ${max} per dimension`);
    rt.dispatch(quantMatmulSpec(a.type, 'tiled', { glu: a.glu }), [u, a.A, a.B, bias, a.C], grid);
  } else if (variant === 'subgroup-matrix') {
    const why = subgroupMatrixProblem(rt);
    if (why) throw new Error(`quant matmul 'subgroup-matrix' cannot run on ${rt.name}: ${why}`);
    const grid: [number, number, number] = [ceilDiv(a.N, a.glu ? 32 : 64), ceilDiv(a.M, 64), 1];
    const sg = (rt.handle.adapter.info as { subgroupMaxSize?: number }).subgroupMaxSize ?? 32;
    rt.dispatch(quantMatmulSpec(a.type, 'subgroup-matrix', { glu: a.glu, subgroupSize: sg }), [u, a.A, a.B, bias, a.C], grid);
  } else {
    throw new Error(`quant matmul: no variant '${variant as string}' (gemv, tiled, subgroup-matrix)`);
  }
}

/** CPU twin: ggml's dequantization, then the f32 matmul twin (+ bias) (or the GLU form) (+ C0). */
export function quantMatmulCpu(A: Float32Array, raw: Uint8Array, t: QuantMatmulType, bias: Float32Array | null, M: number, N: number, K: number, C0?: Float32Array | null, glu?: GateAct | null): Float32Array {
  const W = dequantize(t, raw, (glu ? 2 : 1) * N * K);
  return matmulFusedCpu(A, W, bias, M, N, K, 'nk', { glu, residual: C0 });
}

/**
 * f16 bit patterns used as block scales: a realistic range per type, and the extremes (±0, the
 * smallest and largest subnormal, the smallest normal, the largest finite, negative) that whole
 * rows take in the validation (one scale magnitude per row keeps its dot products well conditioned).
 */
export const EXTREME_HALVES = [0x0000, 0x8000, 0x0001, 0x03ff, 0x0400, 0x7bff, 0xfbff, 0xbc00] as const;

/** Byte offsets of the f16 scales (d, and dmin for Q4_K) in a block of each type. */
const SCALE_OFFSETS: Record<QuantMatmulType, number[]> = { 8: [0], 2: [0], 12: [0, 2], 14: [208] };
/** Exponent field range of the f16 scales per type: typical |w| about 2^-8 … 2^0. */
const SCALE_EXP: Record<QuantMatmulType, [number, number]> = { 8: [3, 9], 2: [5, 11], 12: [1, 6], 14: [1, 5] };

/**
 * Random blocks of a [rows, K] weight: random quants and 6-bit/8-bit sub-scales, f16 scales in a
 * realistic range, and every `extremeEvery`-th row (from row 1) with all its scales set to one of
 * EXTREME_HALVES in turn.
 */
export function randomQuantBlocks(t: QuantMatmulType, rows: number, K: number, next: () => number, extremeEvery = 5): Uint8Array {
  const { blockElems, blockBytes } = TYPE_LAYOUT[t];
  const perRow = K / blockElems;
  const b = new Uint8Array(rows * perRow * blockBytes);
  for (let i = 0; i < b.length; i++) b[i] = Math.floor(next() * 256);
  const [e0, e1] = SCALE_EXP[t];
  for (let r = 0; r < rows; r++) {
    const extreme = extremeEvery > 0 && r % extremeEvery === 1 ? EXTREME_HALVES[Math.floor(r / extremeEvery) % EXTREME_HALVES.length] : null;
    for (let j = 0; j < perRow; j++) {
      const o = (r * perRow + j) * blockBytes;
      for (const so of SCALE_OFFSETS[t]) {
        const h = extreme ?? (((e0 + Math.floor(next() * (e1 - e0 + 1))) << 10) | Math.floor(next() * 1024) | (next() < 0.5 ? 0x8000 : 0));
        b[o + so] = h & 255;
        b[o + so + 1] = h >> 8;
      }
    }
  }
  return b;
}

/**
 * The kernel (one variant, or one config) on this device against its twin, on random blocks (with
 * rows of extreme scales) and non-tile shapes, plain, bias + accumulate and SwiGLU; never throws.
 * The loop is kernels/matmul.ts validateMatmulCases, which validateMatmulVariant shares.
 */
export async function validateQuantMatmul(rt: GpuRuntime, t: QuantMatmulType, opts: { variant?: QuantMatmulVariant; config?: QuantMatmulConfig; shapes?: [number, number, number][]; seed?: number } = {}): Promise<MatmulValidation> {
  const be = quantBlockElems(t);
  const shapes = opts.shapes ?? (be === 32 ? [[1, 77, 64], [13, 130, 96], [70, 33, 288]] : [[1, 77, 256], [13, 66, 512], [70, 33, 256]]);
  let seed = opts.seed ?? 4242;
  const next = (): number => { seed = (seed * 1103515245 + 12345) >>> 0; return seed / 2 ** 32; };
  const rand = (n: number): Float32Array => Float32Array.from({ length: n }, () => next() * 2 - 1);
  const variant = opts.config?.variant ?? opts.variant;
  const sgmat = variant === 'subgroup-matrix';
  const what = `quant matmul ${ggmlTypeName(t)}${variant ? ` '${variant}'` : ''}${opts.config ? ` ${JSON.stringify(opts.config)}` : ''}`;
  return validateMatmulCases(rt, what, shapes, (M, N, K, form) => {
    const glu = form === 'glu' ? 'silu' as const : null, nB = glu ? 2 * N : N;
    // Extreme-scale rows in the plain and bias forms: a GLU output multiplies two dot products, each
    // of whose f32 rounding (and the GPU's fused multiply-adds, e.g. Q4_K's d·q − m) scales with the
    // largest scales' terms, beyond a tolerance relative to the result.
    // (subgroup-matrix: no extreme rows — its f16 operands cannot hold them — and the twin on f16-rounded A and W.)
    const raw = randomQuantBlocks(t, nB, K, next, glu || sgmat ? 0 : 5);
    const A = rand(M * K), bias = form === 'plain' ? null : rand(nB), C0 = rand(M * N);
    const want = sgmat
      ? matmulFusedCpu(roundThroughF16(A), roundThroughF16(dequantize(t, raw, nB * K)), bias, M, N, K, 'nk', { glu, residual: form === 'bias+accumulate' ? C0 : null })
      : quantMatmulCpu(A, raw, t, bias, M, N, K, form === 'bias+accumulate' ? C0 : null, glu);
    const magnitude = glu || sgmat ? undefined : matmulCpu(A.map(Math.abs), dequantize(t, raw, N * K).map(Math.abs), null, M, N, K, 'nk');
    return {
      A, B: raw, bias, C0, want, magnitude,
      launch: (b) => quantMatmulGpu(rt, { A: b.A, B: b.B, bias: b.bias, C: b.C, M, N, K, type: t, accumulate: form === 'bias+accumulate', glu, variant, config: opts.config }),
    };
  }, sgmat ? { atol: 1e-3, rtol: 1e-3 } : { atol: 1e-3, rtol: 1e-4 });
}
