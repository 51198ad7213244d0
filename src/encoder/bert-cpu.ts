// The BERT encoder on the CPU: the twin that the WebGPU pass (bert-gpu.ts) and ONNX Runtime are
// checked against. Post-LayerNorm BERT:
//   x = LN(word[id] + pos[t] + type[0])
//   per layer: a = LN(x + Wo·MHA(Wq·x, Wk·x, Wv·x; key padding mask) + bo)
//              x = LN(a + W2·gelu_erf(W1·a + b1) + b2)
//   sentence = normalize(mean over unmasked tokens of x)
// Composed from the kernels' CPU twins, as the GPU pass is composed from the kernels themselves:
// matmul (kernels/matmul.ts), LayerNorm (kernels/norm.ts), bidirectional attention with per-sequence
// lengths (kernels/attention.ts, causal = false), exact GELU (kernels/act.ts), mean pooling
// (kernels/pool.ts) and L2 normalisation (kernels/cosine.ts). Dot products, LayerNorm statistics,
// softmax sums and pooling accumulate in f64 (JS numbers); tensors are stored as f32 between ops,
// like the GPU.

import type { PaddedBatch } from '../scheduler/batch.js';
import { geluErfCpu } from '../../kernels/act.js';
import { attentionCpu } from '../../kernels/attention.js';
import { l2NormalizeCpu } from '../../kernels/cosine.js';
import { matmulCpu } from '../../kernels/matmul.js';
import { layernormCpu } from '../../kernels/norm.js';
import { meanPoolCpu } from '../../kernels/pool.js';
import type { BertWeights } from './types.js';

// Batches are the one padded-batch type (src/scheduler/batch.ts): B sequences of L tokens.
export { padBatch, type PaddedBatch } from '../scheduler/batch.js';

/**
 * Real tokens per sequence of a right-padded batch (mask 1…1 0…0 per row), as the kernels take
 * them (seqLen). Throws on any other mask.
 */
export function batchLengths(batch: Pick<PaddedBatch, 'mask' | 'B' | 'L'>): Uint32Array {
  const { mask, B, L: S } = batch;
  const lens = new Uint32Array(B);
  for (let b = 0; b < B; b++) {
    let n = 0;
    for (let t = 0; t < S; t++) {
      if (!mask[b * S + t]) continue;
      if (n !== t) throw new Error('bert: batches must be right-padded (mask 1…1 0…0 per sequence)');
      n++;
    }
    lens[b] = n;
  }
  return lens;
}

/** Embedding sum + LayerNorm: [B·S, d]. Positions restart at 0 for each sequence; token type 0. */
export function bertEmbedCpu(w: BertWeights, batch: PaddedBatch): Float32Array {
  const { dim: d, vocabSize, maxPositions, normEps } = w.config;
  const { ids, B, L: S } = batch;
  if (S > maxPositions) throw new Error(`${w.config.name}: sequence of ${S} tokens exceeds ${maxPositions} positions`);
  const x = new Float32Array(B * S * d);
  for (let r = 0; r < B * S; r++) {
    const id = ids[r], t = r % S;
    if (id < 0 || id >= vocabSize) throw new Error(`${w.config.name}: token id ${id} outside the vocabulary (${vocabSize})`);
    for (let i = 0; i < d; i++) x[r * d + i] = w.wordEmb[id * d + i] + w.posEmb[t * d + i] + w.typeEmb[i];
  }
  return layernormCpu(x, w.embLnW, w.embLnB, B * S, d, normEps);
}

/**
 * The encoder's last hidden state [B·S, d] (what ONNX exports call last_hidden_state). Rows of
 * padding are zeros after each attention (as on the GPU); only real rows mean anything.
 */
export function bertHiddenCpu(w: BertWeights, batch: PaddedBatch): Float32Array {
  const c = w.config;
  const { B, L: S } = batch;
  const M = B * S, d = c.dim, ff = c.ffDim;
  const lens = batchLengths(batch);
  // The attention twin scales scores by 1/sqrt(headDim); a graph with another scale gets the
  // ratio applied to the queries (as bert-gpu.ts folds it into the query projection).
  const ratio = c.attnScale * Math.sqrt(c.headDim);
  let x = bertEmbedCpu(w, batch);
  const q = new Float32Array(M * d), k = new Float32Array(M * d), v = new Float32Array(M * d);
  const tmp = new Float32Array(M * d), hid = new Float32Array(M * ff);
  for (const l of w.layers) {
    matmulCpu(x, l.wq, l.bq, M, d, d, 'nk', q);
    if (ratio !== 1) for (let i = 0; i < M * d; i++) q[i] *= ratio;
    matmulCpu(x, l.wk, l.bk, M, d, d, 'nk', k);
    matmulCpu(x, l.wv, l.bv, M, d, d, 'nk', v);
    const ctx = attentionCpu(q, k, v, lens, B, S, c.nHeads, c.nHeads, c.headDim, false);
    matmulCpu(ctx, l.wo, l.bo, M, d, d, 'nk', tmp);
    for (let i = 0; i < M * d; i++) tmp[i] += x[i];
    const a = layernormCpu(tmp, l.ln1w, l.ln1b, M, d, c.normEps);
    matmulCpu(a, l.w1, l.b1, M, ff, d, 'nk', hid);
    const g = geluErfCpu(hid);
    matmulCpu(g, l.w2, l.b2, M, d, ff, 'nk', tmp);
    for (let i = 0; i < M * d; i++) tmp[i] += a[i];
    x = layernormCpu(tmp, l.ln2w, l.ln2b, M, d, c.normEps);
  }
  return x;
}

/**
 * Mean over the real tokens of each sequence of a right-padded batch, then (by default) L2
 * normalisation, as sentence-transformers' Pooling(mean) + Normalize. Returns [B, d]. Also used on
 * ONNX Runtime's last_hidden_state in tests and benchmarks.
 */
export function meanPoolNormalizeCpu(hidden: Float32Array, mask: Uint8Array, B: number, S: number, d: number, normalize = true): Float32Array {
  const pooled = meanPoolCpu(hidden, batchLengths({ mask, B, L: S }), B, S, d);
  return normalize ? l2NormalizeCpu(pooled, B, d) : pooled;
}

/** Sentence embeddings [B, d] (unit vectors) for a padded batch. */
export function bertEmbedSentencesCpu(w: BertWeights, batch: PaddedBatch): Float32Array {
  return meanPoolNormalizeCpu(bertHiddenCpu(w, batch), batch.mask, batch.B, batch.L, w.config.dim);
}
