// `npm run build && node dist/bench/decode-cpu.js [--new N] [--batches 1,4,16] [--model stories15M]`:
// greedy decode tokens/s of the onnxruntime KV-cache decoder (src/models/ort/decoder.ts).
//
// Checked before timing: a prompt's teacher-forced stepLogprobs against scoreBatch (≤ 1e-4
// nats), and greedy decoding of the first prompt inside the largest batch equals it decoded alone.
// Then for each batch size B: B prompts (the reference sentences' first 8–20 tokens, mixed
// lengths) prefilled in one run, then N one-token steps of all B slots; prefill ms, and decode
// tokens/s = B·(N - 1) / (time of the N - 1 steps after the prefill, which gave the first token), aggregate over the batch.

import { readFileSync } from 'node:fs';
import { loadavg } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { GREEDY, type Decoder } from '../src/generate/types.js';
import { loadModel } from '../src/models/index.js';

const ROOT = process.cwd();
const input = (slot: number, ids: number[], step = 0) => ({ slot, ids, sampling: GREEDY, step });

async function decode(d: Decoder, prompts: number[][], n: number): Promise<{ tokens: number[][]; prefillMs: number; stepsMs: number }> {
  prompts.forEach((_, s) => d.reset(s));
  const tokens = prompts.map(() => [] as number[]);
  let t = performance.now();
  let next = await d.step(prompts.map((p, s) => input(s, p)));
  const prefillMs = performance.now() - t;
  t = performance.now();
  for (let k = 0; k < n; k++) {
    prompts.forEach((_, s) => tokens[s].push(next[s]));
    if (k + 1 < n) next = await d.step(prompts.map((_, s) => input(s, [tokens[s][k]], k + 1)));
  }
  return { tokens, prefillMs, stepsMs: performance.now() - t };
}

async function main(): Promise<void> {
  const { values } = parseArgs({ options: { new: { type: 'string', default: '64' }, batches: { type: 'string', default: '1,4,16' }, model: { type: 'string', default: 'stories15M' } } });
  const n = Number(values.new), batches = values.batches!.split(',').map(Number);
  const ref = JSON.parse(readFileSync(join(ROOT, 'tests', 'fixtures', 'stories15m-reference.json'), 'utf8')) as { sentences: { ids: number[] }[] };
  const maxB = Math.max(...batches);
  const prompts = Array.from({ length: maxB }, (_, i) => ref.sentences[i % ref.sentences.length].ids.slice(0, 8 + ((i * 5) % 13)));
  const lm = await loadModel(values.model, { device: 'cpu', cpuBackend: 'onnxruntime' });
  const maxLen = Math.max(...prompts.map((p) => p.length)) + n;
  // Checks first.
  const seq = ref.sentences[0].ids;
  const [want] = await lm.scoreBatch([{ ids: seq }]);
  const check = await lm.createDecoder!({ slots: 1, maxLen: seq.length });
  const k = Math.min(6, seq.length - 2);
  let worst = 0;
  let row = (await check.stepLogprobs([input(0, seq.slice(0, k))]))[0];
  for (let t = k - 1; t < seq.length - 1; t++) {
    worst = Math.max(worst, Math.abs(row[seq[t + 1]] - want.logprobs[t]));
    if (t + 1 < seq.length - 1) row = (await check.stepLogprobs([input(0, [seq[t + 1]])]))[0];
  }
  check.dispose();
  if (!(worst <= 1e-4)) throw new Error(`decoder disagrees with scoreBatch: max |Δ| ${worst}`);
  const big = await lm.createDecoder!({ slots: maxB, maxLen }), one = await lm.createDecoder!({ slots: 1, maxLen });
  const [inBatch, alone] = [(await decode(big, prompts, 16)).tokens[0], (await decode(one, [prompts[0]], 16)).tokens[0]];
  if (inBatch.join() !== alone.join()) throw new Error(`greedy tokens differ in a batch (${inBatch}) and alone (${alone})`);
  console.log(`${lm.deviceName}; ${values.model}; checked: teacher-forced vs scoreBatch max |Δ| ${worst.toExponential(1)} nats, batch = alone over 16 tokens; ${new Date().toISOString()}`);
  console.log('| batch | prompt tokens | prefill ms | new tokens/slot | decode tokens/s (aggregate) | ms/step | load |');
  console.log('|---|---|---|---|---|---|---|');
  for (const B of batches) {
    const ps = prompts.slice(0, B);
    const d = B === maxB ? big : await lm.createDecoder!({ slots: B, maxLen });
    await decode(d, ps, 4); // warm-up
    const l0 = loadavg()[0];
    const r = await decode(d, ps, n);
    console.log(`| ${B} | ${ps.reduce((a, p) => a + p.length, 0)} | ${r.prefillMs.toFixed(1)} | ${n} | ${((B * (n - 1)) / (r.stepsMs / 1000)).toFixed(1)} | ${(r.stepsMs / (n - 1)).toFixed(2)} | ${l0.toFixed(1)}–${loadavg()[0].toFixed(1)} |`);
    if (d !== big) d.dispose();
  }
  big.dispose();
  one.dispose();
  lm.dispose();
}

main().catch((e) => {
  console.error((e as Error).stack ?? e);
  process.exit(1);
});
