// .safetensors files: an 8-byte little-endian header length N, N bytes of JSON
//   { "<name>": { "dtype": "F32"|"F16"|"BF16"|..., "shape": [...], "data_offsets": [begin, end] }, "__metadata__": {...} }
// then the data (offsets are relative to its start). Sharded checkpoints add
// model.safetensors.index.json: { "weight_map": { "<name>": "<shard file>" } }.
//
// Headers are parsed eagerly (so a bad file fails at open), tensors are read on demand and
// converted to f32. A writer is included for tests and tools.

import { closeSync, existsSync, fstatSync, openSync, readFileSync, readSync, writeFileSync } from 'node:fs';
import { endianness } from 'node:os';
import { dirname, join } from 'node:path';
import { bf16ToF32, f16ToF32, f32ToF16Bits } from '../util/f16.js';

export type SafetensorsDtype = 'F32' | 'F16' | 'BF16';
const DTYPE_BYTES: Record<string, number> = { F64: 8, F32: 4, F16: 2, BF16: 2, I64: 8, I32: 4, I16: 2, I8: 1, U8: 1, BOOL: 1, F8_E4M3: 1, F8_E5M2: 1 };
const SUPPORTED = ['F32', 'F16', 'BF16'];

export interface TensorInfo {
  name: string;
  dtype: string;
  shape: number[];
  /** file holding it */
  file: string;
  /** absolute byte range in that file */
  begin: number;
  end: number;
}

/** A set of named tensors, read on demand as f32. */
export interface TensorSource {
  readonly path: string;
  names(): string[];
  has(name: string): boolean;
  info(name: string): TensorInfo;
  /** The tensor as f32 in its own ArrayBuffer; errors name the file, tensor and reason. */
  get(name: string): Float32Array;
}

export const numel = (shape: number[]): number => shape.reduce((a, b) => a * b, 1);

export function parseSafetensorsHeader(path: string): { infos: Map<string, TensorInfo>; metadata: Record<string, string> } {
  if (!existsSync(path)) throw new Error(`${path}: safetensors file not found`);
  if (endianness() !== 'LE') throw new Error(`${path}: safetensors data is little-endian and this machine is not`);
  const fd = openSync(path, 'r');
  try {
    const size = fstatSync(fd).size;
    if (size < 8) throw new Error(`${path}: not a safetensors file: ${size} bytes, shorter than the 8-byte header length`);
    const lenBuf = Buffer.alloc(8);
    readSync(fd, lenBuf, 0, 8, 0);
    const n = Number(lenBuf.readBigUInt64LE(0));
    if (n > size - 8 || n > 100_000_000) throw new Error(`${path}: not a safetensors file (or truncated): header length ${n} exceeds the file's ${size - 8} bytes after it`);
    const hb = Buffer.alloc(n);
    readSync(fd, hb, 0, n, 8);
    let header: Record<string, unknown>;
    try {
      header = JSON.parse(hb.toString('utf8'));
    } catch (e) {
      throw new Error(`${path}: safetensors header is not valid JSON: ${(e as Error).message}`);
    }
    if (!header || typeof header !== 'object' || Array.isArray(header)) throw new Error(`${path}: safetensors header is not a JSON object`);
    const dataStart = 8 + n;
    const dataBytes = size - dataStart;
    const infos = new Map<string, TensorInfo>();
    let metadata: Record<string, string> = {};
    for (const [name, v] of Object.entries(header)) {
      if (name === '__metadata__') {
        metadata = (v ?? {}) as Record<string, string>;
        continue;
      }
      const e = v as { dtype?: unknown; shape?: unknown; data_offsets?: unknown };
      const bad = (what: string) => new Error(`${path}: tensor '${name}': ${what}`);
      if (typeof e?.dtype !== 'string') throw bad('no dtype');
      if (!Array.isArray(e.shape) || !e.shape.every((x) => Number.isInteger(x) && x >= 0)) throw bad(`bad shape ${JSON.stringify(e.shape)}`);
      if (!Array.isArray(e.data_offsets) || e.data_offsets.length !== 2) throw bad(`bad data_offsets ${JSON.stringify(e.data_offsets)}`);
      const [b, en] = e.data_offsets as number[];
      if (!(Number.isInteger(b) && Number.isInteger(en) && 0 <= b && b <= en)) throw bad(`bad data_offsets [${b}, ${en}]`);
      if (en > dataBytes) throw bad(`data_offsets [${b}, ${en}] run past the end of the data (${dataBytes} bytes): file truncated?`);
      const shape = e.shape as number[];
      const el = DTYPE_BYTES[e.dtype];
      if (el !== undefined && numel(shape) * el !== en - b) {
        throw bad(`shape [${shape.join(', ')}] of ${e.dtype} needs ${numel(shape) * el} bytes but data_offsets [${b}, ${en}] hold ${en - b}`);
      }
      infos.set(name, { name, dtype: e.dtype, shape, file: path, begin: dataStart + b, end: dataStart + en });
    }
    return { infos, metadata };
  } finally {
    closeSync(fd);
  }
}

