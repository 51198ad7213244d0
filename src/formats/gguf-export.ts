// A loaded model (canonical f32 weights + its tokenizer) as a GGUF file, the way llama.cpp's
// convert_hf_to_gguf.py + llama-quantize lay one out, so that src/formats/gguf-model.ts (and
// llama.cpp) read it back as the same model:
//
//   architecture  gemma3 (GeGLU with q/k norms), gemma2 (GeGLU), qwen3 (q/k norms), qwen2 (q/k/v
//                 biases), else llama — whose q/k rows are permuted to interleaved RoPE pairs when
//                 the model rotates halves (HF layout), as the converter does; Gemma norms get +1.
//   types         --type q8_0 | q4_0 | q4_k | q4_k_m | f16 | f32 for the 2-D weights; norms and biases
//                 F32. As llama.cpp: the LM head (or tied embedding) Q6_K under the 4-bit types;
//                 q4_k_m also Q6_K for attn_v / ffn_down of the use_more_bits layers; K-quant rows
//                 whose length is not a multiple of 256 fall back (Q4_K → Q5_0, Q6_K → Q8_0).
//   tokenizer     tokenizer.ggml.* from the model's tokenizer.json form: byte-level BPE → 'gpt2' with
//                 its merges and the pre-tokenizer's llama.cpp name; SentencePiece-style BPE →
//                 'llama' with scores that rank each piece by the first merge making it.
//
// Configurations GGUF cannot say (GPT-2 here, partial rotary, per-layer RoPE switches, a Gemma score
// scale llama.cpp would not derive, ...) are refused with the reason.

import { ropeInvFreq, type RopeScaling } from '../../kernels/rope.js';
import { InputError } from '../errors.js';
import type { LoadedModel } from '../models/load.js';
import type { ModelConfig } from '../models/types.js';
import { GGML_TYPE, TYPE_LAYOUT, type GgmlType } from '../quant/types.js';
import { QUANTIZERS } from '../quant/quantize.js';
import type { HfTextTokenizer } from '../tokenizer/hf.js';
import type { TextTokenizer } from '../tokenizer/types.js';
import { kv, type GgufKv, type GgufTensorToWrite } from './gguf-write.js';

export const QUANT_TYPES = ['q8_0', 'q4_0', 'q4_k', 'q4_k_m', 'f16', 'f32'] as const;
export type QuantType = (typeof QUANT_TYPES)[number];

/** llama.cpp's llama_ftype of each choice (general.file_type). */
const FILE_TYPE: Record<QuantType, number> = { f32: 0, f16: 1, q4_0: 2, q8_0: 7, q4_k: 14, q4_k_m: 15 };

type ExportArch = 'llama' | 'qwen2' | 'qwen3' | 'gemma2' | 'gemma3';

const refuse = (m: LoadedModel, why: string): InputError => new InputError(`${m.config.name}: cannot write as GGUF: ${why}`);

function exportArch(m: LoadedModel): ExportArch {
  const c = m.config, t = m.tensors;
  if (c.arch !== 'llama' || c.norm !== 'rms' || c.pos !== 'rope') throw refuse(m, `${c.arch} models are not supported (llama-family only)`);
  if (c.rotaryDim !== undefined && c.rotaryDim !== c.headDim) throw refuse(m, 'partial rotary embeddings');
  if (c.layerRope?.some((r) => !r)) throw refuse(m, 'layers without RoPE');
  if (c.mlpBias) throw refuse(m, 'MLP biases');
  const qkNorm = t.has('layers.0.q_norm.weight');
  if (c.act === 'geglu') return qkNorm ? 'gemma3' : 'gemma2';
  if (c.act !== 'swiglu') throw refuse(m, `activation ${c.act}`);
  if (c.qkvBias) { if (qkNorm) throw refuse(m, 'q/k norms with q/k/v biases'); return 'qwen2'; }
  return qkNorm ? 'qwen3' : 'llama';
}

