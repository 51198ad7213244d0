// Hugging Face model folders (config.json + safetensors) → canonical weights.
//
//   LlamaForCausalLM, MistralForCausalLM, Qwen2ForCausalLM: model.embed_tokens, model.layers.{i}.
//     {input_layernorm, self_attn.{q,k,v,o}_proj, post_attention_layernorm, mlp.{gate,up,down}_proj},
//     model.norm, lm_head (absent when tie_word_embeddings). Already [out, in]. HF's q/k rows are
//     in rotate_half order, so ropeLayout is 'half' and no permutation is needed. Qwen2 adds q/k/v biases.
//   GPT2LMHeadModel: (transformer.)wte, wpe, h.{i}.{ln_1, attn.c_attn, attn.c_proj, ln_2, mlp.c_fc,
//     mlp.c_proj}, ln_f. Conv1D stores weights [in, out]: transposed to [out, in]; c_attn is the fused
//     q|k|v [d, 3d] and is split. The LM head is tied to wte.
//
// Special ids: config.json, then generation_config.json, then the tokenizer (tokenizer_config.json).

import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { TextTokenizer } from '../tokenizer/types.js';
import { openSafetensorsFolder, type TensorSource } from '../formats/safetensors.js';
import type { LoadedWeights, ModelConfig, TensorMap } from './types.js';

export const SUPPORTED_ARCHITECTURES = ['LlamaForCausalLM', 'MistralForCausalLM', 'Qwen2ForCausalLM', 'GPT2LMHeadModel'] as const;
export type HfArchitecture = (typeof SUPPORTED_ARCHITECTURES)[number];

type Json = Record<string, unknown>;

function readJsonFile(path: string): Json {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (e) {
    throw new Error(`${path}: cannot read: ${(e as Error).message}`);
  }
  try {
    const v = JSON.parse(text);
    if (!v || typeof v !== 'object' || Array.isArray(v)) throw new Error('not a JSON object');
    return v as Json;
  } catch (e) {
    throw new Error(`${path}: invalid JSON: ${(e as Error).message}`);
  }
}

/** An id field that may be a number, a list (first entry) or null. */
function idField(v: unknown): number | null | undefined {
  if (v === undefined) return undefined;
  if (v === null) return null;
  if (typeof v === 'number' && Number.isInteger(v)) return v;
  if (Array.isArray(v) && v.length > 0 && Number.isInteger(v[0])) return v[0] as number;
  return undefined;
}

export interface HfModelInfo {
  architecture: HfArchitecture;
  config: ModelConfig;
  /** config.json as read */
  raw: Json;
}

