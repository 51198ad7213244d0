// The CPU backend on onnxruntime-node: concord's canonical weights as an ONNX graph (./graph.ts),
// serialised in memory and run by onnxruntime's native CPU kernels (MLAS), batched and right-padded
// by the scheduler's batches. The TypeScript twin (forward-cpu.ts) stays the reference it is
// tested and --verify'd against.
//
// Two sessions over the same weights (and a third per decoder, createDecoder): the scoring graph (LM head inside: B×L log-probs back) and,
// created on first use, the hidden-states graph for meanHidden (onnxruntime runs a whole graph
// whatever is fetched, and the head is most of the work of a small model). Runs are serialised:
// each already uses every core (intraOpNumThreads = cores).
//
// Node only: onnxruntime-node is a native addon, loaded by a variable module name so that browser
// bundlers never try to resolve it.

import { nodeBuiltin, settings } from '../../env.js';
import type { ScoreOptions, SequenceRequest, SequenceScores } from '../lm.js';
import type { LoadedWeights } from '../types.js';
import type { Decoder, DecoderOptions } from '../../generate/types.js';
import { DecodeGraph } from './decode-graph.js';
import { OrtDecoder } from './decoder.js';
import { buildLmGraph, LmGraph, type LmQuantOptions } from './graph.js';

type Ort = typeof import('onnxruntime-node');
type Session = import('onnxruntime-node').InferenceSession;

let ortModule: Promise<Ort> | null = null;

/** onnxruntime-node, or an Error saying why it cannot be used here. */
export async function loadOrt(): Promise<Ort> {
  if (typeof process === 'undefined' || !process.versions?.node) throw new Error('onnxruntime-node needs Node.js');
  const name = 'onnxruntime-node';
  ortModule ??= import(/* @vite-ignore */ name) as Promise<Ort>;
  try {
    return await ortModule;
  } catch (e) {
    ortModule = null;
    throw new Error(`onnxruntime-node could not be loaded (${(e as Error).message.split('\n')[0]})`);
  }
}

export interface OrtLmOptions extends LmQuantOptions {
  /** intra-op threads (default: the machine's available parallelism). */
  threads?: number;
}

export function defaultOrtThreads(): number {
  if (settings.cpuThreads) return settings.cpuThreads;
  return Math.max(1, nodeBuiltin<typeof import('node:os')>('os').availableParallelism());
}

/**
 * Session config entries shared by concord's sessions. The intra-op pool does not spin between
 * ops and runs (`session.intra_op.allow_spinning` 0): on 2 shared cores spinning threads take the
 * CPU from the JavaScript work between batches (measured, `concord score data/sample-pairs.jsonl
 * --device cpu --cosine off`, load ~11: 12.6–13.5 s wall and 5.3 s CPU with spinning, 9.6–9.9 s and
 * 4.0 s without). CONCORD_ORT_SPINNING=1 turns it back on.
 */
export function ortSessionExtra(): Record<string, unknown> {
  const spin = settings.ortSpinning ? '1' : '0';
  return { session: { intra_op: { allow_spinning: spin }, inter_op: { allow_spinning: spin } } };
}

/**
 * The decoder's linears. MatMulNBits' f32-compute kernel (accuracy_level 0) ran about 10× slower
 * than the f32 Gemm at decode's few rows per step (stories15M Q8_0/Q4_0, batch 1: 25–27 against
 * 255 tok/s; docs/gguf.md), so the decode graph takes the dequantized weights (the same values, the
 * twin's numbers) unless an accuracy level was asked for (0: MatMulNBits as before; 4: int8 activations, 1.8–2.2× the f32
 * Gemm there, not exact).
 */
export function decoderQuant(q: LmQuantOptions): LmQuantOptions {
  return q.accuracyLevel !== undefined ? q : { ...q, quantized: false };
}

export class OrtLm {
  private hiddenSession: Promise<Session> | null = null;
  private queue: Promise<unknown> = Promise.resolve();

  /** true once `score` is the graph with the entropy output (buildLmGraph's `entropy`). */
  private scoreHasEntropy = false;

  private constructor(private ort: Ort, private w: LoadedWeights, private score: Session, readonly threads: number, private q: LmQuantOptions) {}

  static async create(w: LoadedWeights, opts: OrtLmOptions = {}): Promise<OrtLm> {
    const ort = await loadOrt();
    const threads = opts.threads ?? defaultOrtThreads();
    const q: LmQuantOptions = { quantized: opts.quantized, accuracyLevel: opts.accuracyLevel };
    const graph = new LmGraph(w, q);
    const session = await OrtLm.session(ort, graph.build({ head: true }), threads);
    const lm = new OrtLm(ort, w, session, threads, q);
    lm.nbitsCount = graph.nbitsLinears;
    return lm;
  }

  private static session(ort: Ort, model: Uint8Array, threads: number): Promise<Session> {
    return ort.InferenceSession.create(model, {
      executionProviders: ['cpu'],
      intraOpNumThreads: threads,
      interOpNumThreads: 1,
      executionMode: 'sequential',
      graphOptimizationLevel: 'all',
      extra: ortSessionExtra(),
    });
  }

  /** Run one job at a time (each run uses every core already). */
  private serial<T>(job: () => Promise<T>): Promise<T> {
    const next = this.queue.then(job, job);
    this.queue = next.catch(() => undefined);
    return next;
  }

