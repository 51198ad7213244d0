// The scoring pipeline as a library: templates, input records, truncation, the pass plan, the
// formulas (against direct scoreBatch computations, on the fake model and on stories15M's CPU
// twin), two passes = four passes, input order, verify, cosine.

import { beforeAll, describe, expect, test } from 'vitest';
import type { LanguageModel } from '../src/models/lm.js';
import { createScorer } from '../src/pipeline/create.js';
import type { ScoreResult } from '../src/pipeline/index.js';
import { RecordError, SourcedRecord, joinPrompt, recordToPair } from '../src/pipeline/input.js';
import { truncatePair } from '../src/pipeline/plan.js';
import { createScorerFromModels, type ScorerOptions } from '../src/pipeline/scorer.js';
import { chatFormatFromTemplate } from '../src/pipeline/chat-template.js';
import { TemplateError, encodeContinuation, encodeStandalone, parseTemplate } from '../src/pipeline/templates.js';
import { llama2cTokenizer } from '../src/tokenizer/llama2c.js';
import { createFakeLm } from './helpers/fake-lm.js';

async function collect(it: AsyncIterable<ScoreResult>): Promise<ScoreResult[]> {
  const out: ScoreResult[] = [];
  for await (const r of it) out.push(r);
  return out;
}

/** Σ and mean of log p over the tokens of `target` placed after `context` ids, straight from scoreBatch. */
async function direct(lm: LanguageModel, context: number[], target: number[]): Promise<{ sum: number; mean: number }> {
  const ids = [lm.tokenizer.bosId!, ...context, ...target];
  const [r] = await lm.scoreBatch([{ ids }]);
  let sum = 0;
  for (let t = context.length + 1; t < ids.length; t++) sum += r.logprobs[t - 1];
  return { sum, mean: sum / target.length };
}

const PAIRS = [
  { instruction: 'Write a story about a dog named Max and a red ball.', input: '', output: 'Max the dog found a red ball. Max played with the ball all day.' },
  { instruction: 'Tell a story about a cat.', input: 'The cat is afraid of rain.', output: 'The cat hid under the bed when the rain came. Then the sun came out.' },
  { instruction: 'Write a story about a bird who learns to fly.', output: 'Tom baked bread in the kitchen and ate it with jam.' },
];

describe('templates', () => {
  test('parse: slots, literal braces, order and errors', () => {
    expect(parseTemplate('{x}\n\n{y}', ['x', 'y']).pieces).toEqual([
      { kind: 'slot', slot: 'x' }, { kind: 'lit', text: '\n\n' }, { kind: 'slot', slot: 'y' },
    ]);
    expect(parseTemplate('Q{{1}}: {x} A: {y}', ['x', 'y']).pieces[0]).toEqual({ kind: 'lit', text: 'Q{1}: ' });
    expect(() => parseTemplate('{y} {x}', ['x', 'y'])).toThrow(TemplateError);
    expect(() => parseTemplate('{x} {z} {y}', ['x', 'y'])).toThrow(/unknown placeholder/);
    expect(() => parseTemplate('{x} {y} {y}', ['x', 'y'])).toThrow(TemplateError);
    expect(() => parseTemplate('{x} } {y}', ['x', 'y'])).toThrow(/unmatched/);
  });

  test('sentencepiece: a literal that follows text gets no word-start marker', () => {
    const tok = llama2cTokenizer('models/stories15M/tokenizer.bin');
    expect(encodeStandalone(tok, '\n\n')).toEqual([29871, 13, 13]); // '▁' '<0x0A>' '<0x0A>'
    expect(encodeContinuation(tok, '\n\n')).toEqual([13, 13]);
    expect(encodeContinuation(tok, '\n\nOnce upon')).toEqual([13, 13, 26222, 2501]); // 'Once' without '▁'
    expect(encodeStandalone(tok, 'Once upon')).toEqual([9038, 2501]); // '▁Once' '▁upon'
  });

  test('a chat template (tests/chat-template.test.ts) replaces the default templates; its prefix costs passes', () => {
    const lm = createFakeLm();
    const chat = chatFormatFromTemplate(
      { text: "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}", origin: 'test' }, lm.tokenizer, { model: 'fake' },
    );
    expect(chat.forward).toBe('<|im_start|>user\n{x}<|im_end|>\n<|im_start|>assistant\n{y}');
    // A chat format prefixes both templates: log p(x) and log p(y) take their own passes.
    const sc = createScorerFromModels({ model: lm, chat, cosine: 'off' });
    expect(sc.templates).toEqual({ forward: chat.forward, reverse: chat.reverse });
    expect(sc.passes).toBe(4);
  });
});

