// attention: causal self-attention with grouped KV heads and a per-sequence padding mask
// (bidirectional with causal: false, for BERT-style encoders).
// shaders/attention.wgsl (flash-style: one workgroup per (query block, head, sequence), K/V tiles
// in workgroup memory, online softmax), with the CPU twin below (two-pass softmax in f64).

import { ceilDiv, GpuRuntime, ProgramSpec, Uniforms } from '../src/gpu/runtime.js';

/** Query rows per workgroup (fixed in the shader, with BK = 16 keys per tile and 256 invocations). */
export const ATTN_BQ = 16;
/** Largest head dim the shader's workgroup tiles and per-invocation accumulators hold. */
export const ATTN_MAX_HEAD_DIM = 128;

export function attentionSpec(causal = true): ProgramSpec {
  // The causal default keeps its original cache key; bidirectional sets the CAUSAL override.
  return causal ? { shader: 'attention' } : { shader: 'attention', constants: { CAUSAL: 0 } };
}

export interface AttentionArgs {
  /** f32 [B*L, nHeads*headDim] */
  q: GPUBuffer;
  /** f32 [B*L, nKvHeads*headDim] */
  k: GPUBuffer;
  /** f32 [B*L, nKvHeads*headDim] */
  v: GPUBuffer;
  /** u32 [B]: real length of each sequence (values above L count as L). */
  seqLen: GPUBuffer;
  /** f32 [B*L, nHeads*headDim], written; rows at positions >= seqLen[b] become zeros. */
  out: GPUBuffer;
  B: number;
  L: number;
  nHeads: number;
  nKvHeads: number;
  headDim: number;
  /** Mask keys after the query (default true); false: every real key is attended (encoders). */
  causal?: boolean;
  /**
   * Sliding window (causal only): query i attends keys j with i - window < j <= i, the window
   * counting the query itself (transformers masking_utils.py sliding_window_overlay:
   * kv_idx > q_idx - sliding_window). 0 or omitted: unlimited.
   */
  window?: number;
  /** Score scale (default 1/sqrt(headDim)); Gemma's query_pre_attn_scalar sets its own. */
  scale?: number;
  /** Soft-cap of the scaled scores, softcap * tanh(s / softcap) (Gemma 2); 0 or omitted: none. */
  softcap?: number;
}

/** Record O = softmax(Q K^T · scale + causal/window/pad mask) V. */
export function attentionGpu(rt: GpuRuntime, a: AttentionArgs): void {
  if (a.headDim < 1 || a.headDim > ATTN_MAX_HEAD_DIM) throw new Error(`attention: head dim ${a.headDim} outside [1, ${ATTN_MAX_HEAD_DIM}]`);
  if (a.nKvHeads < 1 || a.nHeads % a.nKvHeads) throw new Error(`attention: ${a.nHeads} heads is not a multiple of ${a.nKvHeads} KV heads`);
  const grid: [number, number, number] = [ceilDiv(a.L, ATTN_BQ), a.nHeads, a.B];
  const max = rt.limits.maxComputeWorkgroupsPerDimension;
  if (grid.some((g) => g > max)) throw new Error(`attention: grid ${grid.join('×')} exceeds ${max} per dimension`);
  const window = checkWindow(a.window, a.causal ?? true);
  if (grid.some((g) => g === 0)) return;
  const scale = a.scale ?? 1 / Math.sqrt(a.headDim);
  const u = rt.uniform(new Uniforms().u32(a.B).u32(a.L).u32(a.nHeads).u32(a.nKvHeads).u32(a.headDim).f32(scale).u32(window).f32(a.softcap ?? 0).build(), 'attention.params');
  rt.dispatch(attentionSpec(a.causal ?? true), [u, a.q, a.k, a.v, a.seqLen, a.out], grid);
}

function checkWindow(window: number | undefined, causal: boolean): number {
  const w = window ?? 0;
  if (!Number.isInteger(w) || w < 0) throw new Error(`attention: window ${w} must be a non-negative integer`);
  if (w > 0 && !causal) throw new Error('attention: a sliding window needs causal attention');
  return w;
}

export interface AttentionCpuOptions { window?: number; scale?: number; softcap?: number }

/** CPU twin: per query row, max-subtracted softmax over its allowed keys, sums in f64. */
export function attentionCpu(q: Float32Array, k: Float32Array, v: Float32Array, seqLen: ArrayLike<number>, B: number, L: number, nHeads: number, nKvHeads: number, headDim: number, causal = true, opts: AttentionCpuOptions = {}): Float32Array {
  if (nHeads % nKvHeads) throw new Error(`attention: ${nHeads} heads is not a multiple of ${nKvHeads} KV heads`);
  const window = checkWindow(opts.window, causal);
  const hd = headDim, qs = nHeads * hd, kvs = nKvHeads * hd, group = nHeads / nKvHeads;
  const scale = opts.scale ?? 1 / Math.sqrt(hd);
  const softcap = opts.softcap ?? 0;
  const out = new Float32Array(B * L * qs);
  const scores = new Float64Array(L);
  const acc = new Float64Array(hd);
  for (let b = 0; b < B; b++) {
    const len = Math.min(seqLen[b], L);
    for (let h = 0; h < nHeads; h++) {
      const kvh = Math.floor(h / group);
      for (let i = 0; i < len; i++) {
        const qo = (b * L + i) * qs + h * hd;
        let m = -Infinity;
        const last = causal ? i : len - 1;
        const first = window > 0 ? Math.max(0, i - window + 1) : 0;
        for (let j = first; j <= last; j++) {
          const ko = (b * L + j) * kvs + kvh * hd;
          let s = 0;
          for (let d = 0; d < hd; d++) s += q[qo + d] * k[ko + d];
          scores[j] = softcap > 0 ? softcap * Math.tanh((s * scale) / softcap) : s * scale;
          m = Math.max(m, scores[j]);
        }
        let sum = 0;
        acc.fill(0);
        for (let j = first; j <= last; j++) {
          const p = Math.exp(scores[j] - m);
          sum += p;
          const vo = (b * L + j) * kvs + kvh * hd;
          for (let d = 0; d < hd; d++) acc[d] += p * v[vo + d];
        }
        for (let d = 0; d < hd; d++) out[qo + d] = acc[d] / sum;
      }
      // Rows i >= len stay zero (pads).
    }
  }
  return out;
}
