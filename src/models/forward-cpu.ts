// The CPU twin of the whole forward pass (Llama family and GPT-2), the reference the WGSL forward
// is validated against. Activations are stored in f32 between ops, as on the GPU, but it is the
// stricter twin: every reduction (norms, attention dots, softmax, matmul dots) accumulates in f64,
// softmax and log-softmax subtract the max first, LayerNorm variance is two-pass.
//
// One sequence at a time: sequences of a batch never attend to each other, so a batch is a loop.
// The ops are the kernels' own CPU twins (kernels/*.ts) applied to a batch of one sequence.
// Indexing of log-probs: out[t] = log p(ids[t] | ids[0..t-1]), predicted from position t-1; out[0]
// has no prediction.

import { attentionCpu } from '../../kernels/attention.js';
import { logprobCpu } from '../../kernels/logprob.js';
import { matmulCpu } from '../../kernels/matmul.js';
import { layernormCpu, rmsnormCpu } from '../../kernels/norm.js';
import { ropeCpu } from '../../kernels/rope.js';
import type { LoadedWeights } from './types.js';
import { tensor } from './types.js';

function checkIds(w: LoadedWeights, ids: ArrayLike<number>): void {
  const c = w.config;
  if (ids.length === 0) throw new Error(`${c.name}: empty token sequence`);
  if (ids.length > c.maxSeqLen) throw new Error(`${c.name}: ${ids.length} tokens exceed the model's maxSeqLen ${c.maxSeqLen}`);
  for (let t = 0; t < ids.length; t++) {
    const id = ids[t];
    if (!Number.isInteger(id) || id < 0 || id >= c.vocabSize) throw new Error(`${c.name}: token id ${id} at position ${t} is outside the vocabulary [0, ${c.vocabSize})`);
  }
}

const SQRT_2_OVER_PI = Math.sqrt(2 / Math.PI);
/** GPT-2's gelu_new (tanh approximation). */
export const geluTanh = (x: number): number => 0.5 * x * (1 + Math.tanh(SQRT_2_OVER_PI * (x + 0.044715 * x * x * x)));
export const silu = (x: number): number => x / (1 + Math.exp(-x));

function addInPlace(x: Float32Array, y: Float32Array): void {
  for (let i = 0; i < x.length; i++) x[i] += y[i];
}

/** Final normed hidden states [T, d] of one sequence. */
export function forwardHiddenCpu(w: LoadedWeights, ids: ArrayLike<number>): Float32Array {
  checkIds(w, ids);
  const c = w.config;
  const T = ids.length, d = c.dim, hd = c.headDim, nH = c.nHeads, nKv = c.nKvHeads, ff = c.hiddenDim;
  const qd = nH * hd, kvd = nKv * hd;
  const norm = (x: Float32Array, prefix: string): Float32Array =>
    c.norm === 'rms'
      ? rmsnormCpu(x, tensor(w, `${prefix}.weight`), T, d, c.normEps)
      : layernormCpu(x, tensor(w, `${prefix}.weight`), tensor(w, `${prefix}.bias`), T, d, c.normEps);

  // Embeddings (+ learned positions).
  const emb = tensor(w, 'tok_emb');
  const x = new Float32Array(T * d);
  for (let t = 0; t < T; t++) x.set(emb.subarray(ids[t] * d, ids[t] * d + d), t * d);
  if (c.pos === 'learned') {
    const pe = tensor(w, 'pos_emb');
    for (let i = 0; i < T * d; i++) x[i] += pe[i];
  }

  for (let l = 0; l < c.nLayers; l++) {
    const p = `layers.${l}`;
    // Attention block.
    const xn = norm(x, `${p}.attn_norm`);
    let q = matmulCpu(xn, tensor(w, `${p}.wq`), c.qkvBias ? tensor(w, `${p}.bq`) : null, T, qd, d, 'nk');
    let k = matmulCpu(xn, tensor(w, `${p}.wk`), c.qkvBias ? tensor(w, `${p}.bk`) : null, T, kvd, d, 'nk');
    const v = matmulCpu(xn, tensor(w, `${p}.wv`), c.qkvBias ? tensor(w, `${p}.bv`) : null, T, kvd, d, 'nk');
    if (c.pos === 'rope') {
      q = ropeCpu(q, 1, T, nH, hd, c.ropeTheta, c.ropeLayout);
      k = ropeCpu(k, 1, T, nKv, hd, c.ropeTheta, c.ropeLayout);
    }
    const att = attentionCpu(q, k, v, [T], 1, T, nH, nKv, hd);
    addInPlace(x, matmulCpu(att, tensor(w, `${p}.wo`), c.mlpBias ? tensor(w, `${p}.bo`) : null, T, d, qd, 'nk'));

    // Feed-forward block.
    const hn = norm(x, `${p}.ffn_norm`);
    let h: Float32Array;
    if (c.act === 'swiglu') {
      const g = matmulCpu(hn, tensor(w, `${p}.w_gate`), null, T, ff, d, 'nk');
      h = matmulCpu(hn, tensor(w, `${p}.w_up`), null, T, ff, d, 'nk');
      for (let i = 0; i < h.length; i++) h[i] = silu(g[i]) * h[i];
    } else {
      h = matmulCpu(hn, tensor(w, `${p}.w_up`), c.mlpBias ? tensor(w, `${p}.b_up`) : null, T, ff, d, 'nk');
      for (let i = 0; i < h.length; i++) h[i] = geluTanh(h[i]);
    }
    addInPlace(x, matmulCpu(h, tensor(w, `${p}.w_down`), c.mlpBias ? tensor(w, `${p}.b_down`) : null, T, d, ff, 'nk'));
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
  return matmulCpu(h, tensor(w, 'lm_head'), null, r.length, V, d, 'nk');
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
  const { logp } = logprobCpu(hidden, tensor(w, 'lm_head'), targets, mask, last, V, d);
  for (let t = 1; t <= last; t++) if (mask[t - 1]) out[t] = logp[t - 1];
  return out;
}

/** logProbsCpu over a batch of sequences of any lengths (no cross-sequence attention). */
export function logProbsBatchCpu(w: LoadedWeights, batch: readonly ArrayLike<number>[], masks?: readonly (ArrayLike<number | boolean> | undefined)[]): Float64Array[] {
  return batch.map((ids, b) => logProbsCpu(w, ids, masks?.[b]));
}
