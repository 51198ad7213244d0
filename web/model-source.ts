// Models from bytes (the browser has no file system): a llama2.c checkpoint + tokenizer.bin given as
// ArrayBuffers, parsed with the same layout/config/tokenizer code as the Node loaders.
//
// What is reused from src/: llama2cLayout + llama2cConfig (checkpoint layout and config),
// sentencepieceTokenizerJson / sentencepieceTokenizerConfig / rankMergesByScore + HfTextTokenizer
// (the run.c-exact tokenizer). What is here only because the Node entry points take a path:
//   - the checkpoint's 28-byte header read from a DataView (readLlama2cHeader opens a file), and
//   - the tokenizer.bin record walk (readLlama2cTokenizer reads the file itself).
// Both are a few lines; when src/ grows bytes-based entry points (parseLlama2c(bytes),
// parseLlama2cTokenizer(bytes)), this file shrinks to calls of them.

import { llama2cConfig, llama2cLayout, type Llama2cHeader } from '../src/models/llama2c.js';
import type { LoadedWeights, TensorMap } from '../src/models/types.js';
import { HfTextTokenizer, type TokenizerJson } from '../src/tokenizer/hf.js';
import {
  rankMergesByScore,
  sentencepieceTokenizerConfig,
  sentencepieceTokenizerJson,
  type SentencePieceVocab,
} from '../src/tokenizer/llama2c.js';
import type { TextTokenizer } from '../src/tokenizer/types.js';

const HEADER_BYTES = 28;

/** A llama2.c checkpoint's header, from its first 28 bytes. */
export function llama2cHeaderFromBytes(bytes: ArrayBuffer, what = 'checkpoint'): Llama2cHeader {
  if (bytes.byteLength < HEADER_BYTES) throw new Error(`${what}: ${bytes.byteLength} bytes, shorter than the 28-byte llama2.c header`);
  const v = new DataView(bytes, 0, HEADER_BYTES);
  const i = (k: number) => v.getInt32(4 * k, true);
  const vocab = i(5);
  const h: Llama2cHeader = {
    dim: i(0), hiddenDim: i(1), nLayers: i(2), nHeads: i(3), nKvHeads: i(4),
    vocabSize: Math.abs(vocab), sharedClassifier: vocab > 0, seqLen: i(6),
  };
  const sane = h.dim > 0 && h.hiddenDim > 0 && h.nLayers > 0 && h.nHeads > 0 && h.nKvHeads > 0 &&
    h.vocabSize > 0 && h.seqLen > 0 && h.dim % h.nHeads === 0 && h.nHeads % h.nKvHeads === 0;
  if (!sane) throw new Error(`${what}: not a llama2.c checkpoint (header ${JSON.stringify(h)})`);
  return h;
}

/**
 * Canonical weights of a llama2.c checkpoint held in memory. Tensors are views onto `bytes`
 * (no copy: the header is 28 bytes, so every tensor is 4-byte aligned).
 */
export function llama2cFromBytes(bytes: ArrayBuffer, name: string): LoadedWeights {
  const h = llama2cHeaderFromBytes(bytes, name);
  const config = llama2cConfig(h, name);
  const { bytes: need, sections } = llama2cLayout(h);
  if (bytes.byteLength < need) {
    throw new Error(`${name}: truncated llama2.c checkpoint: ${bytes.byteLength} bytes, the header needs ${need}`);
  }
  const at = (n: string) => HEADER_BYTES + 4 * sections.find((s) => s.name === n)!.offset;
  const f32 = (pos: number, count: number) => new Float32Array(bytes, pos, count);
  const { dim: d, hiddenDim: ff, nLayers: L, vocabSize: V } = h;
  const kvd = h.nKvHeads * config.headDim;
  const tensors: TensorMap = new Map();
  const perLayer = (src: string, dst: string, size: number) => {
    for (let i = 0; i < L; i++) tensors.set(`layers.${i}.${dst}`, f32(at(src) + 4 * i * size, size));
  };
  tensors.set('tok_emb', f32(at('token_embedding'), V * d));
  perLayer('rms_att_weight', 'attn_norm.weight', d);
  perLayer('wq', 'wq', d * d);
  perLayer('wk', 'wk', kvd * d);
  perLayer('wv', 'wv', kvd * d);
  perLayer('wo', 'wo', d * d);
  perLayer('rms_ffn_weight', 'ffn_norm.weight', d);
  perLayer('w1', 'w_gate', ff * d);
  perLayer('w2', 'w_down', d * ff);
  perLayer('w3', 'w_up', ff * d);
  tensors.set('final_norm.weight', f32(at('rms_final_weight'), d));
  tensors.set('lm_head', h.sharedClassifier ? tensors.get('tok_emb')! : f32(at('wcls'), V * d));
  return { config, tensors };
}

const byteName = (b: number): string => `<0x${b.toString(16).toUpperCase().padStart(2, '0')}>`;

