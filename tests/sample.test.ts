import { describe, expect, it } from 'vitest';
import { rngGpu, sampleGpu } from '../kernels/sample.js';
import { fmix32, uniformAt } from '../src/generate/rng.js';
import { HostSampler, orderedKey, sampleCpu, sampleMask, sampleRow, type RowSampling } from '../src/generate/sampling.js';
import { GREEDY, type SamplingParams } from '../src/generate/types.js';
import { gpuRuntime, randn, rng } from './helpers/gpu.js';

const S = (o: Partial<SamplingParams>): SamplingParams => ({ temperature: 1, topK: 0, topP: 1, minP: 0, seed: 1, ...o });

/** Chi-square critical values at a false-alarm rate of 1e-6 (scipy.stats.chi2.isf(1e-6, df)). */
const CHI2_1E6: Record<number, number> = { 3: 30.664849706, 4: 33.376841582, 5: 35.888186880, 7: 40.521831234 };

function softmax(x: number[]): number[] {
  const m = Math.max(...x);
  const e = x.map((v) => Math.exp(v - m));
  const z = e.reduce((a, b) => a + b, 0);
  return e.map((v) => v / z);
}

/** Rows of random logits: ties (values rounded to 0.25), a few extreme values, some rows of one repeated value. */
function testLogits(r: () => number, rows: number, vocab: number): Float32Array {
  const x = randn(r, rows * vocab, 2);
  for (let i = 0; i < x.length; i++) {
    if (r() < 0.5) x[i] = Math.round(x[i] * 4) / 4;
    if (r() < 0.002) x[i] = r() < 0.5 ? -1e30 : -Infinity;
  }
  x.fill(0.5, 0, vocab); // row 0: all tied
  for (let i = 0; i < vocab; i += 7) x[vocab + i] = 3; // row 1: a tied maximum
  return x;
}

const CASES: SamplingParams[] = [
  GREEDY,
  S({}),
  S({ temperature: 0.7 }),
  S({ temperature: 1.9, topK: 1 }),
  S({ topK: 5 }),
  S({ topK: 40, temperature: 0.5 }),
  S({ topP: 1e-6 }),
  S({ topP: 0.5 }),
  S({ topP: 0.9, temperature: 0.7 }),
  S({ minP: 0.1 }),
  S({ minP: 0.9, temperature: 1.3 }),
  S({ topK: 50, topP: 0.95, minP: 0.05, temperature: 0.8 }),
];

