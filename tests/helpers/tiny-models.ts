// Tiny random-weight models of every supported architecture, in every on-disk form, for tests:
//
//   makeTinyModel(kind, dir, opts?) → the path to give loadWeights() (a .bin file or a folder)
//   buildTinyModel(kind, dir, opts?) → { path, config, tensors }: also the canonical weights as
//                                      the loader must return them (values already rounded to the
//                                      stored dtype, so loaders must reproduce them exactly)
//
//   'llama2c'          llama2.c model.bin, shared classifier, + tokenizer.bin
//   'llama2c-unshared' llama2.c model.bin, separate wcls,     + tokenizer.bin
//   'hf-llama'         LlamaForCausalLM, f32, untied lm_head; the same weights as 'llama2c-unshared'
//                      (same seed and sizes) with q/k rows permuted to HF's rotate_half order, and
//                      the same vocabulary as a legacy tokenizer.json
//   'hf-mistral'       MistralForCausalLM, bf16, GQA (nKvHeads < nHeads), Metaspace tokenizer.json
//   'hf-qwen2'         Qwen2ForCausalLM, f16, q/k/v biases, untied head, sharded (index + 2 files),
//                      Qwen-style byte-level tokenizer, model vocab padded past the tokenizer's
//   'hf-gpt2'          GPT2LMHeadModel, f32, Conv1D [in, out] weights, fused c_attn, learned wpe,
//                      tied head, byte-level tokenizer, no 'transformer.' prefix (as the gpt2 repo)
//
// Tokenizers are trained here (a few dozen BPE merges on TINY_CORPUS), so encodings are short but
// real; every vocabulary has byte fallback (or byte-level symbols), so any text encodes.

import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { SafetensorsDtype } from '../../src/formats/safetensors.js';
import { f32ToBf16Bits, writeLlama2c, writeLlama2cTokenizer, writeSafetensors, type TensorToWrite } from './writers.js';
import type { LoadedWeights, ModelConfig, TensorMap } from '../../src/models/types.js';
import { sentencepieceTokenizerConfig, sentencepieceTokenizerJson, type SentencePieceVocab } from '../../src/tokenizer/llama2c.js';
import { f16BitsToF32, f32ToF16Bits } from '../../src/util/f16.js';
import { randn, rng } from './gpu.js';

export type TinyKind = 'llama2c' | 'llama2c-unshared' | 'hf-llama' | 'hf-mistral' | 'hf-qwen2' | 'hf-gpt2';
export const TINY_KINDS: readonly TinyKind[] = ['llama2c', 'llama2c-unshared', 'hf-llama', 'hf-mistral', 'hf-qwen2', 'hf-gpt2'];

export interface TinyOptions {
  seed?: number;
  dim?: number;
  hiddenDim?: number;
  nLayers?: number;
  nHeads?: number;
  nKvHeads?: number;
  maxSeqLen?: number;
}

export interface TinyModel {
  kind: TinyKind;
  /** what to pass to loadWeights() */
  path: string;
  /** the config the loader must produce (name aside) */
  config: ModelConfig;
  /** canonical tensors the loader must produce, bit-exact */
  tensors: TensorMap;
}

export const TINY_CORPUS = [
  'Once upon a time, there was a little girl named Lily. She loved to play outside in the park.',
  'One day, a little cat saw a big dog. The cat was scared, but the dog was kind and they became friends.',
  'Tom had a red ball. He liked to throw it high in the sky and catch it with his hands.',
  'The sun was shining and the birds were singing. It was a happy day in the park.',
  '"Can I have a cookie, please?" asked Amy. Her mom smiled and gave her two cookies.',
  'There were 3 little ducks swimming in the pond with their mother.',
];

// ---------------------------------------------------------------------------------------------
// Tokenizers

