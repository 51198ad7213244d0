// Facility location (concord select --objective facility-location; Superfiltering.D's diversity
// step): choose S greedily, one element at a time up to the budget, maximising
//   f(S) = Σ_i max_{j∈S} s(i, j),   s(i, j) = max(0, e_i · e_j)
// over the candidates' unit embeddings e (the cosine, clamped at 0; f(∅) = 0). With cur_i =
// max_{j∈S} s(i, j) the marginal gain of a candidate c is gain(c) = Σ_i max(0, e_i·e_c − cur_i).
// Ties go to the smaller index (the caller lists candidates best-ranked first).
//
// Exact arithmetic, one definition: every gain that decides a choice is the f64 value
//   gain(c) = Σ_{i = 0..n−1, in order} max(0, dot(e_i, e_c) − cur_i),  dot summed in f64 over k in order,
// and cur_i is kept in f64 from the same dot products. The CPU path computes these gains (the
// facility-gain kernel's f64 twin over f64 score blocks); the GPU path computes them in f32 with a
// bound on the error, and the host recomputes in f64 every candidate that the bound cannot rule
// out. So both paths choose the same elements by construction:
//
//   Lazy greedy in batches. Each candidate c carries U_c, an upper bound on its current gain (+∞
//   at first; gains only fall as cur grows — submodularity — and the f64 sums are monotone too,
//   every rounding being monotone). A step pops the candidates of highest U (ties: smaller index)
//   a batch at a time and evaluates them: exactly on the CPU (L_c = U_c = gain), in f32 on the
//   GPU (L_c = g32 − ε_c, U_c = g32 + ε_c). It stops once M = max L over the evaluated exceeds
//   the U of every candidate not evaluated in this step. The winner is among the evaluated with
//   U_c ≥ M (it has gain ≥ M and every other candidate has less); the GPU path recomputes those
//   in f64 and takes the largest (smaller index on ties), the CPU path has them already.
//
//   The f32 error bound (u = 2⁻²⁴, ν = the largest squared row norm, A_c = the kernel's count of
//   terms above −margin, B = the score blocks): a dot product of d terms in f32, in any order, is
//   within γ_d·ν of the f64 one (γ_d = d·u / (1 − d·u)); the f32 coverage within u·ν, and the
//   subtraction rounds by at most 2u·ν, so each term max(0, s − cur) is within τ = γ_d·ν + 3u·ν
//   of its f64 value, and is 0 in both unless s − cur > −τ in f32 (margin = 2τ counts those). The
//   f32 sum of at most A_c + B nonzero additions is within γ_{A_c+B}·(g32 + A_c·τ). ε_c is twice
//   the sum of the two. (The matmul behind the score blocks is f32 in every variant.)
//
// Memory: the candidates' embeddings (n × d floats; on the GPU in row blocks) and O(n) state. The
// n × n similarity matrix is never formed: gains are computed from score blocks of
// batch × blockSize. Work: the first step evaluates every candidate (n² dot products); later steps
// evaluate a batch or a few (lazy), plus n dot products for the coverage update and, on the GPU,
// n per rechecked candidate. Worst case O(k·n²) dot products.

import { cosineAllPairsCpu64, cosineAllPairsGpu } from '../../kernels/cosine.js';
import { facilityGainCpu, facilityGainGpu } from '../../kernels/facility.js';
import type { GpuRuntime } from '../gpu/runtime.js';
import { CPU_BLOCK, gpuBlockSize } from '../neighbours/index.js';

export interface FacilityOptions {
  budget: number;
  dim: number;
  device: GpuRuntime | 'cpu';
  /** ground rows per score block (default: CPU 1024, GPU the dedup block size up to 4096) */
  blockSize?: number;
  /** candidates evaluated in a step's first batch; doubled for each further batch, up to blockSize (default CPU 4, GPU 64) */
  batch?: number;
}

