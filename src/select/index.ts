// Budgeted, diversity-aware selection (DEITA's score-first greedy; Liu et al. 2024, "What Makes
// Good Data for Alignment?"): walk the pairs by the rule's score, best first, and keep one only if
// the cosine of its embedding with EVERY pair kept so far is below τ, until the budget is met.
//
// Streaming: the kept set is resident (≤ budget rows of d floats; on the GPU in row blocks of
// `blockSize` that stay on the device), candidates arrive in blocks of ≤ blockSize rows in walk
// order. For a candidate block A (n rows):
//   - against every kept block K_j: C = A·K_jᵀ (kernels/cosine.ts cosineAllPairs, normalize =
//     false: unit vectors), then the running row max over C's columns (kernels/pool.ts rowMax with
//     an all-ones mask) — per candidate, the best cosine to any kept pair and which one;
//   - the block against itself (n×n) comes back whole and the greedy decision is dedup's
//     (src/dedup/index.ts decideBlock): row by row, the better of the kept set's best and this
//     block's already-kept rows; kept when below τ. The rows kept past the budget are cut off
//     (later rows never change an earlier decision, so this is the sequential greedy exactly).
// The GPU runs cosineAllPairsGpu + rowMaxGpu, the CPU path their twins over the very same blocks
// with the same decision code: the same choices wherever the f32 (GPU) and f64 (CPU) dot products
// agree on which side of τ a score falls.
//
// The difference from `concord dedup`: dedup walks in INPUT order and keeps every record with no
// near-duplicate before it (all N compared, N²/2 scores); select walks in SCORE order and stops at
// the budget (at most walked × kept scores), so of a group of near-duplicates the best-scoring one
// survives, and τ trades diversity for score (τ = 1: the top-k by score).

import { cosineAllPairsCpu, cosineAllPairsGpu } from '../../kernels/cosine.js';
import { ROW_MAX_LOW, ROW_MAX_NONE, rowMaxCpu, rowMaxGpu } from '../../kernels/pool.js';
import { DEDUP_CPU_BLOCK, decideBlock, gpuBlockSize, type DedupVectorsResult } from '../dedup/index.js';
import type { GpuRuntime } from '../gpu/runtime.js';

export interface DiversityOptions {
  /** keep a candidate only if its cosine to every kept one is < tau */
  tau: number;
  /** most pairs to keep */
  budget: number;
  dim: number;
  device: GpuRuntime | 'cpu';
  /** rows per candidate block and per kept block (default: CPU 1024, GPU the dedup block size up to 4096) */
  blockSize?: number;
}

/** The kept set and the greedy decision, fed candidate blocks in walk order. */
export class DiversitySelector {
  readonly blockSize: number;
  /** kept vectors, row after row (budget × dim at most) */
  private kept: Float32Array;
  count = 0;
  /** candidates offered so far (those after the budget was met are not counted) */
  walked = 0;
  /** candidates turned down for being within τ of a kept one */
  rejected = 0;
  /** score blocks computed */
  blockPairs = 0;
  private gpu: SelectGpu | null;

  constructor(private readonly o: DiversityOptions) {
    if (!(o.tau >= -1 && o.tau <= 1)) throw new Error(`select: τ must be in [-1, 1] (got ${o.tau})`);
    if (!Number.isInteger(o.budget) || o.budget < 0) throw new Error(`select: the budget must be a non-negative integer (got ${o.budget})`);
    const rt = o.device === 'cpu' ? null : o.device;
    const bs = o.blockSize ?? (rt ? gpuBlockSize(rt, o.dim) : DEDUP_CPU_BLOCK);
    if (!Number.isInteger(bs) || bs < 1) throw new Error(`select: block size must be a positive integer (got ${bs})`);
    if (rt && bs > gpuBlockSize(rt, o.dim)) throw new Error(`select: a block of ${bs} rows is above this device's storage binding limit (largest ${gpuBlockSize(rt, o.dim)})`);
    this.blockSize = bs;
    this.kept = new Float32Array(Math.min(o.budget, bs) * o.dim);
    this.gpu = rt ? new SelectGpu(rt, bs, o.dim, o.budget) : null;
  }

