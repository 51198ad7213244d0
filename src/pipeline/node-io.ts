// Node-only file plumbing for the pipeline: reading JSONL / JSON-array records with their line
// numbers, atomic output files, the resumable scored-output writer with its checkpoint sidecar, and
// the terminal progress reporter. The scorer itself (scorer.ts) never touches files.

import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { SourcedRecord } from './input.js';
import { InputError, ResumeError } from '../errors.js';

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

function parseLine(text: string, loc: string): { record: unknown; error?: string } {
  try {
    return { record: JSON.parse(text) };
  } catch (e) {
    return { record: undefined, error: `malformed JSON: ${(e as Error).message}` };
  }
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
    let text = bytes.toString('utf8');
    if (text.endsWith('\n')) text = text.slice(0, -1);
    if (text.endsWith('\r')) text = text.slice(0, -1);
    if (line === 1 && text.charCodeAt(0) === 0xfeff) text = text.slice(1);
    if (text.trim() === '') return null;
    const loc = `${name}:${line}`;
    const p = parseLine(text, loc);
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
  const text = fs.readFileSync(file, 'utf8').replace(/^\ufeff/, '');
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
  return arr.map((rec, k) => new FileRecord(rec, `${name}:${lines[k] ?? 1}`, undefined, lines[k] ?? 1, 0));
}

export interface RecordSource {
  format: InputFormat;
  /** Records from the resume point on. */
  records: AsyncIterable<FileRecord> | Iterable<FileRecord>;
  /** Total records in the file when known up front (arrays), else null. */
  total: number | null;
}

