// Summary statistics over scored pairs: counts and quantiles of every score. Pure.

import { rng } from '../util/rng.js';

export interface Quantiles {
  n: number;
  mean: number;
  min: number;
  p05: number;
  p25: number;
  p50: number;
  p75: number;
  p95: number;
  max: number;
}

/** Linear-interpolated quantile of sorted values (numpy's default). */
export function quantileSorted(sorted: ArrayLike<number>, q: number): number {
  const n = sorted.length;
  if (n === 0) return NaN;
  const pos = (n - 1) * q;
  const lo = Math.floor(pos), hi = Math.ceil(pos);
  return sorted[lo] + (sorted[hi] - sorted[lo]) * (pos - lo);
}

export function quantiles(values: ArrayLike<number>): Quantiles | null {
  const v = Float64Array.from(Array.prototype.filter.call(values, Number.isFinite) as number[]).sort();
  if (v.length === 0) return null;
  let s = 0;
  for (const x of v) s += x;
  const r = (x: number) => Number(x.toPrecision(6));
  return {
    n: v.length, mean: r(s / v.length), min: r(v[0]), p05: r(quantileSorted(v, 0.05)), p25: r(quantileSorted(v, 0.25)),
    p50: r(quantileSorted(v, 0.5)), p75: r(quantileSorted(v, 0.75)), p95: r(quantileSorted(v, 0.95)), max: r(v[v.length - 1]),
  };
}

/**
 * A column of values in bounded memory: every value up to `cap` (then the quantiles are exact), and
 * beyond that a uniform sample of `cap` of them (reservoir sampling with a fixed seed, so the same
 * values in the same order give the same summary, resumed or not); n, mean, min and max stay exact.
 */
export class Column {
  private buf = new Float64Array(256);
  private seen = 0;
  private sum = 0;
  private lo = Infinity;
  private hi = -Infinity;
  private readonly rand: () => number;
  constructor(readonly cap = 1 << 16) {
    this.rand = rng(0x5eed);
  }
  get length(): number { return this.seen; }
  push(x: number): void {
    this.seen++;
    this.sum += x;
    if (x < this.lo) this.lo = x;
    if (x > this.hi) this.hi = x;
    const kept = Math.min(this.seen - 1, this.cap);
    if (kept < this.cap) {
      if (kept === this.buf.length) {
        const b = new Float64Array(Math.min(this.cap, this.buf.length * 2));
        b.set(this.buf);
        this.buf = b;
      }
      this.buf[kept] = x;
      return;
    }
    const j = Math.floor(this.rand() * this.seen);
    if (j < this.cap) this.buf[j] = x;
  }
  /** The values kept: all of them up to `cap`, else the sample. */
  values(): Float64Array {
    return this.buf.subarray(0, Math.min(this.seen, this.cap));
  }
  /** Quantiles of the kept values with the exact n, mean, min and max. */
  quantiles(): Quantiles | null {
    const q = quantiles(this.values());
    if (!q || this.seen <= this.cap) return q;
    const r = (x: number) => Number(x.toPrecision(6));
    return { ...q, n: this.seen, mean: r(this.sum / this.seen), min: r(this.lo), max: r(this.hi) };
  }
}

/** Score columns summarised in outputs. */
export const SUMMARY_FIELDS = ['fwd_logp', 'rev_logp', 'y_logp', 'x_logp', 'g_fwd', 'g_rev', 'ifd', 'rifd', 'y_entropy', 'x_entropy', 'upd', 'norm_loss', 'cosine', 'x_tokens', 'y_tokens'] as const;

export class SummaryBuilder {
  readonly columns = new Map<string, Column>(SUMMARY_FIELDS.map((f) => [f, new Column()]));
  scored = 0;
  errors = 0;
  truncated = 0;

  add(s: Record<string, unknown>): void {
    this.scored++;
    if (s.truncated === true) this.truncated++;
    const num = (k: string) => (typeof s[k] === 'number' ? (s[k] as number) : NaN);
    const derived: Record<string, number> = { g_fwd: num('fwd_logp') - num('y_logp'), g_rev: num('rev_logp') - num('x_logp') };
    for (const f of SUMMARY_FIELDS) {
      const v = f in derived ? derived[f] : num(f);
      if (Number.isFinite(v)) this.columns.get(f)!.push(v);
    }
  }

  addError(): void {
    this.errors++;
  }

  quantiles(): Record<string, Quantiles | null> {
    const out: Record<string, Quantiles | null> = {};
    for (const [k, c] of this.columns) out[k] = c.quantiles();
    return out;
  }
}
