// The onnxruntime CPU backend behind the LanguageModel interface (modelFromWeights' CPU branch).

import type { LanguageModel } from '../lm.js';
import type { LoadedWeights } from '../types.js';
import { OrtLm } from './backend.js';
import type { LmQuantOptions } from './graph.js';

export interface OrtModelOptions {
  reason?: string;
  tokenBudget?: number;
  threads?: number;
  /** The weights were rounded through f16 (named in deviceName). */
  f16: boolean;
  /** GGUF Q4_0/Q8_0 linears: MatMulNBits (default) or f32 Gemm; accuracy_level. */
  quant?: LmQuantOptions;
}

type OrtModelPart = Pick<LanguageModel, 'backend' | 'deviceName' | 'tokenBudget' | 'scoreBatch' | 'meanHidden' | 'dispose'> & Required<Pick<LanguageModel, 'createDecoder'>> & {
  deviceReason: string;
  runtime: null;
  f16: boolean;
};

/**
 * Default batch size in tokens (B × padded L). The head's logits and log-softmax are two
 * [tokens, V] f32 buffers: kept at ≤ 128 MiB each, between 256 and 1024 tokens. Larger batches
 * were slower per token on stories15M (2 cores: 512–1024 tokens fastest, 2048 ~25% slower, as the
 * [tokens, V] buffers leave the caches) and cost peak RSS (~1.35 GiB at 2048 against ~0.85 at 1024).
 */
export function ortTokenBudget(vocabSize: number): number {
  return Math.max(256, Math.min(1024, Math.floor(2 ** 25 / vocabSize)));
}

export async function ortModel(w: LoadedWeights, opts: OrtModelOptions): Promise<OrtModelPart> {
  const lm = await OrtLm.create(w, { threads: opts.threads, ...opts.quant });
  return {
    backend: 'cpu',
    deviceName: `cpu: onnxruntime ${lm.version} (${lm.threads} threads${opts.f16 ? ', f16-rounded weights' : ''}${lm.nbitsLinears ? `, ${lm.nbitsLinears} linears on MatMulNBits` : ''})`,
    deviceReason: opts.reason ?? 'cpu',
    runtime: null,
    f16: opts.f16,
    tokenBudget: opts.tokenBudget ?? ortTokenBudget(w.config.vocabSize),
    scoreBatch: (seqs, o) => lm.scoreBatch(seqs, o),
    meanHidden: (seqs) => lm.meanHidden(seqs),
    createDecoder: (o) => lm.createDecoder(o),
    dispose: () => lm.dispose(),
  };
}
