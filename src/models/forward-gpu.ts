// The transformer prefill in WGSL: weights uploaded once, then per batch of B sequences padded to
// L tokens: embed → per layer (norm → q/k/v → rope + causal GQA attention → o-proj (+ residual) →
// norm → MLP (+ residual)) → final norm → fused LM-head log-likelihood (or, for the rating prompts,
// the head's candidate variant over each prompt's last row: candidateLogprobs). Every step is one kernel
// from kernels/; activations live in pooled buffers that are reused batch after batch.
//
// Fused in the matmul epilogue (kernels/matmul.ts, every variant): the residual add — the o-proj
// and down-proj accumulate straight into the residual stream, except where a post-attention /
// post-FFN norm (Gemma's sandwich) sits between them and the add — and the gated MLP: gate and
// up are concatenated at load time ([gate; up] rows) and one matmul applies SwiGLU / GeGLU.
//
// Linear weights go to the GPU as f16 on hardware adapters with shader-f16 (the matmul and
// the LM head's logprob kernel compiled with f16 weights), otherwise f32. The CPU twin (forward-cpu.ts) is the reference for both.
// weight-upload.ts places the tensors; those still in their checkpoint files stream in create().

import { padBatch, type PaddedBatch } from '../scheduler/batch.js';
import { addGpu } from '../../kernels/add.js';
import { geluGpu } from '../../kernels/act.js';
import { attentionGpu, attentionVariantFor } from '../../kernels/attention.js';
import { checkIds, embedGpu } from '../../kernels/embed.js';
import { candidateLogprobGpu, checkCandidates, checkTargets, logprobGpu, type LogprobVariant } from '../../kernels/logprob.js';
import { matmulGpu } from '../../kernels/matmul.js';
import { quantMatmulGpu, type QuantMatmulType } from '../../kernels/matmul-quant.js';
import { normGpu } from '../../kernels/norm.js';
import { meanPoolGpu } from '../../kernels/pool.js';
import { GpuRuntime } from '../gpu/runtime.js';
import { WeightUploader, type UploadOptions } from './weight-upload.js';
import type { GateAct } from '../../kernels/act.js';
import type { ScoreOptions, SequenceRequest, SequenceScores } from './lm.js';
import type { RopeScaling } from '../../kernels/rope.js';
import { layerRopeParams, layerUsesRope, layerWindow, LoadedWeights, ModelConfig, tensor } from './types.js';

/** qtype: w holds GGUF Q8_0/Q4_0/Q4_K/Q6_K blocks (kernels/matmul-quant.ts), else f32/f16 values. */
export interface Linear { w: GPUBuffer; b: GPUBuffer | null; out: number; in: number; qtype?: QuantMatmulType }

export interface Layer {
  attnNorm: GPUBuffer; attnNormB: GPUBuffer | null;
  q: Linear; k: Linear; v: Linear; o: Linear;
  /** Per-head RMSNorm weights of q and k [hd] (Qwen3), when the tensors exist. */
  qNorm: GPUBuffer | null; kNorm: GPUBuffer | null;
  window: number; rope: boolean;
  ffnNorm: GPUBuffer; ffnNormB: GPUBuffer | null;
  /** Gemma: norms of the attention / MLP outputs before their residual adds, when the tensors exist. */
  postAttnNorm: GPUBuffer | null; postFfnNorm: GPUBuffer | null;
  /** Gated MLP: [gate; up] rows (2·hidden × dim) for one GLU matmul; else null. */
  gateUp: Linear | null;
  /** The up projection of an ungated MLP (GPT-2 style); null when gated. */
  up: Linear | null;
  down: Linear;
  theta: number; scaling: RopeScaling | null;
}

export interface GpuForwardOptions extends UploadOptions {
  /** Store linear weights and the LM head as f16 (default: when the device has shader-f16). */
  f16?: boolean;
  /**
   * Hold attention's K/V tiles as f16 ('flash' variant only; needs shader-f16). Default off: the
   * f16 rounding of K and V moves log-probs by up to ~3e-3 nats/token on the miniature HF
   * fixtures (measured on lavapipe), beyond the 1e-4 the f16-weight path keeps to its CPU twin.
   */
  kvF16?: boolean;
  /**
   * GGUF Q8_0/Q4_0/Q4_K/Q6_K linear weights and LM head stay as their blocks in GPU memory and
   * are dequantized in the kernels (kernels/matmul-quant.ts, the LM head's kernels/logprob.ts);
   * default true. false: dequantized to f32/f16 at upload. The embedding is always dequantized
   * (a tied head is uploaded twice: dequantized as the embedding, as blocks as the head).
   */
  quantWeights?: boolean;
}

