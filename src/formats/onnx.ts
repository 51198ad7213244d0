// Reading ONNX models without ONNX Runtime: the protobuf is decoded by onnx-proto (protobufjs
// static code generated from the official onnx.proto; pure JS, bundles for the browser), tensors
// are read from raw_data, the typed *_data fields or external data files, and the graph is
// indexed (producer / consumers per value) so that model loaders can walk it.

import onnxProto from 'onnx-proto';
import type { onnx as OnnxNs } from 'onnx-proto';
import { bf16ToF32, f16ToF32 } from '../util/f16.js';

const { onnx } = onnxProto;

type TensorProto = OnnxNs.ITensorProto;
export type OnnxTensorProto = OnnxNs.ITensorProto;
export type OnnxModelProto = OnnxNs.IModelProto;
type LongLike = number | { toNumber(): number };

/** int64 fields arrive as protobufjs Long objects (or numbers). */
export function num(x: LongLike | null | undefined): number {
  if (x === null || x === undefined) return 0;
  return typeof x === 'number' ? x : x.toNumber();
}

/** ONNX TensorProto.DataType values this reader understands. */
export const DT = { FLOAT: 1, UINT8: 2, INT8: 3, INT32: 6, INT64: 7, FLOAT16: 10, DOUBLE: 11, BFLOAT16: 16 } as const;
const DT_NAMES: Record<number, string> = { 1: 'float', 2: 'uint8', 3: 'int8', 4: 'uint16', 5: 'int16', 6: 'int32', 7: 'int64', 9: 'bool', 10: 'float16', 11: 'double', 16: 'bfloat16', 21: 'uint4', 22: 'int4' };
export const dtypeName = (dt: number): string => DT_NAMES[dt] ?? `dtype ${dt}`;

export interface OnnxAttr {
  f?: number;
  i?: number;
  s?: string;
  ints?: number[];
  floats?: number[];
  t?: TensorProto;
}

export interface OnnxNode {
  opType: string;
  /** '' for the default ai.onnx domain */
  domain: string;
  name: string;
  /** '' marks an omitted optional input */
  inputs: string[];
  outputs: string[];
  attrs: Map<string, OnnxAttr>;
  /** position in the (topologically sorted) node list */
  index: number;
}

export interface OnnxTensor {
  name: string;
  dims: number[];
  dataType: number;
  /** The tensor's bytes, little-endian, as stored (copied out of the protobuf / external file: offset 0, aligned). */
  bytes: Uint8Array;
}

/** External data files by the `location` a tensor names (relative to the .onnx file). */
export type ExternalData = Map<string, Uint8Array>;

export class OnnxGraph {
  readonly nodes: OnnxNode[];
  readonly inputs: string[];
  readonly outputs: string[];
  readonly producer = new Map<string, OnnxNode>();
  readonly consumers = new Map<string, OnnxNode[]>();
  private tensorProtos = new Map<string, TensorProto>();
  private tensors = new Map<string, OnnxTensor>();

  constructor(readonly model: OnnxNs.ModelProto, private external: ExternalData, readonly source: string) {
    const g = model.graph;
    if (!g) throw new Error(`${source}: the ONNX model has no graph`);
    const initializers = g.initializer ?? [];
    for (const t of initializers) this.tensorProtos.set(t.name ?? '', t);
    this.nodes = (g.node ?? []).map((n, index) => ({
      opType: n.opType ?? '',
      domain: n.domain ?? '',
      name: n.name ?? '',
      inputs: n.input ?? [],
      outputs: n.output ?? [],
      attrs: new Map((n.attribute ?? []).map((a) => [a.name ?? '', attrOf(a)])),
      index,
    }));
    // A Constant node's value behaves like an initializer.
    for (const n of this.nodes) {
      if (n.opType === 'Constant' && n.attrs.get('value')?.t) this.tensorProtos.set(n.outputs[0], n.attrs.get('value')!.t!);
    }
    const initNames = new Set(initializers.map((t) => t.name ?? ''));
    this.inputs = (g.input ?? []).map((i) => i.name ?? '').filter((n) => !initNames.has(n));
    this.outputs = (g.output ?? []).map((o) => o.name ?? '');
    for (const n of this.nodes) {
      for (const o of n.outputs) this.producer.set(o, n);
      for (const i of n.inputs) {
        if (!i) continue;
        let list = this.consumers.get(i);
        if (!list) this.consumers.set(i, (list = []));
        list.push(n);
      }
    }
  }

