// attention: causal self-attention with grouped KV heads and a per-sequence padding mask
// (bidirectional with causal: false, for BERT-style encoders), with the CPU twin below (two-pass
// softmax in f64). Two variants (src/gpu/variants.ts):
//   'direct' — shaders/attention.wgsl: one workgroup per (16-query block, head, sequence), 16-key
//              K/V tiles in workgroup memory, online softmax. Taken where 'flash' cannot take
//              the shape (head dims up to 128 that are not multiples of 4, or too little
//              workgroup memory), unless 'flash' is forced.
//   'flash'  — shaders/attention/flash.wgsl: 64-query blocks (each K/V tile reused by 4x more
//              queries), query and output in registers, the 4 lanes of a row summed by subgroup
//              shuffles when the device has 'subgroups' (workgroup memory otherwise), K/V tiles as
//              f16 in workgroup memory when kvF16, RoPE optionally fused into its prologue. The
//              default on every adapter (software ones too: it measured 2–4× 'direct' on lavapipe
//              and SwiftShader, bench/attention.ts) where the shape allows (head dim % 4 == 0, <= 256).

import { ceilDiv, GpuRuntime, ProgramSpec, Uniforms } from '../src/gpu/runtime.js';
import { composeShader } from '../src/gpu/shaders.js';
import { forcedVariant, kernelVariant, type VariantOf } from '../src/gpu/variants.js';
import { checkRotaryDim, invFreqBuffer, ropeAttentionFactor, ropeGpu, type RopeLayout, type RopeScaling } from './rope.js';

export type AttentionVariant = VariantOf<'attention'>;

/** Query rows per workgroup (fixed in the shader, with BK = 16 keys per tile and 256 invocations). */
export const ATTN_BQ = 16;
/** Largest head dim the shader's workgroup tiles and per-invocation accumulators hold. */
export const ATTN_MAX_HEAD_DIM = 128;

export function attentionSpec(causal = true): ProgramSpec {
  // The causal default keeps its original cache key; bidirectional sets the CAUSAL override.
  return causal ? { shader: 'attention' } : { shader: 'attention', constants: { CAUSAL: 0 } };
}

export interface AttentionArgs {
  /** f32 [B*L, nHeads*headDim] */
  q: GPUBuffer;
  /** f32 [B*L, nKvHeads*headDim] */
  k: GPUBuffer;
  /** f32 [B*L, nKvHeads*headDim] */
  v: GPUBuffer;
  /** u32 [B]: real length of each sequence (values above L count as L). */
  seqLen: GPUBuffer;
  /** f32 [B*L, nHeads*headDim], written; rows at positions >= seqLen[b] become zeros. */
  out: GPUBuffer;
  B: number;
  L: number;
  nHeads: number;
  nKvHeads: number;
  headDim: number;
  /** Mask keys after the query (default true); false: every real key is attended (encoders). */
  causal?: boolean;
  /**
   * Sliding window (causal only): query i attends keys j with i - window < j <= i, the window
   * counting the query itself (transformers masking_utils.py sliding_window_overlay:
   * kv_idx > q_idx - sliding_window). 0 or omitted: unlimited.
   */
  window?: number;
  /** Score scale (default 1/sqrt(headDim)); Gemma's query_pre_attn_scalar sets its own. */
  scale?: number;
  /** Soft-cap of the scaled scores, softcap * tanh(s / softcap) (Gemma 2); 0 or omitted: none. */
  softcap?: number;
  /** Kernel variant; default kernelVariant(rt, 'attention'), falling back to 'direct' where an unforced 'flash' cannot take the shape. */
  variant?: AttentionVariant;
  /** 'flash': hold K/V tiles as f16 in workgroup memory (needs shader-f16). Default false. */
  kvF16?: boolean;
  /** 'flash': use subgroup shuffles (default: when the device has 'subgroups'; true without it is an error). */
  subgroups?: boolean;
  /**
   * Rotate q and k by RoPE first (position = index within the sequence). 'flash' fuses it into its
   * prologue and leaves the q and k buffers untouched; 'direct' runs ropeGpu first, rotating q and
   * k in place. Either way the result is ropeGpu's rotation followed by attention.
   */
  rope?: AttentionRope;
}

