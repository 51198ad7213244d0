// `npm run build && node dist/bench/families.js [--limit N] [--twin-limit M] [--width K] [--layers L] [--vocab V] [--markdown]`:
// CPU-path pairs/s per model family, onnxruntime (src/models/ort/) against the TypeScript twin,
// in one process, one family after the other, on the repository's data/sample-pairs.jsonl.
//
// Models: each Hugging Face fixture family (tests/fixtures/hf/<family>: its config and features —
// windows, soft-caps, q/k norms, RoPE scaling, partial rotary, NoPE layers, post norms, GeGLU…)
// widened to a stories15M-sized model: heads, KV heads, width and MLP width × K (head_dim, and so
// the RoPE tables, kept), L layers (per-layer windows and RoPE flags repeated cyclically), a V-entry
// vocabulary (the tokenizer's ids are its first entries), random weights from a fixed seed. Plus
// stories15M itself (real weights) as the first row. Defaults: K = 4 (width 256), L = 6, V = 32000.
//
// Each family: both backends score the first WARMUP pairs (the first run), and the four per-token
// means (fwd, rev, y, x log-probs) must agree within TOL nats/token, or the row is INVALID; then
// onnxruntime scores `--limit` pairs and the twin `--twin-limit` (it is ~20× slower), each timed
// alone. Figures: pairs/s of each, the ratio, the load average (2 shared cores are easily disturbed).

import { existsSync, readFileSync } from 'node:fs';
import { loadavg } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { loadWeights } from '../src/models/load.js';
import { modelFromWeights } from '../src/models/model.js';
import type { LanguageModel } from '../src/models/lm.js';
import type { LoadedWeights, ModelConfig, TensorMap } from '../src/models/types.js';
import { weightDims } from '../src/models/ort/graph.js';
import { createScorer } from '../src/pipeline/create.js';
import type { PairScores } from '../src/pipeline/scorer.js';

const FAMILIES = ['llama3', 'smollm2', 'qwen3', 'mistral', 'ministral', 'smollm3', 'phi3', 'gemma2', 'gemma3'];
const WARMUP = 2;
const TOL = 1e-4;
const ROOT = process.cwd();

/** A seeded uniform in [-1, 1) (mulberry32). */
function uniform(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = Math.imul(a ^ (a >>> 15), 1 | a);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return (((t ^ (t >>> 14)) >>> 0) / 2 ** 31) - 1;
  };
}

const cyclic = <T>(xs: T[] | undefined, n: number): T[] | undefined => (xs ? Array.from({ length: n }, (_, i) => xs[i % xs.length]) : undefined);

/** The family's config and tensor names at width × k, `layers` layers, `vocab` entries; random weights. */
export function widen(w: LoadedWeights, k: number, layers: number, vocab: number, seed = 1): LoadedWeights {
  const c = w.config;
  const config: ModelConfig = {
    ...c, name: `${c.name} ×${k}`, nHeads: c.nHeads * k, nKvHeads: c.nKvHeads * k, dim: c.dim * k, hiddenDim: c.hiddenDim * k,
    nLayers: layers, vocabSize: Math.max(vocab, c.vocabSize), layerWindows: cyclic(c.layerWindows, layers), layerRope: cyclic(c.layerRope, layers),
    maxSeqLen: Math.min(c.maxSeqLen, 4096),
  };
  const names = new Set<string>();
  for (const n of w.tensors.keys()) {
    const m = /^layers\.0\.(.+)$/.exec(n);
    if (m) for (let l = 0; l < layers; l++) names.add(`layers.${l}.${m[1]}`);
    else if (!n.startsWith('layers.')) names.add(n);
  }
  const r = uniform(seed), tensors: TensorMap = new Map();
  const off = c.normWeightOffset ?? 0;
  for (const n of names) {
    if (n === 'lm_head' && c.tiedEmbeddings) continue;
    const dims = weightDims(config, n), t = new Float32Array(dims.reduce((a, b) => a * b, 1));
    const isNorm = /norm\.weight$/.test(n), isBias = dims.length === 1 && !isNorm;
    const scale = isNorm ? 0.1 : isBias ? 0.02 : n === 'tok_emb' || n === 'pos_emb' ? 0.5 : Math.sqrt(3 / dims[1]);
    for (let i = 0; i < t.length; i++) t[i] = (isNorm && !off ? 1 : 0) + scale * r();
    tensors.set(n, t);
  }
  if (c.tiedEmbeddings) tensors.set('lm_head', tensors.get('tok_emb')!);
  return { config, tensors };
}

function figures(s: PairScores): number[] {
  return [s.fwd_logp, s.rev_logp, s.y_logp, s.x_logp];
}

