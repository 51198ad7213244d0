// Next-token entropy from the fused LM head (issue 25 item 1): the CPU twin, every WebGPU head
// variant and onnxruntime against a naive f64 entropy and the PyTorch float64 reference
// (scripts/reference_torch.py hf writes `entropy` beside `logprobs` in each family's
// reference.json). Tolerances: twin and onnxruntime ≤ 1e-5 nats, WebGPU f32 ≤ 1e-4.
import { readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { logprobCpu, logprobGpu, mergeEntropyState, type LogprobVariant } from '../kernels/logprob.js';
import { logProbsEntropyCpu } from '../src/models/forward-cpu.js';
import { loadHf } from '../src/models/hf.js';
import { loadModel } from '../src/models/index.js';
import { validate } from '../src/validate.js';
import { createScorerFromModels, type ScoreResult } from '../src/pipeline/scorer.js';
import { passSequences } from '../src/pipeline/plan.js';
import { encodeStandalone } from '../src/pipeline/templates.js';
import { gpuRuntime, randInt, randn, rng } from './helpers/gpu.js';
import { HF_FAMILIES } from './ort-families.test.js';

const FIX = join(resolve(import.meta.dirname, '..'), 'tests', 'fixtures', 'hf');
interface Reference { sequences: { ids: number[]; logprobs: number[]; entropy: number[] }[] }
const ref = (family: string): Reference => JSON.parse(readFileSync(join(FIX, family, 'reference.json'), 'utf8'));

/** Entropy of softmax(cap(H·Wᵀ)) row by row, the plainest way (all logits, f64). */
function naiveEntropy(H: Float32Array, W: Float32Array, T: number, V: number, d: number, cap = 0): number[] {
  const out: number[] = [];
  for (let t = 0; t < T; t++) {
    const z = new Float64Array(V);
    for (let v = 0; v < V; v++) {
      let s = 0;
      for (let k = 0; k < d; k++) s += H[t * d + k] * W[v * d + k];
      z[v] = cap > 0 ? cap * Math.tanh(s / cap) : s;
    }
    const m = Math.max(...z);
    const lse = m + Math.log(z.reduce((a, x) => a + Math.exp(x - m), 0));
    out.push(-z.reduce((a, x) => a + Math.exp(x - lse) * (x - lse), 0));
  }
  return out;
}

function makeCase(seed: number, T: number, V: number, d: number, scale: number) {
  const r = rng(seed);
  const H = randn(r, T * d, 1), W = randn(r, V * d, scale / Math.sqrt(d));
  const targets = new Uint32Array(T).map(() => randInt(r, 0, V - 1));
  const mask = new Uint32Array(T).map(() => (r() < 0.8 ? 1 : 0));
  mask[0] = 1;
  return { H, W, targets, mask, T, V, d };
}

const oldVariant = process.env.CONCORD_KERNEL_VARIANT;
afterAll(() => {
  if (oldVariant === undefined) delete process.env.CONCORD_KERNEL_VARIANT;
  else process.env.CONCORD_KERNEL_VARIANT = oldVariant;
});

describe('next-token entropy in the fused LM head', async () => {
  const rt = await gpuRuntime();

  it('CPU twin: pinned by hand, uniform = log V, one-hot → 0', () => {
    // logits [0, log 2, log 3] → p = [1, 2, 3] / 6.
    const res = logprobCpu(new Float32Array([1]), new Float32Array([0, Math.log(2), Math.log(3)]), [0], [1], 1, 3, 1);
    const p = [1, 2, 3].map((x) => x / 6);
    expect(res.entropy[0]).toBeCloseTo(-p.reduce((a, x) => a + x * Math.log(x), 0), 6);
    const uniform = logprobCpu(new Float32Array([0]), new Float32Array(5000), [0], [1], 1, 5000, 1);
    expect(uniform.entropy[0]).toBeCloseTo(Math.log(5000), 5);
    const peaked = logprobCpu(new Float32Array([1]), new Float32Array([0, 200, 0]), [1], [1], 1, 3, 1);
    expect(peaked.entropy[0]).toBeLessThan(1e-12);
    expect(peaked.entropy[0]).toBeGreaterThanOrEqual(0);
  });

  it('CPU twin: the online (m, s, t) stream over vocabulary tiles equals the naive entropy, soft-cap included', () => {
    // V > 2048: several tiles of the twin's stream, so the rescaling of t is exercised.
    for (const [cap, scale] of [[0, 6], [3, 30], [0, 40]] as const) {
      const c = makeCase(7 + scale, 6, 5000, 9, scale);
      const want = naiveEntropy(c.H, c.W, c.T, c.V, c.d, cap);
      const got = logprobCpu(c.H, c.W, c.targets, c.mask, c.T, c.V, c.d, 1, c.T, cap);
      const v = validate(got.entropy, want, { atol: 5e-7, rtol: 0, mask: c.mask }); // f64 stream, f32 output
      expect(v.ok, `cap ${cap} scale ${scale}: ${v.summary}`).toBe(true);
      for (let t = 0; t < c.T; t++) if (!c.mask[t]) expect(got.entropy[t]).toBe(0);
    }
  });

  it('mergeEntropyState: splitting the vocabulary anywhere and merging gives the whole', () => {
    const r = rng(99);
    const z = Array.from({ length: 37 }, () => 20 * r() - 10);
    const state = (xs: number[]): [number, number, number] => {
      const m = Math.max(...xs);
      return [m, xs.reduce((a, x) => a + Math.exp(x - m), 0), xs.reduce((a, x) => a + (x - m) * Math.exp(x - m), 0)];
    };
    const whole = state(z);
    for (const cut of [1, 5, 18, 36]) {
      const [m, s, t] = mergeEntropyState(state(z.slice(0, cut)), state(z.slice(cut)));
      expect(m).toBe(whole[0]);
      expect(Math.log(s) - t / s).toBeCloseTo(Math.log(whole[1]) - whole[2] / whole[1], 12);
    }
    // An empty part (s = 0, m = −∞) is the identity.
    const [m, s, t] = mergeEntropyState([-Infinity, 0, 0], whole);
    expect([m, s, t]).toEqual(whole);
  });

  it.skipIf(!rt)('WebGPU: every head variant (direct, tiled, gemm; one and many vocabulary splits; soft-cap) matches the twin ≤1e-4', async () => {
    const variants: LogprobVariant[] = [
      { kind: 'direct' }, { kind: 'tiled' }, { kind: 'tiled', wg: 128 }, { kind: 'gemm' }, { kind: 'gemm', gemm: { bm: 32, bn: 64, bk: 16 } },
      { kind: 'direct', targetWorkgroups: 1 }, { kind: 'gemm', targetWorkgroups: 1 },
    ];
    for (const [c, cap] of [[makeCase(3, 37, 1037, 45, 8), 15], [makeCase(4, 70, 2003, 16, 30), 0], [makeCase(5, 5, 300, 8, 2), 0.7]] as const) {
      const want = logprobCpu(c.H, c.W, c.targets, c.mask, c.T, c.V, c.d, 1, c.T, cap);
      for (const variant of variants) {
        const bufs = { H: rt!.upload(c.H), W: rt!.upload(c.W), targets: rt!.upload(c.targets), mask: rt!.upload(c.mask), logp: rt!.acquire(c.T * 4), entropy: rt!.acquire(c.T * 4) };
        logprobGpu(rt!, { ...bufs, T: c.T, V: c.V, d: c.d, variant, softcap: cap });
        const [lp, ent] = [await rt!.readF32(bufs.logp, c.T), await rt!.readF32(bufs.entropy, c.T)];
        for (const b of Object.values(bufs)) rt!.release(b);
        const what = `${JSON.stringify(variant)} T=${c.T} V=${c.V} cap=${cap}`;
        const ve = validate(ent, want.entropy, { atol: 1e-4, rtol: 0 });
        expect(ve.ok, `${what} entropy: ${ve.summary}`).toBe(true);
        const vl = validate(lp, want.logp, { atol: 1e-4, rtol: 0 });
        expect(vl.ok, `${what} logp: ${vl.summary}`).toBe(true);
      }
    }
  });

  for (const family of HF_FAMILIES) {
    describe(family, () => {
      const r = ref(family);
      const seqs = r.sequences.map((s) => ({ ids: s.ids }));

      it('CPU twin ≤1e-5 of the PyTorch float64 entropy (function and LanguageModel)', async () => {
        const w = loadHf(join(FIX, family));
        let worst = 0;
        for (const s of r.sequences) {
          const got = logProbsEntropyCpu(w, s.ids);
          const v = validate(got.entropy.slice(1), s.entropy, { atol: 1e-5, rtol: 0 });
          expect(v.ok, `${family} len ${s.ids.length}: ${v.summary}`).toBe(true);
          worst = Math.max(worst, v.maxAbsErr);
        }
        const lm = await loadModel(join(FIX, family), { device: 'cpu-twin' });
        const got = await lm.scoreBatch(seqs, { entropy: true });
        r.sequences.forEach((s, i) => {
          const v = validate(got[i].entropy!, s.entropy, { atol: 1e-5, rtol: 0 });
          expect(v.ok, `${family} twin model len ${s.ids.length}: ${v.summary}`).toBe(true);
          expect(validate(got[i].logprobs, s.logprobs, { atol: 1e-5, rtol: 0 }).ok).toBe(true);
        });
        expect((await lm.scoreBatch(seqs))[0].entropy, 'not asked: not computed').toBeUndefined();
        lm.dispose();
        console.log(`[${family}] twin entropy vs PyTorch f64: max |Δ| ${worst.toExponential(2)} nats`);
      });

      it('onnxruntime ≤1e-5 of the PyTorch float64 entropy, in a padded batch; log-probs unchanged', async () => {
        const lm = await loadModel(join(FIX, family), { device: 'cpu', cpuBackend: 'onnxruntime' });
        expect(lm.deviceName).toMatch(/^cpu: onnxruntime \d/);
        const plain = await lm.scoreBatch(seqs);
        expect(plain[0].entropy).toBeUndefined();
        const got = await lm.scoreBatch(seqs, { entropy: true });
        let worst = 0;
        r.sequences.forEach((s, i) => {
          const v = validate(got[i].entropy!, s.entropy, { atol: 1e-5, rtol: 0 });
          expect(v.ok, `${family} len ${s.ids.length}: ${v.summary}`).toBe(true);
          worst = Math.max(worst, v.maxAbsErr);
          expect(validate(got[i].logprobs, plain[i].logprobs, { atol: 1e-6, rtol: 0 }).ok).toBe(true);
        });
        // Only the asked positions (SequenceRequest.entropySpan): the same values there, NaN elsewhere, log-probs unchanged.
        const spans = r.sequences.map((s) => [1, Math.max(1, s.ids.length - 2)] as [number, number]);
        const part = await lm.scoreBatch(seqs.map((q, i) => ({ ...q, entropySpan: spans[i] })), { entropy: true });
        r.sequences.forEach((s, i) => {
          const [a, b] = spans[i];
          s.entropy.forEach((h, t) => {
            if (t >= a && t < b) expect(Math.abs(part[i].entropy![t] - h), `${family} position ${t}`).toBeLessThanOrEqual(1e-5);
            else expect(part[i].entropy![t], `${family} position ${t} outside the span`).toBeNaN();
          });
          expect(validate(part[i].logprobs, plain[i].logprobs, { atol: 1e-6, rtol: 0 }).ok).toBe(true);
        });
        // After the swap to the entropy session, a call without entropy still works and returns none.
        expect((await lm.scoreBatch(seqs))[0].entropy).toBeUndefined();
        lm.dispose();
        console.log(`[${family}] onnxruntime entropy vs PyTorch f64: max |Δ| ${worst.toExponential(2)} nats`);
      });

      it.skipIf(!rt)('WebGPU f32 ≤1e-4 of the PyTorch float64 entropy in every head variant (direct, tiled, gemm)', async () => {
        let worst = 0;
        for (const variant of ['direct', 'tiled', 'gemm']) {
          process.env.CONCORD_KERNEL_VARIANT = `logprob=${variant}`;
          const gpu = await loadModel(join(FIX, family), { device: rt!, f16: false });
          const got = await gpu.scoreBatch(seqs, { entropy: true });
          r.sequences.forEach((s, i) => {
            const v = validate(got[i].entropy!, s.entropy, { atol: 1e-4, rtol: 0 });
            expect(v.ok, `${family} ${variant} len ${s.ids.length}: ${v.summary}`).toBe(true);
            worst = Math.max(worst, v.maxAbsErr);
            expect(validate(got[i].logprobs, s.logprobs, { atol: 1e-4, rtol: 0 }).ok).toBe(true);
          });
          gpu.dispose();
        }
        delete process.env.CONCORD_KERNEL_VARIANT;
        console.log(`[${family}] WebGPU f32 entropy (direct, tiled, gemm) vs PyTorch f64: max |Δ| ${worst.toExponential(2)} nats`);
      });
    });
  }
});

describe('entropy signals in the scorer (y_entropy, x_entropy, upd, norm_loss)', () => {
  it('match the definitions recomputed from the twin\'s per-token log-probs and entropies (gemma2: soft-capped head)', async () => {
    const dir = join(FIX, 'gemma2');
    const lm = await loadModel(dir, { device: 'cpu-twin' });
    const w = loadHf(dir);
    const scorer = createScorerFromModels({ model: lm, cosine: 'off' });
    const pairs = [{ instruction: 'the cat sat on', output: ' the mat and ran.' }, { instruction: 'a dog', output: ' barked at the moon all night' }];
    const res: ScoreResult[] = [];
    for await (const r of scorer.score(pairs)) res.push(r);
    const logV = Math.log(w.config.vocabSize);
    const startId = lm.tokenizer.bosId ?? lm.tokenizer.eosId!;
    res.forEach((r, i) => {
      expect(r.error).toBeUndefined();
      const s = r.scores!;
      const xIds = encodeStandalone(lm.tokenizer, pairs[i].instruction), yIds = encodeStandalone(lm.tokenizer, pairs[i].output);
      const seqs = passSequences(scorer.plan, startId, xIds, yIds);
      const fwd = seqs[scorer.plan.passes.findIndex((p) => p.name === 'forward')];
      const rev = seqs[scorer.plan.passes.findIndex((p) => p.name === 'reverse')];
      const f = logProbsEntropyCpu(w, fwd.ids), b = logProbsEntropyCpu(w, rev.ids);
      const [ys, ye] = fwd.spans.y!, [xs, xe] = rev.spans.x!;
      let yH = 0, upd = 0, xH = 0, all = 0;
      for (let t = ys; t < ye; t++) {
        yH += f.entropy[t];
        upd += (1 / (1 + Math.exp(f.logp[t]))) * Math.max(0, 1 - f.entropy[t] / logV); // σ(−log p)·max(0, 1 − H/log V)
      }
      for (let t = xs; t < xe; t++) xH += b.entropy[t];
      for (let t = 1; t < fwd.ids.length; t++) all += f.logp[t];
      expect(s.y_entropy!).toBeCloseTo(yH / (ye - ys), 5);
      expect(s.x_entropy!).toBeCloseTo(xH / (xe - xs), 5);
      expect(s.upd!).toBeCloseTo(upd / (ye - ys), 6);
      expect(s.norm_loss).toBeCloseTo(-(all / (fwd.ids.length - 1)) / Math.LN2, 5);
      expect(s.upd!).toBeGreaterThan(0);
      expect(s.upd!).toBeLessThan(1);
    });
    lm.dispose();
  });

  it('onnxruntime, computing only the positions the scores read (entropySpan), gives the twin\'s entropy signals', async () => {
    const dir = join(FIX, 'qwen3');
    const pairs = [{ instruction: 'the cat sat on', output: ' the mat and ran.' }, { instruction: 'a dog', output: ' barked at the moon all night' }];
    const signals = async (device: 'cpu' | 'cpu-twin') => {
      const lm = await loadModel(dir, { device, cpuBackend: device === 'cpu' ? 'onnxruntime' : 'twin' });
      const asked: ({ ids: number[]; entropySpan?: [number, number] })[] = [];
      const spy = { ...lm, scoreBatch: (q: { ids: number[]; entropySpan?: [number, number] }[], o?: { entropy?: boolean }) => { asked.push(...q); return lm.scoreBatch(q, o); } };
      const res: ScoreResult[] = [];
      for await (const r of createScorerFromModels({ model: spy, cosine: 'off' }).score(pairs)) res.push(r);
      lm.dispose();
      return { scores: res.map((r) => r.scores!), asked };
    };
    const [ort, twin] = [await signals('cpu'), await signals('cpu-twin')];
    // Each pass asks for the entropies of the span its entropy scores read, not the whole sequence.
    for (const q of ort.asked) expect(q.entropySpan![1] - q.entropySpan![0]).toBeLessThan(q.ids.length - 1);
    ort.scores.forEach((s, i) => {
      for (const k of ['y_entropy', 'x_entropy', 'upd'] as const) expect(Math.abs(s[k]! - twin.scores[i][k]!), k).toBeLessThanOrEqual(1e-5);
    });
  });

  it('a LanguageModel that returns no entropies gives null entropy signals, not an error', async () => {
    const lm = await loadModel(join(FIX, 'llama3'), { device: 'cpu-twin' });
    const plain = { ...lm, scoreBatch: (seqs: { ids: number[] }[]) => lm.scoreBatch(seqs) };
    const res: ScoreResult[] = [];
    for await (const r of createScorerFromModels({ model: plain, cosine: 'off' }).score([{ instruction: 'the cat', output: ' sat' }])) res.push(r);
    expect(res[0].error).toBeUndefined();
    expect(res[0].scores).toMatchObject({ y_entropy: null, x_entropy: null, upd: null });
    expect(Number.isFinite(res[0].scores!.norm_loss)).toBe(true);
    lm.dispose();
  });
});
