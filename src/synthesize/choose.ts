// Which of a response's k candidate instructions is kept: the one the filter rule ranks first among
// them. The rule runs over the candidates alone with only its explicitly given thresholds, as
// `concord select` ranks (applyFilter with keepFraction 1, its `rank` key); ties, and candidates the
// rule excludes all alike, go to the lowest sample index.

import { applyFilter, type FilterOptions, type ScoreFields } from '../filter/index.js';

export interface CandidateRanking {
  /** Index (into the list given) of the chosen candidate, or -1 when none has scores. */
  chosen: number;
  /** 1-based place of each candidate in the rule's order (null: no scores). */
  rank: (number | null)[];
  /** The rule's score of each candidate (FilterResult.score; null when not computable). */
  ruleScore: (number | null)[];
}

/** Rank the candidates of one response; `scores[j]` is null for a candidate that could not be scored. */
export function rankCandidates(scores: (ScoreFields | null)[], filter: FilterOptions): CandidateRanking {
  const idx = scores.map((s, j) => (s ? j : -1)).filter((j) => j >= 0);
  const rank: (number | null)[] = scores.map(() => null);
  const ruleScore: (number | null)[] = scores.map(() => null);
  if (idx.length === 0) return { chosen: -1, rank, ruleScore };
  const r = applyFilter(idx.map((j) => scores[j]!), { ...filter, keepFraction: 1 });
  // Best first: the rule's rank key descending, then the sample index.
  const order = idx.map((_, a) => a).sort((a, b) => {
    const ka = r.rank[a], kb = r.rank[b];
    return (kb > ka ? 1 : kb < ka ? -1 : 0) || idx[a] - idx[b];
  });
  order.forEach((a, place) => {
    rank[idx[a]] = place + 1;
    ruleScore[idx[a]] = Number.isFinite(r.score[a]) ? r.score[a] : null;
  });
  return { chosen: idx[order[0]], rank, ruleScore };
}
