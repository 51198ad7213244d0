// Parquet in and out (Node). Reading: hyparquet with hyparquet-compressors (zstd, gzip, brotli, lz4,
// snappy), one row group at a time, so memory is bounded by a row group, not the file. Writing:
// hyparquet-writer's incremental ParquetWriter, one row group at a time, into a temporary file that
// is renamed into place (atomic).
//
// Rows become plain JSON values (the same records a JSONL line would give): INT64 → number when
// safe, else a decimal string; timestamps → ISO strings; binary → base64 strings; nested lists and
// structs stay arrays and objects. Field mapping (--instruction-field …) then applies to the columns.
//
// Written files: the record's fields as columns, and a scored record's `scores` object flattened to
// one column per score (`scores.fwd_logp`, `scores.ifd`, …; readers here fold them back into a
// `scores` object). Column types come from a first pass over the rows: all booleans → BOOLEAN, all
// integers → INT64, all numbers → DOUBLE, all strings → STRING, anything else (lists, objects,
// mixed) → a JSON column. Same rows, same bytes: the merged output of a sharded run and a single
// process's output are byte-identical.

import * as fs from 'node:fs';
import * as path from 'node:path';
import { parquetMetadataAsync, parquetRead, type AsyncBuffer, type FileMetaData } from 'hyparquet';
import { compressors } from 'hyparquet-compressors';
import { ParquetWriter, fileWriter, schemaFromColumnData, type BasicType } from 'hyparquet-writer';
import { InputError } from '../errors.js';
import { INT64_STRINGS } from '../pipeline/input.js';
import { flattenScores, setField, toJsonValue, unflattenScores } from '../formats/parquet-values.js';

export const PARQUET_MAGIC = 'PAR1';
export { SCORE_PREFIX, flattenScores, toJsonValue, unflattenScores } from '../formats/parquet-values.js';

export class ParquetInputError extends InputError {}

/** A synchronous-fd AsyncBuffer (hyparquet reads ranges: the footer, then one row group's columns). */
export function fileAsyncBuffer(file: string): AsyncBuffer & { close(): void } {
  const fd = fs.openSync(file, 'r');
  const size = fs.fstatSync(fd).size;
  return {
    byteLength: size,
    slice(start: number, end?: number): ArrayBuffer {
      const e = Math.min(end ?? size, size);
      const buf = Buffer.alloc(Math.max(0, e - start));
      let off = 0;
      while (off < buf.length) {
        const n = fs.readSync(fd, buf, off, buf.length - off, start + off);
        if (n === 0) break;
        off += n;
      }
      return buf.buffer.slice(buf.byteOffset, buf.byteOffset + buf.length) as ArrayBuffer;
    },
    close() { try { fs.closeSync(fd); } catch { /* closed */ } },
  };
}

export async function parquetMeta(file: string, name = file): Promise<FileMetaData> {
  const buf = fileAsyncBuffer(file);
  try {
    return await checkedMetadata(buf, name);
  } finally {
    buf.close();
  }
}

/** The footer, with its row counts checked: the file's count must be the sum of its row groups'. */
async function checkedMetadata(buf: AsyncBuffer, name: string): Promise<FileMetaData> {
  let m: FileMetaData;
  try {
    m = await parquetMetadataAsync(buf);
  } catch (e) {
    throw new ParquetInputError(`${name}: not a readable Parquet file (${(e as Error).message})`);
  }
  const groups = m.row_groups.reduce((s, rg) => s + Number(rg.num_rows), 0);
  if (Number(m.num_rows) !== groups || m.row_groups.some((rg) => Number(rg.num_rows) < 0)) {
    throw new ParquetInputError(`${name}: damaged Parquet footer: it says ${m.num_rows} rows but its row groups hold ${groups}`);
  }
  return m;
}

