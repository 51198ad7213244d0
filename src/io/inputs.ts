// Which files an input is, and its records: the one entry point every command reads through.
//
//   const input = openRecords('data/', { split: 'train' });   // a file, a dataset folder or a glob
//   for await (const r of input) …                             // FileRecord: r.record, r.loc ('f.jsonl:12'), r.parseError
//
// An input is one file (JSONL, JSONL.gz/.zst, a JSON array, Parquet — told apart by their first
// bytes, src/io/sniff.ts), a dataset folder (its data files, symlinks followed, hidden entries
// skipped; `--split train` picks train-*.parquet or train/…) or a glob, read in natural file order
// as one stream of records. A record's index is its position in that stream (non-blank JSONL lines,
// array elements, Parquet rows): shards (src/shard) and resumed runs count records this way.
// RecordInput also gives per-file record counts and the input's identity (SHA-256 of every file).

import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { globSync } from 'tinyglobby';
import { InputError } from '../errors.js';
import { byteChunks } from './decompress.js';
import { readParquetRows, parquetRowCount } from './parquet.js';
import { FileRecord, START, countLines, jsonlPositionAfter, jsonlRecords, readJsonArray, type InputPosition } from './records.js';
import { formatOf, type RecordFormat } from './sniff.js';

export interface InputFile {
  path: string;
  /** How locations spell it (the path as the user gave it, or folder + relative path). */
  name: string;
  format: RecordFormat;
}

/** A half-open range of record indices [start, end). */
export interface RecordRange { start: number; end: number }

const DATA_FILE = /\.(parquet|jsonl|ndjson|json|jsonl\.gz|jsonl\.zst|ndjson\.gz|ndjson\.zst|json\.gz|json\.zst)$/i;
const GLOB_CHARS = /[*?[\]{}]/;
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

/** `stat` (symlinks followed), or an InputError naming the path when it cannot be read. */
function statOf(p: string): fs.Stats {
  try {
    return fs.statSync(p);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    let link = false;
    try { link = fs.lstatSync(p).isSymbolicLink(); } catch { /* not there at all */ }
    throw new InputError(code === 'ENOENT' ? `${p}: ${link ? 'a broken symlink' : 'no such file'}` : `${p}: cannot read (${code === 'EACCES' ? 'permission denied' : code ?? (e as Error).message})`);
  }
}

/** Data files under `dir` (relative paths), symlinked files and folders followed, each folder once (loops cut). */
function walk(dir: string, rel = '', seen = new Set<string>()): string[] {
  const here = statOf(path.join(dir, rel));
  const key = `${here.dev}:${here.ino}`;
  if (seen.has(key)) return [];
  seen.add(key);
  let entries: fs.Dirent[];
  try {
    entries = fs.readdirSync(path.join(dir, rel), { withFileTypes: true });
  } catch (e) {
    throw new InputError(`${path.join(dir, rel)}: cannot list this folder (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`);
  }
  const out: string[] = [];
  for (const e of entries) {
    if (e.name.startsWith('.')) continue; // .cache, .git, .huggingface
    const r = rel ? path.join(rel, e.name) : e.name;
    const isDir = e.isDirectory() || (e.isSymbolicLink() && statOf(path.join(dir, r)).isDirectory());
    if (isDir) out.push(...walk(dir, r, seen));
    else if (DATA_FILE.test(e.name) && (e.isFile() || e.isSymbolicLink())) out.push(r);
  }
  return out;
}

/** The same file reached twice (a `**` glob through a symlink loop, two links to one file): kept once. */
function uniqueFiles(paths: string[]): string[] {
  const seen = new Set<string>();
  return paths.filter((p) => {
    const st = statOf(p);
    const key = `${st.dev}:${st.ino}`;
    if (seen.has(key)) return false;
    seen.add(key);
    return true;
  });
}

/** A file concord will read: a regular file it can open (InputError, exit 3, otherwise). */
export function checkReadable(p: string): void {
  const st = statOf(p);
  if (st.isDirectory()) throw new InputError(`${p}: is a directory, not an input file`);
  if (st.isFIFO()) throw new InputError(`${p}: is a FIFO (named pipe); concord reads its input more than once (record count, resume), so give it a regular file`);
  if (!st.isFile()) throw new InputError(`${p}: not a regular file (a socket or device); give concord a regular file`);
  try {
    fs.closeSync(fs.openSync(p, 'r'));
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    throw new InputError(`${p}: cannot read (${code === 'EACCES' ? 'permission denied' : code ?? (e as Error).message})`);
  }
}

function pickSplit(spec: string, rels: string[], split: string | undefined, isDir: boolean): string[] {
  if (split) {
    const picked = rels.filter((r) => inSplit(r, split));
    if (picked.length === 0) {
      const have = [...new Set(rels.map(splitOf).filter(Boolean))].join(', ');
      throw new InputError(`${spec}: no files of split '${split}'${have ? ` (splits here: ${have})` : ''}`);
    }
    return picked;
  }
  if (isDir) {
    const splits = [...new Set(rels.map(splitOf))];
    if (splits.length > 1 && splits.every((s) => s !== null)) throw new InputError(`${spec}: several splits (${splits.join(', ')}); pass --split NAME to pick one`);
  }
  return rels;
}

/**
 * The input files of `spec` in reading order. A folder: its data files (hidden entries skipped,
 * symlinks followed), in natural path order; with several splits present, `split` must pick one.
 * A glob: its matches in natural order (`split` filters them too). A file: itself. Every file is
 * checked readable and its format known before anything is read (InputError, exit 3).
 */
