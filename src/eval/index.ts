// Evaluating scores and rules on a labelled scored file (`concord eval`). Pure: no files here.
//
// AUC: the probability that a random positive (label 1) is ranked above a random negative, ties
// counting one half (Mann–Whitney U / (n₊·n₋)), over the pairs whose value is not NaN. A score's
// AUC is taken in its useful direction (↑ higher is better: gains, log-probs, cosine; ↓ lower is
// better: IFD, r-IFD); a rule's AUC over its preference order (FilterResult.rank: the rule's
// ranking key, pairs its fixed thresholds exclude tied last). Precision / recall at the rule's
// keep decision: with the rule's defaults (or the thresholds and fraction given), and for rules
// with no default (cosine) at keep fraction = the share of positives.

import { FilterError, RULES, applyFilter, mainSignals, resolveRule, type FilterOptions, type Rule, type ScoreFields } from '../filter/index.js';

/** AUC of `values` for `labels` (true = positive); NaN values are left out. NaN when a class is empty. */
export function auc(values: number[], labels: boolean[]): number {
  const idx = values.map((_, i) => i).filter((i) => !Number.isNaN(values[i]));
  const sorted = idx.sort((a, b) => cmp(values[a], values[b]));
  let rankSumPos = 0, nPos = 0;
  for (let k = 0; k < sorted.length;) {
    let e = k;
    while (e + 1 < sorted.length && cmp(values[sorted[e + 1]], values[sorted[k]]) === 0) e++;
    const mid = (k + e) / 2 + 1; // 1-based average rank of the tie group
    for (let j = k; j <= e; j++) if (labels[sorted[j]]) { rankSumPos += mid; nPos++; }
    k = e + 1;
  }
  const nNeg = sorted.length - nPos;
  if (nPos === 0 || nNeg === 0) return NaN;
  return (rankSumPos - (nPos * (nPos + 1)) / 2) / (nPos * nNeg);
}

/** Ordering that treats ±Infinity as values (−∞ = −∞). */
function cmp(a: number, b: number): number {
  return a === b ? 0 : a < b ? -1 : 1;
}

export interface ScoreDef {
  name: string;
  /** 'up': higher means a better pair; 'down': lower does. */
  direction: 'up' | 'down';
  get: (s: ScoreFields) => number;
}

const num = (v: unknown): number => (typeof v === 'number' ? v : NaN);
/** A column outside ScoreFields (the extra signals), NaN when absent. */
const extra = (s: ScoreFields, k: string): number => num((s as unknown as Record<string, unknown>)[k]);

export const SCORE_DEFS: ScoreDef[] = [
  { name: 'fwd_logp', direction: 'up', get: (s) => num(s.fwd_logp) },
  { name: 'rev_logp', direction: 'up', get: (s) => num(s.rev_logp) },
  { name: 'y_logp', direction: 'up', get: (s) => num(s.y_logp) },
  { name: 'x_logp', direction: 'up', get: (s) => num(s.x_logp) },
  { name: 'g_fwd', direction: 'up', get: (s) => mainSignals(s, 'gain').fwd },
  { name: 'g_rev', direction: 'up', get: (s) => mainSignals(s, 'gain').rev },
  { name: 'ifd', direction: 'down', get: (s) => num(s.ifd) },
  { name: 'rifd', direction: 'down', get: (s) => num(s.rifd) },
  { name: 'cosine', direction: 'up', get: (s) => num(s.cosine) },
  // Extra signals (concord score --signals …; docs/signals.md): rows only where the scores hold them.
  { name: 'ask_llm', direction: 'up', get: (s) => extra(s, 'ask_llm') },
  { name: 'rating', direction: 'up', get: (s) => extra(s, 'rating') },
  { name: 'rating_var', direction: 'down', get: (s) => extra(s, 'rating_var') },
  { name: 'selectit', direction: 'up', get: (s) => extra(s, 'selectit') },
  { name: 'sifd', direction: 'down', get: (s) => extra(s, 'sifd') },
  { name: 'ref_logp', direction: 'up', get: (s) => extra(s, 'ref_logp') },
  { name: 'tc_diff', direction: 'up', get: (s) => extra(s, 'tc_diff') },
  // In-context influence (--signals icl): higher = the pair helps the anchors more as a one-shot example.
  { name: 'icl_gold', direction: 'up', get: (s) => extra(s, 'icl_gold') },
  { name: 'icl_delta', direction: 'up', get: (s) => extra(s, 'icl_delta') },
  { name: 'icl_ratio', direction: 'up', get: (s) => extra(s, 'icl_ratio') },
  // Entropy signals (docs/signals.md). Directions as their sources use them: UPD ranks high first
  // (OpenDataArena-Tool); low entropy and low NormLoss read as "the model finds y natural".
  { name: 'y_entropy', direction: 'down', get: (s) => num(s.y_entropy) },
  { name: 'x_entropy', direction: 'down', get: (s) => num(s.x_entropy) },
  { name: 'upd', direction: 'up', get: (s) => num(s.upd) },
  { name: 'norm_loss', direction: 'down', get: (s) => num(s.norm_loss) },
];