describe('input records', () => {
  test('Alpaca: instruction + blank line + input when non-empty', () => {
    expect(joinPrompt('Do it.', '')).toBe('Do it.');
    expect(joinPrompt('Do it.', '  ')).toBe('Do it.');
    expect(recordToPair({ instruction: 'Sum:', input: '1 2', output: '3' })).toMatchObject({ x: 'Sum:\n\n1 2', y: '3', format: 'alpaca' });
    expect(recordToPair({ q: 'Sum?', a: '3' }, { instruction: 'q', input: 'ctx', output: 'a' })).toMatchObject({ x: 'Sum?', y: '3' });
  });

  test('messages and ShareGPT: y = last assistant turn, x = the turns before it', () => {
    expect(recordToPair({ messages: [{ role: 'user', content: 'Hi?' }, { role: 'assistant', content: 'Hello.' }] })).toMatchObject({ x: 'Hi?', y: 'Hello.', turns: 1 });
    const multi = recordToPair({
      messages: [
        { role: 'system', content: 'Be brief.' }, { role: 'user', content: 'A?' }, { role: 'assistant', content: 'B.' },
        { role: 'user', content: 'C?' }, { role: 'assistant', content: 'D.' }, { role: 'user', content: 'ignored' },
      ],
    });
    expect(multi).toMatchObject({ x: 'System: Be brief.\n\nUser: A?\n\nAssistant: B.\n\nUser: C?', y: 'D.', turns: 4, format: 'messages' });
    expect(recordToPair({ conversations: [{ from: 'human', value: 'Q' }, { from: 'gpt', value: 'R' }] })).toMatchObject({ x: 'Q', y: 'R', format: 'sharegpt' });
  });

  test('bad records give one-line reasons', () => {
    const why = (r: unknown) => { try { recordToPair(r); return 'ok'; } catch (e) { expect(e).toBeInstanceOf(RecordError); return (e as Error).message; } };
    expect(why([1])).toBe('record must be a JSON object (got array)');
    expect(why({ instruction: 'a' })).toBe("missing field 'output'");
    expect(why({ instruction: 'a', output: '  ' })).toBe("empty field 'output'");
    expect(why({ instruction: 5, output: 'b' })).toBe("field 'instruction' must be a string (got number)");
    expect(why({ instruction: 'a', input: 3, output: 'b' })).toBe("field 'input' must be a string (got number)");
    expect(why({ messages: [{ role: 'user', content: 'x' }] })).toBe('messages: no assistant turn');
    expect(why({ conversations: [{ from: 'alien', value: 'x' }] })).toBe("conversations[0].from: unknown role 'alien'");
  });
});

describe('truncation', () => {
  const ids = (n: number, base: number) => Array.from({ length: n }, (_, i) => base + i);
  test('fits: untouched; long y: cut from the right down to half; long x: cut from the left', () => {
    expect(truncatePair(ids(3, 0), ids(4, 100), 7)).toEqual({ xIds: ids(3, 0), yIds: ids(4, 100), truncated: false });
    // x short: x whole, y gets the rest (its head)
    const a = truncatePair(ids(3, 0), ids(20, 100), 10);
    expect(a).toEqual({ xIds: ids(3, 0), yIds: ids(7, 100), truncated: true });
    // both long: y keeps ⌈A/2⌉ from its start, x keeps the rest from its end
    const b = truncatePair(ids(20, 0), ids(20, 100), 11);
    expect(b.yIds).toEqual(ids(6, 100));
    expect(b.xIds).toEqual(ids(5, 15));
    // y short: y whole, x keeps its tail
    const c = truncatePair(ids(20, 0), ids(2, 100), 10);
    expect(c).toEqual({ xIds: ids(8, 12), yIds: ids(2, 100), truncated: true });
  });
});

