// A BERT-like encoder out of an ONNX graph, derived from the graph's structure rather than from
// tensor names: the embedding Gathers feeding a LayerNorm, then per layer the three projections
// that read the hidden state (q, k, v: told apart by where they enter the attention), the single
// projection the attention leads to (output dense), Add + LayerNorm (or SkipLayerNormalization)
// with the residual, the intermediate dense, its activation, the output dense, Add + LayerNorm.
//
// Understood: MatMulNBits (4/8-bit, dequantised to f32), MatMul / Gemm with constant weights,
// bias Adds; com.microsoft MultiHeadAttention or the unfused MatMul → Softmax → MatMul pattern;
// Gelu (approximate='none'), the Erf pattern, BiasGelu; LayerNormalization, SkipLayerNormalization.
// Anything else (EmbedLayerNormalization, fused Attention with packed QKV, tanh GELU, ...) fails
// with an error naming the node where the walk stopped.

import { dequantMatMulNBits } from '../formats/matmulnbits.js';
import { DT, OnnxGraph, OnnxNode, dtypeName, parseOnnx, type ExternalData } from '../formats/onnx.js';
import { checkBertWeights, type BertConfig, type BertLayer, type BertWeights } from './types.js';

interface Linear {
  /** [N, K] = [out, in] */
  w: Float32Array;
  b: Float32Array | null;
  N: number;
  K: number;
  /** value name of the projection's output (after the bias Add, when there is one) */
  out: string;
  node: OnnxNode;
  /** how the weights were stored, for the model's description */
  storage: string;
}

const nodeDesc = (n: OnnxNode): string => `${n.domain ? `${n.domain}:` : ''}${n.opType} '${n.name}'`;

export class BertGraphError extends Error {}

class Walker {
  private readonly fail = (msg: string): never => { throw new BertGraphError(`${this.g.source}: not a BERT-like encoder: ${msg}`); };
  readonly storages = new Set<string>();

  constructor(readonly g: OnnxGraph) {}

  isLinear(n: OnnxNode): boolean {
    if (n.opType === 'MatMulNBits' && n.domain === 'com.microsoft') return true;
    if (n.opType === 'MatMul' || n.opType === 'Gemm') return this.g.isConst(n.inputs[1]) && !this.g.isConst(n.inputs[0]);
    return false;
  }

