// Pair → pass sequences: the one builder of the token sequences a pair is scored on. `concord
// score` (scorer.ts), the benchmarks' peers (bench/peer-transformers.ts) and the GPU bundle
// (bench/gpu/main.ts) all build through it, so a peer scores exactly what `concord score` scores
// (tests/sequences.test.ts compares the ids both ways).
//
//   const b = sequenceBuilder({ tokenizer, maxLen, sameModel: true });
//   const p = b.build(recordToPair(record));   // throws RecordError for an empty prompt/response or an over-long pair ('error')
//   for (const r of b.reads(p)) …             // { quantity, pass, ids, span }: log p over span of ids
//
// Steps: the templates (explicit, else the chat format's, else the tokenizer's defaults), the pass
// plan (plan.ts), the length budget (maxLen − 1 − the plan's literal tokens), x and y tokenised
// standalone (bound.ts: only the kept end of a text far over the budget), truncation (plan.ts
// truncatePair), then one sequence per pass: [start] + template(x, y).

import { UsageError } from '../errors.js';
import type { TextTokenizer } from '../tokenizer/types.js';
import { encodeBounded } from './bound.js';
import type { ChatFormat } from './chat-template.js';
import { RecordError } from './input.js';
import { SLOT_ONLY, passSequences, planPasses, truncatePair, type PassPlan, type PassSequence, type Quantity } from './plan.js';
import { defaultTemplates, encodeTemplate, parseTemplate } from './templates.js';

export interface SequenceBuilderOptions {
  /** The forward model's tokenizer (the reverse model must share its ids). */
  tokenizer: TextTokenizer;
  /** Longest sequence, start token included. */
  maxLen: number;
  /** Template sources; default: the chat format's, else defaultTemplates(tokenizer). */
  forwardTemplate?: string;
  reverseTemplate?: string;
  /** A chat format (chat-template.ts): its templates, and stripContent strips x and y. */
  chat?: ChatFormat | null;
  /** One model scores both directions (unconditionals may share the conditional passes). */
  sameModel: boolean;
  /** 'min' (default): the fewest passes the templates allow; 4: the four-pass computation. */
  passes?: 'min' | 4;
  /** An over-long pair: cut (default) or a RecordError. */
  overlong?: 'truncate' | 'error';
}

/** A pair's ids as scored and its sequences, one per pass of the plan, in plan order. */
export interface BuiltPair {
  xIds: number[];
  yIds: number[];
  /** Tokens of x and y before truncation (estimated for texts far over the budget). */
  xFull: number;
  yFull: number;
  fullEstimated: boolean;
  truncated: boolean;
  sequences: PassSequence[];
}

/** One likelihood of a pair: log p(ids[t] | ids[<t]) summed over t in span. */
export interface SequenceRead { quantity: Quantity; pass: number; ids: number[]; span: [number, number] }

export interface SequenceBuilder {
  readonly plan: PassPlan;
  readonly startId: number;
  readonly maxLen: number;
  /** Tokens x and y share in the longest sequence. */
  readonly available: number;
  readonly templates: { forward: string; reverse: string };
  build(pair: { x: string; y: string }): BuiltPair;
  reads(p: BuiltPair): SequenceRead[];
}

export function sequenceBuilder(o: SequenceBuilderOptions): SequenceBuilder {
  const tok = o.tokenizer;
  const startId = tok.bosId ?? tok.eosId;
  if (startId === null) throw new Error('the tokenizer has neither a BOS nor an EOS token to start sequences with');
  const maxLen = o.maxLen;
  const defaults = defaultTemplates(tok);
  const forward = o.forwardTemplate ?? o.chat?.forward ?? defaults.forward;
  const reverse = o.reverseTemplate ?? o.chat?.reverse ?? defaults.reverse;
  // A chat template that strips message content: x and y are stripped too, in every pass (chat-template.ts).
  const strip = o.chat?.stripContent && (o.forwardTemplate === undefined || o.reverseTemplate === undefined) ? o.chat.stripContent : null;
  const clean = (t: string): string => (strip?.start ? (strip.end ? t.trim() : t.trimStart()) : strip?.end ? t.trimEnd() : t);
  const plan = planPasses({
    forward: encodeTemplate(tok, parseTemplate(forward, ['x', 'y'])),
    reverse: encodeTemplate(tok, parseTemplate(reverse, ['y', 'x'])),
    xOnly: encodeTemplate(tok, SLOT_ONLY.x),
    yOnly: encodeTemplate(tok, SLOT_ONLY.y),
    sameModel: o.sameModel,
    fourPass: o.passes === 4,
  });
  const available = maxLen - 1 - plan.literalTokens;
  if (available < 2) throw new UsageError(`--max-len ${maxLen} leaves no room for x and y after the templates' ${plan.literalTokens} literal tokens`);

  function build(pair: { x: string; y: string }): BuiltPair {
    // Texts far over the budget: only their kept ends are tokenised (bound.ts).
    const xb = encodeBounded(tok, clean(pair.x), 'tail', available), yb = encodeBounded(tok, clean(pair.y), 'head', available);
    if (xb.ids.length === 0) throw new RecordError('the prompt has no tokens');
    if (yb.ids.length === 0) throw new RecordError('the response has no tokens');
    const fullEstimated = xb.estimated || yb.estimated;
    const t = truncatePair(xb.ids, yb.ids, available);
    if (t.truncated && o.overlong === 'error') {
      throw new RecordError(`over-long pair: x ${xb.full} + y ${yb.full}${fullEstimated ? ' (estimated)' : ''} tokens + ${plan.literalTokens} template tokens + 1 is over --max-len ${maxLen}`);
    }
    return {
      xIds: t.xIds, yIds: t.yIds, xFull: xb.full, yFull: yb.full, fullEstimated, truncated: t.truncated,
      sequences: passSequences(plan, startId!, t.xIds, t.yIds),
    };
  }

  const reads = (p: BuiltPair): SequenceRead[] => p.sequences.flatMap((s) =>
    plan.passes[s.pass].reads.map((r) => ({ quantity: r.quantity, pass: s.pass, ids: s.ids, span: s.spans[r.slot]! })));

  return { plan, startId, maxLen, available, templates: { forward, reverse }, build, reads };
}
