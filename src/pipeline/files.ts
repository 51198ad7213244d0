// File-level jobs (Node): score a file into a resumable, atomically finished JSONL; filter a scored
// file into kept / dropped JSONL. Both write `file:line: reason` errors to an errors file and go
// on, unless strict.

import * as fs from 'node:fs';
import { applyFilter, type FilterOptions, type FilterResult, type ScoreFields } from '../filter/index.js';
import {
  AtomicWriter, ResumeError, ScoredOutput, checkpointMismatch, countJsonlRecords, inputIdentity, openInput,
  readCheckpoint, readLinesUpTo, ProgressReporter, type FileRecord, type InputPosition,
} from './node-io.js';
import type { ScoreProgress, Scorer, ScoreResult } from './scorer.js';
import { InputSet, type RecordRange } from '../formats/records.js';
import { SummaryBuilder, type Quantiles } from './stats.js';

export class StrictError extends Error {}

export interface ScoreFileOptions {
  scorer: Scorer;
  input: string;
  output: string;
  /** default `<output>.errors.jsonl` */
  errors?: string;
  resume?: boolean;
  strict?: boolean;
  /** Checkpoint after this many records (default 256) or this many ms (default 5000), whichever first. */
  checkpointEvery?: number;
  checkpointMs?: number;
  /** Hash of everything that changes scores; a resumed run must match it. */
  optionsHash: string;
  quiet?: boolean;
  /** Human-readable messages (stderr). */
  log: (line: string) => void;
  /** Error messages printed to the log before "... and N more" (default 10). */
  maxErrorLines?: number;
  /** Records the caller will score at most (--limit; for the progress total only). */
  limit?: number;
  /** The input's files (a folder, a glob, Parquet, compressed JSONL: src/formats/records.ts); default: `input` as one file. */
  inputs?: InputSet;
  /** Score only these record indices (a shard: src/shard). */
  range?: RecordRange;
}

export interface ScoreSummary {
  command: string;
  input: string;
  output: string;
  errors_file: string | null;
  counts: { records: number; scored: number; errors: number; truncated: number; resumed_from: number };
  scores: Record<string, Quantiles | null>;
  throughput: { elapsed_s: number; pairs: number; pairs_per_s: number; lm_tokens: number; tokens_per_s: number };
  padding_efficiency: number;
  batches: number;
  passes: number;
  templates: { forward: string; reverse: string };
  max_len: number;
  cosine_source: string | null;
  verify: Scorer['stats']['verify'];
  [k: string]: unknown;
}

function errorLine(r: { loc: string; error?: string; record?: unknown }): string {
  const line = Number(/:(\d+)$/.exec(r.loc)?.[1] ?? NaN);
  const o: Record<string, unknown> = { loc: r.loc, message: `${r.loc}: ${r.error}`, error: r.error };
  if (Number.isFinite(line)) o.line = line;
  if (r.record !== undefined) o.record = r.record;
  return JSON.stringify(o);
}

/** The output line of a scored record: the record's own fields, then `scores`. */
export function scoredLine(r: ScoreResult): string {
  return JSON.stringify({ ...(r.record as Record<string, unknown>), scores: r.scores });
}

