// The peer of bench/e2e.ts: what a JavaScript user would write today to get the four likelihoods of
// a pair — transformers.js (@huggingface/transformers) on onnxruntime-node (CPU), one forward pass
// per quantity at batch size 1, the full [1, T, V] logits back from the session, a log-softmax per
// scored row, as the Cherry-LLM / Superfiltering reference scripts do in PyTorch:
//   log p(y | x): [BOS] + x + "\n\n" + y, the y positions     log p(y): [BOS] + y
//   log p(x | y): [BOS] + y + "\n\n" + x, the x positions     log p(x): [BOS] + x
// The sequences and token ids are concord's own (src/pipeline's templates, truncation and
// four-pass plan), so every number is comparable token for token; tokenisation is not timed here.
//
// Log-softmax: by default a plain loop per scored row (max, Σ exp in f64, x − max − log Σ), the
// fair version of the peer. transformers.js's exported `log_softmax` helper (logSoftmax:
// 'transformers') allocates a V-length array per row and measured ~0.5-1 ms per row here, slower
// than the ONNX forward itself at these lengths; it is kept as an option, not as the peer.
//
// The model folder is models/stories15M-onnx, written by scripts/export_onnx.py (float32 ONNX of the
// same checkpoint in Hugging Face's Llama layout). transformers.js only runs the ONNX session:
// env.allowRemoteModels = false, env.localModelPath = <models dir>.

import { existsSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { AutoModelForCausalLM, AutoTokenizer, Tensor, env, log_softmax } from '@huggingface/transformers';
import { recordToPair } from '../src/pipeline/input.js';
import { sequenceBuilder } from '../src/pipeline/sequences.js';
import type { TextTokenizer } from '../src/tokenizer/types.js';

export const PEER_NAME = 'transformers.js (onnxruntime-node CPU, fp32, batch 1, 4 passes)';
export const WEBGPU_PEER_NAME = 'transformers.js-webgpu (onnxruntime-node WebGPU EP, fp32, batch 1, 4 passes)';
export const WEBGPU_BATCHED_PEER_NAME = 'transformers.js-webgpu batched (onnxruntime-node WebGPU EP, fp32, length-sorted padded batches, 4 passes)';

export interface PeerOptions {
  /** 'loop' (default): one pass over the row; 'transformers': the library's log_softmax helper. */
  logSoftmax?: 'loop' | 'transformers';
  /** 'cpu' (default): onnxruntime-node's CPU EP; 'webgpu': its WebGPU EP (Dawn inside onnxruntime, on the Vulkan driver the environment names). */
  device?: 'cpu' | 'webgpu';
}

/** log p(target) from one row of logits: x[target] − max − log Σ exp(x − max), sums in f64. */
export function logSoftmaxAt(row: Float32Array, target: number): number {
  let m = -Infinity;
  for (let v = 0; v < row.length; v++) if (row[v] > m) m = row[v];
  let s = 0;
  for (let v = 0; v < row.length; v++) s += Math.exp(row[v] - m);
  return row[target] - m - Math.log(s);
}

/** One sequence to score: log p(ids[t] | ids[<t]) summed over t in [span[0], span[1]). */
export interface PeerSequence {
  ids: number[];
  span: [number, number];
}

export interface PeerSpanScore {
  sum: number;
  count: number;
}

export interface PeerModel {
  name: string;
  version: string;
  /** Real tokens pushed through the model so far (Σ sequence lengths). */
  tokens: number;
  /** One forward pass for one sequence; log p summed over its span. */
  score(seq: PeerSequence): Promise<PeerSpanScore>;
  /** One forward pass for a right-padded batch (attention_mask marks the real tokens). */
  scoreBatch(seqs: PeerSequence[]): Promise<PeerSpanScore[]>;
  /** transformers.js's own tokenizer for the exported tokenizer.json (for an agreement check only). */
  encode(text: string): number[];
  dispose(): Promise<void>;
}

/** Load models/<name>-onnx through transformers.js. `dir` is the model folder. */
export async function loadPeer(dir: string, opts: PeerOptions = {}): Promise<PeerModel> {
  const lsm = opts.logSoftmax ?? 'loop';
  if (!existsSync(join(dir, 'onnx', 'model.onnx'))) {
    throw new Error(`${dir}/onnx/model.onnx not found: run /usr/bin/python3 scripts/export_onnx.py (needs python3-torch)`);
  }
  env.allowRemoteModels = false;
  env.allowLocalModels = true;
  env.localModelPath = dirname(dir) + '/';
  const id = basename(dir);
  const device = opts.device ?? 'cpu';
  // On 'webgpu' transformers.js asks ORT to keep the KV-cache outputs (present.*) on the GPU, but
  // the export has no KV cache (use_cache false) and ORT rejects the unknown output names. The
  // request is skipped when env.backends.onnx.wasm.proxy is set (a browser-only flag that
  // onnxruntime-node ignores), so set it while the session is created, and restore it.
  const wasm = (env.backends.onnx as { wasm?: { proxy?: boolean } }).wasm;
  const proxy = wasm?.proxy;
  if (device === 'webgpu' && wasm) wasm.proxy = true;
  let model: Awaited<ReturnType<typeof AutoModelForCausalLM.from_pretrained>>;
  try {
    model = await AutoModelForCausalLM.from_pretrained(id, { dtype: 'fp32', device });
  } finally {
    if (wasm) wasm.proxy = proxy;
  }
  const tokenizer = await AutoTokenizer.from_pretrained(id);
  let tokens = 0;
  return {
    name: device === 'webgpu' ? WEBGPU_PEER_NAME : lsm === 'loop' ? PEER_NAME : PEER_NAME.replace(')', ', library log_softmax)'),
    version: env.version,
    get tokens() { return tokens; },
    async score(seq) {
      const T = seq.ids.length;
      const [s, e] = seq.span;
      if (!(s >= 1 && e <= T && s < e)) throw new Error(`peer: bad span [${s}, ${e}) for ${T} tokens`);
      const input_ids = new Tensor('int64', BigInt64Array.from(seq.ids, BigInt), [1, T]);
      const attention_mask = new Tensor('int64', new BigInt64Array(T).fill(1n), [1, T]);
      const out = await model({ input_ids, attention_mask });
      const logits = out.logits as Tensor;
      const V = logits.dims[2];
      const data = logits.data as Float32Array;
      let sum = 0;
      // row t - 1 predicts ids[t]
      for (let t = s; t < e; t++) {
        const row = data.subarray((t - 1) * V, t * V);
        sum += lsm === 'loop' ? logSoftmaxAt(row, seq.ids[t]) : (log_softmax(row) as Float32Array)[seq.ids[t]];
      }
      tokens += T;
      logits.dispose?.();
      return { sum, count: e - s };
    },
    async scoreBatch(seqs) {
      const B = seqs.length;
      const L = Math.max(...seqs.map((q) => q.ids.length));
      const ids = new BigInt64Array(B * L), mask = new BigInt64Array(B * L);
      seqs.forEach((q, b) => q.ids.forEach((v, t) => { ids[b * L + t] = BigInt(v); mask[b * L + t] = 1n; }));
      const out = await model({ input_ids: new Tensor('int64', ids, [B, L]), attention_mask: new Tensor('int64', mask, [B, L]) });
      const logits = out.logits as Tensor;
      const V = logits.dims[2];
      const data = logits.data as Float32Array;
      const res = seqs.map((q, b) => {
        const [s, e] = q.span;
        if (!(s >= 1 && e <= q.ids.length && s < e)) throw new Error(`peer: bad span [${s}, ${e}) for ${q.ids.length} tokens`);
        let sum = 0;
        for (let t = s; t < e; t++) sum += logSoftmaxAt(data.subarray((b * L + t - 1) * V, (b * L + t) * V), q.ids[t]);
        tokens += q.ids.length;
        return { sum, count: e - s };
      });
      logits.dispose?.();
      return res;
    },
    encode(text) {
      return tokenizer.encode(text, { add_special_tokens: false });
    },
    async dispose() {
      await model.dispose();
    },
  };
}

/** Per pair: the four per-token means (nats/token) and the token counts as scored. */
export interface PairFigures { fwd: number; rev: number; y: number; x: number; xTokens: number; yTokens: number; truncated: boolean }

/**
 * Score whole records with the peer: concord's x/y rules, tokenizer, default templates and
 * truncation (src/pipeline), and its four-pass plan — each likelihood from its own sequence.
 */
export function peerPairScorer(peer: PeerModel, tok: TextTokenizer, maxLen: number): (record: unknown) => Promise<PairFigures> {
  const collect = peerPairSequences(tok, maxLen);
  return async (record) => {
    const { seqs, ...meta } = collect(record);
    const means: Record<string, number> = {};
    for (const s of seqs) {
      const r = await peer.score(s.seq);
      means[s.quantity] = r.sum / r.count;
    }
    return { fwd: means.fwd, rev: means.rev, y: means.y, x: means.x, ...meta };
  };
}

/**
 * Score records with the peer in padded batches: every pair's four sequences (the same ones
 * peerPairScorer builds), sorted by length and packed into batches of at most `budget` padded
 * tokens, one forward pass per batch. Returns the figures in input order.
 */
export async function peerBatchedScores(peer: PeerModel, tok: TextTokenizer, maxLen: number, records: unknown[], budget: number): Promise<PairFigures[]> {
  const seqs: { pair: number; quantity: string; seq: PeerSequence }[] = [];
  const meta: { xTokens: number; yTokens: number; truncated: boolean }[] = [];
  const collect = peerPairSequences(tok, maxLen);
  records.forEach((r, k) => {
    const p = collect(r);
    meta.push(p);
    for (const s of p.seqs) seqs.push({ pair: k, ...s });
  });
  seqs.sort((a, b) => a.seq.ids.length - b.seq.ids.length);
  const means: Record<string, number>[] = records.map(() => ({}));
  for (let i = 0; i < seqs.length;) {
    let j = i + 1;
    while (j < seqs.length && seqs[j].seq.ids.length * (j - i + 1) <= budget) j++;
    const batch = seqs.slice(i, j);
    const res = await peer.scoreBatch(batch.map((b) => b.seq));
    batch.forEach((b, k) => { means[b.pair][b.quantity] = res[k].sum / res[k].count; });
    i = j;
  }
  return meta.map((m, k) => ({ fwd: means[k].fwd, rev: means[k].rev, y: means[k].y, x: means[k].x, ...m }));
}

/**
 * The four sequences of a pair (one per likelihood) with the span each one scores: built by
 * concord's own pair → sequences builder (src/pipeline/sequences.ts) with the four-pass plan, so
 * the peer scores exactly the ids `concord score --passes 4` scores.
 */
export function peerPairSequences(tok: TextTokenizer, maxLen: number): (record: unknown) => { seqs: { quantity: string; seq: PeerSequence }[]; xTokens: number; yTokens: number; truncated: boolean } {
  if (tok.bosId === null) throw new Error('peer: the tokenizer has no BOS');
  const builder = sequenceBuilder({ tokenizer: tok, maxLen, sameModel: true, passes: 4 });
  if (builder.plan.mode !== 4) throw new Error(`peer: expected the four-pass plan, got ${builder.plan.mode} passes`);
  return (record) => {
    const p = builder.build(recordToPair(record));
    const seqs = builder.reads(p).map((r) => ({ quantity: r.quantity, seq: { ids: r.ids, span: r.span } }));
    return { seqs, xTokens: p.xIds.length, yTokens: p.yIds.length, truncated: p.truncated };
  };
}
