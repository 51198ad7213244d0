// Prompts for generation, built exactly as the scorer builds its contexts (src/pipeline/scorer.ts,
// templates.ts, chat-template.ts): [start] + the template's pieces up to the slot being generated,
// the source text tokenised standalone (stripped as the chat template strips message content).
//   forward: the forward template (x before y) cut at {y}: the model writes the response y;
//   reverse: the reverse template (y before x) cut at {x}: the model writes the instruction x
//            (with a chat template: the conversation with roles swapped, as r-IFD scores it).
// Text after the generated slot (end-of-turn markers) is not part of the prompt.

import type { TextTokenizer } from '../tokenizer/types.js';
import type { ChatFormat } from '../pipeline/chat-template.js';
import { buildSequence, defaultTemplates, encodeStandalone, encodeTemplate, parseTemplate, type Slot } from '../pipeline/templates.js';

export type Direction = 'forward' | 'reverse';

export interface PromptOptions {
  direction: Direction;
  /** An explicit template ({x} and {y}); default: the chat format's, else the tokenizer family's default. */
  template?: string;
  chat?: ChatFormat | null;
}

export interface PromptBuilder {
  direction: Direction;
  /** The template string used. */
  template: string;
  /** Prompt ids for one source text (x forward, y reverse). */
  build(source: string): number[];
}

export function promptBuilder(tok: TextTokenizer, o: PromptOptions): PromptBuilder {
  const startId = tok.bosId ?? tok.eosId;
  if (startId === null) throw new Error('the tokenizer has neither a BOS nor an EOS token to start sequences with');
  const defaults = defaultTemplates(tok);
  const fwd = o.direction === 'forward';
  const src = o.template ?? (fwd ? o.chat?.forward ?? defaults.forward : o.chat?.reverse ?? defaults.reverse);
  const order: Slot[] = fwd ? ['x', 'y'] : ['y', 'x'];
  const et = encodeTemplate(tok, parseTemplate(src, order));
  const strip = o.template === undefined ? o.chat?.stripContent ?? null : null;
  const clean = (t: string): string => (strip?.start ? (strip.end ? t.trim() : t.trimStart()) : strip?.end ? t.trimEnd() : t);
  const [given, generated] = order;
  return {
    direction: o.direction,
    template: src,
    build(source: string): number[] {
      const ids = encodeStandalone(tok, clean(source));
      const seq = buildSequence(et, startId, { [given]: ids, [generated]: [] } as Record<Slot, number[]>);
      return seq.ids.slice(0, seq.spans[generated]![0]);
    },
  };
}
