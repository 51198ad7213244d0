// Node-only file plumbing for the pipeline: reading JSONL / JSON-array records with their line
// numbers, atomic output files, the resumable scored-output writer with its checkpoint sidecar, and
// the terminal progress reporter. The scorer itself (scorer.ts) never touches files.

import { isUtf8 } from 'node:buffer';
import { createHash, type Hash } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { settings } from '../env.js';
import { ConcordError, InputError, ResumeError } from '../errors.js';
import { SourcedRecord } from './input.js';

// ---- input -------------------------------------------------------------------------------------

/** A record read from a file, with the input position just after it (for checkpoints). */
export class FileRecord extends SourcedRecord {
  constructor(record: unknown, loc: string, parseError: string | undefined, readonly line: number, readonly endOffset: number) {
    super(record, loc, parseError);
  }
}

export interface InputPosition {
  /** Records consumed (non-blank JSONL lines / array elements). */
  units: number;
  /** JSONL: byte offset just after the last consumed line. */
  offset: number;
  /** Line number of the last consumed line (0 before the first). */
  line: number;
}

export type InputFormat = 'jsonl' | 'json-array';

/** What a file looks like from its first bytes: a text format concord reads, or something else. */
export type InputKind = InputFormat | 'parquet' | 'gzip' | 'zstd' | 'bzip2' | 'xz' | 'zip' | 'arrow' | 'utf16' | 'binary';

export interface DetectedInput {
  kind: InputKind;
  /** e.g. 'a Parquet file (starts with PAR1)' */
  what: string;
}

const MAGIC: { kind: InputKind; bytes: number[]; what: string }[] = [
  { kind: 'parquet', bytes: [0x50, 0x41, 0x52, 0x31], what: 'a Parquet file (starts with PAR1)' },
  { kind: 'gzip', bytes: [0x1f, 0x8b], what: 'a gzip-compressed file' },
  { kind: 'zstd', bytes: [0x28, 0xb5, 0x2f, 0xfd], what: 'a zstd-compressed file' },
  { kind: 'bzip2', bytes: [0x42, 0x5a, 0x68], what: 'a bzip2-compressed file' },
  { kind: 'xz', bytes: [0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00], what: 'an xz-compressed file' },
  { kind: 'zip', bytes: [0x50, 0x4b, 0x03, 0x04], what: 'a zip archive' },
  { kind: 'arrow', bytes: [0x41, 0x52, 0x52, 0x4f, 0x57, 0x31], what: 'an Arrow IPC file' },
  { kind: 'utf16', bytes: [0xff, 0xfe], what: 'UTF-16 text (little-endian BOM); convert it to UTF-8' },
  { kind: 'utf16', bytes: [0xfe, 0xff], what: 'UTF-16 text (big-endian BOM); convert it to UTF-8' },
];

/**
 * Classify a file by its first 8 KiB: a known magic number (Parquet, gzip, zstd, ...), NUL bytes
 * (binary), else JSONL, or a JSON array when the first non-blank character is '['. The reader
 * dispatch (openInput) consults this; formats other than jsonl/json-array are refused there
 * unless a reader for them exists.
 */
export function detectInputKind(file: string): DetectedInput {
  const fd = fs.openSync(file, 'r');
  let head: Buffer;
  try {
    const buf = Buffer.alloc(8192);
    const n = fs.readSync(fd, buf, 0, buf.length, 0);
    head = buf.subarray(0, n);
  } finally {
    fs.closeSync(fd);
  }
  for (const m of MAGIC) if (head.length >= m.bytes.length && m.bytes.every((b, i) => head[i] === b)) return { kind: m.kind, what: m.what };
  const nul = head.indexOf(0);
  if (nul !== -1) return { kind: 'binary', what: `binary data (a NUL byte at offset ${nul})` };
  return { kind: sniffFormatOf(head, file), what: 'text' };
}

function sniffFormatOf(head: Buffer, file: string): InputFormat {
  let i = 0;
  if (head[0] === 0xef && head[1] === 0xbb && head[2] === 0xbf) i = 3; // BOM
  for (; i < head.length; i++) {
    const c = head[i];
    if (c === 0x20 || c === 0x0a || c === 0x0d || c === 0x09) continue;
    return c === 0x5b ? 'json-array' : 'jsonl';
  }
  // All blank so far: look further (rare; a file of blank lines is JSONL with no records).
  return head.length < 8192 ? 'jsonl' : sniffFormat(file);
}