/** Rows of one row-group range as arrays, made into records field by field (a `__proto__` column stays a field). */
async function readRange(buf: AsyncBuffer, metadata: FileMetaData, rowStart: number, rowEnd: number): Promise<Record<string, unknown>[]> {
  const names = metadata.schema.slice(1).filter((_, i, all) => isTopLevel(metadata, i + 1)).map((s) => s.name);
  let rows: unknown[][] = [];
  await parquetRead({ file: buf, metadata, rowStart, rowEnd, compressors, rowFormat: 'array', onComplete: (r: unknown[][]) => { rows = r; } });
  return rows.map((row) => {
    const o: Record<string, unknown> = {};
    names.forEach((n, k) => setField(o, n, row[k]));
    return o;
  });
}

/** Top-level plain INT64 columns (not timestamps): their values beyond ±2^53 arrive as decimal strings. */
function int64Columns(m: FileMetaData): Set<string> {
  const out = new Set<string>();
  m.schema.forEach((s, i) => {
    if (i > 0 && s.type === 'INT64' && !s.converted_type?.startsWith('TIMESTAMP') && s.logical_type?.type !== 'TIMESTAMP' && isTopLevel(m, i)) out.add(s.name);
  });
  return out;
}

/** Mark the fields whose string value came from an INT64 column (INT64_STRINGS, src/pipeline/input.ts). */
function markInt64Strings(rec: Record<string, unknown>, int64: Set<string>): Record<string, unknown> {
  let marked: Set<string> | null = null;
  for (const c of int64) if (typeof rec[c] === 'string' && Object.hasOwn(rec, c)) (marked ??= new Set()).add(c);
  if (marked) Object.defineProperty(rec, INT64_STRINGS, { value: marked, enumerable: false });
  return rec;
}

/** Whether schema element `i` is a top-level column (a child of the root). */
function isTopLevel(m: FileMetaData, i: number): boolean {
  let k = 1;
  for (let top = 0; top < (m.schema[0].num_children ?? 0); top++) {
    if (k === i) return true;
    k = skipElement(m, k);
  }
  return false;
}

/** The index just past schema element `k` and its descendants. */
function skipElement(m: FileMetaData, k: number): number {
  const n = m.schema[k].num_children ?? 0;
  let next = k + 1;
  for (let c = 0; c < n; c++) next = skipElement(m, next);
  return next;
}

export async function parquetRowCount(file: string, name = file): Promise<number> {
  return Number((await parquetMeta(file, name)).num_rows);
}

export interface ParquetRow {
  /** 1-based row number in the file. */
  row: number;
  record: Record<string, unknown>;
}

/**
 * Rows of a Parquet file from `startRow` (0-based) on, one row group at a time. A file that cannot
 * be read at all throws ParquetInputError (`file: reason`); a row group that fails to decode throws
 * it with the row range (`file:rows a-b: reason`).
 */
export async function* readParquetRows(file: string, name = file, startRow = 0): AsyncGenerator<ParquetRow> {
  const buf = fileAsyncBuffer(file);
  try {
    const metadata = await checkedMetadata(buf, name);
    const int64 = int64Columns(metadata);
    let groupStart = 0;
    for (const rg of metadata.row_groups) {
      const n = Number(rg.num_rows);
      const groupEnd = groupStart + n;
      if (groupEnd > startRow && n > 0) {
        const from = Math.max(groupStart, startRow);
        let rows: Record<string, unknown>[];
        try {
          rows = await readRange(buf, metadata, from, groupEnd);
        } catch (e) {
          throw new ParquetInputError(`${name}:${from + 1}-${groupEnd}: cannot decode this row group (${(e as Error).message})`);
        }
        if (rows.length !== groupEnd - from) {
          throw new ParquetInputError(`${name}:${from + 1}-${groupEnd}: damaged Parquet file: this row group says ${n} rows but ${rows.length + (from - groupStart)} decode`);
        }
        for (let k = 0; k < rows.length; k++) {
          yield { row: from + k + 1, record: markInt64Strings(unflattenScores(toJsonValue(rows[k]) as Record<string, unknown>), int64) };
        }
      }
      groupStart = groupEnd;
    }
  } finally {
    buf.close();
  }
}

// ---- writing ---------------------------------------------------------------------------------------

