// The decompressed bytes of a .gz or .zst input, as a stream of chunks for the JSONL reader.
// gzip: node:zlib (its CRC-32 and length trailer are checked; damage is an InputError naming the
// file). zstd: fzstd decodes; the frames are walked here, from their block headers, so that each
// frame's XXH64 content checksum (when the frame carries one, as the zstd tool writes by default)
// is checked against the bytes it decoded — a flipped bit is an InputError, never altered records.

import * as fs from 'node:fs';
import * as zlib from 'node:zlib';
import { Decompress as ZstdDecompress } from 'fzstd';
import { InputError } from '../errors.js';
import { Xxh64 } from './xxh64.js';

/** Reads exact byte counts from an async chunk stream. */
class ByteReader {
  private chunks: Buffer[] = [];
  private have = 0;
  private done = false;
  private readonly it: AsyncIterator<Buffer>;
  constructor(src: AsyncIterable<Buffer>) { this.it = src[Symbol.asyncIterator](); }

  /** Up to `n` bytes (fewer only at the end of the stream). */
  async read(n: number): Promise<Buffer> {
    while (this.have < n && !this.done) {
      const r = await this.it.next();
      if (r.done) this.done = true;
      else { this.chunks.push(r.value); this.have += r.value.length; }
    }
    const all = this.chunks.length === 1 ? this.chunks[0] : Buffer.concat(this.chunks);
    const out = all.subarray(0, Math.min(n, all.length));
    const rest = all.subarray(out.length);
    this.chunks = rest.length ? [rest] : [];
    this.have = rest.length;
    return out;
  }

  /** `n` bytes handed to `sink` in pieces of at most 1 MiB; false when the stream ends first. */
  async pass(n: number, sink: (b: Buffer) => void): Promise<boolean> {
    while (n > 0) {
      const b = await this.read(Math.min(n, 1 << 20));
      if (b.length === 0) return false;
      sink(b);
      n -= b.length;
    }
    return true;
  }

  async atEnd(): Promise<boolean> {
    if (this.have > 0) return false;
    const b = await this.read(1);
    if (b.length === 0) return true;
    this.chunks = [b];
    this.have = 1;
    return false;
  }
}

const ZSTD_MAGIC = 0xfd2fb528;

/** One zstd frame: decoded through fzstd, its checksum verified; yields the decoded chunks. */
async function* zstdFrame(r: ByteReader, name: string, head: Buffer): AsyncGenerator<Buffer> {
  const fail = (why: string): never => { throw new InputError(`${name}: zstd: ${why}`); };
  const out: Buffer[] = [];
  const hash = new Xxh64();
  const z = new ZstdDecompress((chunk) => { hash.update(chunk); out.push(Buffer.from(chunk)); });
  // fzstd joins what it is given with what it holds: hand it ~1 MiB at a time, not block by block.
  let pending: Uint8Array[] = [], pendingLen = 0;
  const flush = (final = false) => {
    const all = pending.length === 1 ? pending[0] : Buffer.concat(pending);
    pending = [];
    pendingLen = 0;
    try { z.push(all, final); } catch (e) { fail((e as Error).message); }
  };
  const push = (b: Uint8Array, final = false) => {
    if (b.length) { pending.push(b); pendingLen += b.length; }
    if (final || pendingLen >= 1 << 20) flush(final);
  };
  const fhd = head[4];
  const single = (fhd >> 5) & 1, checksum = (fhd >> 2) & 1, did = fhd & 3, fcs = fhd >> 6;
  const headerRest = (single ? 0 : 1) + [0, 1, 2, 4][did] + (fcs === 0 ? single : 1 << fcs);
  const rest = await r.read(headerRest);
  if (rest.length < headerRest) fail('truncated stream (in a frame header)');
  push(head);
  push(rest);
  for (let last = 0; !last;) {
    const bh = await r.read(3);
    if (bh.length < 3) fail('truncated stream (in a block header)');
    push(bh);
    const v = bh[0] | (bh[1] << 8) | (bh[2] << 16);
    last = v & 1;
    const type = (v >> 1) & 3, size = v >>> 3;
    if (type === 3) fail('corrupt block header (reserved block type)');
    if (!(await r.pass(type === 1 ? 1 : size, push))) fail('truncated stream (in a block)');
    while (out.length) yield out.shift()!;
  }
  if (checksum) {
    const c = await r.read(4);
    if (c.length < 4) fail('truncated stream (in a frame checksum)');
    push(c);
    push(new Uint8Array(0), true);
    while (out.length) yield out.shift()!;
    const want = c.readUInt32LE(0);
    const got = Number(hash.digest() & 0xffffffffn);
    if (got !== want) fail(`frame checksum mismatch (XXH64 ${got.toString(16).padStart(8, '0')}, the frame says ${want.toString(16).padStart(8, '0')}): the file is damaged`);
  } else {
    push(new Uint8Array(0), true);
    while (out.length) yield out.shift()!;
  }
}

async function* zstdChunks(src: AsyncIterable<Buffer>, name: string): AsyncGenerator<Buffer> {
  const r = new ByteReader(src);
  for (let first = true; first || !(await r.atEnd()); first = false) {
    const head = await r.read(5);
    if (head.length < 4) throw new InputError(`${name}: zstd: truncated stream`);
    const magic = head.readUInt32LE(0);
    if ((magic & 0xfffffff0) === 0x184d2a50) {
      const size = await r.read(3); // skippable frame: 4-byte size (one byte already read)
      if (head.length < 5 || size.length < 3) throw new InputError(`${name}: zstd: truncated skippable frame`);
      const n = Buffer.concat([head.subarray(4), size]).readUInt32LE(0);
      if (!(await r.pass(n, () => {}))) throw new InputError(`${name}: zstd: truncated skippable frame`);
      continue;
    }
    if (magic !== ZSTD_MAGIC || head.length < 5) throw new InputError(`${name}: zstd: not a zstd frame at this point (corrupt or trailing data)`);
    yield* zstdFrame(r, name, head);
  }
}

async function* gzipChunks(file: string, name: string): AsyncGenerator<Buffer> {
  const src = fs.createReadStream(file, { highWaterMark: 1 << 20 });
  const gunzip = zlib.createGunzip();
  src.on('error', (e) => gunzip.destroy(e));
  try {
    for await (const c of src.pipe(gunzip) as AsyncIterable<Buffer>) yield c;
  } catch (e) {
    throw new InputError(`${name}: gzip: ${(e as Error).message}`);
  }
}

/** The bytes of a file, decompressed by its format (plain JSONL: as they are, from `start`). */
export function byteChunks(file: string, name: string, format: 'jsonl' | 'jsonl.gz' | 'jsonl.zst', start = 0): AsyncIterable<Buffer> {
  if (format === 'jsonl.gz') return gzipChunks(file, name);
  if (format === 'jsonl.zst') return zstdChunks(fs.createReadStream(file, { highWaterMark: 1 << 20 }) as AsyncIterable<Buffer>, name);
  return fs.createReadStream(file, { start, highWaterMark: 1 << 20 }) as AsyncIterable<Buffer>;
}
