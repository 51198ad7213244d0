// Which reader for this input (Node): one file (JSONL, JSONL compressed with gzip or zstd, one JSON
// array, Parquet), a folder of data files (a Hugging Face dataset: `data/train-00000-of-00004.parquet`
// …; `--split train` picks the train files), or a glob of shards — read in file order as one stream
// of records, each with its `file:line` (Parquet: `file:row`) location.
//
// A record's index is its position in that stream (non-blank JSONL lines, array elements, Parquet
// rows), the same whatever the format: sharding (src/shard) and resuming count records this way.
// One plain JSONL file resumes from the checkpoint's byte offset, as before; other inputs skip the
// records already done (Parquet skips whole row groups; JSONL byte-scans without parsing).

import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as zlib from 'node:zlib';
import { Decompress as ZstdDecompress } from 'fzstd';
import { globSync } from 'tinyglobby';
import {
  FileRecord, InputError, countJsonlRecords, openInput, readJsonArray, sniffFormat,
  type InputFormat, type InputPosition,
} from '../pipeline/node-io.js';
import { readParquetRows, parquetRowCount } from './parquet.js';

export type RecordFormat = 'jsonl' | 'jsonl.gz' | 'jsonl.zst' | 'json-array' | 'parquet';

export interface InputFile {
  path: string;
  /** How locations spell it (the path as the user gave it, or folder + relative path). */
  name: string;
  format: RecordFormat;
}

const DATA_FILE = /\.(parquet|jsonl|ndjson|json|jsonl\.gz|jsonl\.zst|ndjson\.gz|ndjson\.zst|json\.gz|json\.zst)$/i;
const GLOB_CHARS = /[*?[\]{}]/;

/** By content: Parquet magic, gzip or zstd magic (JSONL inside), else JSONL / JSON array. */
export function detectFormat(file: string): RecordFormat {
  const fd = fs.openSync(file, 'r');
  const head = Buffer.alloc(4);
  let n = 0;
  try { n = fs.readSync(fd, head, 0, 4, 0); } finally { fs.closeSync(fd); }
  if (n >= 4 && head.toString('latin1') === 'PAR1') return 'parquet';
  if (n >= 2 && head[0] === 0x1f && head[1] === 0x8b) return 'jsonl.gz';
  if (n >= 4 && head.readUInt32LE(0) === 0xfd2fb528) return 'jsonl.zst';
  return sniffFormat(file) === 'json-array' ? 'json-array' : 'jsonl';
}

const natural = (a: string, b: string) => a.localeCompare(b, 'en', { numeric: true });

/** The split a data file belongs to: `train-00000-of-00004.parquet` → train; `train/0000.parquet` → train. */
export function splitOf(rel: string): string | null {
  const base = path.basename(rel);
  const m = /^([A-Za-z][A-Za-z0-9_]*?)(?=[-.])/.exec(base);
  if (m && !/^\d/.test(base)) return m[1];
  const dir = path.basename(path.dirname(rel));
  return dir && dir !== '.' ? dir : null;
}

function inSplit(rel: string, split: string): boolean {
  if (splitOf(rel) === split) return true;
  return path.dirname(rel).split(/[\\/]/).includes(split);
}

function walk(dir: string, rel = ''): string[] {
  const out: string[] = [];
  for (const e of fs.readdirSync(path.join(dir, rel), { withFileTypes: true })) {
    if (e.name.startsWith('.')) continue; // .cache, .git, .huggingface
    const r = rel ? path.join(rel, e.name) : e.name;
    if (e.isDirectory()) out.push(...walk(dir, r));
    else if (e.isFile() && DATA_FILE.test(e.name)) out.push(r);
  }
  return out;
}

/**
 * The input files of `spec` in reading order. A folder: its data files (hidden entries skipped),
 * in natural path order; with several splits present, `split` must pick one. A glob: its matches in
 * natural order (`split` filters them too). A file: itself.
 */
export function resolveInputs(spec: string, o: { split?: string } = {}): InputFile[] {
  let rels: string[];
  let base = '';
  const isDir = fs.existsSync(spec) && fs.statSync(spec).isDirectory();
  if (isDir) {
    base = spec;
    rels = walk(spec).sort(natural);
    if (rels.length === 0) throw new InputError(`${spec}: no data files (.parquet, .jsonl, .jsonl.gz, .jsonl.zst, .json) in this folder`);
  } else if (!fs.existsSync(spec) && GLOB_CHARS.test(spec)) {
    rels = globSync([spec], { onlyFiles: true, expandDirectories: false }).sort(natural);
    if (rels.length === 0) throw new InputError(`${spec}: no file matches this pattern`);
  } else {
    if (!fs.existsSync(spec)) throw new InputError(`${spec}: no such file`);
    if (o.split) throw new InputError(`${spec}: --split applies to a dataset folder or a glob, not to one file`);
    return [{ path: spec, name: spec, format: detectFormat(spec) }];
  }
  if (o.split) {
    const picked = rels.filter((r) => inSplit(r, o.split!));
    if (picked.length === 0) {
      const have = [...new Set(rels.map(splitOf).filter(Boolean))].join(', ');
      throw new InputError(`${spec}: no files of split '${o.split}'${have ? ` (splits here: ${have})` : ''}`);
    }
    rels = picked;
  } else if (isDir) {
    const splits = [...new Set(rels.map(splitOf))];
    if (splits.length > 1 && splits.every((s) => s !== null)) {
      throw new InputError(`${spec}: several splits (${splits.join(', ')}); pass --split NAME to pick one`);
    }
  }
  return rels.map((r) => {
    const p = base ? path.join(base, r) : r;
    return { path: p, name: p, format: detectFormat(p) };
  });
}