export interface FacilityResult {
  /** candidate indices in the order chosen */
  chosen: number[];
  /** the f64 marginal gain of each when chosen */
  gains: number[];
  /** f(S) in f64 */
  value: number;
  /** gain evaluations (candidates × steps), by the kernel or its twin */
  evaluated: number;
  /** GPU path: candidates recomputed in f64 because the f32 bound could not rule them out */
  rechecked: number;
  /** batches evaluated */
  batches: number;
  blockSize: number;
}

const U32 = 2 ** -24;
const gamma = (m: number): number => (m * U32) / (1 - m * U32);

/** Gains of a batch of candidates against the whole ground set: values and an error bound (0 when exact). */
interface GainBackend {
  evaluate(cands: number[], cur: Float64Array): Promise<{ gain: Float64Array; err: Float64Array }>;
  /** The coverage changed (before the next evaluate). */
  curChanged(): void;
  dispose(): void;
}

/** The exact gains: f64 score blocks (cosineAllPairsCpu64) and the kernel's f64 twin, blocks in order. */
function exactGains(E: Float32Array, n: number, d: number, bs: number, cands: number[], cur: Float64Array): Float64Array {
  const b = cands.length;
  const A = gather(E, d, cands);
  const gain = new Float64Array(b);
  for (let j0 = 0; j0 < n; j0 += bs) {
    const m = Math.min(bs, n - j0);
    const C = cosineAllPairsCpu64(A, E.subarray(j0 * d, (j0 + m) * d), b, m, d, false);
    facilityGainCpu(C, cur, gain, null, b, m, j0, 0);
  }
  return gain;
}

function gather(E: Float32Array, d: number, rows: number[]): Float32Array {
  const A = new Float32Array(rows.length * d);
  rows.forEach((c, r) => A.set(E.subarray(c * d, (c + 1) * d), r * d));
  return A;
}

class CpuGains implements GainBackend {
  constructor(private readonly E: Float32Array, private readonly n: number, private readonly d: number, private readonly bs: number) {}
  async evaluate(cands: number[], cur: Float64Array) {
    return { gain: exactGains(this.E, this.n, this.d, this.bs, cands, cur), err: new Float64Array(cands.length) };
  }
  curChanged(): void {}
  dispose(): void {}
}

/** Ground rows resident in row blocks; per batch: the candidates' rows, a score block per row block, the gain kernel. */
class GpuGains implements GainBackend {
  private readonly rows: GPUBuffer[] = [];
  private readonly A: GPUBuffer;
  private readonly C: GPUBuffer;
  private readonly cur: GPUBuffer;
  private readonly gain: GPUBuffer;
  private readonly active: GPUBuffer;
  private curDirty = true;
  private readonly tau: number;

  constructor(private readonly rt: GpuRuntime, private readonly E: Float32Array, private readonly n: number, private readonly d: number, private readonly bs: number) {
    const bind = Math.min(rt.limits.maxStorageBufferBindingSize, rt.limits.maxBufferSize);
    if (n * 4 > bind) throw new Error(`select: ${n} candidates need a ${n * 4}-byte coverage buffer, above this device's storage binding limit ${bind}`);
    for (let j0 = 0; j0 < n; j0 += bs) {
      const m = Math.min(bs, n - j0);
      const b = rt.acquire(bs * d * 4, 'storage', 'select.fl.rows');
      rt.write(b, E.subarray(j0 * d, (j0 + m) * d));
      this.rows.push(b);
    }
    this.A = rt.acquire(bs * d * 4, 'storage', 'select.fl.cands');
    this.C = rt.acquire(bs * bs * 4, 'storage', 'select.fl.scores');
    this.cur = rt.acquire(Math.max(1, n) * 4, 'storage', 'select.fl.cur');
    this.gain = rt.acquire(bs * 4, 'storage', 'select.fl.gain');
    this.active = rt.acquire(bs * 4, 'storage', 'select.fl.active');
    let nu = 0;
    for (let i = 0; i < n; i++) {
      let s = 0;
      for (let k = 0; k < d; k++) s += E[i * d + k] * E[i * d + k];
      nu = Math.max(nu, s);
    }
    this.tau = gamma(d) * nu + 3 * U32 * nu;
  }

