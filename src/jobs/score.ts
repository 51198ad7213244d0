// The score job (Node): score an input (a file, a folder, a glob; src/io) into a resumable,
// atomically finished JSONL — records in input order, bad ones as `file:line: reason` lines in the
// errors file — checkpointed as it goes (src/jobs/checkpoint.ts) so that --resume continues.

import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { InputError } from '../errors.js';
import { RecordInput, openRecords, type RecordRange } from '../io/inputs.js';
import { START, type FileRecord, type InputPosition } from '../io/records.js';
import type { ScoreProgress, Scorer, ScoreResult } from '../pipeline/scorer.js';
import { SummaryBuilder, type Quantiles } from '../pipeline/stats.js';
import { BadRecords, StrictError, errorLine, errorsPathFor } from './bad-records.js';
import {
  PrefixHasher, ResumeError, ScoredOutput, aheadPathFor, checkResumeFiles, checkpointMismatch, OPTIONS_DIFFER, completeFinishedRun, hashOptions,
  progressPathFor, readAhead, readCheckpoint, readLinesUpTo, type Checkpoint, type InputIdentity,
} from './checkpoint.js';
import { ProgressReporter } from './progress.js';

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
  /**
   * Hash of everything that changes scores; a resumed run must match it. Default: the hash of
   * the scorer's identity (createScorer) and `limit`.
   */
  optionsHash?: string;
  quiet?: boolean;
  /** Human-readable messages (stderr). */
  log: (line: string) => void;
  /** Error messages printed to the log before "... and N more" (default 10). */
  maxErrorLines?: number;
  /** Score at most the first `limit` records (--limit). */
  limit?: number;
  /**
   * Keep `<output>.progress.json`, marked complete, after finishing (`run` does, so that a
   * `run --resume` after a kill during its filter step does not score again; it removes the marker
   * with removeDoneMarker when done).
   */
  keepDoneMarker?: boolean;
  /** The input's files (a folder, a glob, Parquet, compressed JSONL: src/io); default: `input` as one file. */
  inputs?: RecordInput;
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
  /** Records whose `id` had been seen before in the input (warned on stderr). */
  duplicate_ids: number;
  /** Records whose own `scores` field the output's `scores` replaced (warned on stderr). */
  replaced_scores?: number;
  [k: string]: unknown;
}

/** The output line of a scored record: the record's own fields, then `scores`. */
export function scoredLine(r: ScoreResult): string {
  return JSON.stringify({ ...(r.record as Record<string, unknown>), scores: r.scores });
}

/** Warns about records whose `id` repeats an earlier one (the records are still scored). */
class DuplicateIds {
  private readonly seen = new Map<string, number>();
  count = 0;
  constructor(private readonly log: (l: string) => void, private readonly max: number) {}

  private key(rec: unknown): string | null {
    if (!rec || typeof rec !== 'object' || Array.isArray(rec)) return null;
    const id = (rec as { id?: unknown }).id;
    return typeof id === 'string' ? `s${id}` : typeof id === 'number' ? `n${id}` : null;
  }

  /** An id seen before the resume point (line 0: unknown). */
  remember(rec: unknown, line = 0): void {
    const k = this.key(rec);
    if (k !== null && !this.seen.has(k)) this.seen.set(k, line);
  }

  check(r: FileRecord): void {
    const k = this.key(r.record);
    if (k === null) return;
    const first = this.seen.get(k);
    if (first === undefined) { this.seen.set(k, r.line); return; }
    if (this.count < this.max) {
      this.log(`${r.loc}: warning: duplicate id ${JSON.stringify((r.record as { id: unknown }).id)} (${first > 0 ? `first at line ${first}` : 'seen earlier in the input'}); scored anyway`);
    } else if (this.count === this.max) this.log('... more duplicate ids (counted in the summary)');
    this.count++;
  }
}

function parseOutputLine(l: string, file: string, restart: string): Record<string, unknown> {
  try {
    return JSON.parse(l) as Record<string, unknown>;
  } catch {
    throw new ResumeError(`cannot resume: ${file} has a malformed line before its checkpoint; ${restart}`);
  }
}

