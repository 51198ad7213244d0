// File-level jobs (Node): score a file into a resumable, atomically finished JSONL; filter a scored
// file into kept / dropped JSONL. Both write `file:line: reason` errors to an errors file and go
// on, unless strict. Before any of it (and before a model is loaded) the commands call
// preflightPaths (input readable and a regular file, outputs writable and all distinct) and
// lockOutputs (one concord per output path).

import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { InputError, UsageError } from '../errors.js';
import { InputSet, type RecordRange } from '../formats/records.js';
import { applyFilter, type FilterOptions, type FilterResult, type ScoreFields } from '../filter/index.js';
import {
  AtomicWriter, PrefixHasher, aheadPathFor, ResumeError, ScoredOutput, checkResumeFiles, checkpointMismatch, completeFinishedRun, crashPoint,
  countJsonlRecords, hashOptions, openInput, progressPathFor, readAhead, readCheckpoint, readLinesUpTo, ProgressReporter, type Checkpoint,
  type FileRecord, type InputIdentity, type InputPosition,
} from './node-io.js';
import type { ScoreProgress, Scorer, ScoreResult } from './scorer.js';
import { SummaryBuilder, type Quantiles } from './stats.js';

/** --strict and a bad record (exit 3). */
export class StrictError extends InputError {}

/** Output paths that cannot be used: colliding, in a missing directory, a directory, locked (exit 2). */
export class PathError extends UsageError {
  override readonly pointsAtHelp = false;
}

/** Another running concord holds an output path (exit 2). */
export class LockError extends PathError {}

// ---- preflight ---------------------------------------------------------------------------------

export interface PreflightOptions {
  /** The input file (checked: exists, a regular file, readable). */
  input?: string;
  output?: string;
  errors?: string;
  dropOut?: string;
  scoredOut?: string;
  summary?: string;
  /** More outputs, with the flag that names them in messages. */
  more?: { flag: string; path: string }[];
}

const FLAG: Record<string, string> = { output: '-o', errors: '--errors', dropOut: '--drop-out', scoredOut: '--scored-out', summary: '--summary' };

/** Check the input like preflightPaths does (InputError, exit 3). Never blocks (no FIFO is opened). */
export function checkInputFile(input: string): void {
  let st: fs.Stats;
  try {
    st = fs.statSync(input);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    throw new InputError(code === 'ENOENT' ? `${input}: no such file` : `${input}: cannot read (${code ?? (e as Error).message})`);
  }
  if (st.isDirectory()) throw new InputError(`${input}: is a directory, not an input file`);
  if (st.isFIFO()) throw new InputError(`${input}: is a FIFO (named pipe); concord reads its input more than once (record count, resume), so give it a regular file`);
  if (!st.isFile()) throw new InputError(`${input}: not a regular file (a socket or device); give concord a regular file`);
  try {
    fs.closeSync(fs.openSync(input, 'r'));
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    throw new InputError(`${input}: cannot read (${code === 'EACCES' ? 'permission denied' : code ?? (e as Error).message})`);
  }
}

/** dev:ino of an existing file, else its absolute path with the directory's symlinks resolved. */
function fileKey(p: string): string {
  try {
    const st = fs.statSync(p);
    return `ino:${st.dev}:${st.ino}`;
  } catch {
    let dir = path.dirname(path.resolve(p));
    try { dir = fs.realpathSync(dir); } catch { /* reported by the directory check */ }
    return `path:${path.join(dir, path.basename(p))}`;
  }
}

/**
 * Everything about the paths that can be checked before a model is loaded: the input (InputError,
 * exit 3) and every output (PathError, exit 2): its directory exists and is writable, it is not a
 * directory, and no two of them — input included — are the same file (by inode when they exist,
 * by resolved path otherwise). Nothing is created or touched. Returns the outputs, for lockOutputs.
 */