export async function scoreFile(o: ScoreFileOptions): Promise<ScoreSummary> {
  const { scorer, log } = o;
  const errorsPath = o.errors ?? `${o.output}.errors.jsonl`;
  const inputs = o.inputs ?? InputSet.resolve(o.input);
  const identity = inputs.identity();
  let ckpt = o.resume ? readCheckpoint(o.output) : null;
  if (o.resume && !ckpt) log(`concord: --resume: no checkpoint for ${o.output}; starting from the beginning`);
  if (ckpt) {
    const why = checkpointMismatch(ckpt, identity, o.optionsHash);
    if (why) throw new ResumeError(`cannot resume ${o.output}: ${why}; run without --resume to start over`);
  } else if (!o.resume && fs.existsSync(`${o.output}.partial`)) {
    log(`concord: an interrupted run left ${o.output}.partial; starting over (pass --resume to continue it)`);
  }

  const summary = new SummaryBuilder();
  if (ckpt) {
    for (const l of readLinesUpTo(`${o.output}.partial`, ckpt.outBytes)) summary.add((JSON.parse(l) as { scores: Record<string, unknown> }).scores);
    for (const _ of readLinesUpTo(`${errorsPath}.partial`, ckpt.errBytes)) summary.addError();
    log(`concord: resuming ${o.output} after ${ckpt.position.units} records (line ${ckpt.position.line} of ${o.input})`);
  }
  const from: InputPosition = ckpt?.position ?? { units: 0, offset: 0, line: 0 };
  const src = await inputs.open(from, o.range);
  if (src.format === 'json-array' && !o.quiet) log(`concord: ${o.input} is a JSON array: read and parsed whole (JSONL is streamed line by line)`);
  const inFile = src.total ?? (await countJsonlRecords(o.input));
  const total = o.limit !== undefined ? Math.min(o.limit, inFile) : inFile;
  const writer = new ScoredOutput(o.output, errorsPath, identity, o.optionsHash, ckpt);
  ckpt = null;

  // End positions of records read but not yet written (bounded by the scheduler's window).
  const positions = new Map<number, { offset: number; line: number }>();
  let readIndex = from.units;
  async function* tracked(): AsyncGenerator<FileRecord> {
    for await (const r of src.records) {
      positions.set(readIndex++, { offset: r.endOffset, line: r.line });
      yield r;
    }
  }

  const every = o.checkpointEvery ?? 256;
  const everyMs = o.checkpointMs ?? 5000;
  const progress = new ProgressReporter({ total, offset: from.units, quiet: o.quiet });
  const maxErr = o.maxErrorLines ?? 10;
  let sinceCheckpoint = 0;
  let position = from;
  let printed = 0;
  const st = scorer.stats;
  const before = { pairs: st.pairs, tokens: st.lmTokens, ms: st.elapsedMs };
  let last = { done: 0, errors: 0, tokens: 0, elapsedMs: 0 };
  const onProgress = (p: ScoreProgress) => {
    last = { done: p.estimatedDone, errors: summary.errors, tokens: p.tokens, elapsedMs: p.elapsedMs };
    progress.update(last);
  };

  for await (const r of scorer.score(tracked(), { firstIndex: from.units, onProgress })) {
    if (r.error !== undefined) {
      summary.addError();
      if (o.strict) {
        writer.out.abort(true);
        writer.errors.abort(true);
        throw new StrictError(`${r.loc}: ${r.error} (--strict: stopping at the first bad record)`);
      }
      writer.errors.write(errorLine(r));
      if (printed < maxErr) log(`${r.loc}: ${r.error}`);
      else if (printed === maxErr) log(`... more errors in ${errorsPath}`);
      printed++;
    } else {
      summary.add(r.scores as unknown as Record<string, unknown>);
      writer.out.write(scoredLine(r));
    }
    const p = positions.get(r.index);
    positions.delete(r.index);
    position = { units: r.index + 1, offset: p?.offset ?? 0, line: p?.line ?? 0 };
    if (++sinceCheckpoint >= every || writer.msSinceCheckpoint() >= everyMs) {
      writer.checkpoint(position);
      sinceCheckpoint = 0;
    }
  }
  writer.checkpoint(position);
  writer.finish();
  progress.end({ ...last, done: st.pairs - before.pairs, errors: summary.errors });

  const elapsed = (st.elapsedMs - before.ms) / 1000;
  const pairs = st.pairs - before.pairs;
  const tokens = st.lmTokens - before.tokens;
  const sch = st.scheduler;
  return {
    command: 'score',
    input: o.input,
    output: o.output,
    errors_file: summary.errors > 0 ? errorsPath : null,
    counts: { records: summary.scored + summary.errors, scored: summary.scored, errors: summary.errors, truncated: summary.truncated, resumed_from: from.units },
    scores: summary.quantiles(),
    throughput: {
      elapsed_s: Number(elapsed.toFixed(3)), pairs, pairs_per_s: Number((pairs / Math.max(elapsed, 1e-9)).toFixed(3)),
      lm_tokens: tokens, tokens_per_s: Math.round(tokens / Math.max(elapsed, 1e-9)),
    },
    padding_efficiency: Number((sch?.paddingEfficiency ?? 1).toFixed(4)),
    batches: sch?.batches ?? 0,
    passes: scorer.passes,
    templates: scorer.templates,
    max_len: scorer.maxLen,
    cosine_source: scorer.cosineSource,
    verify: st.verify,
  };
}

