// GGUF Q4_0 / Q8_0 weights on onnxruntime's com.microsoft MatMulNBits (src/quant/matmulnbits.ts,
// src/models/ort/graph.ts linear): the repacked blocks dequantize to exactly ggml's values, and
// models written as Q8_0 / Q4_0 score on onnxruntime (weights kept 4/8-bit) as the TypeScript twin
// does on the same dequantized weights.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import onnxProto from 'onnx-proto';
import { afterAll, describe, expect, it } from 'vitest';
import { ggufExport, type QuantType } from '../src/formats/gguf-export.js';
import type { GgufTensorRef } from '../src/formats/gguf-model.js';
import { writeGguf } from '../src/formats/gguf-write.js';
import { dequantMatMulNBits } from '../src/formats/matmulnbits.js';
import { loadModel } from '../src/models/index.js';
import { loadWeights } from '../src/models/load.js';
import { buildLmGraph } from '../src/models/ort/graph.js';
import { decoderQuant } from '../src/models/ort/backend.js';
import { DecodeGraph } from '../src/models/ort/decode-graph.js';
import { GREEDY } from '../src/generate/types.js';
import { dequantize } from '../src/quant/dequant.js';
import { ggufToMatMulNBits, mapsToMatMulNBits } from '../src/quant/matmulnbits.js';
import { GGML_TYPE } from '../src/quant/types.js';
import { validate } from '../src/validate.js';
import { randInt, rng } from './helpers/gpu.js';
import { buildTinyModel, type TinyKind } from './helpers/tiny-models.js';

