// The BERT encoder on WebGPU, composed from the project's kernels (no BERT-specific shader except
// mean pooling): embed (word + position), layernorm, matmul 'nk' with bias for every dense,
// bidirectional attention (causal: false) with per-sequence lengths, in-place erf GELU, residual
// add, then mean pooling (kernels/pool.ts) and L2 normalisation (kernels/cosine.ts).
// The CPU twin is bert-cpu.ts; tests/embed.test.ts checks both against ONNX Runtime.
//
// Batches are right-padded: sequence b holds seqLen[b] real tokens out of L. Padded rows flow
// through the dense layers (harmless: attention never reads them as keys, pooling skips them).

import { addGpu } from '../../kernels/add.js';
import { attentionGpu } from '../../kernels/attention.js';
import { l2NormalizeGpu } from '../../kernels/cosine.js';
import { checkIds, embedGpu } from '../../kernels/embed.js';
import { geluGpu } from '../../kernels/act.js';
import { matmulGpu } from '../../kernels/matmul.js';
import { layernormGpu } from '../../kernels/norm.js';
import { meanPoolGpu } from '../../kernels/pool.js';
import type { GpuRuntime } from '../gpu/runtime.js';
import type { PaddedBatch } from '../scheduler/batch.js';
import { batchLengths } from './bert-cpu.js';
import type { BertWeights } from './types.js';

interface LayerBufs {
  wq: GPUBuffer; bq: GPUBuffer; wk: GPUBuffer; bk: GPUBuffer; wv: GPUBuffer; bv: GPUBuffer;
  wo: GPUBuffer; bo: GPUBuffer; ln1w: GPUBuffer; ln1b: GPUBuffer;
  w1: GPUBuffer; b1: GPUBuffer; w2: GPUBuffer; b2: GPUBuffer; ln2w: GPUBuffer; ln2b: GPUBuffer;
}

export class BertGpu {
  private word: GPUBuffer;
  /** position embeddings with token-type row 0 folded in (all our sequences are segment 0) */
  private posType: GPUBuffer;
  private embLnW: GPUBuffer;
  private embLnB: GPUBuffer;
  private layers: LayerBufs[];
  private owned: GPUBuffer[] = [];

  constructor(readonly rt: GpuRuntime, readonly w: BertWeights) {
    const c = w.config;
    const d = c.dim;
    const up = (data: Float32Array, label: string): GPUBuffer => {
      const b = rt.upload(data, `bert.${label}`);
      this.owned.push(b);
      return b;
    };
    this.word = up(w.wordEmb, 'word_emb');
    const pt = new Float32Array(c.maxPositions * d);
    for (let t = 0; t < c.maxPositions; t++) for (let i = 0; i < d; i++) pt[t * d + i] = w.posEmb[t * d + i] + w.typeEmb[i];
    this.posType = up(pt, 'pos_type_emb');
    this.embLnW = up(w.embLnW, 'emb_ln.w');
    this.embLnB = up(w.embLnB, 'emb_ln.b');
    // The attention kernel scales by 1/sqrt(headDim); a graph with another scale gets the ratio
    // folded into the query projection.
    const ratio = c.attnScale * Math.sqrt(c.headDim);
    const scaled = (x: Float32Array): Float32Array => (ratio === 1 ? x : x.map((v) => v * ratio));
    this.layers = w.layers.map((l, i) => ({
      wq: up(scaled(l.wq), `${i}.wq`), bq: up(scaled(l.bq), `${i}.bq`),
      wk: up(l.wk, `${i}.wk`), bk: up(l.bk, `${i}.bk`), wv: up(l.wv, `${i}.wv`), bv: up(l.bv, `${i}.bv`),
      wo: up(l.wo, `${i}.wo`), bo: up(l.bo, `${i}.bo`), ln1w: up(l.ln1w, `${i}.ln1w`), ln1b: up(l.ln1b, `${i}.ln1b`),
      w1: up(l.w1, `${i}.w1`), b1: up(l.b1, `${i}.b1`), w2: up(l.w2, `${i}.w2`), b2: up(l.b2, `${i}.b2`),
      ln2w: up(l.ln2w, `${i}.ln2w`), ln2b: up(l.ln2b, `${i}.ln2b`),
    }));
  }

