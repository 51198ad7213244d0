// GGUF Q8_0 / Q4_0 models on WebGPU with their linear weights kept as blocks in GPU memory
// (kernels/matmul-quant.ts via forward-gpu.ts / weight-upload.ts quantBuffer), scored against the
// TypeScript twin on the same dequantized weights. Runs on the adapter (CONCORD_REQUIRE_GPU=1).
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { ggufExport, type QuantType } from '../src/formats/gguf-export.js';
import { writeGguf } from '../src/formats/gguf-write.js';
import { GpuTransformer } from '../src/models/forward-gpu.js';
import { loadModel } from '../src/models/index.js';
import { loadWeights } from '../src/models/load.js';
import { validate } from '../src/validate.js';
import { gpuRuntime, randInt, rng } from './helpers/gpu.js';
import { buildTinyModel, type TinyKind } from './helpers/tiny-models.js';

const dir = mkdtempSync(join(tmpdir(), 'concord-gguf-gpu-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

async function writeQuant(kind: TinyKind | 'stories15M', q: QuantType): Promise<string> {
  const src = kind === 'stories15M' ? 'stories15M' : buildTinyModel(kind, join(dir, kind), { dim: 64, hiddenDim: 128, nHeads: 4 }).path;
  const file = join(dir, `${kind}.${q}.gguf`);
  const { kvs, tensors } = ggufExport(await loadWeights(src), q);
  writeGguf(file, kvs, tensors);
  return file;
}

describe('GGUF Q8_0 / Q4_0 on WebGPU, weights quantized in GPU memory', async () => {
  const rt = await gpuRuntime();
  const r = rng(99);
  const cases: [TinyKind | 'stories15M', QuantType, number[]][] = [['hf-qwen2', 'q4_0', [1, 5, 23]], ['llama2c', 'q8_0', [2, 17]], ['stories15M', 'q8_0', [6, 12]]];
  for (const [kind, q, lengths] of cases) {
    it.skipIf(!rt)(`${kind} ${q}: log-probs within 1e-3 of the twin; the linears are blocks (GPU bytes below f16)`, async () => {
      const file = await writeQuant(kind, q);
      const gpu = await loadModel(file, { device: rt! });
      const twin = await loadModel(file, { device: 'cpu-twin' });
      const c = gpu.config;
      expect(gpu.deviceName).toMatch(new RegExp(`${7 * c.nLayers} linears as GGUF Q8_0/Q4_0 blocks`));
      const seqs = lengths.map((n) => ({ ids: [1, ...Array.from({ length: n }, () => randInt(r, 3, c.vocabSize - 1))] }));
      const [a, b] = [await twin.scoreBatch(seqs), await gpu.scoreBatch(seqs)];
      let max = 0;
      seqs.forEach((_, i) => {
        const v = validate(b[i].logprobs, a[i].logprobs, { atol: 1e-3 });
        max = Math.max(max, v.maxAbsErr);
        expect(v.ok, v.summary).toBe(true);
      });
      // weight memory of the layers' linears: blocks vs the same model dequantized to f16 storage
      const w = await loadWeights(file, { lazy: true });
      const qt = new GpuTransformer(rt!, w, { f16: false });
      const ft = new GpuTransformer(rt!, w, { f16: false, quantWeights: false });
      const lin = 7 * c.nLayers, perLayer = c.dim * (2 * c.nHeads * c.headDim + 2 * c.nKvHeads * c.headDim) + 3 * c.dim * c.hiddenDim;
      const f16Linear = 2 * c.nLayers * perLayer; // bytes of the layers' linears as f16
      const qLinear = qt.weightBytes - (ft.weightBytes - 2 * f16Linear); // the quantized model's bytes less its f32 non-linear part
      console.log(`${kind} ${q}: max |Δ| vs twin ${max.toExponential(2)}; ${lin} linears ${qLinear} B as blocks = ${(qLinear / f16Linear).toFixed(3)}× f16`);
      expect(qLinear / f16Linear).toBeLessThan(q === 'q4_0' ? 0.3 : 0.54);
      qt.dispose(); ft.dispose();
      await gpu.dispose(); await twin.dispose();
    }, 300_000);
  }
});
