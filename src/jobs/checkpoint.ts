// The checkpoint of a resumable score job: the scored output being written (`<out>.partial`,
// `<errors>.partial`, `<out>.ahead`), its sidecar `<out>.progress.json`, the identity of the input
// prefix it depends on, and the steps that resume, finish or abandon it.

import { createHash, type Hash } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { settings } from '../env.js';
import { ResumeError } from '../errors.js';
import { AtomicWriter, renameInto, writeFileAtomic } from '../io/writers.js';
import type { InputPosition } from '../io/records.js';

export function hashOptions(o: unknown): string {
  return createHash('sha256').update(JSON.stringify(o)).digest('hex').slice(0, 16);
}

/** What a checkpoint remembers of its input: the consumed prefix's length and SHA-256. */
export interface InputIdentity {
  path: string;
  /** Bytes of the input the checkpoint depends on (from byte 0). */
  hashedBytes: number;
  /** sha256 of those bytes */
  sha256: string;
}

/**
 * SHA-256 of a growing prefix of a file, read from disk as the prefix grows (each byte once):
 * `advance(n)` extends it to the first n bytes, `identity()` digests a copy.
 */
export class PrefixHasher {
  private hash: Hash = createHash('sha256');
  private done = 0;

  constructor(readonly file: string) {}

  get bytes(): number {
    return this.done;
  }

  advance(to: number): void {
    if (to <= this.done) return;
    const fd = fs.openSync(this.file, 'r');
    try {
      const buf = Buffer.alloc(Math.min(1 << 20, to - this.done));
      while (this.done < to) {
        const n = fs.readSync(fd, buf, 0, Math.min(buf.length, to - this.done), this.done);
        if (n === 0) throw new ResumeError(`${this.file} is shorter (${this.done} bytes) than the ${to} bytes already read from it; it changed during the run`);
        this.hash.update(buf.subarray(0, n));
        this.done += n;
      }
    } finally {
      fs.closeSync(fd);
    }
  }

  identity(): InputIdentity {
    return { path: path.resolve(this.file), hashedBytes: this.done, sha256: this.hash.copy().digest('hex') };
  }
}

// ---- resumable scored output -------------------------------------------------------------------
// Scored records go, in input order, to `<out>.partial` and errors to `<errors>.partial`. Records
// finished out of order (a window is scored longest-first, so most of it finishes before the
// window's first record does) go to `<out>.ahead` as `index<TAB>line`. Every --checkpoint-every
// records (counted as they finish, in any order) or 5 s, all three are fsynced and
// `<out>.progress.json` (written atomically) records: the in-order prefix (records consumed, input
// byte offset and line), the byte length of each file, the length and SHA-256 of the input prefix
// the checkpoint depends on (up to the furthest record it holds a result for) and a hash of the
// scoring options. --resume checks the input prefix's hash, truncates the three files to their
// checkpointed lengths (dropping any line written after it, complete or torn), re-reads the input
// from the prefix's offset, takes the results in `.ahead` instead of re-scoring those records and
// goes on: every record ends up exactly once, in order. At the end the partials are renamed to
// their final names and the sidecars are removed.

export interface Checkpoint {
  version: 2;
  position: InputPosition;
  outBytes: number;
  errBytes: number;
  aheadBytes: number;
  /** Results in `.ahead` past the prefix (informational). */
  ahead: number;
  input: InputIdentity;
  optionsHash: string;
  /** Set by the last checkpoint, just before the final renames. */
  complete?: boolean;
  savedAt: string;
}

export { ResumeError } from '../errors.js';

export const progressPathFor = (out: string) => `${out}.progress.json`;
export const aheadPathFor = (out: string) => `${out}.ahead`;

const isCount = (x: unknown): x is number => typeof x === 'number' && Number.isInteger(x) && x >= 0;

/** The problem with a parsed checkpoint's shape, or null. */
function checkpointShape(c: unknown): string | null {
  if (!c || typeof c !== 'object') return 'not a JSON object';
  const o = c as Record<string, unknown>;
  if (o.version !== 2) return o.version === 1 ? 'written by an older concord (version 1)' : `unknown version ${JSON.stringify(o.version)}`;
  const pos = o.position as Record<string, unknown> | undefined;
  if (!pos || typeof pos !== 'object' || !isCount(pos.units) || !isCount(pos.offset) || !isCount(pos.line)) return "missing or invalid 'position'";
  for (const k of ['outBytes', 'errBytes', 'aheadBytes', 'ahead']) if (!isCount(o[k])) return `missing or invalid '${k}'`;
  const inp = o.input as Record<string, unknown> | undefined;
  if (!inp || typeof inp !== 'object' || typeof inp.path !== 'string' || !isCount(inp.hashedBytes) || typeof inp.sha256 !== 'string') return "missing or invalid 'input'";
  if (typeof o.optionsHash !== 'string') return "missing 'optionsHash'";
  return null;
}

