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
  /**
   * Append each input's ids to its slot's cache and return the log-probs of the given tokens (not
   * sampled): out[i][k] = log p(ids[from + k] | the slot's cache before this call, ids[< from + k])
   * for from + k < ids.length, after any final soft-cap (scoreBatch's numbers, continued from a
   * cache). from = ids.length scores nothing (a prefill). The KV-reuse path of in-context influence
   * (src/signals/icl.ts): prefill a prefix once, then score continuations and truncate() back.
   */
  scoreTokens(inputs: ScoreInput[]): Promise<Float32Array[]>;
  /** Shorten a slot's cache to its first `len` tokens (0 ≤ len ≤ its length): the next input continues at position len. */
  truncate(slot: number, len: number): void;
  dispose(): void;
}

/** One slot's tokens for Decoder.scoreTokens. */
export interface ScoreInput {
  slot: number;
  ids: number[];
  /** First index of ids that is scored (default 1; at least 1: ids[0] has no row in this call to be predicted from). */
  from?: number;
}

/** The checked first scored index of a ScoreInput (shared by the decoders). */
export function scoreFrom(inp: ScoreInput): number {
  const from = inp.from ?? 1;
  if (!Number.isInteger(from) || from < 1 || from > inp.ids.length) throw new Error(`decoder: slot ${inp.slot}: from ${inp.from} must be an integer in [1, ${inp.ids.length}]`);
  return from;
}

export interface DecoderOptions {
  slots: number;
  maxLen: number;
}
