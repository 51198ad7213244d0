// rope: rotary position embedding, in place on Q [B*L, nHeads*hd] and K [B*L, nKv*hd].
// shaders/rope.wgsl (one invocation per rotated pair, folded 1-D grid), with the CPU twin below.
//
// 'interleaved' rotates pairs (2j, 2j+1) of each head, as llama2.c run.c; 'half' rotates
// (j, j + hd/2), as HF Llama's rotate_half. Both use freq_j = 1 / theta^(2j/hd) computed exactly as
// the references do in f32 (ropeInvFreq), and the angle pos * freq_j as one f32 multiply, so the
// angle is bit-identical to run.c / HF; only sin/cos and the rotation differ in the last bits.

import { ceilDiv, GpuRuntime, ProgramSpec, Uniforms } from '../src/gpu/runtime.js';
import { composeShader } from '../src/gpu/shaders.js';

export type RopeLayout = 'interleaved' | 'half';

/**
 * Frequency scaling of the inv_freq table (the shader only reads the table, so a scaling variant
 * changes nothing else). 'llama3' is Llama 3.1's: wavelengths above original/low_freq_factor are
 * divided by factor, those below original/high_freq_factor kept, the band between interpolated
 * (transformers modeling_rope_utils.py, _compute_llama3_parameters).
 */
export type RopeScaling = {
  type: 'llama3';
  factor: number;
  lowFreqFactor: number;
  highFreqFactor: number;
  originalMaxPositionEmbeddings: number;
} | {
  /** inv_freq / factor (_compute_linear_scaling_rope_parameters; Gemma 3's global layers). */
  type: 'linear';
  factor: number;
} | {
  /**
   * Phi-3's LongRoPE (_compute_longrope_parameters): inv_freq_j = 1 / (factors[j] * theta^(2j/dim)),
   * and cos/sin multiplied by attentionFactor. `factors` are the short_factor list, which
   * transformers uses while the sequence is within original_max_position_embeddings (the loader
   * caps maxSeqLen there).
   */
  type: 'longrope';
  factors: number[];
  attentionFactor: number;
};

/** The cos/sin multiplier of a scaling (LongRoPE's attention factor; 1 otherwise). */
export const ropeAttentionFactor = (s: RopeScaling | null | undefined): number => (s && s.type === 'longrope' ? s.attentionFactor : 1);

export const ROPE_WG = 64;

export function ropeSpec(layout: RopeLayout): ProgramSpec {
  // shaders/rope.wgsl with the shared sin_cos of shaders/rope/sincos.wgsl.
  return { shader: composeShader('rope+sincos', '', ['rope/sincos', 'rope']), constants: { WG: ROPE_WG, HALF: layout === 'half' ? 1 : 0 } };
}

/**
 * inv_freq[j] = 1 / theta^(2j/hd) for j < hd/2, rounded like run.c
 * (`1.0f / powf(theta, head_dim / (float)head_size)`) and HF
 * (`1.0 / (base ** (torch.arange(0, dim, 2).float() / dim))`): exponent, power and quotient each
 * rounded to f32.
 */
export function ropeInvFreq(headDim: number, theta: number, scaling?: RopeScaling | null): Float32Array {
  const f = Math.fround;
  const out = new Float32Array(headDim / 2);
  if (scaling?.type === 'longrope') {
    if (scaling.factors.length !== headDim / 2) throw new Error(`rope: longrope needs ${headDim / 2} factors for rotary dim ${headDim} (got ${scaling.factors.length})`);
    for (let j = 0; j < headDim / 2; j++) out[j] = f(1 / f(f(scaling.factors[j]) * f(Math.pow(f(theta), f((2 * j) / headDim)))));
    return out;
  }
  for (let j = 0; j < headDim / 2; j++) out[j] = f(1 / f(Math.pow(f(theta), f((2 * j) / headDim))));
  if (scaling) applyScaling(out, scaling);
  return out;
}

/** Scale an inv_freq table in place (each entry computed in f64 from the f32 base, then rounded to f32). */
function applyScaling(invFreq: Float32Array, s: RopeScaling): void {
  if (s.type === 'linear') {
    if (!(s.factor > 0)) throw new Error(`rope: linear scaling needs factor > 0 (got ${s.factor})`);
    for (let j = 0; j < invFreq.length; j++) invFreq[j] = invFreq[j] / s.factor;
    return;
  }
  if (s.type !== 'llama3') throw new Error(`rope: scaling ${JSON.stringify(s.type)} is not a table adjustment`);
  if (!(s.factor > 0) || !(s.highFreqFactor > s.lowFreqFactor)) throw new Error(`rope: llama3 scaling needs factor > 0 and high_freq_factor > low_freq_factor (got ${JSON.stringify(s)})`);
  const lowWavelen = s.originalMaxPositionEmbeddings / s.lowFreqFactor;
  const highWavelen = s.originalMaxPositionEmbeddings / s.highFreqFactor;
  for (let j = 0; j < invFreq.length; j++) {
    const f0 = invFreq[j];
    const wavelen = (2 * Math.PI) / f0;
    let f1: number;
    if (wavelen < highWavelen) f1 = f0;
    else if (wavelen > lowWavelen) f1 = f0 / s.factor;
    else {
      const smooth = (s.originalMaxPositionEmbeddings / wavelen - s.lowFreqFactor) / (s.highFreqFactor - s.lowFreqFactor);
      f1 = (1 - smooth) * (f0 / s.factor) + smooth * f0;
    }
    invFreq[j] = f1;
  }
}

