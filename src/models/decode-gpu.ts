// The WebGPU decoder (src/generate/types.ts Decoder): per-slot KV caches on the GPU, and a step that
// runs every input of a batch — a whole prompt after reset(), or the one token sampled last — in
// one pass over the layers:
//   embed (token rows packed back to back, no padding; learned positions gathered per row) →
//   per layer GpuTransformer.recordLayers (the scorer's own per-layer code: norms, q/k/v, q/k
//   norms, o-proj, MLP, post norms, biases) with attention = kvStoreGpu (RoPE at each row's
//   absolute position, K/V into the slot's cache) + decodeAttentionGpu (each row over its slot's
//   cache, split over the cache length) → the last row of each input gathered → final norm → LM
//   head matmul (logits [inputs, V]) → final soft-cap → sampling on the GPU (kernels/sample.ts:
//   greedy, temperature, top-k/p, min-p, counter-based RNG; only the ids come back), or
//   log-softmax rows for stepLogprobs.
// Small-M matmuls take whatever chooseMatmulVariant picks for M = rows (gemv for M ≤ 16 on
// hardware adapters, or the tuned winner). Cache: kernels/decode-attention.ts (layout there).

import { addGpu } from '../../kernels/add.js';
import { decodeAttentionGpu, DECODE_CHUNK, decodeSplits, kvStoreGpu, logSoftmaxGpu, softcapGpu } from '../../kernels/decode-attention.js';
import { sampleGpu } from '../../kernels/sample.js';
import { checkTargets, logprobGpu } from '../../kernels/logprob.js';
import { checkSampling } from '../generate/sampling.js';
import { checkIds, embedGpu } from '../../kernels/embed.js';
import { GREEDY, scoreFrom, type Decoder, type DecoderOptions, type ScoreInput, type StepInput } from '../generate/types.js';
import type { GpuTransformer } from './forward-gpu.js';

export interface GpuDecoderOptions extends DecoderOptions {
  /** KV cache in f16 (default: when the model's GPU weights are f16). */
  kvF16?: boolean;
  /** Cache positions per split of the decode attention (tests; default DECODE_CHUNK). */
  chunk?: number;
  /**
   * Most token rows one pass through the layers takes (default: what the activation and
   * decode-attention buffers allow within one storage binding, at most 8192); a step with more
   * (long prompts) is fed in passes of at most this many, the cache carrying the earlier ones.
   */
  maxTokens?: number;
}

/** A step's inputs packed as token rows. */
interface Packed {
  ids: Uint32Array;
  /** (slot, position) per row */
  rows: Uint32Array;
  /** the last row of each input */
  last: Uint32Array;
  positions: Uint32Array;
  maxPos: number;
}

export class GpuDecoder implements Decoder {
  readonly slots: number;
  readonly maxLen: number;
  readonly kvF16: boolean;
  private readonly chunk: number;
  /** Most token rows per pass through the layers. */
  readonly maxTokens: number;
  private kCache: GPUBuffer[] = [];
  private vCache: GPUBuffer[] = [];
  /** Tokens in each slot's cache. */
  private lens: Int32Array;

  constructor(readonly gpu: GpuTransformer, opts: GpuDecoderOptions) {
    const c = gpu.config;
    gpu.checkUploaded();
    if (!Number.isInteger(opts.slots) || opts.slots < 1) throw new Error(`decoder: slots ${opts.slots} must be a positive integer`);
    if (!Number.isInteger(opts.maxLen) || opts.maxLen < 1) throw new Error(`decoder: maxLen ${opts.maxLen} must be a positive integer`);
    if (opts.maxLen > c.maxSeqLen) throw new Error(`${c.name}: decoder maxLen ${opts.maxLen} exceeds the model's maxSeqLen ${c.maxSeqLen}`);
    this.slots = opts.slots;
    this.maxLen = opts.maxLen;
    this.kvF16 = opts.kvF16 ?? gpu.f16;
    if (this.kvF16 && !gpu.rt.hasF16) throw new Error('decoder: an f16 KV cache needs the shader-f16 feature');
    this.chunk = opts.chunk ?? DECODE_CHUNK;
    this.lens = new Int32Array(this.slots);
    // Per row: the widest activation [rows, width] f32 and the decode attention's partials
    // (heads × splits × (hd + 2) f32) must each fit one storage binding.
    const binding = gpu.rt.limits.maxStorageBufferBindingSize;
    const perRow = Math.max(4 * gpu.maxActivationWidth, 4 * c.nHeads * decodeSplits(this.maxLen - 1, this.chunk) * (c.headDim + 2));
    this.maxTokens = opts.maxTokens ?? Math.max(1, Math.min(Math.floor(binding / perRow), 8192));
    if (!Number.isInteger(this.maxTokens) || this.maxTokens < 1) throw new Error(`decoder: maxTokens ${opts.maxTokens} must be a positive integer`);
    const bytes = this.slots * c.nKvHeads * this.maxLen * c.headDim * (this.kvF16 ? 2 : 4);
    try {
      for (let l = 0; l < c.nLayers; l++) {
        this.kCache.push(gpu.rt.persistentBuffer(bytes, `kv-cache.k.${l}`));
        this.vCache.push(gpu.rt.persistentBuffer(bytes, `kv-cache.v.${l}`));
      }
    } catch (e) {
      this.dispose();
      throw e;
    }
  }