describe('sampling twin', () => {
  it('orderedKey is monotone over f32 values and equates ±0', () => {
    const vals = [-Infinity, -3e38, -1, -1e-40, -0, 0, 1e-40, 1, 3e38, Infinity];
    for (let i = 1; i < vals.length; i++) {
      if (Object.is(vals[i], 0)) expect(orderedKey(vals[i])).toBe(orderedKey(vals[i - 1]));
      else expect(orderedKey(vals[i])).toBeGreaterThan(orderedKey(vals[i - 1]));
    }
  });

  it('masks follow the warper definitions on a pinned row', () => {
    const x = new Float32Array([1, 3, 2, 3, 0, -1, 2]); // two tied maxima (ids 1, 3), two tied seconds
    expect(Array.from(sampleMask(x, GREEDY))).toEqual([0, 1, 0, 0, 0, 0, 0]);
    expect(Array.from(sampleMask(x, S({ topK: 1 })))).toEqual([0, 1, 0, 1, 0, 0, 0]); // ties with the k-th kept
    expect(Array.from(sampleMask(x, S({ topK: 3 })))).toEqual([0, 1, 1, 1, 0, 0, 1]);
    expect(Array.from(sampleMask(x, S({ topP: 1e-9 })))).toEqual([0, 1, 0, 1, 0, 0, 0]); // the top group always kept
    // top-p 0.7: p(3) = e^3/Z each; the two maxima hold 0.63 of the mass < 0.7, so the 2s join.
    const p = softmax(Array.from(x));
    expect(p[1] + p[3]).toBeLessThan(0.7);
    expect(Array.from(sampleMask(x, S({ topP: 0.7 })))).toEqual([0, 1, 1, 1, 0, 0, 1]);
    // min-p 0.3: keep p ≥ 0.3 p_max, i.e. x ≥ 3 + ln 0.3 = 1.796.
    expect(Array.from(sampleMask(x, S({ minP: 0.3 })))).toEqual([0, 1, 1, 1, 0, 0, 1]);
    expect(Array.from(sampleMask(x, S({ minP: 0.4 })))).toEqual([0, 1, 0, 1, 0, 0, 0]);
    // temperature scales before min-p: at T = 0.5, x/T = 2x, 2·2 − 6 = −2 < ln 0.3.
    expect(Array.from(sampleMask(x, S({ minP: 0.3, temperature: 0.5 })))).toEqual([0, 1, 0, 1, 0, 0, 0]);
  });

  it('top-p on a 32,000-token row: the windowed threshold search keeps exactly the set a full sort keeps', () => {
    // Reference: every key ≥ floor sorted descending, mass accumulated key by key (the definition).
    const full = (x: Float32Array, sp: SamplingParams): Uint8Array => {
      const invT = Math.fround(1 / sp.temperature), s = Float32Array.from(x, (v) => Math.fround(v * invT));
      const keys = Uint32Array.from(s, orderedKey), m = Math.max(...s);
      let Z = 0;
      for (const v of s) Z += Math.exp(v - m);
      const idx = [...keys.keys()].sort((a, b) => keys[b] - keys[a]), target = Math.fround(sp.topP) * Z;
      let cum = 0, T = 0;
      for (let j = 0; j < idx.length && !T;) {
        const k = keys[idx[j]];
        for (; j < idx.length && keys[idx[j]] === k; j++) cum += Math.exp(s[idx[j]] - m);
        if (cum >= target) T = k;
      }
      return Uint8Array.from(keys, (k) => (k >= T ? 1 : 0));
    };
    const r = rng(7);
    for (const [scale, topP] of [[1, 0.9], [0.05, 0.95], [6, 0.5], [0.01, 0.999]] as const) {
      const x = randn(r, 32000, scale);
      for (let i = 0; i < x.length; i++) if (r() < 0.3) x[i] = Math.round(x[i] * 8) / 8; // ties
      const sp = S({ temperature: 0.7, topP });
      expect(sampleMask(x, sp)).toEqual(full(x, sp));
    }
    // Most of the tail mass far below the max (the search must widen past its first windows).
    const far = randn(r, 32000, 0.5);
    far[123] = 10;
    for (const topP of [0.99, 0.999]) expect(sampleMask(far, S({ temperature: 0.7, topP }))).toEqual(full(far, S({ temperature: 0.7, topP })));
  });

  it('the draw is the inverse CDF in id order at u = uniformAt(seed, step)', () => {
    const x = new Float32Array([0, Math.log(2), Math.log(3), -Infinity]); // p = 1/6, 2/6, 3/6, 0
    for (let step = 0; step < 200; step++) {
      const u = uniformAt(9, step);
      const want = u < 1 / 6 ? 0 : u < 3 / 6 ? 1 : 2;
      expect(sampleRow(x, S({ seed: 9 }), step)).toBe(want);
    }
  });

  it('sampled frequencies match the softmax (chi-square, false-alarm rate 1e-6, fixed seeds)', () => {
    const x = new Float32Array([0.3, -1.2, 2.0, 0.0, 1.1, -0.4, 0.9, 1.6]);
    const N = 40000;
    for (const [sp, keep] of [[S({ seed: 123 }), 8], [S({ seed: 7, temperature: 0.6, topK: 5 }), 5]] as const) {
      const counts = new Array(8).fill(0);
      for (let step = 0; step < N; step++) counts[sampleRow(x, sp, step)]++;
      const scaled = Array.from(x, (v) => v / sp.temperature);
      const kept = scaled.map((v, i) => ({ v, i })).sort((a, b) => b.v - a.v).slice(0, keep).map((e) => e.i);
      const p = softmax(kept.map((i) => scaled[i]));
      let chi2 = 0;
      kept.forEach((i, j) => { chi2 += (counts[i] - N * p[j]) ** 2 / (N * p[j]); });
      const dropped = counts.reduce((a, c, i) => a + (kept.includes(i) ? 0 : c), 0);
      expect(dropped, 'draws outside the top-k set').toBe(0);
      expect(chi2, `chi2 with ${keep - 1} df`).toBeLessThan(CHI2_1E6[keep - 1]);
    }
  });
});

