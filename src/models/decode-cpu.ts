// The TypeScript twin's Decoder (src/generate/types.ts): one KV cache per slot (forwardCachedCpu in
// forward-cpu.ts), each slot at its own position, logits of each input's last row, host sampling
// with the sampling twin (src/generate/sampling.ts). The reference the WebGPU and onnxruntime
// decoders are checked against. A step runs every input's rows through one body pass (the
// matmuls see all rows at once; attention per slot), which changes no row's arithmetic.

import { scoreFrom, type Decoder, type DecoderOptions, type ScoreInput, type StepInput } from '../generate/types.js';
import { logprobCpu } from '../../kernels/logprob.js';
import { sampleRow } from '../generate/sampling.js';
import { forwardCachedBatchCpu, KvCacheCpu, logitsCpu } from './forward-cpu.js';
import { tensor } from './types.js';
import type { LoadedWeights } from './types.js';

/** log-softmax of one row in f64, stored as f32. */
export function logSoftmaxRow(logits: Float32Array): Float32Array {
  let m = -Infinity;
  for (const x of logits) if (x > m) m = x;
  let z = 0;
  for (const x of logits) z += Math.exp(x - m);
  const lz = m + Math.log(z);
  return Float32Array.from(logits, (x) => x - lz);
}

export class CpuTwinDecoder implements Decoder {
  readonly slots: number;
  readonly maxLen: number;
  private caches: KvCacheCpu[];

  constructor(private w: LoadedWeights, opts: DecoderOptions) {
    if (!(opts.slots >= 1) || !Number.isInteger(opts.slots)) throw new Error(`decoder: slots must be a positive integer, got ${opts.slots}`);
    if (!(opts.maxLen >= 1) || !Number.isInteger(opts.maxLen)) throw new Error(`decoder: maxLen must be a positive integer, got ${opts.maxLen}`);
    this.slots = opts.slots;
    this.maxLen = Math.min(opts.maxLen, w.config.maxSeqLen);
    this.caches = Array.from({ length: this.slots }, () => new KvCacheCpu(w.config, this.maxLen));
  }

  reset(slot: number): void {
    this.cache(slot).len = 0;
  }

  truncate(slot: number, len: number): void {
    const c = this.cache(slot);
    if (!Number.isInteger(len) || len < 0 || len > c.len) throw new Error(`decoder: slot ${slot}: cannot truncate to ${len} (it holds ${c.len})`);
    c.len = len;
  }

  private check(inputs: readonly { slot: number; ids: number[] }[]): void {
    const seen = new Set<number>();
    for (const inp of inputs) {
      if (seen.has(inp.slot)) throw new Error(`decoder: slot ${inp.slot} appears twice in one step`);
      seen.add(inp.slot);
      if (inp.ids.length === 0) throw new Error(`decoder: slot ${inp.slot} got no tokens to append`);
    }
  }

  /** Every input's rows through one body pass; the scored rows through the fused head's twin (f64, logprobCpu). */
  async scoreTokens(inputs: ScoreInput[]): Promise<Float32Array[]> {
    this.check(inputs);
    const froms = inputs.map(scoreFrom);
    if (inputs.length === 0) return [];
    const hidden = forwardCachedBatchCpu(this.w, inputs.map((inp) => ({ cache: this.cache(inp.slot), ids: inp.ids })));
    const d = this.w.config.dim, V = this.w.config.vocabSize, T = hidden.length / d;
    // Row base + t − 1 predicts ids[t]; only the scored rows are computed (logprobCpu gathers them).
    const targets = new Uint32Array(T), mask = new Uint8Array(T), base: number[] = [];
    let b = 0;
    inputs.forEach((inp, i) => {
      base.push(b);
      for (let t = froms[i]; t < inp.ids.length; t++) { targets[b + t - 1] = inp.ids[t]; mask[b + t - 1] = 1; }
      b += inp.ids.length;
    });
    const { logp } = logprobCpu(hidden, tensor(this.w, 'lm_head'), targets, mask, T, V, d, 1, T, this.w.config.finalSoftcap ?? 0);
    return inputs.map((inp, i) => logp.slice(base[i] + froms[i] - 1, base[i] + inp.ids.length - 1));
  }

  /** Logits [V] of the last appended row of each input: all inputs' rows in one body pass. */
  private logits(inputs: StepInput[]): Float32Array[] {
    this.check(inputs);
    if (inputs.length === 0) return [];
    const hidden = forwardCachedBatchCpu(this.w, inputs.map((inp) => ({ cache: this.cache(inp.slot), ids: inp.ids })));
    const last: number[] = [];
    let row = 0;
    for (const inp of inputs) { row += inp.ids.length; last.push(row - 1); }
    const V = this.w.config.vocabSize;
    const logits = logitsCpu(this.w, hidden, last);
    return inputs.map((_, i) => logits.subarray(i * V, (i + 1) * V));
  }

  async step(inputs: StepInput[]): Promise<Int32Array> {
    const rows = this.logits(inputs);
    return Int32Array.from(rows, (row, i) => sampleRow(row, inputs[i].sampling, inputs[i].step));
  }

  async stepLogprobs(inputs: StepInput[]): Promise<Float32Array[]> {
    return this.logits(inputs).map(logSoftmaxRow);
  }

  dispose(): void {
    this.caches = [];
  }

  private cache(slot: number): KvCacheCpu {
    const c = this.caches[slot];
    if (!c) throw new Error(`decoder: slot ${slot} is outside [0, ${this.slots})`);
    return c;
  }
}
