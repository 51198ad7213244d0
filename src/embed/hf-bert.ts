// BERT-family Hugging Face folders: config.json (BertModel / BertForMaskedLM / ... with
// model_type 'bert'), model.safetensors (f32, f16 or bf16), tokenizer.json. Tensor names follow
// transformers' BertModel, optionally under a 'bert.' prefix (task heads are ignored).
//
// The safetensors reader is a small local one (src/models/safetensors.ts did not exist when this
// was written): 8-byte little-endian header length, JSON header {name: {dtype, shape,
// data_offsets: [begin, end]}} relative to the end of the header, then the data.

import { bf16ToF32, f16ToF32 } from '../util/f16.js';
import { checkBertWeights, type BertConfig, type BertLayer, type BertWeights } from './types.js';

interface StEntry { dtype: string; shape: number[]; data_offsets: [number, number] }

export class SafetensorsFile {
  readonly entries = new Map<string, StEntry>();
  readonly metadata: Record<string, string>;
  private dataStart: number;

  constructor(readonly bytes: Uint8Array, readonly source = 'model.safetensors') {
    if (bytes.length < 8) throw new Error(`${source}: too short for a safetensors file`);
    const n = Number(new DataView(bytes.buffer, bytes.byteOffset, 8).getBigUint64(0, true));
    if (n > bytes.length - 8) throw new Error(`${source}: header length ${n} exceeds the file`);
    const header = JSON.parse(new TextDecoder().decode(bytes.subarray(8, 8 + n))) as Record<string, StEntry | Record<string, string>>;
    this.dataStart = 8 + n;
    this.metadata = (header.__metadata__ as Record<string, string>) ?? {};
    for (const [name, e] of Object.entries(header)) if (name !== '__metadata__') this.entries.set(name, e as StEntry);
  }

  has(name: string): boolean {
    return this.entries.has(name);
  }

  shape(name: string): number[] {
    return this.get(name).shape;
  }

  private get(name: string): StEntry {
    const e = this.entries.get(name);
    if (!e) throw new Error(`${this.source}: no tensor '${name}'`);
    return e;
  }

  /** The tensor as f32 (from F32, F16 or BF16 storage). */
  f32(name: string): Float32Array {
    const e = this.get(name);
    const [b0, b1] = e.data_offsets;
    const count = e.shape.reduce((a, x) => a * x, 1);
    // Copy out so the result is aligned regardless of where the tensor sits in the file (not
    // `.slice()`, which is a view on a Node Buffer).
    const raw = new Uint8Array(this.bytes.subarray(this.dataStart + b0, this.dataStart + b1));
    const width: Record<string, number> = { F32: 4, F16: 2, BF16: 2 };
    const w = width[e.dtype];
    if (!w) throw new Error(`${this.source}: tensor '${name}' is ${e.dtype}; only F32, F16 and BF16 are supported`);
    if (raw.length !== count * w) throw new Error(`${this.source}: tensor '${name}' holds ${raw.length} bytes, shape [${e.shape}] ${e.dtype} needs ${count * w}`);
    if (e.dtype === 'F32') return new Float32Array(raw.buffer, 0, count);
    const h = new Uint16Array(raw.buffer, 0, count);
    return e.dtype === 'F16' ? f16ToF32(h) : bf16ToF32(h);
  }
}

/** Write a safetensors file (tests build small folders with it). */
export function writeSafetensors(tensors: Record<string, { dtype: 'F32' | 'F16' | 'BF16'; shape: number[]; data: Uint8Array }>): Uint8Array {
  const header: Record<string, StEntry> = {};
  let off = 0;
  for (const [name, t] of Object.entries(tensors)) {
    header[name] = { dtype: t.dtype, shape: t.shape, data_offsets: [off, off + t.data.length] };
    off += t.data.length;
  }
  let json = new TextEncoder().encode(JSON.stringify(header));
  const pad = (8 - (json.length % 8)) % 8;
  if (pad) json = new TextEncoder().encode(JSON.stringify(header) + ' '.repeat(pad));
  const out = new Uint8Array(8 + json.length + off);
  new DataView(out.buffer).setBigUint64(0, BigInt(json.length), true);
  out.set(json, 8);
  let p = 8 + json.length;
  for (const t of Object.values(tensors)) { out.set(t.data, p); p += t.data.length; }
  return out;
}

