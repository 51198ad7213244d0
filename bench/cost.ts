// The cost model: for every kernel the FLOPs it performs and the fewest bytes it must move (each
// input read once, each output written once, in its storage type), the sum per kernel class over a
// whole prefill of a ModelConfig, a small table of GPU peaks, and the roofline that says which
// ceiling applies to a measured run and how close to it the run came.
//
// Counting rules (the tests pin them on small shapes):
// - A multiply-add is 2 FLOPs. Contractions (matmul, LM head, attention, all-pairs cosine) count
//   only their multiply-adds: bias adds, the LM head's log-softmax and attention's softmax are
//   under 1/(2K) of them and are left out, as the published GEMM/attention figures do.
// - Element-wise kernels count every arithmetic operation, a transcendental (exp, tanh, erf,
//   rsqrt) as 1: RMSNorm 4 per element, LayerNorm 8, SiLU 4, tanh-GELU 9, erf-GELU 5 (+1 for the
//   gate's multiply), RoPE 6 per rotated pair, add 1.
// - Bytes: f32 activations, u32 ids/masks/lengths, weights in f32 or f16 (f16Weights). Work the
//   kernel does for padded positions is not "must": costs take the real lengths when given.
//
//   import { matmulCost, prefillCost, lookupPeak, roofline } from './cost.js';

import type { ModelConfig } from '../src/models/types.js';
import { layerUsesRope, layerWindow } from '../src/models/types.js';

export interface Cost {
  flops: number;
  bytes: number;
}

export type KernelClass = 'embed' | 'norm' | 'matmul' | 'rope' | 'attention' | 'act' | 'add' | 'logprob' | 'cosine' | 'pool';

const F32 = 4, U32 = 4;
const wBytes = (f16?: boolean): number => (f16 ? 2 : 4);
const sum = (...c: Cost[]): Cost => c.reduce((a, b) => ({ flops: a.flops + b.flops, bytes: a.bytes + b.bytes }), { flops: 0, bytes: 0 });

/** C[M,N] = A[M,K] · B + bias: A and C f32, B (the weight) f32 or f16, bias f32 [N]. */
/**
 * C[M,N] = A[M,K]·B + bias. Epilogue fusions (kernels/matmul.ts): `accumulate` (C += …) reads C
 * once more; `glu` reads [gate; up] weights (2N rows) and applies the activation (its FLOPs per
 * output as in actCost), writing the N outputs once.
 */
export function matmulCost(M: number, N: number, K: number, o: { f16Weights?: boolean; bias?: boolean; accumulate?: boolean; glu?: 'swiglu' | 'geglu' } = {}): Cost {
  const rows = o.glu ? 2 * N : N;
  return {
    flops: 2 * M * rows * K + (o.glu ? ACT_FLOPS[o.glu] * M * N : 0),
    bytes: M * K * F32 + rows * K * wBytes(o.f16Weights) + (o.bias ? rows * F32 : 0) + M * N * F32 * (o.accumulate ? 2 : 1),
  };
}

/** The fused LM head: H [T,d] f32, W [V,d], targets/mask u32 [T] in, logp f32 [T] out (the T×V logits never exist). */
export function logprobCost(T: number, V: number, d: number, o: { f16Weights?: boolean } = {}): Cost {
  return { flops: 2 * T * V * d, bytes: T * d * F32 + V * d * wBytes(o.f16Weights) + 3 * T * U32 };
}

/** Keys query i (0-based) of a sequence of n attends to: causal (with an optional window counting the query) or all n. */
function keysSum(n: number, causal: boolean, window: number): number {
  if (!causal) return n * n;
  const W = window > 0 ? window : n;
  if (n <= W) return (n * (n + 1)) / 2;
  return (W * (W + 1)) / 2 + (n - W) * W;
}

export interface AttentionShape {
  B: number;
  L: number;
  nHeads: number;
  nKvHeads: number;
  headDim: number;
  /** default true */
  causal?: boolean;
  /** sliding window (keys including the query), 0 = none */
  window?: number;
  /** real length of each sequence (default L for all) */
  seqLens?: ArrayLike<number>;
  /** bytes per K/V element (default 4; 2 for f16 K/V) */
  kvBytes?: number;
}

