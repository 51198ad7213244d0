// GGUF models on WebGPU with their linear weights and LM head kept as blocks in GPU memory
// (kernels/matmul-quant.ts, the LM head's kernels/logprob.ts qtype, via forward-gpu.ts /
// weight-upload.ts quantBuffer): Q8_0, Q4_0 and Q4_K_M (Q4_K + Q6_K) files, scored and (Q4_K_M)
// decoded against the TypeScript twin on the same dequantized weights. Runs on the adapter
// (CONCORD_REQUIRE_GPU=1).
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ggufExport, type QuantType } from '../src/formats/gguf-export.js';
import { writeGguf } from '../src/formats/gguf-write.js';
import { GpuTransformer } from '../src/models/forward-gpu.js';
import { loadModel } from '../src/models/index.js';
import { loadWeights } from '../src/models/load.js';
import { GREEDY } from '../src/generate/types.js';
import { ggmlTypeName } from '../src/quant/types.js';
import { validate } from '../src/validate.js';
import { gpuRuntime, randInt, rng } from './helpers/gpu.js';
import { scratchDir } from './helpers/scratch.js';
import { buildTinyModel, type TinyKind } from './helpers/tiny-models.js';

const dir = scratchDir('concord-gguf-gpu-');

async function writeQuant(kind: TinyKind | 'stories15M', q: QuantType, dims = { dim: 64, hiddenDim: 128, nHeads: 4 }): Promise<string> {
  const src = kind === 'stories15M' ? 'stories15M' : buildTinyModel(kind, join(dir, `${kind}-${dims.dim}`), dims).path;
  const file = join(dir, `${kind}-${dims.dim}.${q}.gguf`);
  const { kvs, tensors } = ggufExport(await loadWeights(src), q);
  writeGguf(file, kvs, tensors);
  return file;
}

describe('GGUF Q8_0 / Q4_0 / Q4_K_M on WebGPU, weights quantized in GPU memory', async () => {
  const rt = await gpuRuntime();
  const r = rng(99);
  const K256 = { dim: 256, hiddenDim: 512, nHeads: 4 };
  const cases: [TinyKind | 'stories15M', QuantType, number[], typeof K256 | undefined][] = [
    ['hf-qwen2', 'q4_0', [1, 5, 23], undefined], ['llama2c', 'q8_0', [2, 17], undefined], ['stories15M', 'q8_0', [6, 12], undefined],
    // dims multiples of 256: every linear Q4_K or Q6_K, the head Q6_K; 23 tokens take the tiled form
    ['hf-llama', 'q4_k_m', [3, 23], K256],
  ];
  for (const [kind, q, lengths, dims] of cases) {
    it.skipIf(!rt)(`${kind} ${q}: log-probs within 1e-3 of the twin; linears and head are blocks (GPU bytes below f16)`, async () => {
      const file = await writeQuant(kind, q, dims);
      const gpu = await loadModel(file, { device: rt! });
      const twin = await loadModel(file, { device: 'cpu-twin' });
      const c = gpu.config;
      const w = await loadWeights(file, { lazy: true });
      const qt = new GpuTransformer(rt!, w, { f16: false });
      const head = qt.lmHeadType !== undefined;
      expect(gpu.deviceName).toContain(`${7 * c.nLayers + (head ? 1 : 0)} linears as GGUF Q8_0/Q4_0/Q4_K/Q6_K blocks${head ? ', the LM head among them' : ''}`);
      const types = new Set([...w.refs!.values()].map((x) => ggmlTypeName((x as { ggmlType?: number }).ggmlType ?? -1)));
      if (q === 'q4_k_m') {
        expect(head).toBe(true);
        expect(ggmlTypeName(qt.lmHeadType!)).toBe('Q6_K');
        expect([...types].sort()).toEqual(['F32', 'Q4_K', 'Q6_K']);
      }
      const seqs = lengths.map((n) => ({ ids: [1, ...Array.from({ length: n }, () => randInt(r, 3, c.vocabSize - 1))] }));
      const [a, b] = [await twin.scoreBatch(seqs), await gpu.scoreBatch(seqs)];
      let max = 0;
      seqs.forEach((_, i) => {
        const v = validate(b[i].logprobs, a[i].logprobs, { atol: 1e-3 });
        max = Math.max(max, v.maxAbsErr);
        expect(v.ok, v.summary).toBe(true);
      });
      let decodeMax = 0;
      if (q === 'q4_k_m') {
        // The decoder (gemv for one row, tiled for the 24-token prompt, the head as a quantized linear),
        // teacher-forced: prompt, then token by token, against the twin's scores.
        const ids = seqs[1].ids, prompt = 20;
        const dec = await gpu.createDecoder!({ slots: 1, maxLen: 64 });
        let rows = await dec.stepLogprobs([{ slot: 0, ids: ids.slice(0, prompt), sampling: GREEDY, step: 0 }]);
        for (let t = prompt; t < ids.length; t++) {
          decodeMax = Math.max(decodeMax, Math.abs(rows[0][ids[t]] - a[1].logprobs[t - 1]));
          if (t + 1 < ids.length) rows = await dec.stepLogprobs([{ slot: 0, ids: [ids[t]], sampling: GREEDY, step: t - prompt + 1 }]);
        }
        dec.dispose();
        expect(decodeMax).toBeLessThan(1e-3);
      }
      // Weight memory: the blocks (layers' linears and, when kept, the head) vs the same tensors in f16.
      const perLayer = c.dim * (2 * c.nHeads * c.headDim + 2 * c.nKvHeads * c.headDim) + 3 * c.dim * c.hiddenDim;
      const f16Bytes = 2 * (c.nLayers * perLayer + (head ? c.vocabSize * c.dim : 0));
      const ratio = qt.uploads.quantBytes / f16Bytes;
      console.log(`${kind} ${q}: max |Δ| vs twin ${max.toExponential(2)}${q === 'q4_k_m' ? `, decoder ${decodeMax.toExponential(2)}` : ''}; ${qt.quantLinears} linears${head ? ' (head included)' : ''} ${qt.uploads.quantBytes} B as blocks = ${ratio.toFixed(3)}× their f16 bytes`);
      expect(ratio).toBeLessThan(q === 'q8_0' ? 0.54 : 0.35);
      qt.dispose();
      await gpu.dispose(); await twin.dispose();
    }, 300_000);
  }
});
