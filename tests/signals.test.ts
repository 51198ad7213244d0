// Rating-prompt signals (src/signals/): the formulas on hand-made numbers, the answer-token lookup,
// and stories15M against the PyTorch float64 reference (scripts/reference_torch.py signals) on the
// TypeScript twin (the candidate head's twin and the decoder route, ≤1e-5), onnxruntime (decoder
// route, ≤1e-4) and WebGPU f32 (the fused head's candidate variant, ≤1e-4).
import { existsSync, readFileSync } from 'node:fs';
import { scratchDir } from './helpers/scratch.js';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
import { loadModel } from '../src/models/index.js';
import type { LanguageModel } from '../src/models/lm.js';
import { ASK_LLM_TEMPLATE, RATING_TEMPLATES, RatingSignals, answerToken, fillTemplate, parseTemplateFile, ratingFromLogprobs } from '../src/signals/rating.js';
import { candidateLogprobs } from '../src/signals/candidates.js';
import { attachSignals, signalSettings } from '../src/signals/cli.js';
import { selectiveIfd } from '../src/signals/sifd.js';
import { createScorer } from '../src/pipeline/create.js';
import { gpuRuntime } from './helpers/gpu.js';
import { evaluate } from '../src/eval/index.js';
import type { ScoreFields } from '../src/filter/index.js';

interface RefPair { ref_logp: number; tc_diff: number; tc_positive: number; diff: number[]; min_abs_diff: number; instruction: string; output: string; pmi: number[]; sifd: number; sifd_tokens: number; ifd: number; yes_id: number; rating_ids: number[][]; ask_llm: number; rating: number; rating_var: number; selectit: number }
const ref = JSON.parse(readFileSync(new URL('./fixtures/signals-reference.json', import.meta.url), 'utf8')) as {
  scale: number; alpha: number; sifd_threshold: number; ask_template: string; rating_templates: string[]; pairs: RefPair[];
};
const STORIES = join(resolve(import.meta.dirname, '..'), 'models', 'stories15M');
const hasStories = existsSync(join(STORIES, 'model.bin'));

describe('rating formulas', () => {
  it('expected rating and SelectIT token score from log-probs', () => {
    const p = [0.1, 0.2, 0.4, 0.2, 0.1];
    const r = ratingFromLogprobs(p.map((x) => Math.log(x) - 3)); // a shift: the softmax renormalises over the candidates
    expect(r.expected).toBeCloseTo(0.1 + 0.4 + 1.2 + 0.8 + 0.5, 12);
    // argmax is "3"; Σ (0.4 − p_j) = 0.3+0.2+0+0.2+0.3 = 1.0; / (k − 1) = 0.25; × 3
    expect(r.token).toBeCloseTo(0.75, 12);
  });
  it('templates: one pass (braces inside the pair stay), files split on ---, placeholders required', () => {
    expect(fillTemplate('{instruction}|{response}|{k}', 'a {response}', 'b {k}', 5)).toBe('a {response}|b {k}|5');
    expect(parseTemplateFile('A {instruction} {response}\n---\nB {instruction}\n{response}\n', 'f')).toEqual(['A {instruction} {response}', 'B {instruction}\n{response}']);
    expect(() => parseTemplateFile('no placeholders', 'f.txt')).toThrow(/f.txt: template 1 must contain/);
    expect(() => signalSettings({ signals: 'ask-llm,bogus' })).toThrow(/unknown signal 'bogus'/);
    expect(() => signalSettings({ 'rating-scale': '4' })).toThrow(/needs --signals rating/);
    expect(signalSettings({}).names).toEqual([]);
  });
  it('concord eval reports a row per extra signal present, oriented by its direction', () => {
    const base = { fwd_logp: -1, rev_logp: -1, y_logp: -2, x_logp: -2, ifd: 1, rifd: 1 };
    const scores = [0.9, 0.8, 0.1, 0.2].map((a, i) => ({ ...base, ask_llm: Math.log(a), rating_var: i / 10 }) as unknown as ScoreFields);
    const r = evaluate(scores, [true, true, false, false]);
    expect(r.scores.find((s) => s.name === 'ask_llm')).toMatchObject({ direction: 'up', auc: 1, n: 4 });
    expect(r.scores.find((s) => s.name === 'rating_var')).toMatchObject({ direction: 'down', auc: 1 });
    expect(r.scores.find((s) => s.name === 'rating')).toBeUndefined();
  });
  it('selective IFD: only |PMI| > τ counts; none selected gives 1; τ below every |PMI| gives IFD', () => {
    expect(selectiveIfd([0.5, -0.1, -2], 0.3)).toEqual({ sifd: Math.exp((0.5 - 2) / 2), kept: 2 });
    expect(selectiveIfd([0.1, -0.1], 1)).toEqual({ sifd: 1, kept: 0 });
    expect(selectiveIfd([0.2, -0.4], 0).sifd).toBeCloseTo(Math.exp(-0.1), 14);
    expect(() => signalSettings({ signals: 'sifd' })).toThrow(/needs --sifd-threshold/);
  });
  it("the reference's templates are the engine's defaults", () => {
    expect(ref.ask_template).toBe(ASK_LLM_TEMPLATE);
    expect(ref.rating_templates).toEqual(RATING_TEMPLATES);
  });
});

