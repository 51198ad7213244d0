// Fused LM-head log-likelihood: for every position t, log p(target_t) = h_t·w_target − logsumexp_v(h_t·w_v),
// without ever writing the T×V logits (pass 1: shaders/logprob/gemm.wgsl on hardware GPUs — a
// register-blocked GEMM with the online softmax in its epilogue —, partial.wgsl or, on software
// adapters, direct.wgsl; pass 2: combine.wgsl), plus the masked per-sequence sum, count and mean.
// The CPU twin below computes the same in f64.
//
// The candidate variant (candidateLogprobGpu, for the rating prompts): the same pass 1 over one
// row per prompt, then candidates.wgsl merges the splits and gathers the logits of K candidate ids:
// K log-probs per row, no T×V logits, nothing of size V read back. Twin: candidateLogprobCpu.
//
// Why split over V: one workgroup per position would leave most of a large GPU idle for short
// batches (T of a few hundred) while each walks a 32k–152k vocabulary. Splitting V into S chunks
// gives ⌈T/rows⌉ × S workgroups (rows = 8, or the gemm tile's 64); each writes an online-softmax partial
// (m, s = Σ e^(z−m), t = Σ (z−m)·e^(z−m)), merged exactly in pass 2 into the log-sum-exp and the
// entropy of the next-token distribution (log s − t/s), which every variant computes on the way.

import { ceilDiv, GpuRuntime, ProgramSpec, Uniforms } from '../src/gpu/runtime.js';
import { composeShader, composeWordShader } from '../src/gpu/shaders.js';
import { dequantize } from '../src/quant/dequant.js';
import { ggmlTypeName, TYPE_LAYOUT, type GgmlType } from '../src/quant/types.js';
import { kernelVariant, tunedConfig } from '../src/gpu/variants.js';
import { matmulCpu } from './matmul.js';
import { randomQuantBlocks, uploadQuantWeight, type QuantMatmulType } from './matmul-quant.js';
import { validate, type ValidateResult } from '../src/validate.js';
import { rng } from '../src/util/rng.js';
import { roundThroughF16, toF16 } from '../src/util/f16.js';

export const LOGPROB_ROWS = 8; // positions per workgroup (const ROWS in partial.wgsl)

/**
 * Tile configuration of the 'gemm' kernel (shaders/logprob/gemm.wgsl, WGSL override constants):
 * bm positions × bn vocabulary entries per workgroup, K step bk; each thread an 8 × 4 block, so
 * (bm/8)·(bn/4) threads.
 */
export interface LogprobGemmConfig { bm: number; bn: number; bk: number }

export const LOGPROB_GEMM_DEFAULT: LogprobGemmConfig = { bm: 64, bn: 128, bk: 32 };
/** For short batches (T ≤ 32) half the rows: W is still read once, and half the FLOPs are not wasted on padding rows. */
export const LOGPROB_GEMM_SHORT: LogprobGemmConfig = { bm: 32, bn: 128, bk: 32 };

export interface LogprobVariant {
  /** threads per workgroup, each owning one vocabulary entry of the current tile ('tiled', 'direct') */
  wg?: number;
  f16?: boolean;
  /**
   * 'tiled' (partial.wgsl): W and H tiles staged through workgroup memory, 8 positions per
   * workgroup. 'direct' (direct.wgsl): operands straight from storage, no barriers in the main
   * loop — for CPU-rasteriser adapters, where it measured ~25% faster; f16 weights take the tiled
   * kernel. 'gemm' (gemm.wgsl): a register-blocked GEMM, `gemm` positions × vocabulary entries per
   * workgroup, 8 × 4 per thread, online softmax in the epilogue — the hardware-GPU default.
   * 'sgmat' (sgmat.wgsl): EXPERIMENTAL, the same on the matrix units (subgroup matrices, f16
   * operands — H too — and f32 accumulators); only where the adapter lists the configuration, never
   * a default, and to be checked with validateLogprobVariant on the device before use.
   */
  kind?: 'tiled' | 'direct' | 'gemm' | 'sgmat';
  /** tile sizes of the 'gemm' kernel (default: logprobGemmConfigFor(T, limits)) */
  gemm?: LogprobGemmConfig;
  /** workgroups to aim for when splitting the vocabulary (default 512; 1: no split) — see vocabSplits */
  targetWorkgroups?: number;
  /**
   * W holds GGUF blocks of this ggml type (Q8_0 8, Q4_0 2, Q4_K 12, Q6_K 14: a Q4_K_M file's
   * output.weight is Q6_K), dequantized as the 'tiled' kernel loads its W tiles
   * (logprob/partial-load-q); d must be a multiple of the type's block. Implies kind 'tiled'.
   */
  qtype?: number;
}

