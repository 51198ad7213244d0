// `npm run build && node dist/bench/decode-gpu.js [--model M] [--batch 1,4] [--new-tokens 32]`:
// greedy decoding tokens/s of the WebGPU decoder (src/models/decode-gpu.ts) on whatever adapter
// WebGPU finds (lavapipe here), at batch 1 and batched. Validated before timing: the first
// prompt's greedy tokens equal the CPU twin's argmax of the growing sequence (forwardHiddenCpu +
// logitsCpu, the first `--check` tokens), and every batch size gives the same tokens per prompt
// (batch invariance). tokens/s counts the decode steps after the prefill (batched: aggregate).

import { parseArgs } from 'node:util';
import { GREEDY } from '../src/generate/types.js';
import { forwardHiddenCpu, logitsCpu } from '../src/models/forward-cpu.js';
import { loadModel } from '../src/models/index.js';
import { loadWeights } from '../src/models/load.js';

const PROMPTS = ['Once upon a time, there was a little girl', 'The dog ran to the park', 'Tom had a red ball. One day', 'Lily and her mom went to the', 'The sun was hot and the birds', 'A big bear lived in the woods', 'Sam wanted to fly like a bird', 'One morning, the cat'];

function argmax(x: Float32Array): number {
  let best = 0;
  for (let i = 1; i < x.length; i++) if (x[i] > x[best]) best = i;
  return best;
}

async function main(): Promise<number> {
  const { values } = parseArgs({ options: { model: { type: 'string', default: 'default' }, batch: { type: 'string', default: '1,4' }, 'new-tokens': { type: 'string', default: '32' }, check: { type: 'string', default: '6' } } });
  const batches = values.batch!.split(',').map(Number);
  const N = Number(values['new-tokens']), nCheck = Math.min(Number(values.check), N);
  const lm = await loadModel(values.model, { device: 'webgpu' });
  if (lm.backend !== 'webgpu' || !lm.createDecoder) throw new Error(`decode-gpu: no WebGPU adapter (${lm.deviceReason})`);
  const bos = lm.tokenizer.bosId;
  const maxB = Math.max(...batches);
  const prompts = Array.from({ length: maxB }, (_, i) => [...(bos === null ? [] : [bos]), ...lm.tokenizer.encode(PROMPTS[i % PROMPTS.length], { addSpecial: false })]);
  const maxLen = Math.max(...prompts.map((p) => p.length)) + N;
  const dec = await lm.createDecoder({ slots: maxB, maxLen });
  const run = async (B: number) => {
    for (let s = 0; s < B; s++) dec.reset(s);
    const tokens = prompts.slice(0, B).map(() => [] as number[]);
    let t = performance.now();
    let ids = await dec.step(prompts.slice(0, B).map((p, s) => ({ slot: s, ids: p, sampling: GREEDY, step: 0 })));
    const prefillMs = performance.now() - t;
    ids.forEach((id, s) => tokens[s].push(id));
    t = performance.now();
    for (let k = 1; k < N; k++) {
      ids = await dec.step(tokens.map((tk, s) => ({ slot: s, ids: [tk[k - 1]], sampling: GREEDY, step: k })));
      ids.forEach((id, s) => tokens[s].push(id));
    }
    return { tokens, prefillMs, decodeMs: performance.now() - t };
  };
  // Validate: the CPU twin's greedy tokens for prompt 0 (same weights; the GPU stores f32 or f16).
  const w = await loadWeights(values.model, {});
  const seq = [...prompts[0]];
  const want: number[] = [];
  for (let i = 0; i < nCheck; i++) {
    const h = forwardHiddenCpu(w, seq);
    const id = argmax(logitsCpu(w, h, [seq.length - 1]));
    want.push(id);
    seq.push(id);
  }
  const warm = await run(maxB);
  const got = warm.tokens[0].slice(0, nCheck);
  if (JSON.stringify(got) !== JSON.stringify(want)) {
    console.error(`decode-gpu: INVALID — greedy tokens ${got.join(' ')} differ from the CPU twin's ${want.join(' ')}${lm.f16 ? ' (f16 weights: a near-tie may flip)' : ''}`);
    return 4;
  }
  console.log(`decode-gpu: ${lm.config.name} on ${lm.deviceName}; greedy tokens of prompt 0 equal the CPU twin's for ${nCheck} tokens`);
  console.log('| batch | prefill (ms) | new tok/s (decode steps, aggregate) | ms / step |');
  console.log('|--:|--:|--:|--:|');
  for (const B of batches) {
    const r = await run(B);
    r.tokens.forEach((t, i) => {
      if (JSON.stringify(t) !== JSON.stringify(warm.tokens[i])) throw new Error(`decode-gpu: batch ${B}, prompt ${i}: tokens differ from the batch-${maxB} run (batch invariance)`);
    });
    console.log(`| ${B} | ${r.prefillMs.toFixed(0)} | ${((B * (N - 1)) / (r.decodeMs / 1000)).toFixed(1)} | ${(r.decodeMs / (N - 1)).toFixed(1)} |`);
  }
  dec.dispose();
  lm.dispose();
  return 0;
}

main().then((c) => process.exit(c), (e) => { console.error(`decode-gpu: ${(e as Error).message}`); process.exit(1); });
