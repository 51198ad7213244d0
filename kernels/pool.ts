// pool: mean pooling of token states into one vector per sequence (sentence embeddings), over each
// sequence's real tokens (right padding, lengths in seqLen). shaders/pool/mean.wgsl, with the CPU
// twin below (f64 sums). L2 normalisation afterwards: l2NormalizeGpu / l2NormalizeCpu in
// kernels/cosine.ts.

import { ceilDiv, GpuRuntime, ProgramSpec, Uniforms } from '../src/gpu/runtime.js';

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