type ColType = 'BOOLEAN' | 'INT64' | 'DOUBLE' | 'STRING' | 'JSON';

function valueType(v: unknown): ColType | null {
  if (v === null || v === undefined) return null;
  if (typeof v === 'boolean') return 'BOOLEAN';
  if (typeof v === 'number') return Number.isSafeInteger(v) ? 'INT64' : 'DOUBLE';
  if (typeof v === 'string') return 'STRING';
  return 'JSON';
}

function joinType(a: ColType | undefined, b: ColType): ColType {
  if (!a || a === b) return b;
  if ((a === 'INT64' && b === 'DOUBLE') || (a === 'DOUBLE' && b === 'INT64')) return 'DOUBLE';
  return 'JSON';
}

/** Column names (first appearance over the rows) and their types, from one pass over the rows. */
export class ColumnPlan {
  readonly types = new Map<string, ColType | undefined>();
  add(row: Record<string, unknown>): void {
    for (const [k, v] of Object.entries(row)) {
      const t = valueType(v);
      const had = this.types.get(k);
      if (t === null) { if (!this.types.has(k)) this.types.set(k, undefined); continue; }
      this.types.set(k, joinType(had, t));
    }
  }
  columns(): { name: string; type: ColType }[] {
    return [...this.types].map(([name, t]) => ({ name, type: t ?? 'STRING' }));
  }
}

function columnValue(v: unknown, type: ColType): unknown {
  if (v === undefined || v === null) return null;
  if (type === 'INT64') return BigInt(v as number);
  if (type === 'DOUBLE') return Number(v);
  return v; // BOOLEAN, STRING, JSON (the writer stringifies)
}

export const DEFAULT_ROW_GROUP = 4096;

/**
 * Write rows to a Parquet file atomically. `rows` is called twice: once to plan the columns, once to
 * write (so both passes stream; memory holds one row group).
 */
export async function writeParquetRows(out: string, rows: () => AsyncIterable<Record<string, unknown>>, o: { rowGroupSize?: number } = {}): Promise<{ rows: number; bytes: number }> {
  const tmp = `${out}.tmp-${process.pid}`;
  fs.mkdirSync(path.dirname(path.resolve(out)), { recursive: true });
  const n = await writeParquetTo(tmp, rows, o);
  fs.renameSync(tmp, out);
  return { rows: n, bytes: fs.statSync(out).size };
}

/** writeParquetRows without the rename: the rows into `tmp`, fsynced (the caller renames it into place). */
export async function writeParquetTo(tmp: string, rows: () => AsyncIterable<Record<string, unknown>>, o: { rowGroupSize?: number } = {}): Promise<number> {
  const plan = new ColumnPlan();
  let total = 0;
  for await (const r of rows()) { plan.add(flattenScores(r)); total++; }
  const cols = plan.columns();
  try {
    const schema = schemaFromColumnData({ columnData: cols.map((c) => ({ name: c.name, data: [], type: c.type as BasicType, nullable: true })) });
    const writer = fileWriter(tmp);
    const pq = new ParquetWriter({ writer, schema, createdBy: 'concord (hyparquet-writer)' });
    const size = o.rowGroupSize ?? DEFAULT_ROW_GROUP;
    let group: Record<string, unknown>[] = [];
    const flush = () => {
      if (group.length === 0) return;
      const columnData = cols.map((c) => ({ name: c.name, data: group.map((r) => columnValue(Object.hasOwn(r, c.name) ? r[c.name] : undefined, c.type)), type: c.type as BasicType, nullable: true }));
      pq.write({ columnData, rowGroupSize: group.length });
      group = [];
    };
    for await (const r of rows()) {
      group.push(flattenScores(r));
      if (group.length >= size) flush();
    }
    flush();
    pq.finish();
    const fd = fs.openSync(tmp, 'r+');
    try { fs.fsyncSync(fd); } finally { fs.closeSync(fd); }
  } catch (e) {
    fs.rmSync(tmp, { force: true });
    throw e;
  }
  return total;
}

export const isParquetPath = (p: string) => /\.parquet$/i.test(p);