  /** Is `name` a constant (an initializer or a Constant node's output)? */
  isConst(name: string): boolean {
    return this.tensorProtos.has(name);
  }

  dims(name: string): number[] | null {
    const t = this.tensorProtos.get(name);
    return t ? (t.dims ?? []).map(num) : null;
  }

  /** A constant tensor's raw bytes (cached). */
  tensor(name: string): OnnxTensor {
    const hit = this.tensors.get(name);
    if (hit) return hit;
    const t = this.tensorProtos.get(name);
    if (!t) throw new Error(`${this.source}: '${name}' is not an initializer or constant`);
    const out: OnnxTensor = { name, dims: (t.dims ?? []).map(num), dataType: t.dataType ?? 0, bytes: this.tensorBytes(name, t) };
    this.tensors.set(name, out);
    return out;
  }

  /** A constant as f32 (from float, float16, bfloat16 or double storage). */
  f32(name: string): Float32Array {
    return tensorToF32(this.tensor(name), this.source);
  }

  /** A constant of integer type as plain numbers (int32 / int64 / uint8 / int8). */
  ints(name: string): number[] {
    const t = this.tensor(name);
    const v = new DataView(t.bytes.buffer, t.bytes.byteOffset, t.bytes.byteLength);
    const out: number[] = [];
    switch (t.dataType) {
      case DT.INT64: for (let i = 0; i < t.bytes.length; i += 8) out.push(Number(v.getBigInt64(i, true))); break;
      case DT.INT32: for (let i = 0; i < t.bytes.length; i += 4) out.push(v.getInt32(i, true)); break;
      case DT.UINT8: for (let i = 0; i < t.bytes.length; i++) out.push(v.getUint8(i)); break;
      case DT.INT8: for (let i = 0; i < t.bytes.length; i++) out.push(v.getInt8(i)); break;
      default: throw new Error(`${this.source}: '${name}' is ${dtypeName(t.dataType)}, expected an integer tensor`);
    }
    return out;
  }

  consumersOf(value: string): OnnxNode[] {
    return this.consumers.get(value) ?? [];
  }

  private tensorBytes(name: string, t: TensorProto): Uint8Array {
    if (t.dataLocation === 1 /* EXTERNAL */) {
      const kv = new Map((t.externalData ?? []).map((e) => [e.key ?? '', e.value ?? '']));
      const location = kv.get('location');
      if (!location) throw new Error(`${this.source}: tensor '${name}' is external but names no location`);
      const file = this.external.get(location);
      if (!file) throw new Error(`${this.source}: tensor '${name}' lives in external file '${location}', which was not provided`);
      const offset = Number(kv.get('offset') ?? 0);
      const length = kv.has('length') ? Number(kv.get('length')) : file.length - offset;
      if (offset + length > file.length) throw new Error(`${this.source}: tensor '${name}' [${offset}, +${length}) runs past the end of '${location}' (${file.length} bytes)`);
      return copyBytes(file, offset, offset + length);
    }
    if (t.rawData && t.rawData.length) return copyBytes(t.rawData, 0, t.rawData.length);
    const dt = t.dataType ?? 0;
    if (t.floatData?.length) return new Uint8Array(new Float32Array(t.floatData).buffer);
    if (t.doubleData?.length) return new Uint8Array(new Float64Array(t.doubleData).buffer);
    if (t.int64Data?.length) return new Uint8Array(new BigInt64Array(t.int64Data.map((x) => BigInt(num(x)))).buffer);
    if (t.int32Data?.length) {
      // int32_data also carries uint8/int8/uint16/float16/bfloat16/bool, one value per entry.
      const v = t.int32Data;
      if (dt === DT.INT32) return new Uint8Array(new Int32Array(v).buffer);
      if (dt === DT.UINT8 || dt === DT.INT8 || dt === 9) return new Uint8Array(v.map((x) => x & 0xff));
      if (dt === DT.FLOAT16 || dt === DT.BFLOAT16 || dt === 4 || dt === 5) return new Uint8Array(new Uint16Array(v).buffer);
      throw new Error(`${this.source}: tensor '${name}': ${dtypeName(dt)} in int32_data is not supported`);
    }
    return new Uint8Array(0); // an empty tensor
  }
}

