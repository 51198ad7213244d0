// matmul over GGUF-quantized weights that stay as their blocks in GPU memory
// (shaders/matmul/gemv-q.wgsl): C[M,N] = A[M,K] · Wᵀ (+ bias) (+ C), W [N, K] stored Q8_0 or Q4_0,
// dequantized in registers. The twin: ggml's dequantization (src/quant/dequant.ts, bit-exact) then
// the f32 matmul twin (kernels/matmul.ts matmulCpu, f64 accumulation).
//
// Used by forward-gpu.ts for GGUF Q8_0/Q4_0 linear weights (the LM head stays f32/f16). Not in the
// autotuner's candidate lists yet: the config is the first of QUANT_GEMV_CANDIDATES.

import { ceilDiv, type GpuRuntime, Uniforms } from '../src/gpu/runtime.js';
import { dequantize } from '../src/quant/dequant.js';
import { GGML_TYPE, typeBytes } from '../src/quant/types.js';
import { composeShader } from '../src/gpu/shaders.js';
import { validate } from '../src/validate.js';
import { gatedCpu, type GateAct } from './act.js';
import { matmulCpu } from './matmul.js';

/** The ggml types the kernel reads. */
export const QUANT_MATMUL_TYPES = [GGML_TYPE.Q8_0, GGML_TYPE.Q4_0] as const;
export type QuantMatmulType = (typeof QUANT_MATMUL_TYPES)[number];

export interface QuantMatmulConfig { kl: number; nc: number }
export const QUANT_GEMV_CANDIDATES: QuantMatmulConfig[] = [{ kl: 32, nc: 4 }, { kl: 16, nc: 8 }, { kl: 8, nc: 16 }];

/** GPU bytes of an [N, K] weight kept quantized (the file's blocks, padded to a multiple of 4). */
export const quantWeightBytes = (t: QuantMatmulType, N: number, K: number): number => ceilDiv(typeBytes(t, N * K), 4) * 4;

/** Upload a tensor's GGUF blocks as they are (padded to whole u32 words). */
export function uploadQuantWeight(rt: GpuRuntime, raw: Uint8Array, label = 'quant weight'): GPUBuffer {
  const padded = raw.length % 4 ? new Uint8Array(ceilDiv(raw.length, 4) * 4) : raw;
  if (padded !== raw) padded.set(raw);
  return rt.upload(padded, label);
}

export interface QuantMatmulArgs {
  A: GPUBuffer; B: GPUBuffer; bias?: GPUBuffer | null; C: GPUBuffer;
  M: number; N: number; K: number; type: QuantMatmulType;
  accumulate?: boolean; config?: QuantMatmulConfig;
  /** Gated epilogue: W = [gate; up] (2N rows), C = act(A·Wgᵀ + bg) · (A·Wuᵀ + bu). */
  glu?: GateAct | null;
}

const GLU_CODE: Record<GateAct, number> = { silu: 1, gelu_tanh: 2 };

export function quantMatmulGpu(rt: GpuRuntime, a: QuantMatmulArgs): void {
  if (!(QUANT_MATMUL_TYPES as readonly number[]).includes(a.type)) throw new Error(`quant matmul: ggml type ${a.type} is not Q8_0 or Q4_0`);
  if (a.K % 32) throw new Error(`quant matmul: K = ${a.K} is not a multiple of the block size 32`);
  if (a.M <= 0 || a.N <= 0) return;
  const c = a.config ?? QUANT_GEMV_CANDIDATES[0];
  const u = rt.uniform(new Uniforms().u32(a.M).u32(a.N).u32(a.K).u32(a.bias ? 1 : 0).u32(a.accumulate ? 1 : 0).build(), 'qmatmul.params');
  const bias = a.bias ?? rt.scratch(16, 'qmatmul.nobias');
  const shader = composeShader('matmul/gemv-q+glu', '', ['matmul/gemv-q', 'matmul/glu']);
  const glu: Record<string, number> = a.glu ? { GLU: GLU_CODE[a.glu] } : {};
  rt.dispatch({ shader, constants: { QTYPE: a.type, KL: c.kl, NC: c.nc, ...glu } }, [u, a.A, a.B, bias, a.C], ceilDiv(a.N, a.glu ? c.nc / 2 : c.nc));
}

