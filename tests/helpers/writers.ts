// Writers of the model file formats, used only by tests to build tiny models and fixtures (the
// product only reads these formats: src/formats/, src/models/llama2c.ts, src/tokenizer/llama2c.ts).

import { writeFileSync } from 'node:fs';
import { HEADER_BYTES, checkLittleEndian, llama2cLayout, type Llama2cHeader } from '../../src/formats/llama2c.js';
import type { MatMulNBitsParams } from '../../src/formats/matmulnbits.js';
import { tensor, type LoadedWeights } from '../../src/models/types.js';
import { f32ToF16Bits } from '../../src/util/f16.js';

/**
 * Canonical Llama weights (interleaved RoPE, nHeads·headDim = dim) as llama2.c checkpoint bytes;
 * an untied lm_head becomes wcls (negative vocab_size in the header).
 */
export function serializeLlama2c(w: LoadedWeights): Uint8Array {
  checkLittleEndian('serializeLlama2c');
  const c = w.config;
  if (c.arch !== 'llama' || c.ropeLayout !== 'interleaved' || c.qkvBias || c.mlpBias || c.nHeads * c.headDim !== c.dim) {
    throw new Error(`llama2.c holds only bias-free Llama models with interleaved RoPE and nHeads·headDim = dim (${c.name})`);
  }
  const h: Llama2cHeader = { dim: c.dim, hiddenDim: c.hiddenDim, nLayers: c.nLayers, nHeads: c.nHeads, nKvHeads: c.nKvHeads, vocabSize: c.vocabSize, sharedClassifier: c.tiedEmbeddings, seqLen: c.maxSeqLen };
  const { bytes, sections } = llama2cLayout(h);
  const out = new Uint8Array(bytes);
  const floats = new Float32Array(out.buffer, HEADER_BYTES);
  new Int32Array(out.buffer, 0, 7).set([c.dim, c.hiddenDim, c.nLayers, c.nHeads, c.nKvHeads, c.tiedEmbeddings ? c.vocabSize : -c.vocabSize, c.maxSeqLen]);
  const put = (sec: string, arrays: Float32Array[]) => {
    let o = sections.find((s) => s.name === sec)!.offset;
    for (const a of arrays) { floats.set(a, o); o += a.length; }
  };
  const layers = (n: string) => Array.from({ length: c.nLayers }, (_, i) => tensor(w, `layers.${i}.${n}`));
  put('token_embedding', [tensor(w, 'tok_emb')]);
  put('rms_att_weight', layers('attn_norm.weight'));
  put('wq', layers('wq'));
  put('wk', layers('wk'));
  put('wv', layers('wv'));
  put('wo', layers('wo'));
  put('rms_ffn_weight', layers('ffn_norm.weight'));
  put('w1', layers('w_gate'));
  put('w2', layers('w_down'));
  put('w3', layers('w_up'));
  put('rms_final_weight', [tensor(w, 'final_norm.weight')]);
  // freq_cis as llama2.c's export writes it (run.c ignores it): cos, then sin, [seq_len, head_size/2].
  const half = c.headDim / 2;
  const re = new Float32Array(c.maxSeqLen * half), im = new Float32Array(c.maxSeqLen * half);
  for (let p = 0; p < c.maxSeqLen; p++) {
    for (let i = 0; i < half; i++) {
      const a = p / Math.pow(c.ropeTheta, (2 * i) / c.headDim);
      re[p * half + i] = Math.cos(a);
      im[p * half + i] = Math.sin(a);
    }
  }
  put('freq_cis', [re, im]);
  if (!c.tiedEmbeddings) put('wcls', [tensor(w, 'lm_head')]);
  return out;
}

/** Write canonical weights as a llama2.c checkpoint file (Node); see serializeLlama2c. */
export function writeLlama2c(path: string, w: LoadedWeights): void {
  writeFileSync(path, serializeLlama2c(w));
}

// The safetensors writer is the product's too (bench/gpu/bundle.ts writes the bundle's model with it).
export { f32ToBf16Bits, writeSafetensors, type TensorToWrite } from '../../src/formats/safetensors.js';

/**
 * A llama2.c tokenizer.bin (newer export: '<0xXX>' byte tokens, '▁' as ' ', BOS/EOS as
 * '\n<s>\n' / '\n</s>\n'), e.g. for tiny test models.
 */
export function serializeLlama2cTokenizer(pieces: readonly string[], scores: ArrayLike<number>): Uint8Array {
  const enc = new TextEncoder();
  const strs = pieces.map((p, id) => enc.encode(id === 1 || id === 2 ? `\n${p}\n` : p.replaceAll('\u2581', ' ')));
  const maxLen = strs.reduce((m, s) => Math.max(m, s.length), 0);
  const out = new Uint8Array(4 + strs.reduce((n, s) => n + 8 + s.length, 0));
  const dv = new DataView(out.buffer);
  dv.setInt32(0, maxLen, true);
  let o = 4;
  strs.forEach((s, id) => {
    dv.setFloat32(o, scores[id], true);
    dv.setInt32(o + 4, s.length, true);
    out.set(s, o + 8);
    o += 8 + s.length;
  });
  return out;
}

/** Write a llama2.c tokenizer.bin (Node). */
export function writeLlama2cTokenizer(path: string, pieces: readonly string[], scores: ArrayLike<number>): void {
  writeFileSync(path, serializeLlama2cTokenizer(pieces, scores));
}

/** Inverse, for tests: quantise f32 [N, K] to 4-bit blocks with symmetric-ish (min/max) scales. */
export function quantizeMatMulNBits4(W: Float32Array, N: number, K: number, blockSize: number, withZeroPoints: boolean): MatMulNBitsParams {
  const nBlocks = Math.ceil(K / blockSize);
  const blobSize = blockSize / 2;
  const B = new Uint8Array(N * nBlocks * blobSize);
  const scales = new Float32Array(N * nBlocks);
  const zpRowBytes = Math.ceil(nBlocks / 2);
  const zeroPoints = withZeroPoints ? new Uint8Array(N * zpRowBytes) : null;
  for (let n = 0; n < N; n++) {
    for (let b = 0; b < nBlocks; b++) {
      let lo = 0, hi = 0;
      for (let k = b * blockSize; k < Math.min(K, (b + 1) * blockSize); k++) { lo = Math.min(lo, W[n * K + k]); hi = Math.max(hi, W[n * K + k]); }
      let scale: number, z: number;
      if (withZeroPoints) {
        scale = (hi - lo) / 15 || 1;
        z = Math.min(15, Math.max(0, Math.round(-lo / scale)));
        zeroPoints![n * zpRowBytes + (b >> 1)] |= z << ((b & 1) * 4);
      } else {
        const amax = Math.max(-lo, hi);
        scale = amax / 7 || 1;
        z = 8;
      }
      scales[n * nBlocks + b] = scale;
      for (let k = b * blockSize; k < Math.min(K, (b + 1) * blockSize); k++) {
        const q = Math.min(15, Math.max(0, Math.round(W[n * K + k] / scale) + z));
        const kin = k - b * blockSize;
        B[(n * nBlocks + b) * blobSize + (kin >> 1)] |= q << ((kin & 1) * 4);
      }
    }
  }
  return { K, N, bits: 4, blockSize, B, scales, zeroPoints };
}