/** A padded batch of the requests (the one padded-batch type, src/scheduler/batch.ts). */
const packBatch = (seqs: SequenceRequest[], padId = 0): PaddedBatch => padBatch(seqs.map((s) => s.ids), padId);

export class GpuTransformer {
  readonly f16: boolean;
  readonly kvF16: boolean;
  private owned: GPUBuffer[] = [];
  // Read by the decoder (decode-gpu.ts), which shares the weights and the per-layer code.
  tokEmb: GPUBuffer;
  posEmb: GPUBuffer | null;
  readonly layers: Layer[] = [];
  finalNorm: GPUBuffer;
  finalNormB: GPUBuffer | null;
  lmHead: GPUBuffer;
  /** The LM head's GGUF block type when it is kept as blocks (lmHead then holds them), else undefined. */
  lmHeadType?: QuantMatmulType;
  /** bytes of weights on the GPU */
  readonly weightBytes: number;
  /** Linear weights (the LM head included) held as GGUF blocks (kernels/matmul-quant.ts). */
  quantLinears = 0;
  /** Places the weights in GPU buffers; streams those still in their files (weights.refs) in create(). */
  readonly uploads: WeightUploader;

  /** Build and upload, streaming tensors still in their checkpoint files (the way to construct one from refs). */
  static async create(rt: GpuRuntime, weights: LoadedWeights, opts: GpuForwardOptions = {}): Promise<GpuTransformer> {
    const g = new GpuTransformer(rt, weights, opts);
    try {
      await g.uploads.finish(opts);
    } catch (e) {
      g.dispose();
      throw e;
    }
    return g;
  }

  constructor(readonly rt: GpuRuntime, readonly weights: LoadedWeights, opts: GpuForwardOptions = {}) {
    const c = weights.config;
    // Default: f16 on hardware adapters with shader-f16. CPU rasterisers (lavapipe) expose
    // shader-f16 but emulate it; there the f32 kernels measured faster (bench kernels).
    this.f16 = opts.f16 ?? (rt.hasF16 && !rt.handle.info.software);
    if (this.f16 && !rt.hasF16) throw new Error('f16 weights need the shader-f16 feature');
    this.kvF16 = opts.kvF16 ?? false;
    if (this.kvF16 && !rt.hasF16) throw new Error('f16 K/V tiles need the shader-f16 feature');
    // Whatever the constructor has allocated is freed when it throws (e.g. a tensor above the
    // adapter's binding limit, found after the layers were uploaded).
    try {
      const uploads = (this.uploads = new WeightUploader(rt, weights));
      // One or more canonical tensors (back to back) in one buffer.
      const up = (name: string | string[], asF16 = false): GPUBuffer => {
        const buf = uploads.buffer(typeof name === 'string' ? [name] : name, asF16);
        this.owned.push(buf);
        return buf;
      };
      const opt = (name: string): GPUBuffer | null => (weights.tensors.has(name) ? up(name) : null);
      const quant = (names: string[], inn: number): { buf: GPUBuffer; type: QuantMatmulType } | null => {
        const q = opts.quantWeights === false ? null : uploads.quantBuffer(names, inn);
        if (q) { this.owned.push(q.buf); this.quantLinears += names.length; }
        return q;
      };
      const lin = (name: string, bias: string | null, out: number, inn: number): Linear => {
        const q = quant([name], inn);
        return { w: q ? q.buf : up(name, this.f16), b: bias ? opt(bias) : null, out, in: inn, qtype: q?.type };
      };
      // Gate and up as one [gate; up] weight (2·hidden × dim), streamed back to back into one buffer,
      // and a bias [0; b_up] when the up projection has one (small: read as f32).
      const gateUp = (p: string): Linear => {
        const q = quant([`${p}w_gate`, `${p}w_up`], c.dim);
        const w = q ? q.buf : up([`${p}w_gate`, `${p}w_up`], this.f16);
        let b: GPUBuffer | null = null;
        if (weights.tensors.has(`${p}b_up`)) {
          const bias = new Float32Array(2 * c.hiddenDim);
          bias.set(tensor(weights, `${p}b_up`), c.hiddenDim);
          b = rt.persistent(bias, `${p}b_gate+b_up`);
          extraBytes += bias.byteLength;
          this.owned.push(b);
        }
        return { w, b, out: c.hiddenDim, in: c.dim, qtype: q?.type };
      };
      let extraBytes = 0;
      const gated = c.act === 'swiglu' || c.act === 'geglu';
      this.tokEmb = up('tok_emb');
      this.posEmb = c.pos === 'learned' ? up('pos_emb') : null;
      const qd = c.nHeads * c.headDim, kvd = c.nKvHeads * c.headDim;
      for (let i = 0; i < c.nLayers; i++) {
        const p = `layers.${i}.`;
        this.layers.push({
          attnNorm: up(`${p}attn_norm.weight`), attnNormB: opt(`${p}attn_norm.bias`),
          q: lin(`${p}wq`, `${p}bq`, qd, c.dim), k: lin(`${p}wk`, `${p}bk`, kvd, c.dim), v: lin(`${p}wv`, `${p}bv`, kvd, c.dim),
          o: lin(`${p}wo`, `${p}bo`, c.dim, qd),
          qNorm: opt(`${p}q_norm.weight`), kNorm: opt(`${p}k_norm.weight`),
          window: layerWindow(c, i), rope: layerUsesRope(c, i),
          ffnNorm: up(`${p}ffn_norm.weight`), ffnNormB: opt(`${p}ffn_norm.bias`),
          postAttnNorm: opt(`${p}post_attn_norm.weight`), postFfnNorm: opt(`${p}post_ffn_norm.weight`),
          gateUp: gated ? gateUp(p) : null,
          ...layerRopeParams(c, i),
          up: gated ? null : lin(`${p}w_up`, `${p}b_up`, c.hiddenDim, c.dim),
          down: lin(`${p}w_down`, `${p}b_down`, c.dim, c.hiddenDim),
        });
      }
      this.finalNorm = up('final_norm.weight');
      this.finalNormB = opt('final_norm.bias');
      // The head may be the embedding itself (tied); upload it again in the head's storage format.
      const head = quant(['lm_head'], c.dim);
      this.lmHead = head ? head.buf : up('lm_head', this.f16);
      this.lmHeadType = head?.type;
      this.weightBytes = uploads.bytes + extraBytes;
    } catch (e) {
      this.dispose();
      throw e;
    }
  }