describe('host sampler (the fast form of the twin, used by the onnxruntime decoder)', () => {
  /** Model-like rows of `vocab` logits: a heavy-tailed spread, a few strong peaks, ties on a grid. */
  function modelLike(r: () => number, vocab: number): Float32Array {
    const x = randn(r, vocab, 3);
    for (let i = 0; i < vocab; i++) {
      if (r() < 0.3) x[i] = Math.round(x[i] * 8) / 8;
      if (r() < 0.001) x[i] += 8 + 6 * r();
    }
    return x;
  }

  /** Both forms on one row: the mask and the ids of `draws` steps; returns how the host sampler decided. */
  function same(hs: HostSampler, x: Float32Array, sp: SamplingParams, what: string, off = 0, vocab = x.length - off, draws = 8): void {
    const want = sampleMask(x, sp, off, vocab), got = hs.mask(x, sp, off, vocab);
    const diff = want.findIndex((w, i) => w !== got[i]);
    expect(diff, `${what} ${JSON.stringify(sp)}: mask differs at id ${diff}`).toBe(-1);
    for (let step = 0; step < draws; step++) expect(hs.sample(x, sp, step * 7 + 1, off, vocab), `${what} ${JSON.stringify(sp)} step ${step}`).toBe(sampleRow(x, sp, step * 7 + 1, off, vocab));
  }

  it('equals the twin on random rows: ties, −∞/−1e30, extreme temperatures, every warper combination', () => {
    const r = rng(4242), hs = new HostSampler();
    const temps = [1e-3, 0.05, 0.7, 1, 3, 50, 1e4];
    for (const vocab of [1, 2, 37, 1000]) {
      const rows = CASES.length * 2;
      const x = testLogits(r, rows, vocab);
      for (let row = 0; row < rows; row++) {
        const sp = { ...CASES[row % CASES.length], seed: 100 + row };
        same(hs, x, sp, `vocab ${vocab} row ${row}`, row * vocab, vocab);
        for (const temperature of temps) if (sp.temperature > 0) same(hs, x, { ...sp, temperature }, `vocab ${vocab} row ${row}`, row * vocab, vocab, 3);
      }
    }
    expect(hs.fast, 'rows decided by the fast path').toBeGreaterThan(0);
  });

  it('equals the twin on 32,000-token model-like rows and decides them without the twin', () => {
    const r = rng(99), hs = new HostSampler();
    const settings: SamplingParams[] = [
      S({ temperature: 0.7, topP: 0.9 }), S({ temperature: 1, topK: 50 }), S({ temperature: 1.3, topK: 50, topP: 0.95, minP: 0.05 }),
      S({ temperature: 0.2, topP: 0.5 }), S({ minP: 0.1 }), S({ topP: 1e-6 }), S({ topK: 1 }), S({ temperature: 0.01, topP: 0.99 }),
    ];
    for (let row = 0; row < 2; row++) {
      const x = modelLike(r, 32000);
      for (const sp of settings) same(hs, x, { ...sp, seed: row }, `row ${row}`, 0, 32000, 4);
    }
    expect(hs.fallback, 'rows the fast path handed to the twin').toBe(0);
    // A flat row at a high temperature: every token a candidate, still decided here.
    const flat = randn(r, 32000, 0.5);
    same(hs, flat, S({ topP: 0.999, temperature: 5 }), 'flat row');
    expect(hs.fallback).toBe(0);
    // Rows it must hand over and still get right (a mask and 8 draws each): plain temperature
    // (every token kept), NaN, +∞.
    same(hs, flat, S({}), 'plain temperature');
    const odd = modelLike(r, 32000);
    odd[5] = Number.NaN;
    same(hs, odd, S({ topP: 0.9 }), 'NaN');
    odd[5] = Infinity;
    same(hs, odd, S({ topP: 0.9 }), '+∞');
    expect(hs.fallback).toBe(3 * 9);
  });

  it('hands a top-p boundary within the tail bound to the twin', () => {
    // One token at 0 and 31,999 at −25 (each e^−25 ≈ 1.4e-11, together 4.4e-7 of Z, outside the
    // candidates): p·Z within that of the first token's mass, so only the exact Z decides.
    const hs = new HostSampler();
    const x = new Float32Array(32000).fill(-25);
    x[123] = 0;
    const tail = 31999 * Math.exp(-25);
    for (const topP of [1 / (1 + tail / 2), 1 / (1 + tail * 0.999), 1 / (1 + tail * 1.001)]) {
      const before = hs.fallback;
      same(hs, x, S({ topP: Math.fround(topP) }), 'tail boundary');
      expect(hs.fallback, `top-p ${topP}`).toBeGreaterThan(before);
    }
  });
});