/** Parse config.json (+ generation_config.json) of a folder into a ModelConfig. */
export function readHfConfig(dir: string, tokenizer?: TextTokenizer): HfModelInfo {
  const path = join(dir, 'config.json');
  if (!existsSync(path)) throw new Error(`${dir}: no config.json (not a Hugging Face model folder)`);
  const raw = readJsonFile(path);
  const archs = Array.isArray(raw.architectures) ? (raw.architectures as string[]) : [];
  const architecture = archs.find((a) => (SUPPORTED_ARCHITECTURES as readonly string[]).includes(a)) as HfArchitecture | undefined;
  if (!architecture) {
    const named = archs.length ? archs.join(', ') : `none (model_type ${JSON.stringify(raw.model_type ?? null)})`;
    throw new Error(`${path}: unsupported architecture ${named}; supported: ${SUPPORTED_ARCHITECTURES.join(', ')}`);
  }
  const num = (key: string, fallback?: number): number => {
    const v = raw[key];
    if (typeof v === 'number' && Number.isFinite(v)) return v;
    if ((v === undefined || v === null) && fallback !== undefined) return fallback;
    throw new Error(`${path}: ${architecture} needs a numeric "${key}" (got ${JSON.stringify(v)})`);
  };
  const unsupported = (what: string) => new Error(`${path}: ${architecture} with ${what} is not supported`);

  const genPath = join(dir, 'generation_config.json');
  const gen = existsSync(genPath) ? readJsonFile(genPath) : {};
  const special = (key: 'bos' | 'eos' | 'pad', fromTok: number | null | undefined): number | null => {
    const a = idField(raw[`${key}_token_id`]);
    if (a !== undefined && a !== null) return a;
    const b = idField(gen[`${key}_token_id`]);
    if (b !== undefined && b !== null) return b;
    return fromTok ?? null;
  };
  const ids = {
    bosId: special('bos', tokenizer?.bosId),
    eosId: special('eos', tokenizer?.eosId),
    padId: special('pad', tokenizer?.padId),
  };
  const name = `${architecture} (${dir})`;

  if (architecture === 'GPT2LMHeadModel') {
    const d = num('n_embd');
    const act = raw.activation_function ?? 'gelu_new';
    if (act !== 'gelu_new' && act !== 'gelu_pytorch_tanh') throw unsupported(`activation_function ${JSON.stringify(act)} (only the tanh GELU, gelu_new)`);
    if (raw.scale_attn_by_inverse_layer_idx === true) throw unsupported('scale_attn_by_inverse_layer_idx');
    if (raw.tie_word_embeddings === false) throw unsupported('tie_word_embeddings false');
    const nHeads = num('n_head');
    const nPos = num('n_positions', typeof raw.n_ctx === 'number' ? raw.n_ctx : undefined);
    return {
      architecture,
      raw,
      config: {
        arch: 'gpt2', name, vocabSize: num('vocab_size'), dim: d, hiddenDim: num('n_inner', 4 * d), nLayers: num('n_layer'),
        nHeads, nKvHeads: nHeads, headDim: d / nHeads, maxSeqLen: nPos, normEps: num('layer_norm_epsilon', 1e-5),
        norm: 'layer', act: 'gelu_tanh', pos: 'learned', ropeTheta: 0, ropeLayout: 'interleaved',
        qkvBias: true, mlpBias: true, tiedEmbeddings: true, ...ids,
      },
    };
  }

  // Llama family.
  const act = raw.hidden_act ?? 'silu';
  if (act !== 'silu') throw unsupported(`hidden_act ${JSON.stringify(act)} (only silu)`);
  const rs = raw.rope_scaling as Json | null | undefined;
  if (rs && (rs.rope_type ?? rs.type) !== 'default') throw unsupported(`rope_scaling ${JSON.stringify(rs)}`);
  if (raw.attention_bias === true && architecture !== 'Qwen2ForCausalLM') throw unsupported('attention_bias true');
  if (raw.mlp_bias === true) throw unsupported('mlp_bias true');
  const d = num('hidden_size');
  const nHeads = num('num_attention_heads');
  const nKvHeads = num('num_key_value_heads', nHeads);
  const headDim = num('head_dim', d / nHeads);
  if (nHeads % nKvHeads !== 0) throw new Error(`${path}: num_attention_heads ${nHeads} is not a multiple of num_key_value_heads ${nKvHeads}`);
  if (!Number.isInteger(headDim) || headDim % 2 !== 0) throw new Error(`${path}: head size ${headDim} must be an even integer`);
  let maxSeqLen = num('max_position_embeddings', 2048);
  // Sliding-window attention equals full attention while sequences fit in the window: cap there.
  const sliding = architecture === 'Qwen2ForCausalLM' ? (raw.use_sliding_window === true ? raw.sliding_window : null) : raw.sliding_window;
  if (typeof sliding === 'number' && sliding > 0) maxSeqLen = Math.min(maxSeqLen, sliding);
  return {
    architecture,
    raw,
    config: {
      arch: 'llama', name, vocabSize: num('vocab_size'), dim: d, hiddenDim: num('intermediate_size'), nLayers: num('num_hidden_layers'),
      nHeads, nKvHeads, headDim, maxSeqLen, normEps: num('rms_norm_eps', 1e-6), norm: 'rms', act: 'swiglu', pos: 'rope',
      ropeTheta: num('rope_theta', 10000), ropeLayout: 'half', qkvBias: architecture === 'Qwen2ForCausalLM', mlpBias: false,
      tiedEmbeddings: raw.tie_word_embeddings === true, ...ids,
    },
  };
}

/** [rows, cols] → [cols, rows]. */
export function transpose(src: Float32Array, rows: number, cols: number): Float32Array {
  const out = new Float32Array(rows * cols);
  for (let r = 0; r < rows; r++) for (let c = 0; c < cols; c++) out[c * rows + r] = src[r * cols + c];
  return out;
}

function getChecked(src: TensorSource, name: string, shape: number[]): Float32Array {
  if (!src.has(name)) throw new Error(`${src.path}: missing tensor '${name}'`);
  const info = src.info(name);
  if (info.shape.length !== shape.length || info.shape.some((s, i) => s !== shape[i])) {
    throw new Error(`${info.file}: tensor '${name}' has shape [${info.shape.join(', ')}], expected [${shape.join(', ')}]`);
  }
  return src.get(name);
}

