// Sampling of one next token from a row of logits — the CPU twin of kernels/sample.ts
// (shaders/generate/sample.wgsl) and the host sampler of the CPU decoders.
//
// Semantics (Hugging Face's warpers, in generate()'s order: TemperatureLogitsWarper →
// TopKLogitsWarper → TopPLogitsWarper → MinPLogitsWarper, min_tokens_to_keep = 1):
//   s_i   = x_i · fround(1/T)                        (f32; temperature 0 = greedy: argmax of x,
//                                                      the lowest id on ties, no warper applies)
//   top-k : keep s_i ≥ the k-th largest s             (ties with the k-th value kept, as HF's `<`)
//   top-p : over the top-k set, with e_i = exp(s_i − max s) and Z = Σ e_i: keep i when the mass of
//           the tokens strictly above it is < p·Z     (HF: drop i when the ascending inclusive
//                                                      cumulative probability is ≤ 1 − p)
//   min-p : keep s_i ≥ fround(max s + fround(ln minP)) (HF: drop p_i < minP · p_max)
//   The most likely token is always kept. Every rule is a threshold on the value, so the kept set is
//   { i : key(s_i) ≥ T } for one threshold key T (orderedKey: the f32 bit pattern made monotone).
// Deviations from HF, all at rounding level or on ties: the temperature multiplies by fround(1/T)
// instead of dividing by T; top-p treats a group of tied values as one (all kept or all dropped,
// where HF's sort order would split a boundary group: we keep it whole); masses are not normalised
// first (mass above < p·Z rather than a cumulative sum of probabilities); min-p compares in the
// log domain. See docs/generate.md.
//
// The draw: u = uniformAt(seed, step) (src/generate/rng.ts), target = u · W with W the kept mass,
// the first kept token in token-id order whose running mass exceeds the target (inverse CDF).
// This twin sums in f64; the GPU in f32 — the two agree except when a mass boundary (the top-p
// threshold or the drawn CDF step) falls within f32 rounding of the target (tests check the rest).

import { uniformAt } from './rng.js';
import type { SamplingParams } from './types.js';

/** One row's sampling settings and its RNG counter (a StepInput fits). */
export interface RowSampling {
  sampling: SamplingParams;
  step: number;
}

/** Throw on settings outside their domain. */
export function checkSampling(s: SamplingParams): void {
  const bad = (what: string): never => { throw new Error(`sampling: ${what}`); };
  if (!(s.temperature >= 0) || !Number.isFinite(s.temperature)) bad(`temperature must be ≥ 0, got ${s.temperature}`);
  if (!Number.isInteger(s.topK) || s.topK < 0) bad(`top-k must be an integer ≥ 0, got ${s.topK}`);
  if (!(s.topP > 0 && s.topP <= 1)) bad(`top-p must be in (0, 1], got ${s.topP}`);
  if (!(s.minP >= 0 && s.minP <= 1)) bad(`min-p must be in [0, 1], got ${s.minP}`);
  if (!Number.isInteger(s.seed) || s.seed < 0 || s.seed > 0xffffffff) bad(`seed must be a uint32, got ${s.seed}`);
}

const f32 = new Float32Array(1);
const u32 = new Uint32Array(f32.buffer);

/** The f32 value's bit pattern made monotone as a u32 (−0 counts as +0). */
export function orderedKey(x: number): number {
  f32[0] = x === 0 ? 0 : x;
  const b = u32[0];
  return (b & 0x80000000 ? ~b : b | 0x80000000) >>> 0;
}

/** fround(1/T): the f32 factor the logits are multiplied by (T > 0). */
export const inverseTemperature = (t: number): number => Math.fround(1 / t);
/** fround(ln minP): the log-domain min-p offset (minP > 0). */
export const minPLog = (minP: number): number => Math.fround(Math.log(minP));

function argmax(x: Float32Array, off: number, vocab: number): number {
  let best = -Infinity, id = 0;
  for (let i = 0; i < vocab; i++) {
    const v = x[off + i];
    if (v > best) { best = v; id = i; }
  }
  return id;
}

interface Row {
  /** scaled logits s_i */
  s: Float32Array;
  keys: Uint32Array;
  /** max s */
  m: number;
  /** the kept set is keys ≥ T */
  T: number;
}