export interface RopeArgs {
  /** f32 [B*L, nHeads*headDim], rotated in place. */
  q: GPUBuffer;
  /** f32 [B*L, nKvHeads*headDim], rotated in place. */
  k: GPUBuffer;
  B: number;
  L: number;
  nHeads: number;
  nKvHeads: number;
  headDim: number;
  theta: number;
  layout: RopeLayout;
  /** Frequency scaling (Llama 3.1 'llama3', 'linear', Phi-3 'longrope'); none when omitted. */
  scaling?: RopeScaling | null;
  /** Leading dims of each head that rotate (partial_rotary_factor · headDim, even); the rest pass through. Default headDim. */
  rotaryDim?: number;
}

// One inv_freq table per (runtime, headDim, theta), uploaded once and kept for the runtime's life
// (a few hundred bytes; never returned to the pool).
const invFreqTables = new WeakMap<GpuRuntime, Map<string, GPUBuffer>>();

export function invFreqBuffer(rt: GpuRuntime, headDim: number, theta: number, scaling: RopeScaling | null | undefined): GPUBuffer {
  let m = invFreqTables.get(rt);
  if (!m) invFreqTables.set(rt, (m = new Map()));
  const key = `${headDim}:${theta}${scaling ? ':' + JSON.stringify(scaling) : ''}`;
  let buf = m.get(key);
  if (!buf) m.set(key, (buf = rt.upload(ropeInvFreq(headDim, theta, scaling), `rope.inv_freq ${key}`)));
  return buf;
}

export function checkRotaryDim(headDim: number, rotaryDim: number): void {
  if (headDim % 2) throw new Error(`rope: head dim ${headDim} is odd`);
  if (!Number.isInteger(rotaryDim) || rotaryDim % 2 || rotaryDim < 2 || rotaryDim > headDim) throw new Error(`rope: rotary dim ${rotaryDim} must be even and in [2, ${headDim}]`);
}

/** Record the in-place rotation of q and k. */
export function ropeGpu(rt: GpuRuntime, a: RopeArgs): void {
  const rd = a.rotaryDim ?? a.headDim;
  checkRotaryDim(a.headDim, rd);
  if (a.q === a.k) throw new Error('rope: q and k must be different buffers');
  const T = a.B * a.L;
  const pairs = T * (a.nHeads + a.nKvHeads) * (rd / 2);
  if (pairs === 0) return;
  const u = rt.uniform(new Uniforms().u32(T).u32(a.L).u32(a.nHeads).u32(a.nKvHeads).u32(a.headDim).u32(rd).f32(ropeAttentionFactor(a.scaling)).build(), 'rope.params');
  rt.dispatch(ropeSpec(a.layout), [u, invFreqBuffer(rt, rd, a.theta, a.scaling), a.q, a.k], ceilDiv(pairs, ROPE_WG));
}

/**
 * CPU twin for one tensor x [B*L, nHeads*headDim] (call it for Q and for K). With rotaryDim <
 * headDim only the leading rotaryDim dims of each head rotate (pairs within them), the rest pass
 * through (modeling_phi3.py apply_rotary_pos_emb: q_rot, q_pass). The angle is the f32
 * product the references compute; cos, sin and the rotation are in f64. Returns a new array.
 * `pos0`: the position of row 0 of each sequence (a KV-cached decode chunk starts past 0).
 */
export function ropeCpu(x: Float32Array, B: number, L: number, nHeads: number, headDim: number, theta: number, layout: RopeLayout, scaling?: RopeScaling | null, rotaryDim = headDim, pos0 = 0): Float32Array {
  checkRotaryDim(headDim, rotaryDim);
  const T = B * L, hh = rotaryDim / 2;
  if (x.length !== T * nHeads * headDim) throw new Error(`rope: ${x.length} values for [${T}, ${nHeads}*${headDim}]`);
  const invFreq = ropeInvFreq(rotaryDim, theta, scaling);
  const af = ropeAttentionFactor(scaling);
  const y = new Float32Array(x);
  for (let t = 0; t < T; t++) {
    const pos = pos0 + (t % L);
    for (let j = 0; j < hh; j++) {
      const angle = Math.fround(pos * invFreq[j]);
      // LongRoPE scales cos and sin (modeling_phi3.py Phi3RotaryEmbedding: emb.cos() * attention_scaling).
      const c = Math.cos(angle) * af, s = Math.sin(angle) * af;
      for (let h = 0; h < nHeads; h++) {
        const base = (t * nHeads + h) * headDim;
        const ia = base + (layout === 'half' ? j : 2 * j);
        const ib = base + (layout === 'half' ? j + hh : 2 * j + 1);
        const x0 = x[ia], x1 = x[ib];
        y[ia] = x0 * c - x1 * s;
        y[ib] = x0 * s + x1 * c;
      }
    }
  }
  return y;
}