describe('scorer on the fake model', () => {
  const lm = createFakeLm({ tokenBudget: 200 });
  const tok = lm.tokenizer;
  const fwdT = 'Q: {x} => {y}';
  const revT = '{y} <= {x}';

  test('formulas equal direct scoreBatch computations; ifd and rifd', async () => {
    const scorer = createScorerFromModels({ model: lm, forwardTemplate: fwdT, reverseTemplate: revT, cosine: 'off' });
    expect(scorer.passes).toBe(3); // forward has a prefix ('Q:') before {x}: log p(x) needs its own pass
    const rs = await collect(scorer.score(PAIRS));
    for (const [k, r] of rs.entries()) {
      const p = recordToPair(PAIRS[k]);
      const x = tok.encode(p.x), y = tok.encode(p.y);
      const fwd = await direct(lm, [...tok.encode('Q:'), ...x, ...tok.encode('=>')], y);
      const rev = await direct(lm, [...y, ...tok.encode('<=')], x);
      const uy = await direct(lm, [], y), ux = await direct(lm, [], x);
      const s = r.scores!;
      expect(s.fwd_sum).toBeCloseTo(fwd.sum, 5);
      expect(s.fwd_logp).toBeCloseTo(fwd.mean, 6);
      expect(s.rev_logp).toBeCloseTo(rev.mean, 6);
      expect(s.rev_sum).toBeCloseTo(rev.sum, 5);
      expect(s.y_logp).toBeCloseTo(uy.mean, 6);
      expect(s.x_logp).toBeCloseTo(ux.mean, 6);
      expect(s.ifd).toBeCloseTo(Math.exp(uy.mean - fwd.mean), 6);
      expect(s.rifd).toBeCloseTo(Math.exp(ux.mean - rev.mean), 6);
      expect(s.x_tokens).toBe(x.length);
      expect(s.y_tokens).toBe(y.length);
      expect(s.truncated).toBe(false);
      expect(s.cosine).toBeNull();
    }
    // The aligned pairs gain from their prompt; the misaligned third one does not gain as much.
    expect(rs[0].scores!.fwd_logp - rs[0].scores!.y_logp).toBeGreaterThan(rs[2].scores!.fwd_logp - rs[2].scores!.y_logp);
  });

  test('pass plan: 2 with slot-first templates, 3/4 with prefixes, 4 with a separate reverse model', () => {
    const n = (o: Partial<ScorerOptions>) => createScorerFromModels({ model: lm, cosine: 'off', ...o }).passes;
    expect(n({})).toBe(2);
    expect(n({ forwardTemplate: 'Q: {x} A: {y}' })).toBe(3);
    expect(n({ forwardTemplate: 'Q: {x} A: {y}', reverseTemplate: 'A: {y} Q: {x}' })).toBe(4);
    expect(n({ reverseModel: createFakeLm() })).toBe(4);
    expect(n({ passes: 4 })).toBe(4);
  });

  test('a separate reverse model: rev and x under R, fwd and y under F', async () => {
    const R = createFakeLm({ boost: 0.5 });
    const scorer = createScorerFromModels({ model: lm, reverseModel: R, cosine: 'off' });
    expect(scorer.plan.passes.map((p) => `${p.name}:${p.model}`)).toEqual(['forward:F', 'reverse:R', 'uncond-x:R', 'uncond-y:F']);
    const [r] = await collect(scorer.score([PAIRS[0]]));
    const p = recordToPair(PAIRS[0]);
    const x = tok.encode(p.x), y = tok.encode(p.y);
    expect(r.scores!.fwd_logp).toBeCloseTo((await direct(lm, x, y)).mean, 6);
    expect(r.scores!.y_logp).toBeCloseTo((await direct(lm, [], y)).mean, 6);
    expect(r.scores!.rev_logp).toBeCloseTo((await direct(R, y, x)).mean, 6);
    expect(r.scores!.x_logp).toBeCloseTo((await direct(R, [], x)).mean, 6);
    expect(r.scores!.x_logp).not.toBeCloseTo((await direct(lm, [], x)).mean, 3);
  });

  test('two passes equal four passes (≤ 1e-5)', async () => {
    expect(createScorerFromModels({ model: lm }).templates).toEqual({ forward: '{x}\n\n{y}', reverse: '{y}\n\n{x}' }); // byte-level default
    const two = await collect(createScorerFromModels({ model: lm, cosine: 'off', forwardTemplate: '{x} => {y}', reverseTemplate: '{y} <= {x}' }).score(PAIRS));
    const four = await collect(createScorerFromModels({ model: lm, cosine: 'off', forwardTemplate: '{x} => {y}', reverseTemplate: '{y} <= {x}', passes: 4 }).score(PAIRS));
    for (let k = 0; k < PAIRS.length; k++) {
      for (const f of ['fwd_logp', 'rev_logp', 'x_logp', 'y_logp', 'ifd', 'rifd'] as const) {
        expect(Math.abs(two[k].scores![f] - four[k].scores![f])).toBeLessThanOrEqual(1e-5);
      }
    }
  });

  test('results come back in input order whatever the batching; errors keep their place', async () => {
    const r = (i: number) => ((i * 7919) % 31) + 1;
    const words = (n: number, w: string) => Array.from({ length: n }, (_, i) => `${w}${i % 9}`).join(' ');
    const items: unknown[] = Array.from({ length: 150 }, (_, i) =>
      i % 23 === 7 ? { instruction: 'no output' } : { id: i, instruction: words(r(i), 'a'), output: words(r(i * 3 + 1), 'b') },
    );
    const small = createFakeLm({ tokenBudget: 64 });
    const scorer = createScorerFromModels({ model: small, cosine: 'lm', windowSize: 16 });
    const rs = await collect(scorer.score(items));
    expect(rs.map((x) => x.index)).toEqual(items.map((_, i) => i));
    rs.forEach((x, i) => {
      if (i % 23 === 7) expect(x.error).toBe("missing field 'output'");
      else expect((x.record as { id: number }).id).toBe(i);
    });
    // Batches really were mixed: more than one batch per window, several sequence lengths per batch.
    expect(small.calls.length).toBeGreaterThan(150 / 16);
    expect(scorer.stats.scheduler!.paddingEfficiency).toBeGreaterThan(0.5);
    expect(scorer.stats.errors).toBe(items.filter((_, i) => i % 23 === 7).length);
    // And the scores are those of each pair alone.
    const alone = await collect(createScorerFromModels({ model: createFakeLm(), cosine: 'lm' }).score([items[10]]));
    expect(rs[10].scores).toEqual(alone[0].scores);
  });

  test('over-long pairs: truncated and flagged, or errors with --on-overlong error', async () => {
    const short = createFakeLm({ maxLen: 24 });
    const long = { instruction: Array(30).fill('word').join(' '), output: Array(30).fill('other').join(' ') };
    const [t] = await collect(createScorerFromModels({ model: short, cosine: 'off' }).score([long]));
    expect(t.scores).toMatchObject({ truncated: true, x_tokens_full: 30, y_tokens_full: 30 });
    expect(t.scores!.x_tokens + t.scores!.y_tokens).toBe(24 - 1);
    const [e] = await collect(createScorerFromModels({ model: short, cosine: 'off', overlong: 'error' }).score([new SourcedRecord(long, 'in.jsonl:3')]));
    expect(e.loc).toBe('in.jsonl:3');
    expect(e.error).toMatch(/^over-long pair: x 30 \+ y 30 tokens/);
  });

  test('verify: zero deviation passes; an injected deviation is caught', async () => {
    const ok = createScorerFromModels({ model: lm, cosine: 'off', verify: { model: createFakeLm(), batches: 3 } });
    await collect(ok.score(PAIRS));
    expect(ok.stats.verify).toMatchObject({ ok: true, maxAbsDiff: 0 });
    expect(ok.stats.verify!.batches).toBeGreaterThan(0);
    const bad = createScorerFromModels({ model: lm, cosine: 'off', verify: { model: createFakeLm(), batches: 3, tol: 1e-3 }, injectDeviation: 0.01 });
    await collect(bad.score(PAIRS));
    expect(bad.stats.verify!.ok).toBe(false);
    expect(bad.stats.verify!.maxAbsDiff).toBeCloseTo(0.01, 6);
  });

  test('cosine: LM mean hidden states, or a sentence encoder when given', async () => {
    const [h] = await collect(createScorerFromModels({ model: lm }).score([PAIRS[0]]));
    expect(h.scores!.cosine_source).toBe('lm-mean-hidden');
    expect(h.scores!.cosine).toBeGreaterThan(-1);
    const embedder = { name: 'unit', embed: async (t: string[]) => t.map((s) => Float32Array.from([s.length, 1])) };
    const [e] = await collect(createScorerFromModels({ model: lm, embedder }).score([{ instruction: 'ab', output: 'ab' }]));
    expect(e.scores).toMatchObject({ cosine: 1, cosine_source: 'embed:unit' });
  });

  test('createScorer: library entry with onProgress and async input', async () => {
    const seen: [number, number][] = [];
    const scorer = await createScorer({ model: lm, cosine: 'off', onProgress: (p) => seen.push([p.done, p.estimatedDone]) });
    async function* gen() { for (const p of PAIRS) yield p; }
    const rs = await collect(scorer.score(gen()));
    expect(rs).toHaveLength(3);
    // Called after every batch (estimates move before results come out) and every result.
    expect(seen.length).toBeGreaterThan(3);
    expect(seen.at(-1)).toEqual([3, 3]);
    for (let k = 1; k < seen.length; k++) expect(seen[k][1]).toBeGreaterThanOrEqual(seen[k - 1][1]);
    expect(seen.filter(([d]) => d === 0).some(([, e]) => e > 0)).toBe(true);
  });
});