export interface ScoreEval {
  name: string;
  direction: 'up' | 'down';
  auc: number | null;
  /** pairs with the score present */
  n: number;
}

export interface RuleEval {
  /** as named in the table, e.g. 'fused (min)' */
  name: string;
  rule: Rule;
  options: Partial<FilterOptions>;
  auc: number | null;
  kept: number;
  keep_fraction: number;
  precision: number | null;
  recall: number | null;
  /** share of the positives / negatives kept */
  kept_pos: number | null;
  kept_neg: number | null;
  /** how the keep decision was made: 'defaults', 'given', or 'positive share' */
  at: string;
  applied: Record<string, number | string | null>;
  error?: string;
}

export interface EvalReport {
  n: number;
  positives: number;
  negatives: number;
  scores: ScoreEval[];
  rules: RuleEval[];
}

/** The rule variants `concord eval` reports (auto is reported as what it resolves to). */
export const EVAL_RULES: { name: string; opts: Partial<FilterOptions> & { rule: Rule } }[] = [
  { name: 'auto', opts: { rule: 'auto' } },
  { name: 'main', opts: { rule: 'main' } },
  { name: 'main (logp)', opts: { rule: 'main', signal: 'logp' } },
  { name: 'fused (sum)', opts: { rule: 'fused', fusion: 'sum' } },
  { name: 'fused (mean)', opts: { rule: 'fused', fusion: 'mean' } },
  { name: 'fused (min)', opts: { rule: 'fused', fusion: 'min' } },
  { name: 'ifd', opts: { rule: 'ifd' } },
  { name: 'rifd', opts: { rule: 'rifd' } },
  { name: 'cosine', opts: { rule: 'cosine' } },
];

export interface EvaluateOptions {
  /** Thresholds / fraction applied to every rule's keep decision (else each rule's defaults). */
  given?: Partial<FilterOptions>;
  /** Rule variants to report (default EVAL_RULES, less those a record lacks the scores for). */
  rules?: { name: string; opts: Partial<FilterOptions> & { rule: Rule } }[];
}

const finiteOrNull = (x: number): number | null => (Number.isFinite(x) ? x : null);

