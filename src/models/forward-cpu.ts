// The CPU twin of the whole forward pass (Llama family and GPT-2), the reference the WGSL forward
// is validated against. Activations are stored in f32 between ops, as on the GPU, but it is the
// stricter twin: every reduction (norms, attention dots, softmax, matmul dots) accumulates in f64,
// softmax and log-softmax subtract the max first, LayerNorm variance is two-pass.
//
// One sequence at a time: sequences of a batch never attend to each other, so a batch is a loop.
// The ops are the kernels' own CPU twins (kernels/*.ts) applied to a batch of one sequence.
// Indexing of log-probs: out[t] = log p(ids[t] | ids[0..t-1]), predicted from position t-1; out[0]
// has no prediction.

import { gatedCpu, geluTanhCpu } from '../../kernels/act.js';
import { addCpu } from '../../kernels/add.js';
import { attendRowCpu, attentionCpu } from '../../kernels/attention.js';
import { embedCpu } from '../../kernels/embed.js';
import { logprobCpu } from '../../kernels/logprob.js';
import { matmulCpu } from '../../kernels/matmul.js';
import { normCpu, rmsnormCpu } from '../../kernels/norm.js';
import { ropeCpu } from '../../kernels/rope.js';
import type { LoadedWeights } from './types.js';
import { layerRopeParams, layerUsesRope, layerWindow, optionalTensor, tensor } from './types.js';

function checkIds(w: LoadedWeights, ids: ArrayLike<number>): void {
  const c = w.config;
  if (ids.length === 0) throw new Error(`${c.name}: empty token sequence`);
  if (ids.length > c.maxSeqLen) throw new Error(`${c.name}: ${ids.length} tokens exceed the model's maxSeqLen ${c.maxSeqLen}`);
  for (let t = 0; t < ids.length; t++) {
    const id = ids[t];
    if (!Number.isInteger(id) || id < 0 || id >= c.vocabSize) throw new Error(`${c.name}: token id ${id} at position ${t} is outside the vocabulary [0, ${c.vocabSize})`);
  }
}

/** Attention of T query rows in layer l (q [T, nH·hd], k/v [T, nKv·hd] of the same rows). */
type AttendCpu = (l: number, q: Float32Array, k: Float32Array, v: Float32Array) => Float32Array;

/** Consecutive rows [start, start + n) of one sequence, at positions pos0 .. pos0 + n - 1. */
export interface RowSegment { start: number; n: number; pos0: number }

/** RoPE over each segment's rows at its own positions. */
function ropeSegments(x: Float32Array, segs: readonly RowSegment[], heads: number, hd: number, theta: number, c: LoadedWeights['config'], scaling: Parameters<typeof ropeCpu>[7]): Float32Array {
  if (segs.length === 1) return ropeCpu(x, 1, segs[0].n, heads, hd, theta, c.ropeLayout, scaling, c.rotaryDim ?? hd, segs[0].pos0);
  const out = new Float32Array(x.length), w = heads * hd;
  for (const g of segs) out.set(ropeCpu(x.subarray(g.start * w, (g.start + g.n) * w), 1, g.n, heads, hd, theta, c.ropeLayout, scaling, c.rotaryDim ?? hd, g.pos0), g.start * w);
  return out;
}

/**
 * The transformer body over the rows of one or more sequences (`segs`, each at its own positions):
 * embeddings, every layer (norms, projections, q/k norms, RoPE at each row's position, `attend`,
 * the feed-forward), the final norm. Every op but attention is row by row (matmulCpu's f64 sums
 * run in the same order whatever the row count), so a row's result does not depend on the others.
 * The full-sequence forward and the KV-cached decode share it; only the attention differs.
 */
/** Sees the input rows [rows, cols] of each linear layer, by its weight's canonical name (src/quant/imatrix.ts). */
export type LinearObserver = (weight: string, x: Float32Array, rows: number, cols: number) => void;