/** What a checkpoint records of the input (PrefixHasher: the consumed prefix of one plain file). */
interface InputHasher { advance(to: number): void; identity(): InputIdentity }

/** The identity of an input read through RecordInput (several files, compressed, Parquet, a range): all its bytes (the files' SHA-256 fingerprints, which shard manifests use too). */
class WholeInputHasher implements InputHasher {
  private id: InputIdentity;
  constructor(inputs: RecordInput) {
    const prints = inputs.fingerprints();
    const sha256 = createHash('sha256').update(JSON.stringify(prints.map((p, k) => [inputs.files[k].name, p.sha256]))).digest('hex');
    this.id = { path: path.resolve(inputs.spec), hashedBytes: prints.reduce((n, p) => n + p.size, 0), sha256 };
  }
  advance(): void { /* the whole input is hashed already */ }
  identity(): InputIdentity { return this.id; }
}


/** The hash a checkpoint (and a shard's manifest) records: the scorer's identity (createScorer) and --limit. */
export function scoreOptionsHash(scorer: Scorer, limit?: number): string {
  const identity = (scorer as { identity?: Record<string, unknown> }).identity;
  if (identity === undefined) throw new Error('scoreFile: give optionsHash, or a scorer from createScorer');
  return hashOptions({ ...identity, limit: limit ?? null });
}

/** The checkpoint to resume from (checked against this input and these options), or null for a fresh start. */
function resumePoint(o: ScoreFileOptions & { optionsHash: string }, inputs: RecordInput, single: boolean): { ckpt: Checkpoint | null; hasher: InputHasher } {
  let hasher: InputHasher = single ? new PrefixHasher(inputs.files[0].path) : new WholeInputHasher(inputs);
  const ckpt = o.resume ? readCheckpoint(o.output) : null;
  if (o.resume && !ckpt) o.log(`concord: --resume: no checkpoint for ${o.output}; starting from the beginning`);
  if (ckpt) {
    const m: { why: string } | { hasher: InputHasher } = single
      ? checkpointMismatch(ckpt, inputs.files[0].path, o.optionsHash)
      : ckpt.optionsHash !== o.optionsHash ? { why: OPTIONS_DIFFER }
        : ckpt.input.sha256 !== hasher.identity().sha256 ? { why: `the input changed since the checkpoint (the SHA-256 of its ${inputs.files.length} file(s) differs)` } : { hasher };
    if ('why' in m) throw new ResumeError(`cannot resume ${o.output}: ${m.why}; run without --resume to start over`);
    hasher = m.hasher;
  } else if (!o.resume && fs.existsSync(`${o.output}.partial`)) {
    o.log(`concord: an interrupted run left ${o.output}.partial; starting over (pass --resume to continue it)`);
  }
  return { ckpt, hasher };
}

/** One run of scoreFile: the reading, the in-order writing and the checkpoints. */
class ScoreJob {
  readonly summary = new SummaryBuilder();
  readonly errorsPath: string;
  readonly restart: string;
  readonly dups: DuplicateIds;
  bad!: BadRecords;
  /** Results of records past the checkpoint's prefix that the interrupted run had finished. */
  resumed = new Map<number, string>();
  from: InputPosition = START;
  recovered = 0;
  writer!: ScoredOutput;
  // End positions of records read but not yet written (bounded by the scheduler's window), by input
  // index; the scorer's indices count only the records fed to it (resumed ones are not).
  readonly positions = new Map<number, { offset: number; line: number }>();
  readonly inputIndexOf = new Map<number, number>();
  readIndex = 0;
  fedIndex = 0;
  parseErrors = 0;
  firstParseError = '';
  sinceCheckpoint = 0;
  position: InputPosition = START;
  /** Next input index to write in order. */
  nextOut = 0;
  // Finished out of order in this run and not yet written in order: input index → output line;
  // `journaled`: those of them already in .ahead (with the furthest input offset they reach).
  readonly early = new Map<number, string>();
  readonly journaled = new Set<number>();
  journaledTo = 0;