/**
 * The top-p threshold key: the largest t with mass(keys ≥ t, among keys ≥ floor) ≥ p·Z. Z sums in
 * index order; the running mass sums in descending key order (equal keys have equal values). The
 * walk first sorts only the candidates within `span` of the max (most of the mass on real models)
 * and widens the span when they do not reach p·Z: the additions are the same, in the same order,
 * as sorting the whole row, so the threshold is the same, at a fraction of the cost.
 */
function topPThreshold(s: Float32Array, keys: Uint32Array, m: number, floor: number, p: number): number {
  let Z = 0;
  for (let i = 0; i < s.length; i++) if (keys[i] >= floor) Z += Math.exp(s[i] - m);
  const target = Math.fround(p) * Z;
  for (let span = 8; ; span *= 2) {
    const cut = span > 1e30 || !Number.isFinite(m) ? floor : Math.max(floor, orderedKey(Math.fround(m - span)));
    let n = 0;
    for (let i = 0; i < keys.length; i++) if (keys[i] >= cut) n++;
    const cand = new Uint32Array(n);
    n = 0;
    for (let i = 0; i < keys.length; i++) if (keys[i] >= cut) cand[n++] = keys[i];
    cand.sort(); // ascending: walked from the end (equal keys are equal values, so only keys are needed)
    let cum = 0;
    for (let j = n - 1; j >= 0;) {
      const k = cand[j], e = Math.exp(keyValue(k) - m);
      for (; j >= 0 && cand[j] === k; j--) cum += e;
      if (cum >= target) return k;
    }
    if (cut === floor) return floor;
  }
}

/** The f32 value of an orderedKey (the inverse map; +0 for the key of ±0). */
function keyValue(k: number): number {
  u32[0] = k & 0x80000000 ? k & 0x7fffffff : ~k >>> 0;
  return f32[0];
}

function warp(x: Float32Array, off: number, vocab: number, sp: SamplingParams): Row {
  const invT = inverseTemperature(sp.temperature);
  const s = new Float32Array(vocab);
  const keys = new Uint32Array(vocab);
  let m = -Infinity;
  for (let i = 0; i < vocab; i++) {
    const v = Math.fround(x[off + i] * invT);
    s[i] = v;
    keys[i] = orderedKey(v);
    if (v > m) m = v;
  }
  let T = 0;
  if (sp.topK > 0 && sp.topK < vocab) T = keys.slice().sort()[vocab - sp.topK];
  if (sp.topP < 1) T = Math.max(T, topPThreshold(s, keys, m, T, sp.topP));
  if (sp.minP > 0) T = Math.max(T, orderedKey(Math.fround(m + minPLog(sp.minP))));
  return { s, keys, m, T: Math.min(T, orderedKey(m)) };
}

/**
 * The kept set of one row as a 0/1 mask (1 = may be drawn). Greedy (temperature 0): the argmax
 * alone. `off`/`vocab` select a row of a [rows, vocab] array.
 */
export function sampleMask(logits: Float32Array, sampling: SamplingParams, off = 0, vocab = logits.length - off): Uint8Array {
  checkSampling(sampling);
  const mask = new Uint8Array(vocab);
  if (sampling.temperature === 0) {
    mask[argmax(logits, off, vocab)] = 1;
    return mask;
  }
  const r = warp(logits, off, vocab, sampling);
  for (let i = 0; i < vocab; i++) mask[i] = r.keys[i] >= r.T ? 1 : 0;
  return mask;
}

/** Draw one token id from a row (see the header): greedy at temperature 0. */
export function sampleRow(logits: Float32Array, sampling: SamplingParams, step: number, off = 0, vocab = logits.length - off): number {
  checkSampling(sampling);
  if (sampling.temperature === 0) return argmax(logits, off, vocab);
  const { s, keys, m, T } = warp(logits, off, vocab, sampling);
  let W = 0;
  for (let i = 0; i < vocab; i++) if (keys[i] >= T) W += Math.exp(s[i] - m);
  const target = uniformAt(sampling.seed, step) * W;
  let acc = 0, last = -1;
  for (let i = 0; i < vocab; i++) {
    if (keys[i] < T) continue;
    acc += Math.exp(s[i] - m);
    last = i;
    if (acc > target) return i;
  }
  return last;
}

/** The CPU twin of sampleGpu: one id per row of logits [rows, vocab]. */
export function sampleCpu(logits: Float32Array, rows: number, vocab: number, params: RowSampling[]): Int32Array {
  if (params.length !== rows) throw new Error(`sampleCpu: ${params.length} sampling settings for ${rows} rows`);
  const ids = new Int32Array(rows);
  for (let r = 0; r < rows; r++) ids[r] = sampleRow(logits, params[r].sampling, params[r].step, r * vocab, vocab);
  return ids;
}

