// The BERT encoder on the CPU: the twin that the WebGPU pass (bert-gpu.ts) and ONNX Runtime are
// checked against. Post-LayerNorm BERT:
//   x = LN(word[id] + pos[t] + type[0])
//   per layer: a = LN(x + Wo·MHA(Wq·x, Wk·x, Wv·x; key padding mask) + bo)
//              x = LN(a + W2·gelu_erf(W1·a + b1) + b2)
//   sentence = normalize(mean over unmasked tokens of x)
// Dot products, LayerNorm statistics, softmax sums and pooling accumulate in f64 (JS numbers);
// tensors are stored as f32 between ops, like the GPU.

import { matmulCpu } from '../../kernels/matmul.js';
import type { BertWeights } from './types.js';

/** A padded batch: B sequences of S tokens, row-major; mask 1 = real token, 0 = padding. */
export interface BertBatch {
  ids: Int32Array;
  mask: Uint8Array;
  B: number;
  S: number;
}

/** Pack token-id lists into a right-padded batch. */
export function padBatch(seqs: number[][], padId = 0): BertBatch {
  const B = seqs.length;
  const S = Math.max(1, ...seqs.map((s) => s.length));
  const ids = new Int32Array(B * S).fill(padId);
  const mask = new Uint8Array(B * S);
  seqs.forEach((s, b) => {
    ids.set(s, b * S);
    mask.fill(1, b * S, b * S + s.length);
  });
  return { ids, mask, B, S };
}

/**
 * erf in double precision: Maclaurin series for |x| < 2.5, the Laplace continued fraction for
 * erfc beyond (both converge to ~1e-15 there). JavaScript has no Math.erf.
 */
export function erf(x: number): number {
  const ax = Math.abs(x);
  if (ax < 2.5) {
    // erf(x) = 2/√π Σ (−1)ⁿ x^(2n+1) / (n! (2n+1))
    const x2 = x * x;
    let term = x, sum = x;
    for (let n = 1; n < 60; n++) {
      term *= -x2 / n;
      const t = term / (2 * n + 1);
      sum += t;
      if (Math.abs(t) < 1e-17 * Math.abs(sum)) break;
    }
    return (2 / Math.sqrt(Math.PI)) * sum;
  }
  if (ax > 6) return Math.sign(x);
  // erfc(z) = e^(−z²)/√π · 1/(z + (1/2)/(z + 1/(z + (3/2)/(z + ...))))
  let f = ax;
  for (let n = 60; n >= 1; n--) f = ax + n / 2 / f;
  const erfc = Math.exp(-ax * ax) / (Math.sqrt(Math.PI) * f);
  return Math.sign(x) * (1 - erfc);
}

/** BERT's gelu: x · Φ(x) = x/2 · (1 + erf(x/√2)). */
export const geluErf = (x: number): number => 0.5 * x * (1 + erf(x * Math.SQRT1_2));

/** LayerNorm over rows of length d, two-pass in f64, in place into `out`. */
export function layerNormCpu(x: Float32Array, w: Float32Array, b: Float32Array, rows: number, d: number, eps: number, out: Float32Array = new Float32Array(rows * d)): Float32Array {
  for (let r = 0; r < rows; r++) {
    const o = r * d;
    let mean = 0;
    for (let i = 0; i < d; i++) mean += x[o + i];
    mean /= d;
    let v = 0;
    for (let i = 0; i < d; i++) { const t = x[o + i] - mean; v += t * t; }
    const inv = 1 / Math.sqrt(v / d + eps);
    for (let i = 0; i < d; i++) out[o + i] = (x[o + i] - mean) * inv * w[i] + b[i];
  }
  return out;
}

/**
 * Bidirectional multi-head attention with a key padding mask. q, k, v, out: [B·S, nHeads·hd].
 * A query whose keys are all masked gets zeros.
 */
export function attentionCpu(q: Float32Array, k: Float32Array, v: Float32Array, mask: Uint8Array, B: number, S: number, nHeads: number, hd: number, scale: number, out: Float32Array = new Float32Array(B * S * nHeads * hd)): Float32Array {
  const d = nHeads * hd;
  const s = new Float64Array(S);
  const acc = new Float64Array(hd);
  for (let b = 0; b < B; b++) {
    for (let h = 0; h < nHeads; h++) {
      for (let i = 0; i < S; i++) {
        const qo = (b * S + i) * d + h * hd;
        let max = -Infinity;
        for (let j = 0; j < S; j++) {
          if (!mask[b * S + j]) continue;
          const ko = (b * S + j) * d + h * hd;
          let dot = 0;
          for (let t = 0; t < hd; t++) dot += q[qo + t] * k[ko + t];
          s[j] = dot * scale;
          if (s[j] > max) max = s[j];
        }
        acc.fill(0);
        if (max === -Infinity) { out.fill(0, qo, qo + hd); continue; }
        let sum = 0;
        for (let j = 0; j < S; j++) {
          if (!mask[b * S + j]) continue;
          const p = Math.exp(s[j] - max);
          sum += p;
          const vo = (b * S + j) * d + h * hd;
          for (let t = 0; t < hd; t++) acc[t] += p * v[vo + t];
        }
        for (let t = 0; t < hd; t++) out[qo + t] = acc[t] / sum;
      }
    }
  }
  return out;
}