  constructor(readonly o: ScoreFileOptions & { optionsHash: string }, private hasher: InputHasher) {
    this.errorsPath = o.errors ?? errorsPathFor(o.output);
    this.restart = `delete ${progressPathFor(o.output)} to start over`;
    this.dups = new DuplicateIds(o.log, o.maxErrorLines ?? 10);
  }

  /** What the interrupted run had written: its statistics, ids and out-of-order results. */
  recover(ckpt: Checkpoint): void {
    const o = this.o;
    checkResumeFiles(o.output, this.errorsPath, ckpt);
    for (const l of readLinesUpTo(`${o.output}.partial`, ckpt.outBytes)) {
      const rec = parseOutputLine(l, `${o.output}.partial`, this.restart);
      this.summary.add(rec.scores as Record<string, unknown>);
      this.dups.remember(rec);
    }
    for (const l of readLinesUpTo(`${this.errorsPath}.partial`, ckpt.errBytes)) {
      const e = parseOutputLine(l, `${this.errorsPath}.partial`, this.restart);
      this.summary.addError();
      this.dups.remember(e.record, typeof e.line === 'number' ? e.line : 0);
    }
    this.resumed = readAhead(o.output, ckpt.aheadBytes, ckpt.position.units);
    o.log(`concord: resuming ${o.output}: ${ckpt.position.units + this.resumed.size} records already done (the first ${ckpt.position.units}, up to line ${ckpt.position.line} of ${o.input}${this.resumed.size ? `, and ${this.resumed.size} later ones finished out of order` : ''})`);
  }

  start(ckpt: Checkpoint | null): void {
    if (ckpt) this.recover(ckpt);
    this.from = ckpt?.position ?? START;
    this.recovered = this.from.units + this.resumed.size;
    this.readIndex = this.fedIndex = this.nextOut = this.from.units;
    this.position = this.from;
    this.bad = new BadRecords(this.o.log, this.errorsPath, this.o.maxErrorLines ?? 10, this.from.units === 0, ckpt ? this.summary.errors : 0);
  }

  /** The output files (after the input opened: a refused input leaves nothing behind). */
  openOutput(ckpt: Checkpoint | null): void {
    this.writer = new ScoredOutput(this.o.output, this.errorsPath, this.o.optionsHash, ckpt);
  }

  /** The records for the scorer: resumed ones skipped, positions and parse errors noted. */
  async *feed(records: AsyncIterable<FileRecord> | Iterable<FileRecord>): AsyncGenerator<FileRecord> {
    for await (const r of records) {
      if (this.o.limit !== undefined && this.readIndex >= this.o.limit) return;
      const i = this.readIndex++;
      this.positions.set(i, { offset: r.endOffset, line: r.line });
      if (r.parseError) { if (this.parseErrors++ === 0) this.firstParseError = `${r.loc}: ${r.parseError}`; }
      else { this.bad.release(); this.dups.check(r); this.checkOwnScores(r); }
      if (this.resumed.has(i)) continue; // its result is in .ahead
      this.inputIndexOf.set(this.fedIndex++, i);
      yield r;
    }
  }

  /** Records carrying a `scores` field of their own, which the output's `scores` replaces (warned, counted). */
  replacedScores = 0;

  checkOwnScores(r: FileRecord): void {
    const rec = r.record;
    if (!rec || typeof rec !== 'object' || Array.isArray(rec) || !Object.hasOwn(rec, 'scores')) return;
    const max = this.o.maxErrorLines ?? 10;
    if (this.replacedScores < max) this.o.log(`${r.loc}: warning: the record has its own 'scores' field; the output's 'scores' replaces it (rename the field to keep it)`);
    else if (this.replacedScores === max) this.o.log("... more records with their own 'scores' field (counted in the summary as replaced_scores)");
    this.replacedScores++;
  }

  checkpoint(complete = false): void {
    for (const [i, line] of this.early) {
      if (this.journaled.has(i)) continue;
      this.writer.ahead.write(`${i}\t${line}`);
      this.journaled.add(i);
      this.journaledTo = Math.max(this.journaledTo, this.positions.get(i)?.offset ?? 0);
    }
    this.hasher.advance(Math.max(this.position.offset, this.journaledTo));
    this.writer.checkpoint(this.position, this.hasher.identity(), this.resumed.size + this.journaled.size, complete);
    this.sinceCheckpoint = 0;
  }

