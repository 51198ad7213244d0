// An ONNX graph of concord's canonical transformer (src/models/types.ts), built in TypeScript from
// small op-builders, for onnxruntime's CPU kernels. The same function as the TypeScript twin
// (forward-cpu.ts), batched:
//
//   inputs   input_ids  int64 [batch, seq]   right-padded token ids
//            target_ids int64 [batch, seq]   target_ids[b, t] = the token position t predicts (ids[t+1]; 0 past the end)
//            mask       f32   [batch, seq]   1 for real tokens, 0 for padding
//   outputs  logprobs    f32 [batch, seq]    log p(target_ids[b, t] | ids[b, ≤t]) (garbage where padded)
//            mean_hidden f32 [batch, dim]    masked mean over positions of the final normed hidden states
//
// Causal attention makes right padding harmless: a real position never attends to a later one,
// so only the pooling needs the mask. The LM head is Gemm + LogSoftmax + GatherElements of the
// target ids inside the graph, so a run returns B×L floats, not B×L×V. Linear layers are Gemm with
// transB on the canonical [out, in] weights (no transposed copies; biases fused), the activations
// kept 2-D [B·L, width] between blocks. Weights are f32 initializers referencing the canonical
// arrays (a tied head is the tok_emb initializer itself).
//
// `head: false` builds the hidden-states-only graph (no target_ids, no logprobs) for meanHidden:
// onnxruntime runs every node of a graph whatever the fetches, and the head is the larger half of
// the work on small models.
//
// Op-builders (norm, linear, rope, attention, mlp, …) take and return value names, so a new model
// family adds or swaps a builder (another norm, QK-norm, a different activation) without touching
// the rest.

import type { LoadedWeights, ModelConfig } from '../types.js';
import { tensor } from '../types.js';
import { ropeInvFreq } from '../../../kernels/rope.js';
import { GraphBuilder, ONNX_FLOAT, ONNX_INT64, type V } from './onnx-builder.js';

export interface LmGraphOptions {
  /** Include the LM head and the logprobs output (default true). */
  head?: boolean;
}

/** Shape values computed once per graph: B, L, N = B·L as 1-D int64 tensors of one element. */
interface Dims {
  B: V;
  L: V;
  N: V;
  /** scalar L (for Range) */
  Ls: V;
}

export class LmGraph {
  readonly g: GraphBuilder;
  readonly c: ModelConfig;
  private dims!: Dims;

  constructor(readonly w: LoadedWeights) {
    this.c = w.config;
    this.g = new GraphBuilder(`concord ${w.config.name}`);
  }

  /** An initializer for canonical tensor `name` (each array added once, even when tied). */
  private added = new Map<Float32Array, V>();
  weight(name: string): V {
    const t = tensor(this.w, name);
    const have = this.added.get(t);
    if (have) return have;
    const dims = weightDims(this.c, name);
    this.g.f32(name, t, dims);
    this.added.set(t, name);
    return name;
  }

  // --- op-builders -------------------------------------------------------------------------------

  /** Reshape to [...shape], where entries are int64 1-element tensors (dims) or numbers. */
  reshape(x: V, shape: (V | number)[]): V {
    const parts = shape.map((s) => (typeof s === 'number' ? this.g.i64([s]) : s));
    const sh = parts.length === 1 ? parts[0] : this.g.op('Concat', parts, { axis: 0 });
    return this.g.op('Reshape', [x, sh]);
  }

  /** y = x Wᵀ (+ b) for x [N, in], canonical W [out, in]. */
  linear(x: V, weight: string, bias: string | null): V {
    const inputs = [x, this.weight(weight)];
    if (bias) inputs.push(this.weight(bias));
    return this.g.op('Gemm', inputs, { transB: 1 });
  }

  /** RMSNorm (x / sqrt(mean(x²) + eps) · w) or LayerNorm over the last axis. */
  norm(x: V, prefix: string): V {
    const g = this.g;
    if (this.c.norm === 'layer') {
      return g.op('LayerNormalization', [x, this.weight(`${prefix}.weight`), this.weight(`${prefix}.bias`)], { axis: -1, epsilon: { float: this.c.normEps } });
    }
    const ms = g.op('ReduceMean', [g.op('Pow', [x, g.f32Const([2])])], { axes: [-1], keepdims: 1 });
    const r = g.op('Sqrt', [g.op('Add', [ms, g.f32Const([this.c.normEps])])]);
    return g.op('Mul', [g.op('Div', [x, r]), this.weight(`${prefix}.weight`)]);
  }