/** RoPE parameters as kernels/rope.ts takes them. */
export interface AttentionRope {
  theta: number;
  layout: RopeLayout;
  scaling?: RopeScaling | null;
  /** Leading dims of each head that rotate; default headDim. */
  rotaryDim?: number;
}

/** Query rows per workgroup of the 'flash' variant. */
export const FLASH_BQ = 64;
/** Largest head dim of the 'flash' variant (its per-lane registers are sized to the head dim). */
export const FLASH_MAX_HEAD_DIM = 256;

export interface FlashConfig { hdMax: number; bk: number; workgroupBytes: number }

/** Tile configuration of 'flash' for a head dim on this adapter, or the reason it cannot run. */
export function flashConfig(rt: GpuRuntime, headDim: number, kvF16: boolean): FlashConfig | string {
  if (headDim % 4) return `head dim ${headDim} is not a multiple of 4`;
  if (headDim < 4 || headDim > FLASH_MAX_HEAD_DIM) return `head dim ${headDim} outside [4, ${FLASH_MAX_HEAD_DIM}]`;
  const hdMax = ceilDiv(headDim, 16) * 16;
  const limit = rt.limits.maxComputeWorkgroupStorageSize;
  // Ks + Vs (BK rows of hdMax KVT each) + the 256-vec4f reduction buffer + the lane-layout flag.
  // No 8-key tiles: lavapipe took over two minutes to compile hd 256 with them (measured).
  for (const bk of [32, 16]) {
    const workgroupBytes = 2 * bk * hdMax * (kvF16 ? 2 : 4) + 256 * 16 + 16;
    if (workgroupBytes <= limit) return { hdMax, bk, workgroupBytes };
  }
  return `head dim ${headDim} needs more than the adapter's ${limit} bytes of workgroup memory even with 16-key tiles (f16 K/V, kvF16, halves it)`;
}

function flashShader(cfg: FlashConfig, kvF16: boolean, sg: boolean): string {
  const name = `attention/flash[hd=${cfg.hdMax},bk=${cfg.bk}${kvF16 ? ',kv=f16' : ''}${sg ? ',subgroups' : ''}]`;
  const header = (kvF16 ? 'enable f16;\n' : '') + (sg ? 'enable subgroups;\ndiagnostic(off, subgroup_uniformity);\n' : '') +
    `const HD_MAX = ${cfg.hdMax}u;\nconst BK = ${cfg.bk}u;\nalias KVT = ${kvF16 ? 'f16' : 'f32'};\n\n`;
  return composeShader(name, header, ['attention/flash', sg ? 'attention/flash-lanes-subgroup' : 'attention/flash-lanes-plain', 'rope/sincos']);
}

/** The variant attentionGpu runs for these arguments. */
export function attentionVariantFor(rt: GpuRuntime, a: Pick<AttentionArgs, 'variant' | 'headDim' | 'kvF16'> & Partial<AttentionArgs>): AttentionVariant {
  if (a.variant) return a.variant;
  const v = kernelVariant(rt, 'attention', a);
  const forced = forcedVariant('attention') !== undefined;
  // Not forced and flash cannot take the shape: the 16-query kernel, where it can (head dims up to
  // ATTN_MAX_HEAD_DIM, f32 K/V); otherwise flash, so that its own error says why (e.g. Gemma's head
  // dim 256 in f32 needs more workgroup memory than this adapter has; kvF16 would fit).
  if (v === 'flash' && !forced && typeof flashConfig(rt, a.headDim, a.kvF16 ?? false) === 'string' && a.headDim <= ATTN_MAX_HEAD_DIM && !a.kvF16) return 'direct';
  return v;
}

// A 16-byte table bound as inv_freq when no RoPE is fused (the binding exists in every pipeline).
const noRopeTables = new WeakMap<GpuRuntime, GPUBuffer>();

