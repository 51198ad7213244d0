// One record reader for every JSONL stream (a plain file, or the bytes of a .gz / .zst), with the
// guards every record passes: valid UTF-8, nesting depth ≤ MAX_RECORD_DEPTH, a line no longer than
// CONCORD_MAX_LINE_BYTES — each failure a per-record error naming file:line, the rest still read.
// Lines are assembled from the chunks they span in one concatenation (linear in the line's length).
// JSON arrays are read and parsed whole, their elements located by line.

import { isUtf8 } from 'node:buffer';
import * as fs from 'node:fs';
import { settings } from '../env.js';
import { InputError } from '../errors.js';
import { SourcedRecord } from '../pipeline/input.js';

/** A record read from a file, with the input position just after it (for checkpoints). */
export class FileRecord extends SourcedRecord {
  constructor(record: unknown, loc: string, parseError: string | undefined, readonly line: number, readonly endOffset: number) {
    super(record, loc, parseError);
  }
}

export interface InputPosition {
  /** Records consumed (non-blank JSONL lines / array elements / Parquet rows). */
  units: number;
  /** Plain JSONL: byte offset just after the last consumed line. */
  offset: number;
  /** Line number of the last consumed line (0 before the first). */
  line: number;
}

export const START: InputPosition = Object.freeze({ units: 0, offset: 0, line: 0 });

/** Deepest nesting a record may have (JSON.stringify recurses; far deeper records would overflow the stack). */
export const MAX_RECORD_DEPTH = 512;

/** Default longest JSONL line (bytes, newline excluded): CONCORD_MAX_LINE_BYTES overrides it. */
export const DEFAULT_MAX_LINE_BYTES = 64 * 1024 * 1024;

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

function checkDepth(record: unknown): { record: unknown; error?: string } {
  if (jsonDepth(record) > MAX_RECORD_DEPTH) return { record: undefined, error: `record nested more than ${MAX_RECORD_DEPTH} levels deep` };
  return { record };
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

export interface JsonlOptions {
  /** How locations spell the file ('data.jsonl' → 'data.jsonl:12'). */
  name: string;
  /** Where the byte stream starts (a resumed plain file): its offset and line number. */
  from?: InputPosition;
  /** Skip this many records (non-blank lines) first, without parsing them. */
  skip?: number;
  /** Longest line in bytes (default settings.maxLineBytes). */
  maxLineBytes?: number;
}

/**
 * Non-blank lines of a byte stream as records. A line's pieces are kept as a list and joined once
 * at its newline; a line past the cap keeps no bytes at all and becomes an error record.
 */
export async function* jsonlRecords(chunks: AsyncIterable<Buffer>, o: JsonlOptions): AsyncGenerator<FileRecord> {
  const max = o.maxLineBytes ?? settings.maxLineBytes;
  const skip = o.skip ?? 0;
  let offset = o.from?.offset ?? 0, line = o.from?.line ?? 0, units = 0;
  let parts: Buffer[] = [], partLen = 0, overlong = false;
  const emit = (bytes: Buffer | null, len: number): FileRecord | null => {
    line++;
    offset += len;
    const loc = `${o.name}:${line}`;
    if (bytes === null) {
      if (units++ < skip) return null;
      return new FileRecord(undefined, loc, `line longer than ${max} bytes (CONCORD_MAX_LINE_BYTES; raise it to read such lines)`, line, offset);
    }
    if (!isUtf8(bytes)) {
      if (units++ < skip) return null;
      // Decoding would replace the bad bytes by U+FFFD and score altered text: an error record instead.
      return new FileRecord(undefined, loc, `invalid UTF-8 (byte ${firstInvalidUtf8(bytes) + 1} of the line)`, line, offset);
    }
    let text = bytes.toString('utf8');
    if (text.endsWith('\n')) text = text.slice(0, -1);
    if (text.endsWith('\r')) text = text.slice(0, -1);
    if (line === 1 && text.charCodeAt(0) === 0xfeff) text = text.slice(1);
    if (text.trim() === '') return null;
    if (units++ < skip) return null;
    const p = parseLine(text);
    return new FileRecord(p.record, loc, p.error, line, offset);
  };
  const take = (piece: Buffer | null): FileRecord | null => {
    const len = partLen + (piece?.length ?? 0);
    const content = piece && piece[piece.length - 1] === 0x0a ? len - 1 : len;
    const bytes = overlong || content > max ? null : parts.length === 0 ? piece! : Buffer.concat(piece ? [...parts, piece] : parts);
    parts = [];
    partLen = 0;
    overlong = false;
    return emit(bytes, len);
  };
  for await (const chunk of chunks) {
    let start = 0;
    for (let i = chunk.indexOf(0x0a); i !== -1; i = chunk.indexOf(0x0a, start)) {
      const r = take(chunk.subarray(start, i + 1));
      start = i + 1;
      if (r) yield r;
    }
    if (start < chunk.length) {
      const rest = chunk.subarray(start);
      partLen += rest.length;
      if (!overlong) {
        if (partLen > max) { overlong = true; parts = []; }
        else parts.push(Buffer.from(rest));
      }
    }
  }
  if (partLen > 0) {
    const r = take(null);
    if (r) yield r;
  }
}

/** Non-blank lines of a byte stream (a fast scan, nothing parsed: record counts). */
export async function countLines(chunks: AsyncIterable<Buffer>): Promise<number> {
  let n = 0, nonBlank = false;
  for await (const chunk of chunks) {
    for (let i = 0; i < chunk.length; i++) {
      const c = chunk[i];
      if (c === 0x0a) { if (nonBlank) n++; nonBlank = false; }
      else if (c !== 0x20 && c !== 0x0d && c !== 0x09) nonBlank = true;
    }
  }
  return n + (nonBlank ? 1 : 0);
}

/** Byte offset and line number just after the first `k` non-blank lines of a plain JSONL file. */
export async function jsonlPositionAfter(file: string, k: number): Promise<InputPosition> {
  if (k <= 0) return { ...START };
  let units = 0, line = 0, offset = 0, nonBlank = false;
  for await (const chunk of fs.createReadStream(file, { highWaterMark: 1 << 20 }) as AsyncIterable<Buffer>) {
    for (let i = 0; i < chunk.length; i++) {
      const c = chunk[i];
      if (c === 0x0a) {
        line++;
        if (nonBlank && ++units === k) return { units: k, offset: offset + i + 1, line };
        nonBlank = false;
      } else if (c !== 0x20 && c !== 0x0d && c !== 0x09) nonBlank = true;
    }
    offset += chunk.length;
  }
  return { units, offset, line: line + (nonBlank ? 1 : 0) };
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

