// pool: reductions over one axis.
//  - mean: token states → one vector per sequence (sentence embeddings), over each sequence's real
//    tokens (right padding, lengths in seqLen). shaders/pool/mean.wgsl; CPU twin in f64. L2
//    normalisation afterwards: l2NormalizeGpu / l2NormalizeCpu in kernels/cosine.ts.
//  - row max: a running, masked max-pool with argmax over the columns of a score block
//    (deduplication: each record's most similar kept earlier record). shaders/pool/row-max.wgsl,
//    entry 'main' (a workgroup per row, tree reduction) on GPUs and 'direct' (an invocation per
//    row, no barriers) on CPU-rasteriser adapters; CPU twin with the same tie rule (smallest
//    column wins).

import { ceilDiv, GpuRuntime, ProgramSpec, Uniforms } from '../src/gpu/runtime.js';
import { kernelVariant } from '../src/gpu/variants.js';

export const POOL_WG = 64;

export function meanPoolSpec(workgroupSize = POOL_WG): ProgramSpec {
  return { shader: 'pool/mean', constants: { WG: workgroupSize } };
}

export interface MeanPoolArgs {
  /** f32 [B*L, d] */
  x: GPUBuffer;
  /** u32 [B]: real tokens per sequence (values above L count as L) */
  seqLen: GPUBuffer;
  /** f32 [B, d], written */
  out: GPUBuffer;
  B: number;
  L: number;
  d: number;
  workgroupSize?: number;
}

/** Record out[b] = mean of x[b, 0 .. seqLen[b]). */
export function meanPoolGpu(rt: GpuRuntime, a: MeanPoolArgs): void {
  if (a.B * a.d === 0) return;
  const wg = a.workgroupSize ?? POOL_WG;
  const u = rt.uniform(new Uniforms().u32(a.B).u32(a.L).u32(a.d).build(), 'pool.mean.params');
  rt.dispatch(meanPoolSpec(wg), [u, a.x, a.seqLen, a.out], ceilDiv(a.B * a.d, wg));
}

/** CPU twin. */
export function meanPoolCpu(x: Float32Array, seqLen: ArrayLike<number>, B: number, L: number, d: number): Float32Array {
  const out = new Float32Array(B * d);
  const acc = new Float64Array(d);
  for (let b = 0; b < B; b++) {
    const len = Math.min(seqLen[b], L);
    acc.fill(0);
    for (let t = 0; t < len; t++) for (let k = 0; k < d; k++) acc[k] += x[(b * L + t) * d + k];
    for (let k = 0; k < d; k++) out[b * d + k] = len > 0 ? acc[k] / len : 0;
  }
  return out;
}

export const ROW_MAX_WG = 64;
/** arg value meaning "no allowed column seen yet". */
export const ROW_MAX_NONE = 0xffffffff;
/** Initial best value: below any score. */
export const ROW_MAX_LOW = -3.0e38;

/** 'reduce': a workgroup per row with a tree reduction (GPUs); 'direct': an invocation per row, no barriers (CPU rasterisers). */
export type RowMaxVariant = 'reduce' | 'direct';

export function rowMaxSpec(workgroupSize = ROW_MAX_WG, variant: RowMaxVariant = 'reduce'): ProgramSpec {
  if (workgroupSize & (workgroupSize - 1)) throw new Error(`row max: workgroup size ${workgroupSize} is not a power of two`);
  return { shader: 'pool/row-max', entryPoint: variant === 'direct' ? 'direct' : 'main', constants: { WG: workgroupSize } };
}

/** src/gpu/variants.ts: direct on software adapters, reduce elsewhere, or forced. */
export const defaultRowMaxVariant = (rt: GpuRuntime): RowMaxVariant => kernelVariant(rt, 'rowmax');

export interface RowMaxArgs {
  /** f32 [N, M] scores */
  X: GPUBuffer;
  /** u32 per global column (at least colOff + M entries): nonzero = the column may be chosen */
  mask: GPUBuffer;
  /** f32 [N], read and updated: the running max (start at ROW_MAX_LOW) */
  best: GPUBuffer;
  /** u32 [N], read and updated: global column of the running max (start at ROW_MAX_NONE) */
  arg: GPUBuffer;
  N: number;
  M: number;
  /** global index of column 0 of X */
  colOff: number;
  workgroupSize?: number;
  /** default: defaultRowMaxVariant(rt) */
  variant?: RowMaxVariant;
}

/**
 * Record, for each row r: v = max of X[r, c] over allowed columns, and when v > best[r], best[r] = v,
 * arg[r] = colOff + (smallest such c). Ties with the running best keep it (it came from smaller
 * columns).
 */
export function rowMaxGpu(rt: GpuRuntime, a: RowMaxArgs): void {
  if (a.N === 0 || a.M === 0) return;
  const wg = a.workgroupSize ?? ROW_MAX_WG;
  const variant = a.variant ?? kernelVariant(rt, 'rowmax', a);
  const u = rt.uniform(new Uniforms().u32(a.N).u32(a.M).u32(a.colOff).build(), 'pool.row-max.params');
  rt.dispatch(rowMaxSpec(wg, variant), [u, a.X, a.mask, a.best, a.arg], variant === 'direct' ? ceilDiv(a.N, wg) : a.N);
}

/** CPU twin (updates best and arg in place). */
export function rowMaxCpu(X: Float32Array, mask: ArrayLike<number>, best: Float32Array, arg: Uint32Array, N: number, M: number, colOff: number): void {
  for (let r = 0; r < N; r++) {
    let v = ROW_MAX_LOW, c0 = -1;
    const o = r * M;
    for (let c = 0; c < M; c++) {
      if (!mask[colOff + c]) continue;
      const s = X[o + c];
      if (s > v) { v = s; c0 = c; }
    }
    if (c0 >= 0 && v > best[r]) {
      best[r] = v;
      arg[r] = colOff + c0;
    }
  }
}
