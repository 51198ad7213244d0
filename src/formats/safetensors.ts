// .safetensors files: an 8-byte little-endian header length N, N bytes of JSON
//   { "<name>": { "dtype": "F32"|"F16"|"BF16"|..., "shape": [...], "data_offsets": [begin, end] }, "__metadata__": {...} }
// then the data (offsets are relative to its start). Sharded checkpoints add
// model.safetensors.index.json: { "weight_map": { "<name>": "<shard file>" } }.
//
// Headers are parsed eagerly (so a bad file fails at open), tensors are read on demand and
// converted to f32. Bytes come through src/formats/files.ts (a file on disk, or an ArrayBuffer in
// the browser), so this module has no static Node import: the page and the CLI share it. The
// path-taking entry points (openSafetensors, openSafetensorsIndex, openSafetensorsFolder) are the
// Node layer over openSafetensorsSource / openSafetensorsIndexIn / openSafetensorsIn. A writer is
// included for tests and tools (Node).

import { ModelFileError } from '../errors.js';
import { isRepoFileName } from '../hub/names.js';
import type { ChunkScratch, ChunkTarget, TensorRef } from '../models/types.js';
import { littleEndianHost, nodeFs, nodePath } from '../tokenizer/node.js';
import { bf16BitsIntoF32, bf16BitsToF16Bits, f16BitsIntoF32, f32IntoF16Bits, f32ToF16Bits } from '../util/f16.js';
import { fileSource, folderFiles, type ByteReader, type ByteSource, type ModelFiles } from './files.js';

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
  /** the file's bytes */
  src: ByteSource;
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

/** The header of a .safetensors file on disk (Node). */
export function parseSafetensorsHeader(path: string): { infos: Map<string, TensorInfo>; metadata: Record<string, string> } {
  if (!nodeFs().existsSync(path)) throw new Error(`${path}: safetensors file not found`);
  return parseSafetensorsHeaderFrom(fileSource(path));
}

/** Fill dst from byte `pos` (positioned reads); false when the file ends first. */
function readAll(r: ByteReader, dst: Uint8Array, pos: number): number {
  let done = 0;
  while (done < dst.length) {
    const n = r.read(done === 0 ? dst : dst.subarray(done), pos + done);
    if (n === 0) break;
    done += n;
  }
  return done;
}

/** The header of a .safetensors file from its bytes. */
export function parseSafetensorsHeaderFrom(src: ByteSource): { infos: Map<string, TensorInfo>; metadata: Record<string, string> } {
  const path = src.name;
  if (!littleEndianHost()) throw new Error(`${path}: safetensors data is little-endian and this machine is not`);
  const r = src.open();
  try {
    const size = src.size;
    if (size < 8) throw new Error(`${path}: not a safetensors file: ${size} bytes, shorter than the 8-byte header length`);
    const lenBuf = new Uint8Array(8);
    readAll(r, lenBuf, 0);
    const n = Number(new DataView(lenBuf.buffer).getBigUint64(0, true));
    if (n > size - 8 || n > 100_000_000) throw new Error(`${path}: not a safetensors file (or truncated): header length ${n} exceeds the file's ${size - 8} bytes after it`);
    const hb = new Uint8Array(n);
    readAll(r, hb, 8);
    let header: Record<string, unknown>;
    try {
      header = JSON.parse(new TextDecoder().decode(hb));
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
      if (en > dataBytes) {
        throw new ModelFileError(`${path}: tensor '${name}': data_offsets [${b}, ${en}] run past the end of the data (${dataBytes} bytes): truncated shard (the file has ${size} bytes, its header needs at least ${dataStart + en}; re-download or re-copy it)`, path, name);
      }
      const shape = e.shape as number[];
      const el = DTYPE_BYTES[e.dtype];
      if (el !== undefined && numel(shape) * el !== en - b) {
        throw bad(`shape [${shape.join(', ')}] of ${e.dtype} needs ${numel(shape) * el} bytes but data_offsets [${b}, ${en}] hold ${en - b}`);
      }
      infos.set(name, { name, dtype: e.dtype, shape, file: path, begin: dataStart + b, end: dataStart + en, src });
    }
    // Tensors must not share bytes: overlapping ranges would load one tensor's data as another's.
    const byStart = [...infos.values()].filter((t) => t.end > t.begin).sort((a, c) => a.begin - c.begin);
    for (let k = 1; k < byStart.length; k++) {
      const [a, c] = [byStart[k - 1], byStart[k]];
      if (c.begin < a.end) {
        throw new ModelFileError(`${path}: tensors '${a.name}' and '${c.name}' overlap (data_offsets [${a.begin - dataStart}, ${a.end - dataStart}] and [${c.begin - dataStart}, ${c.end - dataStart}]): a damaged or hostile header`, path, c.name);
      }
    }
    return { infos, metadata };
  } finally {
    r.close();
  }
}