const dir = mkdtempSync(join(tmpdir(), 'concord-gguf-ort-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** Random Q4_0 / Q8_0 blocks, scales forced to extremes (f16 max, smallest normal, subnormals, ±0, negative). */
function randomBlocks(t: number, nBlocks: number, r: () => number): Uint8Array {
  const size = t === GGML_TYPE.Q4_0 ? 18 : 34;
  const b = new Uint8Array(nBlocks * size);
  const extremes = [0x7bff, 0x0400, 0x0001, 0x03ff, 0x0000, 0x8000, 0xfbff, 0xbc00, 0x3c00];
  for (let i = 0; i < nBlocks; i++) {
    const d = i < extremes.length ? extremes[i] : randInt(r, 0, 0x7bff) | (r() < 0.5 ? 0x8000 : 0);
    b[i * size] = d & 255; b[i * size + 1] = d >> 8;
    for (let j = 2; j < size; j++) b[i * size + j] = randInt(r, 0, 255);
  }
  return b;
}

const opTypes = (model: Uint8Array): string[] => onnxProto.onnx.ModelProto.decode(model).graph!.node!.map((n) => n.opType!);

describe('GGUF blocks → MatMulNBits', () => {
  it('Q4_0 and Q8_0 repack to the same f32 values as ggml dequantizes (bit for bit, extreme scales)', () => {
    const r = rng(24);
    for (const t of [GGML_TYPE.Q4_0, GGML_TYPE.Q8_0]) {
      const N = 7, K = 96;
      const raw = randomBlocks(t, (N * K) / 32, r);
      const p = ggufToMatMulNBits(t, raw, N, K);
      expect(p.bits).toBe(t === GGML_TYPE.Q4_0 ? 4 : 8);
      const got = dequantMatMulNBits(p), want = dequantize(t, raw, N * K);
      let diff = 0;
      for (let i = 0; i < want.length; i++) if (!Object.is(got[i] + 0, want[i] + 0)) diff++;
      expect(diff).toBe(0);
    }
    expect(mapsToMatMulNBits(GGML_TYPE.Q4_K, 256)).toBe(false);
    expect(mapsToMatMulNBits(GGML_TYPE.Q8_0, 48)).toBe(false);
    expect(() => ggufToMatMulNBits(GGML_TYPE.Q6_K, new Uint8Array(210), 1, 256)).toThrow(/does not map exactly/);
  });
});

async function writeQuant(kind: TinyKind | 'stories15M', q: QuantType): Promise<string> {
  const src = kind === 'stories15M' ? 'stories15M' : buildTinyModel(kind, join(dir, kind), { dim: 128, hiddenDim: 256, nHeads: 4, nKvHeads: kind === 'hf-mistral' ? 2 : undefined }).path;
  const file = join(dir, `${kind}.${q}.gguf`);
  const { kvs, tensors } = ggufExport(await loadWeights(src), q);
  writeGguf(file, kvs, tensors);
  return file;
}

describe('Q8_0 / Q4_0 GGUF models on onnxruntime MatMulNBits = the twin on the dequantized weights', () => {
  const r = rng(2424);
  const cases: [TinyKind | 'stories15M', QuantType][] = [['llama2c', 'q8_0'], ['hf-qwen2', 'q4_0'], ['hf-mistral', 'q8_0'], ['stories15M', 'q8_0'], ['stories15M', 'q4_0']];
  for (const [kind, q] of cases) {
    it(`${kind} ${q}: per-token log-probs within 1e-4 of the twin; every linear is MatMulNBits`, async () => {
      const file = await writeQuant(kind, q);
      const w = await loadWeights(file);
      const ops = opTypes(buildLmGraph(w));
      const c = w.config;
      // 7 linears a layer; the head too when stored Q4_0/Q8_0 (a 4-bit export writes it Q6_K, or Q8_0
      // where rows are not a multiple of 256, as here: dim 128 / 288)
      const head = w.refs!.get('lm_head') as GgufTensorRef;
      expect(head.ggmlType).toBe(GGML_TYPE.Q8_0);
      expect(ops.filter((o) => o === 'MatMulNBits').length).toBe(7 * c.nLayers + 1);
      expect(ops.filter((o) => o === 'Gemm').length).toBe(0);
      expect(opTypes(buildLmGraph(w, { quantized: false })).filter((o) => o === 'MatMulNBits').length).toBe(0);

      const twin = await loadModel(file, { device: 'cpu-twin' });
      const ort = await loadModel(file, { device: 'cpu' });
      expect(ort.deviceName).toMatch(/^cpu: onnxruntime/);
      const seqs = [1, 3, 17, 40, 9].map((n) => ({ ids: [c.vocabSize > 2 ? 1 : 0, ...Array.from({ length: n }, () => randInt(r, 3, c.vocabSize - 1))] }));
      const [a, b] = [await twin.scoreBatch(seqs), await ort.scoreBatch(seqs)];
      let max = 0;
      seqs.forEach((_, i) => {
        const v = validate(b[i].logprobs, a[i].logprobs, { atol: 1e-4 });
        max = Math.max(max, v.maxAbsErr);
        expect(v.ok, v.summary).toBe(true);
      });
      console.log(`${kind} ${q}: max |Δ log-prob| MatMulNBits vs twin ${max.toExponential(2)}`);
      await twin.dispose(); await ort.dispose();
    }, 120_000);
  }
});

describe('the onnxruntime decoder on a Q8_0 / Q4_0 GGUF model', () => {
  it('takes the dequantized weights (no MatMulNBits in its graph unless an accuracy level is asked for) and decodes greedily as the twin does', async () => {
    expect(decoderQuant({})).toEqual({ quantized: false });
    expect(decoderQuant({ accuracyLevel: 4 })).toEqual({ accuracyLevel: 4 });
    for (const q of ['q8_0', 'q4_0'] as QuantType[]) {
      const file = await writeQuant('llama2c', q);
      const w = await loadWeights(file);
      expect(opTypes(new DecodeGraph(w, decoderQuant({})).build()).filter((o) => o === 'MatMulNBits').length).toBe(0);
      expect(opTypes(new DecodeGraph(w, decoderQuant({ accuracyLevel: 4 })).build()).filter((o) => o === 'MatMulNBits').length).toBeGreaterThan(0);
      const greedy = async (device: 'cpu' | 'cpu-twin') => {
        const lm = await loadModel(file, { device });
        const dec = await lm.createDecoder!({ slots: 2, maxLen: 40 });
        const prompts = [[1, 5, 9, 2], [1, 7]];
        let ids = await dec.step(prompts.map((p, s) => ({ slot: s, ids: p, sampling: GREEDY, step: 0 })));
        const out: number[][] = [[ids[0]], [ids[1]]];
        for (let i = 1; i < 24; i++) {
          ids = await dec.step([0, 1].map((s) => ({ slot: s, ids: [ids[s]], sampling: GREEDY, step: i })));
          out[0].push(ids[0]); out[1].push(ids[1]);
        }
        dec.dispose(); await lm.dispose();
        return out;
      };
      expect(await greedy('cpu'), q).toEqual(await greedy('cpu-twin'));
    }
  }, 120_000);
});
