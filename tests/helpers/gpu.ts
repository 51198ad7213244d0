// Shared test setup: one WebGPU runtime per test file, on whatever adapter requestGpu() finds
// (SwiftShader here). With CONCORD_REQUIRE_GPU=1 (CI) a missing adapter fails the suite instead
// of skipping it; the adapter's name is printed so the log shows what actually ran.

import { requestGpu, requireGpuFromEnv } from '../../src/gpu/device.js';
import { GpuRuntime } from '../../src/gpu/runtime.js';

let rt: GpuRuntime | null | undefined;

export async function gpuRuntime(): Promise<GpuRuntime | null> {
  if (rt !== undefined) return rt;
  try {
    const handle = await requestGpu();
    rt = new GpuRuntime(handle);
    const i = handle.info;
    console.log(`[concord tests] WebGPU adapter: ${i.description} (${i.vendor}/${i.architecture}${i.software ? ', software' : ''}) — ${handle.driverNote}`);
  } catch (e) {
    if (requireGpuFromEnv()) throw new Error(`CONCORD_REQUIRE_GPU=1 but no WebGPU adapter: ${(e as Error).message}`);
    console.warn(`[concord tests] no WebGPU adapter, GPU tests skipped: ${(e as Error).message}`);
    rt = null;
  }
  return rt;
}

export { rng } from '../../src/util/rng.js';

export function randn(r: () => number, n: number, scale = 1): Float32Array {
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    const u = Math.max(r(), 1e-12), v = r();
    out[i] = scale * Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * v);
  }
  return out;
}

export const randInt = (r: () => number, lo: number, hi: number): number => lo + Math.floor(r() * (hi - lo + 1));
