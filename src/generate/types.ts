// The decoding contract every backend implements (WebGPU, onnxruntime, the TypeScript twin). A
// Decoder owns `slots` KV caches of `maxLen` positions; the engine above it (continuous batching,
// stop rules) feeds each active slot the tokens to append — the prompt after reset(), then the
// token it sampled last — and gets back one sampled id per slot. Only those ids cross to the host.

/** Sampling settings of one sequence (HF warper order: temperature → top-k → top-p → min-p). */
export interface SamplingParams {
  /** 0 = greedy: argmax, the lowest id on ties. */
  temperature: number;
  /** Keep the k largest (ties with the k-th kept); 0 = off. */
  topK: number;
  /** Keep the smallest top set with mass ≥ p; 1 = off. */
  topP: number;
  /** Keep tokens with p ≥ minP · p_max; 0 = off. */
  minP: number;
  /** uint32; with `step`, the counter of the RNG (src/generate/rng.ts). */
  seed: number;
}

export const GREEDY: SamplingParams = { temperature: 0, topK: 0, topP: 1, minP: 0, seed: 0 };

/** One slot's work in a decode step. */
export interface StepInput {
  slot: number;
  /** Tokens appended to the slot's cache this step: the prompt after reset(), then one token. */
  ids: number[];
  sampling: SamplingParams;
  /** Index of the token being sampled in its sequence (0 = first generated token): the RNG counter. */
  step: number;
}

export interface Decoder {
  readonly slots: number;
  /** Capacity of each slot's cache, prompt + generated tokens. */
  readonly maxLen: number;
  /** Empty a slot: its next input starts at position 0. */
  reset(slot: number): void;
  /** Append each input's ids to its slot's cache, run the model, sample: one id per input, in order. */
  step(inputs: StepInput[]): Promise<Int32Array>;
  /**
   * As step(), but return the next-token log-probs (after any final soft-cap, before temperature)
   * of each input instead of sampling: the checks' view (writes full vocab rows; not for speed).
   */
  stepLogprobs(inputs: StepInput[]): Promise<Float32Array[]>;
  dispose(): void;
}

export interface DecoderOptions {
  slots: number;
  maxLen: number;
}
