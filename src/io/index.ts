// The record I/O layer (Node): every command reads its records through openRecords and writes them
// through openWriter. docs/data.md lists the input kinds, output kinds, limits and exit codes.
//
//   const input = openRecords('data/', { split: 'train' });
//   const out = openWriter('kept.parquet');            // or { format: 'jsonl' | 'parquet' }
//   for await (const r of input) if (!r.parseError) out.write(r.record as object);
//   await out.commit();

export { openRecords, RecordInput, resolveInputs, splitOf, checkReadable, fileFingerprint, type InputFile, type RecordRange, type FileFingerprint, type OpenedRecords } from './inputs.js';
export { FileRecord, START, MAX_RECORD_DEPTH, DEFAULT_MAX_LINE_BYTES, jsonDepth, firstInvalidUtf8, type InputPosition } from './records.js';
export { detectInputKind, formatOf, type RecordFormat, type InputKind, type DetectedInput } from './sniff.js';
export { openWriter, outputFormatOf, scoreTarget, OUT_FORMATS, type OutFormat, type RecordWriter } from './record-writer.js';
export { AtomicWriter, CheckedFile, OutputError, writeFileAtomic, tmpPathFor } from './writers.js';
export { isParquetPath, readParquetRows, writeParquetRows } from './parquet.js';