/**
 * softmax(Q Kᵀ) V per head: 4·headDim FLOPs per (query, attended key) pair and head (QKᵀ and PV).
 * Bytes: Q and O [n, nHeads·hd] f32, K and V [n, nKvHeads·hd] once each (grouped heads share them),
 * the lengths u32 [B].
 */
export function attentionCost(a: AttentionShape): Cost {
  const causal = a.causal ?? true, window = a.window ?? 0;
  let pairs = 0, rows = 0;
  for (let b = 0; b < a.B; b++) {
    const n = Math.min(a.L, a.seqLens ? a.seqLens[b] : a.L);
    pairs += keysSum(n, causal, window);
    rows += n;
  }
  const qd = a.nHeads * a.headDim, kvd = a.nKvHeads * a.headDim;
  return {
    flops: 4 * a.headDim * a.nHeads * pairs,
    bytes: 2 * rows * qd * F32 + 2 * rows * kvd * (a.kvBytes ?? F32) + a.B * U32,
  };
}

/** RMSNorm (4 FLOPs per element) or LayerNorm (8) over [rows, d]: x in, out out, weight (and bias) [d]. */
export function normCost(rows: number, d: number, kind: 'rms' | 'layer' = 'rms'): Cost {
  return { flops: (kind === 'rms' ? 4 : 8) * rows * d, bytes: 2 * rows * d * F32 + (kind === 'rms' ? 1 : 2) * d * F32 };
}

/** RoPE in place on q [T, nHeads·hd] and k [T, nKv·hd]: the rotated pairs read and written, and the inv_freq table. */
export function ropeCost(T: number, nHeads: number, nKvHeads: number, headDim: number, rotaryDim = headDim): Cost {
  const pairs = T * (nHeads + nKvHeads) * (rotaryDim / 2);
  return { flops: 6 * pairs, bytes: 2 * 2 * pairs * F32 + (rotaryDim / 2) * F32 };
}

export type ActKind = 'swiglu' | 'geglu' | 'gelu_tanh' | 'gelu_erf';
const ACT_FLOPS: Record<ActKind, number> = { swiglu: 4 + 1, geglu: 9 + 1, gelu_tanh: 9, gelu_erf: 5 };

/** out = act(gate)·up (gated: two inputs) or act(x), over n elements. */
export function actCost(n: number, kind: ActKind): Cost {
  const gated = kind === 'swiglu' || kind === 'geglu';
  return { flops: ACT_FLOPS[kind] * n, bytes: (gated ? 3 : 2) * n * F32 };
}

/** y += x over n elements. */
export function addCost(n: number): Cost {
  return { flops: n, bytes: 3 * n * F32 };
}

/**
 * Token embedding of [B, L] ids: ids in, one table row per position (distinct tokens could be read
 * once; the model cannot know), learned positions [min(L, nPos), d] once, out [B·L, d]; a scale
 * and the position add are 1 FLOP per element each.
 */
export function embedCost(B: number, L: number, d: number, o: { nPos?: number; scale?: number } = {}): Cost {
  const T = B * L, pos = o.nPos ? Math.min(L, o.nPos) : 0;
  return {
    flops: T * d * ((o.scale ?? 1) !== 1 ? 1 : 0) + (pos ? T * d : 0),
    bytes: T * U32 + T * d * F32 + pos * d * F32 + T * d * F32,
  };
}

/** Cosine of N row pairs of [N, d]: three dot products (6·d FLOPs) per row; A and B in, [N] out. */
export function cosineRowsCost(N: number, d: number): Cost {
  return { flops: 6 * N * d, bytes: (2 * N * d + N) * F32 };
}

/** Unit-L2 rows of X [N, d] into Y: 3 FLOPs per element. */
export function l2NormalizeCost(N: number, d: number): Cost {
  return { flops: 3 * N * d, bytes: 2 * N * d * F32 };
}

/** All-pairs cosine block C [N, M] of A [N, d] and B [M, d] (normalize: the two row normalisations first, as cosineAllPairsGpu records them). */
export function cosineAllPairsCost(N: number, M: number, d: number, o: { normalize?: boolean } = {}): Cost {
  const block = matmulCost(N, M, d);
  return (o.normalize ?? true) ? sum(l2NormalizeCost(N, d), l2NormalizeCost(M, d), block) : block;
}

