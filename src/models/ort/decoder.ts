// The onnxruntime Decoder (src/generate/types.ts): the decode graph (decode-graph.ts) on
// onnxruntime's CPU kernels, with each slot's K/V cache on the host. A step gathers the stepping
// slots' caches into past_k/past_v [n, Hkv, P, hd] (P = the longest cache among them; rows past a
// slot's own length are masked in the graph), runs prefill (a prompt) and one-token steps of slots
// at different positions in the same run, and writes the new rows (present_k/v) back into the
// caches. Sampling is on the host, from the (soft-capped) logits the graph returns, by the shared
// sampler's fast form (src/generate/sampling.ts HostSampler: sampleRow's ids — greedy = argmax with
// the lowest id on ties; temperature, top-k, top-p, min-p at the counter-based RNG's draw — with exp
// and sorting only near the max), so the same seed gives the same tokens as the twin's decoder
// wherever the logits agree.

import { checkSampling, HostSampler } from '../../generate/sampling.js';
import { scoreFrom, type Decoder, type DecoderOptions, type ScoreInput, type StepInput } from '../../generate/types.js';
import type { LoadedWeights } from '../types.js';

type Ort = typeof import('onnxruntime-node');
type Session = import('onnxruntime-node').InferenceSession;
type Tensor = import('onnxruntime-node').Tensor;

/** log-softmax of x[off, off + V) (max and Σ exp in f64), a new array. */
export function logSoftmaxRow(x: Float32Array, off: number, V: number): Float32Array {
  let m = -Infinity;
  for (let i = off; i < off + V; i++) if (x[i] > m) m = x[i];
  let s = 0;
  for (let i = off; i < off + V; i++) s += Math.exp(x[i] - m);
  const lse = m + Math.log(s), out = new Float32Array(V);
  for (let i = 0; i < V; i++) out[i] = x[off + i] - lse;
  return out;
}

/** The past feeds' length is the longest cache rounded up to this (masked rows), so their layout holds across steps. */
const PAST_CHUNK = 32;

export class OrtDecoder implements Decoder {
  readonly slots: number;
  readonly maxLen: number;
  private readonly k: Float32Array[] = [];
  private readonly v: Float32Array[] = [];
  private readonly lens: Int32Array;
  private readonly scratch = new Map<string, Float32Array>();
  /** The slots (in feed order) and P of the past feeds now in `scratch`; null when they must be gathered again. */
  private layout: { P: number; slots: number[] } | null = null;
  private queue: Promise<unknown> = Promise.resolve();
  private readonly sampler = new HostSampler();
  private disposed = false;

  constructor(private ort: Ort, private w: LoadedWeights, private session: Session, opts: DecoderOptions) {
    const c = w.config;
    if (!Number.isInteger(opts.slots) || opts.slots < 1) throw new Error(`decoder: slots must be a positive integer (got ${opts.slots})`);
    if (!Number.isInteger(opts.maxLen) || opts.maxLen < 1 || opts.maxLen > c.maxSeqLen) throw new Error(`decoder: maxLen must be an integer in [1, ${c.maxSeqLen}] (got ${opts.maxLen})`);
    this.slots = opts.slots;
    this.maxLen = opts.maxLen;
    const size = opts.slots * c.nKvHeads * opts.maxLen * c.headDim;
    for (let l = 0; l < c.nLayers; l++) { this.k.push(new Float32Array(size)); this.v.push(new Float32Array(size)); }
    this.lens = new Int32Array(opts.slots);
  }

  reset(slot: number): void {
    this.checkSlot(slot);
    this.lens[slot] = 0;
    this.layout = null;
  }

  truncate(slot: number, len: number): void {
    this.checkSlot(slot);
    if (!Number.isInteger(len) || len < 0 || len > this.lens[slot]) throw new Error(`decoder: slot ${slot}: cannot truncate to ${len} (it holds ${this.lens[slot]})`);
    this.lens[slot] = len;
    this.layout = null;
  }

