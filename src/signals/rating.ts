// Rating prompts: ask the scoring model about a pair and read the answer's distribution at the
// answer position (no generation). Formulas and sources: docs/signals.md "Rating prompts".
//   ask_llm    = log p("yes" | Ask-LLM prompt)                       (Sachdeva et al. 2024)
//   rating     = mean over the K wordings of Σ_j p_j·j, p = softmax over the logits of "1".."k"
//                (DEITA's expected score, hkust-nlp/deita src/deita/selection/scorer/base.py)
//   rating_var = population variance of that expected score over the K wordings
//   selectit   = mean_w(T_w) / (1 + α·std_w(T_w)), T_w = argmax_j p_j · Σ_j (p_max − p_j)/(k − 1)
//                (SelectIT token + sentence level, Blue-Raincoat/SelectIT self_reflection/)
// Templates hold {instruction} and {response}; the answer tokens are looked up in the model's
// tokenizer (the token the prompt's text continues with), never fixed ids.

import { UsageError } from '../errors.js';
import type { LanguageModel } from '../models/lm.js';
import type { TextTokenizer } from '../tokenizer/types.js';
import { candidateLogprobs } from './candidates.js';

/** The Ask-LLM question, adapted from the paper's prompt to an instruction–response pair. */
export const ASK_LLM_TEMPLATE = `###
Instruction: {instruction}
Response: {response}
###
Does the previous example, demarcated within ### and ###, contain an informative signal for training a large language model to follow instructions? An informative example is well formatted, answers the instruction correctly and helpfully, and contains no harmful content.
OPTIONS:
- yes
- no
ANSWER:`;

/** Default rating wordings (SelectIT's layout: a rating request, the pair, "The answer is:"). */
export const RATING_TEMPLATES = [
  `Rate the response to the instruction on a scale from 1 to {k} for how accurately and helpfully it follows the instruction; answer with the number only.
Instruction: {instruction}
Response: {response}
The answer is:`,
  `Give the assistant a score between 1 and {k}, where {k} means the response follows the instruction perfectly and is fully correct.
Instruction: {instruction}
Response: {response}
The answer is:`,
  `How good is this answer? Judge its correctness and adherence to the instruction with one score from 1 (poor) to {k} (excellent).
Instruction: {instruction}
Response: {response}
The answer is:`,
];

export interface RatingOptions {
  askLlm: boolean;
  rating: boolean;
  /** Ask-LLM template (default ASK_LLM_TEMPLATE); its answer token is `yes`. */
  askTemplate?: string;
  /** K rating wordings (default RATING_TEMPLATES). */
  ratingTemplates?: string[];
  /** The rating tokens are "1".."k" (default 5, SelectIT's scale; DEITA uses 6). */
  scale?: number;
  /** SelectIT's uncertainty weight α (default 0.2, the repository's default). */
  alpha?: number;
  /** The answer's text for Ask-LLM (default 'yes'). */
  yes?: string;
}

export interface RatingScores { ask_llm?: number | null; rating?: number | null; rating_var?: number | null; selectit?: number | null }

/** A template file: one or more templates separated by lines holding only `---`. */
export function parseTemplateFile(text: string, file: string): string[] {
  const parts = text.replace(/\r\n/g, '\n').split(/^---[ \t]*$/m).map((t) => t.replace(/^\n+|\n+$/g, '')).filter((t) => t.trim());
  if (!parts.length) throw new UsageError(`${file}: no template in the file`);
  parts.forEach((t, i) => {
    if (!t.includes('{instruction}') || !t.includes('{response}')) throw new UsageError(`${file}: template ${i + 1} must contain {instruction} and {response}`);
  });
  return parts;
}

export function fillTemplate(t: string, x: string, y: string, k: number): string {
  // One pass, so braces inside x or y are never replaced.
  return t.replace(/\{(instruction|response|k)\}/g, (_, n: string) => (n === 'instruction' ? x : n === 'response' ? y : String(k)));
}

/** The prompt's ids (BOS first when the model has one). */
export function promptIds(tok: TextTokenizer, text: string): number[] {
  const ids = tok.encode(text, { addSpecial: false });
  return tok.bosId !== null ? [tok.bosId, ...ids] : ids;
}

/**
 * The token the model would write for `answer` right after `context`: the one extra token of
 * encode(context + answer) over encode(context), else answer's own single token.
 */
