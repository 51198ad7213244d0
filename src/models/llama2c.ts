// llama2.c checkpoints (the "legacy" export that run.c reads): a header of 7 int32
//   dim, hidden_dim, n_layers, n_heads, n_kv_heads, vocab_size (negative = unshared classifier), seq_len
// then f32 tensors in run.c's order:
//   token_embedding [V,d], rms_att [L,d], wq [L,d,d], wk [L,kvd,d], wv [L,kvd,d], wo [L,d,d],
//   rms_ffn [L,d], w1 [L,ff,d], w2 [L,d,ff], w3 [L,ff,d], rms_final [d],
//   freq_cis_real + freq_cis_imag (seq_len·head_size/2 each, unused: RoPE is recomputed), wcls [V,d] if unshared.
// Mapped to the canonical names of types.ts: w1 → w_gate, w3 → w_up, w2 → w_down.
//
// Bytes in memory: parseLlama2cHeader / parseLlama2c / serializeLlama2c (browser-safe).
// Files (Node): readLlama2cHeader / loadLlama2c (reads tensor by tensor) / writeLlama2c.

import { littleEndianHost, nodeFs } from '../tokenizer/node.js';
import type { LoadedWeights, ModelConfig, TensorMap } from './types.js';
import { tensor } from './types.js';

export interface Llama2cHeader {
  dim: number;
  hiddenDim: number;
  nLayers: number;
  nHeads: number;
  nKvHeads: number;
  vocabSize: number;
  /** vocab_size was positive in the file: the classifier is the token embedding. */
  sharedClassifier: boolean;
  seqLen: number;
}

const HEADER_BYTES = 28;

/** Bytes a checkpoint with this header must have, and where each section starts (in floats after the header). */
export function llama2cLayout(h: Llama2cHeader): { bytes: number; sections: { name: string; offset: number; count: number }[] } {
  const { dim: d, hiddenDim: ff, nLayers: L, vocabSize: V, seqLen } = h;
  const hs = d / h.nHeads;
  const kvd = h.nKvHeads * hs;
  const parts: [string, number][] = [
    ['token_embedding', V * d], ['rms_att_weight', L * d], ['wq', L * d * d], ['wk', L * kvd * d], ['wv', L * kvd * d], ['wo', L * d * d],
    ['rms_ffn_weight', L * d], ['w1', L * ff * d], ['w2', L * d * ff], ['w3', L * ff * d], ['rms_final_weight', d],
    ['freq_cis', seqLen * hs], // real and imag, seq_len·head_size/2 each
  ];
  if (!h.sharedClassifier) parts.push(['wcls', V * d]);
  const sections: { name: string; offset: number; count: number }[] = [];
  let off = 0;
  for (const [name, count] of parts) {
    sections.push({ name, offset: off, count });
    off += count;
  }
  return { bytes: HEADER_BYTES + 4 * off, sections };
}

function checkLittleEndian(source: string): void {
  if (!littleEndianHost()) throw new Error(`${source}: model files are little-endian and this machine is not`);
}

/**
 * Validate a checkpoint's header (its first 28 bytes, or more) against the file's total size.
 * Errors name `source` and what is wrong.
 */
export function parseLlama2cHeader(data: Uint8Array | ArrayBuffer, fileBytes: number, source: string): Llama2cHeader {
  const buf = data instanceof Uint8Array ? data : new Uint8Array(data);
  if (fileBytes < HEADER_BYTES || buf.length < HEADER_BYTES) throw new Error(`${source}: truncated llama2.c checkpoint: ${fileBytes} bytes, shorter than the 28-byte header`);
  const dv = new DataView(buf.buffer, buf.byteOffset, HEADER_BYTES);
  if (dv.getUint32(0, true) === 0x616b3432) {
    throw new Error(`${source}: llama2.c "ak42" (version ${dv.getInt32(4, true)}) export; only the legacy run.c format (export.py --version 0) is supported`);
  }
  const v = [0, 1, 2, 3, 4, 5, 6].map((i) => dv.getInt32(4 * i, true));
  const [dim, hiddenDim, nLayers, nHeads, nKvHeads, vocab, seqLen] = v;
  const h: Llama2cHeader = { dim, hiddenDim, nLayers, nHeads, nKvHeads, vocabSize: Math.abs(vocab), sharedClassifier: vocab > 0, seqLen };
  const bad = (what: string) => new Error(`${source}: not a llama2.c checkpoint: header [${v.join(', ')}] has ${what}`);
  if (!(dim > 0 && hiddenDim > 0 && nLayers > 0 && nHeads > 0 && nKvHeads > 0 && vocab !== 0 && seqLen > 0)) throw bad('a non-positive size');
  if (dim % nHeads !== 0) throw bad(`dim ${dim} not divisible by n_heads ${nHeads}`);
  if (nHeads % nKvHeads !== 0) throw bad(`n_heads ${nHeads} not divisible by n_kv_heads ${nKvHeads}`);
  if ((dim / nHeads) % 2 !== 0) throw bad(`odd head size ${dim / nHeads}`);
  const { bytes } = llama2cLayout(h);
  if (fileBytes !== bytes) {
    const what = fileBytes < bytes ? 'truncated' : 'too long';
    throw new Error(`${source}: ${what} llama2.c checkpoint: the header (dim ${dim}, hidden ${hiddenDim}, ${nLayers} layers, ${nHeads}/${nKvHeads} heads, vocab ${vocab}, seq_len ${seqLen}) needs exactly ${bytes} bytes, the file has ${fileBytes}`);
  }
  return h;
}

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

function readExactly(fd: number, dst: Uint8Array, position: number, path: string): void {
  const { readSync } = nodeFs();
  let done = 0;
  while (done < dst.length) {
    const n = readSync(fd, dst, done, Math.min(dst.length - done, 1 << 30), position + done);
    if (n === 0) throw new Error(`${path}: unexpected end of file at byte ${position + done}`);
    done += n;
  }
}

/** Header of a checkpoint file, validated against the file size (Node). */
export function readLlama2cHeader(path: string): Llama2cHeader & { fileBytes: number } {
  checkLittleEndian(path);
  const fs = nodeFs();
  let fd: number;
  try {
    fd = fs.openSync(path, 'r');
  } catch (e) {
    throw new Error(`${path}: cannot open llama2.c checkpoint: ${(e as Error).message}`);
  }
  try {
    const fileBytes = fs.fstatSync(fd).size;
    const hb = new Uint8Array(Math.min(HEADER_BYTES, fileBytes));
    readExactly(fd, hb, 0, path);
    return { ...parseLlama2cHeader(hb, fileBytes, path), fileBytes };
  } finally {
    fs.closeSync(fd);
  }
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
  nodeFs().writeFileSync(path, serializeLlama2c(w));
}
