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