/** The ggml types the LM head reads as blocks (kernels/matmul-quant.ts QUANT_MATMUL_TYPES). */
export const LOGPROB_QUANT_TYPES = [8, 2, 12, 14] as const;

/** Threads per workgroup of a gemm configuration. */
export const gemmThreads = (c: LogprobGemmConfig): number => (c.bm / 8) * (c.bn / 4);

/** Workgroup memory of gemm.wgsl: Hs [bm][bk/4+1] + Ws [bn][bk/4+1] vec4 + red [threads] vec2 + redt [threads] f32. */
export const gemmWorkgroupBytes = (c: LogprobGemmConfig): number => 16 * (c.bm + c.bn) * (c.bk / 4 + 1) + 12 * gemmThreads(c);

/** Why a gemm configuration cannot run on a device with these limits (null: it can). */
export function gemmConfigProblem(c: LogprobGemmConfig, limits: Pick<GPUSupportedLimits, 'maxComputeWorkgroupStorageSize' | 'maxComputeInvocationsPerWorkgroup' | 'maxComputeWorkgroupSizeX'>): string | null {
  const pow2 = (n: number) => Number.isInteger(n) && n > 0 && (n & (n - 1)) === 0;
  if (!(Number.isInteger(c.bm) && c.bm >= 8 && c.bm % 8 === 0)) return `bm=${c.bm} must be a positive multiple of 8`;
  if (!(c.bn >= 4 && c.bn % 4 === 0 && pow2(c.bn / 4))) return `bn=${c.bn} must be 4 × a power of two`;
  if (!(Number.isInteger(c.bk) && c.bk >= 4 && c.bk % 4 === 0)) return `bk=${c.bk} must be a positive multiple of 4`;
  const threads = gemmThreads(c);
  const maxThreads = Math.min(limits.maxComputeInvocationsPerWorkgroup, limits.maxComputeWorkgroupSizeX);
  if (threads > maxThreads) return `bm=${c.bm} bn=${c.bn} needs ${threads} threads per workgroup, above this device's ${maxThreads}`;
  const bytes = gemmWorkgroupBytes(c);
  if (bytes > limits.maxComputeWorkgroupStorageSize) return `bm=${c.bm} bn=${c.bn} bk=${c.bk} needs ${bytes} B of workgroup memory, above this device's ${limits.maxComputeWorkgroupStorageSize}`;
  return null;
}

/** The gemm tile configurations valid within a device's limits (candidates for the autotuner), default first. */
export function logprobGemmConfigs(limits: Parameters<typeof gemmConfigProblem>[1]): LogprobGemmConfig[] {
  const out: LogprobGemmConfig[] = [LOGPROB_GEMM_DEFAULT];
  for (const bm of [32, 64, 128]) for (const bn of [64, 128, 256]) for (const bk of [16, 32]) {
    if (!out.some((c) => c.bm === bm && c.bn === bn && c.bk === bk)) out.push({ bm, bn, bk });
  }
  return out.filter((c) => gemmConfigProblem(c, limits) === null);
}

/** Workgroup memory of sgmat.wgsl: Hs + Ws (64 × 32 f16 each) + Ls (64 × 64 f32) + red (128 vec2) + redt (128 f32). */
export const SGMAT_WORKGROUP_BYTES = 2 * 2 * 64 * 32 + 4 * 64 * 64 + 12 * 128;
export const SGMAT_FEATURE = 'chromium-experimental-subgroup-matrix';

/**
 * Why the 'sgmat' kernel cannot run on this device (null: it can), and the subgroup size it is
 * compiled for. Needs the subgroup-matrix feature (Dawn: behind the allow_unsafe_apis toggle; no
 * software adapter has it), shader-f16, an f16 → f32 16 × 16 × 16 configuration in
 * adapter.info.subgroupMatrixConfigs, and one fixed subgroup size of at least 32.
 */
