// The onnxruntime Decoder (src/generate/types.ts): the decode graph (decode-graph.ts) on
// onnxruntime's CPU kernels, with each slot's K/V cache on the host. A step gathers the stepping
// slots' caches into past_k/past_v [n, Hkv, P, hd] (P = the longest cache among them; rows past a
// slot's own length are masked in the graph), runs prefill (a prompt) and one-token steps of slots
// at different positions in the same run, and writes the new rows (present_k/v) back into the
// caches. Sampling is on the host, from the (soft-capped) logits the graph returns, by the shared
// sampler (src/generate/sampling.ts sampleRow: greedy = argmax with the lowest id on ties;
// temperature, top-k, top-p, min-p at the counter-based RNG's draw), so the same seed gives the
// same tokens as the twin's decoder wherever the logits agree.

import { checkSampling, sampleRow } from '../../generate/sampling.js';
import type { Decoder, DecoderOptions, StepInput } from '../../generate/types.js';
import type { LoadedWeights } from '../types.js';

type Ort = typeof import('onnxruntime-node');
type Session = import('onnxruntime-node').InferenceSession;
type Tensor = import('onnxruntime-node').Tensor;

export class OrtDecoder implements Decoder {
  readonly slots: number;
  readonly maxLen: number;
  private readonly k: Float32Array[] = [];
  private readonly v: Float32Array[] = [];
  private readonly lens: Int32Array;
  private queue: Promise<unknown> = Promise.resolve();
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
  }

  async step(inputs: StepInput[]): Promise<Int32Array> {
    for (const inp of inputs) checkSampling(inp.sampling);
    const { logits } = await this.serial(inputs);
    return Int32Array.from(logits, (row, i) => sampleRow(row, inputs[i].sampling, inputs[i].step));
  }

  async stepLogprobs(inputs: StepInput[]): Promise<Float32Array[]> {
    return (await this.serial(inputs)).logprobs;
  }

  /** Runs one at a time (each already uses every core), in call order. */
  private serial(inputs: StepInput[]): Promise<{ logits: Float32Array[]; logprobs: Float32Array[] }> {
    const job = () => this.run(inputs);
    const next = this.queue.then(job, job);
    this.queue = next.catch(() => undefined);
    return next;
  }

  dispose(): void {
    if (this.disposed) return;
    this.disposed = true;
    void this.session.release();
  }

  private checkSlot(slot: number): void {
    if (!Number.isInteger(slot) || slot < 0 || slot >= this.slots) throw new Error(`decoder: slot ${slot} is outside [0, ${this.slots})`);
  }

  private check(inputs: StepInput[]): void {
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

  /** One graph run: feeds from the caches, log-probs back, new K/V rows into the caches. */
  private async run(inputs: StepInput[]): Promise<{ logits: Float32Array[]; logprobs: Float32Array[] }> {
    this.check(inputs);
    if (!inputs.length) return { logits: [], logprobs: [] };
    const c = this.w.config, n = inputs.length, hd = c.headDim, nKv = c.nKvHeads, M = this.maxLen;
    const T = Math.max(...inputs.map((i) => i.ids.length));
    const P = Math.max(1, ...inputs.map((i) => this.lens[i.slot]));
    const ids = new BigInt64Array(n * T), start = new BigInt64Array(n), rows = new BigInt64Array(n);
    inputs.forEach((inp, b) => {
      inp.ids.forEach((id, t) => { ids[b * T + t] = BigInt(id); });
      start[b] = BigInt(this.lens[inp.slot]);
      rows[b] = BigInt(b * T + inp.ids.length - 1);
    });
    const Tn = this.ort.Tensor;
    const feeds: Record<string, Tensor> = {
      input_ids: new Tn('int64', ids, [n, T]), start: new Tn('int64', start, [n]), rows: new Tn('int64', rows, [n]),
    };
    for (let l = 0; l < c.nLayers; l++) {
      for (const [name, cache] of [[`past_k.${l}`, this.k[l]], [`past_v.${l}`, this.v[l]]] as const) {
        const past = new Float32Array(n * nKv * P * hd);
        inputs.forEach((inp, b) => {
          const len = this.lens[inp.slot];
          for (let h = 0; h < nKv; h++) {
            const src = (inp.slot * nKv + h) * M * hd;
            past.set(cache.subarray(src, src + len * hd), (b * nKv + h) * P * hd);
          }
        });
        feeds[name] = new Tn('float32', past, [n, nKv, P, hd]);
      }
    }
    const res = await this.session.run(feeds);
    for (let l = 0; l < c.nLayers; l++) {
      for (const [name, cache] of [[`present_k.${l}`, this.k[l]], [`present_v.${l}`, this.v[l]]] as const) {
        const pres = res[name].data as Float32Array;
        inputs.forEach((inp, b) => {
          const len = this.lens[inp.slot], m = inp.ids.length;
          for (let h = 0; h < nKv; h++) {
            const src = (b * nKv + h) * T * hd;
            cache.set(pres.subarray(src, src + m * hd), ((inp.slot * nKv + h) * M + len) * hd);
          }
        });
      }
    }
    for (const inp of inputs) this.lens[inp.slot] += inp.ids.length;
    const V = c.vocabSize, pick = (name: string) => {
      const x = res[name].data as Float32Array;
      return inputs.map((_, b) => x.slice(b * V, (b + 1) * V));
    };
    const out = { logits: pick('logits'), logprobs: pick('logprobs') };
    for (const t of Object.values(res)) t.dispose();
    return out;
  }
}
