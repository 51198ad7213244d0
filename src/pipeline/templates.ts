// Prompt templates: how x (the prompt) and y (the response) are laid out in one token sequence.
//
// A template is a string with the slots {x} and {y}, e.g. "{x}\n\n{y}" (defaults: see
// defaultTemplates below). It is never applied by string substitution: the template is cut into literal pieces
// and slots, every piece is tokenised on its own, and the sequence is the concatenation of the ids
// [start] + ids(piece 1) + ids(piece 2) + ... So the positions of x and y are known exactly, and x
// and y have the very same ids in every sequence they appear in (conditional or unconditional).
//
// Tokenisation of the pieces (documented in the README):
//  - x and y are tokenised as standalone texts (`addSpecial: false`). A sentencepiece tokenizer
//    therefore starts them with its word-start marker ('▁Once'), exactly as llama2.c's run.c
//    encodes a prompt; byte-level tokenizers (GPT-2, Qwen2) take them literally.
//  - A literal piece at the very start is tokenised as standalone text too.
//  - A literal piece that follows other text is tokenised as a continuation: for sentencepiece
//    tokenizers the word-start marker is not added (we encode "\n" + text and drop the ids of "\n",
//    so "\n\n" becomes two newline tokens, not '▁' + two newlines).
//  - Special-token strings inside literal pieces (e.g. '<|im_start|>') map to their ids, as Hugging
//    Face tokenizers do for added tokens.

import type { TextTokenizer } from '../tokenizer/types.js';
import { UsageError } from '../errors.js';

export type Slot = 'x' | 'y';

export type TemplatePiece = { kind: 'lit'; text: string } | { kind: 'slot'; slot: Slot };

export interface Template {
  /** The template string as given. */
  source: string;
  pieces: TemplatePiece[];
}

/**
 * Default templates, by tokenizer family (README "Templates"):
 *  - word-start tokenizers (sentencepiece with a dummy prefix: Llama, stories15M): "{x}{y}" and
 *    "{y}{x}". y's own word-start marker ('▁Once') is the space between the two texts, so the
 *    sequence reads as one running text "x y" — what a base model saw in training;
 *  - byte-level tokenizers (GPT-2, Qwen2), which add no marker: "{x}\n\n{y}" and "{y}\n\n{x}".
 * Both start with their first slot, so with one model they take two passes.
 */
export const DEFAULT_TEMPLATES = {
  wordStart: { forward: '{x}{y}', reverse: '{y}{x}' },
  byteLevel: { forward: '{x}\n\n{y}', reverse: '{y}\n\n{x}' },
} as const;

export function defaultTemplates(tok: Pick<TextTokenizer, 'dummyPrefix'>): { forward: string; reverse: string } {
  return tok.dummyPrefix ? DEFAULT_TEMPLATES.wordStart : DEFAULT_TEMPLATES.byteLevel;
}

/** @deprecated The defaults depend on the tokenizer: use defaultTemplates(tok). These are the word-start (stories15M) ones. */
export const DEFAULT_FORWARD_TEMPLATE = DEFAULT_TEMPLATES.wordStart.forward;
/** @deprecated See DEFAULT_FORWARD_TEMPLATE. */
export const DEFAULT_REVERSE_TEMPLATE = DEFAULT_TEMPLATES.wordStart.reverse;

export class TemplateError extends UsageError {}

/**
 * Parse a template. `{x}` and `{y}` are the slots; `{{` and `}}` stand for literal braces; any other
 * brace is an error. `order` is the required slot order: forward templates put the context x
 * before the target y, reverse templates y before x.
 */