export function answerToken(tok: TextTokenizer, context: string, answer: string): number {
  const a = tok.encode(context, { addSpecial: false }), b = tok.encode(context + answer, { addSpecial: false });
  if (b.length === a.length + 1 && a.every((t, i) => b[i] === t)) return b[a.length];
  for (const text of [answer, ' ' + answer]) {
    const ids = tok.encode(text, { addSpecial: false });
    if (ids.length === 1) return ids[0];
  }
  throw new UsageError(`the model's tokenizer (${tok.source}) spells the answer '${answer}' as more than one token: rating prompts need one token per answer`);
}

/** Expected rating, its SelectIT token-level score, from the log-probs of "1".."k". */
export function ratingFromLogprobs(lp: ArrayLike<number>): { expected: number; token: number } {
  const k = lp.length;
  let m = -Infinity;
  for (let j = 0; j < k; j++) m = Math.max(m, lp[j]);
  let z = 0;
  const p = new Float64Array(k);
  for (let j = 0; j < k; j++) z += (p[j] = Math.exp(lp[j] - m));
  let expected = 0, best = 0;
  for (let j = 0; j < k; j++) {
    p[j] /= z;
    expected += p[j] * (j + 1);
    if (p[j] > p[best]) best = j;
  }
  let spread = 0;
  for (let j = 0; j < k; j++) spread += p[best] - p[j];
  return { expected, token: (best + 1) * spread / (k - 1) };
}

const mean = (v: number[]) => v.reduce((a, b) => a + b, 0) / v.length;
const pvar = (v: number[]) => { const m = mean(v); return v.reduce((a, b) => a + (b - m) ** 2, 0) / v.length; };
const fin = (x: number) => (Number.isFinite(x) ? x : null);

export class RatingSignals {
  readonly scale: number;
  readonly alpha: number;
  readonly askTemplate: string;
  readonly ratingTemplates: string[];
  constructor(readonly model: LanguageModel, readonly opts: RatingOptions) {
    this.scale = opts.scale ?? 5;
    if (!Number.isInteger(this.scale) || this.scale < 2 || this.scale > 9) throw new UsageError(`--rating-scale must be an integer from 2 to 9 (got ${opts.scale})`);
    this.alpha = opts.alpha ?? 0.2;
    this.askTemplate = opts.askTemplate ?? ASK_LLM_TEMPLATE;
    this.ratingTemplates = opts.ratingTemplates ?? RATING_TEMPLATES;
  }

  /** What changes these scores (for resume checks). */
  identity(): Record<string, unknown> {
    return { askLlm: this.opts.askLlm, rating: this.opts.rating, ask: this.opts.askLlm ? this.askTemplate : null, yes: this.opts.yes ?? 'yes', ratings: this.opts.rating ? this.ratingTemplates : null, scale: this.scale, alpha: this.alpha };
  }

  async score(pairs: readonly { x: string; y: string }[]): Promise<RatingScores[]> {
    const tok = this.model.tokenizer;
    const out: RatingScores[] = pairs.map(() => ({}));
    if (this.opts.askLlm) {
      const texts = pairs.map((p) => fillTemplate(this.askTemplate, p.x, p.y, this.scale));
      const yes = answerToken(tok, texts[0] ?? '', this.opts.yes ?? 'yes');
      const lp = await candidateLogprobs(this.model, texts.map((t) => promptIds(tok, t)), [yes]);
      lp.forEach((r, i) => { out[i].ask_llm = fin(r[0]); });
    }
    if (this.opts.rating && pairs.length) {
      const per: { expected: number; token: number }[][] = pairs.map(() => []);
      for (const t of this.ratingTemplates) {
        const texts = pairs.map((p) => fillTemplate(t, p.x, p.y, this.scale));
        const cands = Array.from({ length: this.scale }, (_, j) => answerToken(tok, texts[0], String(j + 1)));
        const lp = await candidateLogprobs(this.model, texts.map((s) => promptIds(tok, s)), cands);
        lp.forEach((r, i) => per[i].push(ratingFromLogprobs(r)));
      }
      per.forEach((w, i) => {
        const e = w.map((s) => s.expected), tk = w.map((s) => s.token);
        out[i].rating = fin(mean(e));
        out[i].rating_var = fin(pvar(e));
        out[i].selectit = fin(mean(tk) / (1 + this.alpha * Math.sqrt(pvar(tk))));
      });
    }
    return out;
  }
}
