// GGUF v3 writer (little-endian), for `concord quantize` and tests. Layout (ggml docs/gguf.md):
//
//   u32 magic "GGUF" | u32 version 3 | u64 tensor_count | u64 metadata_kv_count
//   kv*:     string key | u32 value_type | value   (string = u64 length + UTF-8 bytes;
//            array = u32 item type | u64 count | items)
//   tensor*: string name | u32 n_dims | u64 ne[n_dims] (ne[0] the contiguous dimension) | u32 ggml type
//            | u64 offset (from the start of the data section, a multiple of general.alignment)
//   padding to general.alignment (default 32) | tensor data, each tensor padded to the alignment
//
// Tensors are produced one at a time (`data()`), so a file far larger than memory can be written;
// the file appears at `path` only when complete (written beside it, then renamed).

import { closeSync, openSync, renameSync, rmSync, writeSync } from 'node:fs';
import { GGML_TYPE, typeBytes, type GgmlType } from '../quant/types.js';

/** GGUF metadata value types (gguf.md gguf_metadata_value_type). */
export const GGUF_VALUE = {
  UINT8: 0, INT8: 1, UINT16: 2, INT16: 3, UINT32: 4, INT32: 5, FLOAT32: 6, BOOL: 7, STRING: 8, ARRAY: 9, UINT64: 10, INT64: 11, FLOAT64: 12,
} as const;
export type GgufValueType = (typeof GGUF_VALUE)[keyof typeof GGUF_VALUE];

export type GgufScalar = number | bigint | boolean | string;
export interface GgufKv {
  key: string;
  type: GgufValueType;
  /** a scalar, or for ARRAY the items (of itemType) */
  value: GgufScalar | GgufScalar[];
  itemType?: GgufValueType;
}

export interface GgufTensorToWrite {
  name: string;
  /** ggml order: ne[0] is the contiguous (innermost) dimension, so a [out, in] matrix is [in, out] */
  ne: number[];
  type: GgmlType;
  /** the tensor's bytes in `type` (called once, in file order) */
  data: () => Uint8Array;
}

export const GGUF_DEFAULT_ALIGNMENT = 32;

class ByteSink {
  private buf = new Uint8Array(1 << 16);
  private view = new DataView(this.buf.buffer);
  length = 0;
  private room(n: number): void {
    if (this.length + n <= this.buf.length) return;
    const next = new Uint8Array(Math.max(this.buf.length * 2, this.length + n));
    next.set(this.buf.subarray(0, this.length));
    this.buf = next;
    this.view = new DataView(next.buffer);
  }
  u8(v: number): void { this.room(1); this.view.setUint8(this.length, v); this.length += 1; }
  u32(v: number): void { this.room(4); this.view.setUint32(this.length, v, true); this.length += 4; }
  u64(v: number | bigint): void { this.room(8); this.view.setBigUint64(this.length, BigInt(v), true); this.length += 8; }
  bytes(b: Uint8Array): void { this.room(b.length); this.buf.set(b, this.length); this.length += b.length; }
  str(s: string): void { const b = new TextEncoder().encode(s); this.u64(b.length); this.bytes(b); }
  scalar(type: GgufValueType, v: GgufScalar): void {
    this.room(8);
    const o = this.length, dv = this.view;
    switch (type) {
      case GGUF_VALUE.UINT8: dv.setUint8(o, Number(v)); this.length += 1; return;
      case GGUF_VALUE.INT8: dv.setInt8(o, Number(v)); this.length += 1; return;
      case GGUF_VALUE.UINT16: dv.setUint16(o, Number(v), true); this.length += 2; return;
      case GGUF_VALUE.INT16: dv.setInt16(o, Number(v), true); this.length += 2; return;
      case GGUF_VALUE.UINT32: dv.setUint32(o, Number(v), true); this.length += 4; return;
      case GGUF_VALUE.INT32: dv.setInt32(o, Number(v), true); this.length += 4; return;
      case GGUF_VALUE.FLOAT32: dv.setFloat32(o, Number(v), true); this.length += 4; return;
      case GGUF_VALUE.BOOL: dv.setUint8(o, v ? 1 : 0); this.length += 1; return;
      case GGUF_VALUE.UINT64: dv.setBigUint64(o, BigInt(v), true); this.length += 8; return;
      case GGUF_VALUE.INT64: dv.setBigInt64(o, BigInt(v), true); this.length += 8; return;
      case GGUF_VALUE.FLOAT64: dv.setFloat64(o, Number(v), true); this.length += 8; return;
      case GGUF_VALUE.STRING: this.str(String(v)); return;
    }
    throw new Error(`GGUF writer: value type ${type} is not a scalar type`);
  }
  pad(alignment: number): void { while (this.length % alignment) this.u8(0); }
  out(): Uint8Array { return this.buf.subarray(0, this.length); }
}

