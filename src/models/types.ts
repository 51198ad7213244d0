// The one in-memory form every model loader produces and both forward passes (CPU twin and WGSL)
// consume. Loaders (llama2.c checkpoints, Hugging Face folders) map their tensor names onto the
// canonical names below, transposing where needed so that every linear weight is [out, in].

import type { RopeScaling } from '../../kernels/rope.js';

export type Arch = 'llama' | 'gpt2';

export interface ModelConfig {
  /** 'llama' covers the decoder-only RMSNorm/SwiGLU/RoPE families (Llama, Mistral, Qwen2/3, SmolLM) and llama2.c. */
  arch: Arch;
  /** Human-readable source, e.g. 'stories15M (llama2.c)'. */
  name: string;
  vocabSize: number;
  dim: number;
  /** FFN inner size. */
  hiddenDim: number;
  nLayers: number;
  nHeads: number;
  nKvHeads: number;
  headDim: number;
  maxSeqLen: number;
  normEps: number;
  norm: 'rms' | 'layer';
  /** 'swiglu' (Llama family), 'geglu' (Gemma: gelu_tanh(gate) * up) or 'gelu_tanh' (GPT-2's gelu_new). */
  act: 'swiglu' | 'geglu' | 'gelu_tanh';
  pos: 'rope' | 'learned';
  ropeTheta: number;
  /** 'interleaved' rotates pairs (2i, 2i+1) as llama2.c; 'half' rotates (i, i + hd/2) as HF rotate_half. */
  ropeLayout: 'interleaved' | 'half';
  /**
   * Linear layers carry biases: q/k/v for Qwen2; every layer for GPT-2. Loaders read the bias
   * tensors when set; both forward passes decide by the tensors' presence.
   */
  qkvBias: boolean;
  /** o-proj and MLP biases (GPT-2). */
  mlpBias: boolean;
  /** RoPE frequency scaling (Llama 3.1 'llama3', 'linear', Phi-3 'longrope'); none when absent or null. */
  ropeScaling?: RopeScaling | null;
  /** Leading dims of each head that RoPE rotates (Phi-3/4 partial_rotary_factor · headDim). headDim when absent. */
  rotaryDim?: number;
  /**
   * Per-layer attention window (length nLayers): 0 = full causal attention, W > 0 = a sliding
   * window of W keys including the query (Mistral's sliding_window). All 0 when absent.
   */
  layerWindows?: number[];
  /** Per-layer RoPE (length nLayers): false skips RoPE in that layer (SmolLM3's no_rope_layers). All true when absent. */
  layerRope?: boolean[];
  /** RoPE base of the sliding-window (local) layers, unscaled (Gemma 3's rope_local_base_freq); ropeTheta elsewhere. */
  ropeLocalTheta?: number;
  /** RMSNorm scales by (weight + offset): 1 for Gemma's (1 + w). 0 when absent. */
  normWeightOffset?: number;
  /** Token embeddings are multiplied by this (Gemma: sqrt(hidden)). 1 when absent. */
  embedScale?: number;
  /** Attention score scale (Gemma: query_pre_attn_scalar^-0.5). 1/sqrt(headDim) when absent. */
  attnScale?: number;
  /** Attention-logit soft-cap, cap * tanh(s / cap) (Gemma 2's attn_logit_softcapping). None when absent. */
  attnSoftcap?: number;
  /** Final-logit soft-cap inside the fused LM head (Gemma 2's final_logit_softcapping). None when absent. */
  finalSoftcap?: number;
  tiedEmbeddings: boolean;
  bosId: number | null;
  eosId: number | null;
  padId: number | null;
}

