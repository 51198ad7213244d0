// decode-attention: the decoder's kernels over a KV cache (src/models/decode-gpu.ts), with their
// CPU twins below (f64).
//
// KV cache layout, per layer: K and V each [slots, nKvHeads, maxLen, headDim] of KVT — f16 where
// the model's weights are f16 on the GPU (and the adapter has shader-f16), else f32. A decode step
// packs the tokens of every input (a prompt, or one token) as rows t with rows[t] = (slot,
// absolute position); no padding.
//   kvStoreGpu          shaders/decode/kv-store.wgsl: RoPE of q (out of place) and k at each row's
//                       own position; k and v written into the slot's cache at that position.
//   decodeAttentionGpu  shaders/decode/attention.wgsl + merge.wgsl: one query per row and head
//                       over the slot's cached keys [lo, pos] (causal; sliding window; soft-cap;
//                       score scale; grouped KV heads), split over the cache length in chunks of
//                       `chunk` positions (pass 1: per split max, sum, unnormalised P·V), merged
//                       exactly (pass 2). Prefill rows attend the keys this same step wrote.
//   logSoftmaxGpu       shaders/decode/log-softmax.wgsl: logits rows → log-probs (final soft-cap).
//   softcapGpu          shaders/decode/softcap.wgsl: the final-logit soft-cap before sampling
//                       (sampling itself: kernels/sample.ts).

import { ceilDiv, GpuRuntime, ProgramSpec, Uniforms } from '../src/gpu/runtime.js';
import { composeShader } from '../src/gpu/shaders.js';
import { checkRotaryDim, invFreqBuffer, ropeAttentionFactor, ropeInvFreq } from './rope.js';
import type { AttentionRope } from './attention.js';

/** Cache positions per split of the decode attention (a workgroup's chunk). */
export const DECODE_CHUNK = 256;
/** Largest head dim the decode attention stages in workgroup memory. */
export const DECODE_MAX_HEAD_DIM = 512;

const header = (f16: boolean): string => (f16 ? 'enable f16;\nalias KVT = f16;\n' : 'alias KVT = f32;\n');

export interface KvStoreArgs {
  /** f32 [T, nHeads·hd], read. */
  q: GPUBuffer;
  /** f32 [T, nKv·hd], read. */
  k: GPUBuffer;
  v: GPUBuffer;
  /** u32 pairs [T, 2]: (slot, absolute position) of each row. */
  rows: GPUBuffer;
  /** f32 [T, nHeads·hd], written: q rotated to each row's position. */
  qOut: GPUBuffer;
  /** KVT [slots, nKv, maxLen, hd]: k (rotated) and v written at (slot, ·, position). */
  kCache: GPUBuffer;
  vCache: GPUBuffer;
  T: number;
  nHeads: number;
  nKvHeads: number;
  headDim: number;
  maxLen: number;
  /** f16 cache (needs shader-f16). */
  f16: boolean;
  /** RoPE (after any q/k norm); none: q, k copied as they are. */
  rope?: AttentionRope;
}

const noRope = new WeakMap<GpuRuntime, GPUBuffer>();

/** Record the RoPE + cache write of a step. */
export function kvStoreGpu(rt: GpuRuntime, a: KvStoreArgs): void {
  if (a.f16 && !rt.hasF16) throw new Error('decode: an f16 KV cache needs the shader-f16 feature');
  const rd = a.rope ? (a.rope.rotaryDim ?? a.headDim) : 0;
  if (a.rope) checkRotaryDim(a.headDim, rd);
  const n = a.T * (a.nHeads + a.nKvHeads) * a.headDim;
  if (n === 0) return;
  let table = a.rope ? invFreqBuffer(rt, rd, a.rope.theta, a.rope.scaling) : noRope.get(rt);
  if (!table) noRope.set(rt, (table = rt.upload(new Float32Array(4), 'decode.no_rope')));
  const u = rt.uniform(new Uniforms().u32(a.T).u32(a.nHeads).u32(a.nKvHeads).u32(a.headDim).u32(rd)
    .f32(ropeAttentionFactor(a.rope?.scaling)).u32(a.maxLen).build(), 'decode.kv-store.params');
  const shader = composeShader(`decode/kv-store[kv=${a.f16 ? 'f16' : 'f32'}]`, header(a.f16), ['decode/kv-store', 'rope/sincos']);
  const spec: ProgramSpec = { shader, constants: { ROPE: a.rope ? 1 : 0, HALF: a.rope?.layout === 'half' ? 1 : 0 } };
  rt.dispatch(spec, [u, table, a.rows, a.q, a.k, a.v, a.qOut, a.kCache, a.vCache], ceilDiv(n, 64));
}