export function openInput(file: string, name: string, from?: InputPosition): RecordSource {
  const format = sniffFormat(file);
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

export interface InputIdentity {
  path: string;
  size: number;
  mtimeMs: number;
  /** sha256 of the first KiB */
  head: string;
}

export function inputIdentity(file: string): InputIdentity {
  const st = fs.statSync(file);
  const fd = fs.openSync(file, 'r');
  const buf = Buffer.alloc(Math.min(1024, st.size));
  try { fs.readSync(fd, buf, 0, buf.length, 0); } finally { fs.closeSync(fd); }
  return { path: path.resolve(file), size: st.size, mtimeMs: st.mtimeMs, head: createHash('sha256').update(buf).digest('hex') };
}

export function hashOptions(o: unknown): string {
  return createHash('sha256').update(JSON.stringify(o)).digest('hex').slice(0, 16);
}

// ---- atomic output -----------------------------------------------------------------------------

function fsyncDir(dir: string): void {
  try {
    const fd = fs.openSync(dir, 'r');
    try { fs.fsyncSync(fd); } finally { fs.closeSync(fd); }
  } catch { /* not supported everywhere; the rename itself is atomic */ }
}

/** Write a whole file atomically: a temporary file next to it, fsync, rename. */
export function writeFileAtomic(file: string, data: string): void {
  const tmp = `${file}.tmp-${process.pid}`;
  const fd = fs.openSync(tmp, 'w');
  try {
    fs.writeSync(fd, data);
    fs.fsyncSync(fd);
  } finally {
    fs.closeSync(fd);
  }
  fs.renameSync(tmp, file);
  fsyncDir(path.dirname(path.resolve(file)));
}

/** A buffered append-only file that becomes `final` atomically on commit(). */
export class AtomicWriter {
  private fd: number;
  private buf: string[] = [];
  private bufLen = 0;
  /** Bytes written (flushed or not). */
  bytes = 0;
  lines = 0;

  constructor(readonly final: string, readonly tmp = `${final}.tmp-${process.pid}`, opts: { append?: boolean } = {}) {
    this.fd = fs.openSync(tmp, opts.append ? 'a' : 'w');
    if (opts.append) this.bytes = fs.fstatSync(this.fd).size;
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
    fs.writeSync(this.fd, this.buf.join(''));
    this.buf = [];
    this.bufLen = 0;
  }

  sync(): void {
    this.flush();
    fs.fsyncSync(this.fd);
  }

  commit(): void {
    this.sync();
    fs.closeSync(this.fd);
    fs.renameSync(this.tmp, this.final);
    fsyncDir(path.dirname(path.resolve(this.final)));
  }

  /** Close without renaming; remove the temporary file unless `keep`. */
  abort(keep = false): void {
    try { this.flush(); fs.closeSync(this.fd); } catch { /* already closed */ }
    if (!keep) fs.rmSync(this.tmp, { force: true });
  }
}

// ---- resumable scored output -------------------------------------------------------------------
// Scored records go, in input order, to `<out>.partial` and errors to `<errors>.partial`; every so
// often both are fsynced and `<out>.progress.json` (written atomically) records how far they are
// complete: records consumed, input byte offset and line, the byte length of each partial file, the
// input's identity (size, mtime, sha256 of its first KiB) and a hash of the scoring options. After a
// crash or kill -9, --resume truncates both partials to the checkpointed lengths (dropping any line
// written after it, complete or torn), re-reads the input from the checkpointed offset and goes on:
// every record ends up exactly once, in order. At the end the partials are renamed to their final
// names and the sidecar is removed.

export interface Checkpoint {
  version: 1;
  position: InputPosition;
  outBytes: number;
  errBytes: number;
  input: InputIdentity;
  optionsHash: string;
  savedAt: string;
}

export { ResumeError } from '../errors.js';

export const progressPathFor = (out: string) => `${out}.progress.json`;

export function readCheckpoint(out: string): Checkpoint | null {
  const p = progressPathFor(out);
  if (!fs.existsSync(p)) return null;
  try {
    const c = JSON.parse(fs.readFileSync(p, 'utf8')) as Checkpoint;
    if (c.version !== 1 || !c.position) throw new Error('unknown version');
    return c;
  } catch (e) {
    throw new ResumeError(`${p}: unreadable checkpoint (${(e as Error).message}); delete it to start over`);
  }
}

/** Why a checkpoint cannot be resumed with this input and these options, or null when it can. */
export function checkpointMismatch(c: Checkpoint, input: InputIdentity, optionsHash: string): string | null {
  if (c.input.size !== input.size || c.input.head !== input.head || c.input.mtimeMs !== input.mtimeMs) {
    return `the input changed since the checkpoint (${c.input.path}: size ${c.input.size}, mtime ${new Date(c.input.mtimeMs).toISOString()})`;
  }
  if (c.optionsHash !== optionsHash) return 'the scoring options (models, templates, --max-len, fields, cosine) differ from the interrupted run';
  return null;
}

export class ScoredOutput {
  readonly out: AtomicWriter;
  readonly errors: AtomicWriter;
  private lastCheckpoint = 0;

  constructor(
    readonly outPath: string,
    readonly errorsPath: string,
    private readonly identity: InputIdentity,
    private readonly optionsHash: string,
    resumeFrom: Checkpoint | null,
  ) {
    const outTmp = `${outPath}.partial`, errTmp = `${errorsPath}.partial`;
    // A fresh start: a checkpoint left by an earlier run no longer describes the partial files.
    if (!resumeFrom) fs.rmSync(progressPathFor(outPath), { force: true });
    if (resumeFrom) {
      // Drop whatever was written after the checkpoint (possibly a torn line).
      for (const [f, len] of [[outTmp, resumeFrom.outBytes], [errTmp, resumeFrom.errBytes]] as const) {
        if (!fs.existsSync(f)) {
          if (len > 0) throw new ResumeError(`${f} is missing but the checkpoint says ${len} bytes were written; delete ${progressPathFor(outPath)} to start over`);
          fs.writeFileSync(f, '');
        }
        const size = fs.statSync(f).size;
        if (size < len) throw new ResumeError(`${f} is shorter (${size} bytes) than its checkpoint (${len}); delete ${progressPathFor(outPath)} to start over`);
        fs.truncateSync(f, len);
      }
    }
    this.out = new AtomicWriter(outPath, outTmp, { append: !!resumeFrom });
    this.errors = new AtomicWriter(errorsPath, errTmp, { append: !!resumeFrom });
    this.lastCheckpoint = Date.now();
  }

  /** fsync both partials, then record the position atomically. */
  checkpoint(position: InputPosition): void {
    this.out.sync();
    this.errors.sync();
    const c: Checkpoint = {
      version: 1, position, outBytes: this.out.bytes, errBytes: this.errors.bytes, input: this.identity,
      optionsHash: this.optionsHash, savedAt: new Date().toISOString(),
    };
    writeFileAtomic(progressPathFor(this.outPath), JSON.stringify(c, null, 2) + '\n');
    this.lastCheckpoint = Date.now();
  }

  msSinceCheckpoint(): number {
    return Date.now() - this.lastCheckpoint;
  }

  /** Rename the partials to their final names (no errors: no errors file) and drop the sidecar. */
  finish(): void {
    this.out.commit();
    if (this.errors.bytes > 0) this.errors.commit();
    else {
      this.errors.abort();
      fs.rmSync(this.errorsPath, { force: true }); // a stale errors file from an earlier run
    }
    fs.rmSync(progressPathFor(this.outPath), { force: true });
  }
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
