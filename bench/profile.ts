// Per-kernel GPU time of one prefill batch, from timestamp queries:
//   npm run build && node dist/bench/profile.js [--model default] [--batch 4] [--len 48]
// Validates the batch against the CPU twin first (like every benchmark here), then profiles a
// second run and prints each kernel's share of the GPU time.

import { parseArgs } from 'node:util';
import { chooseBackend } from '../src/gpu/device.js';
import { GpuRuntime } from '../src/gpu/runtime.js';
import { loadModel } from '../src/models/index.js';
import { validate } from '../src/validate.js';

const { values } = parseArgs({ options: { model: { type: 'string', default: 'default' }, batch: { type: 'string', default: '4' }, len: { type: 'string', default: '48' }, f16: { type: 'boolean', default: false } } });
const B = Number(values.batch), L = Number(values.len);
const d = await chooseBackend('webgpu');
console.error(`concord: ${d.reason}`);
const rt = new GpuRuntime(d.gpu!);
const gpu = await loadModel(values.model, { device: rt, f16: values.f16 });
const cpu = await loadModel(values.model, { device: 'cpu' });
let seed = 7;
const rand = () => ((seed = (seed * 1103515245 + 12345) >>> 0) % (gpu.config.vocabSize - 3)) + 3;
const seqs = Array.from({ length: B }, (_, b) => ({ ids: [1, ...Array.from({ length: L - 1 - 3 * b }, rand)] }));
const [g, c] = [await gpu.scoreBatch(seqs), await cpu.scoreBatch(seqs)];
const worst = Math.max(...seqs.map((_, i) => validate(g[i].logprobs, c[i].logprobs, { atol: 1e-3 }).maxAbsErr));
console.log(`validated against the CPU twin: max |Δ| ${worst.toExponential(2)} nats/token`);
if (!rt.startProfile()) throw new Error('this adapter has no timestamp-query');
const t0 = performance.now();
await gpu.scoreBatch(seqs);
const wall = performance.now() - t0;
const prof = await rt.readProfile();
const total = prof.reduce((s, p) => s + p.ms, 0);
console.log(`${gpu.config.name} on ${gpu.deviceName}: batch ${B}×${L}, wall ${wall.toFixed(0)} ms, GPU ${total.toFixed(0)} ms`);
for (const p of prof) console.log(`${p.kernel.padEnd(44)} ${String(p.calls).padStart(4)} calls ${p.ms.toFixed(1).padStart(9)} ms ${((100 * p.ms) / total).toFixed(1).padStart(5)}%`);
gpu.dispose();
rt.destroy();
