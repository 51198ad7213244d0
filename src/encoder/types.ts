// The in-memory form of a BERT-family sentence encoder (all-MiniLM-L6-v2 and friends), produced
// by the ONNX loader (onnx-bert.ts) and the Hugging Face folder loader (hf-bert.ts), consumed by
// the CPU twin (bert-cpu.ts) and the WebGPU pass (bert-gpu.ts). All f32, row-major; every linear
// weight is [out, in] (PyTorch's nn.Linear layout, the 'nk' layout of kernels/matmul.ts).

export interface BertConfig {
  /** Human-readable source, e.g. 'all-MiniLM-L6-v2 (ONNX q4, dequantised)'. */
  name: string;
  vocabSize: number;
  /** hidden size d */
  dim: number;
  nLayers: number;
  nHeads: number;
  headDim: number;
  /** intermediate (FFN) size */
  ffDim: number;
  maxPositions: number;
  typeVocabSize: number;
  /** LayerNorm epsilon (BERT: 1e-12) */
  normEps: number;
  /** Softmax scale on q·k (1/sqrt(headDim) unless the graph says otherwise). */
  attnScale: number;
  /** BERT's 'gelu' is the exact erf form. */
  act: 'gelu_erf';
}

export interface BertLayer {
  wq: Float32Array; bq: Float32Array;
  wk: Float32Array; bk: Float32Array;
  wv: Float32Array; bv: Float32Array;
  /** attention output dense [d, d] */
  wo: Float32Array; bo: Float32Array;
  /** post-attention LayerNorm */
  ln1w: Float32Array; ln1b: Float32Array;
  /** intermediate dense [ff, d] */
  w1: Float32Array; b1: Float32Array;
  /** output dense [d, ff] */
  w2: Float32Array; b2: Float32Array;
  /** post-FFN LayerNorm */
  ln2w: Float32Array; ln2b: Float32Array;
}

export interface BertWeights {
  config: BertConfig;
  /** [vocab, d] */
  wordEmb: Float32Array;
  /** [maxPositions, d] */
  posEmb: Float32Array;
  /** [typeVocab, d]; only row 0 is used (single-segment sentences). */
  typeEmb: Float32Array;
  embLnW: Float32Array;
  embLnB: Float32Array;
  layers: BertLayer[];
}

/** Checks every tensor's length against the config; throws naming the first wrong one. */
export function checkBertWeights(w: BertWeights): void {
  const c = w.config;
  const d = c.dim, ff = c.ffDim;
  const want = (what: string, t: Float32Array | undefined, n: number): void => {
    if (!t) throw new Error(`${c.name}: missing ${what}`);
    if (t.length !== n) throw new Error(`${c.name}: ${what} has ${t.length} values, expected ${n}`);
  };
  if (c.nHeads * c.headDim !== d) throw new Error(`${c.name}: ${c.nHeads} heads × ${c.headDim} ≠ hidden size ${d}`);
  want('word embeddings', w.wordEmb, c.vocabSize * d);
  want('position embeddings', w.posEmb, c.maxPositions * d);
  want('token type embeddings', w.typeEmb, c.typeVocabSize * d);
  want('embedding LayerNorm weight', w.embLnW, d);
  want('embedding LayerNorm bias', w.embLnB, d);
  if (w.layers.length !== c.nLayers) throw new Error(`${c.name}: ${w.layers.length} layers, config says ${c.nLayers}`);
  w.layers.forEach((l, i) => {
    const p = `layer ${i}`;
    for (const k of ['wq', 'wk', 'wv', 'wo'] as const) want(`${p} ${k}`, l[k], d * d);
    for (const k of ['bq', 'bk', 'bv', 'bo', 'ln1w', 'ln1b', 'b2', 'ln2w', 'ln2b'] as const) want(`${p} ${k}`, l[k], d);
    want(`${p} w1`, l.w1, ff * d);
    want(`${p} b1`, l.b1, ff);
    want(`${p} w2`, l.w2, d * ff);
  });
}