  /** GPT-2's gelu_new: 0.5 x (1 + tanh(√(2/π) (x + 0.044715 x³))). */
  geluTanh(x: V): V {
    const g = this.g;
    const x3 = g.op('Mul', [g.op('Mul', [x, x]), x]);
    const inner = g.op('Mul', [g.op('Add', [x, g.op('Mul', [x3, g.f32Const([0.044715])])]), g.f32Const([Math.sqrt(2 / Math.PI)])]);
    return g.op('Mul', [g.op('Mul', [x, g.f32Const([0.5])]), g.op('Add', [g.op('Tanh', [inner]), g.f32Const([1])])]);
  }

  silu(x: V): V {
    return this.g.op('Mul', [x, this.g.op('Sigmoid', [x])]);
  }

  /** cos/sin of pos · inv_freq for positions 0..L-1: two [L, hd/2] tensors (angle rounded to f32, as the twin). */
  ropeTables(): { cos: V; sin: V } {
    const g = this.g, hh = this.c.headDim / 2;
    const pos = g.op('Cast', [g.op('Range', [g.i64Scalar(0), this.dims.Ls, g.i64Scalar(1)])], { to: ONNX_FLOAT });
    const invFreq = g.f32(g.fresh('rope_inv_freq'), ropeInvFreq(this.c.headDim, this.c.ropeTheta), [1, hh]);
    const angle = g.op('Mul', [g.op('Unsqueeze', [pos, g.i64([1])]), invFreq]);
    return { cos: g.op('Cos', [angle]), sin: g.op('Sin', [angle]) };
  }

  /** Rotate x [B, L, H, hd] in the model's layout with tables [L, hd/2]. */
  rope(x: V, nH: number, t: { cos: V; sin: V }): V {
    const g = this.g, hd = this.c.headDim, hh = hd / 2, { B, L } = this.dims;
    if (this.c.ropeLayout === 'half') {
      // (x0, x1) = (x[..., :hd/2], x[..., hd/2:]); tables broadcast as [L, 1, hd/2].
      const cos = g.op('Unsqueeze', [t.cos, g.i64([1])]), sin = g.op('Unsqueeze', [t.sin, g.i64([1])]);
      const [x0, x1] = g.node('Split', [x, g.i64([hh, hh])], { axis: -1 }, 2);
      const y0 = g.op('Sub', [g.op('Mul', [x0, cos]), g.op('Mul', [x1, sin])]);
      const y1 = g.op('Add', [g.op('Mul', [x0, sin]), g.op('Mul', [x1, cos])]);
      return g.op('Concat', [y0, y1], { axis: -1 });
    }
    // interleaved pairs (2j, 2j+1): view as [B, L, H, hd/2, 2]; tables as [L, 1, hd/2, 1].
    const cos = g.op('Unsqueeze', [t.cos, g.i64([1, 3])]), sin = g.op('Unsqueeze', [t.sin, g.i64([1, 3])]);
    const xp = this.reshape(x, [B, L, nH, hh, 2]);
    const [x0, x1] = g.node('Split', [xp, g.i64([1, 1])], { axis: -1 }, 2);
    const y0 = g.op('Sub', [g.op('Mul', [x0, cos]), g.op('Mul', [x1, sin])]);
    const y1 = g.op('Add', [g.op('Mul', [x0, sin]), g.op('Mul', [x1, cos])]);
    return this.reshape(g.op('Concat', [y0, y1], { axis: -1 }), [B, L, nH, hd]);
  }

  /** Causal additive mask [L, L]: 0 where key ≤ query, -1e30 above the diagonal. */
  causalMask(): V {
    const g = this.g;
    const r = g.op('Range', [g.i64Scalar(0), this.dims.Ls, g.i64Scalar(1)]);
    const future = g.op('Greater', [g.op('Unsqueeze', [r, g.i64([0])]), g.op('Unsqueeze', [r, g.i64([1])])]);
    return g.op('Where', [future, g.f32Const([-1e30]), g.f32Const([0])]);
  }