/** The header (through the padding before the data section) and each tensor's offset in the data section. */
export function ggufHeader(kvs: GgufKv[], tensors: Omit<GgufTensorToWrite, 'data'>[], alignment = GGUF_DEFAULT_ALIGNMENT): { header: Uint8Array; offsets: number[]; sizes: number[] } {
  const s = new ByteSink();
  s.bytes(new TextEncoder().encode('GGUF'));
  s.u32(3);
  s.u64(tensors.length);
  const all = kvs.some((k) => k.key === 'general.alignment') || alignment === GGUF_DEFAULT_ALIGNMENT
    ? kvs : [...kvs, { key: 'general.alignment', type: GGUF_VALUE.UINT32, value: alignment } as GgufKv];
  s.u64(all.length);
  for (const kv of all) {
    s.str(kv.key);
    s.u32(kv.type);
    if (kv.type === GGUF_VALUE.ARRAY) {
      if (kv.itemType === undefined || !Array.isArray(kv.value)) throw new Error(`GGUF writer: array '${kv.key}' needs itemType and a list`);
      s.u32(kv.itemType);
      s.u64(kv.value.length);
      for (const v of kv.value) s.scalar(kv.itemType, v);
    } else {
      if (Array.isArray(kv.value)) throw new Error(`GGUF writer: '${kv.key}' is a list but its type is ${kv.type}`);
      s.scalar(kv.type, kv.value);
    }
  }
  const offsets: number[] = [], sizes: number[] = [];
  let off = 0;
  for (const t of tensors) {
    const n = t.ne.reduce((a, b) => a * b, 1);
    const size = typeBytes(t.type, n);
    s.str(t.name);
    s.u32(t.ne.length);
    for (const d of t.ne) s.u64(d);
    s.u32(t.type);
    s.u64(off);
    offsets.push(off);
    sizes.push(size);
    off += Math.ceil(size / alignment) * alignment;
  }
  s.pad(alignment);
  return { header: s.out(), offsets, sizes };
}

/** Write a GGUF v3 file at `path` (atomically). Returns its size in bytes. */
export function writeGguf(path: string, kvs: GgufKv[], tensors: GgufTensorToWrite[], alignment = GGUF_DEFAULT_ALIGNMENT): number {
  const { header, sizes } = ggufHeader(kvs, tensors, alignment);
  const tmp = `${path}.partial-${process.pid}`;
  const fd = openSync(tmp, 'w');
  let written = 0;
  try {
    written += writeSync(fd, header);
    const zeros = new Uint8Array(alignment);
    tensors.forEach((t, i) => {
      const data = t.data();
      if (data.length !== sizes[i]) throw new Error(`GGUF writer: tensor '${t.name}' has ${data.length} bytes, its shape and type need ${sizes[i]}`);
      written += writeSync(fd, data);
      const pad = (alignment - (data.length % alignment)) % alignment;
      if (pad) written += writeSync(fd, zeros, 0, pad);
    });
    closeSync(fd);
  } catch (e) {
    closeSync(fd);
    rmSync(tmp, { force: true });
    throw e;
  }
  renameSync(tmp, path);
  return written;
}

/** Shorthands for metadata entries. */
export const kv = {
  str: (key: string, value: string): GgufKv => ({ key, type: GGUF_VALUE.STRING, value }),
  u32: (key: string, value: number): GgufKv => ({ key, type: GGUF_VALUE.UINT32, value }),
  i32: (key: string, value: number): GgufKv => ({ key, type: GGUF_VALUE.INT32, value }),
  f32: (key: string, value: number): GgufKv => ({ key, type: GGUF_VALUE.FLOAT32, value }),
  bool: (key: string, value: boolean): GgufKv => ({ key, type: GGUF_VALUE.BOOL, value }),
  strs: (key: string, value: string[]): GgufKv => ({ key, type: GGUF_VALUE.ARRAY, itemType: GGUF_VALUE.STRING, value }),
  f32s: (key: string, value: number[]): GgufKv => ({ key, type: GGUF_VALUE.ARRAY, itemType: GGUF_VALUE.FLOAT32, value }),
  i32s: (key: string, value: number[]): GgufKv => ({ key, type: GGUF_VALUE.ARRAY, itemType: GGUF_VALUE.INT32, value }),
};

export { GGML_TYPE };