export interface HfBertConfigJson {
  architectures?: string[];
  model_type?: string;
  vocab_size: number;
  hidden_size: number;
  num_hidden_layers: number;
  num_attention_heads: number;
  intermediate_size: number;
  max_position_embeddings: number;
  type_vocab_size?: number;
  layer_norm_eps?: number;
  hidden_act?: string;
  position_embedding_type?: string;
}

export function bertFromSafetensors(cfg: HfBertConfigJson, st: SafetensorsFile, name = 'bert'): BertWeights {
  const arch = cfg.architectures?.[0] ?? '';
  if (cfg.model_type !== 'bert' && !/^Bert/.test(arch)) throw new Error(`${name}: config.json describes '${cfg.model_type ?? arch}', not a BERT model`);
  if ((cfg.hidden_act ?? 'gelu') !== 'gelu') throw new Error(`${name}: hidden_act '${cfg.hidden_act}' not supported (BERT's exact 'gelu' only)`);
  if ((cfg.position_embedding_type ?? 'absolute') !== 'absolute') throw new Error(`${name}: position_embedding_type '${cfg.position_embedding_type}' not supported`);
  const prefix = st.has('embeddings.word_embeddings.weight') ? '' : st.has('bert.embeddings.word_embeddings.weight') ? 'bert.' : null;
  if (prefix === null) throw new Error(`${name}: no embeddings.word_embeddings.weight (nor under 'bert.') in the safetensors file`);
  const t = (n: string): Float32Array => st.f32(prefix + n);
  // Old checkpoints name LayerNorm parameters gamma / beta.
  const ln = (base: string): [Float32Array, Float32Array] =>
    st.has(`${prefix}${base}.weight`) ? [t(`${base}.weight`), t(`${base}.bias`)] : [t(`${base}.gamma`), t(`${base}.beta`)];
  const d = cfg.hidden_size;
  const [embLnW, embLnB] = ln('embeddings.LayerNorm');
  const layers: BertLayer[] = [];
  for (let i = 0; i < cfg.num_hidden_layers; i++) {
    const p = `encoder.layer.${i}.`;
    const [ln1w, ln1b] = ln(`${p}attention.output.LayerNorm`);
    const [ln2w, ln2b] = ln(`${p}output.LayerNorm`);
    layers.push({
      wq: t(`${p}attention.self.query.weight`), bq: t(`${p}attention.self.query.bias`),
      wk: t(`${p}attention.self.key.weight`), bk: t(`${p}attention.self.key.bias`),
      wv: t(`${p}attention.self.value.weight`), bv: t(`${p}attention.self.value.bias`),
      wo: t(`${p}attention.output.dense.weight`), bo: t(`${p}attention.output.dense.bias`),
      ln1w, ln1b,
      w1: t(`${p}intermediate.dense.weight`), b1: t(`${p}intermediate.dense.bias`),
      w2: t(`${p}output.dense.weight`), b2: t(`${p}output.dense.bias`),
      ln2w, ln2b,
    });
  }
  const typeVocabSize = cfg.type_vocab_size ?? 2;
  const dtypes = new Set([...st.entries.values()].map((e) => e.dtype));
  const config: BertConfig = {
    name: `${name} (safetensors ${[...dtypes].join('/')})`,
    vocabSize: cfg.vocab_size, dim: d, nLayers: cfg.num_hidden_layers, nHeads: cfg.num_attention_heads,
    headDim: d / cfg.num_attention_heads, ffDim: cfg.intermediate_size, maxPositions: cfg.max_position_embeddings,
    typeVocabSize, normEps: cfg.layer_norm_eps ?? 1e-12, attnScale: 1 / Math.sqrt(d / cfg.num_attention_heads), act: 'gelu_erf',
  };
  const typeEmb = st.has(`${prefix}embeddings.token_type_embeddings.weight`) ? t('embeddings.token_type_embeddings.weight') : new Float32Array(typeVocabSize * d);
  const w: BertWeights = {
    config, wordEmb: t('embeddings.word_embeddings.weight'), posEmb: t('embeddings.position_embeddings.weight'), typeEmb,
    embLnW, embLnB, layers,
  };
  checkBertWeights(w);
  return w;
}