export function preflightPaths(o: PreflightOptions): { outputs: string[] } {
  if (o.input !== undefined) checkInputFile(o.input);
  const named: { flag: string; path: string }[] = [];
  for (const k of ['output', 'errors', 'dropOut', 'scoredOut', 'summary'] as const) {
    const v = o[k];
    if (v !== undefined) named.push({ flag: FLAG[k], path: v });
  }
  named.push(...(o.more ?? []));
  const seen = new Map<string, { flag: string; path: string }>();
  if (o.input !== undefined) seen.set(fileKey(o.input), { flag: 'the input', path: o.input });
  for (const n of named) {
    const what = `${n.flag} ${n.path}`;
    if (n.path === '') throw new PathError(`${n.flag}: empty path`);
    let st: fs.Stats | null = null;
    try { st = fs.statSync(n.path); } catch { /* does not exist yet */ }
    if (st?.isDirectory()) throw new PathError(`${what}: is a directory; give a file name`);
    if (st && !st.isFile()) throw new PathError(`${what}: exists and is not a regular file`);
    const dir = path.dirname(path.resolve(n.path));
    let ds: fs.Stats;
    try {
      ds = fs.statSync(dir);
    } catch {
      throw new PathError(`${what}: the directory ${dir} does not exist`);
    }
    if (!ds.isDirectory()) throw new PathError(`${what}: ${dir} is not a directory`);
    try {
      fs.accessSync(dir, fs.constants.W_OK);
    } catch {
      throw new PathError(`${what}: the directory ${dir} is not writable`);
    }
    const key = fileKey(n.path);
    const prev = seen.get(key);
    if (prev) {
      throw new PathError(prev.flag === 'the input'
        ? `${what} is the input file; writing it would destroy the input (choose another path)`
        : `${what} and ${prev.flag} ${prev.path} are the same file; give them different paths`);
    }
    seen.set(key, n);
  }
  return { outputs: named.map((n) => n.path) };
}

// ---- output locks ------------------------------------------------------------------------------

interface LockInfo { pid: number; host: string; start: string | null; since: string }

/** The process's start time from /proc (Linux), to tell a live lock holder from a reused pid. */
function procStart(pid: number): string | null {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19] ?? null;
  } catch {
    return null;
  }
}

function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** Whether the process that wrote a lock is still running (same host: by pid and start time). */
export function lockHolderAlive(info: LockInfo): boolean {
  if (info.host !== os.hostname()) return true; // cannot tell: assume it is
  if (!pidAlive(info.pid)) return false;
  const start = procStart(info.pid);
  return !(info.start && start && start !== info.start);
}

export const lockPathFor = (p: string) => `${p}.lock`;

const held = new Set<string>();
let exitHook = false;

/**
 * Take `<path>.lock` for every output (created with O_EXCL, holding pid, host and start time). A
 * lock whose process is gone (kill -9, a crash) is stale and taken over; a live one raises
 * LockError naming the holder. Also removes temporary files (`<path>.tmp-<pid>`) that dead
 * processes left next to the outputs. Locks are released by the returned function and at exit.
 */
export function lockOutputs(paths: string[]): () => void {
  const mine: string[] = [];
  const release = () => {
    for (const l of mine.splice(0)) {
      fs.rmSync(l, { force: true });
      held.delete(l);
    }
  };
  if (!exitHook) {
    exitHook = true;
    process.on('exit', () => { for (const l of held) fs.rmSync(l, { force: true }); });
  }
  const me: LockInfo = { pid: process.pid, host: os.hostname(), start: procStart(process.pid), since: new Date().toISOString() };
  try {
    for (const p of paths) {
      const lock = lockPathFor(path.resolve(p));
      for (let attempt = 0; ; attempt++) {
        try {
          const fd = fs.openSync(lock, 'wx');
          try { fs.writeSync(fd, JSON.stringify(me) + '\n'); } finally { fs.closeSync(fd); }
          mine.push(lock);
          held.add(lock);
          break;
        } catch (e) {
          if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw new PathError(`${p}: cannot create the lock file ${lock} (${(e as Error).message})`);
        }
        let info: LockInfo | null = null;
        try { info = JSON.parse(fs.readFileSync(lock, 'utf8')) as LockInfo; } catch { /* being written, or garbage */ }
        if (info && typeof info.pid === 'number' && lockHolderAlive(info)) {
          throw new LockError(`${p} is being written by another concord (pid ${info.pid}${info.host !== me.host ? ` on ${info.host}` : ''}, since ${info.since}); wait for it to finish, or delete ${lock} if that process is gone`);
        }
        if (attempt >= 2) throw new LockError(`${p}: cannot take the lock ${lock} (it keeps reappearing); is another concord starting?`);
        if (info || attempt > 0) fs.rmSync(lock, { force: true }); // stale (or unreadable twice)
        else Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 50); // maybe being written
      }
      removeStaleTmp(p);
    }
  } catch (e) {
    release();
    throw e;
  }
  return release;
}