  /** The scored rows' logits come back from the same run (the graph gathers any rows, decode-graph.ts); log-softmax on the host (logSoftmaxRow, f64 sums). */
  async scoreTokens(inputs: ScoreInput[]): Promise<Float32Array[]> {
    const froms = inputs.map(scoreFrom);
    const V = this.w.config.vocabSize;
    const picks = inputs.map((inp, i) => Array.from({ length: inp.ids.length - froms[i] }, (_, k) => froms[i] + k - 1));
    return this.serial(inputs, (x) => {
      let r = 0;
      return inputs.map((inp, i) => Float32Array.from(picks[i], (t) => logSoftmaxRow(x, (r++) * V, V)[inp.ids[t + 1]]));
    }, picks);
  }

  async step(inputs: StepInput[]): Promise<Int32Array> {
    for (const inp of inputs) checkSampling(inp.sampling);
    const V = this.w.config.vocabSize;
    // Sampled straight from the [n, V] logits of the run (row b at offset b·V): no per-row copies.
    return this.serial(inputs, (x) => Int32Array.from(inputs, (inp, b) => this.sampler.sample(x, inp.sampling, inp.step, b * V, V)));
  }

  async stepLogprobs(inputs: StepInput[]): Promise<Float32Array[]> {
    const V = this.w.config.vocabSize;
    return this.serial(inputs, (x) => inputs.map((_, b) => logSoftmaxRow(x, b * V, V)));
  }

  /** Runs one at a time (each already uses every core), in call order; `read` takes the [n, V] logits before they are released. */
  private serial<R>(inputs: readonly { slot: number; ids: number[] }[], read: (logits: Float32Array) => R, picks?: number[][]): Promise<R> {
    const job = () => this.run(inputs, read, picks);
    const next = this.queue.then(job, job);
    this.queue = next.catch(() => undefined);
    return next;
  }

  dispose(): void {
    if (this.disposed) return;
    this.disposed = true;
    void this.session.release();
  }

  /** A feed buffer of `size` floats for input `name`, grown as needed and reused. */
  private scratchFor(name: string, size: number): Float32Array {
    let b = this.scratch.get(name);
    if (!b || b.length < size) this.scratch.set(name, (b = new Float32Array(size)));
    return b.subarray(0, size);
  }

  private checkSlot(slot: number): void {
    if (!Number.isInteger(slot) || slot < 0 || slot >= this.slots) throw new Error(`decoder: slot ${slot} is outside [0, ${this.slots})`);
  }

  private check(inputs: readonly { slot: number; ids: number[] }[]): void {
    const c = this.w.config, seen = new Set<number>();
    if (this.disposed) throw new Error('decoder: used after dispose()');
    for (const inp of inputs) {
      this.checkSlot(inp.slot);
      if (seen.has(inp.slot)) throw new Error(`decoder: slot ${inp.slot} appears twice in one step`);
      seen.add(inp.slot);
      if (!inp.ids.length) throw new Error(`decoder: slot ${inp.slot}: no tokens to append`);
      if (this.lens[inp.slot] + inp.ids.length > this.maxLen) throw new Error(`decoder: slot ${inp.slot}: ${this.lens[inp.slot]} + ${inp.ids.length} tokens exceed the cache of ${this.maxLen}`);
      inp.ids.forEach((id, t) => {
        if (!Number.isInteger(id) || id < 0 || id >= c.vocabSize) throw new Error(`decoder: slot ${inp.slot}: token id ${id} at position ${t} is outside the vocabulary [0, ${c.vocabSize})`);
      });
    }
  }

