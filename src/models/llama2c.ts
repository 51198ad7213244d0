// llama2.c checkpoints (the "legacy" export that run.c reads): a header of 7 int32
//   dim, hidden_dim, n_layers, n_heads, n_kv_heads, vocab_size (negative = unshared classifier), seq_len
// then f32 tensors in run.c's order:
//   token_embedding [V,d], rms_att [L,d], wq [L,d,d], wk [L,kvd,d], wv [L,kvd,d], wo [L,d,d],
//   rms_ffn [L,d], w1 [L,ff,d], w2 [L,d,ff], w3 [L,ff,d], rms_final [d],
//   freq_cis_real + freq_cis_imag (seq_len·head_size/2 each, unused: RoPE is recomputed), wcls [V,d] if unshared.
// Mapped to the canonical names of types.ts: w1 → w_gate, w3 → w_up, w2 → w_down.
//
// The file format (header, layout) is src/formats/llama2c.ts; this maps it onto the canonical
// weights. Bytes in memory: parseLlama2c (browser-safe). Files (Node): loadLlama2c (tensor by tensor).
// The writer (tests only) is tests/helpers/writers.ts.

import { HEADER_BYTES, checkLittleEndian, llama2cLayout, parseLlama2cHeader, readExactly, readLlama2cHeader, type Llama2cHeader } from '../formats/llama2c.js';
import { nodeFs } from '../tokenizer/node.js';
import type { LoadedWeights, ModelConfig, TensorMap } from './types.js';

export function llama2cConfig(h: Llama2cHeader, name: string): ModelConfig {
  return {
    arch: 'llama',
    name,
    vocabSize: h.vocabSize,
    dim: h.dim,
    hiddenDim: h.hiddenDim,
    nLayers: h.nLayers,
    nHeads: h.nHeads,
    nKvHeads: h.nKvHeads,
    headDim: h.dim / h.nHeads,
    maxSeqLen: h.seqLen,
    normEps: 1e-5,
    norm: 'rms',
    act: 'swiglu',
    pos: 'rope',
    ropeTheta: 10000,
    ropeLayout: 'interleaved',
    qkvBias: false,
    mlpBias: false,
    tiedEmbeddings: h.sharedClassifier,
    bosId: 1,
    eosId: 2,
    padId: null,
  };
}

/** Canonical tensors from a reader of f32 runs at byte positions (each result its own ArrayBuffer). */
function llama2cTensors(h: Llama2cHeader, config: ModelConfig, read: (position: number, count: number) => Float32Array): TensorMap {
  const { sections } = llama2cLayout(h);
  const at = (n: string) => HEADER_BYTES + 4 * sections.find((s) => s.name === n)!.offset;
  const { dim: d, hiddenDim: ff, nLayers: L, vocabSize: V } = h;
  const kvd = h.nKvHeads * config.headDim;
  const tensors: TensorMap = new Map();
  const perLayer = (src: string, dst: string, size: number) => {
    for (let i = 0; i < L; i++) tensors.set(`layers.${i}.${dst}`, read(at(src) + 4 * i * size, size));
  };
  tensors.set('tok_emb', read(at('token_embedding'), V * d));
  perLayer('rms_att_weight', 'attn_norm.weight', d);
  perLayer('wq', 'wq', d * d);
  perLayer('wk', 'wk', kvd * d);
  perLayer('wv', 'wv', kvd * d);
  perLayer('wo', 'wo', d * d);
  perLayer('rms_ffn_weight', 'ffn_norm.weight', d);
  perLayer('w1', 'w_gate', ff * d);
  perLayer('w2', 'w_down', d * ff);
  perLayer('w3', 'w_up', ff * d);
  tensors.set('final_norm.weight', read(at('rms_final_weight'), d));
  tensors.set('lm_head', h.sharedClassifier ? tensors.get('tok_emb')! : read(at('wcls'), V * d));
  return tensors;
}

/** Parse a checkpoint held in memory (browser-safe). Tensors are copies; `data` may be dropped after. */
export function parseLlama2c(data: Uint8Array | ArrayBuffer, source: string, name = `${source} (llama2.c)`): LoadedWeights {
  checkLittleEndian(source);
  const buf = data instanceof Uint8Array ? data : new Uint8Array(data);
  const h = parseLlama2cHeader(buf, buf.length, source);
  const config = llama2cConfig(h, name);
  const read = (position: number, count: number) => {
    const out = new Float32Array(count);
    new Uint8Array(out.buffer).set(buf.subarray(position, position + 4 * count));
    return out;
  };
  return { config, tensors: llama2cTensors(h, config, read) };
}

/** Load a checkpoint file (Node), tensor by tensor. Every tensor gets its own ArrayBuffer. */
export function loadLlama2c(path: string, name = `${path} (llama2.c)`): LoadedWeights {
  const h = readLlama2cHeader(path);
  const config = llama2cConfig(h, name);
  const fs = nodeFs();
  const fd = fs.openSync(path, 'r');
  try {
    const read = (position: number, count: number) => {
      const out = new Float32Array(count);
      readExactly(fd, new Uint8Array(out.buffer), position, path);
      return out;
    };
    return { config, tensors: llama2cTensors(h, config, read) };
  } finally {
    fs.closeSync(fd);
  }
}
