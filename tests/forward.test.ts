// The whole prefill: WGSL (GpuTransformer) against the CPU twin on tiny random models of every
// architecture, batch invariance, and stories15M against the independent PyTorch reference.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { loadModel } from '../src/models/index.js';
import { GpuTransformer } from '../src/models/forward-gpu.js';
import { loadWeights } from '../src/models/load.js';
import { validate } from '../src/validate.js';
import { gpuRuntime, randInt, rng } from './helpers/gpu.js';
import { buildTinyModel, TINY_KINDS } from './helpers/tiny-models.js';
import { scratchDir } from './helpers/scratch.js';

interface RefSentence { text: string; ids: number[]; logprobs: number[]; sum: number; mean: number }
const reference = JSON.parse(readFileSync(new URL('./fixtures/stories15m-reference.json', import.meta.url), 'utf8')) as { sentences: RefSentence[] };

function randomSeqs(r: () => number, V: number, lengths: number[]): { ids: number[] }[] {
  return lengths.map((n) => ({ ids: Array.from({ length: n }, () => randInt(r, 0, V - 1)) }));
}

describe('transformer prefill', async () => {
  const rt = await gpuRuntime();
  const dir = scratchDir('concord-forward-');
  const r = rng(99);

  for (const kind of TINY_KINDS) {
    it.skipIf(!rt)(`${kind}: GPU per-token log-probs match the CPU twin (≤1e-4), padded batch of mixed lengths`, async () => {
      const tiny = buildTinyModel(kind, join(dir, kind));
      const cpu = await loadModel(tiny.path, { device: 'cpu-twin' });
      const gpu = await loadModel(tiny.path, { device: rt!, f16: false });
      const seqs = randomSeqs(r, cpu.config.vocabSize, [1, 2, 9, 17, 5]);
      const [want, got] = [await cpu.scoreBatch(seqs), await gpu.scoreBatch(seqs)];
      seqs.forEach((s, i) => {
        expect(got[i].logprobs.length).toBe(Math.max(0, s.ids.length - 1));
        const v = validate(got[i].logprobs, want[i].logprobs, { atol: 1e-4 });
        expect(v.ok, `${kind} seq ${i} (len ${s.ids.length}): ${v.summary}`).toBe(true);
      });
      gpu.dispose();
    });
  }

  it.skipIf(!rt || !rt.hasF16)('f16 weights: GPU matches the CPU twin on f16-rounded weights (≤1e-4)', async () => {
    for (const kind of ['llama2c', 'hf-gpt2'] as const) {
      const tiny = buildTinyModel(kind, join(dir, `f16-${kind}`));
      const cpu = await loadModel(tiny.path, { device: 'cpu-twin', f16: true });
      const gpu = await loadModel(tiny.path, { device: rt!, f16: true });
      expect(gpu.deviceName).toContain('f16');
      const seqs = randomSeqs(r, cpu.config.vocabSize, [4, 15, 9]);
      const [want, got] = [await cpu.scoreBatch(seqs), await gpu.scoreBatch(seqs)];
      seqs.forEach((s, i) => {
        const v = validate(got[i].logprobs, want[i].logprobs, { atol: 1e-4 });
        expect(v.ok, `${kind} seq ${i}: ${v.summary}`).toBe(true);
      });
      gpu.dispose();
    }
  });

  it.skipIf(!rt)('batch invariance: a sequence scores the same inside a padded batch as alone (≤1e-5)', async () => {
    const tiny = buildTinyModel('hf-qwen2', join(dir, 'inv'));
    const gpu = await loadModel(tiny.path, { device: rt!, f16: false });
    const seqs = randomSeqs(r, gpu.config.vocabSize, [13, 3, 21, 8]);
    const batched = await gpu.scoreBatch(seqs);
    for (let i = 0; i < seqs.length; i++) {
      const [alone] = await gpu.scoreBatch([seqs[i]]);
      const v = validate(batched[i].logprobs, alone.logprobs, { atol: 1e-5 });
      expect(v.ok, `seq ${i}: ${v.summary}`).toBe(true);
    }
    gpu.dispose();
  });

  it.skipIf(!rt)('meanHidden (the lm-mean-hidden cosine input): GPU pooling matches the CPU twin in a padded batch', async () => {
    const tiny = buildTinyModel('hf-llama', join(dir, 'mean'));
    const cpu = await loadModel(tiny.path, { device: 'cpu-twin' });
    const gpu = await loadModel(tiny.path, { device: rt!, f16: false });
    const seqs = randomSeqs(r, cpu.config.vocabSize, [6, 1, 14]);
    const [want, got] = [await cpu.meanHidden(seqs), await gpu.meanHidden(seqs)];
    seqs.forEach((_, i) => {
      expect(got[i].length).toBe(cpu.config.dim);
      const v = validate(got[i], want[i], { atol: 1e-4 });
      expect(v.ok, `seq ${i}: ${v.summary}`).toBe(true);
    });
    gpu.dispose();
  });

  it.skipIf(!rt)('pad positions are never scored: changing pad contents changes nothing', async () => {
    const tiny = buildTinyModel('llama2c', join(dir, 'pad'));
    const w = await loadWeights(tiny.path);
    const g = new GpuTransformer(rt!, w, { f16: false });
    const L = 6;
    const mk = (pad: number) => ({ B: 2, L, ids: new Uint32Array([3, 4, 5, pad, pad, pad, 6, 7, 8, 9, 10, 11]), seqLen: new Uint32Array([3, 6]), mask: new Uint8Array([1, 1, 1, 0, 0, 0, 1, 1, 1, 1, 1, 1]) });
    const a = await g.hiddenStates(mk(0)), b = await g.hiddenStates(mk(17));
    const d = w.config.dim;
    const v = validate(a.subarray(0, 3 * d), b.subarray(0, 3 * d), { atol: 0 });
    expect(v.ok, v.summary).toBe(true);
    g.dispose();
  });

  it('stories15M CPU path matches the independent PyTorch float64 reference (≤1e-3 nats/token, ≥20 sentences)', async () => {
    const lm = await loadModel('default', { device: 'cpu-twin' });
    expect(reference.sentences.length).toBeGreaterThanOrEqual(20);
    let worst = 0;
    for (const s of reference.sentences) {
      // Our tokenizer must produce the reference's ids (its own independent port of run.c encode()).
      expect([lm.tokenizer.bosId!, ...lm.tokenizer.encode(s.text, { addSpecial: false })]).toEqual(s.ids);
      const [got] = await lm.scoreBatch([{ ids: s.ids }]);
      const v = validate(got.logprobs, s.logprobs, { atol: 1e-3 });
      expect(v.ok, `"${s.text.slice(0, 40)}…": ${v.summary}`).toBe(true);
      worst = Math.max(worst, v.maxAbsErr);
    }
    console.log(`[stories15M] CPU vs PyTorch f64: max |Δ| ${worst.toExponential(2)} nats/token over ${reference.sentences.length} sentences`);
  });

  it.skipIf(!rt)('stories15M on WebGPU (f32) matches the CPU twin (≤1e-4) and the reference on short real sentences', async () => {
    const gpu = await loadModel('default', { device: rt!, f16: false });
    const cpu = await loadModel('default', { device: 'cpu-twin' });
    const short = reference.sentences.filter((s) => s.ids.length <= 24).slice(0, 3).map((s) => ({ ids: s.ids, ref: s.logprobs }));
    expect(short.length).toBeGreaterThan(0);
    const got = await gpu.scoreBatch(short);
    const want = await cpu.scoreBatch(short);
    short.forEach((s, i) => {
      const v = validate(got[i].logprobs, want[i].logprobs, { atol: 1e-4 });
      expect(v.ok, `vs CPU twin, sentence ${i}: ${v.summary}`).toBe(true);
      const vr = validate(got[i].logprobs, s.ref, { atol: 1e-3 });
      expect(vr.ok, `vs PyTorch reference, sentence ${i}: ${vr.summary}`).toBe(true);
    });
    gpu.dispose();
  });
});