function loadLlamaFamily(src: TensorSource, c: ModelConfig): TensorMap {
  const t: TensorMap = new Map();
  const pre = src.has('model.embed_tokens.weight') ? 'model.' : '';
  const { dim: d, hiddenDim: ff, vocabSize: V } = c;
  const qd = c.nHeads * c.headDim, kvd = c.nKvHeads * c.headDim;
  t.set('tok_emb', getChecked(src, `${pre}embed_tokens.weight`, [V, d]));
  for (let i = 0; i < c.nLayers; i++) {
    const h = `${pre}layers.${i}.`, o = `layers.${i}.`;
    t.set(`${o}attn_norm.weight`, getChecked(src, `${h}input_layernorm.weight`, [d]));
    t.set(`${o}wq`, getChecked(src, `${h}self_attn.q_proj.weight`, [qd, d]));
    t.set(`${o}wk`, getChecked(src, `${h}self_attn.k_proj.weight`, [kvd, d]));
    t.set(`${o}wv`, getChecked(src, `${h}self_attn.v_proj.weight`, [kvd, d]));
    if (c.qkvBias) {
      t.set(`${o}bq`, getChecked(src, `${h}self_attn.q_proj.bias`, [qd]));
      t.set(`${o}bk`, getChecked(src, `${h}self_attn.k_proj.bias`, [kvd]));
      t.set(`${o}bv`, getChecked(src, `${h}self_attn.v_proj.bias`, [kvd]));
    }
    t.set(`${o}wo`, getChecked(src, `${h}self_attn.o_proj.weight`, [d, qd]));
    t.set(`${o}ffn_norm.weight`, getChecked(src, `${h}post_attention_layernorm.weight`, [d]));
    t.set(`${o}w_gate`, getChecked(src, `${h}mlp.gate_proj.weight`, [ff, d]));
    t.set(`${o}w_up`, getChecked(src, `${h}mlp.up_proj.weight`, [ff, d]));
    t.set(`${o}w_down`, getChecked(src, `${h}mlp.down_proj.weight`, [d, ff]));
  }
  t.set('final_norm.weight', getChecked(src, `${pre}norm.weight`, [d]));
  if (c.tiedEmbeddings) t.set('lm_head', t.get('tok_emb')!);
  else {
    if (!src.has('lm_head.weight')) throw new Error(`${src.path}: missing tensor 'lm_head.weight' (config.json says tie_word_embeddings is false)`);
    t.set('lm_head', getChecked(src, 'lm_head.weight', [V, d]));
  }
  return t;
}

function loadGpt2(src: TensorSource, c: ModelConfig): TensorMap {
  const t: TensorMap = new Map();
  const pre = src.has('transformer.wte.weight') ? 'transformer.' : '';
  const { dim: d, hiddenDim: ff, vocabSize: V } = c;
  t.set('tok_emb', getChecked(src, `${pre}wte.weight`, [V, d]));
  t.set('pos_emb', getChecked(src, `${pre}wpe.weight`, [c.maxSeqLen, d]));
  for (let i = 0; i < c.nLayers; i++) {
    const h = `${pre}h.${i}.`, o = `layers.${i}.`;
    t.set(`${o}attn_norm.weight`, getChecked(src, `${h}ln_1.weight`, [d]));
    t.set(`${o}attn_norm.bias`, getChecked(src, `${h}ln_1.bias`, [d]));
    // Conv1D: y = x·W + b with W [in, out]; the fused c_attn output is q | k | v.
    const qkv = transpose(getChecked(src, `${h}attn.c_attn.weight`, [d, 3 * d]), d, 3 * d); // [3d, d]
    const qkvB = getChecked(src, `${h}attn.c_attn.bias`, [3 * d]);
    (['q', 'k', 'v'] as const).forEach((n, j) => {
      t.set(`${o}w${n}`, qkv.slice(j * d * d, (j + 1) * d * d));
      t.set(`${o}b${n}`, qkvB.slice(j * d, (j + 1) * d));
    });
    t.set(`${o}wo`, transpose(getChecked(src, `${h}attn.c_proj.weight`, [d, d]), d, d));
    t.set(`${o}bo`, getChecked(src, `${h}attn.c_proj.bias`, [d]));
    t.set(`${o}ffn_norm.weight`, getChecked(src, `${h}ln_2.weight`, [d]));
    t.set(`${o}ffn_norm.bias`, getChecked(src, `${h}ln_2.bias`, [d]));
    t.set(`${o}w_up`, transpose(getChecked(src, `${h}mlp.c_fc.weight`, [d, ff]), d, ff));
    t.set(`${o}b_up`, getChecked(src, `${h}mlp.c_fc.bias`, [ff]));
    t.set(`${o}w_down`, transpose(getChecked(src, `${h}mlp.c_proj.weight`, [ff, d]), ff, d));
    t.set(`${o}b_down`, getChecked(src, `${h}mlp.c_proj.bias`, [d]));
  }
  t.set('final_norm.weight', getChecked(src, `${pre}ln_f.weight`, [d]));
  t.set('final_norm.bias', getChecked(src, `${pre}ln_f.bias`, [d]));
  t.set('lm_head', t.get('tok_emb')!);
  return t;
}

/** Load a Hugging Face folder. `tokenizer` supplies special ids that config.json leaves out. */
export function loadHf(dir: string, tokenizer?: TextTokenizer): LoadedWeights {
  const { config } = readHfConfig(dir, tokenizer);
  const src = openSafetensorsFolder(dir);
  const tensors = config.arch === 'gpt2' ? loadGpt2(src, config) : loadLlamaFamily(src, config);
  return { config, tensors };
}
