// embed: X[t, :] = tok_emb[ids[t], :] (+ pos_emb[t % L, :] for learned positions, GPT-2).
// shaders/embed.wgsl (one element per invocation, folded 1-D grid), with the CPU twin below.
// T = B*L tokens, each sequence padded to L, so a token's position is t % L.

import { ceilDiv, GpuRuntime, ProgramSpec, Uniforms } from '../src/gpu/runtime.js';

export const EMBED_WG = 256;

export function embedSpec(): ProgramSpec {
  return { shader: 'embed', constants: { WG: EMBED_WG } };
}

export interface EmbedArgs {
  /**
   * u32 [B*L] token ids. The shader clamps ids >= vocabSize to vocabSize-1 (it cannot throw), so
   * validate ids on the CPU before uploading (checkIds; embedCpu throws).
   */
  ids: GPUBuffer;
  /** f32 [vocabSize, d] */
  tokEmb: GPUBuffer;
  /** f32 [nPos, d] learned positions, or null/undefined for none (RoPE models). */
  posEmb?: GPUBuffer | null;
  /** Rows of posEmb (maxSeqLen); positions are clamped to nPos-1 in the shader. Required with posEmb. */
  nPos?: number;
  /** f32 [B*L, d] output. */
  out: GPUBuffer;
  B: number;
  L: number;
  d: number;
  vocabSize: number;
  /** Multiply the token embedding by this (Gemma: sqrt(hidden)); default 1. */
  scale?: number;
}

/** Throws when an id is outside [0, vocabSize): the GPU would silently clamp it. */
export function checkIds(ids: ArrayLike<number>, vocabSize: number): void {
  for (let t = 0; t < ids.length; t++) {
    const id = ids[t];
    if (!(Number.isInteger(id) && id >= 0 && id < vocabSize)) {
      throw new Error(`embed: token id ${id} at ${t} is outside the vocabulary [0, ${vocabSize})`);
    }
  }
}

/** Record the embedding gather into `out`. */
export function embedGpu(rt: GpuRuntime, a: EmbedArgs): void {
  const T = a.B * a.L;
  if (a.vocabSize < 1) throw new Error('embed: empty vocabulary');
  const nPos = a.posEmb ? a.nPos ?? 0 : 1;
  if (a.posEmb && nPos < a.L) throw new Error(`embed: L=${a.L} exceeds the ${nPos} learned positions`);
  if (T * a.d === 0) return;
  const u = rt.uniform(new Uniforms().u32(T).u32(a.d).u32(a.vocabSize).u32(a.L).u32(a.posEmb ? 1 : 0).u32(nPos).f32(a.scale ?? 1).build(), 'embed.params');
  // The shader never reads pos_emb without has_pos, but the binding must hold some buffer.
  const pos = a.posEmb ?? rt.scratch(16, 'embed.nopos');
  rt.dispatch(embedSpec(), [u, a.ids, a.tokEmb, pos, a.out], ceilDiv(T * a.d, EMBED_WG));
}

/** CPU twin. Throws on ids outside the vocabulary and on positions beyond posEmb. */
export function embedCpu(ids: ArrayLike<number>, tokEmb: Float32Array, posEmb: Float32Array | null, B: number, L: number, d: number, scale = 1): Float32Array {
  const T = B * L;
  if (ids.length !== T) throw new Error(`embed: ${ids.length} ids for B*L = ${T}`);
  const V = Math.floor(tokEmb.length / d);
  checkIds(ids, V);
  if (posEmb && posEmb.length < L * d) throw new Error(`embed: L=${L} exceeds the ${Math.floor(posEmb.length / d)} learned positions`);
  const out = new Float32Array(T * d);
  for (let t = 0; t < T; t++) {
    const src = ids[t] * d, dst = t * d, pos = (t % L) * d;
    for (let c = 0; c < d; c++) out[dst + c] = tokEmb[src + c] * scale + (posEmb ? posEmb[pos + c] : 0);
  }
  return out;
}
