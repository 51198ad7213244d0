// concord eval: AUCs and precision/recall on small hand-made labelled sets; the fused and auto rules.

import { describe, expect, test } from 'vitest';
import { auc, evaluate, formatEval, parseLabel } from '../src/eval/index.js';
import { FUSED_DEFAULTS, FUSED_GAIN_WEIGHT, applyFilter, resolveRule, type ScoreFields } from '../src/filter/index.js';

/** y_logp = x_logp = −2, fwd_logp = −2 + gf, rev_logp = −2 + gr; IFD/r-IFD from the gains. */
const pair = (gf: number, gr: number, cosine: number | null = null, source: string | null = cosine === null ? null : 'embed:all-MiniLM-L6-v2'): ScoreFields => ({
  fwd_logp: -2 + gf, y_logp: -2, rev_logp: -2 + gr, x_logp: -2, ifd: Math.exp(-gf), rifd: Math.exp(-gr), cosine, cosine_source: source,
});

describe('auc', () => {
  test('hand-computed: 3 of 4 positive–negative pairs ordered right', () => {
    // positives 0.35, 0.8; negatives 0.1, 0.4: 0.35>0.1 ✓, 0.35<0.4 ✗, 0.8>both ✓✓ → 3/4
    expect(auc([0.1, 0.4, 0.35, 0.8], [false, false, true, true])).toBeCloseTo(0.75, 12);
  });
  test('ties count one half; −Infinity ties with itself; NaN is left out', () => {
    // positives 1, 2; negative 1: tie ½ + win 1 → 1.5/2
    expect(auc([1, 1, 2], [true, false, true])).toBeCloseTo(0.75, 12);
    expect(auc([-Infinity, -Infinity, 3], [true, false, true])).toBeCloseTo(0.75, 12);
    expect(auc([NaN, 0, 1], [false, false, true])).toBe(1);
  });
  test('perfect, reversed, and a single class', () => {
    expect(auc([1, 2, 3, 4], [false, false, true, true])).toBe(1);
    expect(auc([1, 2, 3, 4], [true, true, false, false])).toBe(0);
    expect(auc([1, 2], [true, true])).toBeNaN();
  });
  test('agrees with the brute-force count on a random set', () => {
    let s = 7;
    const r = () => ((s = (s * 1103515245 + 12345) % 2147483648) / 2147483648);
    const v = Array.from({ length: 200 }, () => Math.round(r() * 20) / 20);
    const l = v.map(() => r() < 0.4);
    let wins = 0, pairs = 0;
    for (let i = 0; i < v.length; i++) for (let j = 0; j < v.length; j++) {
      if (!l[i] || l[j]) continue;
      pairs++;
      wins += v[i] > v[j] ? 1 : v[i] === v[j] ? 0.5 : 0;
    }
    expect(auc(v, l)).toBeCloseTo(wins / pairs, 12);
  });
});

describe('evaluate', () => {
  // Six pairs, three true. Gains separate them imperfectly; cosine perfectly.
  //          gf    gr    cos   label
  const rows: [number, number, number, boolean][] = [
    [0.5, 0.4, 0.7, true], [0.2, -0.1, 0.6, true], [-0.1, 0.3, 0.5, true],
    [0.3, 0.2, 0.1, false], [-0.2, -0.3, 0.05, false], [0.1, -0.2, 0.15, false],
  ];
  const scores = rows.map(([f, r, c]) => pair(f, r, c));
  const labels = rows.map((x) => x[3]);
  const rep = evaluate(scores, labels);
  const sc = (n: string) => rep.scores.find((s) => s.name === n)!;
  const ru = (n: string) => rep.rules.find((s) => s.name === n)!;

  test('score AUCs (hand-computed) in their useful direction', () => {
    expect(rep).toMatchObject({ n: 6, positives: 3, negatives: 3 });
    // g_fwd positives 0.5, 0.2, −0.1 vs negatives 0.3, −0.2, 0.1: 0.5 beats 3, 0.2 beats 2, −0.1 beats 1 → 6/9
    expect(sc('g_fwd').auc).toBeCloseTo(6 / 9, 12);
    // g_rev positives 0.4, −0.1, 0.3 vs 0.2, −0.3, −0.2: 3 + 2 + 3 → 8/9
    expect(sc('g_rev').auc).toBeCloseTo(8 / 9, 12);
    // IFD = exp(−g_fwd), lower is better: the same order as g_fwd
    expect(sc('ifd').direction).toBe('down');
    expect(sc('ifd').auc).toBeCloseTo(6 / 9, 12);
    expect(sc('cosine').auc).toBe(1);
    // the unconditional log-probs are all equal: AUC ½
    expect(sc('y_logp').auc).toBeCloseTo(0.5, 12);
  });

  test('main at its defaults: both gains ≥ 0 keeps pairs 0 and 3 → precision ½, recall ⅓', () => {
    const m = ru('main');
    expect(m.at).toBe('defaults');
    expect(m.kept).toBe(2);
    expect(m.precision).toBeCloseTo(0.5, 12);
    expect(m.recall).toBeCloseTo(1 / 3, 12);
    expect(m.kept_neg).toBeCloseTo(1 / 3, 12);
    // main's order: min of the gain percentile ranks.
    // ranks fwd: p0 1, p1 4/6, p2 2/6, p3 5/6, p4 1/6, p5 3/6; rev: p0 1, p1 3/6, p2 5/6, p3 4/6, p4 1/6, p5 2/6
    // min: p0 1, p1 3/6, p2 2/6 | p3 4/6, p4 1/6, p5 2/6 → positives beat: 3, 2, 1.5 → 6.5/9
    expect(m.auc).toBeCloseTo(6.5 / 9, 12);
  });

  test('fused (mean) adds the cosine rank; the cosine rule without a threshold is judged at the positive share', () => {
    // cosine ranks: p0 1, p1 5/6, p2 4/6, p3 2/6, p4 1/6, p5 3/6
    // mean·3·6: p0 18, p1 12, p2 11 | p3 11, p4 3, p5 8 → positives beat: 3, 3, 2.5 → 8.5/9
    expect(ru('fused (mean)').auc).toBeCloseTo(8.5 / 9, 12);
    const c = ru('cosine');
    expect(c.at).toBe('positive share');
    expect(c.kept).toBe(3);
    expect(c.precision).toBe(1);
    expect(ru('auto → fused').rule).toBe('auto');
  });

  test('a given keep fraction applies to every rule', () => {
    const g = evaluate(scores, labels, { given: { keepFraction: 0.5 } });
    for (const r of g.rules) {
      if (r.error) continue;
      expect(r.at).toBe('given');
    }
    const fm = g.rules.find((r) => r.name === 'fused (mean)')!;
    expect(fm.kept).toBe(3);
    // top 3 by mean: p0 (18), p1 (12), then p2 and p3 tie at 11 — the earlier index (p2) is kept
    expect(fm.precision).toBe(1);
    expect(formatEval(g)).toContain('fused (mean)');
  });

  test('without cosines the fused and cosine rules are not reported and auto is main', () => {
    const r = evaluate(rows.map(([f, g]) => pair(f, g)), labels);
    expect(r.rules.map((x) => x.name)).not.toContain('cosine');
    expect(r.rules.map((x) => x.name)).toContain('auto → main');
  });
});