function check(got: Awaited<ReturnType<RatingSignals['score']>>, tol: number, what: string): void {
  ref.pairs.slice(0, got.length).forEach((p, i) => {
    for (const k of ['ask_llm', 'rating', 'rating_var', 'selectit'] as const) {
      const g = got[i][k];
      expect(typeof g, `${what} pair ${i} ${k}`).toBe('number');
      expect(Math.abs((g as number) - p[k]), `${what} pair ${i} ${k}: ${g} vs ${p[k]}`).toBeLessThanOrEqual(tol);
    }
  });
}

const signalsOf = (m: LanguageModel) => new RatingSignals(m, { askLlm: true, rating: true, scale: ref.scale, alpha: ref.alpha });
const pairs = ref.pairs.map((p) => ({ x: p.instruction, y: p.output }));
/** The same model without its candidate head: candidateLogprobs takes the decoder route (onnxruntime's). */
const noHead = (m: LanguageModel): LanguageModel => ({ ...m, candidateLogprobs: undefined });

describe.skipIf(!hasStories)('rating signals on stories15M vs the float64 reference', () => {
  it('answer tokens are looked up in the tokenizer', async () => {
    const m = await loadModel(STORIES, { device: 'cpu-twin', threads: 1 });
    for (const p of ref.pairs) {
      expect(answerToken(m.tokenizer, fillTemplate(ASK_LLM_TEMPLATE, p.instruction, p.output, 5), 'yes')).toBe(p.yes_id);
      RATING_TEMPLATES.forEach((t, w) => {
        const text = fillTemplate(t, p.instruction, p.output, 5);
        expect([1, 2, 3, 4, 5].map((j) => answerToken(m.tokenizer, text, String(j)))).toEqual(p.rating_ids[w]);
      });
    }
    m.dispose();
  });
  it('TypeScript twin, candidate head (≤1e-5) and decoder route (≤1e-5)', async () => {
    const m = await loadModel(STORIES, { device: 'cpu-twin', threads: 1 });
    expect(m.candidateLogprobs).toBeDefined();
    // Each prompt prefilled once, in one call per template while the budget holds them all, one per
    // call when it holds one; the k-sequence scoreBatch route is gone.
    for (const [budget, want] of [[m.tokenBudget, [3, 3, 3, 3]], [1, [1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1]]] as const) {
      const calls: number[] = [];
      const counted: LanguageModel = {
        ...m, tokenBudget: budget,
        candidateLogprobs: (p, c) => { calls.push(p.length); return m.candidateLogprobs!(p, c); },
        scoreBatch: () => { throw new Error('scoreBatch is not a candidate route'); },
      };
      check(await signalsOf(counted).score(pairs), 1e-5, `twin head, budget ${budget}`);
      expect(calls).toEqual(want);
    }
    check(await signalsOf(noHead(m)).score(pairs), 1e-5, 'twin decoder');
    m.dispose();
  }, 300_000);
  it('a backend with neither a candidate head nor a decoder is refused, naming it; more than MAX_CANDIDATES candidates too', async () => {
    const m = await loadModel(STORIES, { device: 'cpu-twin', threads: 1 });
    await expect(candidateLogprobs({ ...noHead(m), createDecoder: undefined }, [[1, 2]], [3])).rejects.toThrow(/stories15M.*neither a candidate head nor a decoder/);
    await expect(candidateLogprobs(m, [[1, 2]], Array.from({ length: 65 }, (_, i) => i))).rejects.toThrow(/65 candidates \(1 to 64\)/);
    m.dispose();
  });
  it('onnxruntime (≤1e-4)', async () => {
    const m = await loadModel(STORIES, { device: 'cpu' });
    expect(m.deviceName).toMatch(/onnxruntime/);
    check(await signalsOf(m).score(pairs), 1e-4, 'onnxruntime');
    m.dispose();
  }, 300_000);
  it('WebGPU f32 (≤1e-4)', async (ctx) => {
    const rt = await gpuRuntime();
    if (!rt) return ctx.skip();
    const m = await loadModel(STORIES, { device: rt, f16: false });
    expect(m.candidateLogprobs).toBeDefined();
    check(await signalsOf(m).score(pairs), 1e-4, 'webgpu');
    m.dispose();
  }, 600_000);
  it('sifd through concord score\'s scorer (twin, default templates) vs the reference (≤1e-5, same tokens kept)', async () => {
    const scorer = await createScorer({ model: STORIES, device: 'cpu-twin', cosine: 'off', tokenLogprobs: true });
    const sc = await attachSignals(scorer, { names: ['sifd'], sifdThreshold: ref.sifd_threshold }, {});
    expect(sc.identity).toMatchObject({ signals: [{ sifd: ref.sifd_threshold }] });
    const out = [];
    for await (const r of sc.score(ref.pairs.map((p) => ({ instruction: p.instruction, output: p.output })))) out.push(r);
    out.forEach((r, i) => {
      const s = r.scores as unknown as Record<string, number>, p = ref.pairs[i];
      expect(r.tokens, 'per-token arrays are dropped before the record is written').toBeUndefined();
      expect(s.y_tokens).toBe(p.pmi.length);
      expect(Math.abs(s.ifd - p.ifd)).toBeLessThanOrEqual(1e-5);
      expect(s.sifd_tokens).toBe(p.sifd_tokens);
      expect(Math.abs(s.sifd - p.sifd), `pair ${i}: ${s.sifd} vs ${p.sifd}`).toBeLessThanOrEqual(1e-5);
    });
    sc.dispose();
  }, 120_000);
  it('token-level reference losses (twin, reference = the f16-rounded twin) and the --token-scores side file vs the reference (≤1e-5)', async () => {
    const scorer = await createScorer({ model: STORIES, device: 'cpu-twin', cosine: 'off', tokenLogprobs: true });
    const side = join(scratchDir('concord-tc-'), 'tokens.jsonl');
    const refModel = await loadModel(STORIES, { device: 'cpu-twin', f16: true, threads: 1 });
    const { ReferenceLosses, TokenScoresFile } = await import('../src/signals/token-losses.js');
    const { withSignals } = await import('../src/signals/attach.js');
    const sc = withSignals(scorer, [new ReferenceLosses(scorer, refModel, new TokenScoresFile(side))], { onDispose: () => refModel.dispose() });
    const out = [];
    for await (const r of sc.score(ref.pairs.map((p) => ({ instruction: p.instruction, output: p.output })))) out.push(r);
    const lines = readFileSync(side, 'utf8').trim().split('\n').map((l) => JSON.parse(l) as { index: number; ids: number[]; tokens: string[]; loss: number[]; ref_loss: number[]; diff: number[] });
    expect(lines.map((l) => l.index)).toEqual([0, 1, 2]);
    out.forEach((r, i) => {
      const s = r.scores as unknown as Record<string, number>, p = ref.pairs[i], l = lines[i];
      expect(Math.abs(s.ref_logp - p.ref_logp)).toBeLessThanOrEqual(1e-5);
      expect(Math.abs(s.tc_diff - p.tc_diff), `pair ${i} tc_diff`).toBeLessThanOrEqual(1e-5);
      expect(l.diff.length).toBe(p.diff.length);
      l.diff.forEach((d, j) => expect(Math.abs(d - p.diff[j]), `pair ${i} token ${j}`).toBeLessThanOrEqual(1e-5));
      l.diff.forEach((d, j) => expect(d).toBeCloseTo(l.loss[j] - l.ref_loss[j], 12));
      expect(l.tokens.length).toBe(l.ids.length);
      expect(s.tc_positive).toBe(l.diff.filter((d) => d > 0).length / l.diff.length);
      // a sign is only fixed where the reference's |diff| is above the twin's f32 noise
      if (p.min_abs_diff > 1e-5) expect(s.tc_positive).toBe(p.tc_positive);
    });
    sc.dispose();
  }, 180_000);
  it('a prompt longer than the model takes gives NaN, not an error', async () => {
    const m = await loadModel(STORIES, { device: 'cpu-twin', threads: 1 });
    const long = Array.from({ length: m.maxLen + 3 }, () => 100);
    const [a, b] = await candidateLogprobs(m, [long, [1, 100, 200]], [29896, 29906]);
    expect([...a].every(Number.isNaN)).toBe(true);
    expect([...b].every(Number.isFinite)).toBe(true);
    m.dispose();
  }, 120_000);
});

