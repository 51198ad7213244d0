// GGUF language models → concord's canonical config and tensors (src/models/types.ts).
//
// Architectures (general.architecture) and their llama.cpp names (llama-arch.cpp, convert_hf_to_gguf.py):
//   llama   Llama 1/2/3.x, Mistral, SmolLM. convert_hf_to_gguf permutes q/k rows back to the
//           interleaved RoPE pairs llama.cpp's rope (type NORM) rotates, so ropeLayout 'interleaved'
//           and the rows are used as stored. Llama 3.1 frequency scaling is a tensor, rope_freqs.weight
//           (each pair's frequency divisor): a 'longrope' scaling with attention factor 1.
//   qwen2   q/k/v biases; NEOX rope (ropeLayout 'half').   qwen3: per-head q/k norms.
//   gemma2, gemma3  GeGLU, norms around attention and MLP, embeddings × sqrt(d). The converter
//           stores Gemma's RMSNorm weights with the +1 already added, so normWeightOffset is 0 here.
//           llama.cpp scales scores by head_dim^-0.5, or (d / heads)^-0.5 for the 27B models (which
//           it tells by layer count: 46 for Gemma 2, 62 for Gemma 3) — GGUF has no
//           query_pre_attn_scalar. Sliding windows: Gemma 2 even layers, Gemma 3 five of every six;
//           Gemma 3's local layers use RoPE base 10000 unscaled.
//   phi3    fused attn_qkv (q | k | v rows) and ffn_up (gate | up rows), split here; partial rotary
//           from rope.dimension_count; LongRoPE short factors from rope_factors_short.weight.
//
// Tensor names: token_embd, output_norm, output (absent: tied), blk.{i}.{attn_norm, attn_q, attn_k,
// attn_v, attn_output, attn_q_norm, attn_k_norm, post_attention_norm, ffn_norm, ffn_gate, ffn_up,
// ffn_down, post_ffw_norm}.weight (+ attn_{q,k,v}.bias). GGUF lists dims innermost first, so a
// canonical [out, in] weight has ne = [in, out] — the same bytes, no transpose.

import type { RopeScaling } from '../../kernels/rope.js';
import { ModelFileError } from '../errors.js';
import { LazyTensorMap } from '../models/hf.js';
import type { ChunkScratch, ChunkTarget, LoadedWeights, ModelConfig, TensorMap, TensorRef } from '../models/types.js';
import { dequantize } from '../quant/dequant.js';
import { ggmlTypeName, TYPE_LAYOUT, type GgmlType } from '../quant/types.js';
import { f32IntoF16Bits } from '../util/f16.js';
import { DEFAULT_CHUNK_ELEMS } from './safetensors.js';
import { metaArray, metaNumber, metaString, readableTensor, readTensorBytes, type GgufFile, type GgufTensorInfo } from './gguf.js';

export const GGUF_ARCHITECTURES = ['llama', 'qwen2', 'qwen3', 'gemma2', 'gemma3', 'phi3'] as const;
export type GgufArch = (typeof GGUF_ARCHITECTURES)[number];

const fail = (f: GgufFile, why: string, tensor?: string): ModelFileError => new ModelFileError(`${f.path}: ${why}`, f.path, tensor);

/**
 * A canonical tensor in a GGUF file: rows [rowStart, rowStart + rows) of a file tensor, read by
 * offset and dequantized on demand. `ggmlType`, `rawLength` and `readRaw()` give the stored blocks
 * (quantized kernels; src/models/weight-upload.ts streams them piece by piece). `chunks()` reads
 * whole blocks at a time into reused buffers and dequantizes each piece, so streaming a tensor never
 * holds it whole (issue 24: host memory bounded).
 */