  /** Read a projection node (and the bias Add after it, if any). */
  linear(n: OnnxNode): Linear {
    const g = this.g;
    let w: Float32Array, N: number, K: number, b: Float32Array | null = null, storage: string;
    if (n.opType === 'MatMulNBits') {
      K = n.attrs.get('K')?.i ?? this.fail(`${nodeDesc(n)} has no K attribute`);
      N = n.attrs.get('N')?.i ?? this.fail(`${nodeDesc(n)} has no N attribute`);
      const bits = n.attrs.get('bits')?.i ?? 4;
      const blockSize = n.attrs.get('block_size')?.i ?? this.fail(`${nodeDesc(n)} has no block_size attribute`);
      const [, bName, sName, zpName, gName, biasName] = n.inputs;
      const B = g.tensor(bName);
      if (B.dataType !== DT.UINT8) this.fail(`${nodeDesc(n)}: B is ${dtypeName(B.dataType)}, expected uint8`);
      let zeroPoints: Uint8Array | Float32Array | null = null;
      if (zpName) {
        const z = g.tensor(zpName);
        zeroPoints = z.dataType === DT.UINT8 ? z.bytes : g.f32(zpName);
      }
      const gIdx = gName ? g.ints(gName) : null;
      w = dequantMatMulNBits({ K, N, bits, blockSize, B: B.bytes, scales: g.f32(sName), zeroPoints, gIdx }, nodeDesc(n));
      if (biasName) b = g.f32(biasName);
      storage = `MatMulNBits ${bits}-bit, block ${blockSize}${zpName ? ', zero points' : ''}${gName ? ', g_idx' : ''}`;
    } else {
      const dims = g.dims(n.inputs[1])!;
      if (dims.length !== 2) this.fail(`${nodeDesc(n)}: weight '${n.inputs[1]}' has shape [${dims}], expected 2-D`);
      const raw = g.f32(n.inputs[1]);
      const transB = n.opType === 'Gemm' && (n.attrs.get('transB')?.i ?? 0) === 1;
      if (n.opType === 'Gemm' && (n.attrs.get('transA')?.i ?? 0) === 1) this.fail(`${nodeDesc(n)}: Gemm with transA`);
      if (transB) {
        [N, K] = dims;
        w = raw;
      } else {
        [K, N] = dims;
        w = new Float32Array(N * K);
        for (let k = 0; k < K; k++) for (let j = 0; j < N; j++) w[j * K + k] = raw[k * N + j];
      }
      if (n.opType === 'Gemm') {
        const alpha = n.attrs.get('alpha')?.f ?? 1, beta = n.attrs.get('beta')?.f ?? 1;
        if (alpha !== 1) for (let i = 0; i < w.length; i++) w[i] *= alpha;
        if (n.inputs[2]) b = g.f32(n.inputs[2]).map((x) => x * beta);
      }
      storage = `${n.opType} ${dtypeName(g.tensor(n.inputs[1]).dataType)}`;
    }
    this.storages.add(storage);
    let out = n.outputs[0];
    // A bias Add right after: the other operand is a constant of N values.
    const next = g.consumersOf(out);
    if (next.length === 1 && next[0].opType === 'Add') {
      const add = next[0];
      const other = add.inputs[0] === out ? add.inputs[1] : add.inputs[0];
      if (g.isConst(other) && (g.dims(other) ?? []).reduce((a, x) => a * x, 1) === N) {
        const bias = g.f32(other);
        b = b ? b.map((x, i) => x + bias[i]) : bias;
        out = add.outputs[0];
      }
    }
    return { w, b, N, K, out, node: n, storage };
  }

  /** Nodes reachable from `value` through non-projection nodes; projections reached are listed apart. */
  reach(value: string): { nodes: Map<OnnxNode, Set<number>>; linears: Set<OnnxNode> } {
    const nodes = new Map<OnnxNode, Set<number>>();
    const linears = new Set<OnnxNode>();
    const stack = [value];
    const seen = new Set<string>();
    while (stack.length) {
      const v = stack.pop()!;
      if (seen.has(v)) continue;
      seen.add(v);
      for (const c of this.g.consumersOf(v)) {
        const slots = nodes.get(c) ?? new Set<number>();
        c.inputs.forEach((inp, i) => { if (inp === v) slots.add(i); });
        nodes.set(c, slots);
        if (this.isLinear(c) && c.inputs[0] === v) { linears.add(c); continue; }
        // Stop at LayerNorms: they end a sub-block.
        if (c.opType === 'LayerNormalization' || c.opType === 'SkipLayerNormalization') continue;
        for (const o of c.outputs) stack.push(o);
      }
    }
    return { nodes, linears };
  }

  /** Follow Identity / Cast nodes from a value. */
  private through(v: string): string {
    for (;;) {
      const c = this.g.consumersOf(v);
      if (c.length === 1 && (c[0].opType === 'Identity')) { v = c[0].outputs[0]; continue; }
      return v;
    }
  }

  /** The graph value a Gather's indices come from (through Cast / Identity / Unsqueeze). */
  private origin(v: string): string {
    for (;;) {
      const p = this.g.producer.get(v);
      if (p && (p.opType === 'Cast' || p.opType === 'Identity')) { v = p.inputs[0]; continue; }
      return v;
    }
  }