describe('candidate head on WebGPU vs the twin (HF fixtures)', () => {
  for (const f16 of [false, true]) {
    it(`WebGPU candidate head on a soft-capped model (gemma2 fixture, ${f16 ? 'f16' : 'f32'} weights) = the twin's (${f16 ? 'f16-rounded' : 'f32'}) within 1e-4`, async (ctx) => {
      const rt = await gpuRuntime();
      if (!rt || (f16 && !rt.hasF16)) return ctx.skip();
      const dir = join(resolve(import.meta.dirname), 'fixtures', 'hf', 'gemma2');
      const [gpu, twin] = [await loadModel(dir, { device: rt, f16 }), await loadModel(dir, { device: 'cpu-twin', f16, threads: 1 })];
      expect(gpu.config.finalSoftcap).toBe(3);
      const prompts = [[1, 5, 9, 33, 7, 250, 12, 8, 8, 64], [1, 300], [1, 17, 399, 4, 2, 90, 91]];
      const cands = [0, 7, 8, 399, 200, 7];
      const [g, c] = [await candidateLogprobs(gpu, prompts, cands), await candidateLogprobs(twin, prompts, cands)];
      g.forEach((row, i) => row.forEach((x, j) => expect(Math.abs(x - c[i][j]), `prompt ${i} cand ${cands[j]}: ${x} vs ${c[i][j]}`).toBeLessThanOrEqual(1e-4)));
      // and the twin's head = its decoder's full log-softmax row, gathered
      const d = await candidateLogprobs(noHead(twin), prompts, cands);
      c.forEach((row, i) => row.forEach((x, j) => expect(Math.abs(x - d[i][j])).toBeLessThanOrEqual(1e-5)));
      gpu.dispose();
      twin.dispose();
    }, 120_000);
  }
});
