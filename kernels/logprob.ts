// Fused LM-head log-likelihood: for every position t, log p(target_t) = h_t·w_target − logsumexp_v(h_t·w_v),
// without ever writing the T×V logits (shaders/logprob/partial.wgsl → combine.wgsl),
// plus the masked per-sequence sum, count and mean. The CPU twin below computes the same in f64.
//
// Why split over V: one workgroup per position would leave most of a large GPU idle for short
// batches (T of a few hundred) while each walks a 32k–152k vocabulary. Splitting V into S chunks
// gives T/ROWS × S workgroups; each writes a (max, sumexp) partial, merged exactly in pass 2.

import { ceilDiv, GpuRuntime, ProgramSpec, Uniforms } from '../src/gpu/runtime.js';
import { kernelVariant } from '../src/gpu/variants.js';
import { matmulCpu } from './matmul.js';

export const LOGPROB_ROWS = 8; // positions per workgroup (const ROWS in partial.wgsl)

export interface LogprobVariant {
  /** threads per workgroup, each owning one vocabulary entry of the current tile */
  wg?: number;
  f16?: boolean;
  /**
   * 'tiled' (partial.wgsl): W and H tiles staged through workgroup memory — for GPUs. 'direct'
   * (direct.wgsl): operands straight from storage, no barriers in the main loop — for
   * CPU-rasteriser adapters, where it measured ~25% faster. f16 weights take the tiled kernel.
   */
  kind?: 'tiled' | 'direct';
}

export function logprobSpecs(v: LogprobVariant = {}): { partial: ProgramSpec; combine: ProgramSpec } {
  const wg = v.wg ?? 64;
  return {
    partial: { shader: !v.f16 && v.kind === 'direct' ? 'logprob/direct' : 'logprob/partial', f16Weights: v.f16, constants: { WG: wg } },
    combine: { shader: 'logprob/combine', constants: { WG: 64 } },
  };
}

/** Workgroup memory of partial.wgsl: Hs [ROWS·DT] + Ws [WG·(DT+1)] + red [WG·ROWS] vec2 (DT = 32). */
export const logprobWorkgroupBytes = (wg: number): number => 4 * (LOGPROB_ROWS * 32 + wg * 33 + wg * LOGPROB_ROWS * 2);

/** How many vocabulary splits: enough workgroups to fill the device, at least WG entries each. */
export function vocabSplits(T: number, V: number, wg: number, targetWorkgroups = 512): { S: number; chunk: number } {
  const rowTiles = ceilDiv(T, LOGPROB_ROWS);
  const maxS = ceilDiv(V, wg);
  let S = Math.min(maxS, Math.max(1, ceilDiv(targetWorkgroups, rowTiles)));
  const chunk = ceilDiv(ceilDiv(V, S), wg) * wg;
  S = ceilDiv(V, chunk);
  return { S, chunk };
}

export interface LogprobArgs {
  /** hidden states [T, d], f32 */
  H: GPUBuffer;
  /** unembedding [V, d], f32 (or f16 with variant.f16) */
  W: GPUBuffer;
  /** target token id per position [T], u32 */
  targets: GPUBuffer;
  /** 1 where the position is scored, 0 elsewhere [T], u32 */
  mask: GPUBuffer;
  /** out: log p(target) per position [T], 0 where masked */
  logp: GPUBuffer;
  T: number;
  V: number;
  d: number;
  variant?: LogprobVariant;
  /** Final-logit soft-cap, softcap * tanh(logit / softcap), inside the online log-softmax (Gemma 2); 0/omitted: none. */
  softcap?: number;
}

/** Record the three passes. Scratch (partials, target logits) is pooled and recycled on submit. */
export function logprobGpu(rt: GpuRuntime, a: LogprobArgs): void {
  const variant: LogprobVariant = { kind: kernelVariant(rt, 'logprob', { T: a.T, V: a.V, d: a.d, f16: a.variant?.f16 }), ...a.variant };
  const wg = variant.wg ?? 64;
  const bytes = logprobWorkgroupBytes(wg);
  if (bytes > rt.limits.maxComputeWorkgroupStorageSize) {
    throw new Error(`logprob: WG=${wg} needs ${bytes} B of workgroup memory, above this device's ${rt.limits.maxComputeWorkgroupStorageSize}`);
  }
  const specs = logprobSpecs(variant);
  const { S, chunk } = vocabSplits(a.T, a.V, wg);
  const partial = rt.scratch(a.T * S * 8, 'logprob.partial');
  const tgt = rt.scratch(a.T * 4, 'logprob.tgt');
  if (a.softcap !== undefined && !(a.softcap >= 0)) throw new Error(`logprob: softcap ${a.softcap} must be >= 0`);
  const u1 = rt.uniform(new Uniforms().u32(a.T).u32(a.V).u32(a.d).u32(S).u32(chunk).f32(a.softcap ?? 0).u32(0).u32(0).build(), 'logprob.partial.params');
  rt.dispatch(specs.partial, [u1, a.H, a.W, a.targets, partial, tgt], ceilDiv(a.T, LOGPROB_ROWS) * S);
  const u2 = rt.uniform(new Uniforms().u32(a.T).u32(S).build(), 'logprob.combine.params');
  rt.dispatch(specs.combine, [u2, partial, tgt, a.mask, a.logp], ceilDiv(a.T, 64));
}