export interface DecodeAttentionArgs {
  /** f32 [R, nHeads·hd]: the queries (after RoPE). */
  q: GPUBuffer;
  /** u32 pairs [R, 2]: (slot, position); the row attends its slot's positions [lo, position]. */
  rows: GPUBuffer;
  kCache: GPUBuffer;
  vCache: GPUBuffer;
  /** f32 [R, nHeads·hd], written. */
  out: GPUBuffer;
  R: number;
  nHeads: number;
  nKvHeads: number;
  headDim: number;
  maxLen: number;
  /** Largest position among the rows (the number of splits launched covers it). */
  maxPos: number;
  f16: boolean;
  /** Sliding window counting the query (0: none). */
  window?: number;
  /** Score scale (default 1/sqrt(hd)). */
  scale?: number;
  /** Attention soft-cap (0: none). */
  softcap?: number;
  /** Cache positions per split (default DECODE_CHUNK); a power of two ≥ 64. */
  chunk?: number;
}

/** Splits the decode attention launches for positions up to maxPos. */
export const decodeSplits = (maxPos: number, chunk = DECODE_CHUNK): number => Math.max(1, ceilDiv(maxPos + 1, chunk));

/** Record out = softmax(q·K_cache) V_cache per row and head, in two passes (split, merge). */
export function decodeAttentionGpu(rt: GpuRuntime, a: DecodeAttentionArgs): void {
  const chunk = a.chunk ?? DECODE_CHUNK;
  if (chunk < 64 || chunk & (chunk - 1)) throw new Error(`decode attention: chunk ${chunk} must be a power of two ≥ 64`);
  if (a.nKvHeads < 1 || a.nHeads % a.nKvHeads) throw new Error(`decode attention: ${a.nHeads} heads is not a multiple of ${a.nKvHeads} KV heads`);
  if (a.headDim < 1 || a.headDim > DECODE_MAX_HEAD_DIM) throw new Error(`decode attention: head dim ${a.headDim} outside [1, ${DECODE_MAX_HEAD_DIM}]`);
  if (a.maxPos >= a.maxLen) throw new Error(`decode attention: position ${a.maxPos} beyond the cache's ${a.maxLen}`);
  if (a.f16 && !rt.hasF16) throw new Error('decode: an f16 KV cache needs the shader-f16 feature');
  const window = a.window ?? 0;
  if (!Number.isInteger(window) || window < 0) throw new Error(`decode attention: window ${window} must be a non-negative integer`);
  if (a.R === 0) return;
  const nSplit = decodeSplits(a.maxPos, chunk);
  const max = rt.limits.maxComputeWorkgroupsPerDimension;
  if (nSplit > max || a.nHeads > max || a.R > max) throw new Error(`decode attention: grid ${nSplit}×${a.nHeads}×${a.R} exceeds ${max} per dimension`);
  const hdMax = Math.max(16, ceilDiv(a.headDim, 16) * 16);
  const part = rt.acquire(a.R * a.nHeads * nSplit * (a.headDim + 2) * 4, 'storage', 'decode.partials');
  const scale = a.scale ?? 1 / Math.sqrt(a.headDim);
  const u = rt.uniform(new Uniforms().u32(a.R).u32(a.nHeads).u32(a.nKvHeads).u32(a.headDim).u32(a.maxLen).u32(nSplit)
    .f32(scale).u32(window).f32(a.softcap ?? 0).build(), 'decode.attention.params');
  const shader = composeShader(`decode/attention[chunk=${chunk},hd=${hdMax},kv=${a.f16 ? 'f16' : 'f32'}]`,
    `${header(a.f16)}const CHUNK = ${chunk}u;\nconst HD_MAX = ${hdMax}u;\n`, ['decode/attention']);
  rt.dispatch({ shader }, [u, a.rows, a.q, a.kCache, a.vCache, part], [nSplit, a.nHeads, a.R]);
  const um = rt.uniform(new Uniforms().u32(a.R).u32(a.nHeads).u32(a.headDim).u32(nSplit).build(), 'decode.merge.params');
  rt.dispatch({ shader: 'decode/merge' }, [um, part, a.out], ceilDiv(a.R * a.nHeads * a.headDim, 64));
  rt.release(part);
}

