// Decode throughput on stories15M, three peers in one run: concord's decoder (the model's
// createDecoder; by default the onnxruntime KV-cache decoder, src/models/ort/decoder.ts),
// llama2.c's run.c built here with `gcc -Ofast -fopenmp -march=native`, and transformers.js
// `generate` (bench/peer-generate.ts) on the KV-cache ONNX export of the same weights. run.c is not
// part of concord: pass its source with --run-c (e.g. a copy of github.com/karpathy/llama2.c's
// run.c in a temporary folder); it is compiled into a temporary folder.
//
//   npm run build && node dist/bench/decode.js --run-c /tmp/llama2c/run.c [--peer-model models/stories15M-onnx-kv]
//        [--steps 64] [--batches 1,4,8,16] [--reps 3] [--omp-threads 1] [--no-sampled] [--json]
//
// Validated before anything is timed: concord's greedy text at batch 1 = run.c's; at every batch
// size, transformers.js's greedy tokens = concord's, row for row (the batch's prompts are the
// prompt and shorter prefixes of it: mixed lengths, left-padded for transformers.js), and every
// row of concord's batch = that prompt decoded alone.
//
// Timed: --reps rounds, each round runs every configuration once, interleaved (run.c; then per
// batch size: concord greedy, transformers.js greedy, concord sampled, transformers.js sampled);
// the median of the rounds is reported, with the load average before and after. Figures:
//   run.c            its own "achieved tok/s" (positions after the first, prompt positions included)
//   *_positions_s    concord batch 1 in run.c's unit: (prompt + generated - 1) / wall time
//   *_tok_s          generated tokens per second of wall time, summed over the batch, prefill
//                    included (the same formula for concord and transformers.js)
// Sampled: temperature 0.7, top-p 0.9 (Humpback's), each peer with its own RNG, the same number of
// tokens forced (no stop ids in concord; min_new_tokens = max_new_tokens in transformers.js).

import { spawnSync } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { generate } from '../src/generate/engine.js';
import { GREEDY, type SamplingParams } from '../src/generate/types.js';
import { loadModel } from '../src/models/index.js';
import { encodeStandalone } from '../src/pipeline/templates.js';
import { GENERATE_PEER_NAME, loadGeneratePeer, type GeneratePeer } from './peer-generate.js';

const ROOT = resolve(import.meta.dirname, '..', '..');

const { values: a } = parseArgs({
  options: {
    'run-c': { type: 'string' }, model: { type: 'string' }, 'peer-model': { type: 'string' }, prompt: { type: 'string' }, steps: { type: 'string' },
    batches: { type: 'string' }, reps: { type: 'string' }, 'omp-threads': { type: 'string' }, device: { type: 'string' }, 'no-sampled': { type: 'boolean' }, json: { type: 'boolean' },
  },
});
if (!a['run-c']) throw new Error('--run-c PATH (llama2.c run.c) is required');
const modelDir = resolve(a.model ?? join(ROOT, 'models', 'stories15M'));
const peerDir = resolve(a['peer-model'] ?? join(ROOT, 'models', 'stories15M-onnx-kv'));
const prompt = a.prompt ?? 'Once upon a time, there was a little dog named Max. He';
const steps = Number(a.steps ?? 64);
const batches = (a.batches ?? '1,4,8,16').split(',').map(Number);
const reps = Number(a.reps ?? 3);
// OpenMP threads for run.c (default 1: on a shared, loaded machine its spinning threads collapse; say which in the figures).
const ompThreads = Number(a['omp-threads'] ?? 1);
const SAMPLED: SamplingParams = { temperature: 0.7, topK: 0, topP: 0.9, minP: 0, seed: 1234 };

function buildRunC(src: string): string {
  const dir = mkdtempSync(join(tmpdir(), 'concord-runc-'));
  const bin = join(dir, 'run');
  const r = spawnSync('gcc', ['-Ofast', '-fopenmp', '-march=native', src, '-lm', '-o', bin], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`gcc failed: ${r.stderr}`);
  return bin;
}

function runC(bin: string): { text: string; tokS: number } {
  const r = spawnSync(bin, [join(modelDir, 'model.bin'), '-z', join(modelDir, 'tokenizer.bin'), '-t', '0', '-n', String(steps), '-i', prompt], { encoding: 'utf8', env: { ...process.env, OMP_NUM_THREADS: String(ompThreads) } });
  if (r.status !== 0) throw new Error(`run.c failed: ${r.stderr}`);
  const m = /achieved tok\/s: ([\d.]+)/.exec(r.stderr);
  if (!m) throw new Error(`run.c printed no tok/s: ${r.stderr}`);
  return { text: r.stdout.trim(), tokS: Number(m[1]) };
}

const bin = buildRunC(resolve(a['run-c']));
const device = a.device ?? 'cpu';
const lm = await loadModel(modelDir, device === 'cpu-twin' ? { device: 'cpu', cpuBackend: 'twin' } : { device: device as 'cpu', cpuBackend: 'onnxruntime' });
if (!lm.createDecoder) throw new Error(`${lm.deviceName} cannot decode`);
const peer: GeneratePeer = await loadGeneratePeer(peerDir);
const tok = lm.tokenizer;
const ids = [tok.bosId!, ...encodeStandalone(tok, prompt)];
// run.c runs `steps` positions: the prompt's, then one per generated token until position steps-1.
const newTokens = steps - ids.length + 1;
/** Batch of B prompts: the prompt, then prefixes 1–3 tokens shorter (mixed lengths). */
const promptsOf = (B: number): number[][] => Array.from({ length: B }, (_, i) => ids.slice(0, ids.length - (i % 4)));

