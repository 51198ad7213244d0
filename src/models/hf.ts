// Hugging Face model folders (config.json + safetensors) → canonical weights.
//
//   Llama family — LlamaForCausalLM (Llama 2/3.x, SmolLM2), MistralForCausalLM, MinistralForCausalLM, Qwen2ForCausalLM,
//     Qwen3ForCausalLM, SmolLM3ForCausalLM, Phi3ForCausalLM, Gemma2ForCausalLM, Gemma3ForCausalLM:
//     model.embed_tokens, model.layers.{i}.{input_layernorm, self_attn.{q,k,v,o}_proj,
//     post_attention_layernorm, mlp.{gate,up,down}_proj}, model.norm, lm_head (absent when tied).
//     Already [out, in]. HF's q/k rows are in rotate_half order, so ropeLayout is 'half'. Qwen2 adds
//     q/k/v biases; Qwen3 and Gemma 3 per-head self_attn.{q,k}_norm; Phi-3 fuses qkv_proj and
//     gate_up_proj (split here); Gemma's post_attention_layernorm normalises the attention output and
//     pre_/post_feedforward_layernorm wrap the MLP. Per-family config (rope scaling, windows, NoPE
//     layers, soft-caps, ...) is read from each family's own config.json field names.
//   GPT2LMHeadModel: (transformer.)wte, wpe, h.{i}.{ln_1, attn.c_attn, attn.c_proj, ln_2, mlp.c_fc,
//     mlp.c_proj}, ln_f. Conv1D stores weights [in, out]: transposed to [out, in]; c_attn is the fused
//     q|k|v [d, 3d] and is split. The LM head is tied to wte.
//
// Special ids: config.json, then generation_config.json, then the tokenizer (tokenizer_config.json).
//
// The files are read through src/formats/files.ts (ModelFiles): loadHfFiles / readHfConfigFiles
// take a folder on disk or bytes in memory alike (the browser demo passes a chosen folder or a Hub
// download); loadHf / readHfConfig are the Node layer that names a folder on disk.

import type { TextTokenizer } from '../tokenizer/types.js';
import { ModelConfigError, ModelFileError } from '../errors.js';
import { folderFiles, type ModelFiles } from '../formats/files.js';
import { DEFAULT_CHUNK_ELEMS, FileTensorRef, openSafetensorsIn, type TensorSource } from '../formats/safetensors.js';
import type { RopeScaling } from '../../kernels/rope.js';
import { toF16 } from '../util/f16.js';
import type { ChunkScratch, ChunkTarget, LoadedWeights, ModelConfig, TensorMap, TensorRef } from './types.js';

export const SUPPORTED_ARCHITECTURES = [
  'LlamaForCausalLM', 'MistralForCausalLM', 'MinistralForCausalLM', 'Qwen2ForCausalLM', 'Qwen3ForCausalLM', 'SmolLM3ForCausalLM',
  'Gemma2ForCausalLM', 'Gemma3ForCausalLM', 'Phi3ForCausalLM', 'GPT2LMHeadModel',
] as const;
export type HfArchitecture = (typeof SUPPORTED_ARCHITECTURES)[number];

type Json = Record<string, unknown>;

