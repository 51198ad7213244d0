// Filtering scored pairs. Pure: takes the scores of every pair, returns keep/drop decisions.
//
// Rules (docs/scoring.md "Filtering"):
//  main (MAIN — Yang et al. 2025, arXiv 2504.12913: keep pairs BOTH directions accept):
//    signals  g_fwd = fwd_logp − y_logp  and  g_rev = rev_logp − x_logp   (--signal gain, default)
//             or the raw fwd_logp and rev_logp                             (--signal logp)
//    A pair is kept when it clears (≥) the threshold in both directions. Its combined score is the
//    smaller of its two percentile ranks (rank = fraction of pairs whose signal is ≤ its own).
//    --keep-fraction f: the thresholds are set so that the top ≈ f·n pairs by combined score are
//      kept (ties at the cut are all kept); the thresholds this implies are reported.
//    --fwd-threshold / --rev-threshold: explicit thresholds in signal units (one may be left out);
//      combined with --keep-fraction, the fraction is taken among the pairs clearing them.
//    Neither: thresholds 0 with --signal gain (positive pointwise gain both ways, i.e. IFD ≤ 1 and
//      r-IFD ≤ 1); --signal logp needs one of the above.
//  ifd (Cherry LLM — Li et al. 2024, "From Quantity to Quality", NAACL): drop IFD ≥ 1 (the prompt
//    does not help predict the response); rank the rest by IFD, highest first (hardest), and keep
//    the top f·n with --keep-fraction, else all of them.
//  superfilter (Superfiltering — Li et al. 2024, ACL): the same IFD rule, meant to be scored with a
//    small model (e.g. GPT-2 or stories15M) in place of the model being tuned.
//  rifd (Selective Reflection-Tuning — Li et al. 2024, ACL Findings): keep IFD < 1 and r-IFD < 1;
//    rank by r-IFD, lowest first (the response best predicts its prompt); --keep-fraction as above.
//  cosine: keep cosine ≥ --min-cosine; with --keep-fraction, the top f·n by cosine among those.
//  fused (every signal): the LM's two directional gains and the sentence encoder's x↔y cosine.
//    --fusion sum (default): score = cosine + λ·(g_fwd + g_rev), λ = FUSED_GAIN_WEIGHT — the cosine
//      leads and the gains (nats per token) nudge it; absolute, so its thresholds mean the same in
//      every file. --fusion mean / min: the mean / smallest of the three percentile ranks.
//    With --keep-fraction: the top f·n by that score among the pairs clearing the thresholds given
//    (--min-score on the fused score, --min-cosine, --fwd-threshold, --rev-threshold). Without a
//    fraction or thresholds: FUSED_DEFAULTS (chosen on concord's evaluation sets — docs/scoring.md
//    "Evaluating rules").
//  auto (the default, in the CLI and the library): fused when every record has an encoder cosine (`cosine_source`
//    starting with 'embed:'), else main.

import { UsageError } from '../errors.js';

export type Rule = 'main' | 'ifd' | 'superfilter' | 'rifd' | 'cosine' | 'fused' | 'auto';
export const RULES: Rule[] = ['auto', 'main', 'fused', 'ifd', 'superfilter', 'rifd', 'cosine'];

/** fused --fusion sum: the weight of each gain (nats per token) next to the cosine. */
export const FUSED_GAIN_WEIGHT = 0.1;
export type Fusion = 'sum' | 'mean' | 'min';
export const FUSIONS: Fusion[] = ['sum', 'mean', 'min'];
/** The fused rule's thresholds when neither --keep-fraction nor thresholds are given, per fusion. */
export const FUSED_DEFAULTS: Record<Fusion, { minScore?: number; minCosine?: number }> = {
  sum: { minScore: 0.4 },
  mean: { minCosine: 0.25 },
  min: { minCosine: 0.25 },
};

export interface FilterOptions {
  /** default 'auto', as the CLI: fused when every record has an encoder cosine, else main */
  rule?: Rule;
  /** main: 'gain' (default) or 'logp' */
  signal?: 'gain' | 'logp';
  keepFraction?: number;
  fwdThreshold?: number;
  revThreshold?: number;
  /** cosine and fused rules */
  minCosine?: number;
  /** fused: how the signals combine (default sum) */
  fusion?: Fusion;
  /** fused: keep only pairs whose fused score is ≥ this */
  minScore?: number;
}