async function concord(prompts: number[][], sampling: SamplingParams): Promise<{ ids: number[][]; seconds: number }> {
  const dec = await lm.createDecoder!({ slots: prompts.length, maxLen: ids.length + newTokens });
  try {
    const t0 = performance.now();
    const { results } = await generate(dec, prompts.map((p) => ({ prompt: p, sampling, maxNewTokens: newTokens, stopIds: [] })), { decode: (x) => tok.decode(x) });
    return { ids: results.map((r) => r.ids), seconds: (performance.now() - t0) / 1000 };
  } finally {
    dec.dispose();
  }
}

async function transformersJs(prompts: number[][], sampling: SamplingParams): Promise<{ ids: number[][]; seconds: number }> {
  const t0 = performance.now();
  const out = await peer.generate(prompts, newTokens, sampling);
  return { ids: out, seconds: (performance.now() - t0) / 1000 };
}

// Validate before timing.
const ref = runC(bin);
const one = await concord([ids], GREEDY);
const oneText = tok.decode([...ids.slice(1), ...one.ids[0]]);
if (oneText !== ref.text) throw new Error(`concord and run.c differ:\n run.c:   ${JSON.stringify(ref.text)}\n concord: ${JSON.stringify(oneText)}`);
for (const B of batches) {
  const ps = promptsOf(B);
  const [mine, theirs] = [await concord(ps, GREEDY), await transformersJs(ps, GREEDY)];
  for (let b = 0; b < B; b++) {
    if (mine.ids[b].join() !== theirs.ids[b].join()) throw new Error(`batch ${B} row ${b}: greedy tokens differ\n concord:         ${mine.ids[b]}\n transformers.js: ${theirs.ids[b]}`);
    if (b < 4 && B > 1 && mine.ids[b].join() !== (await concord([ps[b]], GREEDY)).ids[0].join()) throw new Error(`batch ${B} row ${b}: concord's batched greedy tokens differ from the prompt alone`);
  }
  for (const r of [...(await concord(ps, SAMPLED)).ids, ...(await transformersJs(ps, SAMPLED)).ids]) if (r.length !== newTokens) throw new Error(`sampled run gave ${r.length} tokens, not ${newTokens}`);
}

const median = (xs: number[]): number => [...xs].sort((x, y) => x - y)[Math.floor(xs.length / 2)];
const series = new Map<string, number[]>();
const push = (k: string, v: number): void => { series.set(k, [...(series.get(k) ?? []), v]); };
const load0 = loadavg();
for (let r = 0; r < reps; r++) {
  push('runc_tok_s', runC(bin).tokS);
  for (const B of batches) {
    const ps = promptsOf(B), gen = B * newTokens;
    const cg = await concord(ps, GREEDY);
    if (B === 1) push('concord_b1_positions_s', (ids.length + newTokens - 1) / cg.seconds);
    push(`concord_greedy_b${B}_tok_s`, gen / cg.seconds);
    push(`transformersjs_greedy_b${B}_tok_s`, gen / (await transformersJs(ps, GREEDY)).seconds);
    if (a['no-sampled']) continue;
    push(`concord_sampled_b${B}_tok_s`, gen / (await concord(ps, SAMPLED)).seconds);
    push(`transformersjs_sampled_b${B}_tok_s`, gen / (await transformersJs(ps, SAMPLED)).seconds);
  }
}
const load1 = loadavg();
const fig = Object.fromEntries([...series].map(([k, v]) => [k, +median(v).toFixed(2)]));
const runc = fig.runc_tok_s;
const bestBatched = Math.max(...batches.filter((B) => B > 1).map((B) => fig[`concord_greedy_b${B}_tok_s`]));
const vsPeer = Object.fromEntries(batches.flatMap((B) => ['greedy', ...(a['no-sampled'] ? [] : ['sampled'])].map((m) => [`vs_transformersjs_${m}_b${B}`, +(fig[`concord_${m}_b${B}_tok_s`] / fig[`transformersjs_${m}_b${B}_tok_s`]).toFixed(2)])));
const out = {
  date: new Date().toISOString(), model: 'stories15M', concord: lm.deviceName, peer: `${GENERATE_PEER_NAME} ${peer.version}`, runc_omp_threads: ompThreads,
  prompt, prompt_tokens: ids.length, new_tokens: newTokens, batches, reps, statistic: 'median', validated: true,
  load_avg_before: load0.map((x) => +x.toFixed(1)), load_avg_after: load1.map((x) => +x.toFixed(1)),
  ...fig,
  ratio_b1_vs_runc: +(fig.concord_b1_positions_s / runc).toFixed(3), ratio_best_batched_vs_runc: +(bestBatched / runc).toFixed(3), ...vsPeer,
  raw: Object.fromEntries([...series].map(([k, v]) => [k, v.map((x) => +x.toFixed(1))])),
};
if (a.json) console.log(JSON.stringify(out, null, 2));
else for (const [k, v] of Object.entries(out)) console.log(`${k.padEnd(36)} ${typeof v === 'object' ? JSON.stringify(v) : v}`);
await peer.dispose();
lm.dispose();