  /** Right-padded int64 ids [B, L], f32 mask, and (for scoring) the target ids (ids shifted left by one). */
  private feeds(seqs: number[][], targets: boolean): { feeds: Record<string, import('onnxruntime-node').Tensor>; L: number } {
    const c = this.w.config;
    const B = seqs.length, L = Math.max(1, ...seqs.map((s) => s.length));
    const ids = new BigInt64Array(B * L), mask = new Float32Array(B * L);
    const tg = targets ? new BigInt64Array(B * L) : null;
    seqs.forEach((s, b) => {
      if (s.length === 0) throw new Error(`${c.name}: empty token sequence`);
      if (s.length > c.maxSeqLen) throw new Error(`${c.name}: ${s.length} tokens exceed the model's maxSeqLen ${c.maxSeqLen}`);
      for (let t = 0; t < s.length; t++) {
        const id = s[t];
        if (!Number.isInteger(id) || id < 0 || id >= c.vocabSize) throw new Error(`${c.name}: token id ${id} at position ${t} is outside the vocabulary [0, ${c.vocabSize})`);
        ids[b * L + t] = BigInt(id);
        mask[b * L + t] = 1;
        if (tg && t + 1 < s.length) tg[b * L + t] = BigInt(s[t + 1]);
      }
    });
    const T = this.ort.Tensor;
    const feeds: Record<string, import('onnxruntime-node').Tensor> = {
      input_ids: new T('int64', ids, [B, L]),
      mask: new T('float32', mask, [B, L]),
    };
    if (tg) feeds.target_ids = new T('int64', tg, [B, L]);
    return { feeds, L };
  }

  /**
   * onnxruntime runs every node whatever the fetches, so the entropy output costs its passes over
   * the asked rows' logits on every run: the first call that asks for entropy swaps the scoring session for one
   * built with it (the old one released, so the weights are never held twice), and later calls
   * keep using it.
   */
  private async entropySession(): Promise<void> {
    if (this.scoreHasEntropy) return;
    const next = await OrtLm.session(this.ort, buildLmGraph(this.w, { head: true, entropy: true, ...this.q }), this.threads);
    const old = this.score;
    this.score = next;
    this.scoreHasEntropy = true;
    await old.release();
  }

  scoreBatch(seqs: SequenceRequest[], opts: ScoreOptions = {}): Promise<SequenceScores[]> {
    return this.serial(async () => {
      const ent = opts.entropy ?? false;
      const out: SequenceScores[] = seqs.map(() => (ent ? { logprobs: new Float32Array(0), entropy: new Float32Array(0) } : { logprobs: new Float32Array(0) }));
      // Sequences of one token have nothing to score; leave them out of the run.
      const live = seqs.map((s, i) => i).filter((i) => seqs[i].ids.length >= 2);
      if (!live.length) return out;
      if (ent) await this.entropySession();
      const { feeds, L } = this.feeds(live.map((i) => seqs[i].ids), true);
      // The rows whose entropy is asked for (SequenceRequest.entropySpan; every real position without one).
      const spans = live.map((i) => {
        const n = seqs[i].ids.length - 1, sp = seqs[i].entropySpan;
        return sp ? [Math.max(0, sp[0]), Math.min(n, sp[1])] : [0, n];
      });
      if (this.scoreHasEntropy) {
        const rows: bigint[] = [];
        if (ent) spans.forEach(([a, e], b) => { for (let t = a; t < e; t++) rows.push(BigInt(b * L + t)); });
        if (!rows.length) rows.push(0n); // a run that needs none (or no entropy, on the swapped session) still feeds one row
        feeds.entropy_rows = new this.ort.Tensor('int64', BigInt64Array.from(rows), [rows.length]);
      }
      const res = await this.score.run(feeds, ent ? ['logprobs', 'entropy'] : ['logprobs']);
      const lp = res.logprobs.data as Float32Array;
      const en = ent ? (res.entropy.data as Float32Array) : null;
      let k = 0;
      live.forEach((i, b) => {
        const n = seqs[i].ids.length - 1;
        out[i].logprobs = lp.slice(b * L, b * L + n);
        if (en) {
          const e = new Float32Array(n).fill(NaN), [a, z] = spans[b];
          for (let t = a; t < z; t++) e[t] = en[k++];
          out[i].entropy = e;
        }
      });
      for (const t of Object.values(res)) t.dispose();
      return out;
    });
  }

  meanHidden(seqs: SequenceRequest[]): Promise<Float32Array[]> {
    return this.serial(async () => {
      if (!seqs.length) return [];
      this.hiddenSession ??= OrtLm.session(this.ort, buildLmGraph(this.w, { head: false, ...this.q }), this.threads);
      const session = await this.hiddenSession;
      const { feeds } = this.feeds(seqs.map((s) => s.ids), false);
      const res = await session.run(feeds);
      const d = this.w.config.dim, m = res.mean_hidden.data as Float32Array;
      const out = seqs.map((_, b) => m.slice(b * d, b * d + d));
      for (const t of Object.values(res)) t.dispose();
      return out;
    });
  }

  /** A KV-cache decoder (decoder.ts) on its own session of the decode graph (decode-graph.ts). */
  async createDecoder(opts: DecoderOptions): Promise<Decoder> {
    const session = await OrtLm.session(this.ort, new DecodeGraph(this.w, decoderQuant(this.q)).build(), this.threads);
    try {
      return new OrtDecoder(this.ort, this.w, session, opts);
    } catch (e) {
      void session.release();
      throw e;
    }
  }

  /** Linear layers running on MatMulNBits (GGUF Q4_0/Q8_0 weights) in the scoring graph. */
  get nbitsLinears(): number { return this.nbitsCount; }
  private nbitsCount = 0;

  /** onnxruntime's version, e.g. '1.30.0'. */
  get version(): string {
    const v = (this.ort.env as { versions?: Record<string, string> }).versions;
    return v?.node ?? v?.common ?? '';
  }

  dispose(): void {
    void this.score.release();
    void this.hiddenSession?.then((s) => s.release());
  }
}