/** JSONL unless the first non-blank byte is '[' (a JSON array, read whole). */
export function sniffFormat(file: string): InputFormat {
  const fd = fs.openSync(file, 'r');
  try {
    const buf = Buffer.alloc(4096);
    for (let pos = 0; ;) {
      const n = fs.readSync(fd, buf, 0, buf.length, pos);
      if (n === 0) return 'jsonl';
      for (let i = 0; i < n; i++) {
        const c = buf[i];
        if (c === 0x20 || c === 0x0a || c === 0x0d || c === 0x09) continue;
        if (c === 0xef && buf[i + 1] === 0xbb && buf[i + 2] === 0xbf) { i += 2; continue; } // BOM
        return c === 0x5b ? 'json-array' : 'jsonl';
      }
      pos += n;
    }
  } finally {
    fs.closeSync(fd);
  }
}

/** Deepest nesting a record may have (JSON.stringify recurses; far deeper records would overflow the stack). */
export const MAX_RECORD_DEPTH = 512;

/** Nesting depth of a parsed JSON value, iteratively; stops counting past `limit`. */
export function jsonDepth(v: unknown, limit = MAX_RECORD_DEPTH): number {
  let max = 0;
  const stack: [unknown, number][] = [[v, 1]];
  while (stack.length > 0) {
    const [x, d] = stack.pop()!;
    if (x === null || typeof x !== 'object') continue;
    if (d > max) { max = d; if (max > limit) return max; }
    for (const c of Array.isArray(x) ? x : Object.values(x as object)) if (c !== null && typeof c === 'object') stack.push([c, d + 1]);
  }
  return max;
}

/** Byte offset of the first invalid UTF-8 sequence in `b` (-1 when valid). */
export function firstInvalidUtf8(b: Uint8Array): number {
  for (let i = 0; i < b.length;) {
    const c = b[i];
    let n = 0, min = 0;
    if (c < 0x80) { i++; continue; }
    else if (c >= 0xc2 && c <= 0xdf) { n = 1; min = 0x80; }
    else if (c >= 0xe0 && c <= 0xef) { n = 2; min = 0x800; }
    else if (c >= 0xf0 && c <= 0xf4) { n = 3; min = 0x10000; }
    else return i;
    let cp = c & (0x3f >> n);
    for (let k = 1; k <= n; k++) {
      const d = b[i + k];
      if (d === undefined || (d & 0xc0) !== 0x80) return i;
      cp = (cp << 6) | (d & 0x3f);
    }
    if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) return i;
    i += n + 1;
  }
  return -1;
}

function parseLine(text: string): { record: unknown; error?: string } {
  let record: unknown;
  try {
    record = JSON.parse(text);
  } catch (e) {
    return { record: undefined, error: `malformed JSON: ${(e as Error).message}` };
  }
  return checkDepth(record);
}

function checkDepth(record: unknown): { record: unknown; error?: string } {
  if (jsonDepth(record) > MAX_RECORD_DEPTH) return { record: undefined, error: `record nested more than ${MAX_RECORD_DEPTH} levels deep` };
  return { record };
}

/**
 * JSONL records one line at a time (blank lines skipped), starting at a byte offset when resuming.
 * `name` is how locations are spelled ('data.jsonl:12').
 */
export async function* readJsonl(file: string, name: string, from: InputPosition = { units: 0, offset: 0, line: 0 }): AsyncGenerator<FileRecord> {
  const stream = fs.createReadStream(file, { start: from.offset, highWaterMark: 1 << 20 });
  let carry: Buffer | null = null;
  let offset = from.offset;
  let line = from.line;
  const emit = (bytes: Buffer): FileRecord | null => {
    line++;
    offset += bytes.length;
    if (!isUtf8(bytes)) {
      // Decoding would replace the bad bytes by U+FFFD and score altered text: an error record instead.
      const at = firstInvalidUtf8(bytes);
      return new FileRecord(undefined, `${name}:${line}`, `invalid UTF-8 (byte ${at + 1} of the line)`, line, offset);
    }
    let text = bytes.toString('utf8');
    if (text.endsWith('\n')) text = text.slice(0, -1);
    if (text.endsWith('\r')) text = text.slice(0, -1);
    if (line === 1 && text.charCodeAt(0) === 0xfeff) text = text.slice(1);
    if (text.trim() === '') return null;
    const loc = `${name}:${line}`;
    const p = parseLine(text);
    return new FileRecord(p.record, loc, p.error, line, offset);
  };
  for await (const chunk of stream as AsyncIterable<Buffer>) {
    let start = 0;
    for (let i = chunk.indexOf(0x0a); i !== -1; i = chunk.indexOf(0x0a, start)) {
      let bytes = chunk.subarray(start, i + 1);
      if (carry) { bytes = Buffer.concat([carry, bytes]); carry = null; }
      start = i + 1;
      const r = emit(bytes);
      if (r) yield r;
    }
    if (start < chunk.length) carry = carry ? Buffer.concat([carry, chunk.subarray(start)]) : Buffer.from(chunk.subarray(start));
  }
  if (carry && carry.length > 0) {
    const r = emit(carry);
    if (r) yield r;
  }
}