export function sgmatProblem(rt: GpuRuntime): { problem: string | null; sg: number } {
  const h = rt.handle; // subgroup sizes and matrix configurations as src/gpu/device.ts read them
  const sg = h.subgroupMaxSize ?? 0;
  if (!rt.device.features.has(SGMAT_FEATURE as GPUFeatureName)) {
    return { problem: `the device has no '${SGMAT_FEATURE}' feature (no software adapter offers it; Dawn exposes it only with the allow_unsafe_apis toggle, see CONCORD_DAWN_ENABLE)`, sg };
  }
  if (!rt.hasF16) return { problem: 'the device has no shader-f16 feature', sg };
  const configs = h.subgroupMatrixConfigs ?? [];
  if (!configs.some((c) => c.componentType === 'f16' && c.resultComponentType === 'f32' && c.M === 16 && c.N === 16 && c.K === 16)) {
    const listed = configs.map((c) => `${c.componentType}→${c.resultComponentType} ${c.M}×${c.N}×${c.K}`).join(', ') || 'none';
    return { problem: `the adapter lists no f16→f32 16×16×16 subgroup-matrix configuration (it lists: ${listed})`, sg };
  }
  if (!(sg >= 32 && h.subgroupMinSize === sg)) return { problem: `the kernel needs one fixed subgroup size ≥ 32 (adapter: ${h.subgroupMinSize}–${h.subgroupMaxSize})`, sg };
  if (4 * sg > rt.limits.maxComputeInvocationsPerWorkgroup) return { problem: `${4 * sg} threads per workgroup exceed this device's ${rt.limits.maxComputeInvocationsPerWorkgroup}`, sg };
  if (SGMAT_WORKGROUP_BYTES > rt.limits.maxComputeWorkgroupStorageSize) return { problem: `${SGMAT_WORKGROUP_BYTES} B of workgroup memory exceed this device's ${rt.limits.maxComputeWorkgroupStorageSize}`, sg };
  return { problem: null, sg };
}

/** Program specs of a variant; `sg` is the subgroup size the 'sgmat' kernel is compiled for. */
/** The gemm tiles used when none is given: LOGPROB_GEMM_SHORT for T ≤ 32, else LOGPROB_GEMM_DEFAULT (when the device allows). */
export function logprobGemmConfigFor(T: number, limits: Parameters<typeof gemmConfigProblem>[1]): LogprobGemmConfig {
  return T <= LOGPROB_GEMM_SHORT.bm && gemmConfigProblem(LOGPROB_GEMM_SHORT, limits) === null ? LOGPROB_GEMM_SHORT : LOGPROB_GEMM_DEFAULT;
}

/** A tuned config record as a gemm configuration (null unless it has numeric bm, bn, bk). */
function asGemmConfig(c: Readonly<Record<string, unknown>> | undefined): LogprobGemmConfig | null {
  return c && typeof c.bm === 'number' && typeof c.bn === 'number' && typeof c.bk === 'number' ? { bm: c.bm, bn: c.bn, bk: c.bk } : null;
}

/** A pass-1 shader with what every variant shares (shaders/logprob/common.wgsl) composed after it (and partial's W tile load). */
const withCommon = (shader: string): string => composeShader(`${shader}+common`, '', [shader, ...(shader === 'logprob/partial' ? ['logprob/partial-load'] : []), 'logprob/common']);

const COMBINE: ProgramSpec = { shader: 'logprob/combine', constants: { WG: 64 } };

export function logprobSpecs(v: LogprobVariant = {}, sg?: number): { partial: ProgramSpec; combine: ProgramSpec } {
  const wg = v.wg ?? 64;
  const combine = COMBINE;
  if (v.qtype !== undefined) {
    // GGUF blocks: the tiled kernel with the block-reading W tile load.
    const shader = composeWordShader('logprob/partial+q+common', ['logprob/partial', 'logprob/partial-load-q', 'logprob/common']);
    return { partial: { shader, constants: { WG: wg, QTYPE: v.qtype } }, combine };
  }
  if (v.kind === 'sgmat') {
    return { partial: { shader: withCommon('logprob/sgmat'), f16Weights: v.f16, constants: { SG: sg ?? 32 } }, combine };
  }
  if (v.kind === 'gemm') {
    const g = v.gemm ?? LOGPROB_GEMM_DEFAULT;
    return { partial: { shader: withCommon('logprob/gemm'), f16Weights: v.f16, constants: { BM: g.bm, BN: g.bn, BK: g.bk } }, combine };
  }
  return {
    partial: { shader: withCommon(!v.f16 && v.kind === 'direct' ? 'logprob/direct' : 'logprob/partial'), f16Weights: v.f16, constants: { WG: wg } },
    combine,
  };
}