  /** Record the encoder for a batch; returns the last hidden state [B·L, d] (a scratch buffer). */
  private record(batch: PaddedBatch): { hidden: GPUBuffer; seqLen: GPUBuffer } {
    const rt = this.rt, c = this.w.config;
    const { B, L } = batch;
    const d = c.dim, ff = c.ffDim, M = B * L;
    if (L > c.maxPositions) throw new Error(`${c.name}: ${L} tokens exceed ${c.maxPositions} positions`);
    checkIds(batch.ids, c.vocabSize);
    const lens = batchLengths(batch);
    const ids = rt.scratch(M * 4, 'bert.ids');
    rt.write(ids, batch.ids.subarray(0, M));
    const seqLen = rt.scratch(B * 4, 'bert.seqLen');
    rt.write(seqLen, lens);
    const buf = (n: number, label: string): GPUBuffer => rt.scratch(n * 4, `bert.${label}`);
    const e = buf(M * d, 'emb');
    let x = buf(M * d, 'x');
    embedGpu(rt, { ids, tokEmb: this.word, posEmb: this.posType, nPos: c.maxPositions, out: e, B, L, d, vocabSize: c.vocabSize });
    layernormGpu(rt, { x: e, weight: this.embLnW, bias: this.embLnB, out: x, rows: M, d, eps: c.normEps });
    const q = buf(M * d, 'q'), k = buf(M * d, 'k'), v = buf(M * d, 'v'), ctx = buf(M * d, 'ctx');
    const tmp = buf(M * d, 'tmp'), a = buf(M * d, 'a'), hid = buf(M * ff, 'ffn');
    for (const l of this.layers) {
      matmulGpu(rt, { A: x, B: l.wq, bias: l.bq, C: q, M, N: d, K: d, layout: 'nk' });
      matmulGpu(rt, { A: x, B: l.wk, bias: l.bk, C: k, M, N: d, K: d, layout: 'nk' });
      matmulGpu(rt, { A: x, B: l.wv, bias: l.bv, C: v, M, N: d, K: d, layout: 'nk' });
      attentionGpu(rt, { q, k, v, seqLen, out: ctx, B, L, nHeads: c.nHeads, nKvHeads: c.nHeads, headDim: c.headDim, causal: false });
      matmulGpu(rt, { A: ctx, B: l.wo, bias: l.bo, C: tmp, M, N: d, K: d, layout: 'nk' });
      addGpu(rt, { x, y: tmp, n: M * d });
      layernormGpu(rt, { x: tmp, weight: l.ln1w, bias: l.ln1b, out: a, rows: M, d, eps: c.normEps });
      matmulGpu(rt, { A: a, B: l.w1, bias: l.b1, C: hid, M, N: ff, K: d, layout: 'nk' });
      geluGpu(rt, { x: hid, n: M * ff, kind: 'erf' });
      matmulGpu(rt, { A: hid, B: l.w2, bias: l.b2, C: tmp, M, N: d, K: ff, layout: 'nk' });
      addGpu(rt, { x: a, y: tmp, n: M * d });
      layernormGpu(rt, { x: tmp, weight: l.ln2w, bias: l.ln2b, out: x, rows: M, d, eps: c.normEps });
    }
    return { hidden: x, seqLen };
  }

  /** Last hidden state [B·L, d] (for tests against ONNX Runtime's last_hidden_state). */
  async hidden(batch: PaddedBatch): Promise<Float32Array> {
    const { hidden } = this.record(batch);
    return this.rt.readF32(hidden, batch.B * batch.L * this.w.config.dim);
  }

  /** Sentence embeddings [B, d]: mean over real tokens, L2-normalised. */
  async embedSentences(batch: PaddedBatch): Promise<Float32Array> {
    const rt = this.rt, d = this.w.config.dim;
    const { hidden, seqLen } = this.record(batch);
    const pooled = rt.scratch(batch.B * d * 4, 'bert.pooled');
    const out = rt.scratch(batch.B * d * 4, 'bert.sentences');
    meanPoolGpu(rt, { x: hidden, seqLen, out: pooled, B: batch.B, L: batch.L, d });
    l2NormalizeGpu(rt, { X: pooled, Y: out, N: batch.B, d });
    return rt.readF32(out, batch.B * d);
  }

  dispose(): void {
    for (const b of this.owned) this.rt.release(b);
    this.owned = [];
  }
}
