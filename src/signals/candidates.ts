// Log-probs of a few candidate tokens at the last position of each prompt: the one model request
// the rating prompts (./rating.ts) need. Each prompt is prefilled once, in batches packed under the
// model's token budget. Two routes, the same numbers:
//  - LanguageModel.candidateLogprobs (WebGPU, the TypeScript twin): one batched prefill per group
//    and the fused head's candidate variant (kernels/logprob.ts: the vocabulary streamed once with
//    the online log-sum-exp, the K candidates' logits gathered; K floats per prompt come back;
//    f64 sums on the twin);
//  - a backend without it (onnxruntime): one batched prefill per group through its decoder,
//    Decoder.stepLogprobs (the last position's log-softmax row), the candidates gathered on the host.

import { MAX_CANDIDATES } from '../../kernels/logprob.js';
import { GREEDY } from '../generate/types.js';
import type { LanguageModel } from '../models/lm.js';

/** out[i][j] = log p(candidates[j] | prompts[i]); NaN for an empty prompt or one longer than the model takes. */
export async function candidateLogprobs(model: LanguageModel, prompts: readonly number[][], candidates: readonly number[]): Promise<Float64Array[]> {
  for (const c of candidates) {
    if (!Number.isInteger(c) || c < 0 || c >= model.config.vocabSize) throw new Error(`candidate token id ${c} is outside the model's vocabulary (${model.config.vocabSize})`);
  }
  if (candidates.length < 1 || candidates.length > MAX_CANDIDATES) throw new Error(`candidate log-probs: ${candidates.length} candidates (1 to ${MAX_CANDIDATES})`);
  const out = prompts.map(() => new Float64Array(candidates.length).fill(NaN));
  // Longest first: groups of similar lengths pad less.
  const todo = prompts.map((p, i) => i).filter((i) => prompts[i].length > 0 && prompts[i].length + 1 <= model.maxLen)
    .sort((a, b) => prompts[b].length - prompts[a].length);
  if (!todo.length) return out;
  if (model.candidateLogprobs) await viaHead(model, prompts, candidates, todo, out);
  else if (model.createDecoder) await viaDecoder(model, prompts, candidates, todo, out);
  else throw new Error(`${model.config.name} (${model.deviceName}): this backend has neither a candidate head nor a decoder`);
  return out;
}

/** Groups of todo (longest first) whose padded size, prompts × longest, stays within the token budget (at least one prompt each). */
function groups(model: LanguageModel, prompts: readonly number[][], todo: readonly number[]): number[][] {
  const out: number[][] = [];
  for (const i of todo) {
    const g = out[out.length - 1];
    // todo is longest first, so a group's longest is its first prompt
    if (g && prompts[g[0]].length * (g.length + 1) <= model.tokenBudget) g.push(i);
    else out.push([i]);
  }
  return out;
}

async function viaHead(model: LanguageModel, prompts: readonly number[][], cands: readonly number[], todo: number[], out: Float64Array[]): Promise<void> {
  for (const group of groups(model, prompts, todo)) {
    const rows = await model.candidateLogprobs!(group.map((i) => prompts[i]), cands);
    group.forEach((i, s) => out[i].set(rows[s]));
  }
}

async function viaDecoder(model: LanguageModel, prompts: readonly number[][], cands: readonly number[], todo: number[], out: Float64Array[]): Promise<void> {
  const all = groups(model, prompts, todo);
  const slots = Math.max(...all.map((g) => g.length));
  const dec = await model.createDecoder!({ slots, maxLen: prompts[todo[0]].length + 1 });
  try {
    for (const group of all) {
      group.forEach((_, s) => dec.reset(s));
      const rows = await dec.stepLogprobs(group.map((i, s) => ({ slot: s, ids: prompts[i], sampling: GREEDY, step: 0 })));
      group.forEach((i, s) => cands.forEach((c, j) => { out[i][j] = rows[s][c]; }));
    }
  } finally {
    dec.dispose();
  }
}
