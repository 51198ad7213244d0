import { describe, expect, it } from 'vitest';
import { rngGpu, sampleGpu } from '../kernels/sample.js';
import { fmix32, uniformAt } from '../src/generate/rng.js';
import { orderedKey, sampleCpu, sampleMask, sampleRow, type RowSampling } from '../src/generate/sampling.js';
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
