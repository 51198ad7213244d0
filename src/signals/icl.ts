// In-context influence: each candidate pair's effect on an anchor set when it is given as a one-shot
// example (NUGGETS, github pldlgb/nuggets; Data-Juicer's in_context_influence_filter). Formulas and
// sources: docs/signals.md "In-context influence".
//
//   zero-shot  Z_a = log-probs of anchor a's response tokens in [start] + template(x_a, y_a)
//   one-shot   O_a = the same tokens in [start] + template(x_z, y_z) + template(x_a, y_a)
//   icl_gold   = (1/A) Σ_a [ΣO_a > ΣZ_a]                       NUGGETS' golden score (win rate)
//   icl_delta  = (1/A) Σ_a (mean O_a − mean Z_a)                mean log-prob gain per response token
//   icl_ratio  = (1/A) Σ_a (−mean Z_a) / (−mean O_a)            Data-Juicer's in_context_influence
//
// Templates and truncation are the scorer's (its SequenceBuilder): a pair is laid out exactly as
// the forward pass lays it out. Cost N×A anchor scorings; with KV reuse (the default) each
// candidate's prefix is prefilled once into a decoder slot, every anchor is scored from that cache
// (Decoder.scoreTokens) and the slot truncated back to the prefix; S candidates share a step, one
// per slot. `reuse: false` scores every prefix + anchor sequence from an empty slot (the check and
// the benchmark's baseline). Zero-shot scores are computed once per run.

import type { Decoder } from '../generate/types.js';
import type { LanguageModel } from '../models/lm.js';
import { RecordError } from '../pipeline/input.js';
import type { SequenceBuilder } from '../pipeline/sequences.js';

/** A pair's forward sequence ([start] + template(x, y)) and the span [s, e) of its response tokens. */
interface Laid { ids: number[]; span: [number, number] }

export interface IclOptions {
  /** Prefill each candidate once and score the anchors from its cache (default true). */
  reuse?: boolean;
  /** Decoder slots (candidates per step); default: as many as the model's token budget holds, at most 16. */
  slots?: number;
}

export interface IclScores { icl_gold: number | null; icl_delta: number | null; icl_ratio: number | null }

export interface IclPerAnchor { zero: { sum: number; mean: number }[]; one: { sum: number; mean: number }[] }

/** The three columns from per-anchor zero-shot and one-shot sums and means over the response tokens. */
export function iclColumns(zero: readonly { sum: number; mean: number }[], one: readonly { sum: number; mean: number }[]): IclScores {
  const A = zero.length;
  let wins = 0, delta = 0, ratio = 0;
  for (let a = 0; a < A; a++) {
    if (one[a].sum > zero[a].sum) wins++;
    delta += one[a].mean - zero[a].mean;
    ratio += zero[a].mean / one[a].mean; // (−Z)/(−O)
  }
  const fin = (v: number) => (Number.isFinite(v) ? v : null);
  return { icl_gold: wins / A, icl_delta: fin(delta / A), icl_ratio: fin(ratio / A) };
}

function hashText(s: string): string {
  // FNV-1a 32-bit over UTF-16 units: an anchor set's fingerprint for resume checks.
  let h = 0x811c9dc5;
  for (let i = 0; i < s.length; i++) { h ^= s.charCodeAt(i); h = Math.imul(h, 0x01000193) >>> 0; }
  return h.toString(16).padStart(8, '0');
}

export class InContextInfluence {
  readonly reuse: boolean;
  private readonly anchors: Laid[];
  private zero: { sum: number; mean: number }[] | null = null;
  /** Token rows fed to the decoder so far (prefills and anchors), for the benchmark. */
  tokensFed = 0;

  constructor(readonly model: LanguageModel, readonly builder: SequenceBuilder, anchors: readonly { x: string; y: string }[], readonly opts: IclOptions = {}) {
    if (!model.createDecoder) throw new Error(`${model.config.name} on ${model.deviceName} has no decoder: in-context influence needs one`);
    if (!anchors.length) throw new Error('in-context influence needs at least one anchor pair');
    this.reuse = opts.reuse ?? true;
    this.anchors = anchors.map((p, i) => {
      try {
        return this.lay(p);
      } catch (e) {
        if (e instanceof RecordError) throw new RecordError(`anchor ${i + 1}: ${e.message}`);
        throw e;
      }
    });
    this.anchorText = anchors.map((p) => `${p.x}\u0000${p.y}`).join('\u0001');
  }
  private readonly anchorText: string;

  identity(): Record<string, unknown> {
    return { icl: { anchors: this.anchors.length, fingerprint: hashText(this.anchorText) } };
  }

  /** The forward pass's sequence of a pair and its y span (throws RecordError for a pair the builder refuses). */
  private lay(p: { x: string; y: string }): Laid {
    const b = this.builder.build(p);
    const r = this.builder.reads(b).find((q) => q.quantity === 'fwd');
    if (!r) throw new Error('the scorer has no forward pass to lay pairs out with');
    return { ids: r.ids, span: r.span };
  }