  get full(): boolean {
    return this.count >= this.o.budget;
  }

  /** The kept vectors (count × dim). */
  keptVectors(): Float32Array {
    return this.kept.subarray(0, this.count * this.o.dim);
  }

  /**
   * Offer n ≤ blockSize candidates (unit vectors, row after row, in walk order). Returns, per
   * candidate, 1 = kept, 0 = within τ of a kept pair, 2 = not looked at (the budget was met before it).
   */
  async offer(vectors: Float32Array, n: number): Promise<Uint8Array> {
    const { dim: d, tau, budget } = this.o;
    const bs = this.blockSize;
    if (n > bs) throw new Error(`select: ${n} candidates in one block, above the block size ${bs}`);
    if (vectors.length < n * d) throw new Error(`select: ${vectors.length} values for ${n} candidates of dimension ${d}`);
    const out = new Uint8Array(n).fill(2);
    if (n === 0 || this.full) return out;
    const A = vectors.subarray(0, n * d);
    if (tau >= 1) return this.takeAll(A, n, out); // τ = 1: no diversity bound, duplicates included
    const K = this.count;
    let best: Float32Array, arg: Uint32Array, diag: Float32Array;
    if (this.gpu) {
      ({ best, arg, diag } = await this.gpu.block(A, n, K));
    } else {
      best = new Float32Array(n).fill(ROW_MAX_LOW);
      arg = new Uint32Array(n).fill(ROW_MAX_NONE);
      const ones = new Uint8Array(K).fill(1);
      for (let j0 = 0; j0 < K; j0 += bs) {
        const m = Math.min(bs, K - j0);
        const C = cosineAllPairsCpu(A, this.kept.subarray(j0 * d, (j0 + m) * d), n, m, d, false);
        rowMaxCpu(C, ones, best, arg, n, m, j0);
      }
      diag = cosineAllPairsCpu(A, A, n, n, d, false);
    }
    this.blockPairs += Math.ceil(K / bs) + 1;
    const res: DedupVectorsResult = { kept: new Uint8Array(n), dupOf: new Int32Array(n).fill(-1), cosine: new Float32Array(n), blockSize: bs, blocks: 1, blockPairs: 0 };
    // dedup's rule: dropped when the best cosine to a kept one is ≥ threshold, i.e. kept when < τ.
    decideBlock(0, n, diag, best, arg, tau, res);
    const newly: number[] = [];
    for (let r = 0; r < n; r++) {
      if (this.count + newly.length >= budget) break;
      this.walked++;
      if (res.kept[r]) { out[r] = 1; newly.push(r); } else { out[r] = 0; this.rejected++; }
    }
    this.append(A, newly);
    return out;
  }

  /** Every candidate kept, in walk order, up to the budget (no comparisons). */
  private takeAll(A: Float32Array, n: number, out: Uint8Array): Uint8Array {
    const rows: number[] = [];
    for (let r = 0; r < n && this.count + rows.length < this.o.budget; r++) {
      this.walked++;
      out[r] = 1;
      rows.push(r);
    }
    this.append(A, rows);
    return out;
  }

  private append(A: Float32Array, rows: number[]): void {
    const d = this.o.dim;
    if (!rows.length) return;
    const need = (this.count + rows.length) * d;
    if (need > this.kept.length) {
      const grown = new Float32Array(Math.min(Math.max(this.kept.length * 2, need), this.o.budget * d));
      grown.set(this.kept.subarray(0, this.count * d));
      this.kept = grown;
    }
    const start = this.count;
    rows.forEach((r, k) => this.kept.set(A.subarray(r * d, (r + 1) * d), (start + k) * d));
    this.count += rows.length;
    this.gpu?.appendKept(this.kept, start, rows.length);
  }

  dispose(): void {
    this.gpu?.dispose();
    this.gpu = null;
  }
}

/** Device side: the candidate block, kept row blocks that stay on the device, one score block, the row max. */
class SelectGpu {
  private A: GPUBuffer;
  private C: GPUBuffer;
  private ones: GPUBuffer;
  private best: GPUBuffer;
  private arg: GPUBuffer;
  private keptBlocks: GPUBuffer[] = [];

