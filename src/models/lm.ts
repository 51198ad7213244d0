// The language-model API the scorer uses. One model, two interchangeable backends (WGSL on WebGPU,
// or the TypeScript CPU twin), both returning per-token log-probs of token sequences.

import type { GpuRuntime } from '../gpu/runtime.js';
import type { TextTokenizer } from '../tokenizer/types.js';
import type { Decoder, DecoderOptions } from '../generate/types.js';
import type { ModelConfig } from './types.js';

/** One token sequence to score: log p(ids[t] | ids[<t]) for every t in [1, ids.length). */
export interface SequenceRequest {
  ids: number[];
  /**
   * With `{ entropy: true }`: the entropies the caller reads, as indices [a, b) of
   * SequenceScores.entropy (the positions of logprobs[a .. b − 1]). A backend may leave the others
   * NaN: onnxruntime computes the entropy only at these rows (its cost is a pass over the V
   * logits of every row it computes), the fused GPU head and the twin carry it everywhere anyway.
   * Absent: every position.
   */
  entropySpan?: [number, number];
}

export interface SequenceScores {
  /** logprobs[t - 1] = log p(ids[t] | ids[<t]), t = 1 .. ids.length - 1 */
  logprobs: Float32Array;
  /**
   * entropy[t - 1] = H(p(· | ids[<t])) = −Σ_v p log p in nats, the entropy of the next-token
   * distribution the log-prob was taken from (soft-capped where the model caps its logits);
   * present only when asked for with `{ entropy: true }`.
   */
  entropy?: Float32Array;
}

export interface ScoreOptions {
  /** Also return each position's next-token entropy (SequenceScores.entropy). Default false. */
  entropy?: boolean;
}

export interface LanguageModel {
  config: ModelConfig;
  /**
   * The model's tokenizer (src/tokenizer/types.ts). Encode context and target separately with
   * `addSpecial: false` and join the ids; put BOS in front yourself (tokenizer.bosId).
   */
  tokenizer: TextTokenizer;
  backend: 'webgpu' | 'cpu';
  /** e.g. 'webgpu: SwiftShader driver 5.0.0' or 'cpu (JavaScript)' */
  deviceName: string;
  /** Longest sequence the model takes (config.maxSeqLen). */
  maxLen: number;
  /** Why this device was chosen (e.g. '--device auto: no hardware GPU, …'), where the loader says. */
  deviceReason?: string;
  /** The GPU runtime of a 'webgpu' model (share it with a reverse model or the encoder); null or absent on the CPU. */
  runtime?: GpuRuntime | null;
  /** True when the weights are stored (GPU) or rounded (CPU) as f16; absent: f32. */
  f16?: boolean;
  /** Bytes of weights held on the device (a 'webgpu' model), where the backend counts them. */
  weightBytes?: number;
  /**
   * Score a batch of sequences; the backend pads them to a common length internally. A sequence's
   * scores never depend on the others in the batch (tested: batch invariance).
   */
  scoreBatch(seqs: SequenceRequest[], opts?: ScoreOptions): Promise<SequenceScores[]>;
  /**
   * Mean over positions of the final (normed) hidden states, one vector per sequence: the stand-in
   * `cosine` embedding when no sentence encoder is configured (labelled as such in outputs).
   */
  meanHidden(seqs: SequenceRequest[]): Promise<Float32Array[]>;
  /**
   * log p(candidates[j] | prompt) at the last position of each prompt, out[i][j]: one batched
   * prefill of the prompts and the fused head's candidate variant (kernels/logprob.ts
   * candidateLogprobGpu on WebGPU, candidateLogprobCpu on the twin) — no logits of size V written
   * or read back. Every prompt non-empty and within maxLen, every candidate a vocabulary id, at
   * most MAX_CANDIDATES of them; the caller keeps a call within tokenBudget (prompts × longest).
   * src/signals/candidates.ts is the entry point; absent here (onnxruntime), it takes the decoder.
   */
  candidateLogprobs?(prompts: readonly (readonly number[])[], candidates: readonly number[]): Promise<Float64Array[]>;
  /** Largest batch (sequences × padded length, in tokens) one scoreBatch call should get. */
  tokenBudget: number;
  /**
   * A decoder with its own KV caches (src/generate/types.ts), on this model's backend and weights.
   * Absent where the backend cannot decode yet.
   */
  createDecoder?(opts: DecoderOptions): Promise<Decoder>;
  dispose(): void;
}
