// the sentence encoder's CPU path on onnxruntime (src/encoder/ort-bert.ts) against the TypeScript
// twin: all-MiniLM-L6-v2's model_q4.onnx as shipped (int8 activations: ≥ 0.999 cosine) and with
// f32 compute (≤ 2e-6 per component), batched and padded; loadEmbedder's choice of backend.
import { readFileSync } from 'node:fs';
import { afterEach, describe, expect, it } from 'vitest';
import { createEmbedder, loadEmbedder, loadEmbedderSources } from '../src/encoder/index.js';
import { ortEncoderFor } from '../src/encoder/ort-bert.js';
import { validate } from '../src/validate.js';

const texts = readFileSync(new URL('./fixtures/sentences.txt', import.meta.url), 'utf8')
  .split('\n').map((l) => l.trim()).filter((l) => l && !l.startsWith('#'));

const cosine = (a: Float32Array, b: Float32Array): number => {
  let ab = 0, aa = 0, bb = 0;
  for (let i = 0; i < a.length; i++) { ab += a[i] * b[i]; aa += a[i] * a[i]; bb += b[i] * b[i]; }
  return ab / Math.sqrt(aa * bb);
};

describe('sentence encoder on onnxruntime vs the TypeScript twin', async () => {
  const src = await loadEmbedderSources('minilm');
  // Mixed lengths, so batches pad; the twin is slow, so a subset.
  const sample = texts.filter((_, i) => i % 5 === 0).slice(0, 12);
  const twin = createEmbedder(src, { device: 'cpu' });
  const want = await twin.embed(sample);
  const saved = process.env.CONCORD_CPU_BACKEND;
  afterEach(() => {
    if (saved === undefined) delete process.env.CONCORD_CPU_BACKEND;
    else process.env.CONCORD_CPU_BACKEND = saved;
  });

  it('f32 compute (loadEmbedder\'s default on the CPU): matches the twin to ≤ 2e-6 per component, in padded batches', async () => {
    const enc = await loadEmbedder('minilm', { device: 'cpu' });
    expect(enc.deviceName).toMatch(/onnxruntime .*f32 compute/);
    const got = await enc.embed(sample);
    expect(enc.stats.batches).toBeLessThan(sample.length);
    expect(enc.stats.paddedTokens).toBeGreaterThan(enc.stats.tokens);
    got.forEach((g, i) => {
      const v = validate(g, want[i], { atol: 2e-6 });
      expect(v.ok, `sentence ${i}: ${v.summary}`).toBe(true);
    });
    enc.dispose();
  });

  it('as shipped (int8 activations): ≥ 0.999 cosine with the twin, and not identical to it', async () => {
    const { encoder } = await ortEncoderFor(src, { cpuBackend: 'onnxruntime', ortCompute: 'shipped' });
    const enc = createEmbedder(src, { device: 'cpu', ortEncoder: encoder });
    expect(enc.deviceName).toMatch(/onnxruntime .*graph as shipped/);
    const got = await enc.embed(sample);
    let min = 1, maxAbs = 0;
    got.forEach((g, i) => {
      min = Math.min(min, cosine(g, want[i]));
      for (let k = 0; k < g.length; k++) maxAbs = Math.max(maxAbs, Math.abs(g[k] - want[i][k]));
    });
    console.log(`[embed-ort] shipped graph vs twin: min cosine ${min.toFixed(6)} over ${sample.length} sentences`);
    expect(min).toBeGreaterThanOrEqual(0.999);
    expect(maxAbs).toBeGreaterThan(1e-5);
    enc.dispose();
  });

  it('CONCORD_CPU_BACKEND=twin keeps the twin; a source without an ONNX file runs the twin', async () => {
    process.env.CONCORD_CPU_BACKEND = 'twin';
    const enc = await loadEmbedder('minilm', { device: 'cpu' });
    expect(enc.deviceName).toBe('CPU (TypeScript twin)');
    enc.dispose();
    delete process.env.CONCORD_CPU_BACKEND;
    const r = await ortEncoderFor({ weights: src.weights }, {});
    expect(r.encoder).toBeNull();
    expect(r.note).toMatch(/no ONNX file/);
    await expect(ortEncoderFor({ weights: src.weights }, { cpuBackend: 'onnxruntime' })).rejects.toThrow(/needs an ONNX model file/);
  });
});