// ---- line readers over (decompressed) byte streams --------------------------------------------------

async function* decompressed(file: InputFile): AsyncGenerator<Buffer> {
  const src = fs.createReadStream(file.path, { highWaterMark: 1 << 20 });
  if (file.format === 'jsonl.gz') {
    const gunzip = zlib.createGunzip();
    src.on('error', (e) => gunzip.destroy(e));
    try {
      for await (const c of src.pipe(gunzip) as AsyncIterable<Buffer>) yield c;
    } catch (e) {
      throw new InputError(`${file.name}: gzip: ${(e as Error).message}`);
    }
    return;
  }
  if (file.format === 'jsonl.zst') {
    const out: Buffer[] = [];
    let ended = false;
    const z = new ZstdDecompress((chunk, final) => { out.push(Buffer.from(chunk)); if (final) ended = true; });
    for await (const c of src as AsyncIterable<Buffer>) {
      try { z.push(c); } catch (e) { throw new InputError(`${file.name}: zstd: ${(e as Error).message}`); }
      while (out.length) yield out.shift()!;
    }
    if (!ended) {
      try { z.push(new Uint8Array(0), true); } catch (e) { throw new InputError(`${file.name}: zstd: truncated stream (${(e as Error).message})`); }
    }
    while (out.length) yield out.shift()!;
    return;
  }
  for await (const c of src as AsyncIterable<Buffer>) yield c;
}

function parse(text: string): { record: unknown; error?: string } {
  try {
    return { record: JSON.parse(text) };
  } catch (e) {
    return { record: undefined, error: `malformed JSON: ${(e as Error).message}` };
  }
}

/** Non-blank lines of a byte stream as records, skipping the first `skip` without parsing them. */
async function* jsonlLines(chunks: AsyncIterable<Buffer>, name: string, skip = 0): AsyncGenerator<FileRecord> {
  let carry: Buffer | null = null;
  let line = 0;
  let units = 0;
  function* emit(bytes: Buffer): Generator<FileRecord> {
    line++;
    let text = bytes.toString('utf8');
    if (text.endsWith('\n')) text = text.slice(0, -1);
    if (text.endsWith('\r')) text = text.slice(0, -1);
    if (line === 1 && text.charCodeAt(0) === 0xfeff) text = text.slice(1);
    if (text.trim() === '') return;
    if (units++ < skip) return;
    const p = parse(text);
    yield new FileRecord(p.record, `${name}:${line}`, p.error, line, 0);
  }
  for await (const chunk of chunks) {
    let start = 0;
    for (let i = chunk.indexOf(0x0a); i !== -1; i = chunk.indexOf(0x0a, start)) {
      let bytes = chunk.subarray(start, i + 1);
      if (carry) { bytes = Buffer.concat([carry, bytes]); carry = null; }
      start = i + 1;
      yield* emit(bytes);
    }
    if (start < chunk.length) carry = carry ? Buffer.concat([carry, chunk.subarray(start)]) : Buffer.from(chunk.subarray(start));
  }
  if (carry && carry.length > 0) yield* emit(carry);
}

