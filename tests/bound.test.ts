// Issue 17 #13: a text far over the token budget is tokenised only at its kept end (bound.ts), and
// the pair is scored exactly as if the whole text had been tokenised.

import { describe, expect, test } from 'vitest';
import { encodeBounded, headPiece, tailPiece } from '../src/pipeline/bound.js';
import { createScorerFromModels } from '../src/pipeline/scorer.js';
import { encodeStandalone } from '../src/pipeline/templates.js';
import { llama2cTokenizer } from '../src/tokenizer/llama2c.js';
import { createFakeLm } from './helpers/fake-lm.js';

const WORDS = ['once', 'upon', 'a', 'time', 'there', 'was', 'little', 'dog,', 'named', 'Max.', 'He', 'liked', 'to', 'play\n', 'ball!', '"Yes"', 'said', 'mom;'];
const text = (chars: number, seed = 0) => {
  const out: string[] = [];
  let n = 0;
  for (let i = 0; n < chars; i++) {
    const w = WORDS[(i * 7 + seed + (i >> 3)) % WORDS.length];
    out.push(w);
    n += w.length + 1;
  }
  return out.join(' ');
};

describe('bounded tokenisation', () => {
  test('pieces cut at whitespace', () => {
    expect(headPiece('aaa bbb ccc', 5)).toBe('aaa');
    expect(tailPiece('aaa bbb ccc', 5)).toBe(' ccc');
  });

  test("stories15M's tokenizer: the kept end of a long text has the same ids bounded as whole", () => {
    const tok = llama2cTokenizer('models/stories15M/tokenizer.bin');
    const t = text(40_000, 3);
    const full = encodeStandalone(tok, t);
    const need = 255;
    const head = encodeBounded(tok, t, 'head', need), tail = encodeBounded(tok, t, 'tail', need);
    expect(head.estimated && tail.estimated).toBe(true);
    expect(head.ids.length).toBeGreaterThan(need);
    expect(head.ids.slice(0, need)).toEqual(full.slice(0, need));
    expect(tail.ids.slice(-need)).toEqual(full.slice(-need));
    expect(Math.abs(head.full - full.length) / full.length).toBeLessThan(0.1);
    // Short texts are tokenised whole, exactly.
    const short = text(1500);
    expect(encodeBounded(tok, short, 'head', need)).toEqual({ ids: encodeStandalone(tok, short), full: encodeStandalone(tok, short).length, estimated: false });
  });

  test('a 5 MB response: the tokenizer sees a few KB, and the scores are those of the whole text', async () => {
    const lm = createFakeLm({ maxLen: 256 });
    let chars = 0;
    const encode = lm.tokenizer.encode.bind(lm.tokenizer);
    lm.tokenizer.encode = (s: string) => { chars += s.length; return encode(s); };
    const scorer = createScorerFromModels({ model: lm, cosine: 'off' });
    const huge = text(5_000_000, 1);
    const cut = huge.slice(0, huge.indexOf(' ', 20_000)); // a prefix that still holds far more than the budget
    const recs = [
      { instruction: 'tell a story', output: huge },
      { instruction: huge, output: 'a dog' },
      { instruction: 'tell a story', output: cut },
    ];
    const out = [];
    for await (const r of scorer.score(recs)) out.push(r);
    expect(chars).toBeLessThan(200_000); // 2 × 5 MB before bounding
    const [a, b, ref] = out.map((r) => r.scores!);
    expect(a.truncated && a.tokens_full_estimated).toBe(true);
    expect(b.truncated && b.tokens_full_estimated).toBe(true);
    for (const k of ['fwd_logp', 'rev_logp', 'y_logp', 'x_logp', 'x_tokens', 'y_tokens'] as const) expect(a[k]).toBe(ref[k]);
    const trueCount = encode(huge).length;
    expect(Math.abs(a.y_tokens_full! - trueCount) / trueCount).toBeLessThan(0.05);
    expect(Math.abs(b.x_tokens_full! - trueCount) / trueCount).toBeLessThan(0.05);
  });
});
