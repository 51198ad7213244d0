// BERT-family Hugging Face folders: config.json (BertModel / BertForMaskedLM / ... with
// model_type 'bert'), model.safetensors (f32, f16 or bf16), tokenizer.json. Tensor names follow
// transformers' BertModel, optionally under a 'bert.' prefix (task heads are ignored).
//
// Tensors come through src/formats/safetensors.ts (openSafetensorsFolder: one file or a sharded
// index; F32, F16 and BF16 read as f32), the same reader the language models use.

import type { TensorSource } from '../formats/safetensors.js';
import { checkBertWeights, type BertConfig, type BertLayer, type BertWeights } from './types.js';

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

export function bertFromSafetensors(cfg: HfBertConfigJson, st: TensorSource, name = 'bert'): BertWeights {
  const arch = cfg.architectures?.[0] ?? '';
  if (cfg.model_type !== 'bert' && !/^Bert/.test(arch)) throw new Error(`${name}: config.json describes '${cfg.model_type ?? arch}', not a BERT model`);
  if ((cfg.hidden_act ?? 'gelu') !== 'gelu') throw new Error(`${name}: hidden_act '${cfg.hidden_act}' not supported (BERT's exact 'gelu' only)`);
  if ((cfg.position_embedding_type ?? 'absolute') !== 'absolute') throw new Error(`${name}: position_embedding_type '${cfg.position_embedding_type}' not supported`);
  const prefix = st.has('embeddings.word_embeddings.weight') ? '' : st.has('bert.embeddings.word_embeddings.weight') ? 'bert.' : null;
  if (prefix === null) throw new Error(`${name}: no embeddings.word_embeddings.weight (nor under 'bert.') in the safetensors file`);
  const t = (n: string): Float32Array => st.get(prefix + n);
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
  const dtypes = new Set(st.names().map((n) => st.info(n).dtype));
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
