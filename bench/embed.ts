// Sentence-embedding throughput: concord on the CPU (onnxruntime, as shipped and f32 compute; the
// TypeScript twin), concord on WebGPU, and
// onnxruntime-node (CPU) on the very same model_q4.onnx, over the sentences of
// tests/fixtures/sentences.txt. Every path is validated against ONNX Runtime before it is timed
// (min cosine per sentence); the first WebGPU run (pipeline compilation, weight upload) is
// reported apart from the timed runs.
//
//   npx tsc -p tsconfig.build.json && node dist/bench/embed.js [--gpu-sentences N (0: none)] [--no-gpu] [--dedup N]
//
// --dedup N (default 2000, 0 to skip): the comparison stage of `concord dedup` (src/dedup/index.ts)
// on N unit vectors (the fixture's embeddings with noise: near-duplicates included), CPU twins
// against the GPU kernels, checked to keep the same records before either is timed.
//

import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as ort from 'onnxruntime-node';
import { meanPoolNormalizeCpu, padBatch } from '../src/encoder/bert-cpu.js';
import { dedupVectors, VectorStore, type DedupVectorsResult } from '../src/dedup/index.js';
import { createEmbedder, loadEmbedderSources, resolveEmbedderPath, type Embedder } from '../src/encoder/index.js';
import { ortEncoderFor } from '../src/encoder/ort-bert.js';
import { requestGpu } from '../src/gpu/device.js';
import { GpuRuntime } from '../src/gpu/runtime.js';
import { packageRoot } from '../src/env.js';

function sentences(): string[] {
  const file = join(packageRoot(), 'tests', 'fixtures', 'sentences.txt');
  return readFileSync(file, 'utf8').split('\n').map((l) => l.trim()).filter((l) => l && !l.startsWith('#'));
}

const now = (): number => performance.now();

function minCosine(a: Float32Array[], b: Float32Array[]): number {
  let min = Infinity;
  a.forEach((x, i) => {
    let s = 0;
    for (let k = 0; k < x.length; k++) s += x[k] * b[i][k];
    min = Math.min(min, s);
  });
  return min;
}

async function ortEmbed(sess: ort.InferenceSession, seqs: number[][], d: number, batchSize: number): Promise<Float32Array[]> {
  const out: Float32Array[] = new Array(seqs.length);
  const order = seqs.map((_, i) => i).sort((x, y) => seqs[x].length - seqs[y].length);
  for (let s = 0; s < order.length; s += batchSize) {
    const idx = order.slice(s, s + batchSize);
    const b = padBatch(idx.map((i) => seqs[i]));
    const shape = [b.B, b.L];
    const i64 = (x: ArrayLike<number>): ort.Tensor => new ort.Tensor('int64', BigInt64Array.from(Array.from(x, (v) => BigInt(v))), shape);
    const res = await sess.run({ input_ids: i64(b.ids), attention_mask: i64(b.mask), token_type_ids: i64(new Int32Array(b.B * b.L)) });
    const v = meanPoolNormalizeCpu(res.last_hidden_state.data as Float32Array, b.mask, b.B, b.L, d);
    idx.forEach((i, j) => { out[i] = v.slice(j * d, (j + 1) * d); });
  }
  return out;
}

async function timeRuns(run: () => Promise<unknown>, minMs: number, maxRuns: number): Promise<{ ms: number; runs: number }> {
  const t0 = now();
  let runs = 0;
  while (runs < maxRuns && (runs === 0 || now() - t0 < minMs)) { await run(); runs++; }
  return { ms: (now() - t0) / runs, runs };
}

/** N unit vectors: the given ones cycled, each with Gaussian noise of `noise` per component. */
function noisyVectors(base: Float32Array[], N: number, noise: number, seed = 1): VectorStore {
  let a = seed >>> 0;
  const uniform = (): number => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  const d = base[0].length;
  const store = new VectorStore(d);
  const v = new Float32Array(d);
  for (let i = 0; i < N; i++) {
    const b = base[i % base.length];
    let n = 0;
    for (let k = 0; k < d; k++) {
      v[k] = b[k] + noise * Math.sqrt(-2 * Math.log(Math.max(uniform(), 1e-12))) * Math.cos(2 * Math.PI * uniform());
      n += v[k] * v[k];
    }
    for (let k = 0; k < d; k++) v[k] /= Math.sqrt(n);
    store.append(v);
  }
  return store;
}

const keptCount = (r: DedupVectorsResult): number => r.kept.reduce((a, k) => a + k, 0);

async function dedupLine(what: string, store: VectorStore, run: () => Promise<DedupVectorsResult>, extra = ''): Promise<DedupVectorsResult> {
  const t0 = now();
  const r = await run();
  const ms = now() - t0;
  const gflop = (2 * r.blockPairs * r.blockSize * r.blockSize * store.d) / 1e9; // upper bound: edge blocks are smaller
  console.log(`${what.padEnd(52)} ${(store.count / (ms / 1000)).toFixed(1).padStart(8)} records/s  (${ms.toFixed(0)} ms for ${store.count}; ${r.blocks} blocks of ${r.blockSize}, <= ${(gflop / (ms / 1000)).toFixed(2)} GFLOP/s; ${keptCount(r)} kept)${extra}`);
  return r;
}