function bodyCpu(w: LoadedWeights, ids: ArrayLike<number>, segs: readonly RowSegment[], attend: AttendCpu, observe?: LinearObserver): Float32Array {
  const c = w.config;
  const T = ids.length, d = c.dim, hd = c.headDim, nH = c.nHeads, nKv = c.nKvHeads, ff = c.hiddenDim;
  const qd = nH * hd, kvd = nKv * hd;
  const wOff = c.normWeightOffset ?? 0;
  const norm = (x: Float32Array, prefix: string): Float32Array =>
    normCpu(c.norm, x, tensor(w, `${prefix}.weight`), optionalTensor(w, `${prefix}.bias`), T, d, c.normEps, wOff);
  // A linear layer; its bias when the tensor exists (the GPU path decides the same way).
  const linear = (x: Float32Array, weight: string, bias: string | null, out: number, inn: number): Float32Array => {
    observe?.(weight, x, T, inn);
    return matmulCpu(x, tensor(w, weight), bias ? optionalTensor(w, bias) : null, T, out, inn, 'nk');
  };

  // Embeddings (+ learned positions).
  let x = embedSegmentsCpu(w, ids, segs);

  for (let l = 0; l < c.nLayers; l++) {
    const p = `layers.${l}`;
    // Attention block.
    const xn = norm(x, `${p}.attn_norm`);
    let q = linear(xn, `${p}.wq`, `${p}.bq`, qd, d);
    let k = linear(xn, `${p}.wk`, `${p}.bk`, kvd, d);
    const v = linear(xn, `${p}.wv`, `${p}.bv`, kvd, d);
    // Per-head q/k RMSNorm (Qwen3, Gemma 3): the norm kernel over [T·heads, hd] rows.
    const qNorm = optionalTensor(w, `${p}.q_norm.weight`), kNorm = optionalTensor(w, `${p}.k_norm.weight`);
    if (qNorm) q = rmsnormCpu(q, qNorm, T * nH, hd, c.normEps, wOff);
    if (kNorm) k = rmsnormCpu(k, kNorm, T * nKv, hd, c.normEps, wOff);
    if (layerUsesRope(c, l)) {
      const { theta, scaling } = layerRopeParams(c, l);
      q = ropeSegments(q, segs, nH, hd, theta, c, scaling);
      k = ropeSegments(k, segs, nKv, hd, theta, c, scaling);
    }
    const att = attend(l, q, k, v);
    let o = linear(att, `${p}.wo`, `${p}.bo`, d, qd);
    // Gemma: the attention output is normed before the residual add (when the tensor exists).
    if (w.tensors.has(`${p}.post_attn_norm.weight`)) o = norm(o, `${p}.post_attn_norm`);
    x = addCpu(x, o);

    // Feed-forward block.
    const hn = norm(x, `${p}.ffn_norm`);
    let h: Float32Array;
    if (c.act === 'swiglu' || c.act === 'geglu') {
      h = gatedCpu(c.act === 'geglu' ? 'gelu_tanh' : 'silu', linear(hn, `${p}.w_gate`, null, ff, d), linear(hn, `${p}.w_up`, null, ff, d));
    } else {
      h = geluTanhCpu(linear(hn, `${p}.w_up`, `${p}.b_up`, ff, d));
    }
    let m = linear(h, `${p}.w_down`, `${p}.b_down`, d, ff);
    if (w.tensors.has(`${p}.post_ffn_norm.weight`)) m = norm(m, `${p}.post_ffn_norm`);
    x = addCpu(x, m);
  }
  return norm(x, 'final_norm');
}

/** Token embeddings (× embedScale, + each row's learned position): embedCpu's arithmetic. */
function embedSegmentsCpu(w: LoadedWeights, ids: ArrayLike<number>, segs: readonly RowSegment[]): Float32Array {
  const c = w.config, d = c.dim, T = ids.length;
  if (segs.length === 1 && segs[0].pos0 === 0) return embedCpu(ids, tensor(w, 'tok_emb'), c.pos === 'learned' ? tensor(w, 'pos_emb') : null, 1, T, d, c.embedScale ?? 1);
  const tok = tensor(w, 'tok_emb'), pos = c.pos === 'learned' ? tensor(w, 'pos_emb') : null, scale = c.embedScale ?? 1;
  const out = new Float32Array(T * d);
  for (const g of segs) {
    for (let t = g.start; t < g.start + g.n; t++) {
      const src = ids[t] * d, po = (g.pos0 + t - g.start) * d;
      for (let j = 0; j < d; j++) out[t * d + j] = tok[src + j] * scale + (pos ? pos[po + j] : 0);
    }
  }
  return out;
}

/** Final normed hidden states [T, d] of one sequence; `observe` sees every linear layer's input. */
export function forwardHiddenCpu(w: LoadedWeights, ids: ArrayLike<number>, observe?: LinearObserver): Float32Array {
  checkIds(w, ids);
  const c = w.config, T = ids.length;
  return bodyCpu(w, ids, [{ start: 0, n: T, pos0: 0 }], (l, q, k, v) =>
    attentionCpu(q, k, v, [T], 1, T, c.nHeads, c.nKvHeads, c.headDim, true, { window: layerWindow(c, l), scale: c.attnScale, softcap: c.attnSoftcap }), observe);
}

