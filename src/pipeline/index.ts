// The library entry point.
//
//   import { createScorer } from 'concord/pipeline';
//   const scorer = await createScorer({ model: 'default', device: 'auto', onProgress: (p) => ... });
//   for await (const r of scorer.score(pairs)) console.log(r.index, r.scores ?? r.error);
//
// `pairs` is any sync or async iterable of records (Alpaca objects, {messages}, {conversations});
// results come back in input order, one per record, with `scores` or a one-line `error`. Give
// `model` as a loaded LanguageModel (the browser demo does) or as a name/path, loaded with
// src/models' loadModel on `device` (Node). Call score() once at a time per scorer.
//
// Files, checkpoints and progress bars are in ./node-io.ts and ./files.ts (Node only).

import type { DeviceChoice } from '../gpu/device.js';
import type { LanguageModel } from '../models/lm.js';
import { createScorerFromModels, type Scorer, type ScorerOptions } from './scorer.js';

export { applyFilter, RULES, type FilterOptions, type FilterResult, type Rule } from '../filter/index.js';
export { DEFAULT_FIELDS, RecordError, SourcedRecord, joinPrompt, recordToPair, type FieldMap, type PairText } from './input.js';
export { planPasses, truncatePair, type PassPlan } from './plan.js';
export {
  cosineSimilarity, createScorerFromModels, type CosineMode, type PairScores, type ScoreCallOptions, type ScoreProgress, type ScoreResult, type Scorer,
  type ScorerOptions, type ScorerStats, type TextEmbedder, type VerifyOptions, type VerifyReport,
} from './scorer.js';
export { SummaryBuilder, quantiles, type Quantiles } from './stats.js';
export { CHAT_FORMATS, DEFAULT_TEMPLATES, defaultTemplates, parseTemplate, type ChatFormat } from './templates.js';

export interface CreateScorerOptions extends Omit<ScorerOptions, 'model' | 'reverseModel' | 'verify'> {
  /** A loaded model, or a name/path for loadModel ('default' = stories15M). */
  model: LanguageModel | string;
  reverseModel?: LanguageModel | string | null;
  /** For models given by name (default 'auto'). */
  device?: DeviceChoice;
  /** Re-score this many sampled batches on the CPU twin (models given by name are loaded again on 'cpu'). */
  verify?: ScorerOptions['verify'] | { batches: number; tol?: number };
}

type ModelsModule = typeof import('../models/index.js');

async function loader(): Promise<ModelsModule> {
  // A variable specifier keeps browser bundlers from pulling the Node-only loader in.
  const spec = '../models/index.js';
  return (await import(/* @vite-ignore */ spec)) as ModelsModule;
}

export async function createScorer(o: CreateScorerOptions): Promise<Scorer> {
  const load = async (m: LanguageModel | string, device: DeviceChoice, f16?: boolean): Promise<LanguageModel> =>
    typeof m === 'string' ? (await loader()).loadModel(m, { device, f16 }) : m;
  const device = o.device ?? 'auto';
  const model = await load(o.model, device);
  const reverseModel = o.reverseModel ? await load(o.reverseModel, device) : null;
  let verify: ScorerOptions['verify'] = null;
  if (o.verify && o.verify.batches > 0) {
    if ('model' in o.verify) verify = o.verify;
    else {
      if (typeof o.model !== 'string') throw new Error('createScorer: verify with a loaded model needs verify.model (its CPU twin)');
      verify = {
        ...o.verify,
        // f16 GPU weights are checked against a twin with the same f16-rounded weights.
        model: await load(o.model, 'cpu', (model as { f16?: boolean }).f16),
        reverseModel: typeof o.reverseModel === 'string' ? await load(o.reverseModel, 'cpu', (model as { f16?: boolean }).f16) : undefined,
      };
    }
  }
  return createScorerFromModels({ ...o, model, reverseModel, verify });
}