  maybeCheckpoint(): void {
    const every = this.o.checkpointEvery ?? 256, everyMs = this.o.checkpointMs ?? 5000;
    if (this.sinceCheckpoint >= every || (this.sinceCheckpoint > 0 && this.writer.msSinceCheckpoint() >= everyMs)) this.checkpoint();
  }

  writeInOrder(i: number, line: string, isError: boolean, scores?: Record<string, unknown>): void {
    if (isError) this.writer.errors.write(line);
    else {
      this.summary.add(scores!);
      this.writer.out.write(line);
    }
    const p = this.positions.get(i);
    this.positions.delete(i);
    this.position = { units: i + 1, offset: p?.offset ?? 0, line: p?.line ?? 0 };
    this.nextOut = i + 1;
    this.early.delete(i);
    this.journaled.delete(i);
  }

  /** Results the interrupted run had finished, up to (not including) input index `upTo`. */
  writeResumedBefore(upTo: number): void {
    while (this.nextOut < upTo) {
      const line = this.resumed.get(this.nextOut);
      if (line === undefined) throw new Error(`scoreFile: no result for record ${this.nextOut} (internal error)`);
      this.resumed.delete(this.nextOut);
      this.writeInOrder(this.nextOut, line, false, (JSON.parse(line) as { scores: Record<string, unknown> }).scores);
    }
  }

  /** A result from the scorer, in input order. */
  take(r: ScoreResult): void {
    const i = this.inputIndexOf.get(r.index)!;
    this.inputIndexOf.delete(r.index);
    this.writeResumedBefore(i);
    if (r.error !== undefined) {
      this.summary.addError();
      if (this.o.strict) {
        this.writer.abort();
        throw new StrictError(`${r.loc}: ${r.error} (--strict: stopping at the first bad record)`);
      }
      this.bad.report(`${r.loc}: ${r.error}`);
      this.writeInOrder(i, errorLine(r), true);
      this.sinceCheckpoint++;
    } else {
      this.writeInOrder(i, this.early.get(i) ?? scoredLine(r), false, r.scores as unknown as Record<string, unknown>);
    }
    this.maybeCheckpoint();
  }

  /** After the last result: the checks, the final checkpoint and the renames. */
  finish(): void {
    const o = this.o;
    this.writeResumedBefore(this.readIndex);
    if (this.resumed.size > 0) throw new ResumeError(`cannot resume: the checkpoint holds results for ${this.resumed.size} records past the end of ${o.input}; ${this.restart}`);
    if (this.from.units === 0 && this.readIndex > 0 && this.parseErrors === this.readIndex) {
      // Not one record could be read: this is not JSONL (or not this format) at all.
      this.writer.abort();
      for (const f of [`${o.output}.partial`, `${this.errorsPath}.partial`, aheadPathFor(o.output), progressPathFor(o.output)]) fs.rmSync(f, { force: true });
      throw new InputError(`${o.input}: none of its ${this.readIndex} lines is a JSON record (${this.firstParseError}); is it JSONL or a JSON array?`);
    }
    this.bad.release();
    this.checkpoint(true);
    this.writer.finish(o.keepDoneMarker);
  }
}

/** The summary of a score job from what it wrote and the scorer's statistics since `before`. */
function scoreSummaryOf(o: ScoreFileOptions, job: ScoreJob, before: { pairs: number; tokens: number; ms: number }): ScoreSummary {
  const { scorer } = o;
  const st = scorer.stats;
  const summary = job.summary;
  const elapsed = (st.elapsedMs - before.ms) / 1000;
  const pairs = st.pairs - before.pairs;
  const tokens = st.lmTokens - before.tokens;
  const sch = st.scheduler;
  return {
    command: 'score',
    input: o.input,
    output: o.output,
    errors_file: summary.errors > 0 ? job.errorsPath : null,
    counts: { records: summary.scored + summary.errors, scored: summary.scored, errors: summary.errors, truncated: summary.truncated, resumed_from: job.recovered },
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
    duplicate_ids: job.dups.count,
    replaced_scores: job.replacedScores,
  };
}