function readJsonFile(files: ModelFiles, name: string): Json {
  const path = files.path(name);
  let text: string;
  try {
    text = files.text(name);
  } catch (e) {
    throw new ModelConfigError(`${path}: cannot read: ${(e as Error).message}`);
  }
  try {
    const v = JSON.parse(text);
    if (!v || typeof v !== 'object' || Array.isArray(v)) throw new ModelConfigError('not a JSON object');
    return v as Json;
  } catch (e) {
    throw new ModelConfigError(`${path}: invalid JSON: ${(e as Error).message}`);
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

/** Parse config.json (+ generation_config.json) of a folder on disk into a ModelConfig (Node). */
export function readHfConfig(dir: string, tokenizer?: TextTokenizer): HfModelInfo {
  return readHfConfigFiles(folderFiles(dir), tokenizer);
}

/** Parse config.json (+ generation_config.json) of a folder's files into a ModelConfig. */
export function readHfConfigFiles(files: ModelFiles, tokenizer?: TextTokenizer): HfModelInfo {
  const dir = files.dir;
  const path = files.path('config.json');
  if (!files.has('config.json')) throw new ModelConfigError(`${dir}: no config.json (not a Hugging Face model folder)`);
  const raw = readJsonFile(files, 'config.json');
  const archs = Array.isArray(raw.architectures) ? (raw.architectures as string[]) : [];
  const architecture = archs.find((a) => (SUPPORTED_ARCHITECTURES as readonly string[]).includes(a)) as HfArchitecture | undefined;
  if (!architecture) {
    const named = archs.length ? archs.join(', ') : `none (model_type ${JSON.stringify(raw.model_type ?? null)})`;
    throw new ModelConfigError(`${path}: unsupported architecture ${named}; supported: ${SUPPORTED_ARCHITECTURES.join(', ')}`);
  }
  const num = (key: string, fallback?: number): number => {
    const v = raw[key];
    if (typeof v === 'number' && Number.isFinite(v)) return v;
    if ((v === undefined || v === null) && fallback !== undefined) return fallback;
    throw new ModelConfigError(`${path}: ${architecture} needs a numeric "${key}" (got ${JSON.stringify(v)})`);
  };
  const unsupported = (what: string) => new Error(`${path}: ${architecture} with ${what} is not supported`);

  const gen = files.has('generation_config.json') ? readJsonFile(files, 'generation_config.json') : {};
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

  if (architecture === 'Gemma2ForCausalLM' || architecture === 'Gemma3ForCausalLM') return { architecture, raw, config: gemmaConfig(raw, path, architecture, name, ids, num) };

  // Llama family (Llama 2/3.x, SmolLM2, Mistral, Qwen2, Qwen3, SmolLM3).
  const act = raw.hidden_act ?? 'silu';
  if (act !== 'silu') throw unsupported(`hidden_act ${JSON.stringify(act)} (only silu)`);
  if (raw.attention_bias === true && architecture !== 'Qwen2ForCausalLM' && architecture !== 'Qwen3ForCausalLM') throw unsupported('attention_bias true');
  if (raw.mlp_bias === true) throw unsupported('mlp_bias true');
  const d = num('hidden_size');
  const nHeads = num('num_attention_heads');
  const nKvHeads = num('num_key_value_heads', nHeads);
  const nLayers = num('num_hidden_layers');
  // head_dim: explicit in Qwen3 (and may differ from hidden_size / heads); null means the default.
  const headDim = num('head_dim', d / nHeads);
  if (nHeads % nKvHeads !== 0) throw new ModelConfigError(`${path}: num_attention_heads ${nHeads} is not a multiple of num_key_value_heads ${nKvHeads}`);
  if (!Number.isInteger(headDim) || headDim % 2 !== 0) throw new ModelConfigError(`${path}: head size ${headDim} must be an even integer`);
  let maxSeqLen = num('max_position_embeddings', 2048);
  // Phi-3/4: partial rotary (partial_rotary_factor of each head's dims rotate; modeling_phi3.py).
  const prf = typeof raw.partial_rotary_factor === 'number' ? raw.partial_rotary_factor : 1;
  const rotaryDim = Math.trunc(headDim * prf);
  if (!(prf > 0 && prf <= 1) || rotaryDim % 2 !== 0 || rotaryDim < 2) throw new ModelConfigError(`${path}: partial_rotary_factor ${prf} gives rotary dim ${rotaryDim} of head dim ${headDim} (must be even, >= 2)`);
  const { theta, scaling } = ropeConfig(raw, path, architecture, num, rotaryDim);
  if (scaling?.type === 'longrope') {
    // transformers switches to long_factor past original_max_position_embeddings (dynamic_rope_update);
    // concord keeps the short factors, so sequences stop there.
    const orig = num('original_max_position_embeddings', maxSeqLen);
    maxSeqLen = Math.min(maxSeqLen, orig);
  }
  const layerWindows = slidingWindows(raw, path, architecture, nLayers);
  const layerRope = architecture === 'SmolLM3ForCausalLM' ? smolLM3Rope(raw, path, nLayers) : undefined;
  // Qwen2 always has q/k/v biases; Qwen3 and SmolLM3 have them when attention_bias says so.
  const qkvBias = architecture === 'Qwen2ForCausalLM' || raw.attention_bias === true;
  return {
    architecture,
    raw,
    config: {
      arch: 'llama', name, vocabSize: num('vocab_size'), dim: d, hiddenDim: num('intermediate_size'), nLayers,
      nHeads, nKvHeads, headDim, maxSeqLen, normEps: num('rms_norm_eps', 1e-6), norm: 'rms', act: 'swiglu', pos: 'rope',
      ropeTheta: theta, ropeLayout: 'half', qkvBias, mlpBias: false,
      // SmolLM3's config class defaults to tied embeddings; the others to untied.
      tiedEmbeddings: (raw.tie_word_embeddings ?? architecture === 'SmolLM3ForCausalLM') === true, ...ids,
      ...(scaling ? { ropeScaling: scaling } : {}),
      ...(rotaryDim !== headDim ? { rotaryDim } : {}),
      ...(layerWindows.some((w) => w > 0) ? { layerWindows } : {}),
      ...(layerRope && layerRope.some((r) => !r) ? { layerRope } : {}),
    },
  };
}

type NumField = (key: string, fallback?: number) => number;

/**
 * Gemma 2 (models/gemma2/modeling_gemma2.py, configuration_gemma2.py) and Gemma 3 text
 * (models/gemma3/modeling_gemma3.py, configuration_gemma3.py Gemma3TextConfig): embeddings x
 * sqrt(hidden), RMSNorm with (1 + w), norms before and after attention and MLP, GeGLU with
 * gelu_pytorch_tanh, scores scaled by query_pre_attn_scalar^-0.5, sliding-window layers
 * interleaved with global ones (layer_types, else Gemma 2: even layers slide; Gemma 3: all but
 * every sliding_window_pattern-th); Gemma 2's attention and final-logit soft-caps; Gemma 3's
 * per-head q/k norms and local RoPE base (rope_local_base_freq, unscaled) on sliding layers.
 */
function gemmaConfig(raw: Json, path: string, architecture: 'Gemma2ForCausalLM' | 'Gemma3ForCausalLM', name: string,
  ids: { bosId: number | null; eosId: number | null; padId: number | null }, num: NumField): ModelConfig {
  const g3 = architecture === 'Gemma3ForCausalLM';
  const act = raw.hidden_activation ?? raw.hidden_act ?? 'gelu_pytorch_tanh';
  if (act !== 'gelu_pytorch_tanh' && act !== 'gelu_tanh') throw new ModelConfigError(`${path}: ${architecture} with hidden_activation ${JSON.stringify(act)} is not supported (only gelu_pytorch_tanh)`);
  if (raw.attention_bias === true) throw new ModelConfigError(`${path}: ${architecture} with attention_bias true is not supported`);
  if (raw.tie_word_embeddings === false) throw new ModelConfigError(`${path}: ${architecture} with tie_word_embeddings false is not supported`);
  if (g3 && raw.use_bidirectional_attention === true) throw new ModelConfigError(`${path}: ${architecture} with use_bidirectional_attention is not supported (causal LM scoring)`);
  const d = num('hidden_size');
  const nHeads = num('num_attention_heads');
  const nKvHeads = num('num_key_value_heads', nHeads);
  const nLayers = num('num_hidden_layers');
  const headDim = num('head_dim', 256);
  if (nHeads % nKvHeads !== 0) throw new ModelConfigError(`${path}: num_attention_heads ${nHeads} is not a multiple of num_key_value_heads ${nKvHeads}`);
  if (!Number.isInteger(headDim) || headDim % 2 !== 0) throw new ModelConfigError(`${path}: head size ${headDim} must be an even integer`);
  const window = num('sliding_window', 4096);
  let types: string[];
  if (Array.isArray(raw.layer_types)) {
    types = (raw.layer_types as string[]).slice(0, nLayers);
    if (types.length < nLayers) throw new ModelConfigError(`${path}: layer_types has ${types.length} entries for ${nLayers} layers`);
  } else if (g3) {
    const pattern = num('sliding_window_pattern', 6);
    types = Array.from({ length: nLayers }, (_, i) => ((i + 1) % pattern ? 'sliding_attention' : 'full_attention'));
  } else {
    types = Array.from({ length: nLayers }, (_, i) => (i % 2 === 0 ? 'sliding_attention' : 'full_attention'));
  }
  const layerWindows = types.map((t, i) => {
    if (t === 'sliding_attention') return window;
    if (t === 'full_attention') return 0;
    throw new ModelConfigError(`${path}: layer_types[${i}] ${JSON.stringify(t)} is not supported (full_attention, sliding_attention)`);
  });
  // RoPE: rope_theta / rope_scaling / rope_local_base_freq as checkpoints ship them, or
  // rope_parameters keyed by layer type (newer transformers).
  let theta: number, scaling: RopeScaling | null = null, localTheta: number | undefined;
  const rp = raw.rope_parameters as Json | undefined;
  if (rp && typeof rp === 'object' && (rp.full_attention || rp.sliding_attention)) {
    const full = (rp.full_attention ?? {}) as Json, loc = (rp.sliding_attention ?? {}) as Json;
    ({ theta, scaling } = ropeConfig({ rope_parameters: full }, path, architecture, num));
    if (g3) {
      const l = ropeConfig({ rope_parameters: loc }, path, architecture, num);
      if (l.scaling) throw new ModelConfigError(`${path}: ${architecture} with scaled RoPE on sliding layers is not supported`);
      localTheta = l.theta;
    }
  } else {
    ({ theta, scaling } = ropeConfig(raw, path, architecture, num));
    if (g3) localTheta = num('rope_local_base_freq', 10000);
  }
  // Absent fields take the config classes' defaults (Gemma2Config: 50 / 30; Gemma3TextConfig: none); null disables.
  const softcap = (k: string, fallback: number | undefined): number | undefined => {
    const v = raw[k] === undefined ? fallback : raw[k];
    if (v === undefined || v === null) return undefined;
    if (typeof v !== 'number' || !(v > 0)) throw new ModelConfigError(`${path}: ${k} must be a positive number or null (got ${JSON.stringify(v)})`);
    return v;
  };
  // Gemma 3 does not pass attn_logit_softcapping to its attention (modeling_gemma3.py); Gemma 2 does.
  const attnSoftcap = g3 ? undefined : softcap('attn_logit_softcapping', 50);
  const finalSoftcap = softcap('final_logit_softcapping', g3 ? undefined : 30);
  return {
    arch: 'llama', name, vocabSize: num('vocab_size'), dim: d, hiddenDim: num('intermediate_size'), nLayers, nHeads, nKvHeads, headDim,
    maxSeqLen: num('max_position_embeddings', 8192), normEps: num('rms_norm_eps', 1e-6), norm: 'rms', act: 'geglu', pos: 'rope',
    ropeTheta: theta, ropeLayout: 'half', qkvBias: false, mlpBias: false, tiedEmbeddings: true, ...ids,
    ...(scaling ? { ropeScaling: scaling } : {}),
    ...(localTheta !== undefined ? { ropeLocalTheta: localTheta } : {}),
    ...(layerWindows.some((w) => w > 0) ? { layerWindows } : {}),
    normWeightOffset: 1,
    // sqrt(hidden) in the compute dtype (modeling_gemma2.py: torch.tensor(hidden_size**0.5, dtype=hidden_states.dtype)); f32 here.
    embedScale: Math.fround(Math.sqrt(d)),
    attnScale: num('query_pre_attn_scalar', 256) ** -0.5,
    ...(attnSoftcap ? { attnSoftcap } : {}),
    ...(finalSoftcap ? { finalSoftcap } : {}),
  };
}


/**
 * rope_theta and rope_scaling (config.json as checkpoints ship it), or rope_parameters (how newer
 * transformers versions save the two together). Scaling types: none/'default', 'linear' (factor;
 * Gemma 3's global layers) and 'llama3' (Llama 3.1/3.2: factor, low_freq_factor,
 * high_freq_factor, original_max_position_embeddings).
 */
function ropeConfig(raw: Json, path: string, architecture: string, num: NumField, rotaryDim = 0): { theta: number; scaling: RopeScaling | null } {
  const params = (raw.rope_parameters ?? null) as Json | null;
  const rs = (params ?? raw.rope_scaling ?? null) as Json | null;
  const thetaDefault = architecture === 'SmolLM3ForCausalLM' ? 2000000 : 10000;
  const theta = params && typeof params.rope_theta === 'number' ? params.rope_theta : num('rope_theta', thetaDefault);
  if (!(theta > 0 && Number.isFinite(theta))) throw new ModelConfigError(`${path}: rope_theta must be a positive number (got ${theta})`);
  if (!rs) return { theta, scaling: null };
  const type = rs.rope_type ?? rs.type ?? 'default';
  if (type === 'default') return { theta, scaling: null };
  if (type === 'llama3') {
    const f = (k: string): number => {
      const v = rs[k];
      if (typeof v !== 'number' || !Number.isFinite(v)) throw new ModelConfigError(`${path}: rope_scaling llama3 needs a numeric "${k}" (got ${JSON.stringify(v)})`);
      return v;
    };
    const scaling: RopeScaling = {
      type: 'llama3', factor: f('factor'), lowFreqFactor: f('low_freq_factor'), highFreqFactor: f('high_freq_factor'),
      originalMaxPositionEmbeddings: f('original_max_position_embeddings'),
    };
    if (!(scaling.highFreqFactor > scaling.lowFreqFactor)) throw new ModelConfigError(`${path}: rope_scaling llama3 needs high_freq_factor > low_freq_factor`);
    return { theta, scaling };
  }
  if (type === 'linear') {
    const factor = rs.factor;
    if (typeof factor !== 'number' || !(factor > 0)) throw new ModelConfigError(`${path}: rope_scaling linear needs a positive numeric "factor" (got ${JSON.stringify(factor)})`);
    return { theta, scaling: { type: 'linear', factor } };
  }
  if (type === 'longrope' || type === 'su') {
    // modeling_rope_utils.py _compute_longrope_parameters ('su' is its old name in Phi-3 configs).
    const sf = rs.short_factor;
    if (!Array.isArray(sf) || sf.length !== rotaryDim / 2 || sf.some((v) => typeof v !== 'number' || !(v > 0))) {
      throw new ModelConfigError(`${path}: rope_scaling longrope needs short_factor: ${rotaryDim / 2} positive numbers (rotary dim ${rotaryDim} / 2; got ${Array.isArray(sf) ? `${sf.length} entries` : JSON.stringify(sf)})`);
    }
    const maxPos = num('max_position_embeddings', 2048);
    const origTop = raw.original_max_position_embeddings;
    const orig = typeof origTop === 'number' ? origTop : typeof rs.original_max_position_embeddings === 'number' ? rs.original_max_position_embeddings : maxPos;
    const factor = typeof origTop === 'number' ? maxPos / origTop : typeof rs.factor === 'number' ? rs.factor : maxPos / orig;
    const attentionFactor = typeof rs.attention_factor === 'number' ? rs.attention_factor : factor <= 1 ? 1 : Math.sqrt(1 + Math.log(factor) / Math.log(orig));
    return { theta, scaling: { type: 'longrope', factors: sf as number[], attentionFactor } };
  }
  throw new ModelConfigError(`${path}: ${architecture} with rope_scaling ${JSON.stringify(rs)} is not supported (supported rope types: default, linear, llama3, longrope)`);
}

/**
 * Per-layer sliding windows, as transformers builds them: an explicit layer_types list
 * ("sliding_attention" / "full_attention") wins; else Mistral slides every layer when
 * sliding_window is set; Qwen2/Qwen3 slide layers i >= max_window_layers when use_sliding_window;
 * SmolLM3 slides its NoPE layers when use_sliding_window (configuration_*.py of each).
 */
function slidingWindows(raw: Json, path: string, architecture: string, nLayers: number): number[] {
  const sw = raw.sliding_window;
  const window = typeof sw === 'number' && sw > 0 ? sw : 0;
  // Mistral and Phi-3 pass config.sliding_window to every layer (modeling_mistral.py, modeling_phi3.py).
  // Ministral: sliding layers from layer_types, all of them by default (configuration_ministral.py).
  const everyLayer = architecture === 'MistralForCausalLM' || architecture === 'MinistralForCausalLM' || architecture === 'LlamaForCausalLM' || architecture === 'Phi3ForCausalLM';
  const enabled = everyLayer ? window > 0 : raw.use_sliding_window === true && window > 0;
  if (raw.use_sliding_window === true && window === 0) throw new ModelConfigError(`${path}: use_sliding_window is true but sliding_window is ${JSON.stringify(sw)}`);
  if (Array.isArray(raw.layer_types)) {
    const lt = raw.layer_types as unknown[];
    if (lt.length < nLayers) throw new ModelConfigError(`${path}: layer_types has ${lt.length} entries for ${nLayers} layers`);
    return lt.slice(0, nLayers).map((t, i) => {
      if (t === 'full_attention') return 0;
      if (t === 'sliding_attention') {
        // Qwen2/3 and SmolLM3 drop the window unless use_sliding_window (their configuration_*.py).
        return enabled ? window : 0;
      }
      throw new ModelConfigError(`${path}: layer_types[${i}] ${JSON.stringify(t)} is not supported (full_attention, sliding_attention)`);
    });
  }
  if (!enabled) return new Array(nLayers).fill(0);
  if (architecture === 'Qwen2ForCausalLM' || architecture === 'Qwen3ForCausalLM') {
    const mwl = typeof raw.max_window_layers === 'number' ? raw.max_window_layers : nLayers;
    return Array.from({ length: nLayers }, (_, i) => (i >= mwl ? window : 0));
  }
  if (architecture === 'SmolLM3ForCausalLM') {
    const rope = smolLM3Rope(raw, path, nLayers);
    return rope.map((r) => (r ? 0 : window));
  }
  return new Array(nLayers).fill(window);
}

/** SmolLM3's no_rope_layers: 1 = the layer uses RoPE, 0 = NoPE; default every 4th layer NoPE (configuration_smollm3.py). */
function smolLM3Rope(raw: Json, path: string, nLayers: number): boolean[] {
  const nrl = raw.no_rope_layers;
  if (nrl === undefined || nrl === null) {
    const interval = typeof raw.no_rope_layer_interval === 'number' ? raw.no_rope_layer_interval : 4;
    return Array.from({ length: nLayers }, (_, i) => (i + 1) % interval !== 0);
  }
  if (!Array.isArray(nrl) || nrl.length < nLayers || nrl.some((v) => v !== 0 && v !== 1)) {
    throw new ModelConfigError(`${path}: no_rope_layers must list 0/1 for each of the ${nLayers} layers (got ${JSON.stringify(nrl)})`);
  }
  return (nrl as number[]).slice(0, nLayers).map((v) => v === 1);
}

/** [rows, cols] → [cols, rows]. */
export function transpose(src: Float32Array, rows: number, cols: number): Float32Array {
  const out = new Float32Array(rows * cols);
  for (let r = 0; r < rows; r++) for (let c = 0; c < cols; c++) out[c * rows + r] = src[r * cols + c];
  return out;
}

/** The config.json dims an expected shape comes from, for shape errors. */
const dimsOf = (c: ModelConfig): string =>
  `vocab ${c.vocabSize}, hidden ${c.dim}, intermediate ${c.hiddenDim}, ${c.nHeads} heads / ${c.nKvHeads} kv heads of ${c.headDim}`;

/** The tensor in its file, after checking its shape against what config.json implies and its dtype. */
function getChecked(src: TensorSource, name: string, shape: number[], c?: ModelConfig): FileTensorRef {
  if (!src.has(name)) throw new ModelFileError(`${src.path}: missing tensor '${name}'`, src.path, name);
  const info = src.info(name);
  if (info.shape.length !== shape.length || info.shape.some((s, i) => s !== shape[i])) {
    throw new ModelFileError(`${info.file}: tensor '${name}' has shape [${info.shape.join(', ')}], expected [${shape.join(', ')}]${c ? ` from config.json (${dimsOf(c)})` : ''}`, info.file, name);
  }
  return new FileTensorRef(info);
}

/** A canonical tensor computed from a whole file tensor (GPT-2's transposed Conv1D weights): read as f32, transformed, then chunked. */
class DerivedRef implements TensorRef {
  constructor(private readonly from: FileTensorRef, readonly length: number, private readonly make: (whole: Float32Array) => Float32Array) {}
  get sourceBytes(): number { return this.from.sourceBytes; }
  get file(): string { return this.from.file; }
  get sourceOrder(): number { return this.from.sourceOrder; }
  get source(): string { return this.from.source; }
  read(): Float32Array { return this.make(this.from.read()); }
  *chunks(to: ChunkTarget, maxElems = DEFAULT_CHUNK_ELEMS, _scratch?: ChunkScratch): Generator<{ data: Float32Array | Uint16Array; offset: number }> {
    const all = this.read();
    const per = Math.max(2, maxElems) & ~1;
    for (let off = 0; off < all.length; off += per) {
      const part = all.subarray(off, off + per);
      yield { data: to === 'f16' ? toF16(part) : part, offset: off };
    }
  }
}

/** A [rows, cols] file tensor as its [cols, rows] transpose. */
const transposed = (r: FileTensorRef, rows: number, cols: number): TensorRef => new DerivedRef(r, rows * cols, (w) => transpose(w, rows, cols));

/** Canonical name → tensor ref. */
type RefMap = Map<string, TensorRef>;

function loadLlamaFamily(src: TensorSource, c: ModelConfig, architecture: HfArchitecture): RefMap {
  const t: RefMap = new Map();
  // Qwen3 and Gemma 3: RMSNorm over each head of q and k (modeling_qwen3.py Qwen3Attention.q_norm / k_norm).
  const qkNorm = architecture === 'Qwen3ForCausalLM' || architecture === 'Gemma3ForCausalLM';
  // Gemma 2/3: post_attention_layernorm normalises the attention output (not the MLP input);
  // pre_/post_feedforward_layernorm wrap the MLP.
  const sandwich = architecture === 'Gemma2ForCausalLM' || architecture === 'Gemma3ForCausalLM';
  // Phi-3/4: fused qkv_proj and gate_up_proj, split here into the canonical tensors.
  const fused = architecture === 'Phi3ForCausalLM';
  const pre = src.has('model.embed_tokens.weight') ? 'model.' : '';
  const { dim: d, hiddenDim: ff, vocabSize: V } = c;
  const qd = c.nHeads * c.headDim, kvd = c.nKvHeads * c.headDim;
  t.set('tok_emb', getChecked(src, `${pre}embed_tokens.weight`, [V, d], c));
  for (let i = 0; i < c.nLayers; i++) {
    const h = `${pre}layers.${i}.`, o = `layers.${i}.`;
    t.set(`${o}attn_norm.weight`, getChecked(src, `${h}input_layernorm.weight`, [d], c));
    if (fused) {
      // Phi-3: qkv_proj rows are q | k | v (modeling_phi3.py Phi3Attention: query_pos = heads · head_dim).
      const qkv = getChecked(src, `${h}self_attn.qkv_proj.weight`, [qd + 2 * kvd, d], c);
      t.set(`${o}wq`, qkv.slice(0, qd * d));
      t.set(`${o}wk`, qkv.slice(qd * d, kvd * d));
      t.set(`${o}wv`, qkv.slice((qd + kvd) * d, kvd * d));
    } else {
      t.set(`${o}wq`, getChecked(src, `${h}self_attn.q_proj.weight`, [qd, d], c));
      t.set(`${o}wk`, getChecked(src, `${h}self_attn.k_proj.weight`, [kvd, d], c));
      t.set(`${o}wv`, getChecked(src, `${h}self_attn.v_proj.weight`, [kvd, d], c));
    }
    if (c.qkvBias) {
      t.set(`${o}bq`, getChecked(src, `${h}self_attn.q_proj.bias`, [qd], c));
      t.set(`${o}bk`, getChecked(src, `${h}self_attn.k_proj.bias`, [kvd], c));
      t.set(`${o}bv`, getChecked(src, `${h}self_attn.v_proj.bias`, [kvd], c));
    }
    t.set(`${o}wo`, getChecked(src, `${h}self_attn.o_proj.weight`, [d, qd], c));
    if (qkNorm) {
      t.set(`${o}q_norm.weight`, getChecked(src, `${h}self_attn.q_norm.weight`, [c.headDim], c));
      t.set(`${o}k_norm.weight`, getChecked(src, `${h}self_attn.k_norm.weight`, [c.headDim], c));
    }
    if (sandwich) {
      t.set(`${o}post_attn_norm.weight`, getChecked(src, `${h}post_attention_layernorm.weight`, [d], c));
      t.set(`${o}ffn_norm.weight`, getChecked(src, `${h}pre_feedforward_layernorm.weight`, [d], c));
      t.set(`${o}post_ffn_norm.weight`, getChecked(src, `${h}post_feedforward_layernorm.weight`, [d], c));
    } else {
      t.set(`${o}ffn_norm.weight`, getChecked(src, `${h}post_attention_layernorm.weight`, [d], c));
    }
    if (fused) {
      // Phi-3: gate_up_proj rows are gate | up (Phi3MLP: gate, up_states = chunk(2); up_states * act(gate)).
      const gu = getChecked(src, `${h}mlp.gate_up_proj.weight`, [2 * ff, d], c);
      t.set(`${o}w_gate`, gu.slice(0, ff * d));
      t.set(`${o}w_up`, gu.slice(ff * d, ff * d));
    } else {
      t.set(`${o}w_gate`, getChecked(src, `${h}mlp.gate_proj.weight`, [ff, d], c));
      t.set(`${o}w_up`, getChecked(src, `${h}mlp.up_proj.weight`, [ff, d], c));
    }
    t.set(`${o}w_down`, getChecked(src, `${h}mlp.down_proj.weight`, [d, ff], c));
  }
  t.set('final_norm.weight', getChecked(src, `${pre}norm.weight`, [d], c));
  if (c.tiedEmbeddings) t.set('lm_head', t.get('tok_emb')!);
  else {
    if (!src.has('lm_head.weight')) throw new ModelFileError(`${src.path}: missing tensor 'lm_head.weight' (config.json says tie_word_embeddings is false)`, src.path, 'lm_head.weight');
    t.set('lm_head', getChecked(src, 'lm_head.weight', [V, d], c));
  }
  return t;
}

function loadGpt2(src: TensorSource, c: ModelConfig): RefMap {
  const t: RefMap = new Map();
  const pre = src.has('transformer.wte.weight') ? 'transformer.' : '';
  const { dim: d, hiddenDim: ff, vocabSize: V } = c;
  t.set('tok_emb', getChecked(src, `${pre}wte.weight`, [V, d], c));
  t.set('pos_emb', getChecked(src, `${pre}wpe.weight`, [c.maxSeqLen, d], c));
  for (let i = 0; i < c.nLayers; i++) {
    const h = `${pre}h.${i}.`, o = `layers.${i}.`;
    t.set(`${o}attn_norm.weight`, getChecked(src, `${h}ln_1.weight`, [d], c));
    t.set(`${o}attn_norm.bias`, getChecked(src, `${h}ln_1.bias`, [d], c));
    // Conv1D: y = x·W + b with W [in, out]; the fused c_attn output is q | k | v.
    const qkv = getChecked(src, `${h}attn.c_attn.weight`, [d, 3 * d], c); // transposed: [3d, d]
    const qkvB = getChecked(src, `${h}attn.c_attn.bias`, [3 * d], c);
    (['q', 'k', 'v'] as const).forEach((n, j) => {
      t.set(`${o}w${n}`, new DerivedRef(qkv, d * d, (w) => transpose(w, d, 3 * d).slice(j * d * d, (j + 1) * d * d)));
      t.set(`${o}b${n}`, qkvB.slice(j * d, d));
    });
    t.set(`${o}wo`, transposed(getChecked(src, `${h}attn.c_proj.weight`, [d, d], c), d, d));
    t.set(`${o}bo`, getChecked(src, `${h}attn.c_proj.bias`, [d], c));
    t.set(`${o}ffn_norm.weight`, getChecked(src, `${h}ln_2.weight`, [d], c));
    t.set(`${o}ffn_norm.bias`, getChecked(src, `${h}ln_2.bias`, [d], c));
    t.set(`${o}w_up`, transposed(getChecked(src, `${h}mlp.c_fc.weight`, [d, ff], c), d, ff));
    t.set(`${o}b_up`, getChecked(src, `${h}mlp.c_fc.bias`, [ff], c));
    t.set(`${o}w_down`, transposed(getChecked(src, `${h}mlp.c_proj.weight`, [ff, d], c), ff, d));
    t.set(`${o}b_down`, getChecked(src, `${h}mlp.c_proj.bias`, [d], c));
  }
  t.set('final_norm.weight', getChecked(src, `${pre}ln_f.weight`, [d], c));
  t.set('final_norm.bias', getChecked(src, `${pre}ln_f.bias`, [d], c));
  t.set('lm_head', t.get('tok_emb')!);
  return t;
}

export interface LoadHfOptions {
  /**
   * Leave the tensors in their files (`refs`; `tensors` reads each as f32 only on first use), for
   * GpuTransformer to stream them to the GPU. Default false: every tensor read as f32 now (the CPU path).
   */
  lazy?: boolean;
}

/** Load a Hugging Face folder on disk (Node). `tokenizer` supplies special ids that config.json leaves out. */
export function loadHf(dir: string, tokenizer?: TextTokenizer, opts: LoadHfOptions = {}): LoadedWeights {
  return loadHfFiles(folderFiles(dir), tokenizer, opts);
}

/** Load a Hugging Face folder from its files (on disk or in memory). */
export function loadHfFiles(files: ModelFiles, tokenizer?: TextTokenizer, opts: LoadHfOptions = {}): LoadedWeights {
  const { config, architecture } = readHfConfigFiles(files, tokenizer);
  const src = openSafetensorsIn(files);
  const refs = config.arch === 'gpt2' ? loadGpt2(src, config) : loadLlamaFamily(src, config, architecture);
  if (opts.lazy) return { config, tensors: new LazyTensorMap(refs), refs };
  const tensors: TensorMap = new Map();
  const read = new Map<TensorRef, Float32Array>(); // tied names share one array
  for (const [name, r] of refs) {
    let a = read.get(r);
    if (!a) read.set(r, (a = r.read()));
    tensors.set(name, a);
  }
  return { config, tensors };
}

/**
 * A TensorMap over refs: a tensor is read (as f32) the first time it is asked for, then kept; tied
 * names give the same array. Iterating reads them all.
 */
export class LazyTensorMap extends Map<string, Float32Array> {
  private readonly cache = new Map<TensorRef, Float32Array>();
  constructor(private readonly refs: Map<string, TensorRef>) {
    super();
  }
  override get(name: string): Float32Array | undefined {
    const own = super.get(name);
    if (own) return own;
    const r = this.refs.get(name);
    if (!r) return undefined;
    let t = this.cache.get(r);
    if (!t) this.cache.set(r, (t = r.read()));
    return t;
  }
  override has(name: string): boolean { return super.has(name) || this.refs.has(name); }
  private names(): string[] { return [...new Set([...this.refs.keys(), ...super.keys()])]; }
  override get size(): number { return this.names().length; }
  override keys(): MapIterator<string> { return this.names()[Symbol.iterator](); }
  override values(): MapIterator<Float32Array> { return this.names().map((n) => this.get(n)!)[Symbol.iterator](); }
  override entries(): MapIterator<[string, Float32Array]> { return this.names().map((n): [string, Float32Array] => [n, this.get(n)!])[Symbol.iterator](); }
  override [Symbol.iterator](): MapIterator<[string, Float32Array]> { return this.entries(); }
  override forEach(fn: (v: Float32Array, k: string, m: Map<string, Float32Array>) => void, thisArg?: unknown): void {
    for (const [k, v] of this.entries()) fn.call(thisArg, v, k, this);
  }
}
