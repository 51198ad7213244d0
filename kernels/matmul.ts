// matmul: C[M,N] = A[M,K] · B (+ bias). B is K×N ('kn') or N×K ('nk', weights stored [out, in]).
// shaders/matmul/tiled.wgsl (64×64 tiles; B as f32 or f16 storage) and shaders/matmul/direct.wgsl
// (no workgroup memory, for CPU-rasteriser adapters), with the
// CPU twin below. The CPU twin accumulates in f64 (JavaScript numbers).

import { ceilDiv, GpuRuntime, ProgramSpec, Uniforms } from '../src/gpu/runtime.js';
import { kernelVariant } from '../src/gpu/variants.js';

export type BLayout = 'kn' | 'nk';

/**
 * 'tiled' (matmul/tiled, f32 or f16 weights): 64×64 tiles staged through workgroup memory — for GPUs.
 * 'direct' (matmul/direct): no workgroup memory or barriers, operands read straight from storage
 * — for CPU-rasteriser adapters (SwiftShader, lavapipe), where it measured ~2× the tiled kernel.
 */
export type MatmulVariant = 'tiled' | 'direct';

export const MATMUL_TILE = 64;

export function matmulSpec(layout: BLayout, f16 = false, variant: MatmulVariant = 'tiled'): ProgramSpec {
  // f16 weights always take the tiled kernel (its WeightT alias compiled as f16).
  const shader = !f16 && variant === 'direct' ? 'matmul/direct' : 'matmul/tiled';
  return { shader, f16Weights: f16, constants: { TRANS_B: layout === 'nk' ? 1 : 0 } };
}

/** The variant for this runtime (src/gpu/variants.ts: direct on software adapters, tiled elsewhere, or forced). */
export const defaultMatmulVariant = (rt: GpuRuntime): MatmulVariant => kernelVariant(rt, 'matmul');

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
  /** default: defaultMatmulVariant(rt); f16 weights always take the tiled kernel */
  variant?: MatmulVariant;
}

/** Record C = A·B (+bias) on the GPU. */
export function matmulGpu(rt: GpuRuntime, a: MatmulArgs): void {
  if (a.f16 && !rt.hasF16) throw new Error('matmul: f16 weights need the shader-f16 feature');
  const gx = ceilDiv(a.N, MATMUL_TILE), gy = ceilDiv(a.M, MATMUL_TILE);
  const max = rt.limits.maxComputeWorkgroupsPerDimension;
  if (gx > max || gy > max) throw new Error(`matmul: ${a.M}×${a.N} output needs a ${gx}×${gy} grid, above ${max} per dimension`);
  const u = rt.uniform(new Uniforms().u32(a.M).u32(a.N).u32(a.K).u32(a.bias ? 1 : 0).build(), 'matmul.params');
  const bias = a.bias ?? rt.scratch(16, 'matmul.nobias');
  rt.dispatch(matmulSpec(a.layout, a.f16, a.variant ?? kernelVariant(rt, 'matmul', a)), [u, a.A, a.B, bias, a.C], [gx, gy, 1]);
}

/** CPU twin (f64 accumulation; pass a Float64Array `out` to keep the results in f64). */
export function matmulCpu<O extends Float32Array | Float64Array = Float32Array>(A: Float32Array, B: Float32Array, bias: Float32Array | null, M: number, N: number, K: number, layout: BLayout, out?: O): O {
  const C = (out ?? new Float32Array(M * N)) as O;
  if (layout === 'nk') {
    // Register-blocked: 4 rows of A × 2 rows of B per pass over K, so each loaded element is
    // used 2–4 times (8 f64 accumulators stay in registers; ~1.5–2× the plain dot product).
    let m = 0;
    for (; m + 3 < M; m += 4) {
      const a0 = m * K, a1 = a0 + K, a2 = a1 + K, a3 = a2 + K;
      let n = 0;
      for (; n + 1 < N; n += 2) {
        const b0 = n * K, b1 = b0 + K;
        let c00 = 0, c01 = 0, c10 = 0, c11 = 0, c20 = 0, c21 = 0, c30 = 0, c31 = 0;
        for (let k = 0; k < K; k++) {
          const x0 = B[b0 + k], x1 = B[b1 + k];
          let a = A[a0 + k]; c00 += a * x0; c01 += a * x1;
          a = A[a1 + k]; c10 += a * x0; c11 += a * x1;
          a = A[a2 + k]; c20 += a * x0; c21 += a * x1;
          a = A[a3 + k]; c30 += a * x0; c31 += a * x1;
        }
        const z0 = bias ? bias[n] : 0, z1 = bias ? bias[n + 1] : 0;
        C[m * N + n] = c00 + z0; C[m * N + n + 1] = c01 + z1;
        C[(m + 1) * N + n] = c10 + z0; C[(m + 1) * N + n + 1] = c11 + z1;
        C[(m + 2) * N + n] = c20 + z0; C[(m + 2) * N + n + 1] = c21 + z1;
        C[(m + 3) * N + n] = c30 + z0; C[(m + 3) * N + n + 1] = c31 + z1;
      }
      for (; n < N; n++) {
        const b0 = n * K;
        let c0 = 0, c1 = 0, c2 = 0, c3 = 0;
        for (let k = 0; k < K; k++) {
          const x = B[b0 + k];
          c0 += A[a0 + k] * x; c1 += A[a1 + k] * x; c2 += A[a2 + k] * x; c3 += A[a3 + k] * x;
        }
        const z = bias ? bias[n] : 0;
        C[m * N + n] = c0 + z; C[(m + 1) * N + n] = c1 + z; C[(m + 2) * N + n] = c2 + z; C[(m + 3) * N + n] = c3 + z;
      }
    }
    for (; m < M; m++) {
      const ao = m * K;
      for (let n = 0; n < N; n++) {
        const bo = n * K;
        let s = 0;
        for (let k = 0; k < K; k++) s += A[ao + k] * B[bo + k];
        C[m * N + n] = s + (bias ? bias[n] : 0);
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
