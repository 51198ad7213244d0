import { join, resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
import { generate, generateStream, type GenerateRequest, type GenerateResult } from '../src/generate/engine.js';
import { GREEDY, type Decoder, type StepInput } from '../src/generate/types.js';
import { loadModel } from '../src/models/index.js';

/** A decoder whose next token is (last appended id + 1) mod 26; it checks the engine's use of its slots. */
class CountingDecoder implements Decoder {
  len: number[];
  batchSizes: number[] = [];
  constructor(readonly slots: number, readonly maxLen: number) {
    this.len = new Array(slots).fill(-1);
  }
  reset(slot: number): void { this.len[slot] = 0; }
  async step(inputs: StepInput[]): Promise<Int32Array> {
    this.batchSizes.push(inputs.length);
    return Int32Array.from(inputs, (inp) => {
      if (this.len[inp.slot] < 0) throw new Error(`slot ${inp.slot} used before reset`);
      this.len[inp.slot] += inp.ids.length;
      if (this.len[inp.slot] > this.maxLen) throw new Error(`slot ${inp.slot} overflows`);
      return (inp.ids[inp.ids.length - 1] + 1) % 26;
    });
  }
  async stepLogprobs(): Promise<Float32Array[]> { throw new Error('unused'); }
  async scoreTokens(): Promise<Float32Array[]> { throw new Error('unused'); }
  truncate(): void { throw new Error('unused'); }
  dispose(): void {}
}

const letters = (ids: number[]): string => ids.map((i) => String.fromCharCode(97 + i)).join('');
const req = (prompt: number[], maxNewTokens: number, extra: Partial<GenerateRequest> = {}): GenerateRequest => ({ prompt, sampling: GREEDY, maxNewTokens, ...extra });

describe('generation engine (continuous batching)', () => {
  it('refills a finished slot at once: the batch never waits for its longest member', async () => {
    const dec = new CountingDecoder(2, 64);
    const lens = [10, 2, 2, 2, 2];
    const { results, stats } = await generate(dec, lens.map((n) => req([0], n)), { decode: letters });
    expect(results.map((r) => r.generated_tokens)).toEqual(lens);
    expect(results.every((r) => r.finish_reason === 'length')).toBe(true);
    // One slot runs the 10-token request while the other runs the four 2-token ones back to back:
    // 10 steps, both slots busy in 8 of them. Static batches of 2 would take 10 + 2 + 2 = 14.
    expect(stats.steps).toBe(10);
    expect(dec.batchSizes).toEqual([2, 2, 2, 2, 2, 2, 2, 2, 1, 1]);
    expect(stats.slotSteps).toBe(18);
    expect(results[0].text).toBe('bcdefghijk');
  });

  it('stops on stop ids (eos, not in the output), stop strings (text cut before), length; streams in input order', async () => {
    const dec = new CountingDecoder(3, 64);
    const order: number[] = [];
    const { results } = await generate(dec, [
      req([0], 50, { stopIds: [5] }),              // b c d e → f is the stop id
      req([0], 50, { stopStrings: ['xx', 'de'] }), // b c d e: "bcde" contains "de"
      req([10], 3),                                 // l m n
      req([20], 50, { stopIds: [99] }),             // u .. z a ..: 50 tokens
    ], { decode: letters, onResult: (_, i) => { order.push(i); } });
    expect(results[0]).toMatchObject({ ids: [1, 2, 3, 4], text: 'bcde', generated_tokens: 4, finish_reason: 'eos' });
    expect(results[1]).toMatchObject({ ids: [1, 2, 3, 4], text: 'bc', generated_tokens: 4, finish_reason: 'stop' });
    expect(results[2]).toMatchObject({ text: 'lmn', finish_reason: 'length' });
    expect(results[3]).toMatchObject({ generated_tokens: 50, finish_reason: 'length' });
    expect(order).toEqual([0, 1, 2, 3]);
  });

  it('a prompt too long for the cache is a per-request error; a full cache ends with length', async () => {
    const dec = new CountingDecoder(1, 8);
    const { results } = await generate(dec, [req(new Array(9).fill(0), 4), req([0, 1, 2, 3, 4, 5], 10), req([], 3), req([0], 0)], { decode: letters });
    expect(results[0].error).toMatch(/prompt of 9 tokens exceeds the decoder's 8 positions/);
    expect(results[0].generated_tokens).toBe(0);
    // 6 prompt tokens + 3 generated: the third is sampled from position 7, the cache's last.
    expect(results[1]).toMatchObject({ generated_tokens: 3, finish_reason: 'length' });
    expect(results[1].error).toBeUndefined();
    expect(results[2].error).toMatch(/empty prompt/);
    expect(results[3]).toMatchObject({ generated_tokens: 0, finish_reason: 'length' });
  });

  it('pulls a stream of requests as slots free up; a pre-failed request passes through in order', async () => {
    const dec = new CountingDecoder(2, 64);
    let pulled = 0;
    async function* src(): AsyncGenerator<GenerateRequest> {
      for (let i = 0; i < 6; i++) { pulled++; yield i === 2 ? { ...req([], 1), error: 'record 2: missing field' } : req([i], 3); }
    }
    const got: [number, GenerateResult][] = [];
    const stats = await generateStream(dec, src(), { decode: letters, onResult: (r, i) => { got.push([i, r]); } });
    expect(pulled).toBe(6);
    expect(got.map(([i]) => i)).toEqual([0, 1, 2, 3, 4, 5]);
    expect(got[2][1]).toMatchObject({ error: 'record 2: missing field', generated_tokens: 0 });
    expect(got[4][1].text).toBe('fgh');
    expect(stats.steps).toBe(9); // 5 requests of 3 tokens on 2 slots: pairs of 3 steps, the fifth alone
  });

  it('on the twin: a batch of 3 slots gives every request what it gets alone (greedy and sampled)', async () => {
    const lm = await loadModel(join(resolve(import.meta.dirname, '..'), 'tests', 'fixtures', 'hf', 'phi3'), { device: 'cpu-twin', threads: 1 });
    const decode = (ids: number[]) => lm.tokenizer.decode(ids);
    const prompts = [[1, 5, 9], [1, 200, 3, 44, 87, 12, 9, 250], [1, 77], [1, 300, 301], [1, 8, 8, 8, 8]];
    const reqs = prompts.map((prompt, i) => req(prompt, 6 + 3 * i, i % 2 ? { sampling: { temperature: 0.9, topK: 20, topP: 0.9, minP: 0.02, seed: 40 + i } } : {}));
    const batched = await generate(await lm.createDecoder!({ slots: 3, maxLen: 64 }), reqs, { decode });
    const solo = await lm.createDecoder!({ slots: 1, maxLen: 64 });
    for (let i = 0; i < reqs.length; i++) {
      const { results: [alone] } = await generate(solo, [reqs[i]], { decode });
      expect(batched.results[i], `request ${i}`).toEqual(alone);
    }
    expect(batched.stats.steps).toBeLessThan(reqs.reduce((a, r) => a + r.maxNewTokens, 0));
    lm.dispose();
  });
});