/**
 * A fresh, 0-offset copy. Not `.slice()`: on a Node Buffer (what protobufjs and readFileSync
 * return) slice is a view, possibly at an offset that a Float32Array cannot start from.
 */
export function copyBytes(src: Uint8Array, start: number, end: number): Uint8Array {
  return new Uint8Array(src.subarray(start, end));
}

function attrOf(a: OnnxNs.IAttributeProto): OnnxAttr {
  const out: OnnxAttr = {};
  switch (a.type) {
    case 1: out.f = a.f ?? 0; break;
    case 2: out.i = num(a.i as LongLike); break;
    case 3: out.s = new TextDecoder().decode(a.s ?? new Uint8Array(0)); break;
    case 4: out.t = a.t ?? undefined; break;
    case 6: out.floats = a.floats ?? []; break;
    case 7: out.ints = (a.ints ?? []).map((x) => num(x as LongLike)); break;
    default: break; // graphs, strings, sparse tensors: not needed by our loaders
  }
  return out;
}

export function tensorToF32(t: OnnxTensor, source = 'onnx'): Float32Array {
  const b = t.bytes;
  switch (t.dataType) {
    case DT.FLOAT: {
      // bytes is a fresh copy (offset 0), so it is 4-byte aligned.
      return new Float32Array(b.buffer, b.byteOffset, b.byteLength / 4);
    }
    case DT.FLOAT16: return f16ToF32(new Uint16Array(b.buffer, b.byteOffset, b.byteLength / 2));
    case DT.BFLOAT16: return bf16ToF32(new Uint16Array(b.buffer, b.byteOffset, b.byteLength / 2));
    case DT.DOUBLE: return Float32Array.from(new Float64Array(b.buffer, b.byteOffset, b.byteLength / 8));
    default: throw new Error(`${source}: tensor '${t.name}' is ${dtypeName(t.dataType)}, expected a floating-point tensor`);
  }
}

/** Decode an ONNX model. `external` maps each external-data `location` to its bytes. */
export function parseOnnx(bytes: Uint8Array, external: ExternalData = new Map(), source = 'onnx'): OnnxGraph {
  let model: OnnxNs.ModelProto;
  try {
    model = onnx.ModelProto.decode(bytes);
  } catch (e) {
    throw new Error(`${source}: not a valid ONNX protobuf (${(e as Error).message})`);
  }
  return new OnnxGraph(model, external, source);
}

/** The external data files a model refers to (their `location`s), so a loader can read them. */
export function externalLocations(bytes: Uint8Array): string[] {
  const model = onnx.ModelProto.decode(bytes);
  const out = new Set<string>();
  for (const t of model.graph?.initializer ?? []) {
    if (t.dataLocation !== 1) continue;
    for (const e of t.externalData ?? []) if (e.key === 'location' && e.value) out.add(e.value);
  }
  return [...out];
}

/** Encode a model (used by tests to build small graphs for ONNX Runtime). */
export function encodeOnnx(model: OnnxModelProto): Uint8Array {
  return onnx.ModelProto.encode(onnx.ModelProto.create(model)).finish();
}

export { onnx };
