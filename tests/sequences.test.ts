// One pair → pass-sequences builder (src/pipeline/sequences.ts): the benchmarks' peer
// (bench/peer-transformers.ts peerPairSequences) and the GPU bundle (bench/gpu/main.ts
// pairSequences) score exactly the token sequences `concord score` sends to its model, over the
// same spans. The scorer side is observed from outside: a recording LanguageModel captures every
// sequence scoreBatch gets, and returns log-probs that identify position and token, so the
// scorer's sums show which span it read.

import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { pairSequences } from '../bench/gpu/main.js';
import { peerPairSequences } from '../bench/peer-transformers.js';
import type { LanguageModel } from '../src/models/lm.js';
import { createScorerFromModels, type PairScores } from '../src/pipeline/scorer.js';
import { llama2cTokenizer } from '../src/tokenizer/llama2c.js';
import type { TextTokenizer } from '../src/tokenizer/types.js';
import { concordTokenizer } from './helpers/real-tokenizers.js';

const root = join(__dirname, '..');
const STORIES = join(root, 'models', 'stories15M', 'tokenizer.bin');
const MAX_LEN = 48;

const RECORDS = [
  { instruction: 'Say hello.', input: '', output: 'Hello there, friend.' },
  { instruction: 'Name a colour.', input: 'Think of the sky.', output: 'Blue — like the sky at noon.' },
  { messages: [{ role: 'user', content: 'Wie heißt du?' }, { role: 'assistant', content: 'Ich heiße Concord. 🙂' }] },
  // Over the budget: truncated the same way everywhere.
  { instruction: 'Tell a story. '.repeat(30), output: 'Once upon a time there was a tiny robot who liked tea. '.repeat(6) },
];

/** A log-prob that names its position and token, so a sum tells which span was read. */
const lp = (ids: readonly number[], t: number): number => -((ids[t] % 101) + 1) * 0.01 - t * 1e-4;
const spanSum = (ids: number[], [s, e]: [number, number]): number => { let x = 0; for (let t = s; t < e; t++) x += Math.fround(lp(ids, t)); return x; };

function recordingModel(tok: TextTokenizer): LanguageModel & { seen: number[][] } {
  const seen: number[][] = [];
  return {
    seen, tokenizer: tok, backend: 'cpu', deviceName: 'recorder', maxLen: 512, tokenBudget: 1 << 16,
    config: { name: 'recorder' } as LanguageModel['config'],
    async scoreBatch(seqs) {
      return seqs.map(({ ids }) => { seen.push([...ids]); return { logprobs: Float32Array.from({ length: ids.length - 1 }, (_, i) => lp(ids, i + 1)) }; });
    },
    async meanHidden() { throw new Error('not used: cosine off'); },
    dispose() {},
  };
}

/** What `concord score` scores for one record: the sequences its model got, and its sums. */
async function scored(tok: TextTokenizer, record: unknown, passes: 'min' | 4): Promise<{ seqs: string[]; scores: PairScores }> {
  const model = recordingModel(tok);
  const scorer = createScorerFromModels({ model, cosine: 'off', passes, maxLen: MAX_LEN });
  let scores: PairScores | undefined;
  for await (const r of scorer.score([record])) { expect(r.error).toBeUndefined(); scores = r.scores; }
  return { seqs: model.seen.map((s) => JSON.stringify(s)).sort(), scores: scores! };
}

const SUM: Record<string, keyof PairScores> = { fwd: 'fwd_sum', rev: 'rev_sum', x: 'x_sum', y: 'y_sum' };

const TOKENIZERS: [string, () => TextTokenizer | null][] = [
  ['stories15M (llama2.c, word-start templates)', () => (existsSync(STORIES) ? llama2cTokenizer(STORIES) : null)],
  ['Llama 3 (byte-level, blank-line templates)', () => concordTokenizer('llama3')],
];

describe.each(TOKENIZERS)('%s', (_name, load) => {
  const tok = load();
  it('the peer and the GPU bundle build the sequences concord score scores, over the same spans', async () => {
    expect(tok, 'models/stories15M (npm run fetch-models)').not.toBeNull();
    const peer = peerPairSequences(tok!, MAX_LEN);
    const bundle = pairSequences(tok!, MAX_LEN, RECORDS.map((record, i) => ({ loc: `#${i}`, record })));
    expect(bundle.errors).toEqual([]);
    let truncated = 0;
    for (const [i, record] of RECORDS.entries()) {
      const four = await scored(tok!, record, 4), two = await scored(tok!, record, 'min');
      const p = peer(record);
      // The peer: one sequence per likelihood, the four-pass plan.
      expect(p.seqs.map((s) => JSON.stringify(s.seq.ids)).sort()).toEqual(four.seqs);
      for (const s of p.seqs) expect(Math.fround(spanSum(s.seq.ids, s.seq.span))).toBeCloseTo(four.scores[SUM[s.quantity]] as number, 5);
      expect([p.xTokens, p.yTokens, p.truncated]).toEqual([four.scores.x_tokens, four.scores.y_tokens, four.scores.truncated]);
      // The GPU bundle: both plans.
      const b = bundle.pairs[i];
      for (const [plan, ref] of [[b.four, four], [b.two, two]] as const) {
        expect(plan.map((s) => JSON.stringify(s.ids)).sort()).toEqual(ref.seqs);
        for (const s of plan) for (const r of s.reads) expect(Math.fround(spanSum(s.ids, r.span))).toBeCloseTo(ref.scores[SUM[r.quantity]] as number, 5);
      }
      expect(two.seqs.length).toBe(2);
      if (p.truncated) truncated++;
    }
    expect(truncated).toBe(1);
  });
});