  get config(): ModelConfig { return this.weights.config; }

  /** Widest activation row, for the token budget (buffers are [tokens, width] f32). */
  get maxActivationWidth(): number {
    const c = this.config;
    return Math.max(c.dim, c.hiddenDim, c.nHeads * c.headDim);
  }

  /** The distinct (N, K, ggml type, GLU) of the linears kept as GGUF blocks, the head's included (autotuner requests). */
  quantShapes(): { N: number; K: number; type: number; glu?: string }[] {
    const c = this.config, seen = new Map<string, { N: number; K: number; type: number; glu?: string }>();
    const glu = c.act === 'geglu' ? 'gelu_tanh' : 'silu';
    for (const l of this.layers) {
      for (const [lin, g] of [[l.q], [l.k], [l.v], [l.o], [l.gateUp, true], [l.up], [l.down]] as [Linear | null, boolean?][]) {
        if (lin?.qtype === undefined) continue;
        const s = { N: lin.out, K: lin.in, type: lin.qtype, ...(g ? { glu } : {}) };
        seen.set(JSON.stringify(s), s);
      }
    }
    if (this.lmHeadType !== undefined) seen.set('head', { N: c.vocabSize, K: c.dim, type: this.lmHeadType });
    return [...seen.values()];
  }

  /** How the head kernels read the LM head: as GGUF blocks, or f16/f32 values. */
  get headVariant(): LogprobVariant {
    return this.lmHeadType !== undefined ? { qtype: this.lmHeadType } : { f16: this.f16 };
  }

  /** The LM head as a linear [V, d] (the decoder's logits matmul). */
  get headLinear(): Linear {
    return { w: this.lmHead, b: null, out: this.config.vocabSize, in: this.config.dim, qtype: this.lmHeadType };
  }

