// concord's public entry (Node): `import { createScorer, loadModel, … } from 'concord-align'`.
//
//   import { createScorer, scoreFile, filterFile, applyFilter } from 'concord-align';
//   const scorer = await createScorer({ model: 'default', device: 'auto' });
//   for await (const r of scorer.score([{ instruction: 'Name a colour.', output: 'Blue.' }])) console.log(r.scores ?? r.error);
//   await scoreFile({ scorer, input: 'in.jsonl', output: 'scored.jsonl', log: console.error });
//
// Everything here is documented in docs/library.md. The browser demo builds from
// the same modules (web/engine.ts): createScorer with a model from modelFromWeights, no files.

// Scoring pairs
export { createScorer, type ConfiguredScorer, type CreateScorerOptions } from './pipeline/create.js';
export {
  browserScorer, composeScorer, createScorerFromModels, cosineSimilarity, recordToPair, joinPrompt, DEFAULT_FIELDS, RecordError, SourcedRecord,
  planPasses, truncatePair, sequenceBuilder, type SequenceBuilder, defaultTemplates, parseTemplate, DEFAULT_TEMPLATES, SummaryBuilder, quantiles,
  ChatTemplateError, chatFormatFromTemplate, resolveChatTemplate, type ChatTemplateOptions, type ChatTemplateSource,
  type ScorerLoaders, type ModelLoadFn, type EncoderLoadFn, type CosineMode, type PairScores, type ScoreProgress, type ScoreResult, type Scorer,
  type ScorerOptions, type ScorerStats, type TextEmbedder, type VerifyOptions, type VerifyReport, type FieldMap, type PairText,
  type PassPlan, type ChatFormat, type Quantiles,
} from './pipeline/index.js';
// File jobs (resumable, atomic outputs, file:line errors)
export {
  scoreFile, filterFile, runFile, errorsPathFor, StrictError,
  type ScoreFileOptions, type ScoreSummary, type FilterFileOptions, type FilterSummary, type RunFileOptions,
} from './jobs/index.js';
// Record I/O: every input kind in, JSONL or Parquet out (docs/data.md)
export { openRecords, openWriter, RecordInput, type RecordWriter, type OutFormat, type RecordFormat } from './io/index.js';
export { dedupFile, type DedupFileOptions, type DedupOn, type DedupSummary } from './dedup/index.js';
// Generation (docs/generate.md): the decoding contract, sampling, the continuous-batching engine, the file job
export { GREEDY, type Decoder, type DecoderOptions, type SamplingParams, type StepInput } from './generate/types.js';
export { uniformAt } from './generate/rng.js';
export { sampleRow, sampleCpu, sampleMask, type RowSampling } from './generate/sampling.js';
export { generate, generateStream, type GenerateRequest, type GenerateResult, type FinishReason, type EngineOptions, type EngineStats } from './generate/engine.js';
export { promptBuilder, type Direction, type PromptBuilder, type PromptOptions } from './generate/prompts.js';
export { generateFile, type GenerateFileOptions, type GenerateSummary } from './generate/job.js';
// Synthesis (docs/synthesize.md): backtranslation with the mutual filter, seed mixing
export { synthesizeFile, rankCandidates, parseAlpha, alphaAt, describeAlpha, shapeRecord, RECORD_SHAPES, type SynthesizeFileOptions, type SynthesizeSummary, type AlphaSchedule, type RecordShape, type CandidateRanking } from './synthesize/index.js';
// Selection rules
export { applyFilter, mainSignals, percentileRanks, RULES, FilterError, type FilterOptions, type FilterResult, type Rule, type ScoreFields } from './filter/index.js';
// Models and the sentence encoder
export { loadModel, modelFromWeights, sharedRuntime, type LoadModelOptions, type LoadedLanguageModel, type LanguageModel, type SequenceRequest, type SequenceScores } from './models/index.js';
export { loadWeights, resolveModel, resolveModelSource, DEFAULT_MODEL, type LoadedModel } from './models/load.js';
export { ensureHubModel, type HubModel, type HubModelOptions } from './hub/download.js';
export { HubError } from './hub/names.js';
export type { ModelConfig, LoadedWeights, TensorRef } from './models/types.js';
// GGUF files and ggml tensor types (docs/gguf.md)
export { readGguf, tensorF32, type GgufFile, type GgufTensorInfo } from './formats/gguf.js';
export { ggufExport, QUANT_TYPES, type QuantType } from './formats/gguf-export.js';
export { writeGguf } from './formats/gguf-write.js';
export { dequantize } from './quant/dequant.js';
export type { LoadProgress } from './models/weight-upload.js';
export type { TextTokenizer } from './tokenizer/types.js';
export { loadEmbedder, createEmbedder, type Embedder, type EmbedderOptions, type EmbedStats } from './encoder/index.js';
// Devices and kernels
export { requestGpu, chooseBackend, autoDecision, type DeviceChoice, type GpuHandle, type BackendDecision } from './gpu/device.js';
export { GpuRuntime } from './gpu/runtime.js';
export { kernelVariant, KERNEL_VARIANTS, type VariantOp } from './gpu/variants.js';
// Settings, errors, exit codes
export { settings, SETTING_VARIABLES, packageRoot, modelsDir, type Settings } from './env.js';
export { EXIT, ConcordError, UsageError, InputError, GpuUnavailableError, ResumeError, ModelFileError } from './errors.js';