/** Throws the loader's error for a dtype it cannot read. */
export function checkDtype(t: TensorInfo): void {
  if (!SUPPORTED.includes(t.dtype)) {
    throw new ModelFileError(`${t.file}: tensor '${t.name}' has dtype ${t.dtype}; supported: ${SUPPORTED.join(', ')} (concord cannot read it: convert the checkpoint, e.g. to bf16)`, t.file, t.name);
  }
}

function openForRead(t: TensorInfo): ByteReader {
  try {
    return t.src.open();
  } catch (e) {
    throw new ModelFileError(`${t.file}: cannot open shard (holding '${t.name}'): ${(e as Error).message}`, t.file, t.name);
  }
}

/** Fill dst from the file at byte `pos` (positioned reads); a short file is a truncated shard. */
function readFully(r: ByteReader, t: TensorInfo, dst: Uint8Array, pos: number): void {
  const done = readAll(r, dst, pos);
  if (done < dst.length) throw new ModelFileError(`${t.file}: truncated shard: tensor '${t.name}' ends at byte ${t.end} but the file ends at byte ${pos + done}`, t.file, t.name);
}

/** Elements per chunk of TensorRef.chunks() by default: 2 Mi (≤ 8 MiB read + 8 MiB converted). */
export const DEFAULT_CHUNK_ELEMS = 1 << 21;

/**
 * Elements [elemBegin, elemBegin + length) of one safetensors tensor, read on demand: whole as f32,
 * or in bounded chunks converted to the GPU's storage type (positioned reads into reused buffers).
 */
export class FileTensorRef implements TensorRef {
  readonly length: number;
  readonly sourceBytes: number;
  constructor(readonly info: TensorInfo, readonly elemBegin = 0, length?: number) {
    checkDtype(info);
    const total = numel(info.shape);
    this.length = length ?? total - elemBegin;
    if (elemBegin < 0 || this.length < 0 || elemBegin + this.length > total) throw new Error(`${info.file}: tensor '${info.name}': range [${elemBegin}, ${elemBegin + this.length}) outside its ${total} elements`);
    this.sourceBytes = this.length * DTYPE_BYTES[info.dtype];
  }
  get file(): string { return this.info.file; }
  get sourceOrder(): number { return this.info.begin + this.elemBegin * DTYPE_BYTES[this.info.dtype]; }
  get source(): string { return `${this.info.file}: tensor '${this.info.name}'`; }

  /** A sub-range (Phi-3's fused q|k|v and gate|up rows). */
  slice(elemBegin: number, length: number): FileTensorRef {
    return new FileTensorRef(this.info, this.elemBegin + elemBegin, length);
  }

  read(): Float32Array {
    const out = new Float32Array(this.length);
    for (const c of this.chunks('f32')) out.set(c.data as Float32Array, c.offset);
    return out;
  }

  /**
   * The elements in order, `maxElems` at a time, converted to `to`. The yielded arrays are reused
   * between steps: consume each before asking for the next. bf16 → f16 goes through a table, never f32.
   */
  *chunks(to: ChunkTarget, maxElems = DEFAULT_CHUNK_ELEMS, scratch: ChunkScratch = {}): Generator<{ data: Float32Array | Uint16Array; offset: number }> {
    const t = this.info, el = DTYPE_BYTES[t.dtype];
    const per = Math.max(2, Math.min(maxElems, this.length)) & ~1; // even, so f16 chunks stay 4-byte multiples
    const same = (t.dtype === 'F32' && to === 'f32') || (t.dtype === 'F16' && to === 'f16');
    // Raw bytes as read, and (when the type changes) the converted chunk: 4 bytes an element at most.
    const buf = (k: 'raw' | 'conv') => (scratch[k] && scratch[k].byteLength >= per * 4 ? scratch[k] : (scratch[k] = new ArrayBuffer(per * 4)));
    const raw = t.dtype === 'F32' ? new Float32Array(buf('raw'), 0, per) : new Uint16Array(buf('raw'), 0, per);
    const conv = same ? null : to === 'f32' ? new Float32Array(buf('conv'), 0, per) : new Uint16Array(buf('conv'), 0, per);
    const rd = openForRead(t);
    try {
      for (let off = 0; off < this.length; off += per) {
        const n = Math.min(per, this.length - off);
        const src = raw.subarray(0, n);
        readFully(rd, t, new Uint8Array(src.buffer, 0, n * el), t.begin + (this.elemBegin + off) * el);
        if (!conv) { yield { data: src, offset: off }; continue; }
        const dst = conv.subarray(0, n);
        if (t.dtype === 'F32') f32IntoF16Bits(src as Float32Array, dst as Uint16Array);
        else if (t.dtype === 'BF16') (to === 'f16' ? bf16BitsToF16Bits(src as Uint16Array, dst as Uint16Array) : bf16BitsIntoF32(src as Uint16Array, dst as Float32Array));
        else f16BitsIntoF32(src as Uint16Array, dst as Float32Array);
        yield { data: dst, offset: off };
      }
    } finally {
      rd.close();
    }
  }
}