/**
 * Canonical tensor names (all f32, row-major, linear weights [out, in]):
 *   tok_emb [V, d]            pos_emb [maxSeqLen, d] (learned positions only)
 *   layers.{i}.attn_norm.weight [d]   layers.{i}.attn_norm.bias [d] (LayerNorm only)
 *   layers.{i}.wq [nHeads*hd, d]  layers.{i}.wk [nKv*hd, d]  layers.{i}.wv [nKv*hd, d]  layers.{i}.wo [d, nHeads*hd]
 *   layers.{i}.bq / bk / bv (qkvBias)   layers.{i}.bo (mlpBias)
 *   layers.{i}.q_norm.weight [hd]  layers.{i}.k_norm.weight [hd]  (Qwen3, Gemma 3: RMSNorm over each head of q and k, before RoPE)
 *   layers.{i}.post_attn_norm.weight [d]  layers.{i}.post_ffn_norm.weight [d]  (Gemma 2/3: norms of the attention and
 *     MLP outputs before their residual adds; ffn_norm is then Gemma's pre_feedforward_layernorm)
 *   geglu: as swiglu (w_gate, w_up, w_down)
 *   layers.{i}.ffn_norm.weight [d]   layers.{i}.ffn_norm.bias [d] (LayerNorm only)
 *   swiglu: layers.{i}.w_gate [ff, d]  layers.{i}.w_up [ff, d]  layers.{i}.w_down [d, ff]
 *   gelu:   layers.{i}.w_up [ff, d] + b_up [ff]   layers.{i}.w_down [d, ff] + b_down [d]
 *   final_norm.weight [d]   final_norm.bias [d] (LayerNorm only)
 *   lm_head [V, d]  (the same Float32Array as tok_emb when tiedEmbeddings)
 */
export type TensorMap = Map<string, Float32Array>;

export interface LoadedWeights {
  config: ModelConfig;
  tensors: TensorMap;
  /**
   * The canonical tensors still in their checkpoint files (Hugging Face folders loaded for the
   * WebGPU path): GpuTransformer streams these chunk by chunk to the GPU in their storage type;
   * `tensors` then reads a tensor as f32 only when something asks for it. Tied names share one ref.
   */
  refs?: Map<string, TensorRef>;
}

/** Chunk buffers reused across TensorRef.chunks() calls (one consumer at a time). */
export interface ChunkScratch { raw?: ArrayBuffer; conv?: ArrayBuffer; f32?: ArrayBuffer }

/** The storage type a streamed chunk is converted to. */
export type ChunkTarget = 'f16' | 'f32';

/** A canonical tensor in its file, read on demand (src/formats/safetensors.ts FileTensorRef). */
export interface TensorRef {
  /** canonical element count */
  readonly length: number;
  /** bytes read from the file to produce it (progress) */
  readonly sourceBytes: number;
  /** the file it is read from, and a sort key within it (byte position), for reading shard by shard */
  readonly file: string;
  readonly sourceOrder: number;
  /** 'file: tensor name', for messages */
  readonly source: string;
  /** The whole tensor as f32. */
  read(): Float32Array;
  /**
   * The elements in order, at most maxElems at a time, converted to `to`; yielded arrays are reused
   * between steps. Pass the same `scratch` to successive calls to reuse the chunk buffers across tensors.
   */
  chunks(to: ChunkTarget, maxElems?: number, scratch?: ChunkScratch): Iterable<{ data: Float32Array | Uint16Array; offset: number }>;
}

export function tensor(w: LoadedWeights, name: string): Float32Array {
  const t = w.tensors.get(name);
  if (!t) throw new Error(`${w.config.name}: missing tensor '${name}'`);
  return t;
}

/** Attention window of layer l (0 = full). */
export const layerWindow = (c: ModelConfig, l: number): number => c.layerWindows?.[l] ?? 0;
/** Whether layer l applies RoPE. */
export const layerUsesRope = (c: ModelConfig, l: number): boolean => c.pos === 'rope' && (c.layerRope?.[l] ?? true);
/** RoPE base and scaling of layer l: Gemma 3's local (sliding) layers use ropeLocalTheta unscaled. */
export function layerRopeParams(c: ModelConfig, l: number): { theta: number; scaling: RopeScaling | null } {
  if (c.ropeLocalTheta !== undefined && layerWindow(c, l) > 0) return { theta: c.ropeLocalTheta, scaling: null };
  return { theta: c.ropeTheta, scaling: c.ropeScaling ?? null };
}

/** A tensor when present (biases, q/k norms), else null. */
export function optionalTensor(w: LoadedWeights, name: string): Float32Array | null {
  return w.tensors.get(name) ?? null;
}
