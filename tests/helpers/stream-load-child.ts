// Child process of tests/stream-load.test.ts (bundled there with esbuild and run with node): loads
// a Hugging Face folder onto the GPU and reports its own peak memory and a few uploaded words.
//   node child.mjs <dir|file.gguf> <stream|eager> <f16: 0|1> <checks JSON: [[name, elementIndex], ...]> [chunkElems]
// stream: loadHf(lazy) + GpuTransformer.create (tensors streamed from their files in chunks);
// eager: the old path: every tensor read as f32 into the JS heap, then uploaded from there.
// Prints one JSON line: baseline RSS, peak RSS (VmHWM, reset to the baseline just before loading
// via /proc/self/clear_refs), the GPU weight bytes, the peak of process.memoryUsage()
// arrayBuffers + external + heapUsed sampled at every progress step, the progress seen, and the
// raw 32-bit words holding each checked element.
import { readFileSync, writeFileSync } from 'node:fs';
import { requestGpu } from '../../src/gpu/device.js';
import { GpuRuntime } from '../../src/gpu/runtime.js';
import { GpuTransformer } from '../../src/models/forward-gpu.js';
import { loadHf } from '../../src/models/hf.js';
import { readGguf } from '../../src/formats/gguf.js';
import { loadGgufWeights } from '../../src/formats/gguf-model.js';
import type { LoadProgress } from '../../src/models/weight-upload.js';

const [dir, mode, f16Arg, checksArg, chunkArg] = process.argv.slice(2);
const status = (k: string) => Number(new RegExp(`${k}:\\s+(\\d+) kB`).exec(readFileSync('/proc/self/status', 'utf8'))![1]) * 1024;
const js = () => { const m = process.memoryUsage(); return { buffers: m.arrayBuffers + m.external, heap: m.heapUsed }; };

const rt = new GpuRuntime(await requestGpu());
const f16 = f16Arg === '1';
// Warm up what every mode needs, so the baseline holds it: the GPU device and one tiny upload.
rt.persistent(new Float32Array(4), 'warmup');
await rt.device.queue.onSubmittedWorkDone();
(globalThis as { gc?: () => void }).gc?.();
writeFileSync('/proc/self/clear_refs', '5'); // VmHWM := current RSS
const baseRss = status('VmRSS');
const base = js();
let peakBuffers = base.buffers, peakHeap = base.heap;
const sample = () => { const m = js(); peakBuffers = Math.max(peakBuffers, m.buffers); peakHeap = Math.max(peakHeap, m.heap); };
const progress: { calls: number; shards: number[]; last: LoadProgress | null } = { calls: 0, shards: [], last: null };
const t0 = Date.now();
let g: GpuTransformer;
if (mode === 'stream') {
  // a .gguf file: its refs (GgufTensorRef), blocks kept or dequantized chunk by chunk
  const w = dir.endsWith('.gguf') ? loadGgufWeights(await readGguf(dir), { lazy: true }) : loadHf(dir, undefined, { lazy: true });
  g = await GpuTransformer.create(rt, w, {
    f16, ...(chunkArg ? { chunkElems: Number(chunkArg) } : {}),
    onProgress: (p) => {
      sample();
      progress.calls++;
      if (!progress.shards.includes(p.shard)) progress.shards.push(p.shard);
      progress.last = p;
    },
  });
} else {
  const w = loadHf(dir);
  sample();
  g = new GpuTransformer(rt, w, { f16 });
  sample();
  await rt.device.queue.onSubmittedWorkDone();
}
sample();
const loadMs = Date.now() - t0;
const peakRss = status('VmHWM');
const values: Record<string, number> = {};
for (const [name, i] of JSON.parse(checksArg) as [string, number][]) {
  const p = g.uploads.placement(name);
  if (!p) throw new Error(`no placement for ${name}`);
  // kept as GGUF blocks: i is a byte of the tensor's blocks (the word holding it is read)
  const byte = p.ggmlType !== undefined ? p.byteOffset + (i & ~3) : p.byteOffset + (p.f16 ? (i & ~1) * 2 : i * 4);
  const word = new Uint32Array(await rt.read(p.buffer, 4, byte))[0];
  values[`${name}@${i}`] = p.f16 && p.ggmlType === undefined ? (i & 1 ? word >>> 16 : word & 0xffff) : word;
}
console.log(JSON.stringify({
  mode, f16: g.f16, baseRss, peakRss, gpuBytes: g.weightBytes, loadMs,
  jsBuffersBase: base.buffers, jsBuffersPeak: peakBuffers, jsHeapBase: base.heap, jsHeapPeak: peakHeap, progress, values,
}));
g.dispose();
rt.destroy();
process.exit(0);