// ---- Decoding: a KV cache per sequence -------------------------------------------------------

/**
 * One sequence's K/V cache: per layer [rows, nKv·hd] f32 (post q/k-norm and RoPE), `len` rows
 * filled. Rows are allocated as the sequence grows (doubling), up to `capacity`.
 */
export class KvCacheCpu {
  k: Float32Array[] = [];
  v: Float32Array[] = [];
  len = 0;
  private rows = 0;
  private readonly kvd: number;
  constructor(readonly config: LoadedWeights['config'], readonly capacity: number) {
    this.kvd = config.nKvHeads * config.headDim;
  }

  /** Make room for n rows (n ≤ capacity). */
  reserve(n: number): void {
    if (n <= this.rows) return;
    const rows = Math.min(this.capacity, Math.max(n, 2 * this.rows, 64));
    const grow = (old: Float32Array): Float32Array => {
      const a = new Float32Array(rows * this.kvd);
      a.set(old.subarray(0, this.len * this.kvd));
      return a;
    };
    const nL = this.config.nLayers;
    this.k = this.rows ? this.k.map(grow) : Array.from({ length: nL }, () => new Float32Array(rows * this.kvd));
    this.v = this.rows ? this.v.map(grow) : Array.from({ length: nL }, () => new Float32Array(rows * this.kvd));
    this.rows = rows;
  }
}

/**
 * Causal attention of n query rows at positions p0 .. p0+n-1 over the cached K/V rows 0 .. p0+n-1
 * (sliding window, scale, soft-cap as attentionCpu, with its exact arithmetic: a prefill through the
 * cache equals the full-sequence forward bit for bit). The CPU twin of decode attention.
 */
export function attendCachedCpu(q: Float32Array, K: Float32Array, V: Float32Array, p0: number, n: number, nHeads: number, nKvHeads: number, hd: number, opts: { window?: number; scale?: number; softcap?: number } = {}): Float32Array {
  const qs = nHeads * hd, kvs = nKvHeads * hd, group = nHeads / nKvHeads;
  const scale = opts.scale ?? 1 / Math.sqrt(hd), softcap = opts.softcap ?? 0, window = opts.window ?? 0;
  const out = new Float32Array(n * qs);
  const scores = new Float64Array(p0 + n), acc = new Float64Array(hd);
  for (let h = 0; h < nHeads; h++) {
    const kvh = Math.floor(h / group);
    for (let i = 0; i < n; i++) {
      const last = p0 + i, first = window > 0 ? Math.max(0, last - window + 1) : 0;
      attendRowCpu(q, i * qs + h * hd, K, V, kvh * hd, kvs, first, last, hd, scale, softcap, scores, acc, out);
    }
  }
  return out;
}

/**
 * Append each chunk of ids to its sequence's cache and run them all in one body pass (the rows of
 * every chunk through the same matmuls; attention per sequence over its own cache): the final
 * normed hidden states of all rows [Σ n, d], chunk after chunk.
 */
export function forwardCachedBatchCpu(w: LoadedWeights, chunks: readonly { cache: KvCacheCpu; ids: ArrayLike<number> }[]): Float32Array {
  const c = w.config, kvd = c.nKvHeads * c.headDim, qd = c.nHeads * c.headDim;
  const segs: RowSegment[] = [];
  const ids: number[] = [];
  for (const ch of chunks) {
    checkIds(w, ch.ids);
    const p0 = ch.cache.len, n = ch.ids.length;
    if (p0 + n > ch.cache.capacity) throw new Error(`${c.name}: ${p0 + n} tokens exceed the decoder's cache of ${ch.cache.capacity} positions`);
    ch.cache.reserve(p0 + n);
    segs.push({ start: ids.length, n, pos0: p0 });
    for (let t = 0; t < n; t++) ids.push(ch.ids[t]);
  }
  const hidden = bodyCpu(w, ids, segs, (l, q, k, v) => {
    const att = new Float32Array(ids.length * qd);
    chunks.forEach((ch, i) => {
      const g = segs[i];
      ch.cache.k[l].set(k.subarray(g.start * kvd, (g.start + g.n) * kvd), g.pos0 * kvd);
      ch.cache.v[l].set(v.subarray(g.start * kvd, (g.start + g.n) * kvd), g.pos0 * kvd);
      const a = attendCachedCpu(q.subarray(g.start * qd, (g.start + g.n) * qd), ch.cache.k[l], ch.cache.v[l], g.pos0, g.n, c.nHeads, c.nKvHeads, c.headDim,
        { window: layerWindow(c, l), scale: c.attnScale, softcap: c.attnSoftcap });
      att.set(a, g.start * qd);
    });
    return att;
  });
  chunks.forEach((ch, i) => { ch.cache.len = segs[i].pos0 + segs[i].n; });
  return hidden;
}