  /**
   * Causal grouped-query attention. q [N, H·hd], k/v [N, Hkv·hd] (already rotated where RoPE),
   * returns [N, H·hd]. Heads are viewed as [Hkv, G] (query head h uses KV head ⌊h/G⌋, as the twin).
   */
  attention(q: V, k: V, v: V, mask: V): V {
    const g = this.g, c = this.c, hd = c.headDim, nKv = c.nKvHeads, G = c.nHeads / c.nKvHeads, { B, L, N } = this.dims;
    const q5 = g.op('Transpose', [this.reshape(q, [B, L, nKv, G, hd])], { perm: [0, 2, 3, 1, 4] }); // [B, Hkv, G, L, hd]
    const kT = g.op('Unsqueeze', [g.op('Transpose', [this.reshape(k, [B, L, nKv, hd])], { perm: [0, 2, 3, 1] }), g.i64([2])]); // [B, Hkv, 1, hd, L]
    const v5 = g.op('Unsqueeze', [g.op('Transpose', [this.reshape(v, [B, L, nKv, hd])], { perm: [0, 2, 1, 3] }), g.i64([2])]); // [B, Hkv, 1, L, hd]
    const scores = g.op('Add', [g.op('Mul', [g.op('MatMul', [q5, kT]), g.f32Const([1 / Math.sqrt(hd)])]), mask]);
    const p = g.op('Softmax', [scores], { axis: -1 });
    const o = g.op('Transpose', [g.op('MatMul', [p, v5])], { perm: [0, 3, 1, 2, 4] }); // [B, L, Hkv, G, hd]
    return this.reshape(o, [N, c.nHeads * hd]);
  }

  /** One decoder layer (pre-norm attention + pre-norm MLP, residuals) on x [N, d]. */
  layer(x: V, l: number, rope: { cos: V; sin: V } | null, mask: V): V {
    const g = this.g, c = this.c, p = `layers.${l}`, { B, L, N } = this.dims;
    const xn = this.norm(x, `${p}.attn_norm`);
    let q = this.linear(xn, `${p}.wq`, c.qkvBias ? `${p}.bq` : null);
    let k = this.linear(xn, `${p}.wk`, c.qkvBias ? `${p}.bk` : null);
    const v = this.linear(xn, `${p}.wv`, c.qkvBias ? `${p}.bv` : null);
    if (rope) {
      q = this.reshape(this.rope(this.reshape(q, [B, L, c.nHeads, c.headDim]), c.nHeads, rope), [N, c.nHeads * c.headDim]);
      k = this.reshape(this.rope(this.reshape(k, [B, L, c.nKvHeads, c.headDim]), c.nKvHeads, rope), [N, c.nKvHeads * c.headDim]);
    }
    const att = this.attention(q, k, v, mask);
    const h = g.op('Add', [x, this.linear(att, `${p}.wo`, c.mlpBias ? `${p}.bo` : null)]);
    return g.op('Add', [h, this.mlp(this.norm(h, `${p}.ffn_norm`), p)]);
  }

  mlp(x: V, p: string): V {
    const g = this.g, c = this.c;
    if (c.act === 'swiglu') {
      const gate = this.silu(this.linear(x, `${p}.w_gate`, null));
      return this.linear(g.op('Mul', [gate, this.linear(x, `${p}.w_up`, null)]), `${p}.w_down`, null);
    }
    const up = this.geluTanh(this.linear(x, `${p}.w_up`, c.mlpBias ? `${p}.b_up` : null));
    return this.linear(up, `${p}.w_down`, c.mlpBias ? `${p}.b_down` : null);
  }

  /** Token (+ learned position) embeddings, [N, d]. */
  embed(ids: V): V {
    const g = this.g, c = this.c;
    let x = g.op('Gather', [this.weight('tok_emb'), ids], { axis: 0 }); // [B, L, d]
    if (c.pos === 'learned') {
      const pos = g.op('Range', [g.i64Scalar(0), this.dims.Ls, g.i64Scalar(1)]);
      x = g.op('Add', [x, g.op('Gather', [this.weight('pos_emb'), pos], { axis: 0 })]);
    }
    return this.reshape(x, [this.dims.N, c.dim]);
  }

  /** log p(target) per position, [B, L]: Gemm head + LogSoftmax + GatherElements. */
  headLogprobs(h: V, targets: V): V {
    const g = this.g, { B, L, N } = this.dims;
    const logits = this.linear(h, 'lm_head', null); // [N, V]
    const tg = this.reshape(targets, [N, 1]);
    const logp = g.op('LogSoftmax', [logits], { axis: 1 });
    const picked = g.op('GatherElements', [logp, tg], { axis: 1 }); // [N, 1]
    return this.reshape(picked, [B, L]);
  }

  /** Masked mean over positions of h [N, d] → [B, d]. */
  meanPool(h: V, mask: V): V {
    const g = this.g, { B, L } = this.dims;
    const m3 = g.op('Unsqueeze', [mask, g.i64([2])]); // [B, L, 1]
    const sum = g.op('ReduceSum', [g.op('Mul', [this.reshape(h, [B, L, this.c.dim]), m3]), g.i64([1])], { keepdims: 0 });
    const count = g.op('Max', [g.op('ReduceSum', [mask, g.i64([1])], { keepdims: 1 }), g.f32Const([1])]);
    return g.op('Div', [sum, count]);
  }