export class GgufTensorRef implements TensorRef {
  readonly length: number;
  constructor(private readonly f: GgufFile, readonly info: GgufTensorInfo, private readonly rowStart = 0, private readonly rows = info.elems / info.ne[0]) {
    this.length = rows * info.ne[0];
  }
  get ggmlType(): number { return this.info.type; }
  get sourceBytes(): number { return Math.round(this.info.bytes * (this.length / this.info.elems)); }
  get file(): string { return this.f.path; }
  get sourceOrder(): number { return this.info.offset + this.rowStart * this.rowBytes; }
  get source(): string { return `${this.f.path}: ${this.info.name}`; }
  private get rowBytes(): number { return this.info.bytes / (this.info.elems / this.info.ne[0]); }
  /** Bytes of the stored blocks of the rows this ref covers. */
  get rawLength(): number { return this.rows * this.rowBytes; }
  /** out.length bytes of the stored blocks of these rows, from byte `start` of them, into out. */
  readRaw(start: number, out: Uint8Array): Uint8Array {
    if (start + out.length > this.rawLength) throw new ModelFileError(`${this.source}: bytes ${start}..${start + out.length} of rows ${this.rowStart}.. asked for, past ${this.rawLength}`, this.f.path, this.info.name);
    return readTensorBytes(this.f, this.info.name, this.rowStart * this.rowBytes + start, out);
  }
  /** The stored blocks of the rows this ref covers. */
  rawBytes(): Uint8Array {
    return this.readRaw(0, new Uint8Array(this.rawLength));
  }
  read(): Float32Array {
    return dequantize(this.info.type as GgmlType, this.rawBytes(), this.length);
  }
  *chunks(to: ChunkTarget, maxElems = DEFAULT_CHUNK_ELEMS, scratch: ChunkScratch = {}): Generator<{ data: Float32Array | Uint16Array; offset: number }> {
    const { type } = readableTensor(this.f, this.info.name);
    const { blockElems, blockBytes } = TYPE_LAYOUT[type];
    const unit = blockElems % 2 ? 2 * blockElems : blockElems; // whole blocks, an even count (f16 chunks stay 4-byte multiples)
    const per = Math.min(Math.max(unit, Math.floor(maxElems / unit) * unit), Math.ceil(this.length / unit) * unit);
    const rawPer = (per / blockElems) * blockBytes;
    const buf = (k: 'raw' | 'conv' | 'f32', bytes: number) => (scratch[k] && scratch[k].byteLength >= bytes ? scratch[k] : (scratch[k] = new ArrayBuffer(bytes)));
    const raw = new Uint8Array(buf('raw', rawPer), 0, rawPer);
    const f32 = new Float32Array(buf('f32', per * 4), 0, per);
    const half = to === 'f16' ? new Uint16Array(buf('conv', per * 2), 0, per) : null;
    for (let off = 0; off < this.length; off += per) {
      const n = Math.min(per, this.length - off);
      const bytes = this.readRaw((off / blockElems) * blockBytes, raw.subarray(0, (n / blockElems) * blockBytes));
      const x = dequantize(type, bytes, n, f32.subarray(0, n));
      if (!half) { yield { data: x, offset: off }; continue; }
      const h = half.subarray(0, n);
      f32IntoF16Bits(x, h);
      yield { data: h, offset: off };
    }
  }
}

type NumGetter = (key: string, fallback?: number) => number;

function numGetter(f: GgufFile, arch: string): NumGetter {
  return (key, fallback) => {
    const full = `${arch}.${key}`;
    const raw = f.metadata.get(full);
    if (Array.isArray(raw)) {
      // per-layer lists (e.g. head_count_kv of some models): concord needs one value
      const vals = raw.map(Number);
      if (vals.length && vals.every((v) => v === vals[0])) return vals[0];
      throw fail(f, `metadata '${full}' varies by layer (${vals.slice(0, 8).join(', ')}…); per-layer sizes are not supported`);
    }
    const v = metaNumber(f, full);
    if (v !== undefined && Number.isFinite(v)) return v;
    if (fallback !== undefined) return fallback;
    throw fail(f, `${arch} needs metadata '${full}'`);
  };
}