export async function scoreFile(opts: ScoreFileOptions): Promise<ScoreSummary> {
  const o = { ...opts, optionsHash: opts.optionsHash ?? scoreOptionsHash(opts.scorer, opts.limit) };
  const { scorer, log } = o;
  // One plain JSONL / JSON file read whole: the checkpoint hashes the prefix it consumed. Anything
  // else (several files, compressed, Parquet, a shard's range): the SHA-256 of all the input's bytes.
  const inputs = o.inputs ?? openRecords(o.input);
  const single = inputs.plainSingle && !o.range;
  const { ckpt, hasher } = resumePoint(o, inputs, single);
  if (ckpt?.complete) return finishedRun(o, o.errors ?? errorsPathFor(o.output), ckpt);
  const job = new ScoreJob(o, hasher);
  job.start(ckpt);
  const src = await inputs.open(job.from, o.range);
  if (src.format === 'json-array') {
    if (!o.quiet) log(`concord: ${o.input} is a JSON array: read and parsed whole (JSONL is streamed line by line)`);
    if (single) hasher.advance(fs.statSync(inputs.files[0].path).size); // parsed whole: every record depends on every byte
  }
  const total = o.limit !== undefined ? Math.min(o.limit, src.total) : src.total;
  job.openOutput(ckpt);
  const progress = new ProgressReporter({ total, offset: job.recovered, quiet: o.quiet });
  const st = scorer.stats;
  const before = { pairs: st.pairs, tokens: st.lmTokens, ms: st.elapsedMs };
  let last = { done: 0, errors: 0, tokens: 0, elapsedMs: 0 };
  const onProgress = (p: ScoreProgress) => {
    last = { done: p.estimatedDone, errors: job.summary.errors, tokens: p.tokens, elapsedMs: p.elapsedMs };
    progress.update(last);
    job.maybeCheckpoint();
  };
  const onDone = (r: ScoreResult) => {
    const i = job.inputIndexOf.get(r.index);
    if (i === undefined || r.error !== undefined) return;
    job.early.set(i, scoredLine(r));
    job.sinceCheckpoint++;
  };
  try {
    for await (const r of scorer.score(job.feed(src.records), { firstIndex: job.from.units, onProgress, onDone })) job.take(r);
    job.finish();
  } catch (e) {
    job.writer.abort();
    throw e;
  }
  progress.end({ ...last, done: st.pairs - before.pairs, errors: job.summary.errors });
  return scoreSummaryOf(o, job, before);
}

/** --resume of a run whose scoring had finished (killed during the final renames, or run's filter step). */
function finishedRun(o: ScoreFileOptions, errorsPath: string, c: Checkpoint): ScoreSummary {
  completeFinishedRun(o.output, errorsPath, c);
  const summary = new SummaryBuilder();
  const restart = `delete ${progressPathFor(o.output)} to start over`;
  for (const l of readLinesUpTo(o.output, c.outBytes)) summary.add(parseOutputLine(l, o.output, restart).scores as Record<string, unknown>);
  for (const _ of readLinesUpTo(errorsPath, c.errBytes)) summary.addError();
  if (!o.keepDoneMarker) fs.rmSync(progressPathFor(o.output), { force: true });
  o.log(`concord: --resume: ${o.output} was already complete (${summary.scored + summary.errors} records); nothing to score`);
  const s = o.scorer;
  return {
    command: 'score', input: o.input, output: o.output, errors_file: summary.errors > 0 ? errorsPath : null,
    counts: { records: summary.scored + summary.errors, scored: summary.scored, errors: summary.errors, truncated: summary.truncated, resumed_from: c.position.units },
    scores: summary.quantiles(),
    throughput: { elapsed_s: 0, pairs: 0, pairs_per_s: 0, lm_tokens: 0, tokens_per_s: 0 },
    padding_efficiency: 1, batches: 0, passes: s.passes, templates: s.templates, max_len: s.maxLen, cosine_source: s.cosineSource,
    verify: s.stats.verify, duplicate_ids: 0,
  };
}
