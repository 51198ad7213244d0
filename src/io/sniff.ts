// What a file is, from its first bytes: the one magic table of the record I/O layer. Every reader
// and every command asks here (src/io/inputs.ts formatOf); nothing else looks at magic numbers.

import * as fs from 'node:fs';
import { InputError } from '../errors.js';

/** The record formats concord reads. */
export type RecordFormat = 'jsonl' | 'jsonl.gz' | 'jsonl.zst' | 'json-array' | 'parquet';

/** What a file looks like from its first bytes: a text format concord reads, or something else. */
export type InputKind = 'jsonl' | 'json-array' | 'parquet' | 'gzip' | 'zstd' | 'bzip2' | 'xz' | 'zip' | 'arrow' | 'utf16' | 'binary';

export interface DetectedInput {
  kind: InputKind;
  /** e.g. 'a Parquet file (starts with PAR1)' */
  what: string;
}

/** The magic table; `format` is the record format concord reads such a file as (none: refused). */
const MAGIC: { kind: InputKind; bytes: number[]; what: string; format?: RecordFormat }[] = [
  { kind: 'parquet', bytes: [0x50, 0x41, 0x52, 0x31], what: 'a Parquet file (starts with PAR1)', format: 'parquet' },
  { kind: 'gzip', bytes: [0x1f, 0x8b], what: 'a gzip-compressed file', format: 'jsonl.gz' },
  { kind: 'zstd', bytes: [0x28, 0xb5, 0x2f, 0xfd], what: 'a zstd-compressed file', format: 'jsonl.zst' },
  { kind: 'bzip2', bytes: [0x42, 0x5a, 0x68], what: 'a bzip2-compressed file' },
  { kind: 'xz', bytes: [0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00], what: 'an xz-compressed file' },
  { kind: 'zip', bytes: [0x50, 0x4b, 0x03, 0x04], what: 'a zip archive' },
  { kind: 'arrow', bytes: [0x41, 0x52, 0x52, 0x4f, 0x57, 0x31], what: 'an Arrow IPC file' },
  { kind: 'utf16', bytes: [0xff, 0xfe], what: 'UTF-16 text (little-endian BOM); convert it to UTF-8' },
  { kind: 'utf16', bytes: [0xfe, 0xff], what: 'UTF-16 text (big-endian BOM); convert it to UTF-8' },
];

const HEAD = 8192;

function readHead(file: string, n: number, pos = 0): Buffer {
  const fd = fs.openSync(file, 'r');
  try {
    const buf = Buffer.alloc(n);
    return buf.subarray(0, fs.readSync(fd, buf, 0, n, pos));
  } finally {
    fs.closeSync(fd);
  }
}

/**
 * Classify a file by its first 8 KiB: a known magic number (Parquet, gzip, zstd, ...), NUL bytes
 * (binary), else JSONL, or a JSON array when the first non-blank character is '['.
 */
export function detectInputKind(file: string): DetectedInput {
  const head = readHead(file, HEAD);
  for (const m of MAGIC) if (head.length >= m.bytes.length && m.bytes.every((b, i) => head[i] === b)) return { kind: m.kind, what: m.what };
  const nul = head.indexOf(0);
  if (nul !== -1) return { kind: 'binary', what: `binary data (a NUL byte at offset ${nul})` };
  return { kind: textFormat(file, head), what: 'text' };
}

/** JSONL unless the first non-blank byte (after a UTF-8 BOM) is '[' (a JSON array, read whole). */
function textFormat(file: string, head: Buffer): 'jsonl' | 'json-array' {
  for (let pos = 0, buf = head; buf.length > 0; pos += buf.length, buf = readHead(file, HEAD, pos)) {
    for (let i = pos === 0 && buf[0] === 0xef && buf[1] === 0xbb && buf[2] === 0xbf ? 3 : 0; i < buf.length; i++) {
      const c = buf[i];
      if (c === 0x20 || c === 0x0a || c === 0x0d || c === 0x09) continue;
      return c === 0x5b ? 'json-array' : 'jsonl';
    }
  }
  return 'jsonl'; // blank lines only: JSONL with no records
}

/** The record format of a file, or InputError (exit 3) naming what it is when concord does not read it. */
export function formatOf(file: string, name = file): RecordFormat {
  const d = detectInputKind(file);
  if (d.kind === 'jsonl' || d.kind === 'json-array') return d.kind;
  const m = MAGIC.find((x) => x.kind === d.kind && x.what === d.what);
  if (m?.format) return m.format;
  throw new InputError(`${name}: this looks like ${d.what}, not JSONL, a JSON array, Parquet or gzip/zstd-compressed JSONL`);
}
