// The onnxruntime CPU backend (src/models/ort/) against the TypeScript twin, the reference: every
// tiny architecture in a padded batch of mixed lengths, meanHidden, batch invariance, f16-rounded
// weights, and stories15M on real sentences (twin and the PyTorch f64 reference).
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { loadModel } from '../src/models/index.js';
import { validate } from '../src/validate.js';
import { randInt, rng } from './helpers/gpu.js';
import { buildTinyModel, TINY_KINDS } from './helpers/tiny-models.js';
import { scratchDir } from './helpers/scratch.js';

interface RefSentence { text: string; ids: number[]; logprobs: number[] }
const reference = JSON.parse(readFileSync(new URL('./fixtures/stories15m-reference.json', import.meta.url), 'utf8')) as { sentences: RefSentence[] };

function randomSeqs(r: () => number, V: number, lengths: number[]): { ids: number[] }[] {
  return lengths.map((n) => ({ ids: Array.from({ length: n }, () => randInt(r, 0, V - 1)) }));
}

describe('CPU backend on onnxruntime vs the TypeScript twin', () => {
  const dir = scratchDir('concord-ort-');
  const r = rng(1234);
  const saved = process.env.CONCORD_CPU_BACKEND;
  afterEach(() => {
    if (saved === undefined) delete process.env.CONCORD_CPU_BACKEND;
    else process.env.CONCORD_CPU_BACKEND = saved;
  });

  for (const kind of TINY_KINDS) {
    it(`${kind}: per-token log-probs and meanHidden match the twin (≤1e-4), padded batch of mixed lengths`, async () => {
      const tiny = buildTinyModel(kind, join(dir, kind));
      const twin = await loadModel(tiny.path, { device: 'cpu-twin' });
      const ort = await loadModel(tiny.path, { device: 'cpu' });
      expect(ort.deviceName).toMatch(/^cpu: onnxruntime \d/);
      expect(twin.deviceName).toMatch(/TypeScript twin/);
      const seqs = randomSeqs(r, ort.config.vocabSize, [1, 2, 9, 17, 5, Math.min(40, ort.config.maxSeqLen)]);
      const [want, got] = [await twin.scoreBatch(seqs), await ort.scoreBatch(seqs)];
      seqs.forEach((s, i) => {
        expect(got[i].logprobs.length).toBe(s.ids.length - 1);
        const v = validate(got[i].logprobs, want[i].logprobs, { atol: 1e-4 });
        expect(v.ok, `${kind} seq ${i} (len ${s.ids.length}): ${v.summary}`).toBe(true);
      });
      const [hw, hg] = [await twin.meanHidden(seqs), await ort.meanHidden(seqs)];
      seqs.forEach((_, i) => {
        expect(hg[i].length).toBe(ort.config.dim);
        const v = validate(hg[i], hw[i], { atol: 1e-4 });
        expect(v.ok, `${kind} meanHidden seq ${i}: ${v.summary}`).toBe(true);
      });
      ort.dispose();
      twin.dispose();
    });
  }

  it('batch invariance: a sequence scores the same inside a padded batch as alone (≤1e-5)', async () => {
    const tiny = buildTinyModel('hf-mistral', join(dir, 'inv'));
    const ort = await loadModel(tiny.path, { device: 'cpu' });
    const seqs = randomSeqs(r, ort.config.vocabSize, [13, 3, 21, 8]);
    const batched = await ort.scoreBatch(seqs);
    for (let i = 0; i < seqs.length; i++) {
      const [alone] = await ort.scoreBatch([seqs[i]]);
      const v = validate(batched[i].logprobs, alone.logprobs, { atol: 1e-5 });
      expect(v.ok, `seq ${i}: ${v.summary}`).toBe(true);
    }
    ort.dispose();
  });

  it('f16-rounded weights: onnxruntime matches the twin on the same rounding (≤1e-4), and differs from f32', async () => {
    const tiny = buildTinyModel('hf-gpt2', join(dir, 'f16'));
    const twin = await loadModel(tiny.path, { device: 'cpu-twin', f16: true });
    const ort = await loadModel(tiny.path, { device: 'cpu', f16: true });
    const ort32 = await loadModel(tiny.path, { device: 'cpu' });
    expect(ort.deviceName).toContain('f16');
    const seqs = randomSeqs(r, ort.config.vocabSize, [4, 15, 9]);
    const [want, got, f32] = [await twin.scoreBatch(seqs), await ort.scoreBatch(seqs), await ort32.scoreBatch(seqs)];
    let diff = 0;
    seqs.forEach((_, i) => {
      const v = validate(got[i].logprobs, want[i].logprobs, { atol: 1e-4 });
      expect(v.ok, `seq ${i}: ${v.summary}`).toBe(true);
      for (let t = 0; t < f32[i].logprobs.length; t++) diff = Math.max(diff, Math.abs(f32[i].logprobs[t] - got[i].logprobs[t]));
    });
    expect(diff).toBeGreaterThan(0);
    for (const m of [twin, ort, ort32]) m.dispose();
  });

  it('rejects token ids outside the vocabulary and overlong sequences, naming them', async () => {
    const tiny = buildTinyModel('llama2c', join(dir, 'bad'));
    const ort = await loadModel(tiny.path, { device: 'cpu' });
    await expect(ort.scoreBatch([{ ids: [1, ort.config.vocabSize] }])).rejects.toThrow(/token id \d+ at position 1 is outside the vocabulary/);
    await expect(ort.scoreBatch([{ ids: new Array(ort.config.maxSeqLen + 1).fill(1) }])).rejects.toThrow(/exceed the model's maxSeqLen/);
    ort.dispose();
  });

  it('CONCORD_CPU_BACKEND=twin selects the twin on --device cpu, and an unknown value is an error', async () => {
    const tiny = buildTinyModel('llama2c', join(dir, 'env'));
    process.env.CONCORD_CPU_BACKEND = 'twin';
    const twin = await loadModel(tiny.path, { device: 'cpu' });
    expect(twin.deviceName).toMatch(/TypeScript twin/);
    expect(twin.deviceReason).toContain('CONCORD_CPU_BACKEND=twin');
    twin.dispose();
    process.env.CONCORD_CPU_BACKEND = 'fast';
    await expect(loadModel(tiny.path, { device: 'cpu' })).rejects.toThrow(/CONCORD_CPU_BACKEND must be onnxruntime(,| or) twin/);
  });

  it('stories15M: matches the twin (≤1e-4) and the PyTorch f64 reference (≤1e-3) on real sentences, batched', async () => {
    const ort = await loadModel('default', { device: 'cpu' });
    const twin = await loadModel('default', { device: 'cpu-twin' });
    const sents = reference.sentences.slice(0, 12);
    const got = await ort.scoreBatch(sents.map((s) => ({ ids: s.ids })));
    const want = await twin.scoreBatch(sents.map((s) => ({ ids: s.ids })));
    let worstTwin = 0, worstRef = 0;
    sents.forEach((s, i) => {
      const v = validate(got[i].logprobs, want[i].logprobs, { atol: 1e-4 });
      expect(v.ok, `vs twin "${s.text.slice(0, 40)}…": ${v.summary}`).toBe(true);
      const vr = validate(got[i].logprobs, s.logprobs, { atol: 1e-3 });
      expect(vr.ok, `vs PyTorch "${s.text.slice(0, 40)}…": ${vr.summary}`).toBe(true);
      worstTwin = Math.max(worstTwin, v.maxAbsErr);
      worstRef = Math.max(worstRef, vr.maxAbsErr);
    });
    const [hw, hg] = [await twin.meanHidden(sents.slice(0, 4)), await ort.meanHidden(sents.slice(0, 4))];
    hw.forEach((w, i) => {
      const v = validate(hg[i], w, { atol: 1e-4 });
      expect(v.ok, `meanHidden ${i}: ${v.summary}`).toBe(true);
    });
    console.log(`[stories15M] onnxruntime vs twin: max |Δ| ${worstTwin.toExponential(2)}, vs PyTorch f64 ${worstRef.toExponential(2)} nats/token over ${sents.length} sentences`);
    ort.dispose();
    twin.dispose();
  });
});

describe('every HF family takes onnxruntime on --device cpu', () => {
  const fixture = (f: string) => new URL(`./fixtures/hf/${f}`, import.meta.url).pathname;

  it('the families that used to fall back to the twin (soft-caps, q/k norms, llama3 RoPE, windows) get onnxruntime, with no fallback note', async () => {
    for (const family of ['gemma2', 'qwen3', 'llama3', 'mistral', 'gemma3', 'phi3', 'smollm3']) {
      const lm = await loadModel(fixture(family), { device: 'cpu' });
      expect(lm.deviceName, family).toMatch(/onnxruntime/);
      expect(lm.deviceReason, family).not.toMatch(/does not build|TypeScript twin/);
      lm.dispose();
    }
  });

  it('a plain Llama-family folder (SmolLM2) takes onnxruntime and agrees with the twin', async () => {
    const twin = await loadModel(fixture('smollm2'), { device: 'cpu-twin' });
    const ort = await loadModel(fixture('smollm2'), { device: 'cpu' });
    expect(ort.deviceName).toMatch(/onnxruntime/);
    const seqs = [{ ids: [1, 5, 9, 13, 20, 3, 7] }, { ids: [1, 40, 2] }];
    const [want, got] = [await twin.scoreBatch(seqs), await ort.scoreBatch(seqs)];
    seqs.forEach((_, i) => expect(validate(got[i].logprobs, want[i].logprobs, { atol: 1e-4 }).ok).toBe(true));
    twin.dispose();
    ort.dispose();
  });
});