/** Remove `<p>.tmp-<pid>` files whose process is gone (AtomicWriter's temporary names). */
function removeStaleTmp(p: string): void {
  const dir = path.dirname(path.resolve(p)), base = path.basename(p) + '.tmp-';
  let names: string[];
  try { names = fs.readdirSync(dir); } catch { return; }
  for (const n of names) {
    if (!n.startsWith(base)) continue;
    const pid = Number(n.slice(base.length));
    if (Number.isInteger(pid) && pid > 0 && pid !== process.pid && !pidAlive(pid)) fs.rmSync(path.join(dir, n), { force: true });
  }
}

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
  /** Records whose `id` had been seen before in the input (warned on stderr). */
  duplicate_ids: number;
  [k: string]: unknown;
}

/** A line of an errors file: loc, line, message, error and the record. */
export function errorLine(r: { loc: string; error?: string; record?: unknown }): string {
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

/** The identity of an input read through InputSet (several files, compressed, Parquet, a range): all its bytes (the files' SHA-256 fingerprints, which shard manifests use too). */
class WholeInputHasher implements InputHasher {
  private id: InputIdentity;
  constructor(inputs: InputSet) {
    const prints = inputs.fingerprints();
    const sha256 = createHash('sha256').update(JSON.stringify(prints.map((p, k) => [inputs.files[k].name, p.sha256]))).digest('hex');
    this.id = { path: path.resolve(inputs.spec), hashedBytes: prints.reduce((n, p) => n + p.size, 0), sha256 };
  }
  advance(): void { /* the whole input is hashed already */ }
  identity(): InputIdentity { return this.id; }
}

/** The errors file of a job writing `output`, unless one is named: `<output>.errors.jsonl`. */
export const errorsPathFor = (output: string): string => `${output}.errors.jsonl`;

/** The hash a checkpoint (and a shard's manifest) records: the scorer's identity (createScorer) and --limit. */
export function scoreOptionsHash(scorer: Scorer, limit?: number): string {
  const identity = (scorer as { identity?: Record<string, unknown> }).identity;
  if (identity === undefined) throw new Error('scoreFile: give optionsHash, or a scorer from createScorer');
  return hashOptions({ ...identity, limit: limit ?? null });
}

export async function scoreFile(opts: ScoreFileOptions): Promise<ScoreSummary> {
  const o = { ...opts, optionsHash: opts.optionsHash ?? scoreOptionsHash(opts.scorer, opts.limit) };
  const { scorer, log } = o;
  const errorsPath = o.errors ?? errorsPathFor(o.output);
  const restart = `delete ${progressPathFor(o.output)} to start over`;
  let ckpt: Checkpoint | null = o.resume ? readCheckpoint(o.output) : null;
  if (o.resume && !ckpt) log(`concord: --resume: no checkpoint for ${o.output}; starting from the beginning`);
  // One plain JSONL / JSON file read whole: the checkpoint hashes the prefix it consumed. Anything
  // else (several files, compressed, Parquet, a shard's range): the SHA-256 of all the input's bytes.
  const inputs = o.inputs ?? InputSet.resolve(o.input);
  const single = inputs.plainSingle && !o.range;
  let hasher: InputHasher = single ? new PrefixHasher(inputs.files[0].path) : new WholeInputHasher(inputs);
  if (ckpt) {
    const m: { why: string } | { hasher: InputHasher } = single
      ? checkpointMismatch(ckpt, inputs.files[0].path, o.optionsHash)
      : ckpt.optionsHash !== o.optionsHash ? { why: 'the scoring options (models, templates, --max-len, fields, cosine, --limit) differ from the interrupted run' }
        : ckpt.input.sha256 !== hasher.identity().sha256 ? { why: `the input changed since the checkpoint (the SHA-256 of its ${inputs.files.length} file(s) differs)` } : { hasher };
    if ('why' in m) throw new ResumeError(`cannot resume ${o.output}: ${m.why}; run without --resume to start over`);
    hasher = m.hasher;
    if (ckpt.complete) return finishedRun(o, errorsPath, ckpt);
  } else if (!o.resume && fs.existsSync(`${o.output}.partial`)) {
    log(`concord: an interrupted run left ${o.output}.partial; starting over (pass --resume to continue it)`);
  }

  const summary = new SummaryBuilder();
  const maxErr = o.maxErrorLines ?? 10;
  const dups = new DuplicateIds(log, maxErr);
  // Results of records past the checkpoint's prefix that the interrupted run had finished.
  let resumed = new Map<number, string>();
  if (ckpt) {
    checkResumeFiles(o.output, errorsPath, ckpt);
    for (const l of readLinesUpTo(`${o.output}.partial`, ckpt.outBytes)) {
      const rec = parseOutputLine(l, `${o.output}.partial`, restart);
      summary.add(rec.scores as Record<string, unknown>);
      dups.remember(rec);
    }
    for (const l of readLinesUpTo(`${errorsPath}.partial`, ckpt.errBytes)) {
      const e = parseOutputLine(l, `${errorsPath}.partial`, restart);
      summary.addError();
      dups.remember(e.record, typeof e.line === 'number' ? e.line : 0);
    }
    resumed = readAhead(o.output, ckpt.aheadBytes, ckpt.position.units);
    log(`concord: resuming ${o.output}: ${ckpt.position.units + resumed.size} records already done (the first ${ckpt.position.units}, up to line ${ckpt.position.line} of ${o.input}${resumed.size ? `, and ${resumed.size} later ones finished out of order` : ''})`);
  }
  const from: InputPosition = ckpt?.position ?? { units: 0, offset: 0, line: 0 };
  const recovered = from.units + resumed.size;
  const src = single ? openInput(o.input, o.input, from) : await inputs.open(from, o.range);
  if (src.format === 'json-array') {
    if (!o.quiet) log(`concord: ${o.input} is a JSON array: read and parsed whole (JSONL is streamed line by line)`);
    if (single) hasher.advance(fs.statSync(o.input).size); // parsed whole: every record depends on every byte
  }
  const inFile = src.total ?? (await countJsonlRecords(o.input));
  const total = o.limit !== undefined ? Math.min(o.limit, inFile) : inFile;
  const writer = new ScoredOutput(o.output, errorsPath, o.optionsHash, ckpt);
  ckpt = null;

  // End positions of records read but not yet written (bounded by the scheduler's window), by input
  // index; the scorer's indices count only the records fed to it (resumed ones are not).
  const positions = new Map<number, { offset: number; line: number }>();
  const inputIndexOf = new Map<number, number>();
  let readIndex = from.units, fedIndex = from.units, parseErrors = 0, firstParseError = '';
  async function* feed(): AsyncGenerator<FileRecord> {
    for await (const r of src.records) {
      if (o.limit !== undefined && readIndex >= o.limit) return;
      const i = readIndex++;
      positions.set(i, { offset: r.endOffset, line: r.line });
      if (r.parseError) { if (parseErrors++ === 0) firstParseError = `${r.loc}: ${r.parseError}`; }
      else { release(); dups.check(r); }
      if (resumed.has(i)) continue; // its result is in .ahead
      inputIndexOf.set(fedIndex++, i);
      yield r;
    }
  }

  const every = o.checkpointEvery ?? 256;
  const everyMs = o.checkpointMs ?? 5000;
  const progress = new ProgressReporter({ total, offset: recovered, quiet: o.quiet });
  let sinceCheckpoint = 0;
  let position = from;
  let nextOut = from.units; // next input index to write in order
  let printed = 0;
  // Until a record parses, messages about records that do not are held back: a file with no JSON
  // record at all gets the one-line verdict below instead of a line per record.
  let held: string[] | null = from.units === 0 ? [] : null;
  const say = (l: string) => { if (held) held.push(l); else log(l); };
  const release = () => { if (held) { const h = held; held = null; for (const l of h) log(l); } };
  // Finished out of order in this run and not yet written in order: input index → output line;
  // `journaled`: those of them already in .ahead (with the furthest input offset they reach).
  const early = new Map<number, string>();
  const journaled = new Set<number>();
  let journaledTo = 0;

  const checkpoint = (complete = false) => {
    for (const [i, line] of early) {
      if (journaled.has(i)) continue;
      writer.ahead.write(`${i}\t${line}`);
      journaled.add(i);
      journaledTo = Math.max(journaledTo, positions.get(i)?.offset ?? 0);
    }
    hasher.advance(Math.max(position.offset, journaledTo));
    writer.checkpoint(position, hasher.identity(), resumed.size + journaled.size, complete);
    sinceCheckpoint = 0;
  };
  const maybeCheckpoint = () => {
    if (sinceCheckpoint >= every || (sinceCheckpoint > 0 && writer.msSinceCheckpoint() >= everyMs)) checkpoint();
  };
  const writeInOrder = (i: number, line: string, isError: boolean, scores?: Record<string, unknown>) => {
    if (isError) writer.errors.write(line);
    else {
      summary.add(scores!);
      writer.out.write(line);
    }
    const p = positions.get(i);
    positions.delete(i);
    position = { units: i + 1, offset: p?.offset ?? 0, line: p?.line ?? 0 };
    nextOut = i + 1;
    early.delete(i);
    journaled.delete(i);
  };
  // Results the interrupted run had finished, up to (not including) input index `upTo`.
  const writeResumedBefore = (upTo: number) => {
    while (nextOut < upTo) {
      const line = resumed.get(nextOut);
      if (line === undefined) throw new Error(`scoreFile: no result for record ${nextOut} (internal error)`);
      resumed.delete(nextOut);
      writeInOrder(nextOut, line, false, (JSON.parse(line) as { scores: Record<string, unknown> }).scores);
    }
  };

  const st = scorer.stats;
  const before = { pairs: st.pairs, tokens: st.lmTokens, ms: st.elapsedMs };
  let last = { done: 0, errors: 0, tokens: 0, elapsedMs: 0 };
  const onProgress = (p: ScoreProgress) => {
    last = { done: p.estimatedDone, errors: summary.errors, tokens: p.tokens, elapsedMs: p.elapsedMs };
    progress.update(last);
    maybeCheckpoint();
  };
  const onDone = (r: ScoreResult) => {
    const i = inputIndexOf.get(r.index);
    if (i === undefined || r.error !== undefined) return;
    early.set(i, scoredLine(r));
    sinceCheckpoint++;
  };

  try {
    for await (const r of scorer.score(feed(), { firstIndex: from.units, onProgress, onDone })) {
      const i = inputIndexOf.get(r.index)!;
      inputIndexOf.delete(r.index);
      writeResumedBefore(i);
      if (r.error !== undefined) {
        summary.addError();
        if (o.strict) {
          writer.abort();
          throw new StrictError(`${r.loc}: ${r.error} (--strict: stopping at the first bad record)`);
        }
        writeInOrder(i, errorLine(r), true);
        if (printed < maxErr) say(`${r.loc}: ${r.error}`);
        else if (printed === maxErr) say(`... more errors in ${errorsPath}`);
        printed++;
        sinceCheckpoint++;
      } else {
        writeInOrder(i, early.get(i) ?? scoredLine(r), false, r.scores as unknown as Record<string, unknown>);
      }
      maybeCheckpoint();
    }
    writeResumedBefore(readIndex);
    if (resumed.size > 0) throw new ResumeError(`cannot resume: the checkpoint holds results for ${resumed.size} records past the end of ${o.input}; ${restart}`);
    if (from.units === 0 && readIndex > 0 && parseErrors === readIndex) {
      // Not one record could be read: this is not JSONL (or not this format) at all.
      writer.abort();
      for (const f of [`${o.output}.partial`, `${errorsPath}.partial`, aheadPathFor(o.output), progressPathFor(o.output)]) fs.rmSync(f, { force: true });
      throw new InputError(`${o.input}: none of its ${readIndex} lines is a JSON record (${firstParseError}); is it JSONL or a JSON array?`);
    }
    release();
    checkpoint(true);
    writer.finish(o.keepDoneMarker);
  } catch (e) {
    writer.abort();
    throw e;
  }
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
    counts: { records: summary.scored + summary.errors, scored: summary.scored, errors: summary.errors, truncated: summary.truncated, resumed_from: recovered },
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
    duplicate_ids: dups.count,
  };
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

/** `run`: drop the complete-marker scoreFile kept (keepDoneMarker), then the scored file unless kept. */
export function removeDoneMarker(scoredOut: string, removeScored: boolean): void {
  fs.rmSync(progressPathFor(scoredOut), { force: true });
  if (removeScored) fs.rmSync(scoredOut, { force: true });
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

/** The score fields a rule reads: each must be a finite number, else the record is an error. */
export function requiredScores(f: FilterOptions): (keyof ScoreFields)[] {
  switch (f.rule ?? 'auto') {
    // auto is main or fused, decided on the whole set (src/filter): both need the gains.
    case 'main': case 'auto': return f.signal === 'logp' ? ['fwd_logp', 'rev_logp'] : ['fwd_logp', 'y_logp', 'rev_logp', 'x_logp'];
    case 'fused': return ['fwd_logp', 'y_logp', 'rev_logp', 'x_logp', 'cosine'];
    case 'ifd': case 'superfilter': return ['ifd'];
    case 'rifd': return ['ifd', 'rifd'];
    case 'cosine': return ['cosine'];
  }
}

/** A scored record's scores, or why the rule cannot use it (every field in `need` must be a finite number). */
export function scoresOf(r: FileRecord, need: (keyof ScoreFields)[]): { scores?: ScoreFields; error?: string } {
  if (r.parseError) return { error: r.parseError };
  const rec = r.record;
  if (!rec || typeof rec !== 'object' || Array.isArray(rec)) return { error: 'record must be a JSON object' };
  const s = (rec as { scores?: unknown }).scores;
  if (!s || typeof s !== 'object' || Array.isArray(s)) return { error: "no 'scores' object (run `concord score` first)" };
  for (const k of need) {
    const v = (s as Record<string, unknown>)[k];
    if (typeof v !== 'number' || !Number.isFinite(v)) {
      return { error: `scores.${k} is ${v === undefined ? 'missing' : v === null ? 'null' : `not a finite number (${JSON.stringify(v)})`}; the rule needs it` };
    }
  }
  return { scores: s as ScoreFields };
}

export async function filterFile(o: FilterFileOptions): Promise<FilterSummary> {
  const errorsPath = o.errors ?? errorsPathFor(o.output);
  const need = requiredScores(o.filter);
  // Pass 1: the scores only.
  const scores: ScoreFields[] = [];
  const errs: string[] = [];
  const maxErr = o.maxErrorLines ?? 10;
  let parseErrors = 0, firstParseError = '';
  // Held back until a record parses (see scoreFile).
  let held: string[] | null = [];
  const say = (l: string) => { if (held) held.push(l); else o.log(l); };
  const release = () => { if (held) { const h = held; held = null; for (const l of h) o.log(l); } };
  for await (const r of openInput(o.input, o.input).records) {
    if (!r.parseError) release();
    const s = scoresOf(r, need);
    if (s.scores) scores.push(s.scores);
    else {
      if (r.parseError && parseErrors++ === 0) firstParseError = `${r.loc}: ${r.parseError}`;
      if (o.strict) throw new StrictError(`${r.loc}: ${s.error} (--strict: stopping at the first bad record)`);
      if (errs.length < maxErr) say(`${r.loc}: ${s.error}`);
      else if (errs.length === maxErr) say(`... more errors in ${errorsPath}`);
      errs.push(errorLine({ loc: r.loc, error: s.error, record: r.record }));
    }
  }
  if (parseErrors > 0 && parseErrors === errs.length && scores.length === 0) {
    throw new InputError(`${o.input}: none of its ${parseErrors} lines is a JSON record (${firstParseError}); is it JSONL or a JSON array?`);
  }
  release();
  const decision = applyFilter(scores, o.filter);
  // Pass 2: write every valid record to kept or dropped, with `keep` and `filter_score`. Every file
  // is written and fsynced before any is renamed into place.
  const kept = new AtomicWriter(o.output);
  const dropped = o.dropOut ? new AtomicWriter(o.dropOut) : null;
  const errW = errs.length > 0 ? new AtomicWriter(errorsPath) : null;
  const all = [kept, dropped, errW].filter((w): w is AtomicWriter => w !== null);
  try {
    let k = 0;
    for await (const r of openInput(o.input, o.input).records) {
      if (!scoresOf(r, need).scores) continue;
      const keep = decision.keep[k];
      const fs_ = decision.score[k];
      k++;
      const line = JSON.stringify({ ...(r.record as object), keep, filter_score: Number.isFinite(fs_) ? fs_ : null });
      if (keep) kept.write(line);
      else dropped?.write(line);
    }
    if (k !== scores.length) throw new InputError(`${o.input}: changed while it was being filtered (${k} valid records on the second read, ${scores.length} on the first)`);
    for (const l of errs) errW!.write(l);
    for (const w of all) w.flush();
    crashPoint('filter-written');
    for (const w of all) w.sync();
    for (const w of all) w.commit();
  } catch (e) {
    for (const w of all) w.abort();
    throw e;
  }
  if (!errW) fs.rmSync(errorsPath, { force: true });
  return {
    command: 'filter', input: o.input, output: o.output, drop_out: o.dropOut ?? null, errors_file: errs.length ? errorsPath : null,
    counts: { records: scores.length + errs.length, kept: decision.kept, dropped: decision.dropped, errors: errs.length },
    applied: decision.applied,
  };
}

// ---- run: score, then filter -------------------------------------------------------------------

export interface RunFileOptions extends Omit<ScoreFileOptions, 'output' | 'keepDoneMarker' | 'range'> {
  /** The kept records. */
  output: string;
  dropOut?: string;
  /** Keep the scored records here (default: `<output>.scored.jsonl`, removed at the end; --resume continues from it). */
  scoredOut?: string;
  filter: FilterOptions;
}

/** Where runFile writes its scored records. */
export const scoredPathFor = (o: { output: string; scoredOut?: string }): string => o.scoredOut ?? `${o.output}.scored.jsonl`;

/**
 * Score `input`, then filter the scored records. Bad input records go to the errors file of the
 * run's output (errorsPathFor(output), or `errors`); the filter step reads what the score step
 * wrote, so it runs strict: a record it cannot filter is an error of the run. The scored file keeps
 * its complete-marker until the filter has finished, so a run killed during the filter step resumes
 * without scoring again.
 */
export async function runFile(o: RunFileOptions): Promise<{ score: ScoreSummary; filter: FilterSummary }> {
  const scoredOut = scoredPathFor(o);
  const score = await scoreFile({ ...o, output: scoredOut, errors: o.errors ?? errorsPathFor(o.output), keepDoneMarker: true });
  const filter = await filterFile({ input: scoredOut, output: o.output, dropOut: o.dropOut, filter: o.filter, strict: true, log: o.log, maxErrorLines: o.maxErrorLines });
  removeDoneMarker(scoredOut, !o.scoredOut);
  return { score, filter };
}
