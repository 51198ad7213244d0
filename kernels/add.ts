// add: residual add in place, y += x over n elements. shaders/add.wgsl (one element per
// invocation, folded 1-D grid), with the CPU twin below.

import { ceilDiv, GpuRuntime, ProgramSpec, Uniforms } from '../src/gpu/runtime.js';

export const ADD_WG = 256;

export function addSpec(workgroupSize = ADD_WG): ProgramSpec {
  return { shader: 'add', constants: { WG: workgroupSize } };
}

export interface AddArgs {
  /** Read: n f32. */
  x: GPUBuffer;
  /** Read and written: y += x. Must not be the same buffer as x (use a scale op for y *= 2). */
  y: GPUBuffer;
  n: number;
  /** Invocations per workgroup (default 256); tests shrink it to exercise the folded grid. */
  workgroupSize?: number;
}

/** Record y += x. */
export function addGpu(rt: GpuRuntime, a: AddArgs): void {
  if (a.x === a.y) throw new Error('add: x and y must be different buffers');
  if (a.n <= 0) return;
  const wg = a.workgroupSize ?? ADD_WG;
  const u = rt.uniform(new Uniforms().u32(a.n).build(), 'add.params');
  rt.dispatch(addSpec(wg), [u, a.x, a.y], ceilDiv(a.n, wg));
}

/** CPU twin: returns y + x (a new array; y is untouched). */
export function addCpu(y: Float32Array, x: Float32Array): Float32Array {
  if (x.length !== y.length) throw new Error(`add: lengths differ (${y.length} vs ${x.length})`);
  const out = new Float32Array(y.length);
  for (let i = 0; i < y.length; i++) out[i] = y[i] + x[i];
  return out;
}