/** Workgroup memory of partial.wgsl: Hs [ROWS·DT] + Ws [WG·(DT+1)] + red [WG·ROWS] vec2 + redt [WG·ROWS] f32 (DT = 32). */
export const logprobWorkgroupBytes = (wg: number): number => 4 * (LOGPROB_ROWS * 32 + wg * 33 + wg * LOGPROB_ROWS * 3);

/**
 * How many vocabulary splits: enough workgroups (⌈T/rows⌉ · S) to fill the device, at least one
 * vocabulary tile of `tileV` entries each; chunk (entries per split) is a multiple of tileV.
 */
export function vocabSplits(T: number, V: number, tileV: number, targetWorkgroups = 512, rows = LOGPROB_ROWS): { S: number; chunk: number } {
  const rowTiles = ceilDiv(T, rows);
  const maxS = ceilDiv(V, tileV);
  let S = Math.min(maxS, Math.max(1, ceilDiv(targetWorkgroups, rowTiles)));
  const chunk = ceilDiv(ceilDiv(V, S), tileV) * tileV;
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
  /** out (optional): entropy of the next-token distribution per position [T], nats, 0 where masked (computed by every variant either way; omitted: not written out) */
  entropy?: GPUBuffer;
  T: number;
  V: number;
  d: number;
  variant?: LogprobVariant;
  /** Final-logit soft-cap, softcap * tanh(logit / softcap), inside the online log-softmax (Gemma 2); 0/omitted: none. */
  softcap?: number;
}

/** Record the three passes. Scratch (partials, target logits) is pooled and recycled on submit. */
export function logprobGpu(rt: GpuRuntime, a: LogprobArgs): void {
  const { partial, tgt, S } = recordPartials(rt, a, 'logprob');
  const u2 = rt.uniform(new Uniforms().u32(a.T).u32(S).build(), 'logprob.combine.params');
  const ent = a.entropy ?? rt.scratch(a.T * 4, 'logprob.entropy');
  rt.dispatch(COMBINE, [u2, partial, tgt, a.mask, a.logp, ent], ceilDiv(a.T, 64));
}

/**
 * Pass 1 of every head: the chosen variant streams the vocabulary over the T rows of H, in S
 * splits, and writes each (row, split)'s online-softmax state into `partial` [T, S] (and a target's
 * logit into `tgt` [T] when it passes by). Both scratch, recycled on submit.
 */