/** CPU twin: ggml's dequantization, then the f32 matmul twin (+ bias) (or the GLU form) (+ C0). */
export function quantMatmulCpu(A: Float32Array, raw: Uint8Array, t: QuantMatmulType, bias: Float32Array | null, M: number, N: number, K: number, C0?: Float32Array | null, glu?: GateAct | null): Float32Array {
  let out: Float32Array;
  if (glu) {
    const W = dequantize(t, raw, 2 * N * K);
    const g = matmulCpu(A, W.subarray(0, N * K), bias ? bias.subarray(0, N) : null, M, N, K, 'nk');
    const u = matmulCpu(A, W.subarray(N * K), bias ? bias.subarray(N) : null, M, N, K, 'nk');
    out = gatedCpu(glu, g, u);
  } else {
    out = matmulCpu(A, dequantize(t, raw, N * K), bias, M, N, K, 'nk');
  }
  if (C0) for (let i = 0; i < out.length; i++) out[i] += C0[i];
  return out;
}

/** The kernel on this device against its twin, on random blocks and non-tile shapes; never throws. */
export async function validateQuantMatmul(rt: GpuRuntime, t: QuantMatmulType, opts: { config?: QuantMatmulConfig; shapes?: [number, number, number][]; seed?: number } = {}): Promise<{ ok: boolean; maxAbsErr: number; summary: string }> {
  const shapes = opts.shapes ?? [[1, 77, 64], [13, 130, 96], [40, 33, 288]];
  let seed = opts.seed ?? 4242;
  const next = (): number => { seed = (seed * 1103515245 + 12345) >>> 0; return seed / 2 ** 32; };
  const bufs: GPUBuffer[] = [];
  let maxAbsErr = 0, ok = true;
  const notes: string[] = [];
  try {
    for (const [M, N, K] of shapes) {
      for (const form of ['plain', 'bias+accumulate', 'glu'] as const) {
        const glu = form === 'glu' ? 'silu' : null, nB = glu ? 2 * N : N;
        const raw = randomBlocks(t, (nB * K) / 32, next);
        const A = Float32Array.from({ length: M * K }, () => next() * 2 - 1);
        const bias = form === 'plain' ? null : Float32Array.from({ length: nB }, () => next() * 2 - 1);
        const C0 = Float32Array.from({ length: M * N }, () => next() * 2 - 1);
        const want = quantMatmulCpu(A, raw, t, bias, M, N, K, form === 'bias+accumulate' ? C0 : null, glu);
        const bA = rt.upload(A), bB = uploadQuantWeight(rt, raw), bC = rt.upload(C0), bBias = bias ? rt.upload(bias) : null;
        bufs.push(bA, bB, bC, ...(bBias ? [bBias] : []));
        quantMatmulGpu(rt, { A: bA, B: bB, bias: bBias, C: bC, M, N, K, type: t, accumulate: form === 'bias+accumulate', glu, config: opts.config });
        const got = await rt.readF32(bC, M * N);
        const v = validate(got, want, { atol: 1e-3, rtol: 1e-4 });
        maxAbsErr = Math.max(maxAbsErr, v.maxAbsErr);
        if (!v.ok) { ok = false; notes.push(`${M}×${N}×${K} ${form}: ${v.summary}`); }
      }
    }
  } catch (e) {
    ok = false;
    notes.push(`error: ${(e as Error).message}`);
  } finally {
    for (const b of bufs) rt.release(b);
  }
  const what = `quant matmul ${t === GGML_TYPE.Q8_0 ? 'Q8_0' : 'Q4_0'}${opts.config ? ` ${JSON.stringify(opts.config)}` : ''}`;
  return { ok, maxAbsErr, summary: ok ? `${what}: matches the twin on ${shapes.length} shapes × 3 epilogues (max |err| ${maxAbsErr.toExponential(2)})` : `${what}: FAILED — ${notes.join('; ')}` };
}

/** Random blocks with scales of a realistic range (|d| ≤ 1/64), random quants. */
function randomBlocks(t: QuantMatmulType, nBlocks: number, next: () => number): Uint8Array {
  const size = t === GGML_TYPE.Q8_0 ? 34 : 18;
  const b = new Uint8Array(nBlocks * size);
  for (let i = 0; i < nBlocks; i++) {
    // f16 bits of ±(2^-12 … 2^-6): exponent 3..9, random mantissa
    const h = ((3 + Math.floor(next() * 7)) << 10) | Math.floor(next() * 1024) | (next() < 0.5 ? 0x8000 : 0);
    b[i * size] = h & 255; b[i * size + 1] = h >> 8;
    for (let j = 2; j < size; j++) b[i * size + j] = Math.floor(next() * 256);
  }
  return b;
}