  /** out = x·Wᵀ + b; `accumulate`: out += …; `glu`: l is [gate; up] and out = act(gate) * up. */
  linear(x: GPUBuffer, l: Linear, out: GPUBuffer, T: number, fuse: { accumulate?: boolean; glu?: GateAct } = {}): void {
    if (l.qtype !== undefined) quantMatmulGpu(this.rt, { A: x, B: l.w, bias: l.b, C: out, M: T, N: l.out, K: l.in, type: l.qtype, ...fuse });
    else matmulGpu(this.rt, { A: x, B: l.w, bias: l.b, C: out, M: T, N: l.out, K: l.in, layout: 'nk', f16: this.f16, ...fuse });
  }

  /**
   * Record the prefill of a packed batch; returns the buffer of final normed hidden states
   * [B·L, d] (pooled: release it when done). Nothing is submitted here.
   */
  forwardHidden(batch: PaddedBatch): GPUBuffer {
    const { rt } = this;
    this.checkUploaded();
    const c = this.config;
    const { B, L } = batch;
    const T = B * L, d = c.dim;
    checkIds(batch.ids, c.vocabSize);
    if (L > c.maxSeqLen) throw new Error(`${c.name}: sequence of ${L} tokens exceeds maxSeqLen ${c.maxSeqLen}`);
    const ids = rt.upload(batch.ids, 'ids');
    const seqLen = rt.upload(batch.seqLen, 'seqLen');
    const x = rt.acquire(T * d * 4, 'storage', 'x');
    embedGpu(rt, { ids, tokEmb: this.tokEmb, posEmb: this.posEmb, nPos: c.maxSeqLen, out: x, B, L, d, vocabSize: c.vocabSize, scale: c.embedScale });
    this.recordLayers(x, T, (layer, qa, ka, v, att) => {
      // RoPE (after the q/k norms): fused into attention's prologue by the 'flash' variant, a
      // separate in-place ropeGpu before the 'direct' one (kernels/attention.ts). With kvF16 the
      // K/V tiles are f16 in flash's workgroup memory ('direct' has no such form).
      const rope = layer.rope ? { theta: layer.theta, layout: c.ropeLayout, scaling: layer.scaling, rotaryDim: c.rotaryDim } : undefined;
      const kvF16 = this.kvF16 && attentionVariantFor(rt, { B, L, nHeads: c.nHeads, nKvHeads: c.nKvHeads, headDim: c.headDim, causal: true, kvF16: true }) === 'flash';
      attentionGpu(rt, { q: qa, k: ka, v, seqLen, out: att, B, L, nHeads: c.nHeads, nKvHeads: c.nKvHeads, headDim: c.headDim, window: layer.window, scale: c.attnScale, softcap: c.attnSoftcap, rope, kvF16 });
    });
    const out = rt.acquire(T * d * 4, 'storage', 'hidden');
    this.finalNormInto(x, out, T);
    for (const b of [ids, seqLen, x]) rt.release(b);
    return out;
  }

  checkUploaded(): void {
    if (this.uploads.pending) throw new Error(`${this.config.name}: weights not uploaded yet (build it with GpuTransformer.create())`);
  }

  /** Record out = the final norm of the T rows of x. */
  finalNormInto(x: GPUBuffer, out: GPUBuffer, T: number): void {
    const c = this.config;
    normGpu(this.rt, { kind: c.norm, x, weight: this.finalNorm, bias: this.finalNormB, out, rows: T, d: c.dim, eps: c.normEps, weightOffset: c.normWeightOffset ?? 0 });
  }