/** The score fields the rules read (a PairScores fits). */
export interface ScoreFields {
  fwd_logp?: number;
  rev_logp?: number;
  y_logp?: number;
  x_logp?: number;
  ifd?: number;
  rifd?: number;
  cosine?: number | null;
  cosine_source?: string | null;
  /** entropy signals (src/pipeline/scorer.ts, docs/signals.md): no rule reads them; `concord eval` reports their AUC */
  y_entropy?: number | null;
  x_entropy?: number | null;
  upd?: number | null;
  norm_loss?: number;
}

export interface FilterResult {
  keep: boolean[];
  /** The score the rule ranks by (main: combined percentile rank; ifd: IFD; rifd: r-IFD; cosine). NaN when not computable. */
  score: number[];
  /**
   * The rule's preference order as one key: higher is kept first; −Infinity for pairs the rule's
   * thresholds exclude (or whose scores are missing). For AUCs (src/eval).
   */
  rank: number[];
  kept: number;
  dropped: number;
  /** What was applied, in signal units, for the summary. */
  applied: Record<string, number | string | null>;
}

export class FilterError extends UsageError {}

/** Empirical CDF rank of each finite value among the finite values (fraction ≤ it); NaN for non-finite. */
export function percentileRanks(values: number[]): number[] {
  const idx = values.map((_, i) => i).filter((i) => Number.isFinite(values[i])).sort((a, b) => values[a] - values[b]);
  const n = idx.length;
  const out = new Array<number>(values.length).fill(NaN);
  for (let k = 0; k < n;) {
    let e = k;
    while (e + 1 < n && values[idx[e + 1]] === values[idx[k]]) e++;
    for (let j = k; j <= e; j++) out[idx[j]] = (e + 1) / n;
    k = e + 1;
  }
  return out;
}

function checkFraction(f: number | undefined): void {
  if (f !== undefined && !(f >= 0 && f <= 1)) throw new FilterError(`--keep-fraction must be in [0, 1] (got ${f})`);
}

/** Indices of the top k of `eligible` by `key` (descending when `desc`), stable by index. */
function topK(eligible: number[], key: number[], k: number, desc: boolean): Set<number> {
  const sorted = eligible.slice().sort((a, b) => (desc ? key[b] - key[a] : key[a] - key[b]) || a - b);
  return new Set(sorted.slice(0, k));
}

const num = (v: number | null | undefined): number => (typeof v === 'number' ? v : NaN);

export function mainSignals(s: ScoreFields, signal: 'gain' | 'logp'): { fwd: number; rev: number } {
  if (signal === 'logp') return { fwd: num(s.fwd_logp), rev: num(s.rev_logp) };
  return { fwd: num(s.fwd_logp) - num(s.y_logp), rev: num(s.rev_logp) - num(s.x_logp) };
}

/** The encoder's cosine, when the record has one (cosine_source 'embed:…'). */
export const hasEncoderCosine = (s: ScoreFields): boolean =>
  typeof s.cosine === 'number' && Number.isFinite(s.cosine) && typeof s.cosine_source === 'string' && s.cosine_source.startsWith('embed:');

/** The parameters a decision applied, as text for a summary line: those without a value (null: no
 *  threshold of that kind) left out, numbers to `digits` significant digits. */
export function appliedParams(applied: FilterResult['applied'], digits: number): Array<[string, string]> {
  return Object.entries(applied)
    .filter(([, v]) => v !== null && v !== undefined)
    .map(([k, v]) => [k, typeof v === 'number' ? String(Number(v.toPrecision(digits))) : String(v)]);
}

/** 'auto' → 'fused' when every record has an encoder cosine, else 'main'; other rules unchanged. */
export function resolveRule(scores: ScoreFields[], rule: Rule): Exclude<Rule, 'auto'> {
  if (rule !== 'auto') return rule;
  return scores.length > 0 && scores.every(hasEncoderCosine) ? 'fused' : 'main';
}