function recordPartials(rt: GpuRuntime, a: Pick<LogprobArgs, 'H' | 'W' | 'targets' | 'T' | 'V' | 'd' | 'variant' | 'softcap'>, op: string): { partial: GPUBuffer; tgt: GPUBuffer; S: number } {
  const shape = { T: a.T, V: a.V, d: a.d, f16: a.variant?.f16 };
  const variant: LogprobVariant = { kind: kernelVariant(rt, 'logprob', shape), ...a.variant };
  if (variant.qtype !== undefined) {
    if (!(LOGPROB_QUANT_TYPES as readonly number[]).includes(variant.qtype)) throw new Error(`${op}: LM head of ggml type ${ggmlTypeName(variant.qtype)} cannot be read as blocks (${LOGPROB_QUANT_TYPES.map(ggmlTypeName).join(', ')})`);
    const be = TYPE_LAYOUT[variant.qtype as GgmlType].blockElems;
    if (a.d % be) throw new Error(`${op}: d = ${a.d} is not a multiple of the ${ggmlTypeName(variant.qtype)} block size ${be}`);
    if (variant.f16) throw new Error(`${op}: a quantized LM head has no f16 form`);
    variant.kind = 'tiled';
  }
  if (a.softcap !== undefined && !(a.softcap >= 0)) throw new Error(`${op}: softcap ${a.softcap} must be >= 0`);
  if (variant.f16 && !rt.hasF16) throw new Error(`${op}: f16 weights need the shader-f16 feature, which this device (${rt.name}) lacks`);
  let rows: number, tileV: number, sg: number | undefined;
  if (variant.kind === 'sgmat') {
    const check = sgmatProblem(rt);
    if (check.problem) throw new Error(`${op}: variant 'sgmat' cannot run on this device (${rt.name}): ${check.problem}`);
    rows = 64;
    tileV = 64;
    sg = check.sg;
  } else if (variant.kind === 'gemm') {
    // Tiles: the caller's, else the autotuner's winner for this shape class, else by T.
    const g = (variant.gemm ??= asGemmConfig(tunedConfig(rt, 'logprob', shape, 'gemm')) ?? logprobGemmConfigFor(a.T, rt.limits));
    const problem = gemmConfigProblem(g, rt.limits);
    if (problem) throw new Error(`${op}: variant 'gemm' cannot run on this device (${rt.name}): ${problem}`);
    rows = g.bm;
    tileV = g.bn;
  } else {
    const wg = variant.wg ?? 64;
    const bytes = logprobWorkgroupBytes(wg);
    if (bytes > rt.limits.maxComputeWorkgroupStorageSize) {
      throw new Error(`${op}: WG=${wg} needs ${bytes} B of workgroup memory, above this device's ${rt.limits.maxComputeWorkgroupStorageSize}`);
    }
    rows = LOGPROB_ROWS;
    tileV = wg;
  }
  const specs = logprobSpecs(variant, sg);
  const { S, chunk } = vocabSplits(a.T, a.V, tileV, variant.targetWorkgroups ?? 512, rows);
  const partial = rt.scratch(a.T * S * 16, `${op}.partial`); // (m, s, t, 0) per position and split
  const tgt = rt.scratch(a.T * 4, `${op}.tgt`);
  const u1 = rt.uniform(new Uniforms().u32(a.T).u32(a.V).u32(a.d).u32(S).u32(chunk).f32(a.softcap ?? 0).u32(0).u32(0).build(), `${op}.partial.params`);
  // gemm.wgsl binds H and W a second time as vec4 arrays (read-only aliases) for d % 4 = 0.
  const buffers = variant.kind === 'gemm' ? [u1, a.H, a.W, a.targets, partial, tgt, a.H, a.W] : [u1, a.H, a.W, a.targets, partial, tgt];
  rt.dispatch(specs.partial, buffers, ceilDiv(a.T, rows) * S);
  return { partial, tgt, S };
}

/** Most candidates per call of the candidate head (the rating prompts use up to 9). */
export const MAX_CANDIDATES = 64;

export interface CandidateLogprobArgs {
  /** hidden states [R, d], f32: one row per prompt (its last position, final-normed) */
  H: GPUBuffer;
  /** unembedding [V, d], f32 (or f16 with variant.f16) */
  W: GPUBuffer;
  /** candidate token ids [K], u32, each < V (checkCandidates) */
  candidates: GPUBuffer;
  /** out: log p(candidate j | row r) at [r·K + j], f32 */
  out: GPUBuffer;
  R: number;
  K: number;
  V: number;
  d: number;
  /** the pass-1 kernel (as logprobGpu's variant) */
  variant?: LogprobVariant;
  /** final-logit soft-cap as in logprobGpu (Gemma 2); 0/omitted: none */
  softcap?: number;
}

/**
 * The fused head's candidate variant: log p(c_j | row r) for K candidate ids at each of R rows,
 * without the R×V logits. Pass 1 is the chosen logprob variant's kernel (every variant, f16 weights
 * and soft-cap included), streaming the vocabulary once with no targets; the merge pass
 * (shaders/logprob/candidates.wgsl) merges its splits and gathers the K candidates' logits.
 */