  /**
   * Record every layer over the T token rows of the residual stream x (updated in place):
   * norm → q/k/v (→ q/k norms) → `attend` → o-proj (+ residual) → norm → MLP (+ residual). The
   * one per-layer path of both the prefill (flash attention over padded sequences) and the
   * decoder (decode-gpu.ts: RoPE at each row's position, K/V into the cache, attention over it),
   * so every family feature (biases, q/k norms, post norms, GLU kinds) carries over to both.
   * `attend(layer, q, k, v, out, index)` writes the attention output [T, nHeads·hd] into out;
   * q and k are before RoPE.
   */
  recordLayers(x: GPUBuffer, T: number, attend: (layer: Layer, q: GPUBuffer, k: GPUBuffer, v: GPUBuffer, out: GPUBuffer, index: number) => void): void {
    const { rt } = this;
    const c = this.config;
    const d = c.dim;
    const qd = c.nHeads * c.headDim, kvd = c.nKvHeads * c.headDim;
    const xn = rt.acquire(T * d * 4, 'storage', 'xn');
    const q = rt.acquire(T * qd * 4, 'storage', 'q');
    const k = rt.acquire(T * kvd * 4, 'storage', 'k');
    const v = rt.acquire(T * kvd * 4, 'storage', 'v');
    const att = rt.acquire(T * qd * 4, 'storage', 'att');
    const anyPostNorm = this.layers.some((l) => l.postAttnNorm || l.postFfnNorm);
    // proj: a block's output before its post-norm; only layers with a post-norm need it.
    const proj = anyPostNorm ? rt.acquire(T * d * 4, 'storage', 'proj') : null;
    const h1 = rt.acquire(T * c.hiddenDim * 4, 'storage', 'ffn1');
    const pn = anyPostNorm ? rt.acquire(T * d * 4, 'storage', 'postNorm') : null;
    const wOff = c.normWeightOffset ?? 0;
    // Normed q/k (the norm kernel is out of place) for layers with q/k norms.
    const anyQkNorm = this.layers.some((l) => l.qNorm || l.kNorm);
    const qn = anyQkNorm ? rt.acquire(T * qd * 4, 'storage', 'qn') : null;
    const kn = anyQkNorm ? rt.acquire(T * kvd * 4, 'storage', 'kn') : null;

    const norm = (w: GPUBuffer, b: GPUBuffer | null, out: GPUBuffer, src: GPUBuffer = x) =>
      normGpu(rt, { kind: c.norm, x: src, weight: w, bias: b, out, rows: T, d, eps: c.normEps, weightOffset: wOff });
    // residual += the block's output projection of `src`: fused into the matmul (x += src·Wᵀ + b),
    // or, with a post-norm, projected into proj, normed into pn and added.
    const project = (src: GPUBuffer, l: Linear, postNorm: GPUBuffer | null) => {
      if (postNorm) {
        this.linear(src, l, proj!, T);
        norm(postNorm, null, pn!, proj!);
        addGpu(rt, { x: pn!, y: x, n: T * d });
      } else {
        this.linear(src, l, x, T, { accumulate: true });
      }
    };
    this.layers.forEach((layer, index) => {
      norm(layer.attnNorm, layer.attnNormB, xn);
      this.linear(xn, layer.q, q, T);
      this.linear(xn, layer.k, k, T);
      this.linear(xn, layer.v, v, T);
      // Per-head q/k RMSNorm (Qwen3): the norm kernel over [T·heads, hd] rows.
      let qa = q, ka = k;
      if (layer.qNorm) { normGpu(rt, { kind: 'rms', x: q, weight: layer.qNorm, out: qn!, rows: T * c.nHeads, d: c.headDim, eps: c.normEps, weightOffset: wOff }); qa = qn!; }
      if (layer.kNorm) { normGpu(rt, { kind: 'rms', x: k, weight: layer.kNorm, out: kn!, rows: T * c.nKvHeads, d: c.headDim, eps: c.normEps, weightOffset: wOff }); ka = kn!; }
      attend(layer, qa, ka, v, att, index);
      project(att, layer.o, layer.postAttnNorm);
      norm(layer.ffnNorm, layer.ffnNormB, xn);
      if (layer.gateUp) {
        this.linear(xn, layer.gateUp, h1, T, { glu: c.act === 'geglu' ? 'gelu_tanh' : 'silu' });
      } else {
        this.linear(xn, layer.up!, h1, T);
        geluGpu(rt, { x: h1, n: T * c.hiddenDim, kind: 'tanh' });
      }
      project(h1, layer.down, layer.postFfnNorm);
    });
    for (const b of [xn, q, k, v, att, proj, h1, qn, kn, pn]) if (b) rt.release(b);
  }