/** Check what the reader would derive for a Gemma model matches the model (else it would score differently). */
function checkGemma(m: LoadedModel, arch: 'gemma2' | 'gemma3'): void {
  const c = m.config, g3 = arch === 'gemma3';
  const big = c.nLayers === (g3 ? 62 : 46);
  const scale = (big ? c.dim / c.nHeads : c.headDim) ** -0.5;
  if (Math.abs((c.attnScale ?? c.headDim ** -0.5) - scale) > 1e-12) throw refuse(m, `attention scale ${c.attnScale} is not the one llama.cpp derives for ${arch} (${scale})`);
  const w = c.layerWindows ?? [];
  const window = Math.max(0, ...w);
  const want = Array.from({ length: c.nLayers }, (_, i) => ((g3 ? (i + 1) % 6 !== 0 : i % 2 === 0) ? window : 0));
  if (window > 0 && w.some((v, i) => v !== want[i])) throw refuse(m, `sliding-window layers differ from ${arch}'s fixed pattern`);
  if (g3 && c.ropeLocalTheta !== undefined && c.ropeLocalTheta !== 10000) throw refuse(m, 'Gemma 3 local RoPE base other than 10000');
  if (Math.abs((c.embedScale ?? 1) - Math.fround(Math.sqrt(c.dim))) > 0) throw refuse(m, 'embedding scale other than sqrt(hidden)');
}

function hyperParams(m: LoadedModel, arch: ExportArch): GgufKv[] {
  const c = m.config, a = (k: string) => `${arch}.${k}`;
  const out: GgufKv[] = [
    kv.u32(a('context_length'), c.maxSeqLen), kv.u32(a('embedding_length'), c.dim), kv.u32(a('block_count'), c.nLayers),
    kv.u32(a('feed_forward_length'), c.hiddenDim), kv.u32(a('attention.head_count'), c.nHeads), kv.u32(a('attention.head_count_kv'), c.nKvHeads),
    kv.u32(a('attention.key_length'), c.headDim), kv.u32(a('attention.value_length'), c.headDim),
    kv.f32(a('attention.layer_norm_rms_epsilon'), c.normEps), kv.f32(a('rope.freq_base'), c.ropeTheta), kv.u32(a('rope.dimension_count'), c.headDim),
  ];
  const windows = c.layerWindows ?? [];
  const window = Math.max(0, ...windows);
  if (arch === 'gemma2' || arch === 'gemma3') {
    checkGemma(m, arch);
    out.push(kv.u32(a('attention.sliding_window'), window || c.maxSeqLen));
    if (c.attnSoftcap) out.push(kv.f32(a('attn_logit_softcapping'), c.attnSoftcap));
    if (c.finalSoftcap) out.push(kv.f32(a('final_logit_softcapping'), c.finalSoftcap));
  } else if (window > 0) {
    if (arch !== 'llama' || windows.some((w) => w !== window)) throw refuse(m, 'sliding windows on some layers only');
    out.push(kv.u32(a('attention.sliding_window'), window));
  }
  const s = c.ropeScaling;
  if (s?.type === 'linear') out.push(kv.str(a('rope.scaling.type'), 'linear'), kv.f32(a('rope.scaling.factor'), s.factor));
  else if (s?.type === 'longrope' && s.attentionFactor !== 1) throw refuse(m, 'LongRoPE with an attention factor');
  else if (s?.type === 'llama3' && arch !== 'llama') throw refuse(m, `'llama3' RoPE scaling on ${arch}`);
  return out;
}

/** [rows, cols] with rows in HF rotate_half order per head → interleaved pairs (convert_hf_to_gguf permute). */
function toInterleaved(w: Float32Array, heads: number, hd: number, cols: number): Float32Array {
  const out = new Float32Array(w.length), half = hd / 2;
  for (let h = 0; h < heads; h++) {
    for (let i = 0; i < half; i++) {
      out.set(w.subarray((h * hd + i) * cols, (h * hd + i + 1) * cols), (h * hd + 2 * i) * cols);
      out.set(w.subarray((h * hd + half + i) * cols, (h * hd + half + i + 1) * cols), (h * hd + 2 * i + 1) * cols);
    }
  }
  return out;
}

/**
 * Llama 3.1 scaling as llama.cpp stores it: one frequency divisor per rotary pair (rope_freqs.weight,
 * convert_hf_to_gguf.py LlamaModel.generate_extra_tensors): 1 for short wavelengths, `factor` for
 * long ones, 1 / ((1 − s)/factor + s) in between.
 */
