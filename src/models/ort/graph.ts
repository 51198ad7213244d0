// An ONNX graph of concord's canonical transformer (src/models/types.ts), built in TypeScript from
// small op-builders, for onnxruntime's CPU kernels. The same function as the TypeScript twin
// (forward-cpu.ts, the reference of every feature), batched:
//
//   inputs   input_ids  int64 [batch, seq]   right-padded token ids
//            target_ids int64 [batch, seq]   target_ids[b, t] = the token position t predicts (ids[t+1]; 0 past the end)
//            mask       f32   [batch, seq]   1 for real tokens, 0 for padding
//            entropy_rows int64 [rows]       (only with `entropy: true`) the positions b·seq + t whose entropy is asked for
//   outputs  logprobs    f32 [batch, seq]    log p(target_ids[b, t] | ids[b, ≤t]) (garbage where padded)
//            entropy     f32 [rows]          (only with `entropy: true`) −Σ_v p log p of each asked position's next-token distribution
//            mean_hidden f32 [batch, dim]    masked mean over positions of the final normed hidden states
//
// Causal attention makes right padding harmless: a real position never attends to a later one,
// so only the pooling needs the mask. The LM head is Gemm (+ soft-cap) + LogSoftmax +
// GatherElements of the target ids inside the graph, so a run returns B×L floats, not B×L×V.
// Linear layers are Gemm with transB on the canonical [out, in] weights (no transposed copies;
// biases fused, present when their tensors are, as the twin decides), the activations kept 2-D
// [B·L, width] between blocks. Weights are f32 initializers referencing the canonical arrays (a
// tied head is the tok_emb initializer itself). A linear weight whose ref (LoadedWeights.refs) is a
// GGUF Q4_0 or Q8_0 tensor is instead com.microsoft MatMulNBits over its blocks, repacked exactly
// (src/quant/matmulnbits.ts): the weights stay 4/8-bit and onnxruntime dequantizes in the kernel.
// Weights without refs (or `quantized: false`) take the f32 Gemm.
//
// `head: false` builds the hidden-states-only graph (no target_ids, no logprobs) for meanHidden:
// onnxruntime runs every node of a graph whatever the fetches, and the head is the larger half of
// the work on small models.
//
// Op-builders (norm, linear, rope, attention, mlp, head) take and return value names. Every
// feature of the twin has one: per-head q/k RMSNorm, explicit head_dim, RoPE tables per layer
// (base, llama3/linear/longrope scaling as an inv_freq initializer computed by ropeInvFreq, the
// twin's own function; partial rotary; no-RoPE layers), sliding windows per layer (one additive
// mask per window size), (1 + w) RMSNorm, sandwich (post) norms, GeGLU, attention and final-logit
// soft-caps, the attention score scale, scaled embeddings. Fused projections (Phi-3) are split at
// load, so the graph never sees them. Positions come from a [B|1, L] f32 tensor, so the KV-cache
// decode graph (decode-graph.ts) reuses every builder with each slot's own positions; it overrides
// `positions`, `attnMask` and `keysValues`.

import type { LoadedWeights, ModelConfig } from '../types.js';
import { layerRopeParams, layerUsesRope, layerWindow, tensor } from '../types.js';
import { ropeAttentionFactor, ropeInvFreq } from '../../../kernels/rope.js';
import { GraphBuilder, MS_DOMAIN, ONNX_FLOAT, ONNX_INT64, type V } from './onnx-builder.js';
import { GgufTensorRef } from '../../formats/gguf-model.js';
import { ggufToMatMulNBits, mapsToMatMulNBits } from '../../quant/matmulnbits.js';

export interface LmGraphOptions {
  /** Include the LM head and the logprobs output (default true). */
  head?: boolean;
  /**
   * Also output the next-token entropy of the positions fed in `entropy_rows`, from the log-softmax
   * (default false: it costs a few passes over V floats per position it computes).
   */
  entropy?: boolean;
}

/** How the graph takes GGUF Q4_0/Q8_0 linear weights. */
export interface LmQuantOptions {
  /** MatMulNBits over the stored blocks (default true); false: the f32 Gemm on the dequantized weights. */
  quantized?: boolean;
  /** MatMulNBits accuracy_level (0 default: f32 activations; 4: int8 activations, faster, not exact). */
  accuracyLevel?: number;
}

