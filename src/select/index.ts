// Budgeted, diversity-aware selection (DEITA's score-first greedy; Liu et al. 2024, "What Makes
// Good Data for Alignment?"): walk the pairs by the rule's score, best first, and keep one only if
// the cosine of its embedding with EVERY pair kept so far is below τ, until the budget is met.
//
// Streaming, through the kept-set neighbour search `concord dedup` shares (src/neighbours): the kept set is resident (≤ budget rows of d floats; on the GPU in row blocks of
// `blockSize` that stay on the device), candidates arrive in blocks of ≤ blockSize rows in walk
// order. For a candidate block A (n rows):
//   - against every kept block K_j: C = A·K_jᵀ (kernels/cosine.ts cosineAllPairs, normalize =
//     false: unit vectors), then the running row max over C's columns (kernels/pool.ts rowMax with
//     an all-ones mask) — per candidate, the best cosine to any kept pair and which one;
//   - the block against itself (n×n) comes back whole and the greedy decision is dedup's
//     (src/neighbours decideBlock): row by row, the better of the kept set's best and this
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

import type { GpuRuntime } from '../gpu/runtime.js';
import { CPU_BLOCK, gpuBlockSize, KeptSetSearch } from '../neighbours/index.js';

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
  private search: KeptSetSearch | null;

  constructor(private readonly o: DiversityOptions) {
    if (!(o.tau >= -1 && o.tau <= 1)) throw new Error(`select: τ must be in [-1, 1] (got ${o.tau})`);
    if (!Number.isInteger(o.budget) || o.budget < 0) throw new Error(`select: the budget must be a non-negative integer (got ${o.budget})`);
    const rt = o.device === 'cpu' ? null : o.device;
    const bs = o.blockSize ?? (rt ? gpuBlockSize(rt, o.dim) : CPU_BLOCK);
    // The reference set is the kept set alone (every row flagged), resident on the device.
    this.search = new KeptSetSearch({ device: o.device, dim: o.dim, blockSize: bs, capacity: o.budget, resident: true, label: 'select' });
    this.blockSize = bs;
    this.kept = new Float32Array(Math.min(o.budget, bs) * o.dim);
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
    if (!this.search) throw new Error('select: the selector was disposed');
    const A = vectors.subarray(0, n * d);
    if (tau >= 1) return this.takeAll(A, n, out); // τ = 1: no diversity bound, duplicates included
    const res = { kept: new Uint8Array(n), dupOf: new Int32Array(n).fill(-1), cosine: new Float32Array(n) };
    // dedup's rule: dropped when the best cosine to a kept one is ≥ threshold, i.e. kept when < τ.
    const rows = { read: (s: number, m: number) => this.kept.subarray(s * d, (s + m) * d) };
    this.blockPairs += (await this.search.step(A, n, this.count, rows, tau, res, 0)) + 1;
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
    this.search?.addRows(start, new Uint8Array(rows.length).fill(1), this.kept.subarray(start * d, this.count * d));
  }

  dispose(): void {
    this.search?.dispose();
    this.search = null;
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
