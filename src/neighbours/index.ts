// The kept-set neighbour search: the one mechanism behind `concord dedup` (src/dedup, input order,
// a threshold) and `concord select` (src/select, score order, τ and a budget).
//
// A reference set of unit vectors grows row by row; each row carries a flag (1 = kept: it counts
// as a neighbour). Candidates come in blocks A of n ≤ blockSize rows. step() decides a block:
//   - against every reference block [j0, j0 + m) below `upto`: C = A·Bᵀ (kernels/cosine.ts
//     cosineAllPairs, normalize = false: the rows are unit vectors already), then the masked
//     running row max over C's columns (kernels/pool.ts rowMax, mask = the flags) — per
//     candidate, the best cosine to a kept reference row and which one. Only 8 bytes per row come
//     back, however many blocks there are;
//   - the block against itself (n×n) comes back whole, and decideBlock makes the greedy decision
//     on the CPU row by row: the better of the reference set's best and this block's rows kept
//     before it; dropped when ≥ threshold.
// The GPU runs cosineAllPairsGpu + rowMaxGpu; on 'cpu' their CPU twins run over the very same
// blocks with the same decision code, so both make the same choices wherever their scores agree
// (f32 vs f64 accumulation: ~1e-7; only a score that close to the threshold could differ).
//
// Reference rows are either streamed through one staging block per use (dedup: every earlier
// record, possibly spilled to a file) or resident on the device in row blocks (select: the kept
// set, at most the budget).

import { cosineAllPairsCpu, cosineAllPairsGpu } from '../../kernels/cosine.js';
import { ROW_MAX_LOW, ROW_MAX_NONE, rowMaxCpu, rowMaxGpu } from '../../kernels/pool.js';
import type { GpuRuntime } from '../gpu/runtime.js';

/** Default row block for the CPU path (a 1024² score block is 4 MB). */
export const CPU_BLOCK = 1024;
/** Largest GPU row block (a 4096² score block is 64 MB). */
export const GPU_BLOCK_MAX = 4096;

/** The largest GPU row block up to GPU_BLOCK_MAX whose score block and rows fit one storage binding. */
export function gpuBlockSize(rt: GpuRuntime, d: number): number {
  const bind = Math.min(rt.limits.maxStorageBufferBindingSize, rt.limits.maxBufferSize);
  return Math.max(1, Math.min(GPU_BLOCK_MAX, Math.floor(Math.sqrt(bind / 4)), Math.floor(bind / (4 * d))));
}

/** Where the reference rows live on the host: rows [start, start + n), row after row. */
export interface ReferenceRows {
  read(start: number, n: number): Float32Array;
}

/** The greedy decisions, per row (a block's rows at [i0, i0 + n)). */
export interface Decisions {
  /** 1 = kept */
  kept: Uint8Array;
  /** the reference row a dropped one is within the threshold of (-1 for kept ones) */
  dupOf: Int32Array;
  /** its cosine (0 for kept ones) */
  cosine: Float32Array;
}

export interface KeptSetOptions {
  /** A WebGPU runtime (the kernels) or 'cpu' (their twins). */
  device: GpuRuntime | 'cpu';
  dim: number;
  blockSize: number;
  /** Most reference rows (the flags' length). */
  capacity: number;
  /** Reference rows stay on the device (added with addRows) instead of being staged per block. */
  resident: boolean;
  /** Buffer labels and error messages ('dedup', 'select'). */
  label: string;
}

/**
 * The greedy decision for rows [i0, i0 + n), in order: the best kept earlier row is the better of
 * the reference set's (best/arg, from the row max) and this block's kept rows before it (diag, the
 * n×n scores of the block with itself). The reference set wins ties (smaller index), as within a block.
 */
export function decideBlock(i0: number, n: number, diag: Float32Array, best: Float32Array, arg: Uint32Array, threshold: number, res: Decisions): void {
  const { kept, dupOf, cosine } = res;
  for (let r = 0; r < n; r++) {
    let v = arg[r] === ROW_MAX_NONE ? -Infinity : best[r];
    let c = arg[r] === ROW_MAX_NONE ? -1 : arg[r];
    const o = r * n;
    for (let k = 0; k < r; k++) {
      if (kept[i0 + k] && diag[o + k] > v) { v = diag[o + k]; c = i0 + k; }
    }
    if (c >= 0 && v >= threshold) {
      dupOf[i0 + r] = c;
      cosine[i0 + r] = v;
    } else {
      kept[i0 + r] = 1;
    }
  }
}

/** The neighbour search over a growing reference set (see the top of this file). */
export class KeptSetSearch {
  readonly blockSize: number;
  /** Host copy of the reference rows' flags (the CPU twins' mask). */
  private readonly flags: Uint8Array;
  private gpu: KeptSetGpu | null;

  constructor(private readonly o: KeptSetOptions) {
    const rt = o.device === 'cpu' ? null : o.device;
    const bs = o.blockSize;
    if (!Number.isInteger(bs) || bs < 1) throw new Error(`${o.label}: block size must be a positive integer (got ${bs})`);
    if (rt && bs > gpuBlockSize(rt, o.dim)) throw new Error(`${o.label}: a block of ${bs} rows needs a ${bs}×${bs} score buffer, above this device's storage binding limit (largest block ${gpuBlockSize(rt, o.dim)})`);
    this.blockSize = bs;
    this.flags = new Uint8Array(o.capacity);
    this.gpu = rt ? new KeptSetGpu(rt, o) : null;
  }

