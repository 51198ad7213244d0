// matmul: C[M,N] = A[M,K] · B (+ bias). B is K×N ('kn') or N×K ('nk', weights stored [out, in]).
// shaders/matmul/f32.wgsl (tiled 64×64) and shaders/matmul/f16.wgsl (f16 storage for B), with the
// CPU twin below. The CPU twin accumulates in f64 (JavaScript numbers).

import { ceilDiv, GpuRuntime, ProgramSpec, Uniforms } from '../src/gpu/runtime.js';

export type BLayout = 'kn' | 'nk';

export const MATMUL_TILE = 64;

export function matmulSpec(layout: BLayout, f16 = false): ProgramSpec {
  return { shader: f16 ? 'matmul/f16' : 'matmul/f32', constants: { TRANS_B: layout === 'nk' ? 1 : 0 } };
}

export interface MatmulArgs {
  A: GPUBuffer;
  /** f32, or f16 when `f16` is set */
  B: GPUBuffer;
  bias?: GPUBuffer | null;
  C: GPUBuffer;
  M: number;
  N: number;
  K: number;
  layout: BLayout;
  f16?: boolean;
}

/** Record C = A·B (+bias) on the GPU. */
export function matmulGpu(rt: GpuRuntime, a: MatmulArgs): void {
  if (a.f16 && !rt.hasF16) throw new Error('matmul: f16 weights need the shader-f16 feature');
  const gx = ceilDiv(a.N, MATMUL_TILE), gy = ceilDiv(a.M, MATMUL_TILE);
  const max = rt.limits.maxComputeWorkgroupsPerDimension;
  if (gx > max || gy > max) throw new Error(`matmul: ${a.M}×${a.N} output needs a ${gx}×${gy} grid, above ${max} per dimension`);
  const u = rt.uniform(new Uniforms().u32(a.M).u32(a.N).u32(a.K).u32(a.bias ? 1 : 0).build(), 'matmul.params');
  const bias = a.bias ?? rt.scratch(16, 'matmul.nobias');
  rt.dispatch(matmulSpec(a.layout, a.f16), [u, a.A, a.B, bias, a.C], [gx, gy, 1]);
}

/** CPU twin. */
export function matmulCpu(A: Float32Array, B: Float32Array, bias: Float32Array | null, M: number, N: number, K: number, layout: BLayout, out?: Float32Array): Float32Array {
  const C = out ?? new Float32Array(M * N);
  if (layout === 'nk') {
    // Both operands walk contiguous rows: dot products with four accumulators.
    for (let m = 0; m < M; m++) {
      const ao = m * K;
      for (let n = 0; n < N; n++) {
        const bo = n * K;
        let s0 = 0, s1 = 0, s2 = 0, s3 = 0;
        let k = 0;
        for (; k + 3 < K; k += 4) {
          s0 += A[ao + k] * B[bo + k];
          s1 += A[ao + k + 1] * B[bo + k + 1];
          s2 += A[ao + k + 2] * B[bo + k + 2];
          s3 += A[ao + k + 3] * B[bo + k + 3];
        }
        for (; k < K; k++) s0 += A[ao + k] * B[bo + k];
        C[m * N + n] = s0 + s1 + s2 + s3 + (bias ? bias[n] : 0);
      }
    }
  } else {
    const row = new Float64Array(N);
    for (let m = 0; m < M; m++) {
      row.fill(0);
      for (let k = 0; k < K; k++) {
        const a = A[m * K + k];
        if (a === 0) continue;
        const bo = k * N;
        for (let n = 0; n < N; n++) row[n] += a * B[bo + n];
      }
      for (let n = 0; n < N; n++) C[m * N + n] = row[n] + (bias ? bias[n] : 0);
    }
  }
  return C;
}

export const matmulFlops = (M: number, N: number, K: number): number => 2 * M * N * K;
