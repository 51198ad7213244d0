// The one record writer: every command writes its records through openWriter — JSONL (a line per
// record, atomic on commit) or Parquet (records staged as JSONL next to the output, converted with
// hyparquet-writer on commit, renamed into place), by the file's extension or an explicit format
// (--out-format). Nothing is at the final path until commit().

import * as fs from 'node:fs';
import { isParquetPath, writeParquetTo } from './parquet.js';
import { RecordInput } from './inputs.js';
import { AtomicWriter, renameInto, tmpPathFor } from './writers.js';

export type OutFormat = 'jsonl' | 'parquet';
export const OUT_FORMATS: readonly OutFormat[] = ['jsonl', 'parquet'];

/** The format an output gets: the one asked for, else Parquet for a .parquet path, else JSONL. */
export const outputFormatOf = (file: string, format?: OutFormat): OutFormat => format ?? (isParquetPath(file) ? 'parquet' : 'jsonl');

export interface RecordWriter {
  readonly path: string;
  readonly format: OutFormat;
  /** Records written so far. */
  readonly count: number;
  /** A record (an object), or a line of JSON already serialised. */
  write(rec: object | string): void;
  /** Everything written and fsynced under a temporary name (Parquet: converted); nothing renamed yet. */
  prepare(): Promise<void>;
  /** prepare() if not done, then the rename into place. */
  commit(): Promise<void>;
  /** Drop the temporary files. */
  abort(): void;
}

/** Records of a JSONL file concord wrote (a staging file): parsed back through the one reader. */
async function* stagedRecords(file: string): AsyncGenerator<Record<string, unknown>> {
  const input = new RecordInput(file, [{ path: file, name: file, format: 'jsonl' }]);
  for await (const r of input) {
    if (r.parseError) throw new Error(`${r.loc}: ${r.parseError} (a staging file concord wrote; internal error)`);
    yield r.record as Record<string, unknown>;
  }
}

class JsonlWriter implements RecordWriter {
  readonly format = 'jsonl' as const;
  private readonly w: AtomicWriter;
  count = 0;
  constructor(readonly path: string) { this.w = new AtomicWriter(path); }
  write(rec: object | string): void { this.w.write(typeof rec === 'string' ? rec : JSON.stringify(rec)); this.count++; }
  async prepare(): Promise<void> { this.w.sync(); }
  async commit(): Promise<void> { this.w.commit(); }
  abort(): void { this.w.abort(); }
}

class ParquetRecordWriter implements RecordWriter {
  readonly format = 'parquet' as const;
  private readonly staging: AtomicWriter;
  private readonly stagingPath: string;
  private readonly tmp: string;
  private prepared = false;
  count = 0;
  constructor(readonly path: string) {
    this.stagingPath = `${path}.staging.jsonl`;
    this.staging = new AtomicWriter(this.stagingPath);
    this.tmp = tmpPathFor(path);
  }
  write(rec: object | string): void { this.staging.write(typeof rec === 'string' ? rec : JSON.stringify(rec)); this.count++; }
  async prepare(): Promise<void> {
    if (this.prepared) return;
    this.staging.commit();
    try {
      await writeParquetTo(this.tmp, () => stagedRecords(this.stagingPath));
    } finally {
      fs.rmSync(this.stagingPath, { force: true });
    }
    this.prepared = true;
  }
  async commit(): Promise<void> {
    await this.prepare();
    renameInto(this.tmp, this.path);
  }
  abort(): void {
    this.staging.abort();
    fs.rmSync(this.stagingPath, { force: true });
    fs.rmSync(this.tmp, { force: true });
  }
}

/** A record writer for `file`: JSONL or Parquet by `format`, else by the extension. */
export function openWriter(file: string, o: { format?: OutFormat } = {}): RecordWriter {
  return outputFormatOf(file, o.format) === 'parquet' ? new ParquetRecordWriter(file) : new JsonlWriter(file);
}

/**
 * Where a resumable score job writes while it runs: JSONL straight to the output; Parquet to a
 * resumable JSONL staging file (`<out>.scored.jsonl`, with the job's checkpoints) converted at the end.
 */
export function scoreTarget(output: string, errors?: string, format?: OutFormat): { scoreTo: string; errors: string; finish: () => Promise<void> } {
  const errs = errors ?? `${output}.errors.jsonl`;
  if (outputFormatOf(output, format) !== 'parquet') return { scoreTo: output, errors: errs, finish: async () => {} };
  const scoreTo = `${output}.scored.jsonl`;
  return {
    scoreTo,
    errors: errs,
    finish: async () => {
      const tmp = tmpPathFor(output);
      await writeParquetTo(tmp, () => stagedRecords(scoreTo));
      renameInto(tmp, output);
      fs.rmSync(scoreTo, { force: true });
    },
  };
}