  /** Tokens now in a slot's cache. */
  length(slot: number): number {
    this.checkSlot(slot);
    return this.lens[slot];
  }

  reset(slot: number): void {
    this.checkSlot(slot);
    this.lens[slot] = 0;
  }

  truncate(slot: number, len: number): void {
    this.checkSlot(slot);
    if (!Number.isInteger(len) || len < 0 || len > this.lens[slot]) throw new Error(`decoder: slot ${slot}: cannot truncate to ${len} (it holds ${this.lens[slot]})`);
    this.lens[slot] = len;
  }

  /**
   * The inputs' rows in passes of at most maxTokens (the cache carries the earlier ones); each pass
   * gathers its scored rows (those whose next token is given and counted from `from`), final norm,
   * and the scorer's fused head (kernels/logprob.ts: online log-sum-exp, no logits written) with
   * the given next tokens as targets. Only the log-probs come back.
   */
  async scoreTokens(inputs: ScoreInput[]): Promise<Float32Array[]> {
    const froms = inputs.map(scoreFrom);
    if (!inputs.length) return [];
    this.pack(inputs.map((s) => ({ ...s, sampling: GREEDY, step: 0 }))); // every check, before anything is recorded
    const out = inputs.map((inp, i) => new Float32Array(inp.ids.length - froms[i]));
    const fed = inputs.map(() => 0);
    while (inputs.some((inp, i) => fed[i] < inp.ids.length)) {
      let budget = this.maxTokens, row = 0;
      const part: StepInput[] = [], rows: number[] = [], targets: number[] = [], dest: [number, number][] = [];
      inputs.forEach((inp, i) => {
        const n = Math.min(inp.ids.length - fed[i], budget);
        if (n <= 0) return;
        part.push({ slot: inp.slot, ids: inp.ids.slice(fed[i], fed[i] + n), sampling: GREEDY, step: 0 });
        for (let t = fed[i]; t < fed[i] + n; t++) {
          if (t + 1 >= froms[i] && t + 1 < inp.ids.length) { rows.push(row + t - fed[i]); targets.push(inp.ids[t + 1]); dest.push([i, t + 1 - froms[i]]); }
        }
        row += n; budget -= n; fed[i] += n;
      });
      const logp = this.pass(part, rows.length ? { rows: Uint32Array.from(rows), targets: Uint32Array.from(targets) } : false);
      if (!logp) { this.gpu.rt.submit(); continue; }
      const got = await this.gpu.rt.readF32(logp, rows.length);
      this.gpu.rt.release(logp);
      dest.forEach(([i, k], j) => { out[i][k] = got[j]; });
    }
    return out;
  }

  private checkSlot(slot: number): void {
    if (!Number.isInteger(slot) || slot < 0 || slot >= this.slots) throw new Error(`decoder: slot ${slot} outside [0, ${this.slots})`);
  }

