// The TypeScript twin's decoder (src/models/decode-cpu.ts): KV-cached decoding checked against
// the full-sequence scorer (teacher forcing), the float64 PyTorch greedy loop
// (scripts/reference_torch.py greedy → tests/fixtures/greedy-reference.json), and itself across
// batches (a slot's tokens never depend on the other slots).

import { readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
import type { Decoder } from '../src/generate/types.js';
import { GREEDY } from '../src/generate/types.js';
import { logProbsCpu } from '../src/models/forward-cpu.js';
import { loadModel, type LoadedLanguageModel } from '../src/models/index.js';
import { validate } from '../src/validate.js';
import { makeTinyModel, TINY_KINDS } from './helpers/tiny-models.js';
import { scratchDir } from './helpers/scratch.js';

const ROOT = resolve(import.meta.dirname, '..');
const FIX = join(ROOT, 'tests', 'fixtures', 'hf');
const FAMILIES = ['llama3', 'smollm2', 'qwen3', 'mistral', 'ministral', 'smollm3', 'phi3', 'gemma2', 'gemma3'];
const STORIES = join(ROOT, 'models', 'stories15M');

interface GreedyCase { model: string; prompt: number[]; tokens: number[]; text?: string; margins: number[] }
const GREEDY_REF: GreedyCase[] = JSON.parse(readFileSync(join(ROOT, 'tests', 'fixtures', 'greedy-reference.json'), 'utf8')).cases;

const twin = (path: string): Promise<LoadedLanguageModel> => loadModel(path, { device: 'cpu-twin', threads: 1 });

/** Greedy decoding of one prompt in slot `slot` (reset first). */
async function greedy(dec: Decoder, slot: number, prompt: number[], n: number): Promise<number[]> {
  dec.reset(slot);
  const out: number[] = [];
  let ids = prompt;
  for (let i = 0; i < n; i++) {
    const [t] = await dec.step([{ slot, ids, sampling: GREEDY, step: i }]);
    out.push(t);
    ids = [t];
  }
  return out;
}

/** Teacher-forced log p(ids[t] | ids[<t]) for t ≥ 1 through the cache: a prompt chunk, then one token a step. */
async function teacherForced(dec: Decoder, slot: number, ids: number[], chunk: number): Promise<number[]> {
  dec.reset(slot);
  const out: number[] = [];
  let pos = Math.min(chunk, ids.length - 1);
  let rows = await dec.stepLogprobs([{ slot, ids: ids.slice(0, pos), sampling: GREEDY, step: 0 }]);
  // Only the last row of a chunk comes back: the chunk's own tokens are checked by the smaller chunks.
  for (; pos < ids.length; pos++) {
    out.push(rows[0][ids[pos]]);
    if (pos + 1 < ids.length) rows = await dec.stepLogprobs([{ slot, ids: [ids[pos]], sampling: GREEDY, step: pos }]);
  }
  return out;
}

describe('twin decoder: teacher-forced log-probs equal the scorer', () => {
  for (const family of FAMILIES) {
    it(`${family}: cached decode == logProbsCpu (≤1e-5) and the PyTorch float64 reference (≤1e-5)`, async () => {
      const lm = await twin(join(FIX, family));
      const ref = JSON.parse(readFileSync(join(FIX, family, 'reference.json'), 'utf8')).sequences as { ids: number[]; logprobs: number[] }[];
      const dec = await lm.createDecoder!({ slots: 2, maxLen: 64 });
      const s = ref[ref.length - 1]; // the longest (40 tokens: past every fixture's window)
      for (const [slot, chunk] of [[0, 1], [1, 5]]) {
        const got = await teacherForced(dec, slot, s.ids, chunk);
        const want = Array.from(logProbsCpu(lm.weights, s.ids).slice(chunk));
        const v = validate(got, want, { atol: 1e-5, rtol: 0 });
        expect(v.ok, `${family} chunk ${chunk} vs scorer: ${v.summary}`).toBe(true);
        const vr = validate(got, s.logprobs.slice(chunk - 1), { atol: 1e-5, rtol: 0 });
        expect(vr.ok, `${family} chunk ${chunk} vs PyTorch: ${vr.summary}`).toBe(true);
      }
      dec.dispose();
      lm.dispose();
    });
  }

  const tmp = scratchDir('concord-decode-');
  for (const kind of TINY_KINDS) {
    it(`tiny ${kind}: cached decode == scoreBatch (≤1e-5)`, async () => {
      const lm = await twin(makeTinyModel(kind, join(tmp, kind), { seed: 5, maxSeqLen: 64 }));
      const V = lm.config.vocabSize;
      const ids = Array.from({ length: 30 }, (_, i) => (i * 7919 + 13) % V);
      const dec = await lm.createDecoder!({ slots: 1, maxLen: 64 });
      const got = await teacherForced(dec, 0, ids, 4);
      const [want] = await lm.scoreBatch([{ ids }]);
      const v = validate(got, Array.from(want.logprobs.slice(3)), { atol: 1e-5, rtol: 0 });
      expect(v.ok, `${kind}: ${v.summary}`).toBe(true);
      lm.dispose();
    });
  }
});

describe('twin decoder: greedy tokens equal the float64 PyTorch greedy loop', () => {
  for (const c of GREEDY_REF) {
    const path = c.model === 'stories15M' ? STORIES : join(FIX, c.model);
    it(`${c.model}: ${c.tokens.length} greedy tokens, token for token`, async () => {
      const lm = await twin(path);
      const dec = await lm.createDecoder!({ slots: 1, maxLen: 128 });
      const got = await greedy(dec, 0, c.prompt, c.tokens.length);
      expect(got).toEqual(c.tokens);
      if (c.text !== undefined) expect(lm.tokenizer.decode(got)).toBe(c.text);
      lm.dispose();
    }, 120_000);
  }
});

describe('twin decoder: batch invariance and slots', () => {
  it('mixed prompt lengths in one batch give each prompt its greedy tokens alone', async () => {
    const lm = await twin(join(FIX, 'mistral'));
    const prompts = [[1, 51, 70], [1, 9, 200, 31, 77, 12, 300, 8, 90, 5, 6], [1, 42]];
    const alone: number[][] = [];
    const solo = await lm.createDecoder!({ slots: 1, maxLen: 64 });
    for (const p of prompts) alone.push(await greedy(solo, 0, p, 12));
    const dec = await lm.createDecoder!({ slots: 3, maxLen: 64 });
    const got: number[][] = prompts.map(() => []);
    let inputs = prompts.map((ids, slot) => ({ slot: 2 - slot, ids, sampling: GREEDY, step: 0 }));
    for (let i = 0; i < 12; i++) {
      const ids = await dec.step(inputs);
      inputs = inputs.map((inp, j) => { got[2 - inp.slot].push(ids[j]); return { ...inp, ids: [ids[j]], step: i + 1 }; });
    }
    expect(got).toEqual(alone);
    lm.dispose();
  });

  it('rejects overflow, unknown slots and a slot twice in a step', async () => {
    const lm = await twin(join(FIX, 'llama3'));
    const dec = await lm.createDecoder!({ slots: 2, maxLen: 8 });
    await expect(dec.step([{ slot: 0, ids: new Array(9).fill(3), sampling: GREEDY, step: 0 }])).rejects.toThrow(/exceed the decoder's cache of 8/);
    await expect(dec.step([{ slot: 2, ids: [3], sampling: GREEDY, step: 0 }])).rejects.toThrow(/slot 2 is outside/);
    await expect(dec.step([{ slot: 1, ids: [3], sampling: GREEDY, step: 0 }, { slot: 1, ids: [4], sampling: GREEDY, step: 0 }])).rejects.toThrow(/twice/);
    lm.dispose();
  });
});
