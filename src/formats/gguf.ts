// GGUF files (llama.cpp, Ollama, LM Studio): the header and metadata through @huggingface/gguf
// (`gguf(path, { allowLocalFile, typedMetadata })`, which bounds counts, string and array lengths
// and rejects unknown value types), then the checks a loader needs that it leaves out: every
// tensor's data lies inside the file, at an aligned offset, with a byte count its shape and type
// imply. Tensor data is read by offset, one tensor at a time, as its raw blocks or dequantized to f32
// (src/quant/dequant.ts). Every failure is a ModelFileError (exit 3) naming the file.

import { closeSync, openSync, readSync, statSync } from 'node:fs';
import { gguf } from '@huggingface/gguf';
import { ModelFileError } from '../errors.js';
import { dequantize } from '../quant/dequant.js';
import { ggmlTypeName, isReadableType, READABLE_TYPES, TYPE_LAYOUT, type GgmlType } from '../quant/types.js';

export type GgufValue = string | number | bigint | boolean | GgufValue[];

export interface GgufTensorInfo {
  name: string;
  /** ggml order: ne[0] is the contiguous dimension (a [out, in] matrix has ne = [in, out]) */
  ne: number[];
  /** ggml type id (src/quant/types.ts) */
  type: number;
  elems: number;
  /** absolute byte offset in the file */
  offset: number;
  bytes: number;
}

export interface GgufFile {
  path: string;
  version: number;
  alignment: number;
  fileSize: number;
  /** start of the data section */
  dataOffset: number;
  metadata: Map<string, GgufValue>;
  tensors: Map<string, GgufTensorInfo>;
}

const fail = (path: string, why: string, tensor?: string): ModelFileError => new ModelFileError(`${path}: ${why}`, path, tensor);

/** Parse a GGUF file's header; check every tensor's place in the file (not its type: see tensorBytes). */
export async function readGguf(path: string): Promise<GgufFile> {
  let fileSize: number;
  try {
    fileSize = statSync(path).size;
  } catch (e) {
    throw fail(path, `cannot read: ${(e as Error).message}`);
  }
  let parsed: Awaited<ReturnType<typeof gguf>>;
  try {
    parsed = await gguf(path, { allowLocalFile: true });
  } catch (e) {
    throw fail(path, `not a readable GGUF file: ${(e as Error).message}`);
  }
  if (!parsed.littleEndian) throw fail(path, 'big-endian GGUF files are not supported');
  const { version, tensor_count: _tc, kv_count: _kc, ...kvs } = parsed.metadata as unknown as Record<string, GgufValue> & { version: number };
  const metadata = new Map<string, GgufValue>(Object.entries(kvs));
  const rawAlign = metadata.get('general.alignment') ?? 32;
  const alignment = Number(rawAlign);
  if (!Number.isInteger(alignment) || alignment <= 0 || alignment % 8 !== 0) throw fail(path, `general.alignment ${String(rawAlign)} is not a positive multiple of 8`);
  const dataOffset = Number(parsed.tensorDataOffset);
  const tensors = new Map<string, GgufTensorInfo>();
  for (const t of parsed.tensorInfos) {
    const ne = t.shape.map(Number);
    const elems = ne.reduce((a, b) => a * b, 1);
    if (!Number.isSafeInteger(elems) || ne.some((d) => !(d >= 1))) throw fail(path, `tensor '${t.name}' has shape [${t.shape.join(', ')}]`, t.name);
    const type = t.dtype as number;
    const layout = isReadableType(type) ? TYPE_LAYOUT[type] : null;
    // Unknown types: the size is unknown; the error comes when the tensor is used (a file may carry tensors concord does not need).
    const bytes = layout ? (elems / layout.blockElems) * layout.blockBytes : 0;
    if (layout && ne[0] % layout.blockElems !== 0) throw fail(path, `tensor '${t.name}': row length ${ne[0]} is not a multiple of the ${ggmlTypeName(type)} block size ${layout.blockElems}`, t.name);
    const rel = Number(t.offset);
    if (!Number.isSafeInteger(rel) || rel % alignment !== 0) throw fail(path, `tensor '${t.name}': offset ${t.offset} is not a multiple of the alignment ${alignment}`, t.name);
    const offset = dataOffset + rel;
    if (offset + bytes > fileSize) {
      throw fail(path, `tensor '${t.name}' (${ggmlTypeName(type)} [${ne.join(', ')}]) lies at bytes ${offset}..${offset + bytes}, past the end of the file (${fileSize} bytes): truncated or corrupt`, t.name);
    }
    if (tensors.has(t.name)) throw fail(path, `tensor '${t.name}' is listed twice`, t.name);
    tensors.set(t.name, { name: t.name, ne, type, elems, offset, bytes });
  }
  return { path, version, alignment, fileSize, dataOffset, metadata, tensors };
}

