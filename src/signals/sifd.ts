// Selective IFD (T-SHIRT, Fu, Hamman & Dutta, NeurIPS 2025; github Dynamite321/T-SHIRT
// token_loss.py + compute_stat.py): IFD over the informative response tokens only.
//   PMI_t = log p(y_t | y_<t) − log p(y_t | x, y_<t)     (the authors' "pmi": conditioned loss − unconditioned loss)
//   S     = { t : |PMI_t| > τ }
//   sifd  = exp( Σ_{t∈S} PMI_t / max(|S|, 1) )          (no token selected → 1, as their clamp gives)
// The authors' τ is the (1 − ρ) percentile of |PMI| over every response token of the data set
// (ρ = 0.5: the median), a second pass over the whole set; concord takes τ as given
// (--sifd-threshold) so a streamed, resumable run can write the column. With τ below every |PMI|
// sifd equals concord's ifd. The T-SHIRT paper's NEFTune-noise averaging and its hierarchical
// selection are not part of this column.

import type { TokenLogprobs } from '../pipeline/scorer.js';

/** PMI_t per response token (T-SHIRT's sign). */
export function tokenPmi(t: Pick<TokenLogprobs, 'fwd' | 'y'>): Float64Array {
  if (t.fwd.length !== t.y.length) throw new Error(`sifd: ${t.fwd.length} conditioned and ${t.y.length} unconditioned response log-probs`);
  return t.fwd.map((c, i) => t.y[i] - c);
}

export function selectiveIfd(pmi: ArrayLike<number>, threshold: number): { sifd: number; kept: number } {
  let sum = 0, kept = 0;
  for (let i = 0; i < pmi.length; i++) if (Math.abs(pmi[i]) > threshold) { sum += pmi[i]; kept++; }
  return { sifd: Math.exp(sum / Math.max(kept, 1)), kept };
}