describe('sampling on the GPU', async () => {
  const rt = await gpuRuntime();
  const r = rng(2024);

  it.skipIf(!rt)('rng.wgsl equals rng.ts bit for bit', async () => {
    const n = 4096;
    const pairs = new Uint32Array(2 * n);
    for (let i = 0; i < n; i++) {
      pairs[2 * i] = i < 4 ? [0, 1, 0xffffffff, 0x9e3779b9][i] : Math.floor(r() * 2 ** 32);
      pairs[2 * i + 1] = i % 3 === 0 ? i : Math.floor(r() * 2 ** 32);
    }
    const got = await rngGpu(rt!, pairs);
    const f = new Float32Array(1), b = new Uint32Array(f.buffer);
    for (let i = 0; i < n; i++) {
      expect(got[2 * i]).toBe(fmix32(pairs[2 * i]));
      f[0] = uniformAt(pairs[2 * i], pairs[2 * i + 1]);
      expect(got[2 * i + 1], `seed ${pairs[2 * i]} step ${pairs[2 * i + 1]}`).toBe(b[0]);
    }
  });

  it.skipIf(!rt)('masks and ids equal the twin (ties, extreme values, top-k = 1, tiny top-p, min-p, temperature)', async () => {
    for (const vocab of [1, 37, 1000, 2500]) {
      const rows = CASES.length * 2;
      const x = testLogits(r, rows, vocab);
      const params: RowSampling[] = Array.from({ length: rows }, (_, i) => ({ sampling: { ...CASES[i % CASES.length], seed: 17 + i }, step: 3 * i }));
      const maskBuf = rt!.acquire(rows * vocab * 4);
      const ids = sampleGpu(rt!, rt!.upload(x), rows, vocab, params, { mask: maskBuf });
      const gotIds = new Int32Array(await rt!.read(ids, rows * 4));
      const gotMask = new Uint32Array(await rt!.read(maskBuf, rows * vocab * 4));
      const wantIds = sampleCpu(x, rows, vocab, params);
      for (let row = 0; row < rows; row++) {
        const want = sampleMask(x, params[row].sampling, row * vocab, vocab);
        const got = gotMask.subarray(row * vocab, (row + 1) * vocab);
        const diff = want.findIndex((w, i) => w !== got[i]);
        expect(diff, `vocab ${vocab} row ${row} (${JSON.stringify(params[row].sampling)}): mask differs at id ${diff}`).toBe(-1);
        expect(want[gotIds[row]], `vocab ${vocab} row ${row}: GPU drew a masked id`).toBe(1);
        expect(gotIds[row], `vocab ${vocab} row ${row} (${JSON.stringify(params[row].sampling)})`).toBe(wantIds[row]);
      }
      rt!.release(ids);
      rt!.release(maskBuf);
    }
  });

  it.skipIf(!rt)('GPU sampled frequencies match the softmax (chi-square, false-alarm rate 1e-6)', async () => {
    const row = [0.3, -1.2, 2.0, 0.0, 1.1, -0.4, 0.9, 1.6];
    const N = 20000, V = row.length;
    const x = new Float32Array(N * V);
    for (let i = 0; i < N; i++) x.set(row, i * V);
    const params = Array.from({ length: N }, (_, step) => ({ sampling: S({ seed: 99, temperature: 1.2 }), step }));
    const ids = sampleGpu(rt!, rt!.upload(x), N, V, params);
    const got = new Int32Array(await rt!.read(ids, N * 4));
    rt!.release(ids);
    const counts = new Array(V).fill(0);
    got.forEach((id) => counts[id]++);
    const p = softmax(row.map((v) => v / 1.2));
    const chi2 = counts.reduce((a, c, i) => a + (c - N * p[i]) ** 2 / (N * p[i]), 0);
    expect(chi2).toBeLessThan(CHI2_1E6[V - 1]);
    expect(Array.from(got)).toEqual(Array.from(sampleCpu(x, N, V, params)));
  });
});