export function candidateLogprobGpu(rt: GpuRuntime, a: CandidateLogprobArgs): void {
  if (!(Number.isInteger(a.K) && a.K >= 1 && a.K <= MAX_CANDIDATES)) throw new Error(`candidate head: ${a.K} candidates (1 to ${MAX_CANDIDATES})`);
  if (!(Number.isInteger(a.R) && a.R >= 1)) throw new Error(`candidate head: ${a.R} rows`);
  if (a.variant?.qtype !== undefined) throw new Error('candidate head: the merge pass reads W as values; a head kept as GGUF blocks has no candidate variant (use the decoder route)');
  // No targets: an id no vocabulary entry has, so pass 1 only writes the softmax states.
  const none = rt.upload(new Uint32Array(a.R).fill(0xffffffff), 'candidates.none');
  const { partial, S } = recordPartials(rt, { ...a, T: a.R, targets: none }, 'candidate head');
  const u = rt.uniform(new Uniforms().u32(a.R).u32(a.K).u32(S).u32(a.d).f32(a.softcap ?? 0).u32(0).u32(0).u32(0).build(), 'candidates.params');
  rt.dispatch({ shader: 'logprob/candidates', f16Weights: a.variant?.f16, constants: { WG: 64 } }, [u, a.H, a.W, a.candidates, partial, a.out], a.R * a.K);
  rt.release(none);
}

/** Candidate ids must be vocabulary entries (checked before upload, as checkTargets). */
export function checkCandidates(candidates: ArrayLike<number>, V: number): void {
  for (let j = 0; j < candidates.length; j++) {
    const c = candidates[j];
    if (!(Number.isInteger(c) && c >= 0 && c < V)) throw new Error(`candidate token id ${c} is outside the model's vocabulary (${V})`);
  }
}

/**
 * Run a variant once on this device against the CPU twin, before it is ever chosen (the autotuner,
 * and variants that no software adapter can run in CI): a small case with a ragged shape (T, V,
 * d not multiples of any tile), masks, a target on the last vocabulary entry, soft-cap on, and the
 * f16-rounded twin for f16 weights (and for 'sgmat', whose matrix units take H in f16 as well). Throws only when the variant cannot run here at all (the
 * error logprobGpu gives); a wrong result is `ok: false`.
 */
export async function validateLogprobVariant(rt: GpuRuntime, variant: LogprobVariant, shape = { T: 77, V: 1037, d: variant.qtype !== undefined ? 256 : 45, softcap: 15 }): Promise<ValidateResult> {
  const { T, V, d, softcap } = shape;
  const r = rng(0x10b9);
  const H = new Float32Array(T * d).map(() => 2 * r() - 1);
  const W = new Float32Array(V * d).map(() => (2 * r() - 1) * (8 / Math.sqrt(d)));
  const targets = new Uint32Array(T).map(() => Math.floor(r() * V));
  targets[T - 1] = V - 1;
  targets[0] = 0;
  const mask = new Uint32Array(T).map(() => (r() < 0.85 ? 1 : 0));
  mask[0] = mask[T - 1] = 1;
  // 'sgmat' rounds H and W to f16 on the way into the matrix units (f32 accumulation): its twin
  // takes both rounded; f16 weights: W rounded.
  // A quantized head (variant.qtype): random blocks (kernels/matmul-quant.ts randomQuantBlocks, no
  // extreme rows: one huge logit row would swamp every log-prob), the twin on their dequantization.
  const sg = variant.kind === 'sgmat';
  const q = variant.qtype !== undefined ? randomQuantBlocks(variant.qtype as QuantMatmulType, V, d, r, 0) : null;
  const Wq = q ? dequantize(variant.qtype!, q, V * d) : W;
  const want = logprobCpu(sg ? roundThroughF16(H) : H, variant.f16 || sg ? roundThroughF16(Wq) : Wq, targets, mask, T, V, d, 1, T, softcap);
  const wBuf = q ? uploadQuantWeight(rt, q) : rt.upload(variant.f16 ? toF16(W) : W);
  const bufs = { H: rt.upload(H), W: wBuf, targets: rt.upload(targets), mask: rt.upload(mask), logp: rt.acquire(T * 4) };
  try {
    logprobGpu(rt, { ...bufs, T, V, d, variant, softcap });
    const got = await rt.readF32(bufs.logp, T);
    return validate(got, want.logp, { atol: 1e-4, rtol: 1e-5, mask });
  } finally {
    for (const b of Object.values(bufs)) rt.release(b);
  }
}

