// `npm run build && node dist/bench/quant-decode.js [--batches 1,8] [--steps 100] [--rounds 3]`: greedy
// decode tokens/s of stories15M on the onnxruntime decoder (CPU) with its weights as GGUF Q8_0 /
// Q4_0, against the f32 checkpoint in the same run. Rows:
//   f32             stories15M.bin (the baseline)
//   q8_0 / q4_0     the GGUF (ggufExport), the decoder's default: weights dequantized at load, f32 Gemm
//   … nbits acc0    MatMulNBits, accuracy_level 0 (f32 activations): what the decoder used before
//   … nbits acc4    MatMulNBits, accuracy_level 4 (int8 activations in MLAS: faster, not exact)
// Validated before timing: every exact row's greedy ids equal the TypeScript twin decoder's on the
// same weights (INVALID and exit 1 otherwise); acc4 rows report how many ids differ. Rounds
// alternate the rows (A B C … A B C …) so drift on a shared machine hits all; medians reported.

import { mkdtempSync, rmSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { ggufExport, type QuantType } from '../src/formats/gguf-export.js';
import { writeGguf } from '../src/formats/gguf-write.js';
import { GREEDY } from '../src/generate/types.js';
import { loadWeights, type LoadedModel } from '../src/models/load.js';
import { modelFromWeights, type ModelOptions } from '../src/models/model.js';
import { packageRoot } from '../src/env.js';

const a = parseArgs({ options: { batches: { type: 'string' }, steps: { type: 'string' }, rounds: { type: 'string' } } }).values;
const batches = (a.batches ?? '1,8').split(',').map(Number);
const steps = Number(a.steps ?? 100), rounds = Number(a.rounds ?? 3);
const PROMPT = [1, 9038, 2501, 263, 931]; // BOS "Once upon a time"

interface Row { name: string; weights: LoadedModel; opts: Partial<ModelOptions>; exact: boolean }

/** Greedy ids of slot 0 and the decode tokens/s (all slots), prompt prefill excluded. */
async function decode(w: LoadedModel, opts: Partial<ModelOptions>, batch: number): Promise<{ ids: number[]; tps: number }> {
  const lm = await modelFromWeights(w, w.tokenizer, opts as ModelOptions);
  const dec = await lm.createDecoder!({ slots: batch, maxLen: PROMPT.length + steps + 1 });
  try {
    let ids = await dec.step(Array.from({ length: batch }, (_, s) => ({ slot: s, ids: PROMPT, sampling: GREEDY, step: 0 })));
    const out = [ids[0]];
    const t0 = performance.now();
    for (let i = 1; i <= steps; i++) {
      ids = await dec.step(Array.from({ length: batch }, (_, s) => ({ slot: s, ids: [ids[s]], sampling: GREEDY, step: i })));
      out.push(ids[0]);
    }
    return { ids: out, tps: (steps * batch) / ((performance.now() - t0) / 1000) };
  } finally {
    dec.dispose();
    await lm.dispose();
  }
}

const dir = mkdtempSync(join(tmpdir(), 'concord-quant-decode-'));
try {
  const f32 = await loadWeights(join(packageRoot(), 'models', 'stories15M'));
  const rows: Row[] = [{ name: 'f32', weights: f32, opts: { device: 'cpu' }, exact: true }];
  const twins = new Map<string, number[]>();
  for (const q of ['q8_0', 'q4_0'] as QuantType[]) {
    const file = join(dir, `stories15M.${q}.gguf`);
    const e = ggufExport(f32, q);
    writeGguf(file, e.kvs, e.tensors);
    const w = await loadWeights(file);
    rows.push({ name: q, weights: w, opts: { device: 'cpu' }, exact: true });
    rows.push({ name: `${q} nbits acc0`, weights: w, opts: { device: 'cpu', ortQuant: { accuracyLevel: 0, quantized: true } }, exact: true });
    rows.push({ name: `${q} nbits acc4`, weights: w, opts: { device: 'cpu', ortQuant: { accuracyLevel: 4 } }, exact: false });
  }
  // validate: the twin decoder on the same weights, batch 1
  for (const r of rows) {
    const key = r.name.split(' ')[0];
    if (!twins.has(key)) twins.set(key, (await decode(r.weights, { device: 'cpu', cpuBackend: 'twin' }, 1)).ids);
    const got = (await decode(r.weights, r.opts, 1)).ids, want = twins.get(key)!;
    const diff = got.filter((t, i) => t !== want[i]).length;
    console.log(`${r.name}: ${diff} of ${want.length} greedy ids differ from the twin's${r.exact ? '' : ' (not exact: reported)'}`);
    if (r.exact && diff) { console.error(`INVALID: ${r.name}`); process.exit(1); }
  }
  console.log(`load average ${loadavg().map((x) => x.toFixed(1)).join(' ')}; ${steps} steps, ${rounds} rounds, medians (tok/s)`);
  console.log(`| row | ${batches.map((b) => `batch ${b}`).join(' | ')} | × f32 |`);
  console.log(`|---|${batches.map(() => '---|').join('')}---|`);
  const med = (x: number[]) => [...x].sort((p, q) => p - q)[Math.floor(x.length / 2)];
  const tps = new Map<string, number[][]>(rows.map((r) => [r.name, batches.map(() => [])]));
  for (let k = 0; k < rounds; k++) {
    for (const [bi, b] of batches.entries()) for (const r of rows) tps.get(r.name)![bi].push((await decode(r.weights, r.opts, b)).tps);
  }
  const base = tps.get('f32')!.map(med);
  for (const r of rows) {
    const m = tps.get(r.name)!.map(med);
    console.log(`| ${r.name} | ${m.map((v) => v.toFixed(1)).join(' | ')} | ${m.map((v, i) => `${(v / base[i]).toFixed(2)}×`).join(' / ')} |`);
  }
  console.log(`load average ${loadavg().map((x) => x.toFixed(1)).join(' ')}`);
} finally {
  rmSync(dir, { recursive: true, force: true });
}