  /**
   * Decide candidate block A (n ≤ blockSize rows) against the flagged reference rows [0, upto):
   * writes res at [i0, i0 + n). Returns the number of reference blocks compared.
   */
  async step(A: Float32Array, n: number, upto: number, refs: ReferenceRows, threshold: number, res: Decisions, i0: number): Promise<number> {
    const { dim: d } = this.o;
    const bs = this.blockSize;
    let best: Float32Array, arg: Uint32Array, diag: Float32Array;
    if (this.gpu) {
      ({ best, arg, diag } = await this.gpu.block(A, n, upto, refs));
    } else {
      best = new Float32Array(n).fill(ROW_MAX_LOW);
      arg = new Uint32Array(n).fill(ROW_MAX_NONE);
      for (let j0 = 0; j0 < upto; j0 += bs) {
        const m = Math.min(bs, upto - j0);
        const C = cosineAllPairsCpu(A, refs.read(j0, m), n, m, d, false);
        rowMaxCpu(C, this.flags, best, arg, n, m, j0);
      }
      diag = cosineAllPairsCpu(A, A, n, n, d, false);
    }
    decideBlock(i0, n, diag, best, arg, threshold, res);
    return Math.ceil(upto / bs);
  }

  /**
   * Reference rows [start, start + flags.length) get their flags (1 = kept); `rows` (their
   * vectors, row after row) are uploaded when the set is resident on the device.
   */
  addRows(start: number, flags: Uint8Array, rows?: Float32Array): void {
    if (start + flags.length > this.o.capacity) throw new Error(`${this.o.label}: reference rows up to ${start + flags.length}, above the capacity ${this.o.capacity}`);
    this.flags.set(flags, start);
    this.gpu?.addRows(start, flags, rows);
  }

  dispose(): void {
    this.gpu?.dispose();
    this.gpu = null;
  }
}

/** Device side: the candidate block, the reference rows (staged or resident), one score block, the flags, the row max. */
class KeptSetGpu {
  private readonly A: GPUBuffer;
  private readonly B: GPUBuffer | null;
  private readonly C: GPUBuffer;
  private readonly mask: GPUBuffer;
  private readonly best: GPUBuffer;
  private readonly arg: GPUBuffer;
  private resident: GPUBuffer[] = [];
  private readonly bs: number;
  private readonly d: number;

  constructor(private readonly rt: GpuRuntime, private readonly o: KeptSetOptions) {
    const bs = (this.bs = o.blockSize), d = (this.d = o.dim), L = o.label;
    const bind = rt.limits.maxStorageBufferBindingSize;
    if (o.capacity * 4 > bind) throw new Error(`${L}: ${o.capacity} rows need a ${o.capacity * 4}-byte mask, above maxStorageBufferBindingSize ${bind}`);
    this.A = rt.acquire(bs * d * 4, 'storage', `${L}.A`);
    this.B = o.resident ? null : rt.acquire(bs * d * 4, 'storage', `${L}.B`);
    this.C = rt.acquire(bs * bs * 4, 'storage', `${L}.scores`);
    this.mask = rt.acquire(Math.max(1, o.capacity) * 4, 'storage', `${L}.kept`);
    this.best = rt.acquire(bs * 4, 'storage', `${L}.best`);
    this.arg = rt.acquire(bs * 4, 'storage', `${L}.arg`);
  }

  async block(A: Float32Array, n: number, upto: number, refs: ReferenceRows): Promise<{ best: Float32Array; arg: Uint32Array; diag: Float32Array }> {
    const { rt, bs, d } = this;
    rt.write(this.A, A);
    rt.write(this.best, new Float32Array(n).fill(ROW_MAX_LOW));
    rt.write(this.arg, new Uint32Array(n).fill(ROW_MAX_NONE));
    for (let j0 = 0; j0 < upto; j0 += bs) {
      const m = Math.min(bs, upto - j0);
      let B = this.resident[j0 / bs];
      if (this.B) { B = this.B; rt.write(B, refs.read(j0, m)); }
      cosineAllPairsGpu(rt, { A: this.A, B, C: this.C, N: n, M: m, d, normalize: false });
      rowMaxGpu(rt, { X: this.C, mask: this.mask, best: this.best, arg: this.arg, N: n, M: m, colOff: j0 });
      // The next block's rows are written into B by the queue: submit what reads this one first.
      if (this.B) rt.submit();
    }
    // The self block reuses C after the reference blocks' row max has read it (same queue, in order).
    cosineAllPairsGpu(rt, { A: this.A, B: this.A, C: this.C, N: n, M: n, d, normalize: false });
    const diag = await rt.readF32(this.C, n * n);
    const best = await rt.readF32(this.best, n);
    const arg = new Uint32Array(await rt.read(this.arg, n * 4));
    return { best, arg, diag };
  }

  addRows(start: number, flags: Uint8Array, rows?: Float32Array): void {
    const { rt, bs, d } = this;
    rt.write(this.mask, Uint32Array.from(flags), start * 4);
    if (!this.o.resident) return;
    if (!rows || rows.length < flags.length * d) throw new Error(`${this.o.label}: a resident reference set needs the rows' vectors`);
    const end = start + flags.length;
    for (let r = start; r < end;) {
      const j = Math.floor(r / bs);
      while (this.resident.length <= j) this.resident.push(rt.acquire(bs * d * 4, 'storage', `${this.o.label}.kept`));
      const stop = Math.min(end, (j + 1) * bs);
      rt.write(this.resident[j], rows.subarray((r - start) * d, (stop - start) * d), (r - j * bs) * d * 4);
      r = stop;
    }
  }

  dispose(): void {
    for (const b of [this.A, this.B, this.C, this.mask, this.best, this.arg, ...this.resident]) if (b) this.rt.release(b);
    this.resident = [];
  }
}