describe('scorer on stories15M (CPU twin)', () => {
  let lm: LanguageModel;
  beforeAll(async () => {
    const { loadModel } = await import('../src/models/index.js');
    lm = await loadModel('default', { device: 'cpu-twin' });
  });

  const pairs = [
    { instruction: 'Write a story about a dog.', output: 'Once upon a time, there was a dog named Max. Max liked to run.' },
    { instruction: 'Tell a story about a cat.', input: 'The cat is sad.', output: 'The little cat was sad. Her friend gave her a hug.' },
  ];

  test('formulas equal direct log-prob sums; two passes equal four (≤ 1e-5)', async () => {
    const two = createScorerFromModels({ model: lm, cosine: 'off' });
    const four = createScorerFromModels({ model: lm, cosine: 'off', passes: 4 });
    // A word-start tokenizer: the default templates join x and y with y's own '▁' marker.
    expect(two.templates).toEqual({ forward: '{x}{y}', reverse: '{y}{x}' });
    expect(two.passes).toBe(2);
    const a = await collect(two.score(pairs));
    const b = await collect(four.score(pairs));
    const tok = lm.tokenizer;
    for (let k = 0; k < pairs.length; k++) {
      const p = recordToPair(pairs[k]);
      const x = encodeStandalone(tok, p.x), y = encodeStandalone(tok, p.y);
      const fwd = await direct(lm, x, y);
      const rev = await direct(lm, y, x);
      const uy = await direct(lm, [], y), ux = await direct(lm, [], x);
      const s = a[k].scores!;
      expect(s.fwd_logp).toBeCloseTo(fwd.mean, 5);
      expect(s.rev_logp).toBeCloseTo(rev.mean, 5);
      expect(s.y_logp).toBeCloseTo(uy.mean, 5);
      expect(s.x_logp).toBeCloseTo(ux.mean, 5);
      expect(s.ifd).toBeCloseTo(Math.exp(s.y_logp - s.fwd_logp), 10);
      expect(s.rifd).toBeCloseTo(Math.exp(s.x_logp - s.rev_logp), 10);
      for (const f of ['fwd_logp', 'rev_logp', 'x_logp', 'y_logp', 'ifd', 'rifd'] as const) {
        expect(Math.abs(s[f] - b[k].scores![f])).toBeLessThanOrEqual(1e-5);
      }
    }
  });
});

