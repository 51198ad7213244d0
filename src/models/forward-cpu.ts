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
import { attentionCpu } from '../../kernels/attention.js';
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

/** Final normed hidden states [T, d] of one sequence. */
export function forwardHiddenCpu(w: LoadedWeights, ids: ArrayLike<number>): Float32Array {
  checkIds(w, ids);
  const c = w.config;
  const T = ids.length, d = c.dim, hd = c.headDim, nH = c.nHeads, nKv = c.nKvHeads, ff = c.hiddenDim;
  const qd = nH * hd, kvd = nKv * hd;
  const wOff = c.normWeightOffset ?? 0;
  const norm = (x: Float32Array, prefix: string): Float32Array =>
    normCpu(c.norm, x, tensor(w, `${prefix}.weight`), optionalTensor(w, `${prefix}.bias`), T, d, c.normEps, wOff);
  // A linear layer; its bias when the tensor exists (the GPU path decides the same way).
  const linear = (x: Float32Array, weight: string, bias: string | null, out: number, inn: number): Float32Array =>
    matmulCpu(x, tensor(w, weight), bias ? optionalTensor(w, bias) : null, T, out, inn, 'nk');

  // Embeddings (+ learned positions).
  let x = embedCpu(ids, tensor(w, 'tok_emb'), c.pos === 'learned' ? tensor(w, 'pos_emb') : null, 1, T, d, c.embedScale ?? 1);

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
      q = ropeCpu(q, 1, T, nH, hd, theta, c.ropeLayout, scaling, c.rotaryDim ?? hd);
      k = ropeCpu(k, 1, T, nKv, hd, theta, c.ropeLayout, scaling, c.rotaryDim ?? hd);
    }
    const att = attentionCpu(q, k, v, [T], 1, T, nH, nKv, hd, true, { window: layerWindow(c, l), scale: c.attnScale, softcap: c.attnSoftcap });
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
  const T = ids.length, V = w.config.vocabSize, d = w.config.dim;
  if (targetMask && targetMask.length !== T) throw new Error(`${w.config.name}: targetMask has ${targetMask.length} entries for ${T} tokens`);
  checkIds(w, ids);
  const out = new Float64Array(T).fill(NaN);
  let last = 0;
  for (let t = 1; t < T; t++) if (!targetMask || targetMask[t]) last = t;
  if (last === 0) return out;
  // Positions after the last scored token cannot influence it (causal): skip them.
  // Row r of the hidden states predicts token r + 1.
  const hidden = forwardHiddenCpu(w, Array.prototype.slice.call(ids, 0, last) as number[]);
  const targets = new Uint32Array(last), mask = new Uint8Array(last);
  for (let t = 1; t <= last; t++) {
    targets[t - 1] = ids[t];
    mask[t - 1] = !targetMask || targetMask[t] ? 1 : 0;
  }
  const { logp } = logprobCpu(hidden, tensor(w, 'lm_head'), targets, mask, last, V, d, 1, last, w.config.finalSoftcap ?? 0);
  for (let t = 1; t <= last; t++) if (mask[t - 1]) out[t] = logp[t - 1];
  return out;
}

/** logProbsCpu over a batch of sequences of any lengths (no cross-sequence attention). */
export function logProbsBatchCpu(w: LoadedWeights, batch: readonly ArrayLike<number>[], masks?: readonly (ArrayLike<number | boolean> | undefined)[]): Float64Array[] {
  return batch.map((ids, b) => logProbsCpu(w, ids, masks?.[b]));
}