  private pack(inputs: StepInput[]): Packed {
    const seen = new Set<number>();
    let T = 0;
    for (const s of inputs) {
      this.checkSlot(s.slot);
      if (seen.has(s.slot)) throw new Error(`decoder: slot ${s.slot} appears twice in one step`);
      seen.add(s.slot);
      if (!s.ids.length) throw new Error(`decoder: slot ${s.slot} was given no tokens`);
      if (this.lens[s.slot] + s.ids.length > this.maxLen) {
        throw new Error(`decoder: slot ${s.slot} would hold ${this.lens[s.slot] + s.ids.length} tokens, above its capacity ${this.maxLen}`);
      }
      checkIds(s.ids, this.gpu.config.vocabSize);
      T += s.ids.length;
    }
    const ids = new Uint32Array(T), rows = new Uint32Array(2 * T), positions = new Uint32Array(T), last = new Uint32Array(inputs.length);
    let t = 0, maxPos = 0;
    inputs.forEach((s, i) => {
      for (let j = 0; j < s.ids.length; j++, t++) {
        const pos = this.lens[s.slot] + j;
        ids[t] = s.ids[j];
        rows[2 * t] = s.slot;
        rows[2 * t + 1] = pos;
        positions[t] = pos;
        maxPos = Math.max(maxPos, pos);
      }
      last[i] = t - 1;
    });
    return { ids, rows, last, positions, maxPos };
  }

  /**
   * Record a step; returns the logits [inputs, V] (pooled: release it). Advances the slots. More
   * than maxTokens rows: the leading tokens of the inputs go through in earlier passes (submitted
   * one by one, so their buffers are reused), keeping at least the last token of every input for
   * the final pass, which computes the logits.
   */
  private forward(inputs: StepInput[]): GPUBuffer {
    this.pack(inputs); // every check, on the whole step, before anything is recorded
    let rest = inputs;
    let total = rest.reduce((n, s) => n + s.ids.length, 0);
    while (total > this.maxTokens) {
      let budget = this.maxTokens;
      const part: StepInput[] = [];
      for (const s of rest) {
        const n = Math.min(s.ids.length - 1, budget);
        if (n > 0) { part.push({ ...s, ids: s.ids.slice(0, n) }); budget -= n; }
      }
      if (!part.length) throw new Error(`decoder: ${rest.length} inputs in one step exceed the ${this.maxTokens} token rows a pass takes`);
      this.pass(part, false);
      this.gpu.rt.submit();
      const fed = new Map(part.map((s) => [s.slot, s.ids.length]));
      rest = rest.map((s) => ({ ...s, ids: s.ids.slice(fed.get(s.slot) ?? 0) }));
      total = rest.reduce((n, s) => n + s.ids.length, 0);
    }
    return this.pass(rest, 'last')!;
  }

