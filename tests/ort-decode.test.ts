// The onnxruntime KV-cache decoder (src/models/ort/decoder.ts + decode-graph.ts) against the
// scoring graph: (a) teacher-forced, token by token and as prompt + steps (two slots at different
// positions in the same runs), stepLogprobs gives scoreBatch's log-probs of the same sequence
// (≤ 1e-5) on a stories15M-shaped llama2.c model, the GPT-2 and Mistral tiny models and every HF
// fixture family; (b) greedy decoding of prompts of mixed lengths in one batch = each prompt
// decoded alone; (c) greedy tokens = argmax over the vocabulary of scoreBatch on the growing
// sequence (each candidate next token scored as a sequence); (d) greedy = the float64 PyTorch
// greedy loop (tests/fixtures/greedy-reference.json, scripts/reference_torch.py greedy) on
// stories15M and every family; (e) sampled tokens = the twin decoder's (same seeds, same sampler).
import { readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
import { generate, type GenerateRequest } from '../src/generate/engine.js';
import { GREEDY, type Decoder, type SamplingParams } from '../src/generate/types.js';
import type { LanguageModel } from '../src/models/lm.js';
import { loadModel } from '../src/models/index.js';
import { randInt, rng } from './helpers/gpu.js';
import { buildTinyModel } from './helpers/tiny-models.js';
import { scratchDir } from './helpers/scratch.js';

const ROOT = resolve(import.meta.dirname, '..');
const FIX = join(ROOT, 'tests', 'fixtures', 'hf');
interface GreedyCase { model: string; prompt: number[]; tokens: number[]; margins: number[] }
const HF = ['llama3', 'smollm2', 'qwen3', 'mistral', 'ministral', 'smollm3', 'phi3', 'gemma2', 'gemma3'];
const tmp = scratchDir('concord-ort-decode-');

/** Model paths: tiny llama2.c (stories15M's layout: interleaved RoPE, shared classifier), GPT-2, Mistral, and each HF fixture. */
function models(): { name: string; path: string }[] {
  const tiny = (['llama2c', 'hf-gpt2', 'hf-mistral'] as const).map((k) => ({ name: k, path: buildTinyModel(k, join(tmp, k), { maxSeqLen: 64 }).path }));
  return [...tiny, ...HF.map((f) => ({ name: f, path: join(FIX, f) }))];
}

function sequence(name: string, V: number, n: number): number[] {
  if (HF.includes(name)) {
    const r = JSON.parse(readFileSync(join(FIX, name, 'reference.json'), 'utf8')) as { sequences: { ids: number[] }[] };
    const s = r.sequences.reduce((a, b) => (b.ids.length > a.ids.length ? b : a)).ids;
    if (s.length >= n) return s.slice(0, n);
  }
  const g = rng(name.length * 7919);
  return Array.from({ length: n }, () => randInt(g, 0, V - 1));
}

const input = (slot: number, ids: number[], step = 0) => ({ slot, ids, sampling: GREEDY, step });

/** Greedy decode of `n` tokens for each prompt, all in one batch on decoder `d` (slots 0..). */
async function greedyBatch(d: Decoder, prompts: number[][], n: number): Promise<number[][]> {
  prompts.forEach((_, s) => d.reset(s));
  const out = prompts.map(() => [] as number[]);
  let next = await d.step(prompts.map((p, s) => input(s, p)));
  for (let k = 0; k < n; k++) {
    prompts.forEach((_, s) => out[s].push(next[s]));
    if (k + 1 < n) next = await d.step(prompts.map((_, s) => input(s, [out[s][k]], k + 1)));
  }
  return out;
}

/** Sampled decode of `n` tokens per prompt in one batch, each with its own settings (step = the RNG counter). */
async function sampleBatch(d: Decoder, prompts: number[][], sampling: SamplingParams[], n: number): Promise<number[][]> {
  prompts.forEach((_, s) => d.reset(s));
  const out = prompts.map(() => [] as number[]);
  let next = await d.step(prompts.map((p, s) => ({ slot: s, ids: p, sampling: sampling[s], step: 0 })));
  for (let k = 0; k < n; k++) {
    prompts.forEach((_, s) => out[s].push(next[s]));
    if (k + 1 < n) next = await d.step(prompts.map((_, s) => ({ slot: s, ids: [out[s][k]], sampling: sampling[s], step: k + 1 })));
  }
  return out;
}

/** The next token by scoring prefix + v for every v with scoreBatch (argmax, lowest id on ties). */
async function argmaxByScoring(lm: LanguageModel, prefix: number[]): Promise<number> {
  const V = lm.config.vocabSize;
  const scored = await lm.scoreBatch(Array.from({ length: V }, (_, v) => ({ ids: [...prefix, v] })));
  let best = 0;
  for (let v = 1; v < V; v++) if (scored[v].logprobs[prefix.length - 1] > scored[best].logprobs[prefix.length - 1]) best = v;
  return best;
}

describe('onnxruntime KV-cache decoder', () => {
  for (const { name, path } of models()) {
    it(`${name}: teacher-forced stepLogprobs = scoreBatch (≤1e-5), token by token and prompt + steps, in the same runs`, async () => {
      const lm = await loadModel(path, { device: 'cpu', cpuBackend: 'onnxruntime' });
      const ids = sequence(name, lm.config.vocabSize, 40); // past the decoder's 32-row feed chunk
      const [want] = await lm.scoreBatch([{ ids }]);
      const d = await lm.createDecoder!({ slots: 3, maxLen: 48 });
      const k = 9; // slot 1: a prompt of k tokens, then one token a step; slot 0: one token a step throughout
      let worst = 0;
      const check = (row: Float32Array, t: number, what: string) => {
        expect(row.length).toBe(lm.config.vocabSize);
        const err = Math.abs(row[ids[t + 1]] - want.logprobs[t]);
        expect(err, `${name} ${what} position ${t}: ${row[ids[t + 1]]} vs ${want.logprobs[t]}`).toBeLessThanOrEqual(1e-5);
        worst = Math.max(worst, err);
      };
      for (let t = 0; t < ids.length - 1; t++) {
        const inputs = [input(0, [ids[t]])];
        if (t === k - 1) inputs.push(input(1, ids.slice(0, k)));
        else if (t >= k) inputs.push(input(1, [ids[t]]));
        const rows = await d.stepLogprobs(inputs);
        check(rows[0], t, 'token by token');
        if (rows[1]) check(rows[1], t, `prompt of ${k} + steps`);
      }
      // A reset slot starts over at position 0 (its old rows are not seen).
      d.reset(0);
      const [again] = await d.stepLogprobs([input(0, ids.slice(0, 5))]);
      check(again, 4, 'after reset');
      console.log(`[${name}] onnxruntime decoder vs scoreBatch: max |Δ| ${worst.toExponential(2)} nats over ${2 * (ids.length - 1) - (k - 1)} steps`);
      d.dispose();
      lm.dispose();
    });
  }

  for (const name of ['llama2c', 'gemma2', 'mistral', 'phi3']) {
    it(`${name}: greedy decoding is batch-invariant (mixed prompt lengths) and equals argmax of scoreBatch on the growing sequence`, async () => {
      const path = models().find((m) => m.name === name)!.path;
      const lm = await loadModel(path, { device: 'cpu', cpuBackend: 'onnxruntime' });
      const full = sequence(name, lm.config.vocabSize, 30);
      const prompts = [full.slice(0, 3), full.slice(5, 17), full.slice(1, 2), full.slice(10, 19)];
      const n = 8;
      const batched = await lm.createDecoder!({ slots: prompts.length, maxLen: 32 });
      const got = await greedyBatch(batched, prompts, n);
      const alone = await lm.createDecoder!({ slots: 1, maxLen: 32 });
      for (let s = 0; s < prompts.length; s++) {
        const [solo] = await greedyBatch(alone, [prompts[s]], n);
        expect(got[s], `${name} prompt ${s} batched vs alone`).toEqual(solo);
      }
      for (const s of [0, 1]) {
        const seq = [...prompts[s]];
        for (let k = 0; k < 4; k++) seq.push(await argmaxByScoring(lm, seq));
        expect(got[s].slice(0, 4), `${name} prompt ${s} decoder vs scoring argmax`).toEqual(seq.slice(prompts[s].length));
      }
      // The tokens are not trivially constant (the check could not pass by accident on a degenerate model).
      expect(new Set(got.flat()).size).toBeGreaterThan(1);
      batched.dispose();
      alone.dispose();
      lm.dispose();
    });
  }

  it('greedy = the float64 PyTorch greedy loop token for token (stories15M and every HF family)', async () => {
    const cases = (JSON.parse(readFileSync(join(ROOT, 'tests', 'fixtures', 'greedy-reference.json'), 'utf8')) as { cases: GreedyCase[] }).cases;
    expect(cases.map((c) => c.model).sort()).toEqual(['stories15M', ...HF].sort());
    for (const c of cases) {
      const lm = await loadModel(c.model === 'stories15M' ? join(ROOT, 'models', 'stories15M') : join(FIX, c.model), { device: 'cpu', cpuBackend: 'onnxruntime' });
      const d = await lm.createDecoder!({ slots: 1, maxLen: c.prompt.length + c.tokens.length });
      const [got] = await greedyBatch(d, [c.prompt], c.tokens.length);
      expect(got, `${c.model} (smallest top-1 margin ${Math.min(...c.margins).toExponential(1)} nats)`).toEqual(c.tokens);
      d.dispose();
      lm.dispose();
    }
  }, 120_000);

  it('sampling (temperature, top-k, top-p, min-p, seeds): the same tokens as the twin decoder, alone and in a batch', async () => {
    for (const name of ['llama2c', 'gemma2']) {
      const path = models().find((m) => m.name === name)!.path;
      const ort = await loadModel(path, { device: 'cpu', cpuBackend: 'onnxruntime' });
      const twin = await loadModel(path, { device: 'cpu-twin', threads: 1 });
      const full = sequence(name, ort.config.vocabSize, 20);
      const prompts = [full.slice(0, 4), full.slice(3, 14), full.slice(7, 9)];
      const settings: SamplingParams[] = [
        { temperature: 0.8, topK: 0, topP: 0.9, minP: 0, seed: 7 },
        { temperature: 1.2, topK: 20, topP: 1, minP: 0.05, seed: 123456 },
        { temperature: 0.7, topK: 0, topP: 1, minP: 0, seed: 7 },
      ];
      const run = async (lm: LanguageModel, ps: number[][], ss: SamplingParams[]) => {
        const d = await lm.createDecoder!({ slots: ps.length, maxLen: 32 });
        const out = await sampleBatch(d, ps, ss, 10);
        d.dispose();
        return out;
      };
      const [o, t] = [await run(ort, prompts, settings), await run(twin, prompts, settings)];
      expect(o, `${name}: onnxruntime vs twin, sampled`).toEqual(t);
      expect(await run(ort, [prompts[1]], [settings[1]]), `${name}: sampled alone vs in a batch`).toEqual([o[1]]);
      expect(new Set(o.flat()).size, `${name}: sampled tokens vary`).toBeGreaterThan(3);
      ort.dispose();
      twin.dispose();
    }
  }, 120_000);

  it('continuous batching (src/generate/engine.ts) over the onnxruntime decoder = over the twin decoder, greedy and sampled', async () => {
    for (const name of ['phi3', 'gemma2']) {
      const path = models().find((m) => m.name === name)!.path;
      const ort = await loadModel(path, { device: 'cpu', cpuBackend: 'onnxruntime' });
      const twin = await loadModel(path, { device: 'cpu-twin', threads: 1 });
      const decode = (ids: number[]) => ort.tokenizer.decode(ids);
      const prompts = [[1, 5, 9], [1, 200, 3, 44, 87, 12, 9, 250], [1, 77], [1, 300, 301], [1, 8, 8, 8, 8]];
      const reqs: GenerateRequest[] = prompts.map((prompt, i) => ({
        prompt, maxNewTokens: 5 + 3 * i,
        sampling: i % 2 ? { temperature: 0.9, topK: 20, topP: 0.9, minP: 0.02, seed: 40 + i } : GREEDY,
      }));
      const run = async (lm: LanguageModel) => {
        const d = await lm.createDecoder!({ slots: 2, maxLen: 48 });
        const r = await generate(d, reqs, { decode });
        d.dispose();
        return r;
      };
      const [o, t] = [await run(ort), await run(twin)];
      expect(o.results, `${name}: engine over onnxruntime vs twin`).toEqual(t.results);
      expect(o.results.map((r) => r.generated_tokens)).toEqual(reqs.map((r) => r.maxNewTokens));
      expect(o.stats.steps).toBeLessThan(reqs.reduce((a, r) => a + r.maxNewTokens, 0));
      ort.dispose();
      twin.dispose();
    }
  }, 120_000);

  it('refuses what it cannot do, naming it: bad sampling settings, a full cache, a slot twice, a bad slot or id', async () => {
    const lm = await loadModel(models()[0].path, { device: 'cpu', cpuBackend: 'onnxruntime' });
    const d = await lm.createDecoder!({ slots: 2, maxLen: 8 });
    await expect(d.step([{ ...input(0, [1, 2]), sampling: { ...GREEDY, temperature: -1 } }])).rejects.toThrow(/temperature must be ≥ 0/);
    await expect(d.step([input(0, new Array(9).fill(1))])).rejects.toThrow(/0 \+ 9 tokens exceed the cache of 8/);
    await expect(d.step([input(1, [1]), input(1, [2])])).rejects.toThrow(/slot 1 appears twice/);
    await expect(d.step([input(2, [1])])).rejects.toThrow(/slot 2 is outside \[0, 2\)/);
    await expect(d.step([input(0, [lm.config.vocabSize])])).rejects.toThrow(/token id \d+ at position 0 is outside the vocabulary/);
    await expect(lm.createDecoder!({ slots: 1, maxLen: lm.config.maxSeqLen + 1 })).rejects.toThrow(/maxLen must be an integer in \[1, \d+\]/);
    d.dispose();
    lm.dispose();
  });
});