  /**
   * Per-token log-probs of each sequence (log p(ids[t] | ids[<t]) for t ≥ 1), and with `entropy`
   * each position's next-token entropy (the head kernels compute it either way; only its readback is optional).
   */
  async scoreBatch(seqs: SequenceRequest[], opts: ScoreOptions = {}): Promise<SequenceScores[]> {
    const { rt } = this;
    const c = this.config;
    const batch = packBatch(seqs, c.padId ?? 0);
    const { B, L } = batch;
    const T = B * L;
    // Position t predicts token t+1 of the same sequence; the last real position and pads are masked.
    const targets = new Uint32Array(T), mask = new Uint32Array(T);
    for (let b = 0; b < B; b++) {
      for (let i = 0; i + 1 < batch.seqLen[b]; i++) {
        targets[b * L + i] = batch.ids[b * L + i + 1];
        mask[b * L + i] = 1;
      }
    }
    checkTargets(targets, mask, c.vocabSize);
    const H = this.forwardHidden(batch);
    const tb = rt.upload(targets, 'targets'), mb = rt.upload(mask, 'mask');
    const logp = rt.acquire(T * 4, 'storage', 'logp');
    const entropy = opts.entropy ? rt.acquire(T * 4, 'storage', 'entropy') : undefined;
    logprobGpu(rt, { H, W: this.lmHead, targets: tb, mask: mb, logp, entropy, T, V: c.vocabSize, d: c.dim, variant: this.headVariant, softcap: c.finalSoftcap });
    const all = await rt.readF32(logp, T);
    const ent = entropy ? await rt.readF32(entropy, T) : null;
    for (const b of [H, tb, mb, logp, entropy]) if (b) rt.release(b);
    return seqs.map((s, b) => {
      const span = [b * L, b * L + Math.max(0, s.ids.length - 1)] as const;
      return ent ? { logprobs: all.slice(...span), entropy: ent.slice(...span) } : { logprobs: all.slice(...span) };
    });
  }

  /**
   * log p(candidates[j] | prompt) at each prompt's last position (LanguageModel.candidateLogprobs):
   * the prompts' prefill as one padded batch, their last rows gathered (the embedding kernel over
   * the hidden states as a table, as the decoder does), then the candidate head — the logprob
   * variant's pass 1 over those rows and the candidates' gather (kernels/logprob.ts); R·K floats
   * come back.
   */
  async candidateLogprobs(prompts: readonly (readonly number[])[], candidates: readonly number[]): Promise<Float64Array[]> {
    const { rt } = this;
    const c = this.config;
    const R = prompts.length, K = candidates.length, d = c.dim;
    if (!R) return [];
    checkCandidates(candidates, c.vocabSize);
    prompts.forEach((p, i) => { if (!p.length) throw new Error(`${c.name}: candidate log-probs: prompt ${i} is empty`); });
    const batch = padBatch(prompts, c.padId ?? 0);
    const H = this.forwardHidden(batch);
    const lastIdx = rt.upload(Uint32Array.from(batch.seqLen, (n, b) => b * batch.L + n - 1), 'candidates.last');
    const h = rt.acquire(R * d * 4, 'storage', 'candidates.hidden');
    embedGpu(rt, { ids: lastIdx, tokEmb: H, out: h, B: 1, L: R, d, vocabSize: batch.B * batch.L });
    const cb = rt.upload(Uint32Array.from(candidates), 'candidates.ids');
    const out = rt.acquire(R * K * 4, 'storage', 'candidates.logp');
    candidateLogprobGpu(rt, { H: h, W: this.lmHead, candidates: cb, out, R, K, V: c.vocabSize, d, variant: this.headVariant, softcap: c.finalSoftcap });
    const all = await rt.readF32(out, R * K);
    for (const b of [H, lastIdx, h, cb, out]) rt.release(b);
    return prompts.map((_, i) => Float64Array.from(all.subarray(i * K, (i + 1) * K)));
  }

  /** Final normed hidden states of each sequence, averaged over its positions. */
  async meanHidden(seqs: SequenceRequest[]): Promise<Float32Array[]> {
    const { rt } = this;
    const batch = packBatch(seqs, this.config.padId ?? 0);
    const d = this.config.dim;
    const H = this.forwardHidden(batch);
    // Pool on the GPU (kernels/pool.ts) so only B × d floats come back, not B × L × d.
    const seqLen = rt.upload(batch.seqLen, 'seqLen');
    const pooled = rt.acquire(batch.B * d * 4, 'storage', 'meanHidden');
    meanPoolGpu(rt, { x: H, seqLen, out: pooled, B: batch.B, L: batch.L, d });
    const all = await rt.readF32(pooled, batch.B * d);
    for (const b of [H, seqLen, pooled]) rt.release(b);
    return seqs.map((_, b) => all.slice(b * d, b * d + d));
  }

  /** Final normed hidden states [B·L, d] of a packed batch (for tests). */
  async hiddenStates(batch: PaddedBatch): Promise<Float32Array> {
    const H = this.forwardHidden(batch);
    const out = await this.rt.readF32(H, batch.B * batch.L * this.config.dim);
    this.rt.release(H);
    return out;
  }

  dispose(): void {
    for (const b of this.owned) this.rt.dropPersistent(b);
    this.owned = [];
  }
}