/** Embedding sum + LayerNorm: [B·S, d]. Positions restart at 0 for each sequence; token type 0. */
export function bertEmbedCpu(w: BertWeights, batch: BertBatch): Float32Array {
  const { dim: d, vocabSize, maxPositions, normEps } = w.config;
  const { ids, B, S } = batch;
  if (S > maxPositions) throw new Error(`${w.config.name}: sequence of ${S} tokens exceeds ${maxPositions} positions`);
  const x = new Float32Array(B * S * d);
  for (let r = 0; r < B * S; r++) {
    const id = ids[r], t = r % S;
    if (id < 0 || id >= vocabSize) throw new Error(`${w.config.name}: token id ${id} outside the vocabulary (${vocabSize})`);
    for (let i = 0; i < d; i++) x[r * d + i] = w.wordEmb[id * d + i] + w.posEmb[t * d + i] + w.typeEmb[i];
  }
  return layerNormCpu(x, w.embLnW, w.embLnB, B * S, d, normEps, x);
}

/** The encoder's last hidden state [B·S, d] (what ONNX exports call last_hidden_state). */
export function bertHiddenCpu(w: BertWeights, batch: BertBatch): Float32Array {
  const c = w.config;
  const { B, S, mask } = batch;
  const M = B * S, d = c.dim, ff = c.ffDim;
  let x = bertEmbedCpu(w, batch);
  const q = new Float32Array(M * d), k = new Float32Array(M * d), v = new Float32Array(M * d);
  const ctx = new Float32Array(M * d), tmp = new Float32Array(M * d), hid = new Float32Array(M * ff);
  for (const l of w.layers) {
    matmulCpu(x, l.wq, l.bq, M, d, d, 'nk', q);
    matmulCpu(x, l.wk, l.bk, M, d, d, 'nk', k);
    matmulCpu(x, l.wv, l.bv, M, d, d, 'nk', v);
    attentionCpu(q, k, v, mask, B, S, c.nHeads, c.headDim, c.attnScale, ctx);
    matmulCpu(ctx, l.wo, l.bo, M, d, d, 'nk', tmp);
    for (let i = 0; i < M * d; i++) tmp[i] += x[i];
    const a = layerNormCpu(tmp, l.ln1w, l.ln1b, M, d, c.normEps);
    matmulCpu(a, l.w1, l.b1, M, ff, d, 'nk', hid);
    for (let i = 0; i < M * ff; i++) hid[i] = geluErf(hid[i]);
    matmulCpu(hid, l.w2, l.b2, M, d, ff, 'nk', tmp);
    for (let i = 0; i < M * d; i++) tmp[i] += a[i];
    x = layerNormCpu(tmp, l.ln2w, l.ln2b, M, d, c.normEps, x);
  }
  return x;
}

/**
 * Mean over the unmasked tokens of each sequence, then L2 normalisation (as sentence-transformers'
 * Pooling(mean) + Normalize: x / max(‖x‖, 1e-12)). Returns [B, d].
 */
export function meanPoolNormalizeCpu(hidden: Float32Array, mask: Uint8Array, B: number, S: number, d: number, normalize = true): Float32Array {
  const out = new Float32Array(B * d);
  const acc = new Float64Array(d);
  for (let b = 0; b < B; b++) {
    acc.fill(0);
    let n = 0;
    for (let t = 0; t < S; t++) {
      if (!mask[b * S + t]) continue;
      n++;
      const o = (b * S + t) * d;
      for (let i = 0; i < d; i++) acc[i] += hidden[o + i];
    }
    const count = Math.max(n, 1e-9); // sentence-transformers clamps the token count at 1e-9
    let ss = 0;
    for (let i = 0; i < d; i++) { acc[i] /= count; ss += acc[i] * acc[i]; }
    const inv = normalize ? 1 / Math.max(Math.sqrt(ss), 1e-12) : 1;
    for (let i = 0; i < d; i++) out[b * d + i] = acc[i] * inv;
  }
  return out;
}

/** Sentence embeddings [B, d] (unit vectors) for a padded batch. */
export function bertEmbedSentencesCpu(w: BertWeights, batch: BertBatch): Float32Array {
  return meanPoolNormalizeCpu(bertHiddenCpu(w, batch), batch.mask, batch.B, batch.S, w.config.dim);
}