export function resolveInputs(spec: string, o: { split?: string } = {}): InputFile[] {
  let st: fs.Stats | null = null;
  try { st = fs.statSync(spec); } catch { /* a glob, or missing */ }
  let files: string[];
  if (st?.isDirectory()) {
    const rels = walk(spec).sort(natural);
    if (rels.length === 0) throw new InputError(`${spec}: no data files (.parquet, .jsonl, .jsonl.gz, .jsonl.zst, .json) in this folder`);
    files = uniqueFiles(pickSplit(spec, rels, o.split, true).map((r) => path.join(spec, r)));
  } else if (!st && GLOB_CHARS.test(spec)) {
    const rels = globSync([spec], { onlyFiles: true, expandDirectories: false, followSymbolicLinks: true }).sort(natural);
    if (rels.length === 0) throw new InputError(`${spec}: no file matches this pattern`);
    files = uniqueFiles(pickSplit(spec, rels, o.split, false));
  } else {
    if (o.split) throw new InputError(`${spec}: --split applies to a dataset folder or a glob, not to one file`);
    files = [spec];
  }
  return files.map((p) => {
    checkReadable(p);
    return { path: p, name: p, format: formatOf(p) };
  });
}

/** Records in one file (a fast scan: JSONL lines are not parsed; Parquet reads the footer). */
export async function countFileRecords(f: InputFile): Promise<number> {
  switch (f.format) {
    case 'jsonl': case 'jsonl.gz': case 'jsonl.zst': return countLines(byteChunks(f.path, f.name, f.format));
    case 'json-array': return readJsonArray(f.path, f.name).length;
    case 'parquet': return parquetRowCount(f.path, f.name);
  }
}

/** Records of one file from its `skip`-th on. */
async function* fileRecords(f: InputFile, skip: number): AsyncGenerator<FileRecord> {
  switch (f.format) {
    case 'jsonl': {
      const from = await jsonlPositionAfter(f.path, skip);
      yield* jsonlRecords(byteChunks(f.path, f.name, 'jsonl', from.offset), { name: f.name, from });
      return;
    }
    case 'jsonl.gz': case 'jsonl.zst':
      yield* jsonlRecords(byteChunks(f.path, f.name, f.format), { name: f.name, skip });
      return;
    case 'json-array':
      yield* readJsonArray(f.path, f.name).slice(skip);
      return;
    case 'parquet':
      for await (const r of readParquetRows(f.path, f.name, skip)) yield new FileRecord(r.record, `${f.name}:${r.row}`, undefined, r.row, 0);
      return;
  }
}

export interface OpenedRecords {
  format: RecordFormat;
  records: AsyncIterable<FileRecord> | Iterable<FileRecord>;
  /** Records this iteration covers in all (from the range start, resumed ones included). */
  total: number;
}

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

/** An input: its files in order, their record counts (computed once), its identity, its records. */
export class RecordInput implements AsyncIterable<FileRecord> {
  private counts: number[] | null = null;
  private prints: FileFingerprint[] | null = null;
  constructor(readonly spec: string, readonly files: InputFile[]) {}

  /** One plain JSONL file or one JSON array: resumed by byte offset, its consumed prefix hashed. */
  get plainSingle(): boolean {
    return this.files.length === 1 && (this.files[0].format === 'jsonl' || this.files[0].format === 'json-array');
  }

  /** The format of a one-file input; several files read as one stream report 'jsonl'. */
  get format(): RecordFormat {
    return this.files.length === 1 ? this.files[0].format : 'jsonl';
  }

  /** Each file's fingerprint (shard manifests, resume checks): path, size, mtime, SHA-256. */
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

  [Symbol.asyncIterator](): AsyncIterator<FileRecord> {
    const self = this;
    async function* all(): AsyncGenerator<FileRecord> { yield* (await self.open()).records; }
    return all();
  }

  /**
   * Records from `from.units` past the range start (resuming) to the range end. One plain file
   * without a range resumes at `from`'s byte offset (nothing re-read).
   */
  async open(from: InputPosition = START, range?: RecordRange): Promise<OpenedRecords> {
    if (!range && this.plainSingle) return this.openPlain(from);
    const counts = await this.recordCounts();
    const all = counts.reduce((s, n) => s + n, 0);
    const r = range ?? { start: 0, end: all };
    const start = r.start + from.units;
    const end = Math.min(r.end, all);
    const files = this.files;
    async function* gen(): AsyncGenerator<FileRecord> {
      let base = 0;
      let left = end - start;
      for (let k = 0; k < files.length && left > 0; k++) {
        const n = counts[k];
        if (base + n > start) {
          for await (const rec of fileRecords(files[k], Math.max(0, start - base))) {
            yield rec;
            if (--left <= 0) break;
          }
        }
        base += n;
      }
    }
    return { format: this.format, records: gen(), total: Math.max(0, end - r.start) };
  }

  private async openPlain(from: InputPosition): Promise<OpenedRecords> {
    const f = this.files[0];
    if (f.format === 'json-array') {
      const recs = readJsonArray(f.path, f.name);
      return { format: f.format, records: recs.slice(from.units), total: recs.length };
    }
    const records = jsonlRecords(byteChunks(f.path, f.name, 'jsonl', from.offset), { name: f.name, from });
    return { format: f.format, records, total: await this.total() };
  }
}

/** The one way in: the records of a file, a dataset folder or a glob (`split` picks a folder's split). */
export function openRecords(spec: string, o: { split?: string } = {}): RecordInput {
  return new RecordInput(spec, resolveInputs(spec, o));
}