  /**
   * Record one pass through the layers (K/V into the caches); with head 'last', the logits
   * [inputs, V] of each input's last row; with { rows, targets }, log p(targets[j]) at the step's
   * token row rows[j] [R] (the fused head).
   */
  private pass(inputs: StepInput[], head: false | 'last' | { rows: Uint32Array; targets: Uint32Array }): GPUBuffer | null {
    const { gpu } = this;
    const { rt } = gpu;
    const c = gpu.config;
    const p = this.pack(inputs);
    const T = p.ids.length, R = inputs.length, d = c.dim;
    const ids = rt.upload(p.ids, 'decode.ids');
    const rows = rt.upload(p.rows, 'decode.rows');
    const x = rt.acquire(T * d * 4, 'storage', 'decode.x');
    embedGpu(rt, { ids, tokEmb: gpu.tokEmb, out: x, B: 1, L: T, d, vocabSize: c.vocabSize, scale: c.embedScale });
    const tmp: GPUBuffer[] = [ids, rows, x];
    if (gpu.posEmb) {
      // Learned positions (GPT-2): gather each row's position embedding and add it.
      const pos = rt.upload(p.positions, 'decode.positions');
      const pe = rt.acquire(T * d * 4, 'storage', 'decode.pos_emb');
      embedGpu(rt, { ids: pos, tokEmb: gpu.posEmb, out: pe, B: 1, L: T, d, vocabSize: c.maxSeqLen });
      addGpu(rt, { x: pe, y: x, n: T * d });
      tmp.push(pos, pe);
    }
    const qr = rt.acquire(T * c.nHeads * c.headDim * 4, 'storage', 'decode.q_rot');
    tmp.push(qr);
    const shape = { nHeads: c.nHeads, nKvHeads: c.nKvHeads, headDim: c.headDim, maxLen: this.maxLen, f16: this.kvF16 };
    gpu.recordLayers(x, T, (layer, q, k, v, att, l) => {
      const rope = layer.rope ? { theta: layer.theta, layout: c.ropeLayout, scaling: layer.scaling, rotaryDim: c.rotaryDim } : undefined;
      kvStoreGpu(rt, { q, k, v, rows, qOut: qr, kCache: this.kCache[l], vCache: this.vCache[l], T, rope, ...shape });
      decodeAttentionGpu(rt, { q: qr, rows, kCache: this.kCache[l], vCache: this.vCache[l], out: att, R: T, maxPos: p.maxPos,
        window: layer.window, scale: c.attnScale, softcap: c.attnSoftcap, chunk: this.chunk, ...shape });
    });
    if (!head) {
      for (const b of tmp) rt.release(b);
      for (const s of inputs) this.lens[s.slot] += s.ids.length;
      return null;
    }
    // The last row of each input, or the scored rows (the gather is the embedding kernel over x as a table), normed.
    const pick = head === 'last' ? p.last : head.rows;
    const G = pick.length;
    const lastIdx = rt.upload(pick, 'decode.last');
    const g = rt.acquire(G * d * 4, 'storage', 'decode.last_hidden');
    embedGpu(rt, { ids: lastIdx, tokEmb: x, out: g, B: 1, L: G, d, vocabSize: T });
    const h = rt.acquire(G * d * 4, 'storage', 'decode.final_norm');
    gpu.finalNormInto(g, h, G);
    if (head !== 'last') {
      checkTargets(head.targets, new Uint32Array(G).fill(1), c.vocabSize);
      const tb = rt.upload(head.targets, 'decode.targets'), mb = rt.upload(new Uint32Array(G).fill(1), 'decode.mask');
      const logp = rt.acquire(G * 4, 'storage', 'decode.logp');
      logprobGpu(rt, { H: h, W: gpu.lmHead, targets: tb, mask: mb, logp, T: G, V: c.vocabSize, d, variant: { f16: gpu.f16 }, softcap: c.finalSoftcap });
      for (const b of [...tmp, lastIdx, g, h, tb, mb]) rt.release(b);
      for (const s of inputs) this.lens[s.slot] += s.ids.length;
      return logp;
    }
    const logits = rt.acquire(R * c.vocabSize * 4, 'storage', 'decode.logits');
    gpu.linear(h, gpu.headLinear, logits, R);
    for (const b of [...tmp, lastIdx, g, h]) rt.release(b);
    for (const s of inputs) this.lens[s.slot] += s.ids.length;
    return logits;
  }

  async stepLogprobs(inputs: StepInput[]): Promise<Float32Array[]> {
    if (!inputs.length) return [];
    const { rt } = this.gpu;
    const V = this.gpu.config.vocabSize;
    const logits = this.forward(inputs);
    logSoftmaxGpu(rt, { x: logits, R: inputs.length, V, softcap: this.gpu.config.finalSoftcap });
    const all = await rt.readF32(logits, inputs.length * V);
    rt.release(logits);
    return inputs.map((_, i) => all.slice(i * V, (i + 1) * V));
  }

  async step(inputs: StepInput[]): Promise<Int32Array> {
    if (!inputs.length) return new Int32Array(0);
    for (const s of inputs) checkSampling(s.sampling);
    const { rt } = this.gpu;
    const c = this.gpu.config;
    const V = c.vocabSize, R = inputs.length;
    const logits = this.forward(inputs);
    if (c.finalSoftcap) softcapGpu(rt, { x: logits, n: R * V, cap: c.finalSoftcap });
    // Sampling on the GPU (kernels/sample.ts): greedy, temperature, top-k/p, min-p with the
    // counter-based RNG at (seed, step); only the ids come back.
    const ids = sampleGpu(rt, logits, R, V, inputs);
    const out = new Int32Array(await rt.read(ids, R * 4));
    rt.release(logits);
    rt.release(ids);
    for (let i = 0; i < R; i++) {
      if (out[i] < 0 || out[i] >= V) throw new Error(`decoder: slot ${inputs[i].slot}: no valid token (non-finite logits?)`);
    }
    return out;
  }

  dispose(): void {
    for (const b of [...this.kCache, ...this.vCache]) this.gpu.rt.dropPersistent(b);
    this.kCache = [];
    this.vCache = [];
  }
}