export function readCheckpoint(out: string): Checkpoint | null {
  const p = progressPathFor(out);
  let text: string;
  try {
    text = fs.readFileSync(p, 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw new ResumeError(`${p}: cannot read the checkpoint (${(e as Error).message}); delete it to start over`);
  }
  let c: unknown;
  try {
    c = JSON.parse(text);
  } catch (e) {
    throw new ResumeError(`${p}: unreadable checkpoint (${(e as Error).message}); delete it to start over`);
  }
  const why = checkpointShape(c);
  if (why) throw new ResumeError(`${p}: unusable checkpoint (${why}); delete it to start over`);
  return c as Checkpoint;
}

/** Why a checkpoint whose options hash differs is refused (the hash: scoreOptionsHash, src/jobs/score.ts). */
export const OPTIONS_DIFFER = 'the scoring options (models, templates, --max-len, fields, cosine, --no-entropy, --signals, --limit) differ from the interrupted run';

/**
 * Why a checkpoint cannot be resumed with this input file and these options, or null when it can.
 * On success the returned hasher holds the input's checkpointed prefix (to go on hashing from).
 */
export function checkpointMismatch(c: Checkpoint, input: string, optionsHash: string): { why: string } | { hasher: PrefixHasher } {
  if (c.optionsHash !== optionsHash) return { why: OPTIONS_DIFFER };
  const size = fs.statSync(input).size;
  const changed = `the input changed since the checkpoint (the SHA-256 of its first ${c.input.hashedBytes} bytes, which the checkpoint covers, differs)`;
  if (size < c.input.hashedBytes) return { why: `${changed.slice(0, -1)}: the file is now ${size} bytes)` };
  const h = new PrefixHasher(input);
  h.advance(c.input.hashedBytes);
  if (h.identity().sha256 !== c.input.sha256) return { why: changed };
  return { hasher: h };
}

/** The three files of an in-progress score and its checkpoint sidecar. */
export class ScoredOutput {
  readonly out: AtomicWriter;
  readonly errors: AtomicWriter;
  readonly ahead: AtomicWriter;
  private lastCheckpoint = 0;

  constructor(
    readonly outPath: string,
    readonly errorsPath: string,
    private readonly optionsHash: string,
    resumeFrom: Checkpoint | null,
  ) {
    const outTmp = `${outPath}.partial`, errTmp = `${errorsPath}.partial`, aheadTmp = aheadPathFor(outPath);
    // A fresh start: a checkpoint left by an earlier run no longer describes the partial files.
    if (!resumeFrom) fs.rmSync(progressPathFor(outPath), { force: true });
    if (resumeFrom) checkResumeFiles(outPath, errorsPath, resumeFrom);
    this.out = new AtomicWriter(outPath, outTmp, { append: !!resumeFrom });
    this.errors = new AtomicWriter(errorsPath, errTmp, { append: !!resumeFrom });
    this.ahead = new AtomicWriter(aheadTmp, aheadTmp, { append: !!resumeFrom });
    if (resumeFrom) {
      // Drop whatever was written after the checkpoint (possibly a torn line).
      this.out.truncate(resumeFrom.outBytes);
      this.errors.truncate(resumeFrom.errBytes);
      this.ahead.truncate(resumeFrom.aheadBytes);
    }
    this.lastCheckpoint = Date.now();
  }

  /** fsync the files, then record the position atomically. */
  checkpoint(position: InputPosition, input: InputIdentity, ahead: number, complete = false): void {
    this.out.sync();
    this.errors.sync();
    this.ahead.sync();
    const c: Checkpoint = {
      version: 2, position, outBytes: this.out.bytes, errBytes: this.errors.bytes, aheadBytes: ahead > 0 ? this.ahead.bytes : 0, ahead, input,
      optionsHash: this.optionsHash, ...(complete ? { complete: true } : {}), savedAt: new Date().toISOString(),
    };
    writeFileAtomic(progressPathFor(this.outPath), JSON.stringify(c, null, 2) + '\n');
    // Nothing past the prefix: the results in `.ahead` are all in the partials now.
    if (ahead === 0 && this.ahead.bytes > 0) this.ahead.truncate(0);
    this.lastCheckpoint = Date.now();
  }

  msSinceCheckpoint(): number {
    return Date.now() - this.lastCheckpoint;
  }

  /**
   * After the final (complete) checkpoint: rename the partials to their final names (no errors: no
   * errors file) and drop the sidecars (the progress file stays, marked complete, with keepMarker).
   */
  finish(keepMarker = false): void {
    this.ahead.abort();
    finishRenames(this.outPath, this.errorsPath, this.errors.bytes > 0 ? null : this.errors);
    if (!keepMarker) fs.rmSync(progressPathFor(this.outPath), { force: true });
  }

  /** Stop, leaving the files as the last checkpoint describes them. */
  abort(): void {
    for (const w of [this.out, this.errors, this.ahead]) w.abort(true);
  }
}

/** Test hook: CONCORD_TEST_CRASH_AT=<point> kills the process (SIGKILL) there, to test --resume. */
export function crashPoint(point: string): void {
  if (settings.testCrashAt === point) process.kill(process.pid, 'SIGKILL');
}

function finishRenames(outPath: string, errorsPath: string, emptyErrors: AtomicWriter | null): void {
  const outTmp = `${outPath}.partial`, errTmp = `${errorsPath}.partial`;
  if (emptyErrors) {
    emptyErrors.abort();
    fs.rmSync(errorsPath, { force: true }); // a stale errors file from an earlier run
  }
  // Order matters for a kill in between: the errors file first, the output (which the resume
  // check looks for) last.
  if (!emptyErrors && fs.existsSync(errTmp)) {
    fs.rmSync(errorsPath, { force: true });
    renameInto(errTmp, errorsPath);
    crashPoint('between-renames');
  }
  if (fs.existsSync(outTmp)) renameInto(outTmp, outPath);
}

/** The files a checkpoint describes must be there and at least as long as it says. */
export function checkResumeFiles(outPath: string, errorsPath: string, c: Checkpoint): void {
  const restart = `delete ${progressPathFor(outPath)} to start over`;
  for (const [f, len] of [[`${outPath}.partial`, c.outBytes], [`${errorsPath}.partial`, c.errBytes], [aheadPathFor(outPath), c.aheadBytes]] as const) {
    let size: number;
    try {
      size = fs.statSync(f).size;
    } catch {
      if (len > 0) throw new ResumeError(`cannot resume: ${f} is missing but the checkpoint says ${len} bytes were written; ${restart}`);
      continue;
    }
    if (size < len) throw new ResumeError(`cannot resume: ${f} is shorter (${size} bytes) than its checkpoint (${len} bytes); ${restart}`);
  }
}

/**
 * A checkpoint marked complete: scoring had finished when the run stopped, maybe between the final
 * renames. Finish those renames; the caller rebuilds the summary from the final files.
 */
export function completeFinishedRun(outPath: string, errorsPath: string, c: Checkpoint): void {
  const restart = `delete ${progressPathFor(outPath)} to start over`;
  for (const [tmp, fin, len] of [[`${outPath}.partial`, outPath, c.outBytes], [`${errorsPath}.partial`, errorsPath, c.errBytes]] as const) {
    const src = fs.existsSync(tmp) ? tmp : fs.existsSync(fin) ? fin : null;
    if (src === null) {
      if (len > 0) throw new ResumeError(`cannot resume: the run had finished but neither ${tmp} nor ${fin} exists; ${restart}`);
      continue;
    }
    const size = fs.statSync(src).size;
    if (size < len) throw new ResumeError(`cannot resume: ${src} is shorter (${size} bytes) than its checkpoint (${len} bytes); ${restart}`);
    if (size > len) fs.truncateSync(src, len);
  }
  fs.rmSync(aheadPathFor(outPath), { force: true });
  if (c.errBytes === 0) {
    fs.rmSync(`${errorsPath}.partial`, { force: true });
    fs.rmSync(errorsPath, { force: true });
  }
  finishRenames(outPath, errorsPath, null);
}

/** Results in `<out>.ahead` (first `bytes` bytes) for records at or after `from`: index → output line. */
export function readAhead(out: string, bytes: number, from: number): Map<number, string> {
  const m = new Map<number, string>();
  for (const l of readLinesUpTo(aheadPathFor(out), bytes)) {
    const tab = l.indexOf('\t');
    const i = Number(l.slice(0, tab));
    if (tab <= 0 || !Number.isInteger(i)) throw new ResumeError(`cannot resume: ${aheadPathFor(out)} has a malformed line; delete ${progressPathFor(out)} to start over`);
    if (i >= from) m.set(i, l.slice(tab + 1));
  }
  return m;
}

/** Complete lines of the first `bytes` bytes of a file (rebuilding statistics on resume). */
export function* readLinesUpTo(file: string, bytes: number): Generator<string> {
  if (bytes <= 0) return;
  const fd = fs.openSync(file, 'r');
  try {
    const chunk = Buffer.alloc(1 << 20);
    let carry: Buffer = Buffer.alloc(0);
    for (let pos = 0; pos < bytes;) {
      const n = fs.readSync(fd, chunk, 0, Math.min(chunk.length, bytes - pos), pos);
      if (n === 0) break;
      pos += n;
      const data = Buffer.concat([carry, chunk.subarray(0, n)]);
      let start = 0;
      for (let i = data.indexOf(0x0a); i !== -1; i = data.indexOf(0x0a, start)) {
        const l = data.subarray(start, i).toString('utf8');
        start = i + 1;
        if (l.trim() !== '') yield l;
      }
      carry = Buffer.from(data.subarray(start));
    }
    const last = carry.toString('utf8');
    if (last.trim() !== '') yield last;
  } finally {
    fs.closeSync(fd);
  }
}