/** Special token ids from tokenizer.ggml.* (null when absent). */
function specialIds(f: GgufFile): { bosId: number | null; eosId: number | null; padId: number | null } {
  const id = (k: string): number | null => metaNumber(f, `tokenizer.ggml.${k}_token_id`) ?? null;
  return { bosId: id('bos'), eosId: id('eos'), padId: id('padding') };
}

/** Read the hyper-parameters of a GGUF model into a ModelConfig. */
export function ggufConfig(f: GgufFile): { arch: GgufArch; config: ModelConfig } {
  const archName = metaString(f, 'general.architecture');
  if (!archName) throw fail(f, "no 'general.architecture' metadata (not a model file?)");
  if (!(GGUF_ARCHITECTURES as readonly string[]).includes(archName)) {
    throw fail(f, `architecture '${archName}' is not supported; supported: ${GGUF_ARCHITECTURES.join(', ')}`);
  }
  const arch = archName as GgufArch;
  const num = numGetter(f, arch);
  const emb = f.tensors.get('token_embd.weight');
  if (!emb || emb.ne.length !== 2) throw fail(f, "missing tensor 'token_embd.weight' (2-D)", 'token_embd.weight');
  const d = num('embedding_length'), nLayers = num('block_count'), nHeads = num('attention.head_count');
  const nKvHeads = num('attention.head_count_kv', nHeads);
  const headDim = num('attention.key_length', d / nHeads);
  if (num('attention.value_length', headDim) !== headDim) throw fail(f, `${arch}: attention.value_length differs from key_length (not supported)`);
  if (!Number.isInteger(headDim) || headDim % 2 || nHeads % nKvHeads) throw fail(f, `${arch}: ${nHeads} heads / ${nKvHeads} kv heads of ${headDim} is not a supported attention shape`);
  const rotary = num('rope.dimension_count', headDim);
  const gemma = arch === 'gemma2' || arch === 'gemma3';
  const base: ModelConfig = {
    arch: 'llama', name: `${metaString(f, 'general.name') ?? arch} (GGUF ${arch}: ${f.path})`, vocabSize: emb.ne[1], dim: d, hiddenDim: num('feed_forward_length'), nLayers, nHeads, nKvHeads, headDim,
    maxSeqLen: num('context_length', 2048), normEps: num('attention.layer_norm_rms_epsilon', 1e-6), norm: 'rms', act: gemma ? 'geglu' : 'swiglu', pos: 'rope',
    ropeTheta: num('rope.freq_base', 10000), ropeLayout: arch === 'llama' ? 'interleaved' : 'half', qkvBias: arch === 'qwen2', mlpBias: false,
    tiedEmbeddings: !f.tensors.has('output.weight'), ...specialIds(f),
    ...(rotary !== headDim ? { rotaryDim: rotary } : {}),
  };
  if (rotary > headDim || rotary % 2) throw fail(f, `${arch}: rope.dimension_count ${rotary} does not fit head size ${headDim}`);
  const scaling = ropeScaling(f, arch, num, base);
  if (scaling) base.ropeScaling = scaling;
  if (gemma) Object.assign(base, gemmaExtras(f, arch, num, base));
  else {
    const w = num('attention.sliding_window', 0);
    if (w > 0 && (arch === 'llama' || arch === 'phi3')) base.layerWindows = new Array(nLayers).fill(w);
  }
  return { arch, config: base };
}

