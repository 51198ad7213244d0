// `concord synthesize` as a library (docs/synthesize.md): backtranslation with the mutual filter.
export { synthesizeFile, type SynthesizeFileOptions, type SynthesizeSummary } from './job.js';
export { rankCandidates, type CandidateRanking } from './choose.js';
export { alphaAt, describeAlpha, parseAlpha, type AlphaSchedule } from './alpha.js';
export { otherFields, shapeRecord, RECORD_SHAPES, type RecordShape, type ShapedPair } from './shapes.js';