/** 1-based line numbers of the top-level elements of a JSON array text. */
export function arrayElementLines(text: string): number[] {
  const lines: number[] = [];
  let line = 1, depth = 0, inStr = false, esc = false, expecting = false;
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (c === '\n') line++;
    if (inStr) {
      if (esc) esc = false;
      else if (c === '\\') esc = true;
      else if (c === '"') inStr = false;
      continue;
    }
    if (c === ' ' || c === '\n' || c === '\r' || c === '\t') continue;
    if (depth === 1 && expecting && c !== ']') { lines.push(line); expecting = false; }
    if (c === '"') inStr = true;
    else if (c === '[' || c === '{') { depth++; if (depth === 1) expecting = true; }
    else if (c === ']' || c === '}') depth--;
    else if (c === ',' && depth === 1) expecting = true;
  }
  return lines;
}

export { InputError } from '../errors.js';

/** A JSON array file, read and parsed whole (README: arrays are not streamed). */
export function readJsonArray(file: string, name: string): FileRecord[] {
  const bytes = fs.readFileSync(file);
  if (!isUtf8(bytes)) {
    const at = firstInvalidUtf8(bytes);
    throw new InputError(`${name}:${bytes.subarray(0, at).toString('latin1').split('\n').length}: invalid UTF-8 (byte ${at} of the file) in a JSON array (read whole, so the file stops here)`);
  }
  const text = bytes.toString('utf8').replace(/^\ufeff/, '');
  let arr: unknown;
  try {
    arr = JSON.parse(text);
  } catch (e) {
    const msg = (e as Error).message;
    const m = /position (\d+)/.exec(msg);
    const at = m ? text.slice(0, Number(m[1])).split('\n').length : 1;
    throw new InputError(`${name}:${at}: malformed JSON array: ${msg}`);
  }
  if (!Array.isArray(arr)) throw new InputError(`${name}:1: expected a JSON array or JSONL`);
  const lines = arrayElementLines(text);
  return arr.map((rec, k) => {
    const c = checkDepth(rec);
    return new FileRecord(c.record, `${name}:${lines[k] ?? 1}`, c.error, lines[k] ?? 1, 0);
  });
}

export interface RecordSource {
  format: InputFormat;
  /** Records from the resume point on. */
  records: AsyncIterable<FileRecord> | Iterable<FileRecord>;
  /** Total records in the file when known up front (arrays), else null. */
  total: number | null;
}

export function openInput(file: string, name: string, from?: InputPosition): RecordSource {
  const d = detectInputKind(file);
  if (d.kind !== 'jsonl' && d.kind !== 'json-array') throw new InputError(`${name}: this looks like ${d.what}, not JSONL or a JSON array`);
  const format = d.kind;
  if (format === 'jsonl') return { format, records: readJsonl(file, name, from), total: null };
  const all = readJsonArray(file, name);
  return { format, records: all.slice(from?.units ?? 0), total: all.length };
}

/** Non-blank lines of a JSONL file (a fast byte scan, for progress totals). */
export async function countJsonlRecords(file: string): Promise<number> {
  let n = 0, nonBlank = false;
  for await (const chunk of fs.createReadStream(file, { highWaterMark: 1 << 20 }) as AsyncIterable<Buffer>) {
    for (let i = 0; i < chunk.length; i++) {
      const c = chunk[i];
      if (c === 0x0a) { if (nonBlank) n++; nonBlank = false; }
      else if (c !== 0x20 && c !== 0x0d && c !== 0x09) nonBlank = true;
    }
  }
  return n + (nonBlank ? 1 : 0);
}

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

// ---- checked writes ----------------------------------------------------------------------------

/** Writing an output failed (disk full, I/O error): the command fails and no final file is torn. */
export class OutputError extends ConcordError {}

function outputError(file: string, what: string, e: unknown): OutputError {
  const err = e as NodeJS.ErrnoException;
  return new OutputError(`${file}: ${what} failed: ${err.code ? `${err.code} ` : ''}${(err.message ?? String(e)).replace(/^[A-Z]+: /, '')}`);
}