/** Mean over the real positions of each sequence: x [Σn, d] in, out [B, d], lengths [B]. */
export function meanPoolCost(B: number, L: number, d: number, seqLens?: ArrayLike<number>): Cost {
  let rows = 0;
  for (let b = 0; b < B; b++) rows += Math.min(L, seqLens ? seqLens[b] : L);
  return { flops: rows * d + B * d, bytes: rows * d * F32 + B * d * F32 + B * U32 };
}

/** Running row max / argmax of scores X [N, M] under a column mask: 1 compare per score. */
export function rowMaxCost(N: number, M: number): Cost {
  return { flops: N * M, bytes: N * M * F32 + M * U32 + 2 * 2 * N * F32 };
}

export interface PrefillOptions {
  /** Linear weights and the LM head in f16. */
  f16Weights?: boolean;
  /** Per-head q/k RMSNorm (Qwen3, Gemma 3): by tensor presence in the loaders, not in the config. */
  qkNorm?: boolean;
  /** Norms of the attention and MLP outputs before the residual adds (Gemma 2/3), by tensor presence. */
  postNorms?: boolean;
  /** Score with the fused LM head (default true); false: hidden states only (embeddings). */
  head?: boolean;
  /** Real length of each sequence (default L). */
  seqLens?: ArrayLike<number>;
  /**
   * RoPE fused into attention's prologue (default true: the 'flash' variant, the default on every
   * adapter for head dims that are multiples of 4, up to 256, within the adapter's workgroup
   * memory); false: a separate rope pass (the 'direct' attention kernel).
   */
  ropeFused?: boolean;
}

export type ClassCost = Cost & { calls: number };

/**
 * A whole prefill of B sequences padded to L, kernel by kernel as src/models/forward-gpu.ts records
 * it (every layer's norms, q/k/v/o and MLP matmuls, RoPE, attention, activation, residual adds;
 * then the final norm and the fused LM head), summed per kernel class. Matmuls and element-wise
 * kernels run over all B·L rows (the padded layout); attention uses the real lengths when given.
 */
export function prefillCost(c: ModelConfig, B: number, L: number, o: PrefillOptions = {}): { perClass: Partial<Record<KernelClass, ClassCost>>; total: ClassCost } {
  const T = B * L, d = c.dim, ff = c.hiddenDim;
  const qd = c.nHeads * c.headDim, kvd = c.nKvHeads * c.headDim;
  const perClass: Partial<Record<KernelClass, ClassCost>> = {};
  const add = (k: KernelClass, cost: Cost) => {
    const e = (perClass[k] ??= { flops: 0, bytes: 0, calls: 0 });
    e.flops += cost.flops;
    e.bytes += cost.bytes;
    e.calls++;
  };
  const f16Weights = o.f16Weights ?? false;
  const lin = (N: number, K: number, bias: boolean) => add('matmul', matmulCost(T, N, K, { f16Weights, bias }));
  const norm = () => add('norm', normCost(T, d, c.norm));
  const gated = c.act === 'swiglu' || c.act === 'geglu';
  add('embed', embedCost(B, L, d, { nPos: c.pos === 'learned' ? c.maxSeqLen : 0, scale: c.embedScale }));
  // As forward-gpu.ts records it: the o- and down-projections accumulate into the residual stream
  // in their epilogue (no add pass) unless a post-norm sits between them and the add; gate and up
  // are one GLU matmul; RoPE rides in attention's prologue (ropeFused).
  const ropeFused = o.ropeFused ?? true;
  const project = (N: number, K: number, bias: boolean) => {
    if (o.postNorms) { lin(N, K, bias); norm(); add('add', addCost(T * d)); } else add('matmul', matmulCost(T, N, K, { f16Weights, bias, accumulate: true }));
  };
  for (let l = 0; l < c.nLayers; l++) {
    norm();
    lin(qd, d, c.qkvBias);
    lin(kvd, d, c.qkvBias);
    lin(kvd, d, c.qkvBias);
    if (o.qkNorm) {
      add('norm', normCost(T * c.nHeads, c.headDim, 'rms'));
      add('norm', normCost(T * c.nKvHeads, c.headDim, 'rms'));
    }
    const attn = attentionCost({ B, L, nHeads: c.nHeads, nKvHeads: c.nKvHeads, headDim: c.headDim, causal: true, window: layerWindow(c, l), seqLens: o.seqLens });
    if (layerUsesRope(c, l)) {
      const rope = ropeCost(T, c.nHeads, c.nKvHeads, c.headDim, c.rotaryDim ?? c.headDim);
      // Fused: rope's arithmetic, and only its frequency table read (q and k are rotated as they are loaded).
      if (ropeFused) { attn.flops += rope.flops; attn.bytes += ((c.rotaryDim ?? c.headDim) / 2) * F32; } else add('rope', rope);
    }
    add('attention', attn);
    project(d, qd, c.mlpBias);
    norm();
    if (gated) add('matmul', matmulCost(T, ff, d, { f16Weights, bias: c.mlpBias, glu: c.act === 'geglu' ? 'geglu' : 'swiglu' }));
    else {
      lin(ff, d, c.mlpBias);
      add('act', actCost(T * ff, 'gelu_tanh'));
    }
    project(d, ff, c.mlpBias);
  }
  norm();
  if (o.head ?? true) add('logprob', logprobCost(T, c.vocabSize, d, { f16Weights }));
  const total = Object.values(perClass).reduce((a, e) => ({ flops: a.flops + e.flops, bytes: a.bytes + e.bytes, calls: a.calls + e.calls }), { flops: 0, bytes: 0, calls: 0 });
  return { perClass, total };
}

