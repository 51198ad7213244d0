// Decode throughput on stories15M: concord's decoder (the model's createDecoder; today the
// TypeScript twin) at batch 1 and batched (aggregate tokens/s), against llama2.c's run.c built
// here with `gcc -Ofast -fopenmp -march=native` — the same prompt, greedy, the outputs compared
// before anything is timed. run.c is not part of concord: pass its source with --run-c (e.g. a copy
// of github.com/karpathy/llama2.c's run.c in a temporary folder); it is compiled into a temporary
// folder. The peers run interleaved in the same process run (--reps rounds, best of each).
//
//   npm run build && node dist/bench/decode.js --run-c /tmp/llama2c/run.c [--steps 64] [--batch 8] [--reps 2] [--omp-threads 1] [--json]
//
// Figures: run.c's own "achieved tok/s" (positions after the first, prompt positions included,
// one token per forward); concord: positions per second of the whole greedy run (prompt chunk +
// generated tokens, the first position excluded as run.c does) at batch 1, and generated tokens
// per second summed over the batch.

import { spawnSync } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { generate } from '../src/generate/engine.js';
import { GREEDY } from '../src/generate/types.js';
import { loadModel } from '../src/models/index.js';
import { encodeStandalone } from '../src/pipeline/templates.js';

const ROOT = resolve(import.meta.dirname, '..', '..');

const { values: a } = parseArgs({
  options: {
    'run-c': { type: 'string' }, model: { type: 'string' }, prompt: { type: 'string' }, steps: { type: 'string' },
    batch: { type: 'string' }, reps: { type: 'string' }, 'omp-threads': { type: 'string' }, device: { type: 'string' }, json: { type: 'boolean' },
  },
});
if (!a['run-c']) throw new Error('--run-c PATH (llama2.c run.c) is required');
const modelDir = resolve(a.model ?? join(ROOT, 'models', 'stories15M'));
const prompt = a.prompt ?? 'Once upon a time, there was a little dog named Max. He';
const steps = Number(a.steps ?? 64);
const batch = Number(a.batch ?? 8);
const reps = Number(a.reps ?? 2);
// OpenMP threads for run.c (default 1: on a shared, loaded machine its spinning threads collapse; say which in the figures).
const ompThreads = Number(a['omp-threads'] ?? 1);

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
const lm = await loadModel(modelDir, { device: (a.device as 'cpu-twin' | undefined) ?? 'cpu-twin', threads: 1 });
if (!lm.createDecoder) throw new Error(`${lm.deviceName} cannot decode`);
const tok = lm.tokenizer;
const ids = [tok.bosId!, ...encodeStandalone(tok, prompt)];
// run.c runs `steps` positions: the prompt's, then one per generated token until position steps-1.
const newTokens = steps - ids.length + 1;
const req = { prompt: ids, sampling: GREEDY, maxNewTokens: newTokens, stopIds: [] as number[] };

async function concord(b: number): Promise<{ text: string; seconds: number; generated: number }> {
  const dec = await lm.createDecoder!({ slots: b, maxLen: steps + 1 });
  const t0 = performance.now();
  const { results } = await generate(dec, Array.from({ length: b }, () => req), { decode: (x) => tok.decode(x) });
  const seconds = (performance.now() - t0) / 1000;
  dec.dispose();
  for (const r of results) if (r.text !== results[0].text) throw new Error('batched outputs differ from each other');
  return { text: tok.decode([...ids.slice(1), ...results[0].ids]), seconds, generated: results.reduce((s, r) => s + r.generated_tokens, 0) };
}

// Validate before timing: the same greedy text from both.
const ref = runC(bin);
const mine = await concord(1);
if (mine.text !== ref.text) {
  console.error(`outputs differ:\n run.c:   ${JSON.stringify(ref.text)}\n concord: ${JSON.stringify(mine.text)}`);
  process.exit(1);
}
const batched = await concord(batch);
if (batched.text !== ref.text) throw new Error('batched greedy text differs from run.c');

const best = { runc: 0, b1: 0, bN: 0 };
for (let r = 0; r < reps; r++) {
  best.runc = Math.max(best.runc, runC(bin).tokS);
  const one = await concord(1);
  best.b1 = Math.max(best.b1, (ids.length + one.generated - 1) / one.seconds);
  const many = await concord(batch);
  best.bN = Math.max(best.bN, many.generated / many.seconds);
}
const out = {
  model: 'stories15M', device: lm.deviceName, prompt, steps, prompt_tokens: ids.length, generated_tokens: newTokens, validated: true,
  runc_tok_s: +best.runc.toFixed(2), concord_batch1_tok_s: +best.b1.toFixed(2), [`concord_batch${batch}_aggregate_tok_s`]: +best.bN.toFixed(2),
  ratio_batch1: +(best.b1 / best.runc).toFixed(3), [`ratio_batch${batch}`]: +(best.bN / best.runc).toFixed(3), reps, runc_omp_threads: ompThreads,
};
if (a.json) console.log(JSON.stringify(out, null, 2));
else for (const [k, v] of Object.entries(out)) console.log(`${k.padEnd(34)} ${v}`);
lm.dispose();