/** Append ids to a sequence's cache and run them: their final normed hidden states [n, d]. */
export function forwardCachedCpu(w: LoadedWeights, cache: KvCacheCpu, ids: ArrayLike<number>): Float32Array {
  return forwardCachedBatchCpu(w, [{ cache, ids }]);
}

/** Logits [rows.length, V] of the given rows of hidden [T, d] (all rows when omitted). */
export function logitsCpu(w: LoadedWeights, hidden: Float32Array, rows?: readonly number[]): Float32Array {
  const d = w.config.dim, V = w.config.vocabSize;
  const T = hidden.length / d;
  const r = rows ?? Array.from({ length: T }, (_, i) => i);
  const h = new Float32Array(r.length * d);
  r.forEach((t, i) => h.set(hidden.subarray(t * d, t * d + d), i * d));
  const logits = matmulCpu(h, tensor(w, 'lm_head'), null, r.length, V, d, 'nk');
  const cap = w.config.finalSoftcap;
  if (cap) for (let i = 0; i < logits.length; i++) logits[i] = cap * Math.tanh(logits[i] / cap);
  return logits;
}

/**
 * Per-token log-probabilities of one sequence: out[t] = log p(ids[t] | ids[0..t-1]) for each t ≥ 1
 * with targetMask[t] set (every t ≥ 1 when no mask is given); NaN elsewhere (out[0] is always NaN).
 * The LM head is the fused log-likelihood kernel's CPU twin (kernels/logprob.ts: f64 logits over
 * vocabulary tiles, max-subtracted logsumexp, only the scored rows), the same code that checks
 * the GPU kernel; this is the CPU backend's scoring path (cpu-score.ts).
 */
export function logProbsCpu(w: LoadedWeights, ids: ArrayLike<number>, targetMask?: ArrayLike<number | boolean>): Float64Array {
  return logProbsEntropyCpu(w, ids, targetMask).logp;
}

/**
 * logProbsCpu and, from the same fused-head stream, the entropy of the next-token distribution
 * at each scored position: entropy[t] = H(p(· | ids[0..t-1])) in nats (NaN where logp is NaN).
 */
export function logProbsEntropyCpu(w: LoadedWeights, ids: ArrayLike<number>, targetMask?: ArrayLike<number | boolean>): { logp: Float64Array; entropy: Float64Array } {
  const T = ids.length, V = w.config.vocabSize, d = w.config.dim;
  if (targetMask && targetMask.length !== T) throw new Error(`${w.config.name}: targetMask has ${targetMask.length} entries for ${T} tokens`);
  checkIds(w, ids);
  const out = new Float64Array(T).fill(NaN), ent = new Float64Array(T).fill(NaN);
  let last = 0;
  for (let t = 1; t < T; t++) if (!targetMask || targetMask[t]) last = t;
  if (last === 0) return { logp: out, entropy: ent };
  // Positions after the last scored token cannot influence it (causal): skip them.
  // Row r of the hidden states predicts token r + 1.
  const hidden = forwardHiddenCpu(w, Array.prototype.slice.call(ids, 0, last) as number[]);
  const targets = new Uint32Array(last), mask = new Uint8Array(last);
  for (let t = 1; t <= last; t++) {
    targets[t - 1] = ids[t];
    mask[t - 1] = !targetMask || targetMask[t] ? 1 : 0;
  }
  const { logp, entropy } = logprobCpu(hidden, tensor(w, 'lm_head'), targets, mask, last, V, d, 1, last, w.config.finalSoftcap ?? 0);
  for (let t = 1; t <= last; t++) {
    if (mask[t - 1]) {
      out[t] = logp[t - 1];
      ent[t] = entropy[t - 1];
    }
  }
  return { logp: out, entropy: ent };
}

/** logProbsCpu over a batch of sequences of any lengths (no cross-sequence attention). */
export function logProbsBatchCpu(w: LoadedWeights, batch: readonly ArrayLike<number>[], masks?: readonly (ArrayLike<number | boolean> | undefined)[]): Float64Array[] {
  return batch.map((ids, b) => logProbsCpu(w, ids, masks?.[b]));
}