async function main(): Promise<void> {
  const args = process.argv.slice(2);
  const gpuN = args.includes('--gpu-sentences') ? Number(args[args.indexOf('--gpu-sentences') + 1]) : 16;
  const noGpu = args.includes('--no-gpu');
  const dedupN = args.includes('--dedup') ? Number(args[args.indexOf('--dedup') + 1]) : 2000;
  const texts = sentences();
  const src = await loadEmbedderSources('minilm');
  const d = src.weights.config.dim;
  const cpu = createEmbedder(src, { device: 'cpu' });
  const seqs = texts.map((t) => cpu.tokenizer.encode(t).ids);
  const tokens = seqs.reduce((a, s) => a + s.length, 0);
  const model = join(resolveEmbedderPath('minilm').dir, 'model_q4.onnx');
  console.log(`model: ${src.weights.config.name}`);
  console.log(`sentences: ${texts.length} from tests/fixtures/sentences.txt, ${tokens} tokens (mean ${(tokens / texts.length).toFixed(1)} with [CLS]/[SEP])`);
  const line = (what: string, n: number, ms: number, extra = ''): void =>
    console.log(`${what.padEnd(52)} ${(n / (ms / 1000)).toFixed(1).padStart(8)} sentences/s  (${ms.toFixed(0)} ms for ${n})${extra}`);

  // onnxruntime-node, CPU, default threading.
  const sess = await ort.InferenceSession.create(model);
  const ref = await ortEmbed(sess, seqs, d, 1);
  for (const bs of [1, 16]) {
    const t = await timeRuns(() => ortEmbed(sess, seqs, d, bs), 1000, 20);
    line(`onnxruntime-node ${ort.env.versions?.common ?? ''} CPU, batch ${bs}`, texts.length, t.ms, `  [${t.runs} runs]`);
  }

  // concord, CPU twin (one sentence at a time).
  const got = await cpu.embed(texts);
  const cpuCos = minCosine(got, ref);
  const tc = await timeRuns(() => cpu.embed(texts), 1000, 3);
  line('concord CPU (TypeScript twin, f64 accumulation)', texts.length, tc.ms, `  [${tc.runs} runs; min cosine vs ORT ${cpuCos.toFixed(6)}]`);

  // concord's CPU path on onnxruntime (src/encoder/ort-bert.ts), as shipped and with f32 compute:
  // validated against the twin before timing.
  for (const compute of ['shipped', 'f32'] as const) {
    const { encoder } = await ortEncoderFor(src, { cpuBackend: 'onnxruntime', ortCompute: compute });
    const enc = createEmbedder(src, { device: 'cpu', ortEncoder: encoder });
    const v = await enc.embed(texts);
    const cos = minCosine(v, got);
    if (!(cos >= 0.999)) throw new Error(`concord onnxruntime (${compute}): min cosine vs the twin ${cos} < 0.999`);
    const t = await timeRuns(() => enc.embed(texts), 1000, 20);
    line(`concord CPU (${enc.deviceName.replace(/^CPU \(|\)$/g, '')})`, texts.length, t.ms, `  [${t.runs} runs; min cosine vs the twin ${cos.toFixed(7)}; load ${(await import('node:os')).loadavg()[0].toFixed(1)}]`);
    enc.dispose();
  }

  // dedup's comparison stage on the CPU (the reference for the GPU run below).
  // Noise 0.003 per component: copies of one sentence score ~0.996 with each other, far above the
  // threshold, so that f32 rounding cannot tip a decision.
  const dedupStore = dedupN > 0 ? noisyVectors(got, dedupN, 0.003) : null;
  const threshold = 0.97;
  const cpuDedup = dedupStore ? await dedupLine('concord dedup comparison, CPU (cosine + row-max twins)', dedupStore, () => dedupVectors(dedupStore, { threshold, device: 'cpu' })) : null;

  if (!noGpu) {
    let rt: GpuRuntime | null = null;
    try {
      rt = new GpuRuntime(await requestGpu());
    } catch (e) {
      console.log(`concord WebGPU: no adapter (${(e as Error).message})`);
    }
    if (rt && gpuN > 0) {
      const enc: Embedder = createEmbedder(src, { device: rt });
      const sub = texts.slice(0, gpuN);
      let t0 = now();
      const g = await enc.embed(sub);
      const firstMs = now() - t0;
      const gCos = minCosine(g, ref.slice(0, gpuN));
      t0 = now();
      const tg = await timeRuns(() => enc.embed(sub), 1, 2);
      const st = enc.stats;
      line(`concord WebGPU (${rt.name})`, sub.length, tg.ms, `  [${tg.runs} runs after a first run of ${firstMs.toFixed(0)} ms; min cosine vs ORT ${gCos.toFixed(6)}; ${(st.batches / (tg.runs + 1)).toFixed(0)} batches/run, padding ${(100 * (st.paddedTokens / st.tokens - 1)).toFixed(1)}% of real tokens]`);
      enc.dispose();
    }
    if (rt) {
      if (dedupStore && cpuDedup) {
        const first = await dedupLine(`concord dedup comparison, WebGPU, first run`, dedupStore, () => dedupVectors(dedupStore, { threshold, device: rt! }));
        const same = first.kept.every((k, i) => k === cpuDedup.kept[i] && first.dupOf[i] === cpuDedup.dupOf[i]);
        if (!same) throw new Error('dedup: the GPU kept a different set of records than the CPU');
        await dedupLine(`concord dedup comparison, WebGPU (${rt.name})`, dedupStore, () => dedupVectors(dedupStore, { threshold, device: rt! }), '  [same kept set as the CPU]');
      }
      rt.destroy();
    }
  }
  dedupStore?.dispose();
  const os = await import('node:os');
  console.log(`host: ${process.platform} ${process.arch}, Node ${process.versions.node}, ${os.cpus().length} CPU cores, load average ${os.loadavg().map((x) => x.toFixed(1)).join(' ')}`);
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
