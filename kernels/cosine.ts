// Cosine similarity: batched row pairs (shaders/cosine/rows.wgsl), row L2 normalisation
// (shaders/cosine/normalize.wgsl) and an all-pairs block for deduplication: normalise both
// blocks, then one tiled matmul against the transposed block (kernels/matmul.ts) — the same
// kernel the model uses, rather than a second copy of the tiling. CPU twins in f64 (cosineAllPairsCpu64
// keeps the f64 results).

import { GpuRuntime, ProgramSpec, Uniforms } from '../src/gpu/runtime.js';
import { matmulGpu } from './matmul.js';

const rowsSpec: ProgramSpec = { shader: 'cosine/rows', constants: { WG: 64 } };
const normalizeSpec: ProgramSpec = { shader: 'cosine/normalize', constants: { WG: 64 } };

/** out[i] = cos(A[i], B[i]) for two N×d matrices. */
export function cosineRowsGpu(rt: GpuRuntime, a: { A: GPUBuffer; B: GPUBuffer; out: GPUBuffer; N: number; d: number }): void {
  const u = rt.uniform(new Uniforms().u32(a.N).u32(a.d).build(), 'cosine.rows.params');
  rt.dispatch(rowsSpec, [u, a.A, a.B, a.out], a.N);
}

/** Y = X with every row scaled to unit L2 norm (Y may not alias X). */
export function l2NormalizeGpu(rt: GpuRuntime, a: { X: GPUBuffer; Y: GPUBuffer; N: number; d: number }): void {
  const u = rt.uniform(new Uniforms().u32(a.N).u32(a.d).build(), 'cosine.normalize.params');
  rt.dispatch(normalizeSpec, [u, a.X, a.Y], a.N);
}

/**
 * C[N, M] = cosine of every row of A [N, d] with every row of B [M, d]; with normalize = false,
 * the raw dot products (for inputs that are already unit vectors).
 */
export function cosineAllPairsGpu(rt: GpuRuntime, a: { A: GPUBuffer; B: GPUBuffer; C: GPUBuffer; N: number; M: number; d: number; normalize?: boolean }): void {
  let A = a.A, B = a.B;
  if (a.normalize ?? true) {
    A = rt.scratch(a.N * a.d * 4, 'cosine.An');
    B = rt.scratch(a.M * a.d * 4, 'cosine.Bn');
    l2NormalizeGpu(rt, { X: a.A, Y: A, N: a.N, d: a.d });
    l2NormalizeGpu(rt, { X: a.B, Y: B, N: a.M, d: a.d });
  }
  matmulGpu(rt, { A, B, C: a.C, M: a.N, N: a.M, K: a.d, layout: 'nk' });
}

function dot(x: ArrayLike<number>, xo: number, y: ArrayLike<number>, yo: number, d: number): number {
  let s = 0;
  for (let k = 0; k < d; k++) s += x[xo + k] * y[yo + k];
  return s;
}

export function cosineRowsCpu(A: Float32Array, B: Float32Array, N: number, d: number): Float32Array {
  const out = new Float32Array(N);
  for (let i = 0; i < N; i++) {
    const denom = Math.sqrt(dot(A, i * d, A, i * d, d)) * Math.sqrt(dot(B, i * d, B, i * d, d));
    out[i] = denom > 0 ? dot(A, i * d, B, i * d, d) / denom : 0;
  }
  return out;
}

export function l2NormalizeCpu(X: Float32Array, N: number, d: number): Float32Array {
  const Y = new Float32Array(N * d);
  for (let i = 0; i < N; i++) {
    const norm = Math.sqrt(dot(X, i * d, X, i * d, d));
    const scale = norm > 0 ? 1 / norm : 0;
    for (let k = 0; k < d; k++) Y[i * d + k] = X[i * d + k] * scale;
  }
  return Y;
}

export function cosineAllPairsCpu(A: Float32Array, B: Float32Array, N: number, M: number, d: number, normalize = true): Float32Array {
  return cosineAllPairsInto(new Float32Array(N * M), A, B, N, M, d, normalize);
}

/** The same, kept in f64 (each dot product summed in f64 over k in order): the facility-location greedy's exact similarities. */
export function cosineAllPairsCpu64(A: Float32Array, B: Float32Array, N: number, M: number, d: number, normalize = true): Float64Array {
  return cosineAllPairsInto(new Float64Array(N * M), A, B, N, M, d, normalize);
}

function cosineAllPairsInto<T extends Float32Array | Float64Array>(C: T, A: Float32Array, B: Float32Array, N: number, M: number, d: number, normalize: boolean): T {
  const An = normalize ? l2NormalizeCpu(A, N, d) : A;
  const Bn = normalize ? l2NormalizeCpu(B, M, d) : B;
  for (let i = 0; i < N; i++) for (let j = 0; j < M; j++) C[i * M + j] = dot(An, i * d, Bn, j * d, d);
  return C;
}