/** Record rows of logits [R, V] → log-probs in place (after the soft-cap when > 0). */
export function logSoftmaxGpu(rt: GpuRuntime, a: { x: GPUBuffer; R: number; V: number; softcap?: number }): void {
  if (a.R === 0) return;
  const u = rt.uniform(new Uniforms().u32(a.R).u32(a.V).f32(a.softcap ?? 0).build(), 'decode.log-softmax.params');
  rt.dispatch({ shader: 'decode/log-softmax' }, [u, a.x], a.R);
}

/** Record the final-logit soft-cap in place: x = cap·tanh(x / cap) over n logits (before sampling). */
export function softcapGpu(rt: GpuRuntime, a: { x: GPUBuffer; n: number; cap: number }): void {
  if (!(a.cap > 0)) throw new Error(`softcap: cap ${a.cap} must be positive`);
  if (a.n === 0) return;
  const u = rt.uniform(new Uniforms().u32(a.n).f32(a.cap).build(), 'decode.softcap.params');
  rt.dispatch({ shader: 'decode/softcap', constants: { WG: 256 } }, [u, a.x], ceilDiv(a.n, 256));
}

// ---- CPU twins ----

export interface KvCacheCpu {
  /** [slots, nKv, maxLen, hd] (values as the cache holds them: f16-rounded for an f16 cache). */
  k: Float32Array;
  v: Float32Array;
}

/**
 * Twin of kvStoreGpu: returns q rotated to each row's position; writes k (rotated) and v into
 * `cache` (rounded through f16 by `round` when the cache is f16). Angles as ropeCpu: the f32
 * product pos·inv_freq, cos and sin in f64.
 */
export function kvStoreCpu(q: Float32Array, k: Float32Array, v: Float32Array, rows: ArrayLike<number>, cache: KvCacheCpu,
  s: { T: number; nHeads: number; nKvHeads: number; headDim: number; maxLen: number; rope?: AttentionRope; round?: (x: number) => number }): Float32Array {
  const { T, nHeads, nKvHeads, headDim: hd, maxLen } = s;
  const rd = s.rope ? (s.rope.rotaryDim ?? hd) : 0;
  const invFreq = s.rope ? ropeInvFreq(rd, s.rope.theta, s.rope.scaling) : new Float32Array(0);
  const af = ropeAttentionFactor(s.rope?.scaling);
  const half = s.rope?.layout === 'half';
  const round = s.round ?? ((x: number) => x);
  const rot = (src: Float32Array, base: number, pos: number, dst: Float32Array | ((d: number, x: number) => void)) => {
    for (let d = 0; d < hd; d++) {
      let y = src[base + d];
      if (s.rope && d < rd) {
        const hh = rd / 2;
        const first = half ? d < hh : d % 2 === 0;
        const j = half ? (first ? d : d - hh) : d >> 1;
        const pd = half ? (first ? d + hh : d - hh) : d ^ 1;
        const angle = Math.fround(pos * invFreq[j]);
        const c = Math.cos(angle) * af, sn = Math.sin(angle) * af;
        const x = src[base + d], xp = src[base + pd];
        y = first ? x * c - xp * sn : xp * sn + x * c;
      }
      if (typeof dst === 'function') dst(d, y); else dst[base + d] = y;
    }
  };
  const qr = new Float32Array(q.length);
  for (let t = 0; t < T; t++) {
    const slot = rows[2 * t], pos = rows[2 * t + 1];
    if (pos >= maxLen) throw new Error(`decode: position ${pos} beyond the cache's ${maxLen}`);
    for (let h = 0; h < nHeads; h++) rot(q, (t * nHeads + h) * hd, pos, qr);
    for (let h = 0; h < nKvHeads; h++) {
      const dst = ((slot * nKvHeads + h) * maxLen + pos) * hd;
      rot(k, (t * nKvHeads + h) * hd, pos, (d, y) => { cache.k[dst + d] = round(y); });
      for (let d = 0; d < hd; d++) cache.v[dst + d] = round(v[(t * nKvHeads + h) * hd + d]);
    }
  }
  return qr;
}