export function evaluate(scores: ScoreFields[], labels: boolean[], o: EvaluateOptions = {}): EvalReport {
  if (scores.length !== labels.length) throw new Error('evaluate: scores and labels differ in length');
  const n = scores.length;
  const positives = labels.filter(Boolean).length;
  const out: EvalReport = { n, positives, negatives: n - positives, scores: [], rules: [] };
  for (const d of SCORE_DEFS) {
    const v = scores.map(d.get);
    const present = v.filter((x) => !Number.isNaN(x)).length;
    if (present === 0) continue;
    const oriented = d.direction === 'up' ? v : v.map((x) => -x);
    out.scores.push({ name: d.name, direction: d.direction, auc: finiteOrNull(auc(oriented, labels)), n: present });
  }
  const hasCosine = scores.some((s) => typeof s.cosine === 'number');
  const given = o.given ?? {};
  const hasGiven = Object.values(given).some((x) => x !== undefined);
  for (const { name, opts } of o.rules ?? EVAL_RULES) {
    if (!hasCosine && (opts.rule === 'fused' || opts.rule === 'cosine')) continue;
    const resolved = resolveRule(scores, opts.rule);
    const label = opts.rule === 'auto' ? `auto → ${resolved}` : name;
    try {
      // AUC: the rule's order with no explicit thresholds (keep fraction 1 = rank everything).
      const ranked = applyFilter(scores, { ...opts, keepFraction: 1 });
      let decision;
      let at: string;
      try {
        decision = applyFilter(scores, { ...opts, ...given });
        at = hasGiven ? 'given' : 'defaults';
      } catch (e) {
        if (!(e instanceof FilterError) || hasGiven) throw e;
        decision = applyFilter(scores, { ...opts, keepFraction: n ? positives / n : 0 });
        at = 'positive share';
      }
      const keptPos = decision.keep.filter((k, i) => k && labels[i]).length;
      const kept = decision.kept;
      out.rules.push({
        name: label, rule: opts.rule, options: opts, auc: finiteOrNull(auc(ranked.rank, labels)),
        kept, keep_fraction: n ? kept / n : 0,
        precision: kept ? keptPos / kept : null,
        recall: positives ? keptPos / positives : null,
        kept_pos: positives ? keptPos / positives : null,
        kept_neg: n - positives ? (kept - keptPos) / (n - positives) : null,
        at, applied: decision.applied,
      });
    } catch (e) {
      if (!(e instanceof FilterError)) throw e;
      out.rules.push({
        name: label, rule: opts.rule, options: opts, auc: null, kept: 0, keep_fraction: 0, precision: null, recall: null,
        kept_pos: null, kept_neg: null, at: '–', applied: {}, error: e.message,
      });
    }
  }
  return out;
}

const f3 = (x: number | null) => (x === null ? '–' : x.toFixed(3));

export function formatEval(r: EvalReport, title = ''): string {
  const lines = [`${title ? `${title}: ` : ''}${r.n} pairs, ${r.positives} positive, ${r.negatives} negative`, '', `  ${'score'.padEnd(12)} ${'dir'.padEnd(4)} ${'AUC'.padStart(6)}`];
  for (const s of r.scores) lines.push(`  ${s.name.padEnd(12)} ${(s.direction === 'up' ? '↑' : '↓').padEnd(4)} ${f3(s.auc).padStart(6)}`);
  lines.push('', `  ${'rule'.padEnd(16)} ${'AUC'.padStart(6)} ${'kept'.padStart(6)} ${'prec'.padStart(6)} ${'recall'.padStart(6)} ${'pos kept'.padStart(9)} ${'neg kept'.padStart(9)}  at`);
  for (const x of r.rules) {
    if (x.error) { lines.push(`  ${x.name.padEnd(16)} ${x.error}`); continue; }
    lines.push(`  ${x.name.padEnd(16)} ${f3(x.auc).padStart(6)} ${String(x.kept).padStart(6)} ${f3(x.precision).padStart(6)} ${f3(x.recall).padStart(6)} ${f3(x.kept_pos).padStart(9)} ${f3(x.kept_neg).padStart(9)}  ${x.at}`);
  }
  return lines.join('\n');
}

/** A record's label: true/false, 1/0, "1"/"0", "true"/"false", "yes"/"no"; or `=== positive` when given. */
export function parseLabel(v: unknown, positive?: string): boolean | string {
  if (positive !== undefined) {
    if (v === undefined || v === null) return 'no label';
    return String(v) === positive;
  }
  if (v === true || v === 1 || v === '1' || v === 'true' || v === 'yes') return true;
  if (v === false || v === 0 || v === '0' || v === 'false' || v === 'no') return false;
  return v === undefined ? 'no label' : `label ${JSON.stringify(v)} is not boolean-like (true/false, 1/0; or pass --positive VALUE)`;
}
