// `npm run build && node dist/bench/quant-cpu.js [--limit N] [--rounds R] [--data DIR]`: pairs/s of stories15M
// on onnxruntime (CPU) with its linears as GGUF Q8_0 / Q4_0 blocks on com.microsoft MatMulNBits,
// against the f32 path (the llama2c checkpoint, f32 Gemm) in the same run, on the first N pairs of
// the self-instruct data (../shared/data). Rows:
//   f32            stories15M.bin, f32 Gemm (the baseline)
//   q8_0 / q4_0    GGUF written by ggufExport, MatMulNBits accuracy_level 0 (f32 activations)
//   … acc4         the same, accuracy_level 4 (int8 activations in MLAS: faster, not exact)
//   … f32 gemm     the same GGUF dequantized at load, f32 Gemm (what concord did before)
// Validated before timing: every quantized row's four per-pair means (fwd, rev, y, x log-probs)
// against the TypeScript twin on the same dequantized weights (TOL; acc4 rows report their
// deviation and pass at the looser ACC4_TOL), and the f32 row against the twin of stories15M.
// Rounds alternate the contestants (A B C … A B C …) so drift on this shared machine hits all.

import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { ggufExport, type QuantType } from '../src/formats/gguf-export.js';
import { writeGguf } from '../src/formats/gguf-write.js';
import { loadWeights, type LoadedModel } from '../src/models/load.js';
import { modelFromWeights, type ModelOptions } from '../src/models/model.js';
import { createScorerFromModels, type PairScores } from '../src/pipeline/index.js';
import { packageRoot } from '../src/env.js';

const TOL = 1e-3, ACC4_TOL = 5e-2;
const KEYS = ['fwd_logp', 'rev_logp', 'y_logp', 'x_logp'] as const;

interface Row { name: string; weights: LoadedModel; opts: Partial<ModelOptions>; tol: number; twinOf: LoadedModel }

function pairs(dataDir: string, limit: number): { instruction: string; output: string }[] {
  const file = join(dataDir, 'self-instruct-user-oriented.jsonl');
  const lines = readFileSync(file, 'utf8').split('\n').filter(Boolean).slice(0, limit);
  return lines.map((l) => { const r = JSON.parse(l); return { instruction: `${r.instruction}\n${r.input ?? ''}`.trim(), output: r.output }; });
}

async function scoreAll(w: LoadedModel, opts: Partial<ModelOptions>, data: unknown[]): Promise<{ scores: PairScores[]; s: number; device: string }> {
  const lm = await modelFromWeights(w, w.tokenizer, { device: 'cpu', ...opts });
  try {
    const scorer = createScorerFromModels({ model: lm, cosine: 'off' });
    const t0 = performance.now();
    const scores: PairScores[] = [];
    for await (const r of scorer.score(data)) {
      if (!r.scores) throw new Error(`pair ${r.index}: ${r.error ?? 'no scores'}`);
      scores.push(r.scores);
    }
    return { scores, s: (performance.now() - t0) / 1000, device: lm.deviceName };
  } finally {
    await lm.dispose();
  }
}

function maxDiff(a: PairScores[], b: PairScores[]): number {
  let m = 0;
  a.forEach((p, i) => KEYS.forEach((k) => { m = Math.max(m, Math.abs(p[k] - b[i][k])); }));
  return m;
}

async function main(): Promise<void> {
  const { values } = parseArgs({ options: { limit: { type: 'string', default: '24' }, rounds: { type: 'string', default: '2' }, check: { type: 'string', default: '6' }, data: { type: 'string', default: join(packageRoot(), '..', 'shared', 'data') } } });
  const data = pairs(values.data, Number(values.limit));
  const dir = mkdtempSync(join(tmpdir(), 'concord-quant-bench-'));
  try {
    const f32 = await loadWeights('stories15M');
    const rows: Row[] = [{ name: 'f32', weights: f32, opts: {}, tol: TOL, twinOf: f32 }];
    for (const q of ['q8_0', 'q4_0'] as QuantType[]) {
      const file = join(dir, `stories15M.${q}.gguf`);
      const { kvs, tensors } = ggufExport(f32, q);
      writeGguf(file, kvs, tensors);
      const w = await loadWeights(file);
      rows.push({ name: q, weights: w, opts: {}, tol: TOL, twinOf: w });
      rows.push({ name: `${q} acc4`, weights: w, opts: { ortQuant: { accuracyLevel: 4 } }, tol: ACC4_TOL, twinOf: w });
      rows.push({ name: `${q} f32 gemm`, weights: w, opts: { ortQuant: { quantized: false } }, tol: TOL, twinOf: w });
    }
    // validate first: each row against the twin on the same (dequantized) weights
    const check = data.slice(0, Number(values.check));
    const twins = new Map<LoadedModel, PairScores[]>();
    const valid = new Map<string, string>();
    for (const r of rows) {
      if (!twins.has(r.twinOf)) twins.set(r.twinOf, (await scoreAll(r.twinOf, { cpuBackend: 'twin' }, check)).scores);
      const got = await scoreAll(r.weights, r.opts, check);
      const d = maxDiff(got.scores, twins.get(r.twinOf)!);
      valid.set(r.name, `${d <= r.tol ? 'valid' : 'INVALID'} (max |Δ| vs twin ${d.toExponential(2)} nats/token on ${check.length} pairs; ${got.device})`);
    }
    const times = new Map<string, number[]>();
    for (let round = 0; round < Number(values.rounds); round++) {
      for (const r of rows) {
        const t = await scoreAll(r.weights, r.opts, data);
        (times.get(r.name) ?? times.set(r.name, []).get(r.name)!).push(t.s);
      }
    }
    const best = (n: string): number => Math.min(...times.get(n)!);
    console.log(`quant-cpu: stories15M, ${data.length} pairs of self-instruct-user-oriented, best of ${values.rounds} rounds; load ${loadavg()[0].toFixed(2)}; ${new Date().toISOString()}`);
    console.log('| weights | pairs/s | × f32 | check |');
    console.log('|---|---|---|---|');
    for (const r of rows) {
      console.log(`| ${r.name} | ${(data.length / best(r.name)).toFixed(2)} | ${(best('f32') / best(r.name)).toFixed(2)} | ${valid.get(r.name)} |`);
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

await main();