/** Greedy BPE training: words are symbol lists with counts; returns merges in order. */
function trainBpe(words: Map<string, number>, split: (w: string) => string[], nMerges: number): [string, string][] {
  const seqs = [...words].map(([w, n]) => ({ syms: split(w), n }));
  const merges: [string, string][] = [];
  for (let m = 0; m < nMerges; m++) {
    const counts = new Map<string, number>();
    for (const { syms, n } of seqs) for (let i = 0; i + 1 < syms.length; i++) {
      const k = JSON.stringify([syms[i], syms[i + 1]]);
      counts.set(k, (counts.get(k) ?? 0) + n);
    }
    let best: string | null = null, bestN = 1;
    for (const [k, n] of counts) if (n > bestN || (n === bestN && best !== null && k < best)) { best = k; bestN = n; }
    if (best === null) break;
    const [a, b] = JSON.parse(best) as [string, string];
    merges.push([a, b]);
    for (const s of seqs) {
      const out: string[] = [];
      for (let i = 0; i < s.syms.length; i++) {
        if (i + 1 < s.syms.length && s.syms[i] === a && s.syms[i + 1] === b) { out.push(a + b); i++; } else out.push(s.syms[i]);
      }
      s.syms = out;
    }
  }
  return merges;
}

/** Sentencepiece-style vocabulary: <unk> <s> </s>, 256 byte tokens, single characters, merged pieces. */
export function tinySentencepieceVocab(nMerges = 80): SentencePieceVocab {
  const words = new Map<string, number>();
  for (const line of TINY_CORPUS) for (const w of ('\u2581' + line.replaceAll(' ', '\u2581')).split(/(?=\u2581)/u)) words.set(w, (words.get(w) ?? 0) + 1);
  const merges = trainBpe(words, (w) => Array.from(w), nMerges);
  const pieces: string[] = ['<unk>', '<s>', '</s>'];
  const scores: number[] = [0, 0, 0];
  for (let b = 0; b < 256; b++) { pieces.push(`<0x${b.toString(16).toUpperCase().padStart(2, '0')}>`); scores.push(0); }
  merges.forEach(([a, b], i) => { pieces.push(a + b); scores.push(-i); });
  const chars = ['\u2581', ...Array.from({ length: 94 }, (_, i) => String.fromCharCode(33 + i)), 'é', '’'];
  chars.forEach((ch, i) => { pieces.push(ch); scores.push(-1000 - i); });
  return { pieces, scores: Float32Array.from(scores), maxTokenLength: Math.max(...pieces.map((p) => Buffer.byteLength(p))), byteFallback: true, unkId: 0, bosId: 1, eosId: 2 };
}

/** GPT-2's bytes_to_unicode: printable stand-ins for the 256 byte values. */
function bytesToUnicode(): string[] {
  const bs: number[] = [];
  for (let b = 33; b <= 126; b++) bs.push(b);
  for (let b = 161; b <= 172; b++) bs.push(b);
  for (let b = 174; b <= 255; b++) bs.push(b);
  const cs = [...bs];
  let n = 0;
  for (let b = 0; b < 256; b++) if (!bs.includes(b)) { bs.push(b); cs.push(256 + n++); }
  const out = new Array<string>(256);
  bs.forEach((b, i) => { out[b] = String.fromCodePoint(cs[i]); });
  return out;
}

const GPT2_SPLIT = /'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+/gu;
const QWEN2_PATTERN = "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";