/**
 * Twin of decodeAttentionGpu, the same split-and-merge algorithm in f64: per split of `chunk`
 * positions the max m, the sum l of exp(s - m) and Σ exp(s - m)·V, then the exact merge.
 */
export function decodeAttentionCpu(q: Float32Array, rows: ArrayLike<number>, cache: KvCacheCpu,
  s: { R: number; nHeads: number; nKvHeads: number; headDim: number; maxLen: number; window?: number; scale?: number; softcap?: number; chunk?: number }): Float32Array {
  const { R, nHeads, nKvHeads, headDim: hd, maxLen } = s;
  if (nHeads % nKvHeads) throw new Error(`decode attention: ${nHeads} heads is not a multiple of ${nKvHeads} KV heads`);
  const chunk = s.chunk ?? DECODE_CHUNK, window = s.window ?? 0, softcap = s.softcap ?? 0;
  const scale = s.scale ?? 1 / Math.sqrt(hd);
  const group = nHeads / nKvHeads;
  const out = new Float32Array(R * nHeads * hd);
  for (let r = 0; r < R; r++) {
    const slot = rows[2 * r], pos = rows[2 * r + 1];
    if (pos >= maxLen) throw new Error(`decode attention: position ${pos} beyond the cache's ${maxLen}`);
    const lo = window > 0 ? Math.max(0, pos + 1 - window) : 0;
    for (let h = 0; h < nHeads; h++) {
      const kvBase = (slot * nKvHeads + Math.floor(h / group)) * maxLen;
      const qo = (r * nHeads + h) * hd;
      const parts: { m: number; l: number; acc: Float64Array }[] = [];
      for (let c0 = 0; c0 <= pos; c0 += chunk) {
        const jLo = Math.max(lo, c0), jHi = Math.min(pos + 1, c0 + chunk);
        if (jLo >= jHi) continue;
        const sc: number[] = [];
        let m = -Infinity;
        for (let j = jLo; j < jHi; j++) {
          let dot = 0;
          for (let d = 0; d < hd; d++) dot += q[qo + d] * cache.k[(kvBase + j) * hd + d];
          let x = dot * scale;
          if (softcap > 0) x = softcap * Math.tanh(x / softcap);
          sc.push(x);
          m = Math.max(m, x);
        }
        const acc = new Float64Array(hd);
        let l = 0;
        for (let j = jLo; j < jHi; j++) {
          const e = Math.exp(sc[j - jLo] - m);
          l += e;
          for (let d = 0; d < hd; d++) acc[d] += e * cache.v[(kvBase + j) * hd + d];
        }
        parts.push({ m, l, acc });
      }
      const M = Math.max(...parts.map((p) => p.m));
      let L = 0;
      const acc = new Float64Array(hd);
      for (const p of parts) {
        const w = Math.exp(p.m - M);
        L += p.l * w;
        for (let d = 0; d < hd; d++) acc[d] += p.acc[d] * w;
      }
      for (let d = 0; d < hd; d++) out[qo + d] = parts.length ? acc[d] / L : 0;
    }
  }
  return out;
}

/** Twin of logSoftmaxGpu (f64). */
export function logSoftmaxCpu(x: Float32Array, R: number, V: number, softcap = 0): Float32Array {
  const out = new Float32Array(R * V);
  for (let r = 0; r < R; r++) {
    const row = Array.from(x.subarray(r * V, (r + 1) * V), (v) => (softcap > 0 ? softcap * Math.tanh(v / softcap) : v));
    const m = Math.max(...row);
    let s = 0;
    for (const v of row) s += Math.exp(v - m);
    const lse = m + Math.log(s);
    row.forEach((v, i) => { out[r * V + i] = v - lse; });
  }
  return out;
}

/** Twin of softcapGpu (f64 tanh). */
export function softcapCpu(x: Float32Array, cap: number): Float32Array {
  return x.map((v) => cap * Math.tanh(v / cap));
}