export function parseTemplate(source: string, order: readonly Slot[]): Template {
  const pieces: TemplatePiece[] = [];
  let lit = '';
  for (let i = 0; i < source.length; i++) {
    const c = source[i];
    if ((c === '{' || c === '}') && source[i + 1] === c) {
      lit += c;
      i++;
      continue;
    }
    if (c === '{') {
      const m = /^\{([a-z]+)\}/.exec(source.slice(i));
      if (!m || (m[1] !== 'x' && m[1] !== 'y')) {
        throw new TemplateError(`template ${JSON.stringify(source)}: unknown placeholder at offset ${i} (use {x}, {y}, or {{ }} for literal braces)`);
      }
      if (lit) pieces.push({ kind: 'lit', text: lit });
      lit = '';
      pieces.push({ kind: 'slot', slot: m[1] });
      i += m[0].length - 1;
      continue;
    }
    if (c === '}') throw new TemplateError(`template ${JSON.stringify(source)}: unmatched '}' at offset ${i} (write }} for a literal brace)`);
    lit += c;
  }
  if (lit) pieces.push({ kind: 'lit', text: lit });
  const slots = pieces.flatMap((p) => (p.kind === 'slot' ? [p.slot] : []));
  if (slots.length !== order.length || slots.some((s, k) => s !== order[k])) {
    const want = order.map((s) => `{${s}}`).join(' then ');
    throw new TemplateError(`template ${JSON.stringify(source)}: needs ${want}, each exactly once (found ${slots.map((s) => `{${s}}`).join(', ') || 'no slots'})`);
  }
  return { source, pieces };
}

/** Does the template start with this slot (no literal text before it)? */
export function startsWithSlot(t: Template, slot: Slot): boolean {
  const p = t.pieces[0];
  return p !== undefined && p.kind === 'slot' && p.slot === slot;
}

/** Ids of `text` as a standalone text (no BOS/EOS). */
export function encodeStandalone(tok: TextTokenizer, text: string): number[] {
  return tok.encode(text, { addSpecial: false });
}

/**
 * Ids of `text` when it follows other text. For tokenizers that prepend a word-start marker, encode
 * "\n" + text and drop the ids "\n" alone encodes to; a newline is a byte token that never merges
 * with its neighbours, so the rest is exactly the continuation. Falls back to the standalone ids
 * if the prefix does not come out as expected.
 */
export function encodeContinuation(tok: TextTokenizer, text: string): number[] {
  if (!tok.dummyPrefix || text === '') return encodeStandalone(tok, text);
  const nl = tok.encode('\n', { addSpecial: false });
  const ids = tok.encode('\n' + text, { addSpecial: false });
  if (ids.length >= nl.length && nl.every((id, k) => ids[k] === id)) return ids.slice(nl.length);
  return encodeStandalone(tok, text);
}

/** A template with its literal pieces tokenised once (they do not depend on the pair). */
export interface EncodedTemplate {
  template: Template;
  /** ids per piece; null for slots */
  literalIds: (number[] | null)[];
  /** Total literal tokens. */
  literalTokens: number;
}

export function encodeTemplate(tok: TextTokenizer, t: Template): EncodedTemplate {
  const literalIds = t.pieces.map((p, k) => {
    if (p.kind === 'slot') return null;
    return k === 0 ? encodeStandalone(tok, p.text) : encodeContinuation(tok, p.text);
  });
  return { template: t, literalIds, literalTokens: literalIds.reduce((s, ids) => s + (ids?.length ?? 0), 0) };
}

export interface BuiltSequence {
  ids: number[];
  /** [start, end) positions of each slot in ids */
  spans: Partial<Record<Slot, [number, number]>>;
}

/** [start] + the template's pieces with the slots filled by the given ids. */
export function buildSequence(et: EncodedTemplate, startId: number, slotIds: Record<Slot, number[]>): BuiltSequence {
  const ids = [startId];
  const spans: BuiltSequence['spans'] = {};
  et.template.pieces.forEach((p, k) => {
    if (p.kind === 'lit') {
      for (const id of et.literalIds[k]!) ids.push(id);
    } else {
      const s = ids.length;
      for (const id of slotIds[p.slot]) ids.push(id);
      spans[p.slot] = [s, ids.length];
    }
  });
  return { ids, spans };
}

// Chat templates (a model's own Jinja chat_template, cut into these same pieces and slots) live in
// ./chat-template.ts.