/** Byte-level BPE tokenizer.json + tokenizer_config.json (GPT-2 or Qwen2 flavour). */
export function tinyByteLevelTokenizer(flavour: 'gpt2' | 'qwen2', nMerges = 80): { json: Record<string, unknown>; config: Record<string, unknown>; vocabSize: number; specials: Record<string, number> } {
  const b2u = bytesToUnicode();
  const enc = new TextEncoder();
  const words = new Map<string, number>();
  for (const line of TINY_CORPUS) for (const w of line.match(GPT2_SPLIT) ?? []) {
    const s = Array.from(enc.encode(w), (b) => b2u[b]).join('');
    words.set(s, (words.get(s) ?? 0) + 1);
  }
  const merges = trainBpe(words, (w) => Array.from(w), nMerges);
  const vocab: Record<string, number> = {};
  // GPT-2 orders single bytes as bytes_to_unicode lists them.
  const order = [...b2u.keys()].sort((x, y) => b2u[x].codePointAt(0)! - b2u[y].codePointAt(0)!);
  for (const b of order) vocab[b2u[b]] = Object.keys(vocab).length;
  for (const [a, b] of merges) if (vocab[a + b] === undefined) vocab[a + b] = Object.keys(vocab).length;
  const specialNames = flavour === 'gpt2' ? ['<|endoftext|>'] : ['<|endoftext|>', '<|im_start|>', '<|im_end|>'];
  const specials: Record<string, number> = {};
  let next = Object.keys(vocab).length;
  for (const s of specialNames) specials[s] = next++;
  const added = specialNames.map((s) => ({ id: specials[s], content: s, single_word: false, lstrip: false, rstrip: false, normalized: false, special: true }));
  const model = { type: 'BPE', dropout: null, unk_token: null, continuing_subword_prefix: '', end_of_word_suffix: '', fuse_unk: false, byte_fallback: false, ignore_merges: flavour === 'qwen2', vocab, merges: merges.map(([a, b]) => `${a} ${b}`) };
  const json =
    flavour === 'gpt2'
      ? {
          version: '1.0', truncation: null, padding: null, added_tokens: added, normalizer: null,
          pre_tokenizer: { type: 'ByteLevel', add_prefix_space: false, trim_offsets: true, use_regex: true },
          post_processor: { type: 'ByteLevel', add_prefix_space: true, trim_offsets: false, use_regex: true },
          decoder: { type: 'ByteLevel', add_prefix_space: true, trim_offsets: true, use_regex: true },
          model,
        }
      : {
          version: '1.0', truncation: null, padding: null, added_tokens: added, normalizer: { type: 'NFC' },
          pre_tokenizer: {
            type: 'Sequence',
            pretokenizers: [
              { type: 'Split', pattern: { Regex: QWEN2_PATTERN }, behavior: 'Isolated', invert: false },
              { type: 'ByteLevel', add_prefix_space: false, trim_offsets: false, use_regex: false },
            ],
          },
          post_processor: { type: 'ByteLevel', add_prefix_space: false, trim_offsets: false, use_regex: false },
          decoder: { type: 'ByteLevel', add_prefix_space: false, trim_offsets: false, use_regex: false },
          model,
        };
  const config =
    flavour === 'gpt2'
      ? { tokenizer_class: 'GPT2Tokenizer', bos_token: '<|endoftext|>', eos_token: '<|endoftext|>', unk_token: '<|endoftext|>', add_prefix_space: false, clean_up_tokenization_spaces: false, model_max_length: 1024 }
      : { tokenizer_class: 'Qwen2Tokenizer', bos_token: null, eos_token: '<|endoftext|>', pad_token: '<|endoftext|>', unk_token: null, clean_up_tokenization_spaces: false, split_special_tokens: false };
  return { json, config, vocabSize: next, specials };
}

// ---------------------------------------------------------------------------------------------
// Weights

const roundTo = (dtype: SafetensorsDtype, a: Float32Array): Float32Array => {
  if (dtype === 'F32') return a;
  const out = new Float32Array(a.length);
  for (let i = 0; i < a.length; i++) {
    out[i] = dtype === 'F16' ? f16BitsToF32(f32ToF16Bits(a[i])) : new Float32Array(new Uint32Array([f32ToBf16Bits(a[i]) << 16]).buffer)[0];
  }
  return out;
};

/** Random canonical weights for `c` (deterministic in seed; untied lm_head drawn last). */
function randomWeights(c: ModelConfig, seed: number, dtype: SafetensorsDtype): TensorMap {
  const r = rng(seed);
  const t: TensorMap = new Map();
  const mat = (name: string, rows: number, cols: number, scale = 1 / Math.sqrt(cols)) => t.set(name, roundTo(dtype, randn(r, rows * cols, scale)));
  const vec = (name: string, n: number, mean: number, scale: number) => {
    const v = randn(r, n, scale);
    for (let i = 0; i < n; i++) v[i] += mean;
    t.set(name, roundTo(dtype, v));
  };
  const { dim: d, hiddenDim: ff, vocabSize: V, headDim: hd } = c;
  const qd = c.nHeads * hd, kvd = c.nKvHeads * hd;
  mat('tok_emb', V, d, 0.4);
  if (c.pos === 'learned') mat('pos_emb', c.maxSeqLen, d, 0.2);
  for (let i = 0; i < c.nLayers; i++) {
    const p = `layers.${i}.`;
    vec(`${p}attn_norm.weight`, d, 1, 0.1);
    if (c.norm === 'layer') vec(`${p}attn_norm.bias`, d, 0, 0.1);
    mat(`${p}wq`, qd, d);
    mat(`${p}wk`, kvd, d);
    mat(`${p}wv`, kvd, d);
    if (c.qkvBias) { vec(`${p}bq`, qd, 0, 0.2); vec(`${p}bk`, kvd, 0, 0.2); vec(`${p}bv`, kvd, 0, 0.2); }
    mat(`${p}wo`, d, qd);
    if (c.mlpBias) vec(`${p}bo`, d, 0, 0.1);
    vec(`${p}ffn_norm.weight`, d, 1, 0.1);
    if (c.norm === 'layer') vec(`${p}ffn_norm.bias`, d, 0, 0.1);
    if (c.act === 'swiglu') mat(`${p}w_gate`, ff, d);
    mat(`${p}w_up`, ff, d);
    if (c.mlpBias) vec(`${p}b_up`, ff, 0, 0.1);
    mat(`${p}w_down`, d, ff);
    if (c.mlpBias) vec(`${p}b_down`, d, 0, 0.1);
  }
  vec('final_norm.weight', d, 1, 0.1);
  if (c.norm === 'layer') vec('final_norm.bias', d, 0, 0.1);
  if (c.tiedEmbeddings) t.set('lm_head', t.get('tok_emb')!);
  else mat('lm_head', V, d, 0.4);
  return t;
}

