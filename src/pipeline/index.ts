// The browser-safe scorer: pair → pass plan → sequences (plan.ts), templates and chat templates,
// bounds, stats, the scorer itself (scorer.ts) and its composition from loaded parts (compose.ts).
// Nothing this module imports reaches a Node built-in (tests/import-cycles.test.ts checks).
//
//   import { browserScorer } from '…/src/pipeline/index.js';
//   const scorer = await browserScorer({ model: lm, embedModel: encoder, cosine: 'embed' });
//
// In Node, createScorer (./create.ts, the composition root; 'concord-align' exports it) also loads
// models and the encoder by name or path. The Node file jobs (files, checkpoints, progress) are in
// src/jobs/, record I/O in src/io/.

import { composeScorer, type ConfiguredScorer, type CreateScorerOptions } from './compose.js';

export { applyFilter, RULES, type FilterOptions, type FilterResult, type Rule } from '../filter/index.js';
export { DEFAULT_FIELDS, RecordError, SourcedRecord, joinPrompt, recordToPair, type FieldMap, type PairText } from './input.js';
export { planPasses, truncatePair, type PassPlan } from './plan.js';
export { sequenceBuilder, type BuiltPair, type SequenceBuilder, type SequenceBuilderOptions, type SequenceRead } from './sequences.js';
export {
  cosineSimilarity, createScorerFromModels, type CosineMode, type PairScores, type ScoreCallOptions, type ScoreProgress, type ScoreResult, type Scorer,
  type ScorerOptions, type ScorerStats, type TextEmbedder, type VerifyOptions, type VerifyReport,
} from './scorer.js';
export { SummaryBuilder, quantiles, type Quantiles } from './stats.js';
export { DEFAULT_TEMPLATES, defaultTemplates, parseTemplate } from './templates.js';
export {
  ChatTemplateError, chatFormatFromTemplate, resolveChatTemplate, type ChatFormat, type ChatTemplateOptions, type ChatTemplateSource,
} from './chat-template.js';

export {
  composeScorer, type ConfiguredScorer, type CreateScorerOptions, type EncoderLoadFn, type LoadedEncoder, type ModelLoadFn, type ScorerLoaders,
} from './compose.js';

/**
 * A scorer from loaded parts (the browser's entry): `model`, `reverseModel` and `embedModel` given
 * as objects. A part given by name is an error here; Node's createScorer (./create.ts) loads it.
 */
export function browserScorer(o: CreateScorerOptions): Promise<ConfiguredScorer> {
  return composeScorer(o, {});
}