export function llama3RopeFactors(headDim: number, theta: number, s: Extract<RopeScaling, { type: 'llama3' }>): Float32Array {
  const freqs = ropeInvFreq(headDim, theta);
  const lowWavelen = s.originalMaxPositionEmbeddings / s.lowFreqFactor, highWavelen = s.originalMaxPositionEmbeddings / s.highFreqFactor;
  return freqs.map((freq) => {
    const wavelen = (2 * Math.PI) / freq;
    if (wavelen < highWavelen) return 1;
    if (wavelen > lowWavelen) return s.factor;
    const smooth = (s.originalMaxPositionEmbeddings / wavelen - s.lowFreqFactor) / (s.highFreqFactor - s.lowFreqFactor);
    return 1 / ((1 - smooth) / s.factor + smooth);
  });
}

/** llama.cpp's use_more_bits: the layers Q4_K_M gives Q6_K attn_v / ffn_down. */
const useMoreBits = (i: number, n: number): boolean => i < Math.trunc(n / 8) || i >= Math.trunc((7 * n) / 8) || (i - Math.trunc(n / 8)) % 3 === 2;

/**
 * The ggml type a 2-D weight of row length `cols` gets under `q` (llama_tensor_get_type, reduced):
 * the LM head Q6_K except under q8_0; q4_k_m also Q6_K for attn_v and ffn_down of the use_more_bits
 * layers; a K-quant whose row length is not a multiple of 256 falls back (Q4_K → Q5_0, Q6_K → Q8_0).
 */
export function weightType(q: QuantType, cols: number, role: 'head' | 'more' | 'plain'): GgmlType {
  const fits = (t: GgmlType) => cols % TYPE_LAYOUT[t].blockElems === 0;
  const pick = (...ts: GgmlType[]) => ts.find(fits) ?? GGML_TYPE.F16;
  if (q === 'f32') return GGML_TYPE.F32;
  if (q === 'f16') return GGML_TYPE.F16;
  if (q === 'q8_0') return pick(GGML_TYPE.Q8_0);
  if (role === 'head' || (q === 'q4_k_m' && role === 'more')) return pick(GGML_TYPE.Q6_K, GGML_TYPE.Q8_0);
  if (q === 'q4_0') return pick(GGML_TYPE.Q4_0);
  return pick(GGML_TYPE.Q4_K, GGML_TYPE.Q5_0);
}