  /** Add(x, residual) → LayerNormalization, or SkipLayerNormalization(x, residual). */
  residualNorm(x: string, residual: string, where: string, bias: Float32Array | null): { out: string; w: Float32Array; b: Float32Array; eps: number; extraBias: Float32Array | null } {
    const g = this.g;
    const cs = g.consumersOf(x);
    const skip = cs.find((c) => c.opType === 'SkipLayerNormalization' && c.inputs.slice(0, 2).includes(residual));
    if (skip) {
      const eps = skip.attrs.get('epsilon')?.f ?? 1e-12;
      // SkipLayerNormalization's optional bias is added to the input, like the dense's own bias.
      const extra = skip.inputs[4] ? g.f32(skip.inputs[4]) : null;
      const sum = extra && bias ? bias.map((x, j) => x + extra[j]) : extra ?? bias;
      const d = g.f32(skip.inputs[2]).length;
      return { out: skip.outputs[0], w: g.f32(skip.inputs[2]), b: skip.inputs[3] ? g.f32(skip.inputs[3]) : new Float32Array(d), eps, extraBias: sum };
    }
    const add = cs.find((c) => c.opType === 'Add' && c.inputs.includes(residual));
    if (!add) return this.fail(`${where}: expected Add(${x}, residual ${residual}) then LayerNorm; found ${cs.map(nodeDesc).join(', ') || 'nothing'}`);
    const ln = g.consumersOf(add.outputs[0]).find((c) => c.opType === 'LayerNormalization');
    if (!ln) {
      const seen = g.consumersOf(add.outputs[0]);
      const hint = seen.some((c) => c.opType === 'ReduceMean') ? ' (an unfused LayerNorm: export with opset >= 17)' : '';
      return this.fail(`${where}: residual ${nodeDesc(add)} is not followed by LayerNormalization${hint}`);
    }
    const axis = ln.attrs.get('axis')?.i ?? -1;
    if (axis !== -1 && axis !== 2) this.fail(`${nodeDesc(ln)} normalises over axis ${axis}, expected the last`);
    return { out: ln.outputs[0], w: g.f32(ln.inputs[1]), b: ln.inputs[2] ? g.f32(ln.inputs[2]) : new Float32Array(g.f32(ln.inputs[1]).length), eps: ln.attrs.get('epsilon')?.f ?? 1e-5, extraBias: bias };
  }

  embeddings(): { word: string; pos: string; type: string | null; lnOut: string; lnW: Float32Array; lnB: Float32Array; eps: number } {
    const g = this.g;
    const ids = g.inputs.find((i) => /input_ids/.test(i)) ?? g.inputs[0];
    if (!ids) this.fail('the graph has no inputs');
    const gathers = g.nodes.filter((n) => n.opType === 'Gather' && g.isConst(n.inputs[0]) && (g.dims(n.inputs[0]) ?? []).length === 2);
    const word = gathers.find((n) => this.origin(n.inputs[1]) === ids);
    if (!word) {
      const fused = g.nodes.find((n) => n.opType === 'EmbedLayerNormalization');
      return this.fail(fused ? `fused ${nodeDesc(fused)} is not supported (export without the embedding fusion)` : `no Gather of a 2-D table indexed by the graph input '${ids}' (word embeddings)`);
    }
    // Walk the Add chain from the word embeddings to the LayerNorm, collecting the other tables.
    let v = word.outputs[0];
    const others: OnnxNode[] = [];
    for (let guard = 0; ; guard++) {
      if (guard > 8) this.fail('embedding Add chain too long');
      const cs = g.consumersOf(v);
      if (cs.length !== 1) this.fail(`the word embeddings ${v} feed ${cs.length} nodes, expected one Add chain`);
      const c = cs[0];
      if (c.opType === 'LayerNormalization') {
        const d = g.dims(word.inputs[0])![1];
        const { pos, type } = this.splitTables(others, ids);
        return {
          word: word.inputs[0], pos, type,
          lnOut: c.outputs[0], lnW: g.f32(c.inputs[1]), lnB: c.inputs[2] ? g.f32(c.inputs[2]) : new Float32Array(d),
          eps: c.attrs.get('epsilon')?.f ?? 1e-5,
        };
      }
      if (c.opType !== 'Add') this.fail(`after the word embeddings: ${nodeDesc(c)}, expected Add or LayerNormalization`);
      const other = c.inputs[0] === v ? c.inputs[1] : c.inputs[0];
      const p = g.producer.get(other);
      if (!p || !gathers.includes(p)) this.fail(`${nodeDesc(c)} adds '${other}', which is not a Gather from an embedding table`);
      others.push(p!);
      v = c.outputs[0];
    }
  }

