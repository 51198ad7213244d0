// Facility-location marginal gains over a score block (concord select --objective
// facility-location; the greedy is src/select/facility.ts). For candidates r < N and the ground
// rows colOff .. colOff + M − 1 of the block X [N, M] (similarities, from the all-pairs cosine
// kernel):
//   gain[r]   += Σ_c max(0, X[r, c] − cur[colOff + c])
//   active[r] += #{ c : X[r, c] − cur[colOff + c] > −margin }
// shaders/select/facility-gain.wgsl, entries 'main' (a workgroup per candidate, two workgroup
// sums through common/reduce) and 'direct' (an invocation per candidate): the same reduction shape
// as the row max, so it takes the row max's variant (src/gpu/variants.ts 'rowmax'). CPU twin in
// f64, accumulating into gain[r] column after column, so that over the blocks in order it is the
// one sequential sum Σ_i in ground-row order (the greedy's exact gain).

import { ceilDiv, GpuRuntime, ProgramSpec, Uniforms } from '../src/gpu/runtime.js';
import { kernelVariant } from '../src/gpu/variants.js';
import type { RowMaxVariant } from './pool.js';

export const FACILITY_WG = 64;

export function facilityGainSpec(workgroupSize = FACILITY_WG, variant: RowMaxVariant = 'reduce'): ProgramSpec {
  if (workgroupSize & (workgroupSize - 1)) throw new Error(`facility gain: workgroup size ${workgroupSize} is not a power of two`);
  return { shader: 'select/facility-gain', entryPoint: variant === 'direct' ? 'direct' : 'main', constants: { WG: workgroupSize } };
}

export interface FacilityGainArgs {
  /** f32 [N, M] similarities of N candidates with M ground rows */
  X: GPUBuffer;
  /** f32 per ground row (at least colOff + M): its coverage so far (≥ 0) */
  cur: GPUBuffer;
  /** f32 [N], read and updated */
  gain: GPUBuffer;
  /** f32 [N], read and updated: the count of terms above −margin */
  active: GPUBuffer;
  N: number;
  M: number;
  colOff: number;
  margin: number;
  workgroupSize?: number;
  /** default: the row max's variant for this shape */
  variant?: RowMaxVariant;
}

export function facilityGainGpu(rt: GpuRuntime, a: FacilityGainArgs): void {
  if (a.N === 0 || a.M === 0) return;
  const wg = a.workgroupSize ?? FACILITY_WG;
  const variant = a.variant ?? kernelVariant(rt, 'rowmax', { N: a.N, M: a.M });
  const u = rt.uniform(new Uniforms().u32(a.N).u32(a.M).u32(a.colOff).f32(a.margin).build(), 'select.facility-gain.params');
  rt.dispatch(facilityGainSpec(wg, variant), [u, a.X, a.cur, a.gain, a.active], variant === 'direct' ? ceilDiv(a.N, wg) : a.N);
}

/** CPU twin, in f64 (updates gain and active in place; active may be null). */
export function facilityGainCpu(X: ArrayLike<number>, cur: ArrayLike<number>, gain: Float64Array, active: Float64Array | null, N: number, M: number, colOff: number, margin: number): void {
  for (let r = 0; r < N; r++) {
    let g = gain[r], a = 0;
    const o = r * M;
    for (let c = 0; c < M; c++) {
      const t = X[o + c] - cur[colOff + c];
      if (t > 0) g += t;
      if (t > -margin) a++;
    }
    gain[r] = g;
    if (active) active[r] += a;
  }
}