function tensorList(m: LoadedModel, arch: ExportArch, q: QuantType, imatrix?: ReadonlyMap<string, Float32Array>): GgufTensorToWrite[] {
  const c = m.config, t = m.tensors, out: GgufTensorToWrite[] = [];
  const gemma = arch === 'gemma2' || arch === 'gemma3';
  const get = (name: string): Float32Array => {
    const a = t.get(name);
    if (!a) throw refuse(m, `missing tensor '${name}'`);
    return a;
  };
  const vec = (gg: string, name: string, isNorm: boolean) => {
    const a = get(name);
    // GGUF stores Gemma's RMSNorm weight as (1 + w): add the model's offset so the file holds the scale itself.
    const off = isNorm ? (c.normWeightOffset ?? 0) : 0;
    out.push({ name: gg, ne: [a.length], type: GGML_TYPE.F32, data: () => QUANTIZERS[GGML_TYPE.F32]!(off ? a.map((v) => Math.fround(v + off)) : a) });
  };
  const mat = (gg: string, name: string, rows: number, cols: number, opts: { head?: boolean; more?: boolean; permuteHeads?: number } = {}) => {
    const type = weightType(q, cols, opts.head ? 'head' : opts.more ? 'more' : 'plain');
    out.push({
      name: gg, ne: [cols, rows], type,
      data: () => {
        let a = get(name);
        if (a.length !== rows * cols) throw refuse(m, `tensor '${name}' has ${a.length} values, expected ${rows}×${cols}`);
        if (opts.permuteHeads) a = toInterleaved(a, opts.permuteHeads, c.headDim, cols);
        // the importance matrix of this weight's input columns, where the type's quantizer takes one
        const qw = imatrix?.get(name);
        if (qw && qw.length !== cols) throw refuse(m, `importance matrix of '${name}' has ${qw.length} columns, the weight ${cols}`);
        return QUANTIZERS[type]!(a, qw);
      },
    });
  };
  const permute = arch === 'llama' && c.ropeLayout === 'half';
  const rs = c.ropeScaling;
  if (rs?.type === 'llama3') {
    const factors = llama3RopeFactors(c.headDim, c.ropeTheta, rs);
    out.push({ name: 'rope_freqs.weight', ne: [factors.length], type: GGML_TYPE.F32, data: () => QUANTIZERS[GGML_TYPE.F32]!(factors) });
  } else if (rs?.type === 'longrope') {
    out.push({ name: 'rope_freqs.weight', ne: [rs.factors.length], type: GGML_TYPE.F32, data: () => QUANTIZERS[GGML_TYPE.F32]!(Float32Array.from(rs.factors)) });
  }
  const qd = c.nHeads * c.headDim, kvd = c.nKvHeads * c.headDim;
  mat('token_embd.weight', 'tok_emb', c.vocabSize, c.dim, { head: c.tiedEmbeddings });
  for (let i = 0; i < c.nLayers; i++) {
    const b = `blk.${i}.`, o = `layers.${i}.`;
    vec(`${b}attn_norm.weight`, `${o}attn_norm.weight`, true);
    mat(`${b}attn_q.weight`, `${o}wq`, qd, c.dim, permute ? { permuteHeads: c.nHeads } : {});
    mat(`${b}attn_k.weight`, `${o}wk`, kvd, c.dim, permute ? { permuteHeads: c.nKvHeads } : {});
    const more = useMoreBits(i, c.nLayers);
    mat(`${b}attn_v.weight`, `${o}wv`, kvd, c.dim, { more });
    if (arch === 'qwen2') for (const x of ['q', 'k', 'v']) vec(`${b}attn_${x}.bias`, `${o}b${x}`, false);
    mat(`${b}attn_output.weight`, `${o}wo`, c.dim, qd);
    if (arch === 'qwen3' || arch === 'gemma3') {
      vec(`${b}attn_q_norm.weight`, `${o}q_norm.weight`, true);
      vec(`${b}attn_k_norm.weight`, `${o}k_norm.weight`, true);
    }
    if (gemma) vec(`${b}post_attention_norm.weight`, `${o}post_attn_norm.weight`, true);
    vec(`${b}ffn_norm.weight`, `${o}ffn_norm.weight`, true);
    mat(`${b}ffn_gate.weight`, `${o}w_gate`, c.hiddenDim, c.dim);
    mat(`${b}ffn_up.weight`, `${o}w_up`, c.hiddenDim, c.dim);
    mat(`${b}ffn_down.weight`, `${o}w_down`, c.dim, c.hiddenDim, { more });
    if (gemma) vec(`${b}post_ffw_norm.weight`, `${o}post_ffn_norm.weight`, true);
  }
  vec('output_norm.weight', 'final_norm.weight', true);
  if (!c.tiedEmbeddings) {
    if (gemma) throw refuse(m, 'Gemma with an untied LM head');
    mat('output.weight', 'lm_head', c.vocabSize, c.dim, { head: true });
  }
  return out;
}