/** Rows of a q/k weight (or bias) from interleaved RoPE order to HF's rotate_half order, per head. */
export function interleavedToHalf(w: Float32Array, nHeads: number, hd: number, cols: number): Float32Array {
  const out = new Float32Array(w.length);
  for (let h = 0; h < nHeads; h++) {
    for (let j = 0; j < hd; j++) {
      const src = j < hd / 2 ? 2 * j : 2 * (j - hd / 2) + 1;
      out.set(w.subarray((h * hd + src) * cols, (h * hd + src + 1) * cols), (h * hd + j) * cols);
    }
  }
  return out;
}

function transpose(src: Float32Array, rows: number, cols: number): Float32Array {
  const out = new Float32Array(rows * cols);
  for (let r = 0; r < rows; r++) for (let c = 0; c < cols; c++) out[c * rows + r] = src[r * cols + c];
  return out;
}

const writeJson = (path: string, v: unknown) => writeFileSync(path, JSON.stringify(v, null, 2));

function baseConfig(kind: TinyKind, o: TinyOptions, vocabSize: number): ModelConfig {
  const gpt2 = kind === 'hf-gpt2';
  const dim = o.dim ?? 64, nHeads = o.nHeads ?? 4;
  const llama2c = kind === 'llama2c' || kind === 'llama2c-unshared';
  return {
    arch: gpt2 ? 'gpt2' : 'llama',
    name: `tiny ${kind}`,
    vocabSize,
    dim,
    hiddenDim: o.hiddenDim ?? (gpt2 ? 4 * dim : 176),
    nLayers: o.nLayers ?? 2,
    nHeads,
    nKvHeads: o.nKvHeads ?? (kind === 'hf-mistral' ? 2 : nHeads),
    headDim: dim / nHeads,
    maxSeqLen: o.maxSeqLen ?? 128,
    normEps: gpt2 ? 1e-5 : kind === 'hf-qwen2' ? 1e-6 : 1e-5,
    norm: gpt2 ? 'layer' : 'rms',
    act: gpt2 ? 'gelu_tanh' : 'swiglu',
    pos: gpt2 ? 'learned' : 'rope',
    ropeTheta: gpt2 ? 0 : kind === 'hf-qwen2' ? 1000000 : 10000,
    ropeLayout: llama2c || gpt2 ? 'interleaved' : 'half',
    qkvBias: gpt2 || kind === 'hf-qwen2',
    mlpBias: gpt2,
    tiedEmbeddings: kind === 'llama2c' || gpt2,
    bosId: 1,
    eosId: 2,
    padId: null,
  };
}