/** Record O = softmax(Q K^T · scale + causal/window/pad mask) V (after RoPE of q and k with `rope`). */
export function attentionGpu(rt: GpuRuntime, a: AttentionArgs): void {
  const variant = attentionVariantFor(rt, a);
  if (variant === 'flash') return flashGpu(rt, a);
  if (variant !== 'direct') throw new Error(`attention: unknown variant '${variant as string}'`);
  if (a.kvF16) throw new Error("attention: kvF16 needs the 'flash' variant");
  if (a.headDim < 1 || a.headDim > ATTN_MAX_HEAD_DIM) throw new Error(`attention: head dim ${a.headDim} outside [1, ${ATTN_MAX_HEAD_DIM}]`);
  if (a.nKvHeads < 1 || a.nHeads % a.nKvHeads) throw new Error(`attention: ${a.nHeads} heads is not a multiple of ${a.nKvHeads} KV heads`);
  const grid: [number, number, number] = [ceilDiv(a.L, ATTN_BQ), a.nHeads, a.B];
  const max = rt.limits.maxComputeWorkgroupsPerDimension;
  if (grid.some((g) => g > max)) throw new Error(`attention: grid ${grid.join('×')} exceeds ${max} per dimension`);
  const window = checkWindow(a.window, a.causal ?? true);
  if (grid.some((g) => g === 0)) return;
  // Unfused RoPE: the in-place rope kernel first (after every check, so an error changes nothing).
  if (a.rope) {
    ropeGpu(rt, { q: a.q, k: a.k, B: a.B, L: a.L, nHeads: a.nHeads, nKvHeads: a.nKvHeads, headDim: a.headDim, theta: a.rope.theta, layout: a.rope.layout, scaling: a.rope.scaling, rotaryDim: a.rope.rotaryDim });
  }
  const scale = a.scale ?? 1 / Math.sqrt(a.headDim);
  const u = rt.uniform(new Uniforms().u32(a.B).u32(a.L).u32(a.nHeads).u32(a.nKvHeads).u32(a.headDim).f32(scale).u32(window).f32(a.softcap ?? 0).build(), 'attention.params');
  rt.dispatch(attentionSpec(a.causal ?? true), [u, a.q, a.k, a.v, a.seqLen, a.out], grid);
}

function flashGpu(rt: GpuRuntime, a: AttentionArgs): void {
  const kvF16 = a.kvF16 ?? false;
  const cfg = flashConfig(rt, a.headDim, kvF16);
  if (typeof cfg === 'string') throw new Error(`attention 'flash': ${cfg}`);
  if (a.nKvHeads < 1 || a.nHeads % a.nKvHeads) throw new Error(`attention: ${a.nHeads} heads is not a multiple of ${a.nKvHeads} KV heads`);
  if (kvF16 && !rt.hasF16) throw new Error("attention 'flash': kvF16 needs the shader-f16 feature");
  const hasSg = rt.device.features.has('subgroups');
  const sg = a.subgroups ?? hasSg;
  if (sg && !hasSg) throw new Error("attention 'flash': subgroups requested but the device has no 'subgroups' feature");
  const grid: [number, number, number] = [ceilDiv(a.L, FLASH_BQ), a.nHeads, a.B];
  const max = rt.limits.maxComputeWorkgroupsPerDimension;
  if (grid.some((g) => g > max)) throw new Error(`attention: grid ${grid.join('×')} exceeds ${max} per dimension`);
  const causal = a.causal ?? true;
  const window = checkWindow(a.window, causal);
  const rd = a.rope ? (a.rope.rotaryDim ?? a.headDim) : 0;
  if (a.rope) {
    checkRotaryDim(a.headDim, rd);
    if (a.q === a.k) throw new Error('attention: fused rope needs different q and k buffers');
  }
  if (grid.some((g) => g === 0)) return;
  const scale = a.scale ?? 1 / Math.sqrt(a.headDim);
  const u = rt.uniform(new Uniforms().u32(a.B).u32(a.L).u32(a.nHeads).u32(a.nKvHeads).u32(a.headDim).f32(scale).u32(window).f32(a.softcap ?? 0)
    .u32(rd).f32(ropeAttentionFactor(a.rope?.scaling)).build(), 'attention.params');
  let table = a.rope ? invFreqBuffer(rt, rd, a.rope.theta, a.rope.scaling) : noRopeTables.get(rt);
  if (!table) noRopeTables.set(rt, (table = rt.upload(new Float32Array(4), 'attention.no_rope')));
  const spec: ProgramSpec = {
    shader: flashShader(cfg, kvF16, sg),
    constants: { CAUSAL: causal ? 1 : 0, ROPE: a.rope ? 1 : 0, HALF: a.rope?.layout === 'half' ? 1 : 0 },
  };
  rt.dispatch(spec, [u, a.q, a.k, a.v, a.seqLen, a.out, table], grid);
}