/** Shape values computed once per graph: B, L, N = B·L as 1-D int64 tensors of one element. */
export interface Dims {
  B: V;
  L: V;
  N: V;
  /** scalar L (for Range) */
  Ls: V;
}

/** cos/sin tables [B|1, L, rd/2] of one RoPE variant (already multiplied by LongRoPE's attention factor). */
export interface RopeTables { cos: V; sin: V }

export class LmGraph {
  readonly g: GraphBuilder;
  readonly c: ModelConfig;
  protected dims!: Dims;
  private ropeCache = new Map<string, RopeTables>();
  private maskCache = new Map<number, V>();
  private posCache: V | null = null;

  constructor(readonly w: LoadedWeights, readonly q: LmQuantOptions = {}) {
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

  has(name: string): boolean {
    return this.w.tensors.has(name);
  }

  // --- op-builders -------------------------------------------------------------------------------

  /** Reshape to [...shape], where entries are int64 1-element tensors (dims) or numbers. */
  reshape(x: V, shape: (V | number)[]): V {
    const parts = shape.map((s) => (typeof s === 'number' ? this.g.i64([s]) : s));
    const sh = parts.length === 1 ? parts[0] : this.g.op('Concat', parts, { axis: 0 });
    return this.g.op('Reshape', [x, sh]);
  }

  /** y = x Wᵀ (+ b when the bias tensor exists) for x [N, in], canonical W [out, in]. */
  linear(x: V, weight: string, bias: string | null): V {
    const nbits = this.nbitsWeight(weight);
    if (nbits) {
      this.nbitsLinears++;
      const y = this.g.node('MatMulNBits', [x, nbits.B, nbits.scales], nbits.attrs, 1, MS_DOMAIN)[0];
      return bias && this.has(bias) ? this.g.op('Add', [y, this.weight(bias)]) : y;
    }
    const inputs = [x, this.weight(weight)];
    if (bias && this.has(bias)) inputs.push(this.weight(bias));
    return this.g.op('Gemm', inputs, { transB: 1 });
  }

  /** Linear nodes built on MatMulNBits so far. */
  nbitsLinears = 0;

  /** MatMulNBits initializers of a GGUF Q4_0/Q8_0 weight (each file tensor once), or null. */
  private nbits = new Map<GgufTensorRef, { B: V; scales: V; attrs: Record<string, number> }>();
  private nbitsWeight(name: string): { B: V; scales: V; attrs: Record<string, number> } | null {
    if (this.q.quantized === false) return null;
    const ref = this.w.refs?.get(name);
    const [N, K] = weightDims(this.c, name);
    if (!(ref instanceof GgufTensorRef) || !mapsToMatMulNBits(ref.ggmlType, K)) return null;
    let have = this.nbits.get(ref);
    if (!have) {
      const p = ggufToMatMulNBits(ref.ggmlType, ref.rawBytes(), N, K);
      const nb = K / p.blockSize;
      const B = this.g.u8(`${name}.nbits`, p.B, [N, nb, (p.blockSize * p.bits) / 8]);
      const scales = this.g.f32(`${name}.scales`, p.scales, [N, nb]);
      have = { B, scales, attrs: { K, N, bits: p.bits, block_size: p.blockSize, accuracy_level: this.q.accuracyLevel ?? 0 } };
      this.nbits.set(ref, have);
    }
    return have;
  }

  /** The RMSNorm scale w + offset (Gemma's (1 + w)) as its own initializer, each tensor once. */
  private offsetWeights = new Map<string, V>();
  private rmsWeight(name: string): V {
    const off = this.c.normWeightOffset ?? 0;
    if (!off) return this.weight(name);
    let v = this.offsetWeights.get(name);
    if (!v) {
      const t = tensor(this.w, name);
      v = this.g.f32(`${name}+${off}`, t.map((x) => x + off), [t.length]);
      this.offsetWeights.set(name, v);
    }
    return v;
  }

  /** RMSNorm (x / sqrt(mean(x²) + eps) · (w + offset)) or LayerNorm over the last axis of x. */
  norm(x: V, prefix: string): V {
    const g = this.g;
    if (this.c.norm === 'layer') {
      return g.op('LayerNormalization', [x, this.weight(`${prefix}.weight`), this.weight(`${prefix}.bias`)], { axis: -1, epsilon: { float: this.c.normEps } });
    }
    const ms = g.op('ReduceMean', [g.op('Pow', [x, g.f32Const([2])])], { axes: [-1], keepdims: 1 });
    const r = g.op('Sqrt', [g.op('Add', [ms, g.f32Const([this.c.normEps])])]);
    return g.op('Mul', [g.op('Div', [x, r]), this.rmsWeight(`${prefix}.weight`)]);
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

  /** cap · tanh(x / cap). */
  softcap(x: V, cap: number): V {
    const g = this.g;
    return g.op('Mul', [g.op('Tanh', [g.op('Div', [x, g.f32Const([cap])])]), g.f32Const([cap])]);
  }

  /** Positions of the tokens, f32 [1, L] here (0..L-1); the decode graph gives [B, L]. */
  protected positions(): V {
    const g = this.g;
    this.posCache ??= g.op('Unsqueeze', [g.op('Cast', [g.op('Range', [g.i64Scalar(0), this.dims.Ls, g.i64Scalar(1)])], { to: ONNX_FLOAT }), g.i64([0])]);
    return this.posCache;
  }

  /** cos/sin of pos · inv_freq for layer l's RoPE variant (angle rounded to f32, as the twin), [B|1, L, rd/2]. */
  ropeTables(l: number): RopeTables {
    const c = this.c, rd = c.rotaryDim ?? c.headDim, { theta, scaling } = layerRopeParams(c, l);
    const key = `${theta}|${JSON.stringify(scaling)}`;
    let t = this.ropeCache.get(key);
    if (!t) {
      const g = this.g;
      const invFreq = g.f32(g.fresh('rope_inv_freq'), ropeInvFreq(rd, theta, scaling), [1, 1, rd / 2]);
      const angle = g.op('Mul', [g.op('Unsqueeze', [this.positions(), g.i64([2])]), invFreq]);
      let cos = g.op('Cos', [angle]), sin = g.op('Sin', [angle]);
      const af = ropeAttentionFactor(scaling);
      if (af !== 1) [cos, sin] = [g.op('Mul', [cos, g.f32Const([af])]), g.op('Mul', [sin, g.f32Const([af])])];
      this.ropeCache.set(key, (t = { cos, sin }));
    }
    return t;
  }

  /** Rotate x [B, L, H, hd] in the model's layout with tables [B|1, L, rd/2]; dims past rotaryDim pass through. */
  rope(x: V, nH: number, t: RopeTables): V {
    const g = this.g, hd = this.c.headDim, rd = this.c.rotaryDim ?? hd, hh = rd / 2, { B, L } = this.dims;
    let xr = x, pass: V | null = null;
    if (rd < hd) [xr, pass] = g.node('Split', [x, g.i64([rd, hd - rd])], { axis: -1 }, 2);
    let y: V;
    if (this.c.ropeLayout === 'half') {
      // (x0, x1) = (x[..., :rd/2], x[..., rd/2:rd]); tables broadcast as [B|1, L, 1, rd/2].
      const cos = g.op('Unsqueeze', [t.cos, g.i64([2])]), sin = g.op('Unsqueeze', [t.sin, g.i64([2])]);
      const [x0, x1] = g.node('Split', [xr, g.i64([hh, hh])], { axis: -1 }, 2);
      const y0 = g.op('Sub', [g.op('Mul', [x0, cos]), g.op('Mul', [x1, sin])]);
      const y1 = g.op('Add', [g.op('Mul', [x0, sin]), g.op('Mul', [x1, cos])]);
      y = g.op('Concat', [y0, y1], { axis: -1 });
    } else {
      // interleaved pairs (2j, 2j+1): view as [B, L, H, rd/2, 2]; tables as [B|1, L, 1, rd/2, 1].
      const cos = g.op('Unsqueeze', [t.cos, g.i64([2, 4])]), sin = g.op('Unsqueeze', [t.sin, g.i64([2, 4])]);
      const xp = this.reshape(xr, [B, L, nH, hh, 2]);
      const [x0, x1] = g.node('Split', [xp, g.i64([1, 1])], { axis: -1 }, 2);
      const y0 = g.op('Sub', [g.op('Mul', [x0, cos]), g.op('Mul', [x1, sin])]);
      const y1 = g.op('Add', [g.op('Mul', [x0, sin]), g.op('Mul', [x1, cos])]);
      y = this.reshape(g.op('Concat', [y0, y1], { axis: -1 }), [B, L, nH, rd]);
    }
    return pass ? g.op('Concat', [y, pass], { axis: -1 }) : y;
  }

  /**
   * Additive attention mask for a window (0 = full causal): 0 where key j may be seen by query i
   * (j ≤ i and i - j < window), -1e30 elsewhere. [L, L] here, broadcast against [B, Hkv, G, L, K].
   */
  protected attnMask(window: number): V {
    let m = this.maskCache.get(window);
    if (!m) {
      const g = this.g;
      const r = g.op('Range', [g.i64Scalar(0), this.dims.Ls, g.i64Scalar(1)]);
      const diff = g.op('Sub', [g.op('Unsqueeze', [r, g.i64([1])]), g.op('Unsqueeze', [r, g.i64([0])])]); // i - j
      let ok = g.op('GreaterOrEqual', [diff, g.i64Scalar(0)]);
      if (window > 0) ok = g.op('And', [ok, g.op('Less', [diff, g.i64Scalar(window)])]);
      this.maskCache.set(window, (m = g.op('Where', [ok, g.f32Const([0]), g.f32Const([-1e30])])));
    }
    return m;
  }

  /** Keys and values of layer l as [B, Hkv, K, hd] from this run's k, v [B, L, Hkv, hd] (the decode graph prepends its cache). */
  protected keysValues(_l: number, k: V, v: V): { k: V; v: V } {
    const g = this.g;
    return { k: g.op('Transpose', [k], { perm: [0, 2, 1, 3] }), v: g.op('Transpose', [v], { perm: [0, 2, 1, 3] }) };
  }

  /**
   * Grouped-query attention of q [B, L, H, hd] over keys/values [B, Hkv, K, hd] with an additive
   * mask; returns [N, H·hd]. Heads are viewed as [Hkv, G] (query head h uses KV head ⌊h/G⌋, as
   * the twin); the score scale and soft-cap are the model's.
   */
  attention(q: V, k: V, v: V, mask: V): V {
    const g = this.g, c = this.c, hd = c.headDim, nKv = c.nKvHeads, G = c.nHeads / c.nKvHeads, { B, L, N } = this.dims;
    const q5 = g.op('Transpose', [this.reshape(q, [B, L, nKv, G, hd])], { perm: [0, 2, 3, 1, 4] }); // [B, Hkv, G, L, hd]
    const kT = g.op('Unsqueeze', [g.op('Transpose', [k], { perm: [0, 1, 3, 2] }), g.i64([2])]); // [B, Hkv, 1, hd, K]
    const v5 = g.op('Unsqueeze', [v, g.i64([2])]); // [B, Hkv, 1, K, hd]
    let scores = g.op('Mul', [g.op('MatMul', [q5, kT]), g.f32Const([c.attnScale ?? 1 / Math.sqrt(hd)])]);
    if (c.attnSoftcap) scores = this.softcap(scores, c.attnSoftcap);
    const p = g.op('Softmax', [g.op('Add', [scores, mask])], { axis: -1 });
    const o = g.op('Transpose', [g.op('MatMul', [p, v5])], { perm: [0, 3, 1, 2, 4] }); // [B, L, Hkv, G, hd]
    return this.reshape(o, [N, c.nHeads * hd]);
  }

  /** q/k projection of layer l as [B, L, heads, hd]: bias, per-head RMSNorm, RoPE, as the twin. */
  private projectHeads(xn: V, l: number, which: 'q' | 'k', heads: number): V {
    const p = `layers.${l}`, { B, L } = this.dims;
    let y = this.reshape(this.linear(xn, `${p}.w${which}`, `${p}.b${which}`), [B, L, heads, this.c.headDim]);
    if (this.has(`${p}.${which}_norm.weight`)) y = this.norm(y, `${p}.${which}_norm`);
    if (layerUsesRope(this.c, l)) y = this.rope(y, heads, this.ropeTables(l));
    return y;
  }

  /** One decoder layer (pre-norm attention + pre-norm MLP, optional post norms, residuals) on x [N, d]. */
  layer(x: V, l: number): V {
    const g = this.g, c = this.c, p = `layers.${l}`, { B, L } = this.dims;
    const xn = this.norm(x, `${p}.attn_norm`);
    const q = this.projectHeads(xn, l, 'q', c.nHeads);
    const k = this.projectHeads(xn, l, 'k', c.nKvHeads);
    const v = this.reshape(this.linear(xn, `${p}.wv`, `${p}.bv`), [B, L, c.nKvHeads, c.headDim]);
    const kv = this.keysValues(l, k, v);
    let o = this.linear(this.attention(q, kv.k, kv.v, this.attnMask(layerWindow(c, l))), `${p}.wo`, `${p}.bo`);
    if (this.has(`${p}.post_attn_norm.weight`)) o = this.norm(o, `${p}.post_attn_norm`);
    const h = g.op('Add', [x, o]);
    let m = this.mlp(this.norm(h, `${p}.ffn_norm`), p);
    if (this.has(`${p}.post_ffn_norm.weight`)) m = this.norm(m, `${p}.post_ffn_norm`);
    return g.op('Add', [h, m]);
  }

  mlp(x: V, p: string): V {
    const g = this.g, c = this.c;
    if (c.act === 'swiglu' || c.act === 'geglu') {
      const gate = this.linear(x, `${p}.w_gate`, null);
      const act = c.act === 'geglu' ? this.geluTanh(gate) : this.silu(gate);
      return this.linear(g.op('Mul', [act, this.linear(x, `${p}.w_up`, null)]), `${p}.w_down`, null);
    }
    const up = this.geluTanh(this.linear(x, `${p}.w_up`, `${p}.b_up`));
    return this.linear(up, `${p}.w_down`, `${p}.b_down`);
  }

  /** Token embeddings (× embedScale) (+ learned position embeddings at `positions`), [N, d]. */
  embed(ids: V, positions?: V): V {
    const g = this.g, c = this.c;
    let x = g.op('Gather', [this.weight('tok_emb'), ids], { axis: 0 }); // [B, L, d]
    if (c.embedScale !== undefined && c.embedScale !== 1) x = g.op('Mul', [x, g.f32Const([c.embedScale])]);
    if (c.pos === 'learned') {
      const pos = positions ?? g.op('Range', [g.i64Scalar(0), this.dims.Ls, g.i64Scalar(1)]);
      x = g.op('Add', [x, g.op('Gather', [this.weight('pos_emb'), pos], { axis: 0 })]);
    }
    return this.reshape(x, [this.dims.N, c.dim]);
  }

  /** Logits [rows, V] of hidden states h [rows, d], soft-capped when the model caps them. */
  logits(h: V): V {
    const z = this.linear(h, 'lm_head', null);
    return this.c.finalSoftcap ? this.softcap(z, this.c.finalSoftcap) : z;
  }

  /**
   * log p(target) per position, [B, L]: Gemm head + LogSoftmax + GatherElements; with `rows`
   * (int64 [K], positions b·L + t) also H = −Σ_v exp(logp_v)·logp_v at those positions, [K], from
   * the same log-softmax.
   */
  headLogprobs(h: V, targets: V, rows: V | null = null): { logprobs: V; entropy: V | null } {
    const g = this.g, { B, L, N } = this.dims;
    const tg = this.reshape(targets, [N, 1]);
    const logp = g.op('LogSoftmax', [this.logits(h)], { axis: 1 });
    const picked = g.op('GatherElements', [logp, tg], { axis: 1 }); // [N, 1]
    if (!rows) return { logprobs: this.reshape(picked, [B, L]), entropy: null };
    // Only the asked rows (the positions a score reads: about half of a pair's tokens), then
    // Σ_v p_v·logp_v as Exp, Mul, ReduceSum. Both cheaper on onnxruntime's CPU provider than the
    // sum as a batched [1, V]·[V, 1] MatMul over every row (N one-column GEMMs): docs/benchmarks.md "Entropy".
    const lr = g.op('Gather', [logp, rows], { axis: 0 }); // [K, V]
    const H = g.op('ReduceSum', [g.op('Mul', [g.op('Exp', [lr]), lr]), g.i64([1])], { keepdims: 0 }); // [K]
    return { logprobs: this.reshape(picked, [B, L]), entropy: g.op('Neg', [H]) };
  }

  /** Masked mean over positions of h [N, d] → [B, d]. */
  meanPool(h: V, mask: V): V {
    const g = this.g, { B, L } = this.dims;
    const m3 = g.op('Unsqueeze', [mask, g.i64([2])]); // [B, L, 1]
    const sum = g.op('ReduceSum', [g.op('Mul', [this.reshape(h, [B, L, this.c.dim]), m3]), g.i64([1])], { keepdims: 0 });
    const count = g.op('Max', [g.op('ReduceSum', [mask, g.i64([1])], { keepdims: 1 }), g.f32Const([1])]);
    return g.op('Div', [sum, count]);
  }

  /** B, L, N and scalar L from the shape of ids [B, L]. */
  protected setDims(ids: V): void {
    const g = this.g;
    const shape = g.op('Shape', [ids]);
    const B = g.op('Slice', [shape, g.i64([0]), g.i64([1])]);
    const L = g.op('Slice', [shape, g.i64([1]), g.i64([2])]);
    this.dims = { B, L, N: g.op('Mul', [B, L]), Ls: g.op('Squeeze', [L, g.i64([0])]) };
  }

  /** The layers and final norm over embeddings x [N, d]. */
  protected trunk(x: V): V {
    for (let l = 0; l < this.c.nLayers; l++) x = this.layer(x, l);
    return this.norm(x, 'final_norm');
  }

  protected serializeChecked(): Uint8Array {
    const g = this.g, c = this.c;
    if (g.initializerBytes > 2 ** 31 - 2 ** 26) {
      throw new Error(`${c.name}: ${(g.initializerBytes / 2 ** 30).toFixed(2)} GiB of f32 weights exceed what one in-memory ONNX model can hold (2 GiB protobuf limit)`);
    }
    return g.serialize();
  }

  build(opts: LmGraphOptions = {}): Uint8Array {
    const g = this.g, c = this.c, head = opts.head ?? true;
    checkBuildable(this.w);
    const ids = g.input('input_ids', ONNX_INT64, ['batch', 'seq']);
    const targets = head ? g.input('target_ids', ONNX_INT64, ['batch', 'seq']) : null;
    const mask = g.input('mask', ONNX_FLOAT, ['batch', 'seq']);
    const rows = head && opts.entropy ? g.input('entropy_rows', ONNX_INT64, ['rows']) : null;
    this.setDims(ids);
    const h = this.trunk(this.embed(ids));
    if (head && targets) {
      const out = this.headLogprobs(h, targets, rows);
      g.output(out.logprobs, 'logprobs', ONNX_FLOAT, ['batch', 'seq']);
      if (out.entropy) g.output(out.entropy, 'entropy', ONNX_FLOAT, ['rows']);
    }
    g.output(this.meanPool(h, mask), 'mean_hidden', ONNX_FLOAT, ['batch', c.dim]);
    return this.serializeChecked();
  }
}

/** The ONNX graph (serialised) for these weights. */
export function buildLmGraph(w: LoadedWeights, opts: LmGraphOptions & LmQuantOptions = {}): Uint8Array {
  return new LmGraph(w, opts).build(opts);
}

/** Shape checks the graph relies on (the twin makes the same ones). */
export function checkBuildable(w: LoadedWeights): void {
  const c = w.config, rd = c.rotaryDim ?? c.headDim;
  if (c.nHeads % c.nKvHeads) throw new Error(`${c.name}: ${c.nHeads} heads is not a multiple of ${c.nKvHeads} KV heads`);
  if (c.pos === 'rope' && (rd % 2 || rd < 2 || rd > c.headDim)) throw new Error(`${c.name}: rotary dim ${rd} must be even and in [2, ${c.headDim}]`);
}

/** Dims of canonical tensors (types.ts). */
export function weightDims(c: ModelConfig, name: string): number[] {
  const d = c.dim, hd = c.headDim, qd = c.nHeads * hd, kvd = c.nKvHeads * hd, ff = c.hiddenDim;
  if (name === 'tok_emb' || name === 'lm_head') return [c.vocabSize, d];
  if (name === 'pos_emb') return [c.maxSeqLen, d];
  if (/\.[qk]_norm\.weight$/.test(name)) return [hd];
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
 * What of this model the ONNX graph does not build: nothing now — every feature of the canonical
 * model (types.ts) has an op-builder above. modelFromWeights still asks, so that a feature added
 * to the twin first lands here (and falls back to the twin, saying why) until the graph has it.
 */
export function ortGraphGaps(_w: LoadedWeights): string[] {
  return [];
}