/** A llama2.c tokenizer.bin held in memory → the sentencepiece vocabulary (as readLlama2cTokenizer). */
export function llama2cVocabFromBytes(bytes: ArrayBuffer, vocabSize: number | undefined, what = 'tokenizer.bin'): SentencePieceVocab {
  if (bytes.byteLength < 4) throw new Error(`${what}: ${bytes.byteLength} bytes, shorter than the 4-byte header`);
  const v = new DataView(bytes);
  const u8 = new Uint8Array(bytes);
  const dec = new TextDecoder('utf-8', { fatal: false });
  const maxTokenLength = v.getInt32(0, true);
  const raw: string[] = [];
  const scores: number[] = [];
  let o = 4;
  while (o < bytes.byteLength) {
    if (o + 8 > bytes.byteLength) throw new Error(`${what}: truncated: token ${raw.length} header at byte ${o}`);
    const score = v.getFloat32(o, true);
    const len = v.getInt32(o + 4, true);
    if (len < 0 || o + 8 + len > bytes.byteLength) throw new Error(`${what}: truncated: token ${raw.length} claims ${len} bytes at byte ${o + 8}`);
    raw.push(dec.decode(u8.subarray(o + 8, o + 8 + len)));
    scores.push(score);
    o += 8 + len;
  }
  if (vocabSize !== undefined && raw.length !== vocabSize) {
    throw new Error(`${what} holds ${raw.length} tokens but the checkpoint's vocab_size is ${vocabSize}: the tokenizer does not belong to this model`);
  }
  if (raw.length < 3) throw new Error(`${what} holds only ${raw.length} tokens`);
  let byteFallback = raw.length >= 259;
  for (let b = 0; byteFallback && b < 256; b++) {
    const t = raw[b + 3];
    if (t !== byteName(b) && t !== String.fromCharCode(b)) byteFallback = false;
  }
  const pieces = raw.map((t, id) => {
    if (byteFallback && id >= 3 && id < 259) return byteName(id - 3);
    if (id < 3) {
      const s = t.trim();
      if (s === '<unk>' || s === '<s>' || s === '</s>') return s;
    }
    return t.replaceAll(' ', '\u2581');
  });
  return { pieces, scores: Float32Array.from(scores), maxTokenLength, byteFallback, unkId: 0, bosId: 1, eosId: 2 };
}

/** The run.c-exact tokenizer of a tokenizer.bin held in memory (as llama2cTokenizer(path)). */
export function llama2cTokenizerFromBytes(bytes: ArrayBuffer, vocabSize: number | undefined, what = 'tokenizer.bin'): HfTextTokenizer {
  const v = llama2cVocabFromBytes(bytes, vocabSize, what);
  const tok = new HfTextTokenizer(sentencepieceTokenizerJson(v), sentencepieceTokenizerConfig(v), `llama2.c tokenizer.bin (${what})`, {
    bosId: v.bosId, eosId: v.eosId, padId: null,
  });
  rankMergesByScore(tok, v);
  return tok;
}

/** A Hugging Face tokenizer from the bytes of tokenizer.json (+ tokenizer_config.json). */
export function hfTokenizerFromBytes(tokenizerJson: ArrayBuffer, configJson: ArrayBuffer | null, what: string): HfTextTokenizer {
  const text = (b: ArrayBuffer) => new TextDecoder().decode(b);
  const json = JSON.parse(text(tokenizerJson)) as TokenizerJson;
  if (!json || typeof json !== 'object' || !json.model) throw new Error(`${what}: tokenizer.json has no "model" section`);
  const config = configJson ? (JSON.parse(text(configJson)) as Record<string, unknown>) : {};
  return new HfTextTokenizer(json, config, `tokenizer.json (${what})`);
}

export interface ModelBytes {
  weights: LoadedWeights;
  tokenizer: TextTokenizer;
}

/** A llama2.c model (checkpoint + tokenizer.bin) from bytes. */
export function llama2cModelFromBytes(model: ArrayBuffer, tokenizer: ArrayBuffer, name: string): ModelBytes {
  const weights = llama2cFromBytes(model, name);
  return { weights, tokenizer: llama2cTokenizerFromBytes(tokenizer, weights.config.vocabSize, `${name} tokenizer`) };
}

/**
 * A Hugging Face model folder (config.json, *.safetensors, tokenizer.json, ...) from the files a
 * folder input gave, keyed by name within the folder. Needs a bytes-based entry point in
 * src/models/hf.ts (mapping HF tensor names to the canonical ones), which does not exist yet.
 */
export async function hfModelFromFiles(files: Map<string, ArrayBuffer>, name: string): Promise<ModelBytes> {
  const need = ['config.json', 'tokenizer.json'];
  const missing = need.filter((f) => !files.has(f));
  if (missing.length) throw new Error(`${name}: the folder has no ${missing.join(' or ')}`);
  if (![...files.keys()].some((f) => f.endsWith('.safetensors'))) throw new Error(`${name}: the folder has no .safetensors weights`);
  throw new Error(`${name}: Hugging Face folders are not supported in the browser yet (the HF loader reads from disk only); use a llama2.c checkpoint + tokenizer.bin`);
}