function readInfo(t: TensorInfo): Float32Array {
  return new FileTensorRef(t).read();
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

/** One .safetensors file on disk (Node). */
export function openSafetensors(path: string): TensorSource {
  return new InfoSource(path, parseSafetensorsHeader(path).infos);
}

/** One .safetensors file from its bytes. */
export function openSafetensorsSource(src: ByteSource): TensorSource {
  return new InfoSource(src.name, parseSafetensorsHeaderFrom(src).infos);
}

/** A sharded checkpoint on disk through its model.safetensors.index.json (Node). */
export function openSafetensorsIndex(indexPath: string): TensorSource {
  const { basename, dirname } = nodePath();
  return openSafetensorsIndexIn(folderFiles(dirname(indexPath)), basename(indexPath));
}

/** A sharded checkpoint through its index file, the shards read from the same folder. */
export function openSafetensorsIndexIn(files: ModelFiles, indexName: string): TensorSource {
  const indexPath = files.path(indexName);
  if (!files.has(indexName)) throw new Error(`${indexPath}: safetensors index not found`);
  let idx: { weight_map?: Record<string, string> };
  try {
    idx = JSON.parse(files.text(indexName));
  } catch (e) {
    throw new Error(`${indexPath}: not valid JSON: ${(e as Error).message}`);
  }
  if (!idx.weight_map || typeof idx.weight_map !== 'object') throw new Error(`${indexPath}: no "weight_map" object`);
  const shards = new Map<string, Map<string, TensorInfo>>();
  const infos = new Map<string, TensorInfo>();
  for (const [name, file] of Object.entries(idx.weight_map)) {
    let shard = shards.get(file);
    if (!shard) {
      // The join stays inside the model folder: a relative name with no '..', '\\' or drive part.
      if (typeof file !== 'string' || !isRepoFileName(file)) {
        throw new ModelFileError(`${indexPath}: weight_map names shard ${JSON.stringify(file)} (for '${name}'), a path outside the model folder; refused`, indexPath, name);
      }
      const p = files.path(file);
      if (!files.has(file)) throw new ModelFileError(`${indexPath}: shard '${file}' (holding '${name}') not found at ${p}: the checkpoint is incomplete (download the missing shard)`, p, name);
      shard = parseSafetensorsHeaderFrom(files.bytes(file)).infos;
      shards.set(file, shard);
    }
    const t = shard.get(name);
    if (!t) throw new Error(`${indexPath}: weight_map puts '${name}' in '${file}', which has no such tensor`);
    infos.set(name, t);
  }
  return new InfoSource(indexPath, infos);
}

/** The tensors of a Hugging Face folder on disk: model.safetensors or model.safetensors.index.json (Node). */
export function openSafetensorsFolder(dir: string): TensorSource {
  return openSafetensorsIn(folderFiles(dir));
}

/** The tensors of a Hugging Face folder's files: model.safetensors or model.safetensors.index.json. */
export function openSafetensorsIn(files: ModelFiles): TensorSource {
  if (files.has('model.safetensors.index.json')) return openSafetensorsIndexIn(files, 'model.safetensors.index.json');
  if (files.has('model.safetensors')) return openSafetensorsSource(files.bytes('model.safetensors'));
  const hasBin = files.has('pytorch_model.bin') || files.has('pytorch_model.bin.index.json');
  throw new Error(`${files.dir}: no model.safetensors or model.safetensors.index.json${hasBin ? ' (pytorch_model.bin is not supported: convert it to safetensors)' : ''}`);
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
  const utf8 = new TextEncoder();
  while ((8 + utf8.encode(json).length) % 8 !== 0) json += ' ';
  const hb = utf8.encode(json);
  const out = new Uint8Array(8 + hb.length + off);
  new DataView(out.buffer).setBigUint64(0, BigInt(hb.length), true);
  out.set(hb, 8);
  let at = 8 + hb.length;
  for (const b of blobs) { out.set(b, at); at += b.length; }
  nodeFs().writeFileSync(path, out);
}