  constructor(private readonly rt: GpuRuntime, private readonly bs: number, private readonly d: number, budget: number) {
    const bind = rt.limits.maxStorageBufferBindingSize;
    if (budget * 4 > bind) throw new Error(`select: a budget of ${budget} needs a ${budget * 4}-byte mask, above maxStorageBufferBindingSize ${bind}`);
    this.A = rt.acquire(bs * d * 4, 'storage', 'select.A');
    this.C = rt.acquire(bs * bs * 4, 'storage', 'select.scores');
    this.ones = rt.acquire(Math.max(1, budget) * 4, 'storage', 'select.mask');
    rt.write(this.ones, new Uint32Array(Math.max(1, budget)).fill(1));
    this.best = rt.acquire(bs * 4, 'storage', 'select.best');
    this.arg = rt.acquire(bs * 4, 'storage', 'select.arg');
  }

  async block(A: Float32Array, n: number, K: number): Promise<{ best: Float32Array; arg: Uint32Array; diag: Float32Array }> {
    const { rt, bs, d } = this;
    rt.write(this.A, A);
    rt.write(this.best, new Float32Array(n).fill(ROW_MAX_LOW));
    rt.write(this.arg, new Uint32Array(n).fill(ROW_MAX_NONE));
    for (let j = 0; j * bs < K; j++) {
      const m = Math.min(bs, K - j * bs);
      cosineAllPairsGpu(rt, { A: this.A, B: this.keptBlocks[j], C: this.C, N: n, M: m, d, normalize: false });
      rowMaxGpu(rt, { X: this.C, mask: this.ones, best: this.best, arg: this.arg, N: n, M: m, colOff: j * bs });
    }
    // The self block reuses C after the kept blocks' row max has read it (same queue, in order).
    cosineAllPairsGpu(rt, { A: this.A, B: this.A, C: this.C, N: n, M: n, d, normalize: false });
    const diag = await rt.readF32(this.C, n * n);
    const best = await rt.readF32(this.best, n);
    const arg = new Uint32Array(await rt.read(this.arg, n * 4));
    return { best, arg, diag };
  }

  /** Rows [start, start + n) of the kept set (host copy) to their device blocks. */
  appendKept(kept: Float32Array, start: number, n: number): void {
    const { rt, bs, d } = this;
    for (let r = start; r < start + n;) {
      const j = Math.floor(r / bs);
      while (this.keptBlocks.length <= j) this.keptBlocks.push(rt.acquire(bs * d * 4, 'storage', 'select.kept'));
      const end = Math.min(start + n, (j + 1) * bs);
      rt.write(this.keptBlocks[j], kept.subarray(r * d, end * d), (r - j * bs) * d * 4);
      r = end;
    }
  }

  dispose(): void {
    for (const b of [this.A, this.C, this.ones, this.best, this.arg, ...this.keptBlocks]) this.rt.release(b);
    this.keptBlocks = [];
  }
}

/**
 * The walk order: indices with a finite key, by key descending (ties by index). `key` is the
 * rule's preference (FilterResult.rank; −Infinity = excluded by the rule's thresholds).
 */
export function walkOrder(key: ArrayLike<number>): Uint32Array {
  const idx: number[] = [];
  for (let i = 0; i < key.length; i++) if (Number.isFinite(key[i])) idx.push(i);
  idx.sort((a, b) => key[b] - key[a] || a - b);
  return Uint32Array.from(idx);
}

/** Reference: the plain sequential greedy over all vectors in walk order (for tests). */
export function selectGreedyReference(vectors: Float32Array[], order: ArrayLike<number>, tau: number, budget: number): number[] {
  const kept: number[] = [];
  for (let k = 0; k < order.length && kept.length < budget; k++) {
    const v = vectors[order[k]];
    let ok = true;
    for (const j of kept) {
      const u = vectors[j];
      let s = 0;
      for (let t = 0; t < v.length; t++) s += v[t] * u[t];
      if (Math.fround(s) >= tau) { ok = false; break; }
    }
    if (ok) kept.push(order[k]);
  }
  return kept;
}