  /**
   * One graph run: feeds from the caches, the logits read back (by `read`, before release), new K/V rows into the caches. The past
   * feeds are kept between runs in a layout of P = the longest cache rounded up to PAST_CHUNK rows:
   * while the same slots step in the same order and P does not change, the new rows are written
   * into the feeds as well and nothing is gathered again (a decode step copies T rows, not the cache).
   * `picks[b]`: the rows of input b whose logits come back (default: its last), in order.
   */
  private async run<R>(inputs: readonly { slot: number; ids: number[] }[], read: (logits: Float32Array) => R, picks?: number[][]): Promise<R> {
    this.check(inputs);
    if (!inputs.length) return read(new Float32Array(0));
    const c = this.w.config, n = inputs.length;
    const T = Math.max(...inputs.map((i) => i.ids.length));
    const longest = Math.max(1, ...inputs.map((i) => this.lens[i.slot]));
    const P = Math.min(Math.max(longest, this.maxLen), Math.ceil(longest / PAST_CHUNK) * PAST_CHUNK);
    const ids = new BigInt64Array(n * T), start = new BigInt64Array(n), flat: bigint[] = [];
    inputs.forEach((inp, b) => {
      inp.ids.forEach((id, t) => { ids[b * T + t] = BigInt(id); });
      start[b] = BigInt(this.lens[inp.slot]);
      for (const t of picks?.[b] ?? [inp.ids.length - 1]) flat.push(BigInt(b * T + t));
    });
    if (!flat.length) flat.push(BigInt(inputs[0].ids.length - 1)); // a pure prefill: one row, not read
    const rows = BigInt64Array.from(flat);
    const Tn = this.ort.Tensor;
    const feeds: Record<string, Tensor> = {
      input_ids: new Tn('int64', ids, [n, T]), start: new Tn('int64', start, [n]), rows: new Tn('int64', rows, [rows.length]),
    };
    const reuse = this.layout !== null && this.layout.P === P && this.layout.slots.length === n && inputs.every((inp, b) => this.layout!.slots[b] === inp.slot);
    this.layout = null;
    const past = new Map<string, Float32Array>();
    for (let l = 0; l < c.nLayers; l++) {
      for (const [name, cache] of [[`k.${l}`, this.k[l]], [`v.${l}`, this.v[l]]] as const) {
        const buf = this.scratchFor(name, n * c.nKvHeads * P * c.headDim);
        if (!reuse) this.gather(buf, cache, inputs, P);
        past.set(name, buf);
        feeds[`past_${name}`] = new Tn('float32', buf, [n, c.nKvHeads, P, c.headDim]);
      }
    }
    const fetches: string[] = ['logits'];
    for (let l = 0; l < c.nLayers; l++) fetches.push(`present_k.${l}`, `present_v.${l}`);
    const res = await this.session.run(feeds, fetches);
    for (let l = 0; l < c.nLayers; l++) {
      for (const [name, cache] of [[`k.${l}`, this.k[l]], [`v.${l}`, this.v[l]]] as const) {
        this.scatter(res[`present_${name}`].data as Float32Array, T, cache, past.get(name)!, P, inputs);
      }
    }
    for (const inp of inputs) this.lens[inp.slot] += inp.ids.length;
    this.layout = { P, slots: inputs.map((i) => i.slot) };
    try {
      return read(res.logits.data as Float32Array);
    } finally {
      for (const t of Object.values(res)) t.dispose();
    }
  }

  /** Copy each input slot's cache rows into feed row b of buf [n, Hkv, P, hd] (rows past its length: stale, masked). */
  private gather(buf: Float32Array, cache: Float32Array, inputs: readonly { slot: number; ids: number[] }[], P: number): void {
    const nKv = this.w.config.nKvHeads, hd = this.w.config.headDim, M = this.maxLen;
    inputs.forEach((inp, b) => {
      const len = this.lens[inp.slot];
      for (let h = 0; h < nKv; h++) {
        const src = (inp.slot * nKv + h) * M * hd;
        buf.set(cache.subarray(src, src + len * hd), (b * nKv + h) * P * hd);
      }
    });
  }

  /** Write the new rows pres [n, Hkv, T, hd] into the caches at each slot's length, and into the feed where they fit. */
  private scatter(pres: Float32Array, T: number, cache: Float32Array, feed: Float32Array, P: number, inputs: readonly { slot: number; ids: number[] }[]): void {
    const nKv = this.w.config.nKvHeads, hd = this.w.config.headDim, M = this.maxLen;
    inputs.forEach((inp, b) => {
      const len = this.lens[inp.slot], m = inp.ids.length, fit = Math.max(0, Math.min(m, P - len));
      for (let h = 0; h < nKv; h++) {
        const src = (b * nKv + h) * T * hd;
        cache.set(pres.subarray(src, src + m * hd), ((inp.slot * nKv + h) * M + len) * hd);
        if (fit) feed.set(pres.subarray(src, src + fit * hd), ((b * nKv + h) * P + len) * hd);
      }
    });
  }
}
