// In-context influence (src/signals/icl.ts): the columns on hand-made numbers, and stories15M
// against the float64 PyTorch reference computed without any cache (scripts/reference_torch.py icl
// → tests/fixtures/icl-reference.json): the TypeScript twin with KV reuse ≤ 1e-5 and equal to its
// no-reuse path, onnxruntime ≤ 1e-4, WebGPU f32 (lavapipe) ≤ 1e-4.

import { existsSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
import { loadModel, type LanguageModel } from '../src/models/index.js';
import { sequenceBuilder } from '../src/pipeline/sequences.js';
import { InContextInfluence, iclColumns } from '../src/signals/icl.js';
import { gpuRuntime } from './helpers/gpu.js';
import { evaluate } from '../src/eval/index.js';
import type { ScoreFields } from '../src/filter/index.js';

interface RefCand { instruction: string; output: string; one_sum: number[]; one_mean: number[]; icl_gold: number; min_abs_gap: number; icl_delta: number; icl_ratio: number }
const ref = JSON.parse(readFileSync(new URL('./fixtures/icl-reference.json', import.meta.url), 'utf8')) as {
  anchors: { instruction: string; output: string }[]; zero_sum: number[]; zero_mean: number[]; candidates: RefCand[];
};
const STORIES = join(resolve(import.meta.dirname, '..'), 'models', 'stories15M');
const hasStories = existsSync(join(STORIES, 'model.bin'));
const anchors = ref.anchors.map((a) => ({ x: a.instruction, y: a.output }));
const pairs = ref.candidates.map((c) => ({ x: c.instruction, y: c.output }));

describe('in-context influence columns', () => {
  it('gold = share of anchors whose one-shot sum beats zero-shot (ties lose); delta = mean gain; ratio = mean zero/one loss', () => {
    const zero = [{ sum: -10, mean: -2 }, { sum: -6, mean: -1 }, { sum: -4, mean: -0.5 }];
    const one = [{ sum: -8, mean: -1.6 }, { sum: -6, mean: -1 }, { sum: -5, mean: -1 }];
    const c = iclColumns(zero, one);
    expect(c.icl_gold).toBeCloseTo(1 / 3, 15);
    expect(c.icl_delta).toBeCloseTo((0.4 + 0 - 0.5) / 3, 15);
    expect(c.icl_ratio).toBeCloseTo((2 / 1.6 + 1 + 0.5) / 3, 15);
  });
  it('concord eval: a row per icl column, higher = better', () => {
    const base = { fwd_logp: -1, rev_logp: -1, y_logp: -2, x_logp: -2, ifd: 1, rifd: 1 };
    const scores = [0.9, 0.7, 0.2, 0.1].map((g) => ({ ...base, icl_gold: g, icl_delta: g - 0.5, icl_ratio: 1 + g }) as unknown as ScoreFields);
    const r = evaluate(scores, [true, true, false, false]);
    for (const name of ['icl_gold', 'icl_delta', 'icl_ratio']) expect(r.scores.find((s) => s.name === name)).toMatchObject({ direction: 'up', auc: 1, n: 4 });
  });
});

function builderOf(lm: LanguageModel) {
  return sequenceBuilder({ tokenizer: lm.tokenizer, maxLen: lm.maxLen, sameModel: true });
}

async function checkAgainstRef(lm: LanguageModel, tol: number, what: string, opts: { reuse?: boolean; slots?: number } = {}) {
  const icl = new InContextInfluence(lm, builderOf(lm), anchors, opts);
  const zero = await icl.zeroShot();
  zero.forEach((z, a) => {
    expect(Math.abs(z.sum - ref.zero_sum[a]), `${what} zero-shot sum, anchor ${a}`).toBeLessThanOrEqual(tol * 20);
    expect(Math.abs(z.mean - ref.zero_mean[a]), `${what} zero-shot mean, anchor ${a}`).toBeLessThanOrEqual(tol);
  });
  const one = await icl.oneShot(pairs);
  const cols = await icl.score(pairs);
  ref.candidates.forEach((c, i) => {
    one[i]!.forEach((o, a) => expect(Math.abs(o.mean - c.one_mean[a]), `${what} one-shot mean, candidate ${i} anchor ${a}`).toBeLessThanOrEqual(tol));
    expect(c.min_abs_gap).toBeGreaterThan(1e-2); // no anchor's win sits on a tie
    expect(cols[i].icl_gold, `${what} candidate ${i} icl_gold`).toBe(c.icl_gold);
    expect(Math.abs(cols[i].icl_delta! - c.icl_delta), `${what} candidate ${i} icl_delta`).toBeLessThanOrEqual(tol);
    expect(Math.abs(cols[i].icl_ratio! - c.icl_ratio), `${what} candidate ${i} icl_ratio`).toBeLessThanOrEqual(tol);
  });
  return one;
}

describe.skipIf(!hasStories)('in-context influence on stories15M vs the float64 no-cache reference', async () => {
  it('TypeScript twin, KV reuse (2 slots: two groups) ≤ 1e-5; the no-reuse path gives the same numbers', async () => {
    const lm = await loadModel(STORIES, { device: 'cpu-twin', threads: 1 });
    const reused = await checkAgainstRef(lm, 1e-5, 'twin reuse', { slots: 2 });
    const plain = await checkAgainstRef(lm, 1e-5, 'twin no reuse', { reuse: false, slots: 3 });
    reused.forEach((r, i) => r!.forEach((o, a) => expect(Math.abs(o.sum - plain[i]![a].sum)).toBeLessThanOrEqual(1e-5)));
    lm.dispose();
  });
  it('onnxruntime, KV reuse ≤ 1e-4', async () => {
    const lm = await loadModel(STORIES, { device: 'cpu', cpuBackend: 'onnxruntime' });
    await checkAgainstRef(lm, 1e-4, 'onnxruntime');
    lm.dispose();
  });
  const rt = await gpuRuntime();
  it.skipIf(!rt)('WebGPU f32, KV reuse ≤ 1e-4', async () => {
    const lm = await loadModel(STORIES, { device: rt!, f16: false });
    await checkAgainstRef(lm, 1e-4, 'webgpu');
    lm.dispose();
  });
  it('a candidate that does not fit beside the longest anchor gets null columns; no anchors is refused', async () => {
    const lm = await loadModel(STORIES, { device: 'cpu-twin', threads: 1 });
    const long = { x: 'Tell me a story.', y: Array(200).fill('The dog ran.').join(' ') };
    const icl = new InContextInfluence(lm, builderOf(lm), anchors);
    const [a, b] = await icl.score([long, pairs[0]]);
    expect(a).toEqual({ icl_gold: null, icl_delta: null, icl_ratio: null });
    expect(b.icl_gold).toBe(ref.candidates[0].icl_gold);
    expect(() => new InContextInfluence(lm, builderOf(lm), [])).toThrow(/at least one anchor/);
    lm.dispose();
  });
});

describe.skipIf(!hasStories)('concord score --signals icl --anchors', () => {
  it('writes icl_gold, icl_delta, icl_ratio per record (onnxruntime, the reference within 1e-4); bad anchors stop the run naming the line', async () => {
    const { setupCli } = await import('./helpers/cli.js');
    const { writeFileSync } = await import('node:fs');
    const c = setupCli('concord-icl-');
    writeFileSync(c.p('in.jsonl'), ref.candidates.map((p) => JSON.stringify({ instruction: p.instruction, output: p.output })).join('\n') + '\n');
    writeFileSync(c.p('anchors.json'), JSON.stringify(ref.anchors));
    const r = await c.run(['score', 'in.jsonl', '-o', 'out.jsonl', '--model', STORIES, '--device', 'cpu', '--cosine', 'off', '--signals', 'icl', '--anchors', 'anchors.json'], {}, { fake: false });
    expect(r.code, r.stderr).toBe(0);
    c.lines('out.jsonl').forEach((rec: { scores: Record<string, number> }, i: number) => {
      const want = ref.candidates[i];
      expect(rec.scores.icl_gold).toBe(want.icl_gold);
      expect(Math.abs(rec.scores.icl_delta - want.icl_delta)).toBeLessThanOrEqual(1e-4);
      expect(Math.abs(rec.scores.icl_ratio - want.icl_ratio)).toBeLessThanOrEqual(1e-4);
    });
    writeFileSync(c.p('bad.jsonl'), JSON.stringify({ instruction: 'a', output: 'b' }) + '\n' + JSON.stringify({ instruction: 'no output' }) + '\n');
    const bad = await c.run(['score', 'in.jsonl', '-o', 'out2.jsonl', '--model', STORIES, '--device', 'cpu-twin', '--cosine', 'off', '--signals', 'icl', '--anchors', 'bad.jsonl'], {}, { fake: false });
    expect(bad.code).toBe(3);
    expect(bad.stderr).toMatch(/bad\.jsonl:2: anchor: .*output/);
    const missing = await c.run(['score', 'in.jsonl', '-o', 'out3.jsonl', '--signals', 'icl'], {}, { fake: false });
    expect(missing.code).toBe(2);
    expect(missing.stderr).toMatch(/--signals icl needs --anchors FILE/);
  }, 300_000);
});