/** A tensor's info, or a ModelFileError naming it when it is missing or of a type concord cannot read. */
export function readableTensor(f: GgufFile, name: string): GgufTensorInfo & { type: GgmlType } {
  const t = f.tensors.get(name);
  if (!t) throw fail(f.path, `missing tensor '${name}'`, name);
  if (!isReadableType(t.type)) {
    throw fail(f.path, `tensor '${name}' has type ${ggmlTypeName(t.type)}; concord reads ${READABLE_TYPES.join(', ')} (requantize the model, e.g. to Q8_0 or Q4_K_M)`, name);
  }
  return t as GgufTensorInfo & { type: GgmlType };
}

/**
 * out.length bytes of a tensor's stored blocks from byte `start` of its data, read by offset into
 * `out` (streaming reads it piece by piece into reused buffers). Returns out.
 */
export function readTensorBytes(f: GgufFile, name: string, start: number, out: Uint8Array): Uint8Array {
  const t = readableTensor(f, name);
  if (start < 0 || start + out.length > t.bytes) throw fail(f.path, `tensor '${name}': bytes ${start}..${start + out.length} asked for, past its ${t.bytes} bytes`, name);
  const fd = openSync(f.path, 'r');
  try {
    let done = 0;
    while (done < out.length) {
      const n = readSync(fd, out, done, out.length - done, t.offset + start + done);
      if (n === 0) throw fail(f.path, `truncated: tensor '${name}' ends at byte ${t.offset + t.bytes} but the file ends at byte ${t.offset + start + done}`, name);
      done += n;
    }
  } finally {
    closeSync(fd);
  }
  return out;
}

/** A tensor's raw bytes (its ggml blocks). Throws, naming the tensor, for a type concord cannot read. */
export function tensorBytes(f: GgufFile, name: string): Uint8Array {
  return readTensorBytes(f, name, 0, new Uint8Array(readableTensor(f, name).bytes));
}

/** A tensor dequantized to f32 (ggml's values, src/quant/dequant.ts). */
export function tensorF32(f: GgufFile, name: string): Float32Array {
  const bytes = tensorBytes(f, name);
  const t = f.tensors.get(name)!;
  return dequantize(t.type as GgmlType, bytes, t.elems);
}

/** A metadata value as a number (u64/i64 come as bigint), or undefined when absent. */
export function metaNumber(f: GgufFile, key: string): number | undefined {
  const v = f.metadata.get(key);
  if (v === undefined) return undefined;
  if (typeof v === 'number') return v;
  if (typeof v === 'bigint' && v <= BigInt(Number.MAX_SAFE_INTEGER) && v >= -BigInt(Number.MAX_SAFE_INTEGER)) return Number(v);
  throw fail(f.path, `metadata '${key}' is ${JSON.stringify(typeof v === 'bigint' ? String(v) : v)}, not a number`);
}

export function metaString(f: GgufFile, key: string): string | undefined {
  const v = f.metadata.get(key);
  if (v === undefined) return undefined;
  if (typeof v !== 'string') throw fail(f.path, `metadata '${key}' is not a string`);
  return v;
}

export function metaArray(f: GgufFile, key: string): GgufValue[] | undefined {
  const v = f.metadata.get(key);
  if (v === undefined) return undefined;
  if (!Array.isArray(v)) throw fail(f.path, `metadata '${key}' is not an array`);
  return v;
}
