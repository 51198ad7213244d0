// `concord synthesize` (src/synthesize/, src/cli/synthesize.ts): k candidates per response from the
// reverse prompt, the chosen one is the rule's first among them (recomputed here from the written
// scores), the set rule over the chosen pairs, record shapes, seed mixing weights for every α
// schedule, the errors file, determinism with --seed; on a tiny llama2.c model on the CPU twin.

import * as fs from 'node:fs';
import { scratchDir } from './helpers/scratch.js';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openRecords } from '../src/io/index.js';
import { applyFilter, type FilterOptions } from '../src/filter/index.js';
import { promptBuilder } from '../src/generate/prompts.js';
import { loadModel, type LoadedLanguageModel } from '../src/models/index.js';
import { createScorer, type ConfiguredScorer } from '../src/pipeline/create.js';
import { alphaAt, parseAlpha, rankCandidates, shapeRecord, synthesizeFile, type SynthesizeFileOptions } from '../src/synthesize/index.js';
import { setupCli } from './helpers/cli.js';
import { makeTinyModel, TINY_CORPUS } from './helpers/tiny-models.js';

const tmp = scratchDir('concord-synth-');
const p = (f: string) => join(tmp, f);
// eslint-disable-next-line @typescript-eslint/no-explicit-any
const lines = (f: string): any[] => fs.readFileSync(f, 'utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l));
const SEED_Y = ['The dog ran to the park with Tom.', 'Lily had a big red ball.'];
const MODEL = makeTinyModel('llama2c', join(tmp, 'tiny'), { seed: 7, maxSeqLen: 64 });
const MODEL2 = makeTinyModel('llama2c', join(tmp, 'tiny2'), { seed: 8, maxSeqLen: 64 });

describe('alpha schedules, candidate ranking, record shapes', () => {
  it('α: constant, linear (clamped at T), balance; bad specs are usage errors', () => {
    expect(alphaAt(parseAlpha('0.5'), 3, 10, 20)).toBe(0.5);
    const lin = parseAlpha('linear:0.2:1:4');
    expect([0, 1, 2, 4, 9].map((t) => alphaAt(lin, t, 0, 5))).toEqual([0.2, 0.2 + 0.8 / 4, 0.2 + 0.8 / 2, 1, 1]);
    expect(alphaAt(parseAlpha('balance'), 1, 6, 4)).toBe(1.5);
    for (const bad of ['x', 'linear:1:2', 'linear:1:2:0', '-1', 'linear:a:1:2']) expect(() => parseAlpha(bad), bad).toThrow(/--alpha/);
  });

  it('the chosen candidate is the rule\'s first; ties and all-excluded go to the lowest index', () => {
    const s = (fwd: number, rev: number, cos: number) => ({ fwd_logp: fwd, y_logp: 0, rev_logp: rev, x_logp: 0, cosine: cos, cosine_source: 'embed:m' });
    const r = rankCandidates([s(0.1, 0.1, 0.2), s(0.1, 0.1, 0.9), null, s(0.1, 0.1, 0.9)], { rule: 'fused' });
    expect(r.chosen).toBe(1);
    expect(r.rank).toEqual([3, 1, null, 2]);
    // ifd: every candidate has IFD ≥ 1 → all excluded (rank −∞): index 0.
    expect(rankCandidates([{ ifd: 2 }, { ifd: 3 }], { rule: 'ifd' }).chosen).toBe(0);
    expect(rankCandidates([null, null], { rule: 'main' }).chosen).toBe(-1);
  });

  it('shapes: alpaca, messages, sharegpt keep the other fields', () => {
    const pair = { instruction: 'Do it', input: 'now', output: 'Done.' };
    expect(shapeRecord({ id: 1 }, 'alpaca', pair)).toEqual({ instruction: 'Do it', input: 'now', output: 'Done.', id: 1 });
    expect(shapeRecord({ id: 1 }, 'messages', pair)).toEqual({ messages: [{ role: 'user', content: 'Do it\n\nnow' }, { role: 'assistant', content: 'Done.' }], id: 1 });
    expect(shapeRecord({ id: 1 }, 'sharegpt', pair)).toEqual({ conversations: [{ from: 'human', value: 'Do it\n\nnow' }, { from: 'gpt', value: 'Done.' }], id: 1 });
  });
});

describe('synthesizeFile on a tiny llama2.c model (CPU twin)', () => {
  let lm: LoadedLanguageModel;
  let scorer: ConfiguredScorer;
  const K = 3;
  const filter: FilterOptions = { rule: 'main', keepFraction: 0.6 };
  beforeAll(async () => {
    lm = await loadModel(MODEL, { device: 'cpu-twin', threads: 1 });
    scorer = await createScorer({ model: lm, cosine: 'lm' });
    const recs = TINY_CORPUS.slice(0, 5).map((t, i) => JSON.stringify({ id: `r${i}`, output: t, note: i }));
    recs.splice(2, 0, 'not json', JSON.stringify({ id: 'bad', output: 7 }));
    fs.writeFileSync(p('in.jsonl'), recs.join('\n') + '\n');
    fs.writeFileSync(p('seed.jsonl'), [
      JSON.stringify({ instruction: 'Tell a story.', input: 'about a cat', output: SEED_Y[0], id: 's0' }),
      JSON.stringify({ messages: [{ role: 'user', content: 'A story?' }, { role: 'assistant', content: SEED_Y[1] }], id: 's1' }),
      JSON.stringify({ instruction: 'no output', id: 's2' }),
    ].join('\n') + '\n');
  });
  afterAll(() => { lm?.dispose(); });

  const run = (out: string, over: Partial<SynthesizeFileOptions> = {}) => synthesizeFile({
    input: p('in.jsonl'), output: p(out), errorsPath: p(`${out}.errors.jsonl`), scorer, decoderModel: lm,
    builder: promptBuilder(lm.tokenizer, { direction: 'reverse' }), sampling: { temperature: 0.7, topK: 0, topP: 0.9, minP: 0, seed: 11 },
    numCandidates: K, maxNewTokens: 6, stop: [], slots: 4, filter, shape: 'alpaca', alpha: parseAlpha('1'), iteration: 1, chunk: 2, log: () => {}, ...over,
  });

  it('k candidates, the rule\'s argmax chosen, the set rule applied, errors with file:line, determinism', async () => {
    const s = await run('a.jsonl', { keepCandidates: true, dropOut: p('a.drop.jsonl') });
    expect(s.counts).toMatchObject({ records: 7, responses: 5, candidates: 5 * K, chosen: 5, errors: 2 });
    const kept = lines(p('a.jsonl')), dropped = lines(p('a.drop.jsonl'));
    expect(kept.length + dropped.length).toBe(5);
    expect(kept.length).toBe(s.counts.kept);
    const all = [...kept, ...dropped].sort((a, b) => a.note - b.note);
    expect(all.map((r) => r.id)).toEqual(['r0', 'r1', 'r2', 'r3', 'r4']);
    for (const r of all) {
      expect(r.output).toBe(TINY_CORPUS[r.note]);
      expect(r.candidate.of).toBe(K);
      expect(r.candidates).toHaveLength(K - 1);
      const cands = [{ index: r.candidate.index, instruction: r.instruction, scores: r.scores }, ...r.candidates].sort((a, b) => a.index - b.index);
      expect(cands.map((c) => c.index)).toEqual([0, 1, 2]);
      // Recompute the choice from the written scores: the rule's rank key, max, lowest index on ties.
      const rk = applyFilter(cands.map((c) => c.scores), { ...filter, keepFraction: 1 }).rank;
      const best = rk.reduce((b, x, j) => (x > rk[b] ? j : b), 0);
      expect(r.candidate.index).toBe(best);
      expect(r.candidate.rank).toBe(1);
      expect(r).toMatchObject({ source: 'synthetic', iteration: 1, input: '' });
    }
    // The set rule over the chosen pairs, in input order.
    const d = applyFilter(all.map((r) => r.scores), filter);
    expect(all.map((r) => kept.includes(r))).toEqual(d.keep);
    expect(kept.every((r) => r.weight === 1) && dropped.every((r) => r.weight === 0)).toBe(true);
    const errs = lines(p('a.jsonl.errors.jsonl'));
    expect(errs.map((e) => e.loc)).toEqual([`${p('in.jsonl')}:3`, `${p('in.jsonl')}:4`]);
    expect(errs[1].error).toMatch(/field 'output' must be a string/);
    // Same seed, same pairs; another seed, other candidates.
    await run('b.jsonl', { keepCandidates: true, dropOut: p('b.drop.jsonl') });
    expect(fs.readFileSync(p('b.jsonl'), 'utf8')).toBe(fs.readFileSync(p('a.jsonl'), 'utf8'));
    await run('c.jsonl', { keepCandidates: true, sampling: { temperature: 0.7, topK: 0, topP: 0.9, minP: 0, seed: 12 }, filter: { rule: 'main', keepFraction: 1 } });
    const texts = (f: string) => lines(p(f)).flatMap((r) => [r.instruction, ...r.candidates.map((c: { instruction: string }) => c.instruction)]).sort();
    expect(texts('c.jsonl')).not.toEqual(texts('a.jsonl'));
  }, 60_000);

  it('formats and seed mixing: weights for each α schedule, iteration recorded', async () => {
    const want: [string, number, (nSeed: number, nSyn: number) => number][] = [
      ['0.25', 2, () => 0.25],
      ['linear:0.2:1:4', 2, () => 0.6],
      ['balance', 3, (ns, nk) => ns / nk],
    ];
    const shapes = ['alpaca', 'messages', 'sharegpt'] as const;
    for (const [i, [spec, t, alpha]] of want.entries()) {
      const shape = shapes[i];
      const s = await run(`w${i}.jsonl`, { seedData: p('seed.jsonl'), alpha: parseAlpha(spec), iteration: t, shape });
      const out = lines(p(`w${i}.jsonl`));
      const seed = out.filter((r) => r.source === 'seed'), syn = out.filter((r) => r.source === 'synthetic');
      expect(seed.map((r) => r.id)).toEqual(['s0', 's1']);
      expect(s.counts.seed).toBe(2);
      expect(syn.length).toBe(s.counts.kept);
      expect(out.every((r) => r.iteration === t)).toBe(true);
      expect(seed.every((r) => r.weight === 1)).toBe(true);
      for (const r of syn) expect(r.weight).toBeCloseTo(alpha(2, syn.length), 12);
      if (shape === 'alpaca') expect(seed[0]).toMatchObject({ instruction: 'Tell a story.', input: 'about a cat', output: SEED_Y[0] });
      if (shape === 'messages') {
        expect(seed[1].messages).toEqual([{ role: 'user', content: 'A story?' }, { role: 'assistant', content: SEED_Y[1] }]);
        expect(syn[0].messages[1]).toEqual({ role: 'assistant', content: syn[0].messages[1].content });
        expect(syn[0].output).toBeUndefined();
      }
      if (shape === 'sharegpt') expect(syn[0].conversations.map((c: { from: string }) => c.from)).toEqual(['human', 'gpt']);
      // The bad seed record is in the errors file with its line.
      expect(lines(p(`w${i}.jsonl.errors.jsonl`)).some((e) => e.loc === `${p('seed.jsonl')}:3` && /seed data: missing field 'output'/.test(e.error))).toBe(true);
    }
  }, 60_000);
});

describe('concord synthesize (CLI)', () => {
  const c = setupCli('concord-synth-cli-');
  it('runs end to end; usage and input errors exit 2 / 3 before any model loads', async () => {
    fs.writeFileSync(c.p('in.jsonl'), TINY_CORPUS.slice(0, 3).map((t, i) => JSON.stringify({ id: i, response: t })).join('\n') + '\n');
    const base = ['synthesize', 'in.jsonl', '--model', MODEL, '--device', 'cpu-twin', '--cosine', 'lm', '--num-candidates', '2', '--max-new-tokens', '4', '--output-field', 'response', '--quiet'];
    const r = await c.run([...base, '-o', 'out.jsonl', '--format', 'sharegpt', '--rule', 'main', '--keep-fraction', '1', '--summary', 'sum.json'], {}, { fake: false });
    expect(r.code, r.stderr).toBe(0);
    const out = c.lines('out.jsonl');
    expect(out.map((o) => o.id)).toEqual([0, 1, 2]);
    expect(out[0].conversations[1]).toEqual({ from: 'gpt', value: TINY_CORPUS[0] });
    expect(out[0].response).toBeUndefined();
    expect(JSON.parse(fs.readFileSync(c.p('sum.json'), 'utf8')).counts).toMatchObject({ records: 3, candidates: 6, kept: 3 });
    // --reverse-model writes the candidates exactly as `concord generate --direction reverse` does
    // (same prompt, engine and per-sample seeds); the output through src/io's Parquet writer.
    const pq = await c.run([...base, '-o', 'out.parquet', '--reverse-model', MODEL2, '--keep-candidates', '--rule', 'main', '--keep-fraction', '1'], {}, { fake: false });
    expect(pq.code, pq.stderr).toBe(0);
    const gen = await c.run(['generate', 'in.jsonl', '-o', 'gen.jsonl', '--model', MODEL2, '--device', 'cpu-twin', '--direction', 'reverse', '--num-samples', '2',
      '--temperature', '0.7', '--top-p', '0.9', '--max-new-tokens', '4', '--output-field', 'response', '--quiet'], {}, { fake: false });
    expect(gen.code, gen.stderr).toBe(0);
    const want = c.lines('gen.jsonl').map((g) => g.instruction.trim());
    const rows = [];
    for await (const r of openRecords(c.p('out.parquet'))) rows.push(r.record as Record<string, any>);
    expect(rows.map((r) => r.id)).toEqual([0, 1, 2]);
    const got = rows.flatMap((r) => [{ index: r.candidate.index, instruction: r.instruction }, ...r.candidates].sort((a, b) => a.index - b.index).map((x) => x.instruction));
    expect(got).toEqual(want);
    const bad: [string[], number, RegExp][] = [
      [[...base, '-o', 'x.jsonl', '--alpha', 'sometimes'], 2, /--alpha must be/],
      [[...base, '-o', 'x.jsonl', '--alpha', 'balance'], 2, /needs --seed-data/],
      [[...base, '-o', 'in.jsonl'], 2, /is the input file/],
      [[...base, '-o', 'out.jsonl', '--seed-data', 'out.jsonl'], 2, /is the --seed-data file/],
      [[...base, '-o', 'x.jsonl', '--seed-data', 'missing.jsonl'], 3, /missing\.jsonl/],
      [['synthesize', 'missing.jsonl', '-o', 'x.jsonl'], 3, /missing\.jsonl/],
      [[...base, '-o', 'x.jsonl', '--format', 'csv'], 2, /--format must be/],
    ];
    for (const [args, code, msg] of bad) {
      const b = await c.run(args, {}, { fake: false });
      expect(b.code, `${args.join(' ')}\n${b.stderr}`).toBe(code);
      expect(b.stderr).toMatch(msg);
    }
    expect(fs.existsSync(c.p('x.jsonl'))).toBe(false);
  }, 90_000);
});
