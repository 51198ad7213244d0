// The KV-cache decode graph: the scoring graph's op-builders (graph.ts) over a cache of past keys
// and values, for the onnxruntime decoder (decoder.ts). One run appends T new tokens to each of S
// slots, each slot at its own position, and returns the next-token log-probs of each slot:
//
//   inputs   input_ids  int64 [S, T]             the new tokens of each slot, right-padded
//            start      int64 [S]                each slot's cache length = the position of its first new token
//            rows       int64 [R]                flat rows s·T + i whose logits are returned: the last new token of
//                                                each slot (a step), or the scored rows (Decoder.scoreTokens)
//            past_k.{l}, past_v.{l}  f32 [S, Hkv, P, hd]   the cache; rows j ≥ start[s] are ignored (P ≥ 1)
//   outputs  logits     f32 [R, V]               the (soft-capped) logits at `rows`: what the sampler reads
//            present_k.{l}, present_v.{l}  f32 [S, Hkv, T, hd]   keys (RoPE'd at their positions) and values
//                                                of the new tokens; the host writes the real ones into its cache
//
// Attention of new token i of slot s (position start[s] + i) sees past rows j < start[s] and new
// tokens ≤ i, within the layer's window (position difference < W), with the model's score scale
// and soft-cap: the same keys the scoring graph's causal mask gives the same position, so prompt +
// steps reproduce scoring's log-probs. Padded new tokens only ever attend, never are attended by a
// real one. Prefill of a prompt is a run with T = prompt length; a decode step is T = 1.

import { LmGraph } from './graph.js';
import { checkBuildable } from './graph.js';
import { ONNX_FLOAT, ONNX_INT64, type V } from './onnx-builder.js';

export class DecodeGraph extends LmGraph {
  private start!: V;
  private posI!: V;
  private posF: V | null = null;
  private P!: V;
  private decodeMasks = new Map<number, V>();

  /** Positions start[s] + i, f32 [S, T]. */
  protected override positions(): V {
    this.posF ??= this.g.op('Cast', [this.posI], { to: ONNX_FLOAT });
    return this.posF;
  }

  /** Additive mask [S, 1, 1, T, P + T] of the window (0 = full): past rows j < start[s], new tokens j ≤ i. */
  protected override attnMask(window: number): V {
    let m = this.decodeMasks.get(window);
    if (m) return m;
    const g = this.g, { B, L, Ls } = this.dims;
    const pastIdx = g.op('Range', [g.i64Scalar(0), g.op('Squeeze', [this.P, g.i64([0])]), g.i64Scalar(1)]); // [P]
    const startCol = g.op('Unsqueeze', [this.start, g.i64([1, 2])]); // [S, 1, 1]
    let okPast = g.op('Less', [g.op('Unsqueeze', [pastIdx, g.i64([0, 1])]), startCol]); // [S, 1, P]
    const r = g.op('Range', [g.i64Scalar(0), Ls, g.i64Scalar(1)]);
    const newDiff = g.op('Sub', [g.op('Unsqueeze', [r, g.i64([1])]), g.op('Unsqueeze', [r, g.i64([0])])]); // [T, T]: i - j
    let okNew = g.op('GreaterOrEqual', [newDiff, g.i64Scalar(0)]);
    if (window > 0) {
      const pastDiff = g.op('Sub', [g.op('Unsqueeze', [this.posI, g.i64([2])]), g.op('Unsqueeze', [pastIdx, g.i64([0, 1])])]); // [S, T, P]
      okPast = g.op('And', [okPast, g.op('Less', [pastDiff, g.i64Scalar(window)])]);
      okNew = g.op('And', [okNew, g.op('Less', [newDiff, g.i64Scalar(window)])]);
    }
    const ePast = g.op('Expand', [okPast, g.op('Concat', [B, L, this.P], { axis: 0 })]);
    const eNew = g.op('Expand', [okNew, g.op('Concat', [B, L, L], { axis: 0 })]);
    const ok = g.op('Unsqueeze', [g.op('Concat', [ePast, eNew], { axis: 2 }), g.i64([1, 2])]);
    m = g.op('Where', [ok, g.f32Const([0]), g.f32Const([-1e30])]);
    this.decodeMasks.set(window, m);
    return m;
  }

  /** The cache rows followed by this run's rows; this run's rows are the present_* outputs. */
  protected override keysValues(l: number, k: V, v: V): { k: V; v: V } {
    const g = this.g, c = this.c, shape = ['batch', c.nKvHeads, 'past', c.headDim];
    const pk = g.input(`past_k.${l}`, ONNX_FLOAT, shape), pv = g.input(`past_v.${l}`, ONNX_FLOAT, shape);
    const kt = g.op('Transpose', [k], { perm: [0, 2, 1, 3] }), vt = g.op('Transpose', [v], { perm: [0, 2, 1, 3] });
    const newShape = ['batch', c.nKvHeads, 'seq', c.headDim];
    g.output(kt, `present_k.${l}`, ONNX_FLOAT, newShape);
    g.output(vt, `present_v.${l}`, ONNX_FLOAT, newShape);
    if (l === 0) this.P = g.op('Slice', [g.op('Shape', [pk]), g.i64([2]), g.i64([3])]);
    return { k: g.op('Concat', [pk, kt], { axis: 2 }), v: g.op('Concat', [pv, vt], { axis: 2 }) };
  }

  override build(): Uint8Array {
    const g = this.g, c = this.c;
    checkBuildable(this.w);
    const ids = g.input('input_ids', ONNX_INT64, ['batch', 'seq']);
    this.start = g.input('start', ONNX_INT64, ['batch']);
    const rows = g.input('rows', ONNX_INT64, ['rows']);
    this.setDims(ids);
    const r = g.op('Range', [g.i64Scalar(0), this.dims.Ls, g.i64Scalar(1)]);
    this.posI = g.op('Add', [g.op('Unsqueeze', [this.start, g.i64([1])]), g.op('Unsqueeze', [r, g.i64([0])])]); // [S, T]
    // past_k.0 must exist before any mask asks for P: keysValues(0) runs before attnMask(…) in layer 0.
    const h = this.trunk(this.embed(ids, this.posI));
    const last = g.op('Gather', [h, rows], { axis: 0 }); // [R, d]
    const z = this.logits(last);
    // Only the logits: onnxruntime runs every node whatever the fetches, so a LogSoftmax output
    // would cost every sampling step; stepLogprobs takes the log-softmax on the host (decoder.ts).
    g.output(z, 'logits', ONNX_FLOAT, ['rows', c.vocabSize]);
    return this.serializeChecked();
  }
}