  curChanged(): void {
    this.curDirty = true;
  }

  async evaluate(cands: number[], cur: Float64Array) {
    const { rt, n, d, bs } = this;
    const b = cands.length;
    if (b > bs) throw new Error(`select: a batch of ${b} above the block size ${bs}`);
    if (this.curDirty) { rt.write(this.cur, Float32Array.from(cur)); this.curDirty = false; }
    rt.write(this.A, gather(this.E, d, cands));
    rt.write(this.gain, new Float32Array(b));
    rt.write(this.active, new Float32Array(b));
    const margin = 2 * this.tau;
    let blocks = 0;
    for (let j0 = 0; j0 < n; j0 += bs, blocks++) {
      const m = Math.min(bs, n - j0);
      cosineAllPairsGpu(rt, { A: this.A, B: this.rows[j0 / bs], C: this.C, N: b, M: m, d, normalize: false });
      facilityGainGpu(rt, { X: this.C, cur: this.cur, gain: this.gain, active: this.active, N: b, M: m, colOff: j0, margin });
    }
    const g32 = await rt.readF32(this.gain, b);
    const a32 = await rt.readF32(this.active, b);
    const gain = new Float64Array(b), err = new Float64Array(b);
    for (let r = 0; r < b; r++) {
      const A = a32[r], terms = A * this.tau;
      gain[r] = g32[r];
      err[r] = 2 * (terms + gamma(A + blocks) * (Math.abs(g32[r]) + terms));
      if (!Number.isFinite(g32[r])) throw new Error(`select: the facility-gain kernel returned ${g32[r]} (non-finite embeddings?)`);
    }
    return { gain, err };
  }

  dispose(): void {
    for (const b of [...this.rows, this.A, this.C, this.cur, this.gain, this.active]) this.rt.release(b);
    this.rows.length = 0;
  }
}

/** Max-heap of candidate indices by (key desc, index asc). */
class BoundHeap {
  private readonly h: number[] = [];
  constructor(private readonly key: Float64Array) {}
  get size(): number { return this.h.length; }
  peek(): number { return this.h[0]; }
  private above(a: number, b: number): boolean {
    const ka = this.key[a], kb = this.key[b];
    return ka > kb || (ka === kb && a < b);
  }
  push(x: number): void {
    const h = this.h;
    let i = h.push(x) - 1;
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (!this.above(h[i], h[p])) break;
      [h[i], h[p]] = [h[p], h[i]];
      i = p;
    }
  }
  pop(): number {
    const h = this.h, top = h[0], last = h.pop()!;
    if (h.length) {
      h[0] = last;
      let i = 0;
      for (;;) {
        const l = 2 * i + 1, r = l + 1;
        let m = i;
        if (l < h.length && this.above(h[l], h[m])) m = l;
        if (r < h.length && this.above(h[r], h[m])) m = r;
        if (m === i) break;
        [h[i], h[m]] = [h[m], h[i]];
        i = m;
      }
    }
    return top;
  }
}

/**
 * Greedy facility location over n unit vectors (row after row in E, candidate order = index
 * order for ties), up to `budget` elements (all n when budget ≥ n). See the top of this file.
 */