/** The tokenizer.ggml.* entries of a tokenizer in tokenizer.json form (src/tokenizer/hf.ts). */
export function tokenizerMetadata(tok: TextTokenizer, what: string): GgufKv[] {
  const hf = tok as HfTextTokenizer;
  if (!hf.json?.model) throw new InputError(`${what}: its tokenizer is not in tokenizer.json form; cannot write it to GGUF`);
  const j = hf.json, model = j.model;
  if (model.type !== 'BPE') throw new InputError(`${what}: tokenizer model ${model.type} cannot be written to GGUF (BPE only)`);
  const vocab = model.vocab as Record<string, number>;
  const added = (j.added_tokens ?? []) as { id: number; content: string; special?: boolean }[];
  const n = Math.max(hf.vocabSize, ...added.map((a) => a.id + 1));
  const tokens = Array.from({ length: n }, (_, i) => `[PAD${i}]`), types = new Array<number>(n).fill(5);
  for (const [s, id] of Object.entries(vocab)) { tokens[id] = s; types[id] = 1; }
  for (const a of added) { tokens[a.id] = a.content; types[a.id] = a.special === false ? 4 : 3; }
  const merges = ((model.merges ?? []) as (string | [string, string])[]).map((mm) => (typeof mm === 'string' ? mm : `${mm[0]} ${mm[1]}`));
  const out: GgufKv[] = [kv.strs('tokenizer.ggml.tokens', tokens)];
  const plain = tok.encode('a', { addSpecial: false }), withSpecial = tok.encode('a');
  const addBos = withSpecial.length > plain.length && withSpecial[0] === tok.bosId;
  const byteLevel = JSON.stringify(j.decoder ?? null).includes('"ByteLevel"');
  if (byteLevel) {
    const pre = preName(j.pre_tokenizer, j.normalizer);
    if (!pre) throw new InputError(`${what}: its byte-level pre-tokenizer has no llama.cpp name concord knows (llama-bpe, qwen2, gpt-2)`);
    out.push(kv.str('tokenizer.ggml.model', 'gpt2'), kv.str('tokenizer.ggml.pre', pre), kv.strs('tokenizer.ggml.merges', merges));
  } else {
    // SentencePiece-style: scores rank each piece by the first merge that makes it (the reader rebuilds the merges from them).
    const first = new Map<string, number>();
    merges.forEach((mm, rank) => { const sp = mm.indexOf(' ', 1); const p = mm.slice(0, sp) + mm.slice(sp + 1); if (!first.has(p)) first.set(p, rank); });
    tokens.forEach((s, i) => { if (types[i] === 1 && /^<0x[0-9A-F]{2}>$/.test(s)) types[i] = 6; });
    const unk = typeof model.unk_token === 'string' ? vocab[model.unk_token] : undefined;
    if (unk !== undefined) { types[unk] = 2; out.push(kv.u32('tokenizer.ggml.unknown_token_id', unk)); }
    out.push(kv.str('tokenizer.ggml.model', 'llama'), kv.f32s('tokenizer.ggml.scores', tokens.map((s) => -(first.get(s) ?? 0))),
      kv.bool('tokenizer.ggml.add_space_prefix', tok.dummyPrefix));
  }
  out.push(kv.i32s('tokenizer.ggml.token_type', types), kv.bool('tokenizer.ggml.add_bos_token', addBos));
  if (tok.bosId !== null) out.push(kv.u32('tokenizer.ggml.bos_token_id', tok.bosId));
  if (tok.eosId !== null) out.push(kv.u32('tokenizer.ggml.eos_token_id', tok.eosId));
  if (tok.padId !== null) out.push(kv.u32('tokenizer.ggml.padding_token_id', tok.padId));
  if (hf.chatTemplate) out.push(kv.str('tokenizer.chat_template', hf.chatTemplate.text));
  return out;
}

/** llama.cpp's tokenizer.ggml.pre name for a byte-level pre-tokenizer (+ normalizer), by its regex. */
function preName(pre: unknown, norm: unknown): string | null {
  const s = JSON.stringify(pre ?? null);
  if (s.includes('\\\\p{N}{1,3}')) return 'llama-bpe';
  if (s.includes('\\\\p{N}|') && JSON.stringify(norm ?? null).includes('NFC')) return 'qwen2';
  if (/"ByteLevel"/.test(s) && /"use_regex":true/.test(s) && !s.includes('Split')) return 'gpt-2';
  return null;
}

/**
 * Everything writeGguf needs for `m` quantized as `q`; `imatrix` (canonical weight name → E[x²] per
 * input column, src/quant/imatrix.ts) takes ggml's importance-weighted quantizers where it has an entry.
 */
export function ggufExport(m: LoadedModel, q: QuantType, o: { imatrix?: ReadonlyMap<string, Float32Array> } = {}): { kvs: GgufKv[]; tensors: GgufTensorToWrite[] } {
  const arch = exportArch(m);
  const c: ModelConfig = m.config;
  const kvs: GgufKv[] = [
    kv.str('general.architecture', arch), kv.str('general.name', c.name), kv.u32('general.file_type', FILE_TYPE[q]), kv.u32('general.quantization_version', 2),
    ...hyperParams(m, arch), ...tokenizerMetadata(m.tokenizer, c.name),
  ];
  return { kvs, tensors: tensorList(m, arch, q, o.imatrix) };
}