/** Build a tiny model of `kind` under `dir` (created if needed). */
export function buildTinyModel(kind: TinyKind, dir: string, opts: TinyOptions = {}): TinyModel {
  mkdirSync(dir, { recursive: true });
  const seed = opts.seed ?? 1234;

  if (kind === 'llama2c' || kind === 'llama2c-unshared' || kind === 'hf-llama' || kind === 'hf-mistral') {
    const sp = tinySentencepieceVocab();
    const config = baseConfig(kind, opts, sp.pieces.length);
    const dtype: SafetensorsDtype = kind === 'hf-mistral' ? 'BF16' : 'F32';
    // hf-llama: the weights of llama2c-unshared (interleaved), permuted on the way out.
    const canon = randomWeights({ ...config, ropeLayout: 'interleaved' }, seed, dtype);
    if (kind === 'llama2c' || kind === 'llama2c-unshared') {
      const path = join(dir, 'model.bin');
      writeLlama2c(path, { config, tensors: canon } as LoadedWeights);
      writeLlama2cTokenizer(join(dir, 'tokenizer.bin'), sp.pieces, sp.scores);
      return { kind, path, config, tensors: canon };
    }
    const tensors: TensorMap = new Map(canon);
    for (let i = 0; i < config.nLayers; i++) {
      tensors.set(`layers.${i}.wq`, interleavedToHalf(canon.get(`layers.${i}.wq`)!, config.nHeads, config.headDim, config.dim));
      tensors.set(`layers.${i}.wk`, interleavedToHalf(canon.get(`layers.${i}.wk`)!, config.nKvHeads, config.headDim, config.dim));
    }
    const out: TensorToWrite[] = [];
    const put = (name: string, data: Float32Array, shape: number[]) => out.push({ name, data, shape, dtype });
    const { dim: d, hiddenDim: ff, vocabSize: V } = config;
    const qd = config.nHeads * config.headDim, kvd = config.nKvHeads * config.headDim;
    put('model.embed_tokens.weight', tensors.get('tok_emb')!, [V, d]);
    for (let i = 0; i < config.nLayers; i++) {
      const h = `model.layers.${i}.`, o = `layers.${i}.`;
      put(`${h}input_layernorm.weight`, tensors.get(`${o}attn_norm.weight`)!, [d]);
      put(`${h}self_attn.q_proj.weight`, tensors.get(`${o}wq`)!, [qd, d]);
      put(`${h}self_attn.k_proj.weight`, tensors.get(`${o}wk`)!, [kvd, d]);
      put(`${h}self_attn.v_proj.weight`, tensors.get(`${o}wv`)!, [kvd, d]);
      put(`${h}self_attn.o_proj.weight`, tensors.get(`${o}wo`)!, [d, qd]);
      put(`${h}post_attention_layernorm.weight`, tensors.get(`${o}ffn_norm.weight`)!, [d]);
      put(`${h}mlp.gate_proj.weight`, tensors.get(`${o}w_gate`)!, [ff, d]);
      put(`${h}mlp.up_proj.weight`, tensors.get(`${o}w_up`)!, [ff, d]);
      put(`${h}mlp.down_proj.weight`, tensors.get(`${o}w_down`)!, [d, ff]);
    }
    put('model.norm.weight', tensors.get('final_norm.weight')!, [d]);
    if (!config.tiedEmbeddings) put('lm_head.weight', tensors.get('lm_head')!, [V, d]);
    writeSafetensors(join(dir, 'model.safetensors'), out);
    const arch = kind === 'hf-llama' ? 'LlamaForCausalLM' : 'MistralForCausalLM';
    writeJson(join(dir, 'config.json'), {
      architectures: [arch], model_type: kind === 'hf-llama' ? 'llama' : 'mistral', hidden_size: d, intermediate_size: ff,
      num_hidden_layers: config.nLayers, num_attention_heads: config.nHeads, num_key_value_heads: config.nKvHeads,
      max_position_embeddings: config.maxSeqLen, rms_norm_eps: config.normEps, rope_theta: config.ropeTheta, hidden_act: 'silu',
      vocab_size: V, tie_word_embeddings: config.tiedEmbeddings, bos_token_id: 1, eos_token_id: 2,
      torch_dtype: dtype === 'F32' ? 'float32' : 'bfloat16', ...(kind === 'hf-mistral' ? { sliding_window: null } : { rope_scaling: null }),
    });
    const tj = sentencepieceTokenizerJson(sp);
    if (kind === 'hf-mistral') {
      // The newer (legacy: false) form: a Metaspace pre-tokenizer instead of Prepend/Replace normalizers.
      tj.normalizer = null;
      tj.pre_tokenizer = { type: 'Metaspace', replacement: '\u2581', prepend_scheme: 'first', split: false };
      tj.decoder = { type: 'Sequence', decoders: [{ type: 'Replace', pattern: { String: '\u2581' }, content: ' ' }, { type: 'ByteFallback' }, { type: 'Fuse' }, { type: 'Strip', content: ' ', start: 1, stop: 0 }] };
    }
    writeJson(join(dir, 'tokenizer.json'), tj);
    writeJson(join(dir, 'tokenizer_config.json'), { ...sentencepieceTokenizerConfig(sp), legacy: kind === 'hf-llama' });
    return { kind, path: dir, config, tensors };
  }

  if (kind === 'hf-qwen2') {
    const tok = tinyByteLevelTokenizer('qwen2');
    const V = Math.ceil(tok.vocabSize / 16) * 16 + 16; // padded, as Qwen2's 151936 > its tokenizer's 151646
    const eot = tok.specials['<|endoftext|>'];
    const config = { ...baseConfig(kind, opts, V), bosId: eot, eosId: eot, padId: null };
    const tensors = randomWeights(config, seed, 'F16');
    const { dim: d, hiddenDim: ff } = config;
    const qd = config.nHeads * config.headDim, kvd = config.nKvHeads * config.headDim;
    const shard1: TensorToWrite[] = [], shard2: TensorToWrite[] = [];
    const put = (s: TensorToWrite[], name: string, data: Float32Array, shape: number[]) => s.push({ name, data, shape, dtype: 'F16' });
    put(shard1, 'model.embed_tokens.weight', tensors.get('tok_emb')!, [V, d]);
    for (let i = 0; i < config.nLayers; i++) {
      const s = i === 0 ? shard1 : shard2;
      const h = `model.layers.${i}.`, o = `layers.${i}.`;
      put(s, `${h}input_layernorm.weight`, tensors.get(`${o}attn_norm.weight`)!, [d]);
      put(s, `${h}self_attn.q_proj.weight`, tensors.get(`${o}wq`)!, [qd, d]);
      put(s, `${h}self_attn.q_proj.bias`, tensors.get(`${o}bq`)!, [qd]);
      put(s, `${h}self_attn.k_proj.weight`, tensors.get(`${o}wk`)!, [kvd, d]);
      put(s, `${h}self_attn.k_proj.bias`, tensors.get(`${o}bk`)!, [kvd]);
      put(s, `${h}self_attn.v_proj.weight`, tensors.get(`${o}wv`)!, [kvd, d]);
      put(s, `${h}self_attn.v_proj.bias`, tensors.get(`${o}bv`)!, [kvd]);
      put(s, `${h}self_attn.o_proj.weight`, tensors.get(`${o}wo`)!, [d, qd]);
      put(s, `${h}post_attention_layernorm.weight`, tensors.get(`${o}ffn_norm.weight`)!, [d]);
      put(s, `${h}mlp.gate_proj.weight`, tensors.get(`${o}w_gate`)!, [ff, d]);
      put(s, `${h}mlp.up_proj.weight`, tensors.get(`${o}w_up`)!, [ff, d]);
      put(s, `${h}mlp.down_proj.weight`, tensors.get(`${o}w_down`)!, [d, ff]);
    }
    put(shard2, 'model.norm.weight', tensors.get('final_norm.weight')!, [d]);
    put(shard2, 'lm_head.weight', tensors.get('lm_head')!, [V, d]);
    const files = ['model-00001-of-00002.safetensors', 'model-00002-of-00002.safetensors'];
    writeSafetensors(join(dir, files[0]), shard1);
    writeSafetensors(join(dir, files[1]), shard2);
    const weightMap: Record<string, string> = {};
    shard1.forEach((t) => { weightMap[t.name] = files[0]; });
    shard2.forEach((t) => { weightMap[t.name] = files[1]; });
    writeJson(join(dir, 'model.safetensors.index.json'), { metadata: { total_size: 0 }, weight_map: weightMap });
    writeJson(join(dir, 'config.json'), {
      architectures: ['Qwen2ForCausalLM'], model_type: 'qwen2', hidden_size: d, intermediate_size: ff, num_hidden_layers: config.nLayers,
      num_attention_heads: config.nHeads, num_key_value_heads: config.nKvHeads, max_position_embeddings: config.maxSeqLen,
      rms_norm_eps: config.normEps, rope_theta: config.ropeTheta, hidden_act: 'silu', vocab_size: V, tie_word_embeddings: false,
      use_sliding_window: false, sliding_window: 32768, bos_token_id: eot, eos_token_id: eot, torch_dtype: 'float16',
    });
    writeJson(join(dir, 'generation_config.json'), { bos_token_id: eot, eos_token_id: [tok.specials['<|im_end|>'], eot] });
    writeJson(join(dir, 'tokenizer.json'), tok.json);
    writeJson(join(dir, 'tokenizer_config.json'), tok.config);
    return { kind, path: dir, config, tensors };
  }

  // hf-gpt2
  const tok = tinyByteLevelTokenizer('gpt2');
  const eot = tok.specials['<|endoftext|>'];
  const config = { ...baseConfig(kind, opts, tok.vocabSize), bosId: eot, eosId: eot, padId: null };
  const tensors = randomWeights(config, seed, 'F32');
  const { dim: d, hiddenDim: ff, maxSeqLen: P } = config;
  const out: TensorToWrite[] = [];
  const put = (name: string, data: Float32Array, shape: number[]) => out.push({ name, data, shape, dtype: 'F32' });
  put('wte.weight', tensors.get('tok_emb')!, [tok.vocabSize, d]);
  put('wpe.weight', tensors.get('pos_emb')!, [P, d]);
  for (let i = 0; i < config.nLayers; i++) {
    const h = `h.${i}.`, o = `layers.${i}.`;
    const g = (n: string) => tensors.get(`${o}${n}`)!;
    put(`${h}ln_1.weight`, g('attn_norm.weight'), [d]);
    put(`${h}ln_1.bias`, g('attn_norm.bias'), [d]);
    const qkv = new Float32Array(3 * d * d);
    qkv.set(g('wq'), 0);
    qkv.set(g('wk'), d * d);
    qkv.set(g('wv'), 2 * d * d);
    put(`${h}attn.c_attn.weight`, transpose(qkv, 3 * d, d), [d, 3 * d]);
    const qkvB = new Float32Array(3 * d);
    qkvB.set(g('bq'), 0);
    qkvB.set(g('bk'), d);
    qkvB.set(g('bv'), 2 * d);
    put(`${h}attn.c_attn.bias`, qkvB, [3 * d]);
    put(`${h}attn.c_proj.weight`, transpose(g('wo'), d, d), [d, d]);
    put(`${h}attn.c_proj.bias`, g('bo'), [d]);
    const mask = new Float32Array(P * P);
    for (let r = 0; r < P; r++) for (let c = 0; c <= r; c++) mask[r * P + c] = 1;
    put(`${h}attn.bias`, mask, [1, 1, P, P]); // the causal-mask buffer old checkpoints carry
    put(`${h}ln_2.weight`, g('ffn_norm.weight'), [d]);
    put(`${h}ln_2.bias`, g('ffn_norm.bias'), [d]);
    put(`${h}mlp.c_fc.weight`, transpose(g('w_up'), ff, d), [d, ff]);
    put(`${h}mlp.c_fc.bias`, g('b_up'), [ff]);
    put(`${h}mlp.c_proj.weight`, transpose(g('w_down'), d, ff), [ff, d]);
    put(`${h}mlp.c_proj.bias`, g('b_down'), [d]);
  }
  put('ln_f.weight', tensors.get('final_norm.weight')!, [d]);
  put('ln_f.bias', tensors.get('final_norm.bias')!, [d]);
  writeSafetensors(join(dir, 'model.safetensors'), out);
  writeJson(join(dir, 'config.json'), {
    architectures: ['GPT2LMHeadModel'], model_type: 'gpt2', n_embd: d, n_layer: config.nLayers, n_head: config.nHeads,
    n_positions: P, n_ctx: P, n_inner: ff === 4 * d ? null : ff, vocab_size: tok.vocabSize, layer_norm_epsilon: config.normEps,
    activation_function: 'gelu_new', bos_token_id: eot, eos_token_id: eot, torch_dtype: 'float32',
  });
  writeJson(join(dir, 'tokenizer.json'), tok.json);
  writeJson(join(dir, 'tokenizer_config.json'), tok.config);
  return { kind, path: dir, config, tensors };
}

/** Build a tiny model of `kind` under `dir`; returns the path to give loadWeights(). */
export function makeTinyModel(kind: TinyKind, dir: string, opts: TinyOptions = {}): string {
  return buildTinyModel(kind, dir, opts).path;
}