describe('rules fused and auto', () => {
  test('auto is fused only when every record has an encoder cosine', () => {
    expect(resolveRule([pair(0, 0, 0.5), pair(0, 0, 0.2)], 'auto')).toBe('fused');
    expect(resolveRule([pair(0, 0, 0.5), pair(0, 0, 0.2, 'lm-mean-hidden')], 'auto')).toBe('main');
    expect(resolveRule([pair(0, 0, 0.5), pair(0, 0)], 'auto')).toBe('main');
    expect(resolveRule([pair(0, 0, 0.5)], 'main')).toBe('main');
    const a = applyFilter([pair(1, 1, 0.9), pair(-1, -1, 0.9)], { rule: 'auto' });
    expect(a.applied.rule).toBe('fused');
    expect(a.applied.rule_requested).toBe('auto');
  });

  test('fused (sum, the default): cosine + λ·(g_fwd + g_rev), kept at the default minimum score', () => {
    const t = FUSED_DEFAULTS.sum.minScore!;
    // scores: 0.3 + λ·0.4, 0.3 − λ·2, 0.1 + λ·3
    const s = [pair(0.2, 0.2, 0.3), pair(-1, -1, 0.3), pair(1.5, 1.5, 0.1)];
    const r = applyFilter(s, { rule: 'fused' });
    expect(r.applied).toMatchObject({ rule: 'fused', fusion: 'sum', thresholds: 'defaults', min_score: t, gain_weight: FUSED_GAIN_WEIGHT });
    const want = [0.3 + FUSED_GAIN_WEIGHT * 0.4, 0.3 - FUSED_GAIN_WEIGHT * 2, 0.1 + FUSED_GAIN_WEIGHT * 3];
    r.score.forEach((x, i) => expect(x).toBeCloseTo(want[i], 12));
    expect(r.keep).toEqual(want.map((x) => x >= t));
    // an explicit --min-score replaces the default; --keep-fraction ranks by the same score
    expect(applyFilter(s, { rule: 'fused', minScore: 0.35 }).keep).toEqual(want.map((x) => x >= 0.35));
    expect(applyFilter(s, { rule: 'fused', keepFraction: 1 / 3 }).keep).toEqual(want.map((x) => x === Math.max(...want)));
  });

  test('fused mean/min at their defaults: the cosine threshold', () => {
    const c = FUSED_DEFAULTS.mean.minCosine!;
    const s = [pair(0.2, 0.2, c + 0.1), pair(0.2, 0.2, c - 0.1), pair(0.3, 0.3, c + 0.2)];
    const r = applyFilter(s, { rule: 'fused', fusion: 'mean' });
    expect(r.applied.thresholds).toBe('defaults');
    expect(r.keep).toEqual([true, false, true]);
  });

  test('fused (min) and explicit thresholds', () => {
    const s = [pair(0.9, -0.9, 0.9), pair(0.5, 0.5, 0.5), pair(0.1, 0.1, 0.8), pair(-0.5, 0.4, 0.1)];
    // ranks fwd 1, .75, .5, .25; rev .25, 1, .5, .75; cos 1, .5, .75, .25 → min .25, .5, .5, .25
    const r = applyFilter(s, { rule: 'fused', fusion: 'min', keepFraction: 0.5 });
    expect(r.score).toEqual([0.25, 0.5, 0.5, 0.25]);
    expect(r.keep).toEqual([false, true, true, false]);
    expect(applyFilter(s, { rule: 'fused', fusion: 'min', minCosine: 0.6 }).keep).toEqual([true, false, true, false]);
    expect(applyFilter(s, { rule: 'fused', fusion: 'min', revThreshold: 0 }).keep).toEqual([false, true, true, true]);
  });
});

test('labels', () => {
  expect(parseLabel(1)).toBe(true);
  expect(parseLabel('false')).toBe(false);
  expect(parseLabel('expert', 'expert')).toBe(true);
  expect(parseLabel('davinci', 'expert')).toBe(false);
  expect(typeof parseLabel('maybe')).toBe('string');
  expect(parseLabel(undefined)).toBe('no label');
});