  /** Candidate prefixes: [start] + template(x, y); null where the pair cannot be laid out or prefix + an anchor exceeds the model. */
  private prefixes(pairs: readonly { x: string; y: string }[]): (number[] | null)[] {
    const longest = Math.max(...this.anchors.map((a) => a.ids.length - 1));
    return pairs.map((p) => {
      try {
        const ids = this.lay(p).ids;
        return ids.length + longest <= this.model.maxLen ? ids : null;
      } catch (e) {
        if (e instanceof RecordError) return null;
        throw e;
      }
    });
  }

  private slotCount(n: number, len: number): number {
    const fit = Math.floor(this.model.tokenBudget / Math.max(1, len)) || 1;
    return Math.max(1, Math.min(n, this.opts.slots ?? Math.min(16, fit)));
  }

  private static reduce(lp: Float32Array): { sum: number; mean: number } {
    let s = 0;
    for (const v of lp) s += v;
    return { sum: s, mean: s / lp.length };
  }

  /** Zero-shot sums and means of every anchor's response (once per run). */
  async zeroShot(): Promise<{ sum: number; mean: number }[]> {
    if (this.zero) return this.zero;
    const A = this.anchors.length, longest = Math.max(...this.anchors.map((a) => a.ids.length));
    const S = this.slotCount(A, longest);
    const dec = await this.model.createDecoder!({ slots: S, maxLen: longest });
    const out: { sum: number; mean: number }[] = [];
    try {
      for (let g = 0; g < A; g += S) {
        const group = this.anchors.slice(g, g + S);
        group.forEach((_, s) => dec.reset(s));
        const lps = await dec.scoreTokens(group.map((a, s) => ({ slot: s, ids: a.ids.slice(0, a.span[1]), from: a.span[0] })));
        this.tokensFed += group.reduce((n, a) => n + a.span[1], 0);
        out.push(...lps.map(InContextInfluence.reduce));
      }
    } finally {
      dec.dispose();
    }
    return (this.zero = out);
  }

  /** Per candidate: each anchor's one-shot response sum and mean (null for a candidate that does not fit). */
  async oneShot(pairs: readonly { x: string; y: string }[]): Promise<({ sum: number; mean: number }[] | null)[]> {
    const pre = this.prefixes(pairs);
    const todo = pre.map((p, i) => i).filter((i) => pre[i]);
    const out: ({ sum: number; mean: number }[] | null)[] = pairs.map(() => null);
    if (!todo.length) return out;
    const longestAnchor = Math.max(...this.anchors.map((a) => a.span[1] - 1));
    const maxLen = Math.max(...todo.map((i) => pre[i]!.length)) + longestAnchor;
    const S = this.slotCount(todo.length, maxLen);
    const dec = await this.model.createDecoder!({ slots: S, maxLen });
    try {
      for (let g = 0; g < todo.length; g += S) {
        const group = todo.slice(g, g + S);
        const res = this.reuse ? await this.groupReuse(dec, group.map((i) => pre[i]!)) : await this.groupPlain(dec, group.map((i) => pre[i]!));
        group.forEach((i, k) => { out[i] = res[k]; });
      }
    } finally {
      dec.dispose();
    }
    return out;
  }

  /** KV reuse: prefill each prefix once, then per anchor one step over the slots, truncating back to the prefix. */
  private async groupReuse(dec: Decoder, prefixes: number[][]): Promise<{ sum: number; mean: number }[][]> {
    prefixes.forEach((_, s) => dec.reset(s));
    await dec.scoreTokens(prefixes.map((p, s) => ({ slot: s, ids: p, from: p.length })));
    this.tokensFed += prefixes.reduce((n, p) => n + p.length, 0);
    const res = prefixes.map(() => [] as { sum: number; mean: number }[]);
    for (const a of this.anchors) {
      // The anchor after the prefix, without its start token: ids[1, e), response at [s − 1, e − 1).
      const cont = a.ids.slice(1, a.span[1]);
      const lps = await dec.scoreTokens(prefixes.map((_, s) => ({ slot: s, ids: cont, from: a.span[0] - 1 })));
      this.tokensFed += prefixes.length * cont.length;
      lps.forEach((lp, s) => res[s].push(InContextInfluence.reduce(lp)));
      prefixes.forEach((p, s) => dec.truncate(s, p.length));
    }
    return res;
  }

  /** No reuse: every prefix + anchor sequence scored from an empty slot. */
  private async groupPlain(dec: Decoder, prefixes: number[][]): Promise<{ sum: number; mean: number }[][]> {
    const res = prefixes.map(() => [] as { sum: number; mean: number }[]);
    for (const a of this.anchors) {
      const cont = a.ids.slice(1, a.span[1]);
      prefixes.forEach((_, s) => dec.reset(s));
      const lps = await dec.scoreTokens(prefixes.map((p, s) => ({ slot: s, ids: [...p, ...cont], from: p.length + a.span[0] - 1 })));
      this.tokensFed += prefixes.reduce((n, p) => n + p.length + cont.length, 0);
      lps.forEach((lp, s) => res[s].push(InContextInfluence.reduce(lp)));
    }
    return res;
  }

  async score(pairs: readonly { x: string; y: string }[]): Promise<IclScores[]> {
    const zero = await this.zeroShot();
    const one = await this.oneShot(pairs);
    return one.map((o) => (o ? iclColumns(zero, o) : { icl_gold: null, icl_delta: null, icl_ratio: null }));
  }
}