/** Check targets before upload: a masked-in target outside the vocabulary would never be found. */
export function checkTargets(targets: ArrayLike<number>, mask: ArrayLike<number>, V: number): void {
  for (let t = 0; t < targets.length; t++) {
    if (mask[t] && !(targets[t] >= 0 && targets[t] < V)) throw new Error(`logprob: target id ${targets[t]} at position ${t} is outside the vocabulary (V = ${V})`);
  }
}

export interface LogprobResult {
  logp: Float32Array;
  sum: Float64Array;
  count: Uint32Array;
  mean: Float64Array;
}

/**
 * CPU twin: f64 logits (blocked matmul over vocabulary tiles), soft-capped when softcap > 0,
 * max-subtracted logsumexp, masked reductions.
 */
export function logprobCpu(H: Float32Array, W: Float32Array, targets: ArrayLike<number>, mask: ArrayLike<number>, T: number, V: number, d: number, B = 1, L = T, softcap = 0): LogprobResult {
  checkTargets(targets, mask, V);
  // Only the scored rows are computed: gather them, then stream W in tiles of VT rows.
  const rows: number[] = [];
  for (let t = 0; t < T; t++) if (mask[t]) rows.push(t);
  const R = rows.length;
  const Hs = new Float32Array(R * d);
  rows.forEach((t, i) => Hs.set(H.subarray(t * d, t * d + d), i * d));
  const VT = 2048;
  const tile = new Float64Array(R * VT);
  const max = new Float64Array(R).fill(-Infinity), sum = new Float64Array(R), tgt = new Float64Array(R);
  for (let v0 = 0; v0 < V; v0 += VT) {
    const n = Math.min(VT, V - v0);
    const logits = matmulCpu(Hs, W.subarray(v0 * d, (v0 + n) * d), null, R, n, d, 'nk', tile.subarray(0, R * n));
    for (let i = 0; i < R; i++) {
      const row = logits.subarray(i * n, i * n + n);
      if (softcap > 0) for (let j = 0; j < n; j++) row[j] = softcap * Math.tanh(row[j] / softcap);
      let m = max[i];
      for (let j = 0; j < n; j++) if (row[j] > m) m = row[j];
      let s = sum[i] * Math.exp(max[i] - m); // rescale the running sum to the new max (0 at the start)
      for (let j = 0; j < n; j++) s += Math.exp(row[j] - m);
      max[i] = m;
      sum[i] = s;
      const target = targets[rows[i]];
      if (target >= v0 && target < v0 + n) tgt[i] = row[target - v0];
    }
  }
  const logp = new Float32Array(T);
  for (let i = 0; i < R; i++) logp[rows[i]] = tgt[i] - max[i] - Math.log(sum[i]);
  return { logp, ...reduceSequences(logp, mask, B, L) };
}

/** Masked per-sequence sum/count/mean over B sequences of L slots (shared by both twins' callers). */
export function reduceSequences(logp: ArrayLike<number>, mask: ArrayLike<number>, B: number, L: number): Omit<LogprobResult, 'logp'> {
  const sum = new Float64Array(B), mean = new Float64Array(B), count = new Uint32Array(B);
  for (let b = 0; b < B; b++) {
    for (let i = 0; i < L; i++) {
      const t = b * L + i;
      if (mask[t]) { sum[b] += logp[t]; count[b]++; }
    }
    mean[b] = count[b] ? sum[b] / count[b] : 0;
  }
  return { sum, count, mean };
}

/** FLOPs of the logits product (the part that dominates). */
export const logprobFlops = (T: number, V: number, d: number): number => 2 * T * V * d;