/**
 * The candidate head (candidateLogprobGpu) with a pass-1 variant, once on this device against its
 * CPU twin, as validateLogprobVariant: ragged R, V, d, candidates on the first and last vocabulary
 * entries and a duplicate, soft-cap on, f16-rounded twin for f16 weights ('sgmat': H too).
 */
export async function validateCandidateHead(rt: GpuRuntime, variant: LogprobVariant, shape = { R: 13, K: 9, V: 1037, d: 45, softcap: 15 }): Promise<ValidateResult> {
  const { R, K, V, d, softcap } = shape;
  const r = rng(0xca4d);
  const H = new Float32Array(R * d).map(() => 2 * r() - 1);
  const W = new Float32Array(V * d).map(() => (2 * r() - 1) * (8 / Math.sqrt(d)));
  const cands = new Uint32Array(K).map(() => Math.floor(r() * V));
  cands[0] = 0;
  cands[K - 1] = V - 1;
  if (K > 2) cands[1] = cands[K - 1];
  const sg = variant.kind === 'sgmat';
  const want = candidateLogprobCpu(sg ? roundThroughF16(H) : H, variant.f16 || sg ? roundThroughF16(W) : W, cands, R, V, d, softcap);
  const bufs = { H: rt.upload(H), W: rt.upload(variant.f16 ? toF16(W) : W), candidates: rt.upload(cands), out: rt.acquire(R * K * 4) };
  try {
    candidateLogprobGpu(rt, { ...bufs, R, K, V, d, variant, softcap });
    return validate(await rt.readF32(bufs.out, R * K), want, { atol: 1e-4, rtol: 1e-5 });
  } finally {
    for (const b of Object.values(bufs)) rt.release(b);
  }
}

/** Check targets before upload: a masked-in target outside the vocabulary would never be found. */
export function checkTargets(targets: ArrayLike<number>, mask: ArrayLike<number>, V: number): void {
  for (let t = 0; t < targets.length; t++) {
    if (mask[t] && !(targets[t] >= 0 && targets[t] < V)) throw new Error(`logprob: target id ${targets[t]} at position ${t} is outside the vocabulary (V = ${V})`);
  }
}

export interface LogprobResult {
  logp: Float32Array;
  /** entropy of the next-token distribution per position, in nats, 0 where masked */
  entropy: Float32Array;
  sum: Float64Array;
  count: Uint32Array;
  mean: Float64Array;
}

/**
 * CPU twin: f64 logits (blocked matmul over vocabulary tiles, streamHeadCpu), soft-capped when
 * softcap > 0, max-subtracted logsumexp, masked reductions. Beside the running max m and s = Σ e^(z−m) it keeps
 * t = Σ (z−m)·e^(z−m), rescaled like s when the max moves (the GPU kernels' online state, see
 * mergeEntropyState), so the entropy H = −Σ p log p = log s − t/s comes out of the same stream.
 */
export function logprobCpu(H: Float32Array, W: Float32Array, targets: ArrayLike<number>, mask: ArrayLike<number>, T: number, V: number, d: number, B = 1, L = T, softcap = 0): LogprobResult {
  checkTargets(targets, mask, V);
  // Only the scored rows are computed.
  const rows: number[] = [];
  for (let t = 0; t < T; t++) if (mask[t]) rows.push(t);
  const R = rows.length;
  const tgt = new Float64Array(R);
  const { max, sum, tsum } = streamHeadCpu(H, rows, W, V, d, softcap, (i, v0, row) => {
    const target = targets[rows[i]];
    if (target >= v0 && target < v0 + row.length) tgt[i] = row[target - v0];
  });
  const logp = new Float32Array(T), entropy = new Float32Array(T);
  for (let i = 0; i < R; i++) {
    logp[rows[i]] = tgt[i] - max[i] - Math.log(sum[i]);
    entropy[rows[i]] = Math.log(sum[i]) - tsum[i] / sum[i];
  }
  return { logp, entropy, ...reduceSequences(logp, mask, B, L) };
}

/**
 * The candidate head's CPU twin (candidateLogprobGpu): for each of the R rows of H [R, d],
 * log p(candidates[j]) at [r·K + j], in f64 — the same vocabulary stream as logprobCpu, the K
 * candidates' logits caught as their tile passes.
 */
