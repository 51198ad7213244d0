// Log-probs of a few candidate tokens at the last position of each prompt: the one model request
// the rating prompts (./rating.ts) need. Two routes, the same numbers:
//  - a backend with a decoder (the TypeScript twin, onnxruntime): one batched prefill per group of
//    prompts through Decoder.stepLogprobs, which returns the last position's log-softmax row; the
//    candidates are gathered from it (f64 sums on the twin);
//  - any other backend (WebGPU until its decoder lands): each candidate is scored as one extra
//    target token through scoreBatch — k sequences sharing the prompt. Correct, k× the work.

import { GREEDY } from '../generate/types.js';
import type { LanguageModel } from '../models/lm.js';

/** out[i][j] = log p(candidates[j] | prompts[i]); NaN for a prompt longer than the model takes. */
export async function candidateLogprobs(model: LanguageModel, prompts: readonly number[][], candidates: readonly number[]): Promise<Float64Array[]> {
  for (const c of candidates) {
    if (!Number.isInteger(c) || c < 0 || c >= model.config.vocabSize) throw new Error(`candidate token id ${c} is outside the model's vocabulary (${model.config.vocabSize})`);
  }
  const out = prompts.map(() => new Float64Array(candidates.length).fill(NaN));
  const todo = prompts.map((p, i) => i).filter((i) => prompts[i].length > 0 && prompts[i].length + 1 <= model.maxLen);
  if (!todo.length) return out;
  if (model.createDecoder) await viaDecoder(model, prompts, candidates, todo, out);
  else await viaScoreBatch(model, prompts, candidates, todo, out);
  return out;
}

async function viaDecoder(model: LanguageModel, prompts: readonly number[][], cands: readonly number[], todo: number[], out: Float64Array[]): Promise<void> {
  const longest = Math.max(...todo.map((i) => prompts[i].length));
  const slots = Math.max(1, Math.min(todo.length, Math.floor(model.tokenBudget / longest) || 1));
  const dec = await model.createDecoder!({ slots, maxLen: longest + 1 });
  try {
    for (let g = 0; g < todo.length; g += slots) {
      const group = todo.slice(g, g + slots);
      group.forEach((_, s) => dec.reset(s));
      const rows = await dec.stepLogprobs(group.map((i, s) => ({ slot: s, ids: prompts[i], sampling: GREEDY, step: 0 })));
      group.forEach((i, s) => cands.forEach((c, j) => { out[i][j] = rows[s][c]; }));
    }
  } finally {
    dec.dispose();
  }
}

async function viaScoreBatch(model: LanguageModel, prompts: readonly number[][], cands: readonly number[], todo: number[], out: Float64Array[]): Promise<void> {
  const seqs: { i: number; j: number; ids: number[] }[] = [];
  for (const i of todo) cands.forEach((c, j) => seqs.push({ i, j, ids: [...prompts[i], c] }));
  let b = 0;
  while (b < seqs.length) {
    let e = b, longest = 0;
    while (e < seqs.length && (e === b || Math.max(longest, seqs[e].ids.length) * (e - b + 1) <= model.tokenBudget)) longest = Math.max(longest, seqs[e++].ids.length);
    const res = await model.scoreBatch(seqs.slice(b, e).map((s) => ({ ids: s.ids })));
    res.forEach((r, k) => { const s = seqs[b + k]; out[s.i][s.j] = r.logprobs[s.ids.length - 2]; });
    b = e;
  }
}