describe('onDone: results as soon as they are complete (checkpoints inside a window)', () => {
  test('every scored record is reported once, out of order, before it is yielded in order; same scores', async () => {
    const lm = createFakeLm({ tokenBudget: 48 });
    const recs = Array.from({ length: 40 }, (_, i) => (i === 3 ? { instruction: 'no output' } : {
      instruction: `story ${'dog '.repeat(1 + ((i * 7) % 9))}`, output: `the ${'cat ran '.repeat(1 + ((i * 5) % 11))}`,
    }));
    const scorer = createScorerFromModels({ model: lm, cosine: 'lm', windowSize: 40 });
    const done: { index: number; fwd: number }[] = [];
    const yieldedAt: number[] = [];
    const out: ScoreResult[] = [];
    for await (const r of scorer.score(recs, { onDone: (d) => done.push({ index: d.index, fwd: d.scores!.fwd_logp }) })) {
      yieldedAt.push(done.length);
      out.push(r);
    }
    expect(out.map((r) => r.index)).toEqual(recs.map((_, i) => i));
    expect(done.map((d) => d.index).sort((a, b) => a - b)).toEqual(recs.map((_, i) => i).filter((i) => i !== 3));
    expect(done.map((d) => d.index)).not.toEqual([...done.map((d) => d.index)].sort((a, b) => a - b)); // out of order
    // Record i is reported before it is yielded, with the scores it is yielded with.
    out.forEach((r, k) => {
      if (r.error) return;
      const at = done.findIndex((d) => d.index === r.index);
      expect(at).toBeLessThan(yieldedAt[k]);
      expect(done[at].fwd).toBe(r.scores!.fwd_logp);
    });
    // Most of the window is finished before its first record is.
    expect(done.findIndex((d) => d.index === 0)).toBeGreaterThan(10);
  });
});
