// The filter rules on hand-made scores.

import { describe, expect, test } from 'vitest';
import { FilterError, applyFilter, percentileRanks, type ScoreFields } from '../src/filter/index.js';

/** A pair with given gains: y_logp = x_logp = −2, fwd_logp = −2 + gf, rev_logp = −2 + gr. */
const pair = (gf: number, gr: number, extra: Partial<ScoreFields> = {}): ScoreFields => ({
  fwd_logp: -2 + gf, y_logp: -2, rev_logp: -2 + gr, x_logp: -2, ifd: Math.exp(-gf), rifd: Math.exp(-gr), ...extra,
});

describe('percentile ranks', () => {
  test('fraction of values ≤ each; ties share the higher rank; non-finite → NaN', () => {
    expect(percentileRanks([3, 1, 2, 2])).toEqual([1, 0.25, 0.75, 0.75]);
    const r = percentileRanks([5, NaN, 1]);
    expect(r[0]).toBe(1);
    expect(r[1]).toBeNaN();
    expect(r[2]).toBe(0.5);
  });
});

describe('rule main', () => {
  // g_fwd and g_rev of ten pairs. Pair 0 is best forward but worst reverse; pair 9 the reverse.
  const G: [number, number][] = [
    [0.9, -0.9], [0.8, 0.7], [0.7, 0.8], [0.6, 0.6], [0.5, 0.5], [0.1, 0.4], [0.2, 0.2], [-0.3, 0.3], [-0.2, -0.1], [-0.9, 0.9],
  ];
  const scores = G.map(([f, r]) => pair(f, r));
  const kept = (keep: boolean[]) => keep.flatMap((k, i) => (k ? [i] : []));

  test('--keep-fraction 0.3: the top three by min percentile rank; a pair strong in one direction only is dropped', () => {
    const res = applyFilter(scores, { rule: 'main', keepFraction: 0.3 });
    // ranks (fwd, rev): p1 (0.9, 0.8), p2 (0.8, 0.9), p3 (0.7, 0.7), p4 (0.6, 0.6); p0 (1.0, 0.1), p9 (0.1, 1.0)
    expect(kept(res.keep)).toEqual([1, 2, 3]);
    expect(res.kept).toBe(3);
    expect(res.dropped).toBe(7);
    expect(res.score[0]).toBeCloseTo(0.1, 12);
    expect(res.score[3]).toBeCloseTo(0.7, 12);
    // The reported thresholds reproduce the selection: kept ⇔ clears both.
    const tf = res.applied.fwd_threshold as number, tr = res.applied.rev_threshold as number;
    expect(tf).toBeCloseTo(0.6, 12);
    expect(tr).toBeCloseTo(0.6, 12);
    G.forEach(([f, r], i) => expect(res.keep[i]).toBe(f >= tf - 1e-12 && r >= tr - 1e-12));
  });

  test('default (no fraction, no thresholds): positive gain in both directions', () => {
    const res = applyFilter(scores, { rule: 'main' });
    expect(kept(res.keep)).toEqual(G.flatMap(([f, r], i) => (f >= 0 && r >= 0 ? [i] : [])));
    expect(res.applied.fwd_threshold).toBe(0);
  });

  test('explicit thresholds; one direction only; with a fraction on top', () => {
    expect(kept(applyFilter(scores, { rule: 'main', fwdThreshold: 0.5, revThreshold: 0.5 }).keep)).toEqual([1, 2, 3, 4]);
    expect(kept(applyFilter(scores, { rule: 'main', revThreshold: 0.75 }).keep)).toEqual([2, 9]);
    expect(kept(applyFilter(scores, { rule: 'main', fwdThreshold: 0.5, revThreshold: 0.5, keepFraction: 0.2 }).keep)).toEqual([1, 2]);
  });

  test('--signal logp ranks the raw log-probs and needs a fraction or thresholds', () => {
    const raw = [pair(0, 0, { fwd_logp: -1, rev_logp: -1 }), pair(0, 0, { fwd_logp: -3, rev_logp: -1 }), pair(0, 0, { fwd_logp: -2, rev_logp: -2 })];
    expect(kept(applyFilter(raw, { rule: 'main', signal: 'logp', keepFraction: 1 / 3 }).keep)).toEqual([0]);
    expect(() => applyFilter(raw, { rule: 'main', signal: 'logp' })).toThrow(FilterError);
  });

  test('ties at the cut are all kept; pairs with missing scores are never kept', () => {
    const t = [pair(1, 1), pair(0.5, 0.5), pair(0.5, 0.5), pair(0, 0), { ...pair(2, 2), rev_logp: undefined }];
    const res = applyFilter(t, { rule: 'main', keepFraction: 0.4 });
    expect(kept(res.keep)).toEqual([0, 1, 2]);
    expect(res.score[4]).toBeNaN();
  });

  test('bad fractions are errors', () => {
    expect(() => applyFilter(scores, { rule: 'main', keepFraction: 1.5 })).toThrow(FilterError);
  });
});

describe('presets', () => {
  const s = [
    pair(0, 0, { ifd: 0.9, rifd: 0.5 }), pair(0, 0, { ifd: 1.2, rifd: 0.2 }), pair(0, 0, { ifd: 0.5, rifd: 0.9 }),
    pair(0, 0, { ifd: 0.95, rifd: 1.1 }), pair(0, 0, { ifd: 1.0, rifd: 0.1 }), pair(0, 0, { ifd: 0.7, rifd: 0.3 }),
  ];
  const kept = (keep: boolean[]) => keep.flatMap((k, i) => (k ? [i] : []));

  test('ifd (Cherry): drop IFD ≥ 1, keep the top by IFD', () => {
    expect(kept(applyFilter(s, { rule: 'ifd' }).keep)).toEqual([0, 2, 3, 5]);
    // top round(0.34·6) = 2 by IFD among IFD < 1: 0.95 (p3), 0.9 (p0)
    expect(kept(applyFilter(s, { rule: 'ifd', keepFraction: 0.34 }).keep)).toEqual([0, 3]);
    expect(kept(applyFilter(s, { rule: 'superfilter', keepFraction: 0.34 }).keep)).toEqual([0, 3]);
  });

  test('rifd (Reflection-Tuning): IFD < 1 and r-IFD < 1, ranked by r-IFD ascending', () => {
    expect(kept(applyFilter(s, { rule: 'rifd' }).keep)).toEqual([0, 2, 5]);
    expect(kept(applyFilter(s, { rule: 'rifd', keepFraction: 0.34 }).keep)).toEqual([0, 5]);
  });

  test('cosine: threshold, then fraction', () => {
    const c = [0.9, 0.2, 0.6, null, 0.75].map((cosine) => pair(0, 0, { cosine }));
    expect(kept(applyFilter(c, { rule: 'cosine', minCosine: 0.5 }).keep)).toEqual([0, 2, 4]);
    expect(kept(applyFilter(c, { rule: 'cosine', minCosine: 0.5, keepFraction: 0.4 }).keep)).toEqual([0, 4]);
    expect(() => applyFilter(c, { rule: 'cosine' })).toThrow(FilterError);
  });
});