/**
 * Candidates: tokens with s_i − m ≥ −CAND_SPAN. Every other token has e_i = exp(s_i − m) < e^−24 ≈ 3.8e-11,
 * so on a 32,000-token row they hold at most 1.2e-6 of Z; the fast path computes exp only for candidates.
 */
const CAND_SPAN = 24;
/** A relative bound on the rounding of an f64 sum of up to ~10^6 positive terms in any order (n·2^−53 ≈ 1.1e-10), with room. */
const SUM_SLACK = 1e-9;

/**
 * The host sampler of the onnxruntime decoder: the same ids and masks as sampleRow / sampleMask
 * (the twin), from one pass over the row. Per row it computes the scaled logits and their max in one
 * pass, collecting the candidates (within CAND_SPAN of the max) in id order; exp is taken only for
 * them. The thresholds are the twin's:
 *   top-k: the k-th largest value is a candidate's when there are ≥ k candidates (every other
 *          token is smaller), found by sorting the candidates only;
 *   top-p: the twin's Z sums every token ≥ the top-k floor; here Z lies in [Zc, Zc + n_tail·e^−24]
 *          up to rounding (Zc: the candidates' sum), so the target p·Z lies in an interval, and the
 *          descending walk over the candidates (the twin's walk: the same additions in the same
 *          order) gives the threshold whenever both ends of the interval pick the same group.
 * Kept tokens are then all candidates, and W and the draw run over the kept candidates in id order
 * with the twin's e_i and order of additions. Anything else — a boundary within the interval (a
 * mass boundary within ~1e-6 of p·Z), fewer candidates than k, a kept set reaching below the
 * candidates (plain temperature, a small min-p, top-p near 1), a non-finite max, NaN — runs the twin
 * itself. Scratch buffers are kept between rows: no allocation per row. `fast`/`fallback` count the
 * rows each way.
 */
export class HostSampler {
  fast = 0;
  fallback = 0;
  private idx = new Int32Array(0);
  private val = new Float32Array(0);
  private e = new Float64Array(0);
  private sorted = new Float32Array(0);

  /** Draw one token id from a row: sampleRow's id. */
  sample(logits: Float32Array, sampling: SamplingParams, step: number, off = 0, vocab = logits.length - off): number {
    checkSampling(sampling);
    if (sampling.temperature === 0) return argmax(logits, off, vocab);
    const n = this.keep(logits, off, vocab, sampling);
    if (n < 0) return sampleRow(logits, sampling, step, off, vocab);
    const idx = this.idx, e = this.e;
    let W = 0;
    for (let j = 0; j < n; j++) W += e[j];
    const target = uniformAt(sampling.seed, step) * W;
    let acc = 0;
    for (let j = 0; j < n; j++) {
      acc += e[j];
      if (acc > target) return idx[j];
    }
    return idx[n - 1];
  }

  /** The kept set as a 0/1 mask: sampleMask's. */
  mask(logits: Float32Array, sampling: SamplingParams, off = 0, vocab = logits.length - off): Uint8Array {
    checkSampling(sampling);
    if (sampling.temperature === 0) return sampleMask(logits, sampling, off, vocab);
    const n = this.keep(logits, off, vocab, sampling);
    if (n < 0) return sampleMask(logits, sampling, off, vocab);
    const mask = new Uint8Array(vocab);
    for (let j = 0; j < n; j++) mask[this.idx[j]] = 1;
    return mask;
  }

