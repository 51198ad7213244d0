// `npm run build && node dist/bench/select-fl.js [--n 2000] [--k 200] [--dim 384] [--devices cpu,webgpu]`:
// the facility-location greedy of `concord select --objective facility-location`
// (src/select/facility.ts) on the CPU (f64) and on WebGPU (f32 gain kernel + f64 recheck), on the
// same n synthetic unit vectors (40 Gaussian clusters in `dim` dimensions — the size of
// all-MiniLM-L6-v2's embeddings — plus 5% exact or near copies, seeded), choosing k. The encoder is
// not part of it (its cost is `concord embed`'s). Validated before anything is reported: both
// devices must choose the same elements with the same f64 gains, and the first min(k, 5) must equal
// the brute-force f64 greedy's; otherwise INVALID and exit 1.

import { parseArgs } from 'node:util';
import { facilityLocation, facilityLocationReference, type FacilityResult } from '../src/select/facility.js';
import { requestGpu } from '../src/gpu/device.js';
import { GpuRuntime } from '../src/gpu/runtime.js';
import { rng } from '../src/util/rng.js';

const { values: a } = parseArgs({ options: { n: { type: 'string' }, k: { type: 'string' }, dim: { type: 'string' }, devices: { type: 'string' } } });
const n = Number(a.n ?? 2000), k = Number(a.k ?? 200), d = Number(a.dim ?? 384);
const devices = (a.devices ?? 'cpu,webgpu').split(',');

function vectors(): Float32Array[] {
  const r = rng(1234);
  const g = () => Math.sqrt(-2 * Math.log(Math.max(r(), 1e-12))) * Math.cos(2 * Math.PI * r());
  const centres = Array.from({ length: 40 }, () => Float32Array.from({ length: d }, g));
  const unit = (v: Float32Array) => { const s = Math.hypot(...v); return v.map((x) => x / s); };
  const out: Float32Array[] = [];
  while (out.length < n) {
    if (out.length > 10 && r() < 0.05) {
      const src = Float32Array.from(out[Math.floor(r() * out.length)]);
      if (r() < 0.5) src[Math.floor(r() * d)] += 1e-6;
      out.push(unit(src));
      continue;
    }
    const c = centres[Math.floor(r() * centres.length)];
    out.push(unit(Float32Array.from({ length: d }, (_, i) => c[i] + 0.8 * g())));
  }
  return out;
}

const vs = vectors();
const E = new Float32Array(n * d);
vs.forEach((v, i) => E.set(v, i * d));
const results: Record<string, FacilityResult & { ms: number }> = {};
for (const dev of devices) {
  let rt: GpuRuntime | null = null;
  if (dev === 'webgpu') rt = new GpuRuntime(await requestGpu());
  const t0 = performance.now();
  const res = await facilityLocation(E, n, { budget: k, dim: d, device: rt ?? 'cpu' });
  results[dev] = { ...res, ms: performance.now() - t0 };
  console.log(`${dev}${rt ? ` (${rt.name})` : ''}: ${results[dev].ms.toFixed(0)} ms; ${res.evaluated} gains in ${res.batches} batches (blocks of ${res.blockSize}), ${res.rechecked} rechecked in f64, f(S) = ${res.value.toFixed(4)}`);
}
const [first, ...rest] = Object.values(results);
let ok = true;
for (const r of rest) if (JSON.stringify(r.chosen) !== JSON.stringify(first.chosen) || JSON.stringify(r.gains) !== JSON.stringify(first.gains)) ok = false;
const ref = facilityLocationReference(vs, Math.min(k, 5));
if (JSON.stringify(ref.chosen) !== JSON.stringify(first.chosen.slice(0, ref.chosen.length))) ok = false;
if (!ok) {
  console.log('INVALID: the devices or the brute-force reference disagree');
  process.exit(1);
}
console.log(`n = ${n}, k = ${k}, dim = ${d}: the same ${first.chosen.length} elements on ${Object.keys(results).join(' and ')} (and the reference's first ${ref.chosen.length})`);
