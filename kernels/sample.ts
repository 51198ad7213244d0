// sample: one next token per row of logits on the GPU — temperature, top-k, top-p, min-p and the
// inverse-CDF draw with the counter-based RNG (shaders/generate/sample.wgsl after
// shaders/generate/rng.wgsl). One workgroup per row, thresholds by bisection over the ordered f32
// bit patterns (no sort). Only the ids (u32 per row) need to cross to the host. CPU twin:
// sampleCpu / sampleRow / sampleMask in src/generate/sampling.ts (which defines the semantics).

import { GpuRuntime, ProgramSpec, Uniforms } from '../src/gpu/runtime.js';
import { composeShader } from '../src/gpu/shaders.js';
import { checkSampling, inverseTemperature, minPLog, type RowSampling } from '../src/generate/sampling.js';

export const SAMPLE_WG = 256;

export function sampleSpec(workgroupSize = SAMPLE_WG): ProgramSpec {
  if (workgroupSize & (workgroupSize - 1)) throw new Error(`sample: workgroup size ${workgroupSize} is not a power of two`);
  return { shader: composeShader('generate/rng+sample', '', ['generate/rng', 'generate/sample']), constants: { WG: workgroupSize } };
}

/** The per-row parameter block of the shader (RowParams: 8 words). */
export function sampleRowParams(params: RowSampling[], vocab: number): ArrayBuffer {
  const buf = new ArrayBuffer(Math.max(1, params.length) * 32);
  const f = new Float32Array(buf), u = new Uint32Array(buf);
  params.forEach(({ sampling: s, step }, r) => {
    checkSampling(s);
    const o = r * 8;
    const greedy = s.temperature === 0;
    f[o] = greedy ? 1 : inverseTemperature(s.temperature);
    u[o + 1] = s.topK;
    f[o + 2] = s.topP;
    f[o + 3] = s.minP > 0 ? minPLog(s.minP) : 0;
    u[o + 4] = s.seed >>> 0;
    u[o + 5] = step >>> 0;
    u[o + 6] = greedy ? 1 : (s.topK > 0 && s.topK < vocab ? 2 : 0) | (s.topP < 1 ? 4 : 0) | (s.minP > 0 ? 8 : 0);
  });
  return buf;
}

export interface SampleOptions {
  /** u32 [rows, vocab], written with the 0/1 kept mask (tests) */
  mask?: GPUBuffer;
  workgroupSize?: number;
}

/**
 * Record the sampling of `rows` rows of f32 logits [rows, vocab]; returns a pooled u32 [rows]
 * buffer of ids (release it when read). params[r] holds row r's settings and RNG counter.
 */
export function sampleGpu(rt: GpuRuntime, logits: GPUBuffer, rows: number, vocab: number, params: RowSampling[], opts: SampleOptions = {}): GPUBuffer {
  if (params.length !== rows) throw new Error(`sampleGpu: ${params.length} sampling settings for ${rows} rows`);
  if (vocab <= 0) throw new Error('sampleGpu: empty vocabulary');
  const ids = rt.acquire(Math.max(rows, 1) * 4, 'storage', 'sample.ids');
  if (rows === 0) return ids;
  const u = rt.uniform(new Uniforms().u32(rows).u32(vocab).u32(opts.mask ? 1 : 0).build(), 'sample.params');
  const rowp = rt.scratch(rows * 32, 'sample.rows');
  rt.write(rowp, new Uint8Array(sampleRowParams(params, vocab)));
  const mask = opts.mask ?? rt.scratch(16, 'sample.nomask');
  rt.dispatch(sampleSpec(opts.workgroupSize), [u, logits, rowp, ids, mask], rows);
  return ids;
}

/** Sample and read the ids back (the one readback of a decode step). */
export async function sampleGpuRead(rt: GpuRuntime, logits: GPUBuffer, rows: number, vocab: number, params: RowSampling[]): Promise<Int32Array> {
  const ids = sampleGpu(rt, logits, rows, vocab, params);
  const out = new Int32Array(await rt.read(ids, rows * 4));
  rt.release(ids);
  return out;
}

export function rngCheckSpec(): ProgramSpec {
  return { shader: composeShader('generate/rng+rng-check', '', ['generate/rng', 'generate/rng-check']) };
}

/** For tests: [fmix32(seed), bits of uniformAt(seed, step)] per (seed, step) pair, from rng.wgsl. */
export async function rngGpu(rt: GpuRuntime, pairs: Uint32Array): Promise<Uint32Array> {
  const n = pairs.length / 2;
  const out = rt.acquire(Math.max(n, 1) * 8);
  const u = rt.uniform(new Uniforms().u32(n).build(), 'rng.params');
  const inp = rt.upload(pairs, 'rng.pairs');
  rt.dispatch(rngCheckSpec(), [u, inp, out], Math.ceil(n / 64));
  const res = new Uint32Array(await rt.read(out, n * 8));
  rt.release(out);
  rt.release(inp);
  return res;
}