  build(opts: LmGraphOptions = {}): Uint8Array {
    const g = this.g, c = this.c, head = opts.head ?? true;
    if (c.nHeads % c.nKvHeads) throw new Error(`${c.name}: ${c.nHeads} heads is not a multiple of ${c.nKvHeads} KV heads`);
    const ids = g.input('input_ids', ONNX_INT64, ['batch', 'seq']);
    const targets = head ? g.input('target_ids', ONNX_INT64, ['batch', 'seq']) : null;
    const mask = g.input('mask', ONNX_FLOAT, ['batch', 'seq']);
    const shape = g.op('Shape', [ids]);
    const B = g.op('Slice', [shape, g.i64([0]), g.i64([1])]);
    const L = g.op('Slice', [shape, g.i64([1]), g.i64([2])]);
    this.dims = { B, L, N: g.op('Mul', [B, L]), Ls: g.op('Squeeze', [L, g.i64([0])]) };

    let x = this.embed(ids);
    const rope = c.pos === 'rope' ? this.ropeTables() : null;
    const causal = this.causalMask();
    for (let l = 0; l < c.nLayers; l++) x = this.layer(x, l, rope, causal);
    const h = this.norm(x, 'final_norm');
    if (head && targets) g.output(this.headLogprobs(h, targets), 'logprobs', ONNX_FLOAT, ['batch', 'seq']);
    g.output(this.meanPool(h, mask), 'mean_hidden', ONNX_FLOAT, ['batch', c.dim]);
    if (g.initializerBytes > 2 ** 31 - 2 ** 26) {
      throw new Error(`${c.name}: ${(g.initializerBytes / 2 ** 30).toFixed(2)} GiB of f32 weights exceed what one in-memory ONNX model can hold (2 GiB protobuf limit)`);
    }
    return g.serialize();
  }
}

/** The ONNX graph (serialised) for these weights. */
export function buildLmGraph(w: LoadedWeights, opts: LmGraphOptions = {}): Uint8Array {
  return new LmGraph(w).build(opts);
}

/** Dims of canonical tensors (types.ts). */
export function weightDims(c: ModelConfig, name: string): number[] {
  const d = c.dim, hd = c.headDim, qd = c.nHeads * hd, kvd = c.nKvHeads * hd, ff = c.hiddenDim;
  if (name === 'tok_emb' || name === 'lm_head') return [c.vocabSize, d];
  if (name === 'pos_emb') return [c.maxSeqLen, d];
  if (/norm\.(weight|bias)$/.test(name)) return [d];
  const m = /^layers\.\d+\.(\w+)$/.exec(name);
  const dims: Record<string, number[]> = {
    wq: [qd, d], wk: [kvd, d], wv: [kvd, d], wo: [d, qd], bq: [qd], bk: [kvd], bv: [kvd], bo: [d],
    w_gate: [ff, d], w_up: [ff, d], w_down: [d, ff], b_up: [ff], b_down: [d],
  };
  if (m && dims[m[1]]) return dims[m[1]];
  throw new Error(`${c.name}: no ONNX shape known for tensor '${name}'`);
}

/**
 * What of this model the ONNX graph does not build yet (empty when it covers it all). The model
 * families added with per-family kernel features (Gemma, Qwen3, Phi-3, windows, RoPE scaling…)
 * run on the TypeScript twin until the graph grows the same op-builders; modelFromWeights says so.
 */
export function ortGraphGaps(w: LoadedWeights): string[] {
  const c = w.config, gaps: string[] = [];
  if (c.act === 'geglu') gaps.push('GeGLU');
  if (c.ropeScaling) gaps.push(`rope_scaling ${c.ropeScaling.type}`);
  if (c.rotaryDim !== undefined && c.rotaryDim !== c.headDim) gaps.push('partial rotary');
  if (c.layerWindows?.some((win) => win > 0 && win < c.maxSeqLen)) gaps.push('sliding-window attention');
  if (c.layerRope?.some((r) => !r)) gaps.push('layers without RoPE');
  if (c.ropeLocalTheta !== undefined) gaps.push('per-layer RoPE base');
  if (c.normWeightOffset) gaps.push('RMSNorm (1 + w)');
  if (c.embedScale !== undefined && c.embedScale !== 1) gaps.push('scaled embeddings');
  if (c.attnScale !== undefined) gaps.push('attention score scale');
  if (c.attnSoftcap) gaps.push('attention soft-cap');
  if (c.finalSoftcap) gaps.push('final-logit soft-cap');
  for (const t of ['q_norm', 'post_attn_norm']) {
    if (w.tensors.has(`layers.0.${t}.weight`)) gaps.push(t === 'q_norm' ? 'q/k norms' : 'post-attention/FFN norms');
  }
  return gaps;
}