  /** Of the tables added to the word embeddings: token types (indexed by token_type_ids, or tiny) and positions. */
  private splitTables(others: OnnxNode[], ids: string): { pos: string; type: string | null } {
    const tt = this.g.inputs.find((i) => /token_type/.test(i));
    const typeGather = others.find((n) => tt !== undefined && this.origin(n.inputs[1]) === tt)
      ?? others.find((n) => this.g.dims(n.inputs[0])![0] <= 16) ?? null;
    const pos = others.filter((n) => n !== typeGather);
    if (pos.length > 1) this.fail(`${pos.length} candidate position-embedding Gathers: ${pos.map(nodeDesc).join(', ')}`);
    if (!pos.length) this.fail('no position embeddings added to the word embeddings (absolute positions expected)');
    if (this.origin(pos[0].inputs[1]) === ids) this.fail(`${nodeDesc(pos[0])} is indexed by the token ids`);
    return { pos: pos[0].inputs[0], type: typeGather ? typeGather.inputs[0] : null };
  }

  /** One encoder layer starting from hidden state h; null when no projection reads h. */
  layer(h: string, i: number): { layer: BertLayer; out: string; nHeads: number | null; scale: number | null; eps: number } | null {
    const g = this.g;
    const where = `layer ${i}`;
    const projs = g.consumersOf(h).filter((n) => this.isLinear(n) && n.inputs[0] === h);
    if (!projs.length) return null;
    if (projs.length !== 3) {
      const fused = g.consumersOf(h).find((n) => n.opType === 'Attention');
      if (fused) this.fail(`${where}: fused ${nodeDesc(fused)} (packed QKV) is not supported`);
      this.fail(`${where}: ${projs.length} projections read the hidden state ${h}, expected 3 (q, k, v): ${projs.map(nodeDesc).join(', ')}`);
    }
    const lin = projs.map((p) => this.linear(p));
    // Where does each projection enter the attention?
    const reaches = lin.map((l) => this.reach(l.out));
    const oNodes = new Set<OnnxNode>();
    for (const r of reaches) for (const o of r.linears) oNodes.add(o);
    if (oNodes.size !== 1) this.fail(`${where}: q/k/v lead to ${oNodes.size} projections (${[...oNodes].map(nodeDesc).join(', ')}), expected one output dense`);
    const oNode = [...oNodes][0];
    let q = -1, k = -1, v = -1, nHeads: number | null = null, scale: number | null = null;
    const mha = [...reaches[0].nodes.keys()].find((n) => n.opType === 'MultiHeadAttention' && n.domain === 'com.microsoft');
    if (mha) {
      nHeads = mha.attrs.get('num_heads')?.i ?? null;
      scale = mha.attrs.get('scale')?.f ?? null;
      lin.forEach((l, j) => {
        const slot = mha.inputs.indexOf(l.out);
        if (slot === 0) q = j; else if (slot === 1) k = j; else if (slot === 2) v = j;
      });
      if (mha.attrs.get('unidirectional')?.i) this.fail(`${where}: ${nodeDesc(mha)} is unidirectional (causal), not an encoder`);
    } else {
      // Unfused: scores = MatMul(q-ish, kᵀ-ish) reached by exactly two projections; v reaches
      // only the later MatMul with the probabilities.
      const softmax = [...reaches[0].nodes.keys()].find((n) => n.opType === 'Softmax');
      if (!softmax) this.fail(`${where}: no MultiHeadAttention and no Softmax between q/k/v and ${nodeDesc(oNode)}`);
      const dynMatMuls = new Set<OnnxNode>();
      for (const r of reaches) for (const n of r.nodes.keys()) if (n.opType === 'MatMul' && !this.isLinear(n)) dynMatMuls.add(n);
      const scores = [...dynMatMuls].find((m) => reaches.filter((r) => r.nodes.has(m)).length === 2 && g.consumersOf(m.outputs[0]).length > 0);
      if (!scores) this.fail(`${where}: cannot find the q·kᵀ MatMul`);
      reaches.forEach((r, j) => {
        const slots = r.nodes.get(scores!);
        if (!slots) v = j;
        else if (this.slotFrom(scores!, 0, lin[j].out)) q = j;
        else k = j;
      });
      // heads from a Reshape to [batch, seq, heads, head_dim] on the q branch
      for (const n of reaches[q >= 0 ? q : 0].nodes.keys()) {
        if (n.opType === 'Reshape' && g.isConst(n.inputs[1])) {
          const shape = g.ints(n.inputs[1]);
          if (shape.length === 4 && shape[2] > 0 && shape[3] > 0) { nHeads = shape[2]; break; }
        }
      }
    }
    if (q < 0 || k < 0 || v < 0 || new Set([q, k, v]).size !== 3) this.fail(`${where}: cannot tell q, k and v apart among ${lin.map((l) => nodeDesc(l.node)).join(', ')}`);
    for (const l of lin) if (!l.b) this.fail(`${where}: projection ${nodeDesc(l.node)} has no bias (BERT has biases everywhere)`);
    const o = this.linear(oNode);
    const n1 = this.residualNorm(o.out, h, `${where} attention output`, o.b);
    // Feed-forward: the single projection reading h1, its activation, the projection after it.
    const ups = g.consumersOf(n1.out).filter((n) => this.isLinear(n) && n.inputs[0] === n1.out);
    if (ups.length !== 1) this.fail(`${where}: ${ups.length} projections read the attention block's output, expected 1 (intermediate dense)`);
    const up = this.linear(ups[0]);
    const r = this.reach(up.out);
    if (r.linears.size !== 1) this.fail(`${where}: the intermediate dense leads to ${r.linears.size} projections, expected 1`);
    const actNodes = [...r.nodes.keys()];
    let b1 = up.b;
    const gelu = actNodes.find((n) => n.opType === 'Gelu');
    const biasGelu = actNodes.find((n) => n.opType === 'BiasGelu');
    const tanhish = actNodes.find((n) => n.opType === 'FastGelu' || n.opType === 'Tanh' || (n.opType === 'Gelu' && n.attrs.get('approximate')?.s === 'tanh'));
    if (tanhish) this.fail(`${where}: ${nodeDesc(tanhish)} is a tanh-approximated GELU; BERT uses the exact erf form`);
    if (biasGelu) {
      const bb = g.f32(biasGelu.inputs[1]);
      b1 = b1 ? b1.map((x, j) => x + bb[j]) : bb;
    } else if (!gelu && !actNodes.some((n) => n.opType === 'Erf')) {
      this.fail(`${where}: no GELU (Gelu, BiasGelu or Erf) between ${nodeDesc(up.node)} and the output dense; found ${actNodes.map(nodeDesc).join(', ')}`);
    }
    const down = this.linear([...r.linears][0]);
    const n2 = this.residualNorm(down.out, n1.out, `${where} output`, down.b);
    const d = o.N;
    const need = (what: string, t: Float32Array | null, n: number): Float32Array => {
      if (!t) return this.fail(`${where}: ${what} has no bias`);
      if (t.length !== n) this.fail(`${where}: ${what} bias has ${t.length} values, expected ${n}`);
      return t!;
    };
    return {
      layer: {
        wq: lin[q].w, bq: lin[q].b!, wk: lin[k].w, bk: lin[k].b!, wv: lin[v].w, bv: lin[v].b!,
        wo: o.w, bo: need('attention output dense', n1.extraBias, d),
        ln1w: n1.w, ln1b: n1.b,
        w1: up.w, b1: need('intermediate dense', b1, up.N),
        w2: down.w, b2: need('output dense', n2.extraBias, d),
        ln2w: n2.w, ln2b: n2.b,
      },
      out: n2.out, nHeads, scale, eps: n1.eps,
    };
  }

