// Bounded tokenisation of texts that will be truncated anyway (README "Truncation"). A pair keeps at
// most `available` tokens, y from its start and x from its end, so a 5 MB response needs only the
// tokens of its first few KB. Tokenising a whole huge text costs time and memory linear in it (on
// stories15M's tokenizer ~27 µs and far more than one byte of memory per character), for nothing.
//
// encodeBounded tokenises only a piece at the kept end — `CHARS_PER_TOKEN` × (need + margin)
// characters, cut at whitespace, growing ×4 while it yields too few tokens — and only when the text
// is at least twice that long (shorter texts are tokenised whole, exactly as before). The piece must
// give at least need + BOUND_MARGIN tokens; the BOUND_MARGIN / 2 tokens next to the cut (where a cut
// inside a word could change the tokens) are dropped, and what is left (> need tokens) is what
// truncatePair keeps from the full text: a side longer than the budget is cut the same way whatever
// its exact length. The full count of a bounded side is then an estimate (tokens of the piece × the
// text's length ÷ the piece's), reported with `tokens_full_estimated: true`.

import type { TextTokenizer } from '../tokenizer/types.js';
import { encodeStandalone } from './templates.js';

export const BOUND_MARGIN = 64;
const CHARS_PER_TOKEN = 8;

export interface BoundedIds {
  /** All the text's tokens, or (estimated) more than `need` tokens at the kept end. */
  ids: number[];
  /** Token count of the whole text (estimated when `estimated`). */
  full: number;
  estimated: boolean;
}

const isSpace = (c: number) => c === 0x20 || c === 0x0a || c === 0x09 || c === 0x0d;

/** The first ≈ chars characters of text, ending before a whitespace when there is one nearby. */
export function headPiece(text: string, chars: number): string {
  for (let i = chars, stop = Math.max(0, chars - 256); i > stop; i--) if (isSpace(text.charCodeAt(i))) return text.slice(0, i);
  return text.slice(0, chars);
}

/** The last ≈ chars characters of text, starting at a whitespace when there is one nearby. */
export function tailPiece(text: string, chars: number): string {
  const from = text.length - chars;
  for (let i = from, stop = Math.min(text.length, from + 256); i < stop; i++) if (isSpace(text.charCodeAt(i))) return text.slice(i);
  return text.slice(from);
}

/** Token ids of `text` as encodeStandalone gives them, bounded to the `keep` end when the text is far over `need` tokens. */
export function encodeBounded(tok: TextTokenizer, text: string, keep: 'head' | 'tail', need: number): BoundedIds {
  for (let chars = CHARS_PER_TOKEN * (need + BOUND_MARGIN); chars * 2 <= text.length; chars *= 4) {
    const piece = keep === 'head' ? headPiece(text, chars) : tailPiece(text, chars);
    const ids = encodeStandalone(tok, piece);
    if (ids.length < need + BOUND_MARGIN) continue;
    const half = BOUND_MARGIN / 2;
    return {
      ids: keep === 'head' ? ids.slice(0, ids.length - half) : ids.slice(half),
      full: Math.round((ids.length * text.length) / piece.length),
      estimated: true,
    };
  }
  const ids = encodeStandalone(tok, text);
  return { ids, full: ids.length, estimated: false };
}

/** A text for a sentence encoder that reads at most its first ~maxTokens tokens (all-MiniLM: 256). */
export function boundEncoderText(text: string, maxTokens = 512): string {
  const chars = 64 * maxTokens;
  return text.length > 2 * chars ? headPiece(text, chars) : text;
}