function ropeScaling(f: GgufFile, arch: GgufArch, num: NumGetter, c: ModelConfig): RopeScaling | null {
  const type = metaString(f, `${arch}.rope.scaling.type`);
  const rot = c.rotaryDim ?? c.headDim;
  const freqs = f.tensors.has('rope_freqs.weight') ? 'rope_freqs.weight' : f.tensors.has('rope_factors_short.weight') ? 'rope_factors_short.weight' : null;
  if (freqs) {
    const t = f.tensors.get(freqs)!;
    if (t.elems !== rot / 2) throw fail(f, `tensor '${freqs}' has ${t.elems} entries, rotary dim ${rot} needs ${rot / 2}`, freqs);
    const factors = Array.from(new GgufTensorRef(f, t).read());
    let attentionFactor = 1;
    if (freqs === 'rope_factors_short.weight') {
      // Phi-3 LongRoPE: HF's attention factor sqrt(1 + ln(ctx / orig) / ln(orig)) unless the file gives one.
      const orig = num('rope.scaling.original_context_length', c.maxSeqLen);
      const factor = c.maxSeqLen / orig;
      attentionFactor = num('rope.scaling.attn_factor', factor <= 1 ? 1 : Math.sqrt(1 + Math.log(factor) / Math.log(orig)));
      c.maxSeqLen = Math.min(c.maxSeqLen, orig);
    }
    return { type: 'longrope', factors, attentionFactor };
  }
  if (type === undefined || type === 'none') return null;
  if (type === 'linear') {
    const factor = num('rope.scaling.factor');
    return factor === 1 ? null : { type: 'linear', factor };
  }
  throw fail(f, `${arch} with rope.scaling.type '${type}' is not supported (none, linear, rope_freqs factors)`);
}

function gemmaExtras(f: GgufFile, arch: 'gemma2' | 'gemma3', num: NumGetter, c: ModelConfig): Partial<ModelConfig> {
  const g3 = arch === 'gemma3';
  const window = num('attention.sliding_window', 4096);
  const layerWindows = Array.from({ length: c.nLayers }, (_, i) => (g3 ? (i + 1) % 6 !== 0 : i % 2 === 0) ? window : 0);
  const big = c.nLayers === (g3 ? 62 : 46);
  const capOf = (k: string): number | undefined => { const v = num(k, 0); return v > 0 ? v : undefined; };
  const attnSoftcap = g3 ? undefined : capOf('attn_logit_softcapping');
  const finalSoftcap = capOf('final_logit_softcapping');
  return {
    layerWindows, embedScale: Math.fround(Math.sqrt(c.dim)),
    attnScale: (big ? c.dim / c.nHeads : c.headDim) ** -0.5,
    ...(g3 ? { ropeLocalTheta: 10000 } : {}),
    ...(attnSoftcap ? { attnSoftcap } : {}),
    ...(finalSoftcap ? { finalSoftcap } : {}),
  };
}

/** The file tensor `name`, checked to be [rows, cols] (canonical order) and of a readable type. */
function getChecked(f: GgufFile, name: string, shape: number[]): GgufTensorRef {
  const t = f.tensors.get(name);
  if (!t) throw fail(f, `missing tensor '${name}'`, name);
  const want = [...shape].reverse();
  if (t.ne.length !== want.length || t.ne.some((v, i) => v !== want[i])) {
    throw fail(f, `tensor '${name}' has ne [${t.ne.join(', ')}], expected [${want.join(', ')}] from the metadata`, name);
  }
  if (!(t.type in TYPE_LAYOUT)) throw fail(f, `tensor '${name}' has type ${ggmlTypeName(t.type)}, which concord cannot read`, name);
  return new GgufTensorRef(f, t);
}