export function candidateLogprobCpu(H: Float32Array, W: Float32Array, candidates: ArrayLike<number>, R: number, V: number, d: number, softcap = 0): Float64Array {
  checkCandidates(candidates, V);
  const K = candidates.length;
  const z = new Float64Array(R * K);
  const { max, sum } = streamHeadCpu(H, Array.from({ length: R }, (_, r) => r), W, V, d, softcap, (i, v0, row) => {
    for (let j = 0; j < K; j++) {
      const c = candidates[j];
      if (c >= v0 && c < v0 + row.length) z[i * K + j] = row[c - v0];
    }
  });
  for (let i = 0; i < R; i++) for (let j = 0; j < K; j++) z[i * K + j] -= max[i] + Math.log(sum[i]);
  return z;
}

/**
 * The twins' vocabulary stream: f64 logits of the given rows of H (blocked matmul over vocabulary
 * tiles), soft-capped when softcap > 0, folded into the online state per row — the running max m,
 * s = Σ e^(z−m) and t = Σ (z−m)·e^(z−m), rescaled when the max moves (the GPU kernels' state, see
 * mergeEntropyState). `visit(i, v0, row)` sees row i's (capped) logits of entries v0 .. v0 + row.length.
 */
function streamHeadCpu(H: Float32Array, rows: readonly number[], W: Float32Array, V: number, d: number, softcap: number, visit: (i: number, v0: number, row: Float64Array) => void): { max: Float64Array; sum: Float64Array; tsum: Float64Array } {
  const R = rows.length;
  const Hs = new Float32Array(R * d);
  rows.forEach((t, i) => Hs.set(H.subarray(t * d, t * d + d), i * d));
  const VT = 2048;
  const tile = new Float64Array(R * VT);
  const max = new Float64Array(R).fill(-Infinity), sum = new Float64Array(R), tsum = new Float64Array(R);
  for (let v0 = 0; v0 < V; v0 += VT) {
    const n = Math.min(VT, V - v0);
    const logits = matmulCpu(Hs, W.subarray(v0 * d, (v0 + n) * d), null, R, n, d, 'nk', tile.subarray(0, R * n));
    for (let i = 0; i < R; i++) {
      const row = logits.subarray(i * n, i * n + n);
      if (softcap > 0) for (let j = 0; j < n; j++) row[j] = softcap * Math.tanh(row[j] / softcap);
      let m = max[i];
      for (let j = 0; j < n; j++) if (row[j] > m) m = row[j];
      // Rescale the running (s, t) to the new max (both 0 at the start).
      const a = Math.exp(max[i] - m);
      let s = sum[i] * a;
      let tt = sum[i] > 0 ? a * (tsum[i] + (max[i] - m) * sum[i]) : 0;
      for (let j = 0; j < n; j++) {
        const z = row[j] - m, e = Math.exp(z);
        s += e;
        tt += z * e;
      }
      max[i] = m;
      sum[i] = s;
      tsum[i] = tt;
      visit(i, v0, row as Float64Array);
    }
  }
  return { max, sum, tsum };
}

/**
 * The exact merge of two online-softmax states (m, s = Σ e^(z−m), t = Σ (z−m)·e^(z−m)) over
 * disjoint parts of the vocabulary, as the WGSL `merge` (shaders/logprob/common.wgsl) and the
 * combine pass do it: with M = max(m₁, m₂) and aᵢ = e^(mᵢ−M), s = Σ aᵢ sᵢ and
 * t = Σ aᵢ (tᵢ + (mᵢ − M) sᵢ), since (z − M) = (z − mᵢ) + (mᵢ − M). Entropy of the merged state:
 * log s − t/s.
 */
export function mergeEntropyState(a: [number, number, number], b: [number, number, number]): [number, number, number] {
  const M = Math.max(a[0], b[0]);
  const part = ([m, s, t]: [number, number, number]): [number, number] => (s > 0 ? [s * Math.exp(m - M), Math.exp(m - M) * (t + (m - M) * s)] : [0, 0]);
  const [sa, ta] = part(a), [sb, tb] = part(b);
  return [M, sa + sb, ta + tb];
}

/** Masked per-sequence sum/count/mean over B sequences of L slots (shared by both twins' callers). */
export function reduceSequences(logp: ArrayLike<number>, mask: ArrayLike<number>, B: number, L: number): Omit<LogprobResult, 'logp' | 'entropy'> {
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