/** Byte offset and line number just after the first `k` non-blank lines of a JSONL file. */
export async function jsonlPositionAfter(file: string, k: number): Promise<InputPosition> {
  if (k <= 0) return { units: 0, offset: 0, line: 0 };
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

async function countLines(chunks: AsyncIterable<Buffer>): Promise<number> {
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

/** Records in one file (a fast scan: JSONL lines are not parsed; Parquet reads the footer). */
export async function countFileRecords(f: InputFile): Promise<number> {
  switch (f.format) {
    case 'jsonl': return countJsonlRecords(f.path);
    case 'jsonl.gz': case 'jsonl.zst': return countLines(decompressed(f));
    case 'json-array': return readJsonArray(f.path, f.name).length;
    case 'parquet': return parquetRowCount(f.path);
  }
}

/** Records of one file from its `skip`-th on. */
async function* fileRecords(f: InputFile, skip: number): AsyncGenerator<FileRecord> {
  switch (f.format) {
    case 'jsonl': {
      const from = await jsonlPositionAfter(f.path, skip);
      yield* openInput(f.path, f.name, from).records as AsyncIterable<FileRecord>;
      return;
    }
    case 'jsonl.gz': case 'jsonl.zst':
      yield* jsonlLines(decompressed(f), f.name, skip);
      return;
    case 'json-array':
      yield* readJsonArray(f.path, f.name).slice(skip);
      return;
    case 'parquet':
      for await (const r of readParquetRows(f.path, f.name, skip)) yield new FileRecord(r.record, `${f.name}:${r.row}`, undefined, r.row, 0);
      return;
  }
}

/** A half-open range of record indices [start, end). */
export interface RecordRange { start: number; end: number }

export interface OpenedRecords {
  format: InputFormat | RecordFormat;
  records: AsyncIterable<FileRecord> | Iterable<FileRecord>;
  /** Records this iteration covers in all (from the range start, resumed ones included). */
  total: number | null;
}

/** The input of a run: its files in order, their record counts (computed once), its identity. */
export interface FileFingerprint { path: string; size: number; mtimeMs: number; sha256: string }

/** A file's fingerprint: size and mtime for the message, the SHA-256 of every byte for the comparison. */
export function fileFingerprint(file: string): FileFingerprint {
  const st = fs.statSync(file);
  const h = createHash('sha256');
  const buf = Buffer.alloc(1 << 20);
  const fd = fs.openSync(file, 'r');
  try {
    for (let n; (n = fs.readSync(fd, buf, 0, buf.length, null)) > 0; ) h.update(buf.subarray(0, n));
  } finally {
    fs.closeSync(fd);
  }
  return { path: path.resolve(file), size: st.size, mtimeMs: st.mtimeMs, sha256: h.digest('hex') };
}

export class InputSet {
  private counts: number[] | null = null;
  private prints: FileFingerprint[] | null = null;
  constructor(readonly spec: string, readonly files: InputFile[]) {}

  static resolve(spec: string, o: { split?: string } = {}): InputSet {
    return new InputSet(spec, resolveInputs(spec, o));
  }

  /** One plain JSONL (or JSON array) file: today's reader and byte-offset resume. */
  get plainSingle(): boolean {
    return this.files.length === 1 && (this.files[0].format === 'jsonl' || this.files[0].format === 'json-array');
  }

  /** Each file's fingerprint (for shard manifests): path, size, mtime and the SHA-256 of all its bytes. */
  fingerprints(): FileFingerprint[] {
    return (this.prints ??= this.files.map((f) => fileFingerprint(f.path)));
  }

  async recordCounts(): Promise<number[]> {
    if (!this.counts) {
      const c: number[] = [];
      for (const f of this.files) c.push(await countFileRecords(f));
      this.counts = c;
    }
    return this.counts;
  }

  async total(): Promise<number> {
    return (await this.recordCounts()).reduce((s, n) => s + n, 0);
  }

  /**
   * Records from `from.units` past the range start (resuming) to the range end. Without a range and
   * for one plain file, `from`'s byte offset is used as before.
   */
  async open(from: InputPosition = { units: 0, offset: 0, line: 0 }, range?: RecordRange): Promise<OpenedRecords> {
    if (!range && this.plainSingle) {
      const f = this.files[0];
      const src = openInput(f.path, f.name, from);
      return { format: src.format, records: src.records, total: src.total ?? (await this.total()) };
    }
    const counts = await this.recordCounts();
    const all = counts.reduce((s, n) => s + n, 0);
    const r = range ?? { start: 0, end: all };
    const start = r.start + from.units;
    const end = Math.min(r.end, all);
    const files = this.files;
    const plain = this.plainSingle && this.files[0].format === 'jsonl';
    async function* gen(): AsyncGenerator<FileRecord> {
      let base = 0;
      let left = end - start;
      for (let k = 0; k < files.length && left > 0; k++) {
        const n = counts[k];
        if (base + n > start) {
          const skip = Math.max(0, start - base);
          // One plain JSONL file resumed mid-range: the checkpoint's byte offset, no re-scan.
          const it = plain && from.units > 0 && from.offset > 0
            ? (openInput(files[k].path, files[k].name, from).records as AsyncIterable<FileRecord>)
            : fileRecords(files[k], skip);
          for await (const rec of it) {
            yield rec;
            if (--left <= 0) break;
          }
        }
        base += n;
      }
    }
    return { format: this.files.length === 1 ? this.files[0].format : 'jsonl', records: gen(), total: Math.max(0, end - r.start) };
  }
}

/** The file name extension concord writes for a format choice. */
export const outputFormatOf = (file: string): 'parquet' | 'jsonl' => (/\.parquet$/i.test(file) ? 'parquet' : 'jsonl');