function checkWindow(window: number | undefined, causal: boolean): number {
  const w = window ?? 0;
  if (!Number.isInteger(w) || w < 0) throw new Error(`attention: window ${w} must be a non-negative integer`);
  if (w > 0 && !causal) throw new Error('attention: a sliding window needs causal attention');
  return w;
}

export interface AttentionCpuOptions { window?: number; scale?: number; softcap?: number }

/**
 * One query row of the CPU twin: max-subtracted softmax over keys first..last, sums in f64, the
 * result written to out[qo .. qo+hd). Key j's row starts at kBase + j·kvs in k and v. attentionCpu
 * and the decoder's twin (src/models/forward-cpu.ts attendCachedCpu) both call it, so a prefill
 * through the KV cache equals the full-sequence forward bit for bit.
 */
export function attendRowCpu(q: Float32Array, qo: number, k: Float32Array, v: Float32Array, kBase: number, kvs: number, first: number, last: number, hd: number, scale: number, softcap: number, scores: Float64Array, acc: Float64Array, out: Float32Array): void {
  let m = -Infinity;
  for (let j = first; j <= last; j++) {
    const ko = kBase + j * kvs;
    let s = 0;
    for (let d = 0; d < hd; d++) s += q[qo + d] * k[ko + d];
    scores[j] = softcap > 0 ? softcap * Math.tanh((s * scale) / softcap) : s * scale;
    m = Math.max(m, scores[j]);
  }
  let sum = 0;
  acc.fill(0);
  for (let j = first; j <= last; j++) {
    const p = Math.exp(scores[j] - m);
    sum += p;
    const vo = kBase + j * kvs;
    for (let d = 0; d < hd; d++) acc[d] += p * v[vo + d];
  }
  for (let d = 0; d < hd; d++) out[qo + d] = acc[d] / sum;
}

/** CPU twin: per query row, max-subtracted softmax over its allowed keys, sums in f64. */
export function attentionCpu(q: Float32Array, k: Float32Array, v: Float32Array, seqLen: ArrayLike<number>, B: number, L: number, nHeads: number, nKvHeads: number, headDim: number, causal = true, opts: AttentionCpuOptions = {}): Float32Array {
  if (nHeads % nKvHeads) throw new Error(`attention: ${nHeads} heads is not a multiple of ${nKvHeads} KV heads`);
  const window = checkWindow(opts.window, causal);
  const hd = headDim, qs = nHeads * hd, kvs = nKvHeads * hd, group = nHeads / nKvHeads;
  const scale = opts.scale ?? 1 / Math.sqrt(hd);
  const softcap = opts.softcap ?? 0;
  const out = new Float32Array(B * L * qs);
  const scores = new Float64Array(L);
  const acc = new Float64Array(hd);
  for (let b = 0; b < B; b++) {
    const len = Math.min(seqLen[b], L);
    for (let h = 0; h < nHeads; h++) {
      const kvh = Math.floor(h / group);
      for (let i = 0; i < len; i++) {
        const last = causal ? i : len - 1;
        const first = window > 0 ? Math.max(0, i - window + 1) : 0;
        attendRowCpu(q, (b * L + i) * qs + h * hd, k, v, b * L * kvs + kvh * hd, kvs, first, last, hd, scale, softcap, scores, acc, out);
      }
      // Rows i >= len stay zero (pads).
    }
  }
  return out;
}