/** Canonical name → ref, for every tensor the config needs. */
export function ggufRefs(f: GgufFile, arch: GgufArch, c: ModelConfig): Map<string, TensorRef> {
  const t = new Map<string, TensorRef>();
  const { dim: d, hiddenDim: ff, vocabSize: V } = c;
  const qd = c.nHeads * c.headDim, kvd = c.nKvHeads * c.headDim;
  const gemma = arch === 'gemma2' || arch === 'gemma3';
  t.set('tok_emb', getChecked(f, 'token_embd.weight', [V, d]));
  for (let i = 0; i < c.nLayers; i++) {
    const b = `blk.${i}.`, o = `layers.${i}.`;
    t.set(`${o}attn_norm.weight`, getChecked(f, `${b}attn_norm.weight`, [d]));
    if (arch === 'phi3') {
      const qkv = getChecked(f, `${b}attn_qkv.weight`, [qd + 2 * kvd, d]);
      t.set(`${o}wq`, new GgufTensorRef(f, qkv.info, 0, qd));
      t.set(`${o}wk`, new GgufTensorRef(f, qkv.info, qd, kvd));
      t.set(`${o}wv`, new GgufTensorRef(f, qkv.info, qd + kvd, kvd));
    } else {
      t.set(`${o}wq`, getChecked(f, `${b}attn_q.weight`, [qd, d]));
      t.set(`${o}wk`, getChecked(f, `${b}attn_k.weight`, [kvd, d]));
      t.set(`${o}wv`, getChecked(f, `${b}attn_v.weight`, [kvd, d]));
    }
    if (c.qkvBias) {
      t.set(`${o}bq`, getChecked(f, `${b}attn_q.bias`, [qd]));
      t.set(`${o}bk`, getChecked(f, `${b}attn_k.bias`, [kvd]));
      t.set(`${o}bv`, getChecked(f, `${b}attn_v.bias`, [kvd]));
    }
    t.set(`${o}wo`, getChecked(f, `${b}attn_output.weight`, [d, qd]));
    if (arch === 'qwen3' || arch === 'gemma3') {
      t.set(`${o}q_norm.weight`, getChecked(f, `${b}attn_q_norm.weight`, [c.headDim]));
      t.set(`${o}k_norm.weight`, getChecked(f, `${b}attn_k_norm.weight`, [c.headDim]));
    }
    t.set(`${o}ffn_norm.weight`, getChecked(f, `${b}ffn_norm.weight`, [d]));
    if (gemma) {
      t.set(`${o}post_attn_norm.weight`, getChecked(f, `${b}post_attention_norm.weight`, [d]));
      t.set(`${o}post_ffn_norm.weight`, getChecked(f, `${b}post_ffw_norm.weight`, [d]));
    }
    if (arch === 'phi3') {
      const gu = getChecked(f, `${b}ffn_up.weight`, [2 * ff, d]);
      t.set(`${o}w_gate`, new GgufTensorRef(f, gu.info, 0, ff));
      t.set(`${o}w_up`, new GgufTensorRef(f, gu.info, ff, ff));
    } else {
      t.set(`${o}w_gate`, getChecked(f, `${b}ffn_gate.weight`, [ff, d]));
      t.set(`${o}w_up`, getChecked(f, `${b}ffn_up.weight`, [ff, d]));
    }
    t.set(`${o}w_down`, getChecked(f, `${b}ffn_down.weight`, [d, ff]));
  }
  t.set('final_norm.weight', getChecked(f, 'output_norm.weight', [d]));
  t.set('lm_head', c.tiedEmbeddings ? t.get('tok_emb')! : getChecked(f, 'output.weight', [V, d]));
  return t;
}

/**
 * Load a parsed GGUF model: its config, and every tensor dequantized to f32 now (the CPU path; the
 * refs too, for onnxruntime's MatMulNBits), or
 * with `lazy` the refs (GgufTensorRef: stored blocks, dequantized when read) and tensors read on first use.
 */
export function loadGgufWeights(f: GgufFile, opts: { lazy?: boolean } = {}): LoadedWeights {
  const { arch, config } = ggufConfig(f);
  const refs = ggufRefs(f, arch, config);
  if (opts.lazy) return { config, tensors: new LazyTensorMap(refs), refs };
  const tensors: TensorMap = new Map();
  const read = new Map<TensorRef, Float32Array>();
  for (const [name, r] of refs) {
    let a = read.get(r);
    if (!a) read.set(r, (a = r.read()));
    tensors.set(name, a);
  }
  // refs kept: the onnxruntime graph takes Q4_0/Q8_0 linears as MatMulNBits over the stored blocks
  return { config, tensors, refs };
}

/** tokenizer.ggml.* entries a GGUF model needs for its tokenizer (checked in src/formats/gguf-tokenizer.ts). */
export const hasGgufTokenizer = (f: GgufFile): boolean => metaString(f, 'tokenizer.ggml.model') !== undefined && metaArray(f, 'tokenizer.ggml.tokens') !== undefined;