/**
 * Test hook: CONCORD_TEST_FAIL_WRITE=<substring>:<bytes> makes writes to files whose path contains
 * <substring> fail with ENOSPC once <bytes> bytes have gone to that file (the first part of the
 * write that crosses the limit is written, as a full disk does).
 */
function injectedLimit(file: string): number {
  const spec = settings.testFailWrite;
  if (!spec) return Infinity;
  const k = spec.lastIndexOf(':');
  const sub = spec.slice(0, k), n = Number(spec.slice(k + 1));
  return k > 0 && file.includes(sub) && Number.isFinite(n) ? n : Infinity;
}

/** An open file with every write checked: short writes are retried, errors raise OutputError. */
export class CheckedFile {
  private fd: number | null;
  /** Bytes in the file (this object's writes included). */
  bytes = 0;
  private readonly limit: number;

  constructor(readonly file: string, flags: 'w' | 'a', readonly label = file) {
    try {
      this.fd = fs.openSync(file, flags);
      if (flags === 'a') this.bytes = fs.fstatSync(this.fd).size;
    } catch (e) {
      throw outputError(label, 'opening', e);
    }
    this.limit = injectedLimit(label);
  }

  write(data: string | Buffer): void {
    const buf = typeof data === 'string' ? Buffer.from(data, 'utf8') : data;
    for (let off = 0; off < buf.length;) {
      let n: number;
      try {
        if (this.fd === null) throw new Error('file already closed');
        const room = this.limit - this.bytes;
        if (room <= 0) throw Object.assign(new Error('no space left on device (CONCORD_TEST_FAIL_WRITE)'), { code: 'ENOSPC' });
        n = fs.writeSync(this.fd, buf, off, Math.min(buf.length - off, room));
      } catch (e) {
        throw outputError(this.label, 'writing', e);
      }
      if (n <= 0) throw outputError(this.label, 'writing', Object.assign(new Error('the write wrote nothing'), { code: 'EIO' }));
      off += n;
      this.bytes += n;
    }
  }

  sync(): void {
    try {
      if (this.fd !== null) fs.fsyncSync(this.fd);
    } catch (e) {
      throw outputError(this.label, 'fsync', e);
    }
  }

  truncate(len: number): void {
    try {
      if (this.fd !== null) fs.ftruncateSync(this.fd, len);
      this.bytes = len;
    } catch (e) {
      throw outputError(this.label, 'truncating', e);
    }
  }

  close(): void {
    if (this.fd === null) return;
    const fd = this.fd;
    this.fd = null;
    try {
      fs.closeSync(fd);
    } catch (e) {
      throw outputError(this.label, 'closing', e);
    }
  }

  /** Close, ignoring errors (cleanup paths). */
  closeQuietly(): void {
    try { this.close(); } catch { /* cleanup */ }
  }
}

function fsyncDir(dir: string): void {
  try {
    const fd = fs.openSync(dir, 'r');
    try { fs.fsyncSync(fd); } finally { fs.closeSync(fd); }
  } catch { /* not supported everywhere; the rename itself is atomic */ }
}

export const tmpPathFor = (file: string) => `${file}.tmp-${process.pid}`;

function renameInto(tmp: string, file: string): void {
  try {
    fs.renameSync(tmp, file);
  } catch (e) {
    throw outputError(file, `renaming ${tmp} into place`, e);
  }
  fsyncDir(path.dirname(path.resolve(file)));
}

/** Write a whole file atomically: a temporary file next to it, every write checked, fsync, rename. */
export function writeFileAtomic(file: string, data: string): void {
  const tmp = tmpPathFor(file);
  const f = new CheckedFile(tmp, 'w', file);
  try {
    f.write(data);
    f.sync();
    f.close();
  } catch (e) {
    f.closeQuietly();
    fs.rmSync(tmp, { force: true });
    throw e;
  }
  renameInto(tmp, file);
}

/** A buffered append-only file that becomes `final` atomically on commit(). Every write is checked. */
export class AtomicWriter {
  private f: CheckedFile;
  private buf: string[] = [];
  private bufLen = 0;
  /** Bytes written (flushed or not). */
  bytes = 0;
  lines = 0;

  constructor(readonly final: string, readonly tmp = tmpPathFor(final), opts: { append?: boolean } = {}) {
    this.f = new CheckedFile(tmp, opts.append ? 'a' : 'w', final);
    this.bytes = this.f.bytes;
  }

  write(line: string): void {
    const s = line.endsWith('\n') ? line : line + '\n';
    this.buf.push(s);
    this.bufLen += s.length;
    this.bytes += Buffer.byteLength(s);
    this.lines++;
    if (this.bufLen > 1 << 16) this.flush();
  }