export function applyFilter(scores: ScoreFields[], optsIn: FilterOptions = {}): FilterResult {
  checkFraction(optsIn.keepFraction);
  const opts = { ...optsIn, rule: resolveRule(scores, optsIn.rule ?? 'auto') };
  const n = scores.length;
  const f = opts.keepFraction;
  const keep = new Array<boolean>(n).fill(false);
  let score: number[];
  const applied: FilterResult['applied'] = { rule: opts.rule };
  if ((optsIn.rule ?? 'auto') !== opts.rule) applied.rule_requested = optsIn.rule ?? 'auto';
  if (f !== undefined) applied.keep_fraction = f;
  let rank: number[] | null = null;

  if (opts.rule === 'main') {
    const signal = opts.signal ?? 'gain';
    applied.signal = signal;
    const sig = scores.map((s) => mainSignals(s, signal));
    const gf = sig.map((s) => s.fwd), gr = sig.map((s) => s.rev);
    const pf = percentileRanks(gf), pr = percentileRanks(gr);
    score = pf.map((p, i) => Math.min(p, pr[i]));
    let tf = opts.fwdThreshold, tr = opts.revThreshold;
    if (f === undefined && tf === undefined && tr === undefined) {
      if (signal === 'logp') throw new FilterError('--rule main --signal logp needs --keep-fraction or --fwd-threshold/--rev-threshold');
      tf = 0;
      tr = 0;
    }
    const clears = (i: number) =>
      Number.isFinite(gf[i]) && Number.isFinite(gr[i]) && (tf === undefined || gf[i] >= tf) && (tr === undefined || gr[i] >= tr);
    const eligible = scores.map((_, i) => i).filter(clears);
    if (f === undefined) {
      for (const i of eligible) keep[i] = true;
    } else {
      // Keep the top ⌊f·n⌉ by combined score; every pair tied with the last one kept is kept too,
      // so the set is exactly {combined ≥ c*} = {g_fwd ≥ t_fwd and g_rev ≥ t_rev}.
      const k = Math.min(eligible.length, Math.round(f * n));
      const order = eligible.slice().sort((a, b) => score[b] - score[a] || a - b);
      if (k > 0) {
        const cut = score[order[k - 1]];
        for (const i of eligible) if (score[i] >= cut) keep[i] = true;
        applied.combined_cut = cut;
      }
      // The per-direction thresholds this selection amounts to (smallest kept signal).
      let mf = Infinity, mr = Infinity;
      keep.forEach((kp, i) => { if (kp) { mf = Math.min(mf, gf[i]); mr = Math.min(mr, gr[i]); } });
      if (Number.isFinite(mf)) { tf = Math.max(tf ?? -Infinity, mf); tr = Math.max(tr ?? -Infinity, mr); }
    }
    applied.fwd_threshold = tf ?? null;
    applied.rev_threshold = tr ?? null;
    rank = score.map((x, i) => (clears(i) ? x : -Infinity));
  } else if (opts.rule === 'fused') {
    const fusion = opts.fusion ?? 'sum';
    if (!FUSIONS.includes(fusion)) throw new FilterError(`--fusion must be ${FUSIONS.join(', ')} (got '${String(fusion)}')`);
    applied.fusion = fusion;
    const sig = scores.map((s) => mainSignals(s, 'gain'));
    const gf = sig.map((s) => s.fwd), gr = sig.map((s) => s.rev), cs = scores.map((s) => num(s.cosine));
    if (fusion === 'sum') {
      score = cs.map((c, i) => c + FUSED_GAIN_WEIGHT * (gf[i] + gr[i]));
      applied.gain_weight = FUSED_GAIN_WEIGHT;
    } else {
      const pf = percentileRanks(gf), pr = percentileRanks(gr), pc = percentileRanks(cs);
      // The mean is formed from the integer ranks (rank·count), so equal rank sums give equal
      // scores (float sums of the fractions in another order could differ in the last bit).
      const cnt = (v: number[]) => v.filter(Number.isFinite).length;
      const nf = cnt(gf), nr = cnt(gr), nc = cnt(cs);
      score = pf.map((p, i) =>
        fusion === 'min' ? Math.min(p, pr[i], pc[i])
          : nf === nr && nr === nc ? (Math.round(p * nf) + Math.round(pr[i] * nf) + Math.round(pc[i] * nf)) / (3 * nf)
          : (p + pr[i] + pc[i]) / 3);
      score = score.map((x, i) => (Number.isFinite(pf[i]) && Number.isFinite(pr[i]) && Number.isFinite(pc[i]) ? x : NaN));
    }
    const explicit = opts.fwdThreshold !== undefined || opts.revThreshold !== undefined || opts.minCosine !== undefined || opts.minScore !== undefined;
    const d = f === undefined && !explicit ? FUSED_DEFAULTS[fusion] : null;
    const tf = opts.fwdThreshold ?? -Infinity;
    const tr = opts.revThreshold ?? -Infinity;
    const tc = opts.minCosine ?? d?.minCosine ?? -Infinity;
    const ts = opts.minScore ?? d?.minScore ?? -Infinity;
    const clears = (i: number) => Number.isFinite(score[i]) && gf[i] >= tf && gr[i] >= tr && cs[i] >= tc && score[i] >= ts;
    const eligible = scores.map((_, i) => i).filter(clears);
    const chosen = f === undefined ? new Set(eligible) : topK(eligible, score, Math.round(f * n), true);
    for (const i of chosen) keep[i] = true;
    const show = (x: number) => (Number.isFinite(x) ? x : null);
    applied.fwd_threshold = show(tf);
    applied.rev_threshold = show(tr);
    applied.min_cosine = show(tc);
    applied.min_score = show(ts);
    if (d) applied.thresholds = 'defaults';
    rank = score.map((x, i) => (clears(i) ? x : -Infinity));
  } else if (opts.rule === 'ifd' || opts.rule === 'superfilter') {
    score = scores.map((s) => num(s.ifd));
    const eligible = score.map((_, i) => i).filter((i) => Number.isFinite(score[i]) && score[i] < 1);
    const chosen = f === undefined ? new Set(eligible) : topK(eligible, score, Math.round(f * n), true);
    for (const i of chosen) keep[i] = true;
    applied.max_ifd = 1;
    applied.ranked_by = 'ifd, highest first';
    const el = new Set(eligible);
    rank = score.map((x, i) => (el.has(i) ? x : -Infinity));
  } else if (opts.rule === 'rifd') {
    const ifd = scores.map((s) => num(s.ifd));
    score = scores.map((s) => num(s.rifd));
    const eligible = score.map((_, i) => i).filter((i) => Number.isFinite(score[i]) && Number.isFinite(ifd[i]) && ifd[i] < 1 && score[i] < 1);
    const chosen = f === undefined ? new Set(eligible) : topK(eligible, score, Math.round(f * n), false);
    for (const i of chosen) keep[i] = true;
    applied.max_ifd = 1;
    applied.max_rifd = 1;
    applied.ranked_by = 'rifd, lowest first';
    const el = new Set(eligible);
    rank = score.map((x, i) => (el.has(i) ? -x : -Infinity));
  } else if (opts.rule === 'cosine') {
    score = scores.map((s) => num(s.cosine));
    if (opts.minCosine === undefined && f === undefined) throw new FilterError('--rule cosine needs --min-cosine (and/or --keep-fraction)');
    const t = opts.minCosine ?? -Infinity;
    const eligible = score.map((_, i) => i).filter((i) => Number.isFinite(score[i]) && score[i] >= t);
    const chosen = f === undefined ? new Set(eligible) : topK(eligible, score, Math.round(f * n), true);
    for (const i of chosen) keep[i] = true;
    applied.min_cosine = opts.minCosine ?? null;
    const el = new Set(eligible);
    rank = score.map((x, i) => (el.has(i) ? x : -Infinity));
  } else {
    throw new FilterError(`unknown rule '${String(opts.rule)}' (${RULES.join(', ')})`);
  }
  const kept = keep.filter(Boolean).length;
  return { keep, score, rank: rank!, kept, dropped: n - kept, applied };
}