async function scoreAll(lm: LanguageModel, records: unknown[]): Promise<{ scores: number[][]; ms: number }> {
  const scorer = await createScorer({ model: lm, cosine: 'off' });
  const scores: number[][] = [];
  const t = performance.now();
  for await (const r of scorer.score(records)) {
    if (!r.scores) throw new Error(`${r.loc}: ${r.error}`);
    scores.push(figures(r.scores));
  }
  return { scores, ms: performance.now() - t };
}

interface Row { family: string; config: string; ortPairsS: number; twinPairsS: number; ratio: number; maxDiff: number; valid: boolean; load: string }

async function benchFamily(family: string, args: { limit: number; twinLimit: number; width: number; layers: number; vocab: number }, records: unknown[]): Promise<Row> {
  const loaded = await loadWeights(family === 'stories15M' ? 'stories15M' : join(ROOT, 'tests', 'fixtures', 'hf', family));
  const w = family === 'stories15M' ? loaded : widen(loaded, args.width, args.layers, args.vocab);
  const c = w.config;
  const ort = await modelFromWeights(w, loaded.tokenizer, { device: 'cpu', cpuBackend: 'onnxruntime' });
  const twin = await modelFromWeights(w, loaded.tokenizer, { device: 'cpu', cpuBackend: 'twin' });
  if (!/onnxruntime/.test(ort.deviceName)) throw new Error(`${family}: did not get onnxruntime: ${ort.deviceName} (${ort.deviceReason})`);
  // Validate before timing: the first-run pairs on both backends.
  const [a, b] = [await scoreAll(ort, records.slice(0, WARMUP)), await scoreAll(twin, records.slice(0, WARMUP))];
  let maxDiff = 0;
  a.scores.forEach((s, i) => s.forEach((x, j) => { maxDiff = Math.max(maxDiff, Math.abs(x - b.scores[i][j])); }));
  const valid = maxDiff <= TOL;
  console.error(`  ${family}: first run agrees to ${maxDiff.toExponential(1)} nats/token${valid ? '; timing' : ' — INVALID, timing anyway'}`);
  const load0 = loadavg()[0];
  const o = await scoreAll(ort, records.slice(0, args.limit));
  const t = await scoreAll(twin, records.slice(0, args.twinLimit));
  const ortPairsS = o.scores.length / (o.ms / 1000), twinPairsS = t.scores.length / (t.ms / 1000);
  ort.dispose();
  twin.dispose();
  return {
    family, config: `d${c.dim} L${c.nLayers} H${c.nHeads}/${c.nKvHeads} hd${c.headDim} V${c.vocabSize}`,
    ortPairsS, twinPairsS, ratio: ortPairsS / twinPairsS, maxDiff, valid, load: `${load0.toFixed(1)}–${loadavg()[0].toFixed(1)}`,
  };
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      limit: { type: 'string', default: '60' }, 'twin-limit': { type: 'string', default: '8' }, width: { type: 'string', default: '4' },
      layers: { type: 'string', default: '6' }, vocab: { type: 'string', default: '32000' }, families: { type: 'string' }, markdown: { type: 'boolean', default: false },
    },
  });
  const args = { limit: Number(values.limit), twinLimit: Number(values['twin-limit']), width: Number(values.width), layers: Number(values.layers), vocab: Number(values.vocab) };
  const data = join(ROOT, 'data', 'sample-pairs.jsonl');
  if (!existsSync(data)) throw new Error(`${data}: not found (run from the repository root)`);
  const records = readFileSync(data, 'utf8').split('\n').filter((l) => l.trim()).map((l) => JSON.parse(l) as unknown);
  const families = values.families ? values.families.split(',') : ['stories15M', ...FAMILIES];
  const rows: Row[] = [];
  for (const f of families) rows.push(await benchFamily(f, args, records));
  const g = (x: number) => (x >= 10 ? x.toFixed(1) : x.toPrecision(3));
  console.log(`pairs from data/sample-pairs.jsonl: onnxruntime ${Math.min(args.limit, records.length)}, twin ${Math.min(args.twinLimit, records.length)}; widened families ×${args.width}, ${args.layers} layers, V ${args.vocab}; ${new Date().toISOString().slice(0, 10)}`);
  console.log(values.markdown ? '| family | model | onnxruntime pairs/s | twin pairs/s | ratio | first-run max \\|Δ\\| | valid | load |\n|---|---|---|---|---|---|---|---|' : 'family model ort twin ratio maxdiff valid load');
  for (const r of rows) {
    const cells = [r.family, r.config, g(r.ortPairsS), g(r.twinPairsS), `${g(r.ratio)}×`, r.maxDiff.toExponential(1), r.valid ? 'valid' : 'INVALID', r.load];
    console.log(values.markdown ? `| ${cells.join(' | ')} |` : cells.join('  '));
  }
}

main().catch((e) => {
  console.error((e as Error).stack ?? e);
  process.exit(1);
});