/** The kernel class of a profiled pass label (GpuRuntime's programKey: '<shader>[<f16>]:<entry>[...]'); null when unknown. */
export function kernelClassOf(label: string): KernelClass | null {
  // '<shader>' may be composed: 'rope+sincos', 'attention/flash[hd=64,bk=32]', 'matmul/blocked+glu'.
  const shader = label.split(/[<:]/)[0];
  const head = shader.split(/[/+[]/)[0];
  const map: Record<string, KernelClass> = {
    matmul: 'matmul', logprob: 'logprob', attention: 'attention', rmsnorm: 'norm', layernorm: 'norm', norm: 'norm',
    rope: 'rope', act: 'act', add: 'add', embed: 'embed', cosine: 'cosine', pool: 'pool',
  };
  return map[head] ?? null;
}

// ------------------------------------------------------------------------------------------------
// Peaks

/** Vendor peak figures: TFLOP/s (dense, no sparsity) and GB/s. */
export interface Peak {
  name: string;
  /** f32 FMA rate (non-tensor). */
  f32: number;
  /** f16 rate on the vector units (non-tensor). */
  f16: number;
  /** matrix units ("tensor cores", XMX; what subgroup matrices map to): f16 operands, f32 accumulate, dense. */
  matrix: number;
  /** memory bandwidth */
  gbps: number;
}

interface PeakEntry extends Peak {
  /** Matched against the normalised adapter text (lower-case, runs of other characters → one space). */
  match: RegExp;
  /** GeForce parts: never taken for a laptop / Max-Q adapter (different clocks and memory). */
  desktopOnly?: boolean;
}

// Where a part comes in several variants the strings cannot tell apart (core counts, memory sizes),
// the entry takes the fastest one, so that a fraction of peak is never overstated.
// Order matters: the first match wins (e.g. 'rtx 4070 ti super' before 'rtx 4070 ti' before 'rtx 4070').
const PEAKS: PeakEntry[] = [
  // --- NVIDIA data centre ---
  // NVIDIA H200 Tensor Core GPU datasheet (2024): H200 SXM FP32 67 TFLOPS, FP16 Tensor Core 1,979
  // TFLOPS with sparsity (989 dense), 4.8 TB/s; H200 NVL 60 / 1,671 (835 dense) / 4.8 TB/s. Non-tensor
  // FP16 from the Hopper whitepaper (2× FP32: 133.8 TFLOPS on SXM5). Vulkan has no wgmma: issue 12
  // quotes ≈ 610 TFLOP/s for a raw cooperative-matrix benchmark on Hopper, so 989 is a ceiling, not a target.
  { name: 'NVIDIA H200 NVL', match: /\bh200 nvl\b/, f32: 60, f16: 120, matrix: 835, gbps: 4800 },
  { name: 'NVIDIA H200 SXM', match: /\bh200\b/, f32: 67, f16: 133.8, matrix: 989, gbps: 4800 },
  // NVIDIA H100 datasheet / Hopper architecture whitepaper (2022): SXM5 FP32 67 (66.9), FP16 non-tensor
  // 133.8, FP16 Tensor 989.4 dense, HBM3 3.35 TB/s; PCIe FP32 51, Tensor 756 dense, 2.0 TB/s; NVL 60,
  // 835 dense, 3.9 TB/s. Non-tensor FP16 of PCIe / NVL (and H200 NVL) derived as 2 × FP32, Hopper's ratio.
  { name: 'NVIDIA H100 NVL', match: /\bh100 nvl\b/, f32: 60, f16: 120, matrix: 835, gbps: 3900 },
  { name: 'NVIDIA H100 PCIe', match: /\bh100 pcie\b/, f32: 51, f16: 102, matrix: 756, gbps: 2000 },
  { name: 'NVIDIA H100 SXM5', match: /\bh100\b/, f32: 67, f16: 133.8, matrix: 989.4, gbps: 3350 },
  // NVIDIA A100 datasheet (2021): FP32 19.5 TFLOPS, FP16 non-tensor 78 (Ampere whitepaper), FP16 Tensor
  // 312 dense (624 sparse); bandwidth 80 GB SXM 2,039 GB/s, 80 GB PCIe 1,935 GB/s, 40 GB 1,555 GB/s.
  { name: 'NVIDIA A100 80GB PCIe', match: /\ba100 80gb pcie\b|\ba100 pcie 80gb\b/, f32: 19.5, f16: 78, matrix: 312, gbps: 1935 },
  { name: 'NVIDIA A100 40GB', match: /\ba100 (sxm4 |pcie )?40gb\b/, f32: 19.5, f16: 78, matrix: 312, gbps: 1555 },
  { name: 'NVIDIA A100 SXM4 80GB', match: /\ba100\b/, f32: 19.5, f16: 78, matrix: 312, gbps: 2039 },
  // NVIDIA L4 datasheet (2023): FP32 30.3 TFLOPS, FP16 Tensor 242 with sparsity (121 dense), 300 GB/s;
  // Ada runs non-tensor FP16 at the FP32 rate (Ada whitepaper).
  { name: 'NVIDIA L4', match: /\bl4\b/, f32: 30.3, f16: 30.3, matrix: 121, gbps: 300 },

  // --- NVIDIA GeForce: non-tensor FP16 = FP32 rate; matrix = "Peak FP16 Tensor TFLOPS with FP32
  // Accumulate", dense. Flagships from the architecture whitepapers' appendix tables (GA102 2020:
  // RTX 3090 35.6 / 71 / 936 GB/s, RTX 3080 29.8 / 59.5 / 760, RTX 3070 20.3 / 40.6 / 448; Ada 2022:
  // RTX 4090 82.6 / 165.2 / 1,008, RTX 4080 48.7 / 97.5 / 716.8; RTX Blackwell 2025: RTX 5090 104.8 /
  // 209.5 / 1,792, RTX 5080 56.3 / 112.6 / 960); the other parts' FP32 "shader TFLOPS" and bandwidth
  // from NVIDIA's product pages, their matrix figure derived as 2 × FP32 (the GeForce ratio above).
  { name: 'NVIDIA GeForce RTX 5090', match: /\brtx 5090\b/, f32: 104.8, f16: 104.8, matrix: 209.5, gbps: 1792, desktopOnly: true },
  { name: 'NVIDIA GeForce RTX 5080', match: /\brtx 5080\b/, f32: 56.3, f16: 56.3, matrix: 112.6, gbps: 960, desktopOnly: true },
  { name: 'NVIDIA GeForce RTX 5070 Ti', match: /\brtx 5070 ti\b/, f32: 43.9, f16: 43.9, matrix: 87.8, gbps: 896, desktopOnly: true },
  { name: 'NVIDIA GeForce RTX 5070', match: /\brtx 5070\b/, f32: 30.9, f16: 30.9, matrix: 61.8, gbps: 672, desktopOnly: true },
  { name: 'NVIDIA GeForce RTX 5060 Ti', match: /\brtx 5060 ti\b/, f32: 23.7, f16: 23.7, matrix: 47.4, gbps: 448, desktopOnly: true },
  { name: 'NVIDIA GeForce RTX 5060', match: /\brtx 5060\b/, f32: 19.2, f16: 19.2, matrix: 38.4, gbps: 448, desktopOnly: true },
  { name: 'NVIDIA GeForce RTX 4090', match: /\brtx 4090\b/, f32: 82.6, f16: 82.6, matrix: 165.2, gbps: 1008, desktopOnly: true },
  { name: 'NVIDIA GeForce RTX 4080 SUPER', match: /\brtx 4080 super\b/, f32: 52.2, f16: 52.2, matrix: 104.4, gbps: 736, desktopOnly: true },
  { name: 'NVIDIA GeForce RTX 4080', match: /\brtx 4080\b/, f32: 48.7, f16: 48.7, matrix: 97.5, gbps: 716.8, desktopOnly: true },
  { name: 'NVIDIA GeForce RTX 4070 Ti SUPER', match: /\brtx 4070 ti super\b/, f32: 44.1, f16: 44.1, matrix: 88.2, gbps: 672, desktopOnly: true },
  { name: 'NVIDIA GeForce RTX 4070 Ti', match: /\brtx 4070 ti\b/, f32: 40.1, f16: 40.1, matrix: 80.2, gbps: 504, desktopOnly: true },
  { name: 'NVIDIA GeForce RTX 4070 SUPER', match: /\brtx 4070 super\b/, f32: 35.5, f16: 35.5, matrix: 71, gbps: 504, desktopOnly: true },
  { name: 'NVIDIA GeForce RTX 4070', match: /\brtx 4070\b/, f32: 29.1, f16: 29.1, matrix: 58.2, gbps: 504, desktopOnly: true },
  { name: 'NVIDIA GeForce RTX 4060 Ti', match: /\brtx 4060 ti\b/, f32: 22.1, f16: 22.1, matrix: 44.2, gbps: 288, desktopOnly: true },
  { name: 'NVIDIA GeForce RTX 4060', match: /\brtx 4060\b/, f32: 15.1, f16: 15.1, matrix: 30.2, gbps: 272, desktopOnly: true },
  { name: 'NVIDIA GeForce RTX 3090 Ti', match: /\brtx 3090 ti\b/, f32: 40, f16: 40, matrix: 80, gbps: 1008, desktopOnly: true },
  { name: 'NVIDIA GeForce RTX 3090', match: /\brtx 3090\b/, f32: 35.6, f16: 35.6, matrix: 71, gbps: 936, desktopOnly: true },
  { name: 'NVIDIA GeForce RTX 3080 Ti', match: /\brtx 3080 ti\b/, f32: 34.1, f16: 34.1, matrix: 68.2, gbps: 912, desktopOnly: true },
  { name: 'NVIDIA GeForce RTX 3080', match: /\brtx 3080\b/, f32: 29.8, f16: 29.8, matrix: 59.5, gbps: 760, desktopOnly: true },
  { name: 'NVIDIA GeForce RTX 3070 Ti', match: /\brtx 3070 ti\b/, f32: 21.7, f16: 21.7, matrix: 43.4, gbps: 608, desktopOnly: true },
  { name: 'NVIDIA GeForce RTX 3070', match: /\brtx 3070\b/, f32: 20.3, f16: 20.3, matrix: 40.6, gbps: 448, desktopOnly: true },
  { name: 'NVIDIA GeForce RTX 3060 Ti', match: /\brtx 3060 ti\b/, f32: 16.2, f16: 16.2, matrix: 32.4, gbps: 448, desktopOnly: true },
  { name: 'NVIDIA GeForce RTX 3060', match: /\brtx 3060\b/, f32: 12.7, f16: 12.7, matrix: 25.4, gbps: 360, desktopOnly: true },
  { name: 'NVIDIA GeForce RTX 3050', match: /\brtx 3050\b/, f32: 9.1, f16: 9.1, matrix: 18.2, gbps: 224, desktopOnly: true },

  // --- Apple: FP16 runs at the FP32 rate and simdgroup matrices on the same ALUs, so f16 = matrix = f32.
  // Apple's press releases give TFLOPS for M1 (2.6, 8-core GPU), M1 Pro (5.2), M1 Max (10.4), M1 Ultra
  // (21), M2 (3.6), M2 Pro (6.8), M2 Max (13.6), M2 Ultra (27.2), and the memory bandwidth of every part
  // (M1 68.25, M1 Pro/M2 Pro 200, Max 400, Ultra 800, M2/M3 100, M3 Pro 150, M3 Max 400 (40-core),
  // M3 Ultra 819, M4 120, M4 Pro 273, M4 Max 546 GB/s). M3/M4 TFLOPS are not published: derived as
  // GPU cores × 128 ALUs × 2 FLOPs × clock (M3 1.38 GHz, M4 1.58 GHz), largest core count of each part.
  { name: 'Apple M1 Ultra', match: /\bapple m1 ultra\b/, f32: 21, f16: 21, matrix: 21, gbps: 800 },
  { name: 'Apple M1 Max', match: /\bapple m1 max\b/, f32: 10.4, f16: 10.4, matrix: 10.4, gbps: 400 },
  { name: 'Apple M1 Pro', match: /\bapple m1 pro\b/, f32: 5.2, f16: 5.2, matrix: 5.2, gbps: 200 },
  { name: 'Apple M1', match: /\bapple m1\b/, f32: 2.6, f16: 2.6, matrix: 2.6, gbps: 68.25 },
  { name: 'Apple M2 Ultra', match: /\bapple m2 ultra\b/, f32: 27.2, f16: 27.2, matrix: 27.2, gbps: 800 },
  { name: 'Apple M2 Max', match: /\bapple m2 max\b/, f32: 13.6, f16: 13.6, matrix: 13.6, gbps: 400 },
  { name: 'Apple M2 Pro', match: /\bapple m2 pro\b/, f32: 6.8, f16: 6.8, matrix: 6.8, gbps: 200 },
  { name: 'Apple M2', match: /\bapple m2\b/, f32: 3.6, f16: 3.6, matrix: 3.6, gbps: 100 },
  { name: 'Apple M3 Ultra', match: /\bapple m3 ultra\b/, f32: 28.3, f16: 28.3, matrix: 28.3, gbps: 819 },
  { name: 'Apple M3 Max', match: /\bapple m3 max\b/, f32: 14.1, f16: 14.1, matrix: 14.1, gbps: 400 },
  { name: 'Apple M3 Pro', match: /\bapple m3 pro\b/, f32: 6.4, f16: 6.4, matrix: 6.4, gbps: 150 },
  { name: 'Apple M3', match: /\bapple m3\b/, f32: 3.5, f16: 3.5, matrix: 3.5, gbps: 100 },
  { name: 'Apple M4 Max', match: /\bapple m4 max\b/, f32: 16.2, f16: 16.2, matrix: 16.2, gbps: 546 },
  { name: 'Apple M4 Pro', match: /\bapple m4 pro\b/, f32: 8.1, f16: 8.1, matrix: 8.1, gbps: 273 },
  { name: 'Apple M4', match: /\bapple m4\b/, f32: 4.0, f16: 4.0, matrix: 4.0, gbps: 120 },

  // --- Intel Arc: Intel's product specifications (ark.intel.com) give Xe-cores, XMX engines, graphics
  // clock and bandwidth (A770 16 GB: 32 Xe-cores, 512 XMX, 2.1 GHz, 560 GB/s; A750: 28, 448, 2.05 GHz,
  // 512 GB/s; B580: 20 Xe2-cores, 160 XMX, 2.67 GHz, 456 GB/s; B570: 18, 144, 2.5 GHz, 380 GB/s) and
  // the INT8 TOPS (A770 262, B580 233). Derived: FP32 = Xe-cores × 128 lanes × 2 × clock, FP16 = 2 ×
  // FP32, XMX FP16 = INT8 TOPS / 2 (A770 ≈ 512 × 128 FLOP/clk × 2.0 GHz; B580 = 160 × 256 × 2.67 GHz).
  { name: 'Intel Arc A770', match: /\barc a770\b|\ba770\b/, f32: 17.2, f16: 34.4, matrix: 131, gbps: 560 },
  { name: 'Intel Arc A750', match: /\barc a750\b|\ba750\b/, f32: 14.7, f16: 29.4, matrix: 117.6, gbps: 512 },
  { name: 'Intel Arc B580', match: /\barc b580\b|\bb580\b/, f32: 13.7, f16: 27.3, matrix: 116.5, gbps: 456 },
  { name: 'Intel Arc B570', match: /\barc b570\b|\bb570\b/, f32: 11.5, f16: 23, matrix: 92.2, gbps: 380 },
];

/** The names of the parts the table knows (for docs and tests). */
export const PEAK_NAMES: readonly string[] = PEAKS.map((p) => p.name);

const normalise = (s: string): string => s.toLowerCase().replace(/[^a-z0-9]+/g, ' ').trim();

/**
 * The peak entry for an adapter, from its vendor / architecture / device / description strings
 * (Dawn on Vulkan: device is the driver's device name, e.g. 'nvidia-h200'; description the driver
 * string); null when unknown, for software adapters and for GeForce laptop parts.
 */
export function lookupPeak(info: { vendor?: string; architecture?: string; device?: string; description?: string }): Peak | null {
  const text = normalise([info.vendor, info.architecture, info.device, info.description].filter(Boolean).join(' '));
  if (!text || /\b(llvmpipe|lavapipe|swiftshader|software)\b/.test(text)) return null;
  const laptop = /\b(laptop|mobile|max q)\b/.test(text);
  for (const p of PEAKS) {
    if (p.desktopOnly && laptop) continue;
    if (p.match.test(text)) {
      const { match: _m, desktopOnly: _d, ...peak } = p;
      return peak;
    }
  }
  return null;
}

// ------------------------------------------------------------------------------------------------
// Roofline

/** Which arithmetic a run used, so which FLOP ceiling applies: f32 ALUs, f16 ALUs, or matrix units. */
export type MathKind = 'f32' | 'f16' | 'matrix';

export interface Roofline {
  /** achieved rates */
  gflops: number;
  gbps: number;
  /** 'compute' when flops / peakFLOP/s ≥ bytes / peakGB/s, else 'memory'; null without a peak. */
  bound: 'compute' | 'memory' | null;
  /** achieved / the applicable ceiling (0..1 on a sane measurement); null without a peak. */
  fraction: number | null;
  /** the applicable ceiling, e.g. 'f32 67 TFLOP/s' or '4800 GB/s'; null without a peak. */
  ceiling: string | null;
}

/**
 * The roofline of one measured run: the bound is whichever of flops / peak FLOP/s and bytes / peak
 * bandwidth is larger (the time the run cannot beat), and the fraction of peak is the achieved
 * rate over that ceiling (equivalently, that lower-bound time over the measured time).
 */
export function roofline(cost: Cost, ms: number, peak: Peak | null, math: MathKind = 'f32'): Roofline {
  const s = ms / 1e3;
  const gflops = cost.flops / s / 1e9, gbps = cost.bytes / s / 1e9;
  if (!peak || !(ms > 0)) return { gflops, gbps, bound: null, fraction: null, ceiling: null };
  const tflops = peak[math];
  const tCompute = cost.flops / (tflops * 1e12), tMemory = cost.bytes / (peak.gbps * 1e9);
  const compute = tCompute >= tMemory;
  return {
    gflops, gbps,
    bound: compute ? 'compute' : 'memory',
    fraction: compute ? gflops / (tflops * 1e3) : gbps / peak.gbps,
    ceiling: compute ? `${math} ${tflops} TFLOP/s` : `${peak.gbps} GB/s`,
  };
}

/** One line's worth of a roofline: '12.3 GFLOP/s  4.5 GB/s  1.2% of f32 67 TFLOP/s (compute-bound)' or '… peak unknown'. */
export function formatRoofline(r: Roofline): string {
  const rates = `${r.gflops.toFixed(2)} GFLOP/s  ${r.gbps.toFixed(2)} GB/s`;
  if (r.fraction === null) return `${rates}  peak unknown`;
  return `${rates}  ${(100 * r.fraction).toFixed(r.fraction < 0.01 ? 3 : 1)}% of ${r.ceiling} (${r.bound}-bound)`;
}

/** A peak entry as one line. */
export const formatPeak = (p: Peak): string => `${p.name}: f32 ${p.f32}, f16 ${p.f16}, matrix ${p.matrix} TFLOP/s, ${p.gbps} GB/s`;
