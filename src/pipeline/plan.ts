// The pass plan: which token sequences each pair needs, and which score each span of them gives.
//
// Four quantities per pair (x = prompt, y = response, F = forward model, R = reverse-scoring model,
// R = F unless --reverse-model is given):
//   fwd = log p_F(y | x)  target y in  [BOS] + forward template(x, y)
//   rev = log p_R(x | y)  target x in  [BOS] + reverse template(y, x)
//   y   = log p_F(y)      y in [BOS y]
//   x   = log p_R(x)      x in [BOS x]
// so IFD = exp(y − fwd) is all-F and r-IFD = exp(x − rev) is all-R.
//
// Fewer passes: a causal LM's log-probs at the positions of a prefix depend only on that prefix.
// When the forward template starts with {x} (nothing before it), the positions of x in the forward
// sequence ARE [BOS x]: the forward pass gives log p(x) for free — but only when R = F, since x is
// defined under R. Likewise a reverse template starting with {y} gives log p(y) when R = F. With the
// default templates ("{x}{y}" or "{x}\n\n{y}", and their reverses) and one model that is 2 passes
// instead of 4; a template with a prefix before its first slot (a chat format) costs one more pass
// for that unconditional; a separate reverse model always takes 4.

import { buildSequence, parseTemplate, startsWithSlot, type BuiltSequence, type EncodedTemplate, type Slot } from './templates.js';

export type Quantity = 'fwd' | 'rev' | 'x' | 'y';
export const QUANTITIES: Quantity[] = ['fwd', 'rev', 'y', 'x'];

export interface Read {
  quantity: Quantity;
  slot: Slot;
}

export interface PassSpec {
  /** 'forward' | 'reverse' | 'uncond-y' | 'uncond-x' */
  name: string;
  model: 'F' | 'R';
  template: EncodedTemplate;
  reads: Read[];
}

export interface PassPlan {
  passes: PassSpec[];
  /** 2, 3 or 4 */
  mode: number;
  /** Most literal template tokens in any pass (for the length budget). */
  literalTokens: number;
}

export const SLOT_ONLY = { x: parseTemplate('{x}', ['x']), y: parseTemplate('{y}', ['y']) };

export function planPasses(o: {
  forward: EncodedTemplate;
  reverse: EncodedTemplate;
  /** encodeTemplate of SLOT_ONLY.x / SLOT_ONLY.y (no literals; any tokenizer) */
  xOnly: EncodedTemplate;
  yOnly: EncodedTemplate;
  sameModel: boolean;
  /** Force the four-pass computation (unconditionals from their own sequences). */
  fourPass?: boolean;
}): PassPlan {
  const fwd: PassSpec = { name: 'forward', model: 'F', template: o.forward, reads: [{ quantity: 'fwd', slot: 'y' }] };
  const rev: PassSpec = { name: 'reverse', model: 'R', template: o.reverse, reads: [{ quantity: 'rev', slot: 'x' }] };
  const passes = [fwd, rev];
  const share = o.sameModel && !o.fourPass;
  if (share && startsWithSlot(o.forward.template, 'x')) fwd.reads.push({ quantity: 'x', slot: 'x' });
  else passes.push({ name: 'uncond-x', model: 'R', template: o.xOnly, reads: [{ quantity: 'x', slot: 'x' }] });
  if (share && startsWithSlot(o.reverse.template, 'y')) rev.reads.push({ quantity: 'y', slot: 'y' });
  else passes.push({ name: 'uncond-y', model: 'F', template: o.yOnly, reads: [{ quantity: 'y', slot: 'y' }] });
  return { passes, mode: passes.length, literalTokens: Math.max(...passes.map((p) => p.template.literalTokens)) };
}

export interface PassSequence extends BuiltSequence {
  pass: number;
}

export function passSequences(plan: PassPlan, startId: number, xIds: number[], yIds: number[]): PassSequence[] {
  return plan.passes.map((p, k) => ({ pass: k, ...buildSequence(p.template, startId, { x: xIds, y: yIds }) }));
}

/** Σ and count of log-probs over a span [s, e) of sequence positions (logprobs[t - 1] scores ids[t]). */
export function spanSum(logprobs: ArrayLike<number>, span: [number, number]): { sum: number; count: number } {
  const [s, e] = span;
  if (s < 1) throw new Error('spanSum: a span must start after the start token');
  let sum = 0;
  for (let t = s; t < e; t++) sum += logprobs[t - 1];
  return { sum, count: e - s };
}

// ---- truncation -----------------------------------------------------------------------------------
// --max-len L (default: the model's maxLen). Every sequence of a pair must fit in L tokens; the
// longest is 1 (start token) + the template literals + |x| + |y|, so x and y share
// A = L − 1 − literal tokens. When |x| + |y| > A:
//   y keeps its first min(|y|, max(A − |x|, ⌈A/2⌉)) tokens (cut from the right),
//   x keeps its last A − kept(y) tokens (cut from the left: the end of the prompt, next to y, stays).
// x is never cut when it fits in half the budget; y is never cut below half unless it is shorter.
// The same cut ids are used in every pass, and the pair is flagged `truncated: true`.

export interface Truncation {
  xIds: number[];
  yIds: number[];
  truncated: boolean;
}

export function truncatePair(xIds: number[], yIds: number[], available: number): Truncation {
  if (xIds.length + yIds.length <= available) return { xIds, yIds, truncated: false };
  const yKeep = Math.min(yIds.length, Math.max(available - xIds.length, Math.ceil(available / 2)));
  const xKeep = Math.min(xIds.length, available - yKeep);
  return { xIds: xIds.slice(xIds.length - xKeep), yIds: yIds.slice(0, yKeep), truncated: true };
}