export async function facilityLocation(E: Float32Array, n: number, o: FacilityOptions): Promise<FacilityResult> {
  const d = o.dim;
  if (!Number.isInteger(o.budget) || o.budget < 0) throw new Error(`select: the budget must be a non-negative integer (got ${o.budget})`);
  if (E.length < n * d) throw new Error(`select: ${E.length} values for ${n} vectors of dimension ${d}`);
  for (let i = 0; i < n * d; i++) if (!Number.isFinite(E[i])) throw new Error(`select: embedding ${Math.floor(i / d)} has a non-finite value`);
  const rt = o.device === 'cpu' ? null : o.device;
  const bs = o.blockSize ?? (rt ? gpuBlockSize(rt, d) : CPU_BLOCK);
  if (!Number.isInteger(bs) || bs < 1) throw new Error(`select: block size must be a positive integer (got ${bs})`);
  if (rt && bs > gpuBlockSize(rt, d)) throw new Error(`select: a block of ${bs} rows needs a ${bs}×${bs} score buffer, above this device's storage binding limit (largest block ${gpuBlockSize(rt, d)})`);
  const batch0 = Math.min(bs, Math.max(1, o.batch ?? (rt ? 64 : 4)));
  const backend: GainBackend = rt ? new GpuGains(rt, E, n, d, bs) : new CpuGains(E, n, d, bs);
  const exact = !rt;
  const cur = new Float64Array(n);
  const U = new Float64Array(n).fill(Infinity);
  const L = new Float64Array(n);
  const heap = new BoundHeap(U);
  for (let c = 0; c < n; c++) heap.push(c);
  const res: FacilityResult = { chosen: [], gains: [], value: 0, evaluated: 0, rechecked: 0, batches: 0, blockSize: bs };
  try {
    while (res.chosen.length < o.budget && heap.size > 0) {
      const seen: number[] = [];
      let M = -Infinity;
      for (let batch = batch0; heap.size > 0 && !(U[heap.peek()] < M); batch = Math.min(bs, batch * 2)) {
        const cands: number[] = [];
        while (cands.length < batch && heap.size > 0) cands.push(heap.pop());
        const { gain, err } = await backend.evaluate(cands, cur);
        res.evaluated += cands.length;
        res.batches++;
        cands.forEach((c, r) => {
          L[c] = gain[r] - err[r];
          U[c] = gain[r] + err[r];
          if (L[c] > M) M = L[c];
        });
        seen.push(...cands);
      }
      // The winner has U ≥ M; on the GPU those are recomputed exactly.
      const short = seen.filter((c) => U[c] >= M);
      if (!exact) {
        for (let k = 0; k < short.length; k += bs) {
          const part = short.slice(k, k + bs);
          const g = exactGains(E, n, d, bs, part, cur);
          part.forEach((c, r) => { L[c] = U[c] = g[r]; });
        }
        res.rechecked += short.length;
      }
      let w = -1;
      for (const c of short) if (w < 0 || U[c] > U[w] || (U[c] === U[w] && c < w)) w = c;
      for (const c of seen) if (c !== w) heap.push(c);
      res.chosen.push(w);
      res.gains.push(U[w]);
      // Coverage: cur_i = max(cur_i, dot(e_i, e_w)) in f64 (the same dot products as the gains).
      const s = cosineAllPairsCpu64(E.subarray(w * d, (w + 1) * d), E.subarray(0, n * d), 1, n, d, false);
      for (let i = 0; i < n; i++) if (s[i] > cur[i]) cur[i] = s[i];
      backend.curChanged();
    }
  } finally {
    backend.dispose();
  }
  for (let i = 0; i < n; i++) res.value += cur[i];
  return res;
}

/** Reference for tests: the plain greedy, every gain of every step recomputed in f64 from scratch. */
export function facilityLocationReference(vectors: Float32Array[], budget: number): { chosen: number[]; gains: number[] } {
  const n = vectors.length;
  const dot = (a: Float32Array, b: Float32Array) => { let s = 0; for (let k = 0; k < a.length; k++) s += a[k] * b[k]; return s; };
  const cur = new Float64Array(n);
  const taken = new Uint8Array(n);
  const chosen: number[] = [], gains: number[] = [];
  while (chosen.length < Math.min(budget, n)) {
    let w = -1, best = -Infinity;
    for (let c = 0; c < n; c++) {
      if (taken[c]) continue;
      let g = 0;
      for (let i = 0; i < n; i++) { const t = dot(vectors[c], vectors[i]) - cur[i]; if (t > 0) g += t; }
      if (g > best) { best = g; w = c; }
    }
    taken[w] = 1;
    chosen.push(w);
    gains.push(best);
    for (let i = 0; i < n; i++) cur[i] = Math.max(cur[i], dot(vectors[w], vectors[i]));
  }
  return { chosen, gains };
}