  /** Does input `slot` of node m derive from value `from`? */
  private slotFrom(m: OnnxNode, slot: number, from: string): boolean {
    const seen = new Set<string>();
    const stack = [m.inputs[slot]];
    while (stack.length) {
      const x = stack.pop()!;
      if (x === from) return true;
      if (seen.has(x)) continue;
      seen.add(x);
      const p = this.g.producer.get(x);
      if (p && !this.isLinear(p)) for (const i of p.inputs) if (i) stack.push(i);
    }
    return false;
  }

  outputOf(h: string): string {
    const v = this.through(h);
    if (!this.g.outputs.includes(v) && !this.g.outputs.includes(h)) {
      this.fail(`the last encoder layer's output '${h}' is not a graph output (outputs: ${this.g.outputs.join(', ')})`);
    }
    return v;
  }
}

export interface BertFromOnnxOptions {
  /** Name for the model's description. */
  name?: string;
  /** config.json next to the model, when there is one: heads are taken from it if the graph does not say. */
  hfConfig?: Record<string, unknown> | null;
}

/** Map an ONNX graph onto BertWeights (all projections dequantised to f32). */
export function bertFromOnnxGraph(g: OnnxGraph, opts: BertFromOnnxOptions = {}): BertWeights {
  const w = new Walker(g);
  const emb = w.embeddings();
  const wordDims = g.dims(emb.word)!;
  const [vocabSize, d] = wordDims;
  const layers: BertLayer[] = [];
  let h = emb.lnOut, nHeads: number | null = null, scale: number | null = null, eps = emb.eps;
  for (let i = 0; ; i++) {
    const l = w.layer(h, i);
    if (!l) break;
    layers.push(l.layer);
    h = l.out;
    nHeads ??= l.nHeads;
    scale ??= l.scale;
    eps = l.eps;
  }
  if (!layers.length) throw new BertGraphError(`${g.source}: not a BERT-like encoder: no projection reads the embedding LayerNorm's output`);
  w.outputOf(h);
  const cfgHeads = opts.hfConfig?.num_attention_heads;
  nHeads ??= typeof cfgHeads === 'number' ? cfgHeads : null;
  if (!nHeads) throw new BertGraphError(`${g.source}: the number of attention heads is not in the graph; pass config.json (num_attention_heads)`);
  const headDim = d / nHeads;
  const pos = g.f32(emb.pos);
  const type = emb.type ? g.f32(emb.type) : new Float32Array(d);
  const config: BertConfig = {
    name: `${opts.name ?? g.source} (ONNX ${[...w.storages].join(' + ')}, dequantised to f32)`,
    vocabSize, dim: d, nLayers: layers.length, nHeads, headDim,
    ffDim: layers[0].b1.length,
    maxPositions: pos.length / d,
    typeVocabSize: type.length / d,
    normEps: eps,
    attnScale: scale ?? 1 / Math.sqrt(headDim),
    act: 'gelu_erf',
  };
  const weights: BertWeights = {
    config, wordEmb: g.f32(emb.word), posEmb: pos, typeEmb: type,
    embLnW: emb.lnW, embLnB: emb.lnB, layers,
  };
  checkBertWeights(weights);
  return weights;
}

export function bertFromOnnx(onnxBytes: Uint8Array, external: ExternalData, opts: BertFromOnnxOptions = {}): BertWeights {
  return bertFromOnnxGraph(parseOnnx(onnxBytes, external, opts.name ?? 'model.onnx'), opts);
}
