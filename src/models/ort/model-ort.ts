// The onnxruntime CPU backend behind the LanguageModel interface (modelFromWeights' CPU branch).

import type { LanguageModel } from '../lm.js';
import type { LoadedWeights } from '../types.js';
import { OrtLm } from './backend.js';

export interface OrtModelOptions {
  reason?: string;
  tokenBudget?: number;
  threads?: number;
  /** The weights were rounded through f16 (named in deviceName). */
  f16: boolean;
}

type OrtModelPart = Pick<LanguageModel, 'backend' | 'deviceName' | 'tokenBudget' | 'scoreBatch' | 'meanHidden' | 'dispose'> & {
  deviceReason: string;
  runtime: null;
  f16: boolean;
};

/**
 * Default batch size in tokens (B × padded L): the head's logits and log-softmax are two [tokens, V]
 * f32 buffers, kept at ≤ 256 MiB each; between 512 and 2048 tokens.
 */
export function ortTokenBudget(vocabSize: number): number {
  return Math.max(512, Math.min(2048, Math.floor(2 ** 26 / vocabSize)));
}

export async function ortModel(w: LoadedWeights, opts: OrtModelOptions): Promise<OrtModelPart> {
  const lm = await OrtLm.create(w, { threads: opts.threads });
  return {
    backend: 'cpu',
    deviceName: `cpu: onnxruntime ${lm.version} (${lm.threads} threads${opts.f16 ? ', f16-rounded weights' : ''})`,
    deviceReason: opts.reason ?? 'cpu',
    runtime: null,
    f16: opts.f16,
    tokenBudget: opts.tokenBudget ?? ortTokenBudget(w.config.vocabSize),
    scoreBatch: (seqs) => lm.scoreBatch(seqs),
    meanHidden: (seqs) => lm.meanHidden(seqs),
    dispose: () => lm.dispose(),
  };
}
