// The Node file jobs: score, filter and run over any input src/io reads, with checkpoints
// (resume), output locks, path preflight and progress. The scorer they drive (src/pipeline) never
// touches files; select and dedup (src/select, src/dedup) read and write through src/io too.

export { scoreFile, scoreOptionsHash, type ScoreFileOptions, type ScoreSummary } from './score.js';
export { filterFile, requiredScores, scoresOf, type FilterFileOptions, type FilterSummary } from './filter.js';
export { runFile, removeDoneMarker, scoredPathFor, type RunFileOptions } from './run.js';
export { BadRecords, StrictError, TooManyErrors, errorLine, errorsPathFor } from './bad-records.js';
export { PathError, checkInputFile, preflightPaths, type PreflightOptions } from './preflight.js';
export { LockError, lockOutputs, lockHolderAlive, lockPathFor } from './locks.js';
export { ProgressReporter, formatDuration, type ProgressState } from './progress.js';
export {
  PrefixHasher, ScoredOutput, ResumeError, crashPoint, hashOptions, progressPathFor, aheadPathFor, readCheckpoint, type Checkpoint, type InputIdentity,
} from './checkpoint.js';