  /**
   * Leaves the kept tokens' ids and e_i in id order in idx/e[0, n) and returns n, or −1 where the
   * twin must decide (see the class comment).
   */
  private keep(x: Float32Array, off: number, vocab: number, sp: SamplingParams): number {
    if (this.idx.length < vocab) {
      this.idx = new Int32Array(vocab);
      this.val = new Float32Array(vocab);
      this.e = new Float64Array(vocab);
      this.sorted = new Float32Array(vocab);
    }
    const idx = this.idx, val = this.val, e = this.e;
    const invT = inverseTemperature(sp.temperature);
    // One pass over the raw logits: their max and every token within (CAND_SPAN + 1.5)·T of the
    // running max, a superset of the candidates: s = fround(x·invT) is monotone in x, so
    // m = fround(max x · invT), and a token left out has x·invT < max x · invT − (CAND_SPAN + 1.5),
    // so s − m < −CAND_SPAN while |m| < 2^21 (each fround moves a value by ≤ 1/8 there).
    const wide = (CAND_SPAN + 1.5) / invT;
    let xm = -Infinity, n = 0, nan = false;
    for (let i = 0; i < vocab; i++) {
      const v = x[off + i];
      if (v > xm) xm = v;
      if (v >= xm - wide) idx[n++] = i; else if (v !== v) nan = true;
    }
    const m = Math.fround(xm * invT);
    if (nan || !(Math.abs(m) < 2 ** 21)) return this.miss();
    // The candidates (the twin's s_i) against the final max.
    let c = 0;
    for (let j = 0; j < n; j++) {
      const i = idx[j], v = Math.fround(x[off + i] * invT);
      if (v - m >= -CAND_SPAN) { idx[c] = i; val[c++] = v; }
    }
    n = c;
    // Thresholds as values (key order = value order for non-NaN values; ±0 equal in both).
    let floor = -Infinity;
    if (sp.topK > 0 && sp.topK < vocab) {
      if (n < sp.topK) return this.miss();
      floor = this.kthLargest(n, m, sp.topK);
      c = 0; // every token ≥ floor is a candidate: keep those
      for (let j = 0; j < n; j++) if (val[j] >= floor) { idx[c] = idx[j]; val[c++] = val[j]; }
      n = c;
    }
    let t = floor, haveE = false;
    if (sp.topP < 1) {
      for (let j = 0; j < n; j++) e[j] = Math.exp(val[j] - m);
      haveE = true;
      const tp = this.topP(n, m, floor === -Infinity ? vocab - n : 0, sp.topP);
      if (tp === null) return this.miss();
      t = Math.max(t, tp);
    }
    if (sp.minP > 0) t = Math.max(t, Math.fround(m + minPLog(sp.minP)));
    t = Math.min(t, m);
    if (!(t - m >= -CAND_SPAN)) return this.miss(); // kept tokens below the candidates
    c = 0;
    for (let j = 0; j < n; j++) if (val[j] >= t) { idx[c] = idx[j]; e[c++] = haveE ? e[j] : Math.exp(val[j] - m); }
    this.fast++;
    return c;
  }

  private miss(): number {
    this.fallback++;
    return -1;
  }

  /** The k-th largest of the n candidates (n ≥ k): sorts only those within a widening span of the max. */
  private kthLargest(n: number, m: number, k: number): number {
    for (let span = 1; ; span *= 2) {
      const lo = span >= CAND_SPAN ? -Infinity : m - span;
      let cnt = 0;
      for (let j = 0; j < n; j++) if (this.val[j] >= lo) cnt++;
      if (cnt >= k) { const s = this.sortedCandidates(n, lo); return s[s.length - k]; }
    }
  }

  /** The candidates' values ≥ lo, sorted ascending, in `sorted` (a view of their count). */
  private sortedCandidates(n: number, lo: number): Float32Array {
    let k = 0;
    for (let j = 0; j < n; j++) if (this.val[j] >= lo) this.sorted[k++] = this.val[j];
    return this.sorted.subarray(0, k).sort();
  }

  /**
   * The twin's top-p threshold as a value, or null when the interval of Z cannot decide it, over
   * the n candidates (all ≥ the top-k floor) with their e_i in `e`. `tail`: how many tokens ≥ the
   * floor are not candidates (each e_i < e^−24).
   */
  private topP(n: number, m: number, tail: number, p: number): number | null {
    let Zc = 0;
    for (let j = 0; j < n; j++) Zc += this.e[j];
    const pf = Math.fround(p);
    const lo = pf * (Zc * (1 - SUM_SLACK)), hi = pf * ((Zc + tail * Math.exp(-CAND_SPAN)) * (1 + SUM_SLACK));
    // The twin's walk, widening from the top like the twin's: a prefix of the descending order.
    for (let span = 8; ; span *= 2) {
      const all = span >= CAND_SPAN;
      const cand = this.sortedCandidates(n, all ? -Infinity : m - span);
      let cum = 0, atLo: number | null = null;
      for (let j = cand.length - 1; j >= 0;) {
        const v = cand[j], ev = Math.exp(v - m);
        for (; j >= 0 && cand[j] === v; j--) cum += ev;
        if (atLo === null && cum >= lo) atLo = v;
        if (cum >= hi) return atLo === v ? v : null;
      }
      if (all) return null;
    }
  }
}
