// A small ONNX graph builder over onnx-proto (protobufjs code generated from the official
// onnx.proto): named values, one method per node, f32/int64 initializers, and serialisation to the
// bytes InferenceSession.create(buffer) takes. Value names are generated (`<prefix>_<n>`), so
// op-builders compose without name clashes; every node returns the name(s) of its output(s).

import onnxProto from 'onnx-proto';
import type { onnx as OnnxNs } from 'onnx-proto';

const { onnx } = onnxProto;

/** TensorProto.DataType values used here. */
export const ONNX_FLOAT = 1;
export const ONNX_UINT8 = 2;
export const ONNX_INT64 = 7;
export const ONNX_BOOL = 9;

/** An ONNX value: its name in the graph. */
export type V = string;

type AttrValue = number | string | number[] | { float: number } | { floats: number[] } | { tensor: OnnxNs.ITensorProto };

/** Dimension of a graph input/output: a number, or a symbolic name ('batch', 'seq'). */
export type Dim = number | string;

export const OPSET = 17;
/** onnxruntime's contrib-op domain. */
export const MS_DOMAIN = 'com.microsoft';

export class GraphBuilder {
  private nodes: OnnxNs.INodeProto[] = [];
  private inits: OnnxNs.ITensorProto[] = [];
  private inputs: OnnxNs.IValueInfoProto[] = [];
  private outputs: OnnxNs.IValueInfoProto[] = [];
  private n = 0;
  private consts = new Map<string, V>();

  constructor(readonly name: string) {}

  /** A fresh value name. */
  fresh(prefix: string): V {
    return `${prefix}_${this.n++}`;
  }

  input(name: string, elemType: number, dims: Dim[]): V {
    this.inputs.push(valueInfo(name, elemType, dims));
    return name;
  }

  /** Declare `value` a graph output named `name` (an Identity node renames it). */
  output(value: V, name: string, elemType: number, dims: Dim[]): void {
    this.node('Identity', [value], {}, [name]);
    this.outputs.push(valueInfo(name, elemType, dims));
  }

  /** A node; returns its outputs (one fresh name each unless `outs` names them). */
  node(op: string, inputs: V[], attrs: Record<string, AttrValue> = {}, outs: number | V[] = 1, domain = ''): V[] {
    const outputs = typeof outs === 'number' ? Array.from({ length: outs }, () => this.fresh(op.toLowerCase())) : outs;
    this.nodes.push({
      opType: op, domain, input: inputs, output: outputs, name: `${op}_${this.nodes.length}`,
      attribute: Object.entries(attrs).map(([name, v]) => attribute(name, v)),
    });
    return outputs;
  }

  /** A one-output node. */
  op(op: string, inputs: V[], attrs: Record<string, AttrValue> = {}): V {
    return this.node(op, inputs, attrs)[0];
  }

  /** An f32 initializer (the array's bytes are referenced, not copied, until serialisation). */
  f32(name: string, data: Float32Array, dims: number[]): V {
    if (data.length !== dims.reduce((a, b) => a * b, 1)) throw new Error(`${name}: ${data.length} values for dims [${dims}]`);
    this.inits.push({ name, dims, dataType: ONNX_FLOAT, rawData: new Uint8Array(data.buffer, data.byteOffset, data.byteLength) });
    return name;
  }

  /** A uint8 initializer (referenced, not copied, until serialisation): MatMulNBits' packed weights. */
  u8(name: string, data: Uint8Array, dims: number[]): V {
    if (data.length !== dims.reduce((a, b) => a * b, 1)) throw new Error(`${name}: ${data.length} bytes for dims [${dims}]`);
    this.inits.push({ name, dims, dataType: ONNX_UINT8, rawData: data });
    return name;
  }

  /** An int64 constant (cached by value). */
  i64(values: number[], dims: number[] = [values.length]): V {
    const key = `i64:${dims}:${values}`;
    let v = this.consts.get(key);
    if (!v) {
      v = this.fresh('c_i64');
      const data = BigInt64Array.from(values.map((x) => BigInt(x)));
      this.inits.push({ name: v, dims, dataType: ONNX_INT64, rawData: new Uint8Array(data.buffer) });
      this.consts.set(key, v);
    }
    return v;
  }

  /** A scalar (dims []) int64 constant. */
  i64Scalar(x: number): V {
    return this.i64([x], []);
  }

  /** An f32 constant (cached by value); scalar when dims is []. */
  f32Const(values: number[], dims: number[] = []): V {
    const key = `f32:${dims}:${values}`;
    let v = this.consts.get(key);
    if (!v) {
      v = this.fresh('c_f32');
      this.f32(v, Float32Array.from(values), dims);
      this.consts.set(key, v);
    }
    return v;
  }

  /** The serialised ModelProto. */
  serialize(): Uint8Array {
    const model = onnx.ModelProto.create({
      irVersion: 8,
      producerName: 'concord',
      // com.microsoft (contrib ops: MatMulNBits) only when a node uses it
      opsetImport: [{ domain: '', version: OPSET }, ...(this.nodes.some((n) => n.domain === MS_DOMAIN) ? [{ domain: MS_DOMAIN, version: 1 }] : [])],
      graph: { name: this.name, node: this.nodes, initializer: this.inits, input: this.inputs, output: this.outputs },
    });
    return onnx.ModelProto.encode(model).finish();
  }

  /** Bytes of the initializers (a size check before serialising: protobuf messages stop at 2 GiB). */
  get initializerBytes(): number {
    return this.inits.reduce((s, t) => s + (t.rawData?.byteLength ?? 0), 0);
  }
}

function valueInfo(name: string, elemType: number, dims: Dim[]): OnnxNs.IValueInfoProto {
  return {
    name,
    type: { tensorType: { elemType, shape: { dim: dims.map((d) => (typeof d === 'number' ? { dimValue: d } : { dimParam: d })) } } },
  };
}

function attribute(name: string, v: AttrValue): OnnxNs.IAttributeProto {
  const A = onnx.AttributeProto.AttributeType;
  if (typeof v === 'number') return { name, type: A.INT, i: v };
  if (typeof v === 'string') return { name, type: A.STRING, s: new TextEncoder().encode(v) };
  if (Array.isArray(v)) return { name, type: A.INTS, ints: v };
  if ('float' in v) return { name, type: A.FLOAT, f: v.float };
  if ('floats' in v) return { name, type: A.FLOATS, floats: v.floats };
  return { name, type: A.TENSOR, t: v.tensor };
}