function readInfo(t: TensorInfo): Float32Array {
  if (!SUPPORTED.includes(t.dtype)) throw new Error(`${t.file}: tensor '${t.name}' has dtype ${t.dtype}; supported: ${SUPPORTED.join(', ')}`);
  const count = numel(t.shape);
  const bytes = t.end - t.begin;
  let fd: number;
  try {
    fd = openSync(t.file, 'r');
  } catch (e) {
    throw new Error(`${t.file}: cannot open: ${(e as Error).message}`);
  }
  try {
    const raw = t.dtype === 'F32' ? new Float32Array(count) : new Uint16Array(count);
    const dst = new Uint8Array(raw.buffer, 0, bytes);
    let done = 0;
    while (done < bytes) {
      const n = readSync(fd, dst, done, Math.min(bytes - done, 1 << 30), t.begin + done);
      if (n === 0) throw new Error(`${t.file}: tensor '${t.name}': unexpected end of file at byte ${t.begin + done}`);
      done += n;
    }
    if (raw instanceof Float32Array) return raw;
    return t.dtype === 'BF16' ? bf16ToF32(raw) : f16ToF32(raw);
  } finally {
    closeSync(fd);
  }
}

class InfoSource implements TensorSource {
  constructor(readonly path: string, private readonly infos: Map<string, TensorInfo>) {}
  names(): string[] { return [...this.infos.keys()]; }
  has(name: string): boolean { return this.infos.has(name); }
  info(name: string): TensorInfo {
    const t = this.infos.get(name);
    if (!t) throw new Error(`${this.path}: no tensor '${name}'`);
    return t;
  }
  get(name: string): Float32Array { return readInfo(this.info(name)); }
}

/** One .safetensors file. */
export function openSafetensors(path: string): TensorSource {
  return new InfoSource(path, parseSafetensorsHeader(path).infos);
}

/** A sharded checkpoint through its model.safetensors.index.json. */
export function openSafetensorsIndex(indexPath: string): TensorSource {
  if (!existsSync(indexPath)) throw new Error(`${indexPath}: safetensors index not found`);
  let idx: { weight_map?: Record<string, string> };
  try {
    idx = JSON.parse(readFileSync(indexPath, 'utf8'));
  } catch (e) {
    throw new Error(`${indexPath}: not valid JSON: ${(e as Error).message}`);
  }
  if (!idx.weight_map || typeof idx.weight_map !== 'object') throw new Error(`${indexPath}: no "weight_map" object`);
  const dir = dirname(indexPath);
  const shards = new Map<string, Map<string, TensorInfo>>();
  const infos = new Map<string, TensorInfo>();
  for (const [name, file] of Object.entries(idx.weight_map)) {
    let shard = shards.get(file);
    if (!shard) {
      const p = join(dir, file);
      if (!existsSync(p)) throw new Error(`${indexPath}: shard '${file}' (holding '${name}') not found at ${p}`);
      shard = parseSafetensorsHeader(p).infos;
      shards.set(file, shard);
    }
    const t = shard.get(name);
    if (!t) throw new Error(`${indexPath}: weight_map puts '${name}' in '${file}', which has no such tensor`);
    infos.set(name, t);
  }
  return new InfoSource(indexPath, infos);
}

/** The tensors of a Hugging Face folder: model.safetensors or model.safetensors.index.json. */
export function openSafetensorsFolder(dir: string): TensorSource {
  const index = join(dir, 'model.safetensors.index.json');
  if (existsSync(index)) return openSafetensorsIndex(index);
  const single = join(dir, 'model.safetensors');
  if (existsSync(single)) return openSafetensors(single);
  const hasBin = existsSync(join(dir, 'pytorch_model.bin')) || existsSync(join(dir, 'pytorch_model.bin.index.json'));
  throw new Error(`${dir}: no model.safetensors or model.safetensors.index.json${hasBin ? ' (pytorch_model.bin is not supported: convert it to safetensors)' : ''}`);
}

// ---- writing (bench/gpu/bundle.ts; tests build tiny models with it) ---------------------------

export interface TensorToWrite {
  name: string;
  data: Float32Array;
  shape: number[];
  dtype: SafetensorsDtype;
}

/** f32 → bf16 bits, round to nearest even (as torch's .to(bfloat16)). */
export function f32ToBf16Bits(x: number): number {
  const u = new Uint32Array(new Float32Array([x]).buffer)[0];
  if ((u & 0x7f800000) === 0x7f800000 && (u & 0x7fffff)) return (u >>> 16) | 0x40; // NaN stays NaN
  return ((u + 0x7fff + ((u >>> 16) & 1)) >>> 16) & 0xffff;
}

/** Write a .safetensors file (header padded with spaces to a multiple of 8, as the Python writer does). */
export function writeSafetensors(path: string, tensors: TensorToWrite[], metadata: Record<string, string> = { format: 'pt' }): void {
  const header: Record<string, unknown> = { __metadata__: metadata };
  const blobs: Uint8Array[] = [];
  let off = 0;
  for (const t of tensors) {
    if (numel(t.shape) !== t.data.length) throw new Error(`${path}: tensor '${t.name}' has ${t.data.length} values for shape [${t.shape.join(', ')}]`);
    let blob: Uint8Array;
    if (t.dtype === 'F32') blob = new Uint8Array(Float32Array.from(t.data).buffer);
    else {
      const bits = new Uint16Array(t.data.length);
      for (let i = 0; i < bits.length; i++) bits[i] = t.dtype === 'F16' ? f32ToF16Bits(t.data[i]) : f32ToBf16Bits(t.data[i]);
      blob = new Uint8Array(bits.buffer);
    }
    header[t.name] = { dtype: t.dtype, shape: t.shape, data_offsets: [off, off + blob.length] };
    blobs.push(blob);
    off += blob.length;
  }
  let json = JSON.stringify(header);
  while ((8 + Buffer.byteLength(json)) % 8 !== 0) json += ' ';
  const hb = Buffer.from(json, 'utf8');
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(hb.length));
  writeFileSync(path, Buffer.concat([len, hb, ...blobs]));
}
