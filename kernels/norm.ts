// norm: RMSNorm (Llama) and LayerNorm (GPT-2) over the last dimension of X [rows, d].
// shaders/rmsnorm.wgsl and shaders/layernorm.wgsl (one workgroup per row, workgroup tree
// reduction), with the CPU twins below (f64 sums; LayerNorm two-pass).

import { GpuRuntime, ProgramSpec, Uniforms } from '../src/gpu/runtime.js';

export type NormKind = 'rms' | 'layer';

/**
 * Invocations per row: about d/4 elements' worth, a power of two (the tree reduction needs one)
 * in [32, 256]. Small models (d = 48..288) would otherwise leave most of 256 invocations idle,
 * which a software rasteriser still pays for.
 */
export function normWorkgroupSize(d: number): number {
  let wg = 32;
  while (wg < 256 && wg * 4 < d) wg *= 2;
  return wg;
}

export function normSpec(kind: NormKind, workgroupSize: number): ProgramSpec {
  if (workgroupSize & (workgroupSize - 1)) throw new Error(`norm: workgroup size ${workgroupSize} is not a power of two`);
  return { shader: kind === 'rms' ? 'rmsnorm' : 'layernorm', constants: { WG: workgroupSize } };
}

export interface NormArgs {
  kind: NormKind;
  /** f32 [rows, d], read. */
  x: GPUBuffer;
  /** f32 [d] */
  weight: GPUBuffer;
  /** f32 [d]; required for LayerNorm, ignored for RMSNorm. */
  bias?: GPUBuffer | null;
  /** f32 [rows, d], written. Must not be x (out of place). */
  out: GPUBuffer;
  rows: number;
  d: number;
  eps: number;
  /** Override normWorkgroupSize(d) (power of two, <= 256). */
  workgroupSize?: number;
  /** RMSNorm only: scale by (weight + weightOffset); 1 for Gemma's (1 + w). Default 0. */
  weightOffset?: number;
}

/** Record out = norm(x) * weight (+ bias). */
export function normGpu(rt: GpuRuntime, a: NormArgs): void {
  if (a.x === a.out) throw new Error('norm: out must be a different buffer from x');
  if (a.rows === 0 || a.d === 0) return;
  const spec = normSpec(a.kind, a.workgroupSize ?? normWorkgroupSize(a.d));
  if (a.weightOffset && a.kind !== 'rms') throw new Error('layernorm: weightOffset is an RMSNorm option');
  const u = rt.uniform(new Uniforms().u32(a.rows).u32(a.d).f32(a.eps).f32(a.weightOffset ?? 0).build(), `${spec.shader}.params`);
  if (a.kind === 'rms') {
    rt.dispatch(spec, [u, a.x, a.weight, a.out], a.rows);
  } else {
    if (!a.bias) throw new Error('layernorm: bias buffer required');
    rt.dispatch(spec, [u, a.x, a.weight, a.bias, a.out], a.rows);
  }
}

export const layernormGpu = (rt: GpuRuntime, a: Omit<NormArgs, 'kind'> & { bias: GPUBuffer }): void => normGpu(rt, { ...a, kind: 'layer' });

/** CPU twin of RMSNorm: y = x / sqrt(mean(x^2) + eps) * (w + offset), in f64 (offset 1: Gemma's (1 + w)). */
export function rmsnormCpu(x: Float32Array, w: Float32Array, rows: number, d: number, eps: number, offset = 0): Float32Array {
  const y = new Float32Array(rows * d);
  for (let r = 0; r < rows; r++) {
    const o = r * d;
    let ss = 0;
    for (let c = 0; c < d; c++) ss += x[o + c] * x[o + c];
    const inv = 1 / Math.sqrt(ss / d + eps);
    for (let c = 0; c < d; c++) y[o + c] = x[o + c] * inv * (w[c] + offset);
  }
  return y;
}

/** CPU twin of LayerNorm: two passes (mean, then mean of (x - mean)^2), biased variance, f64. */
export function layernormCpu(x: Float32Array, w: Float32Array, b: Float32Array, rows: number, d: number, eps: number): Float32Array {
  const y = new Float32Array(rows * d);
  for (let r = 0; r < rows; r++) {
    const o = r * d;
    let s = 0;
    for (let c = 0; c < d; c++) s += x[o + c];
    const mean = s / d;
    let q = 0;
    for (let c = 0; c < d; c++) q += (x[o + c] - mean) ** 2;
    const inv = 1 / Math.sqrt(q / d + eps);
    for (let c = 0; c < d; c++) y[o + c] = (x[o + c] - mean) * inv * w[c] + b[c];
  }
  return y;
}

export function normCpu(kind: NormKind, x: Float32Array, w: Float32Array, b: Float32Array | null, rows: number, d: number, eps: number, weightOffset = 0): Float32Array {
  if (kind === 'rms') return rmsnormCpu(x, w, rows, d, eps, weightOffset);
  if (weightOffset) throw new Error('layernorm: weightOffset is an RMSNorm option');
  if (!b) throw new Error('layernorm: bias required');
  return layernormCpu(x, w, b, rows, d, eps);
}