  flush(): void {
    if (this.buf.length === 0) return;
    const data = this.buf.join('');
    this.buf = [];
    this.bufLen = 0;
    this.f.write(data);
  }

  sync(): void {
    this.flush();
    this.f.sync();
  }

  /** Drop everything after the first `len` bytes (flushing first). */
  truncate(len: number): void {
    this.flush();
    this.f.truncate(len);
    this.bytes = len;
  }

  commit(): void {
    try {
      this.sync();
      this.f.close();
    } catch (e) {
      this.abort();
      throw e;
    }
    renameInto(this.tmp, this.final);
  }

  /** Close without renaming; remove the temporary file unless `keep`. */
  abort(keep = false): void {
    if (keep) {
      try { this.flush(); } catch { /* the checkpoint stands */ }
    }
    this.buf = [];
    this.bufLen = 0;
    this.f.closeQuietly();
    if (!keep) fs.rmSync(this.tmp, { force: true });
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

/**
 * Why a checkpoint cannot be resumed with this input file and these options, or null when it can.
 * On success the returned hasher holds the input's checkpointed prefix (to go on hashing from).
 */
export function checkpointMismatch(c: Checkpoint, input: string, optionsHash: string): { why: string } | { hasher: PrefixHasher } {
  if (c.optionsHash !== optionsHash) return { why: 'the scoring options (models, templates, --max-len, fields, cosine, --limit) differ from the interrupted run' };
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

// ---- progress ----------------------------------------------------------------------------------

export interface ProgressState {
  done: number;
  errors: number;
  tokens: number;
  elapsedMs: number;
}

export function formatDuration(s: number): string {
  if (!Number.isFinite(s)) return '?';
  if (s < 60) return `${Math.round(s)}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m${String(Math.round(s % 60)).padStart(2, '0')}s`;
  return `${Math.floor(s / 3600)}h${String(Math.floor((s % 3600) / 60)).padStart(2, '0')}m`;
}

/**
 * A progress bar with pairs/s and ETA on a TTY (redrawn at most 10×/s), plain lines every
 * `intervalMs` (default 10 s) when stderr is a pipe or file; nothing with quiet.
 */
export class ProgressReporter {
  private lastDraw = 0;
  private drawn = false;
  private readonly tty: boolean;

  constructor(
    private readonly o: { total: number | null; offset?: number; quiet?: boolean; label?: string; stream?: NodeJS.WriteStream; intervalMs?: number },
  ) {
    this.tty = !!(o.stream ?? process.stderr).isTTY;
  }

  private line(p: ProgressState): string {
    const s = p.elapsedMs / 1000;
    const rate = s > 0 ? p.done / s : 0;
    const done = p.done + (this.o.offset ?? 0);
    const total = this.o.total;
    const eta = total !== null && rate > 0 ? formatDuration((total - done) / rate) : '?';
    const tok = s > 0 ? p.tokens / s : 0;
    const err = p.errors ? `  ${p.errors} errors` : '';
    if (total !== null && this.tty) {
      const w = 24, f = Math.min(w, Math.round((done / Math.max(1, total)) * w));
      return `${this.o.label ?? 'scoring'} [${'#'.repeat(f)}${'.'.repeat(w - f)}] ${done}/${total}  ${rate.toFixed(1)} pairs/s  ${Math.round(tok)} tok/s  ETA ${eta}${err}`;
    }
    return `${this.o.label ?? 'scoring'}: ${done}${total !== null ? `/${total}` : ''} pairs  ${rate.toFixed(1)} pairs/s  ${Math.round(tok)} tok/s  ETA ${eta}${err}`;
  }

  update(p: ProgressState): void {
    if (this.o.quiet) return;
    const now = Date.now();
    const stream = this.o.stream ?? process.stderr;
    if (this.tty) {
      if (now - this.lastDraw < 100) return;
      stream.write(`\r\x1b[2K${this.line(p)}`);
      this.drawn = true;
    } else {
      if (now - this.lastDraw < (this.o.intervalMs ?? 10_000)) return;
      if (this.lastDraw === 0) { this.lastDraw = now; return; } // first line after one interval
      stream.write(this.line(p) + '\n');
    }
    this.lastDraw = now;
  }

  end(p: ProgressState): void {
    if (this.o.quiet) return;
    const stream = this.o.stream ?? process.stderr;
    if (this.tty) stream.write(`\r\x1b[2K${this.line(p)}\n`);
    else if (this.drawn || p.elapsedMs > (this.o.intervalMs ?? 10_000)) stream.write(this.line(p) + '\n');
  }
}