// ---- filter ------------------------------------------------------------------------------------

export interface FilterFileOptions {
  input: string;
  output: string;
  dropOut?: string;
  /** default `<output>.errors.jsonl` */
  errors?: string;
  filter: FilterOptions;
  strict?: boolean;
  log: (line: string) => void;
  maxErrorLines?: number;
}

export interface FilterSummary {
  command: string;
  input: string;
  output: string;
  drop_out: string | null;
  errors_file: string | null;
  counts: { records: number; kept: number; dropped: number; errors: number };
  applied: FilterResult['applied'];
  [k: string]: unknown;
}

function scoresOf(r: FileRecord): { scores?: ScoreFields; error?: string } {
  if (r.parseError) return { error: r.parseError };
  const rec = r.record;
  if (!rec || typeof rec !== 'object' || Array.isArray(rec)) return { error: 'record must be a JSON object' };
  const s = (rec as { scores?: unknown }).scores;
  if (!s || typeof s !== 'object') return { error: "no 'scores' object (run `concord score` first)" };
  return { scores: s as ScoreFields };
}

export async function filterFile(o: FilterFileOptions): Promise<FilterSummary> {
  const errorsPath = o.errors ?? `${o.output}.errors.jsonl`;
  // Pass 1: the scores only.
  const scores: ScoreFields[] = [];
  const errs: string[] = [];
  const maxErr = o.maxErrorLines ?? 10;
  for await (const r of openInput(o.input, o.input).records) {
    const s = scoresOf(r);
    if (s.scores) scores.push(s.scores);
    else {
      if (o.strict) throw new StrictError(`${r.loc}: ${s.error} (--strict: stopping at the first bad record)`);
      if (errs.length < maxErr) o.log(`${r.loc}: ${s.error}`);
      errs.push(errorLine({ loc: r.loc, error: s.error, record: r.record }));
    }
  }
  const decision = applyFilter(scores, o.filter);
  // Pass 2: write every valid record to kept or dropped, with `keep` and `filter_score`.
  const kept = new AtomicWriter(o.output);
  const dropped = o.dropOut ? new AtomicWriter(o.dropOut) : null;
  try {
    let k = 0;
    for await (const r of openInput(o.input, o.input).records) {
      if (!scoresOf(r).scores) continue;
      const keep = decision.keep[k];
      const fs_ = decision.score[k];
      k++;
      const line = JSON.stringify({ ...(r.record as object), keep, filter_score: Number.isFinite(fs_) ? fs_ : null });
      if (keep) kept.write(line);
      else dropped?.write(line);
    }
    kept.commit();
    dropped?.commit();
  } catch (e) {
    kept.abort();
    dropped?.abort();
    throw e;
  }
  if (errs.length > 0) {
    const w = new AtomicWriter(errorsPath);
    for (const l of errs) w.write(l);
    w.commit();
  } else fs.rmSync(errorsPath, { force: true });
  return {
    command: 'filter', input: o.input, output: o.output, drop_out: o.dropOut ?? null, errors_file: errs.length ? errorsPath : null,
    counts: { records: scores.length + errs.length, kept: decision.kept, dropped: decision.dropped, errors: errs.length },
    applied: decision.applied,
  };
}
