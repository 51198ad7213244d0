// `npm run bench -- [--markdown] [--limit N] [--devices webgpu,cpu] [--no-peer]`: end-to-end
// pairs/s of concord against the peer a JavaScript user would pick (bench/peer-transformers.ts:
// transformers.js on onnxruntime-node CPU, one forward pass per likelihood, batch 1), on real
// instruction data, same model (stories15M) and the same token ids.
//
// One run, one child process per contestant (so peak RSS and the GPU device belong to one of them
// only), in this order: the peer, concord `webgpu`, concord `cpu` (onnxruntime), concord `cpu-twin`
// (the TypeScript twin), the peer again. Each child
//   1. loads its model (timed: `load`),
//   2. scores the first WARMUP pairs once (timed separately: `first run`, which holds the WGSL
//      pipeline compilation and first uploads),
//   3. scores the first N pairs of each data set (timed: pairs/s, tokens/s).
// Then the parent validates before it reports: every pair's four per-token means (fwd, rev, y, x
// log-probs) from each concord backend must agree with the peer's within TOL nats/token, and the
// token counts must be equal; a row that fails is marked INVALID, loudly.
//
// Data: ../shared/data relative to the project root (see /work/shared/data/README.md), read in
// place and never copied. Without it the benchmark says so and measures nothing.
// Model for the peer: models/stories15M-onnx from scripts/export_onnx.py (python3-torch); when it is
// missing the parent runs the export, and when that cannot run the peer row says why.
//
// Figures: pairs/s; pair tok/s = (x + y tokens of the scored pairs) / s, the same numerator for
// every contestant; LM tok/s = tokens the model actually computed / s (concord runs 2 passes per
// pair, the peer 4); padding efficiency = real / (batch × padded length) tokens of concord's
// batches (1 for the peer, which never pads); peak RSS of the child; GPU bytes =
// GpuRuntime.stats.peakBytesAllocated (weights + pooled activations). The load average is recorded
// with every figure: this machine is shared and 2 cores are easily disturbed.

import { execFileSync, spawn } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, loadavg, release, tmpdir, totalmem } from 'node:os';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import type { LanguageModel } from '../src/models/lm.js';
import type { PairFigures } from './peer-transformers.js';
import { packageRoot, settings } from '../src/env.js';

// ---------------------------------------------------------------------------------------------
// options

const TOL = 1e-3; // nats per token, on each of the four per-pair means
const WARMUP = 1;
const DEFAULT_LIMIT = 16;
// A software Vulkan driver (SwiftShader, lavapipe) runs the WGSL on the CPU at well under
// 1 GFLOP/s here: it scores only the first few pairs, and its ratio is taken against the peer's
// time on those same pairs.
const DEFAULT_SOFTWARE_GPU_LIMIT = 2;

export const DATASETS = [
  { name: 'self-instruct-user-oriented', file: 'self-instruct-user-oriented.jsonl', format: 'jsonl' as const },
  { name: 'alpaca-cherry-5pct', file: 'alpaca-cherry-5pct.json', format: 'json-array' as const },
];

type Device = 'webgpu' | 'cpu' | 'cpu-twin';
type Contestant = 'peer' | Device | 'peer-webgpu' | 'peer-webgpu-batched';
const WEBGPU_PEERS = ['peer-webgpu', 'peer-webgpu-batched'] as const;
const isWebgpuPeer = (c: Contestant) => c === 'peer-webgpu' || c === 'peer-webgpu-batched';
/** Padded tokens per batch of the batched transformers.js-webgpu peer. */
const WEBGPU_PEER_BUDGET = 2048;

interface Args {
  markdown: boolean;
  json: boolean;
  limit: number;
  softwareGpuLimit: number;
  devices: Device[];
  peer: boolean;
  /** transformers.js on onnxruntime-node's WebGPU EP beside concord webgpu (batch 1 and batched). */
  webgpuPeer: boolean;
  dataDir: string;
  out: string | null;
  report: string | null;
  worker: Contestant | null;
  resultFile: string | null;
  peerResult: string | null;
}

const ROOT = packageRoot();

function parse(argv: string[]): Args {
  const { values } = parseArgs({
    args: argv,
    options: {
      markdown: { type: 'boolean', default: false },
      json: { type: 'boolean', default: false },
      limit: { type: 'string', default: String(DEFAULT_LIMIT) },
      'software-gpu-limit': { type: 'string', default: String(DEFAULT_SOFTWARE_GPU_LIMIT) },
      devices: { type: 'string', default: 'webgpu,cpu,cpu-twin' },
      'no-peer': { type: 'boolean', default: false },
      'no-webgpu-peer': { type: 'boolean', default: false },
      data: { type: 'string', default: join(ROOT, '..', 'shared', 'data') },
      out: { type: 'string' },
      report: { type: 'string' },
      worker: { type: 'string' },
      'result-file': { type: 'string' },
      'peer-result': { type: 'string' },
      help: { type: 'boolean', default: false },
    },
  });
  if (values.help) {
    console.log(`npm run bench -- [--markdown] [--json] [--limit N] [--devices webgpu,cpu] [--no-peer] [--data DIR] [--out DIR]
  npm run bench -- --report bench/results/e2e-<date>.json [--markdown]   re-print a saved run
  --limit N      first N pairs of each data set (default ${DEFAULT_LIMIT})
  --software-gpu-limit M   webgpu on a software adapter (SwiftShader, lavapipe): first M pairs only (default ${DEFAULT_SOFTWARE_GPU_LIMIT})
  --devices      concord backends to run, in order (default webgpu,cpu,cpu-twin; cpu = onnxruntime, cpu-twin = the TypeScript twin)
  --no-webgpu-peer   skip transformers.js-webgpu (onnxruntime-node's WebGPU EP, batch 1 and batched), which runs beside concord webgpu
  --data DIR     the benchmark data (default ../shared/data from the project root)
  --out DIR      where results go (default bench/results; '-' writes nothing)`);
    process.exit(0);
  }
  const limit = Number(values.limit);
  if (!Number.isInteger(limit) || limit < 1) throw new Error(`--limit must be a positive integer (got ${values.limit})`);
  const softwareGpuLimit = Number(values['software-gpu-limit']);
  if (!Number.isInteger(softwareGpuLimit) || softwareGpuLimit < 1) throw new Error(`--software-gpu-limit must be a positive integer (got ${values['software-gpu-limit']})`);
  const devices = values.devices.split(',').map((s) => s.trim()).filter(Boolean);
  for (const d of devices) if (d !== 'webgpu' && d !== 'cpu' && d !== 'cpu-twin') throw new Error(`--devices: unknown device '${d}' (webgpu, cpu, cpu-twin)`);
  const worker = values.worker ?? null;
  if (worker !== null && !['peer', 'webgpu', 'cpu', 'cpu-twin', ...WEBGPU_PEERS].includes(worker)) throw new Error(`--worker: unknown contestant '${worker}'`);
  return {
    markdown: values.markdown,
    json: values.json,
    limit,
    softwareGpuLimit,
    devices: devices as Device[],
    peer: !values['no-peer'],
    webgpuPeer: !values['no-webgpu-peer'],
    dataDir: values.data,
    out: values.out === '-' ? null : (values.out ?? join(ROOT, 'bench', 'results')),
    report: values.report ?? null,
    worker: worker as Contestant | null,
    resultFile: values['result-file'] ?? null,
    peerResult: values['peer-result'] ?? null,
  };
}

// ---------------------------------------------------------------------------------------------
// data

function readRecords(dataDir: string, ds: (typeof DATASETS)[number], limit: number): Record<string, unknown>[] {
  const path = join(dataDir, ds.file);
  const text = readFileSync(path, 'utf8');
  if (ds.format === 'jsonl') {
    const out: Record<string, unknown>[] = [];
    for (const line of text.split('\n')) {
      if (out.length >= limit) break;
      if (line.trim() !== '') out.push(JSON.parse(line) as Record<string, unknown>);
    }
    return out;
  }
  return (JSON.parse(text) as Record<string, unknown>[]).slice(0, limit);
}

// ---------------------------------------------------------------------------------------------
// worker side: one contestant, one process


export interface RunFigures {
  dataset: string;
  pairs: number;
  ms: number;
  /** CPU time of the whole process (all its threads: ORT's pool, SwiftShader's, worker threads) during the run. */
  cpuMs: number;
  pairTokens: number;
  lmTokens: number;
  paddingEfficiency: number;
  batches: number;
  truncated: number;
  loadavg: number[];
  scores: PairFigures[];
  /** The peer only: wall-clock ms of each pair (it scores one pair at a time). */
  pairMs?: number[];
}

export interface WorkerResult {
  contestant: Contestant;
  name: string;
  /** The peer runs twice by default, first and last: 'again' marks the second run. */
  round?: 'again';
  device: string;
  version: string;
  loadMs: number;
  firstRunMs: number;
  firstRunPairs: number;
  /** concord: its first-run pairs against the peer's, checked before the timed runs. */
  prevalidation?: { pairs: number; maxAbsDiff: number; ok: boolean } | null;
  /** concord webgpu: the scheduler's padding efficiency on the whole data sets (packing only, no model run). */
  packing?: { dataset: string; pairs: number; paddingEfficiency: number; batches: number }[];
  runs: RunFigures[];
  peakRssBytes: number;
  gpuPeakBytes: number | null;
  gpuWeightBytes: number | null;
  notes: string[];
  error?: string;
}

const now = () => performance.now();

async function runConcord(device: Device, args: Args): Promise<WorkerResult> {
  const { loadModel } = await import('../src/models/index.js');
  const { createScorer } = await import('../src/pipeline/create.js');
  const notes: string[] = [];
  let t = now();
  const model = await loadModel('stories15M', { device });
  const loadMs = now() - t;
  if (model.backend !== (device === 'webgpu' ? 'webgpu' : 'cpu')) throw new Error(`asked for --device ${device}, got ${model.backend} (${model.deviceName})`);
  if (device === 'cpu' && !/onnxruntime/.test(model.deviceName)) throw new Error(`--device cpu did not get onnxruntime: ${model.deviceName} (${model.deviceReason})`);
  // The four likelihoods only: no cosine lane (the peer computes none).
  const makeScorer = () => createScorer({ model, cosine: 'off' });
  const software = model.runtime?.handle.info.software ?? false;
  const limit = software ? Math.min(args.limit, args.softwareGpuLimit) : args.limit;
  if (limit < args.limit) notes.push(`software adapter: first ${limit} pairs per data set only (--software-gpu-limit)`);
  const datasets = DATASETS.map((ds) => ({ ds, records: readRecords(args.dataDir, ds, limit) }));

  t = now();
  const warm = datasets[0].records.slice(0, WARMUP);
  const warmScores: PairFigures[] = [];
  for await (const r of (await makeScorer()).score(warm)) {
    if (!r.scores) throw new Error(`warm-up ${r.loc}: ${r.error}`);
    warmScores.push(figures(r.scores));
  }
  const firstRunMs = now() - t;

  // Validate before timing: the first-run pairs against the peer's scores for the same pairs.
  let prevalidation: WorkerResult['prevalidation'] = null;
  if (args.peerResult && existsSync(args.peerResult)) {
    const peer = JSON.parse(readFileSync(args.peerResult, 'utf8')) as WorkerResult;
    const ref = peer.runs.find((r) => r.dataset === datasets[0].ds.name)?.scores.slice(0, warmScores.length);
    if (ref && ref.length === warmScores.length) {
      const d = maxDiff(warmScores, ref);
      prevalidation = { pairs: ref.length, maxAbsDiff: d.maxAbsDiff, ok: d.maxAbsDiff <= TOL && d.tokenMismatches === 0 };
      console.error(prevalidation.ok
        ? `  concord ${device}: first run agrees with the peer (max |Δ| ${d.maxAbsDiff.toExponential(1)} nats/token); timing`
        : `  !!! concord ${device} DISAGREES with the peer on the first-run pairs (max |Δ| ${d.maxAbsDiff.toExponential(2)} nats/token at ${d.worst}, ` +
          `${d.tokenMismatches} token-count mismatches): timing anyway, its rows will be marked INVALID`);
    }
  }

  const runs: RunFigures[] = [];
  for (const { ds, records } of datasets) {
    const scorer = await makeScorer();
    const scores: PairFigures[] = [];
    const cpu0 = process.cpuUsage();
    t = now();
    for await (const r of scorer.score(records)) {
      if (!r.scores) throw new Error(`${ds.name} ${r.loc}: ${r.error}`);
      scores.push(figures(r.scores));
    }
    const ms = now() - t;
    const cpuMs = cpuMsSince(cpu0);
    const sch = scorer.stats.scheduler;
    // The CPU twin scores one sequence at a time: it never computes padding, whatever the packing.
    if (device === 'cpu-twin' && runs.length === 0) notes.push(`scheduler packing ${f(sch?.paddingEfficiency ?? 1, 3)} (not computed: the CPU twin runs sequences one at a time)`);
    runs.push({
      dataset: ds.name, pairs: scores.length, ms, cpuMs,
      pairTokens: scores.reduce((n, s) => n + s.xTokens + s.yTokens, 0),
      lmTokens: scorer.stats.lmTokens,
      paddingEfficiency: device === 'cpu-twin' ? 1 : sch?.paddingEfficiency ?? 1,
      batches: sch?.batches ?? 0,
      truncated: scorer.stats.truncated,
      loadavg: loadavg(),
      scores,
    });
  }
  notes.push(`${(await makeScorer()).passes} passes per pair, token budget ${model.tokenBudget}`);
  const gpu = gpuStats(model);
  // How well the scheduler packs whole data sets for this backend's token budget: the same scorer
  // over a stand-in model that returns zeros (tokenisation and packing only, not timed).
  const packing: WorkerResult['packing'] = [];
  if (device !== 'cpu-twin') {
    const stub = {
      ...model,
      scoreBatch: async (seqs: { ids: number[] }[]) => seqs.map((q) => ({ logprobs: new Float32Array(Math.max(0, q.ids.length - 1)) })),
      meanHidden: async (seqs: { ids: number[] }[]) => seqs.map(() => new Float32Array(model.config.dim)),
    };
    for (const ds of DATASETS) {
      const records = readRecords(args.dataDir, ds, Infinity);
      const scorer = await createScorer({ model: stub, cosine: 'off' });
      for await (const r of scorer.score(records)) void r;
      const sch = scorer.stats.scheduler;
      packing.push({ dataset: ds.name, pairs: records.length, paddingEfficiency: sch?.paddingEfficiency ?? 1, batches: sch?.batches ?? 0 });
    }
  }
  const result: WorkerResult = {
    contestant: device, name: `concord ${device}`, device: model.deviceName, version: concordVersion(),
    loadMs, firstRunMs, firstRunPairs: warm.length, prevalidation, packing, runs,
    peakRssBytes: process.resourceUsage().maxRSS * 1024,
    gpuPeakBytes: gpu?.peakBytesAllocated ?? null, gpuWeightBytes: gpu?.weightBytes ?? null, notes,
  };
  model.dispose();
  return result;
}

const cpuMsSince = (u0: NodeJS.CpuUsage): number => {
  const u = process.cpuUsage(u0);
  return (u.user + u.system) / 1000;
};

function figures(s: { fwd_logp: number; rev_logp: number; y_logp: number; x_logp: number; x_tokens: number; y_tokens: number; truncated: boolean }): PairFigures {
  return { fwd: s.fwd_logp, rev: s.rev_logp, y: s.y_logp, x: s.x_logp, xTokens: s.x_tokens, yTokens: s.y_tokens, truncated: s.truncated };
}

/** Largest |Δ| over the four per-token means of paired scores, and token-count mismatches. */
function maxDiff(a: PairFigures[], b: PairFigures[]): { maxAbsDiff: number; worst: string; tokenMismatches: number } {
  let maxAbsDiff = 0, worst = '', tokenMismatches = 0;
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) {
    const s = a[i], p = b[i];
    if (s.xTokens !== p.xTokens || s.yTokens !== p.yTokens) tokenMismatches++;
    for (const q of ['fwd', 'rev', 'y', 'x'] as const) {
      const d = Math.abs(s[q] - p[q]);
      if (!(d <= maxAbsDiff)) {
        maxAbsDiff = Number.isNaN(d) ? Infinity : d;
        worst = `pair ${i} ${q}: ${s[q].toFixed(6)} vs ${p[q].toFixed(6)}`;
      }
    }
  }
  return { maxAbsDiff, worst, tokenMismatches };
}

/** GpuRuntime.stats of a webgpu LanguageModel, and the bytes of its weights on the device. */
function gpuStats(model: LanguageModel): { peakBytesAllocated: number; weightBytes: number | null } | null {
  const peak = model.runtime?.stats.peakBytesAllocated;
  if (typeof peak !== 'number') return null;
  return { peakBytesAllocated: peak, weightBytes: model.weightBytes ?? null };
}

function concordVersion(): string {
  const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { version: string };
  // CONCORD_BENCH_REV: the revision measured when the tree is a snapshot without .git
  let rev = settings.benchRev ?? '';
  if (!rev) try {
    const git = (...a: string[]) => execFileSync('git', a, { cwd: ROOT, encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim();
    rev = git('rev-parse', '--short', 'HEAD');
    if (git('status', '--porcelain', '--untracked-files=no') !== '') rev += ' + uncommitted changes';
  } catch { /* not a git checkout */ }
  return rev ? `${pkg.version} (${rev})` : pkg.version;
}

async function runPeer(args: Args, kind: 'peer' | 'peer-webgpu' | 'peer-webgpu-batched' = 'peer'): Promise<WorkerResult> {
  const { loadPeer, peerPairScorer, peerBatchedScores, WEBGPU_BATCHED_PEER_NAME } = await import('./peer-transformers.js');
  const { llama2cTokenizer } = await import('../src/tokenizer/llama2c.js');
  const { recordToPair } = await import('../src/pipeline/input.js');
  const { encodeStandalone } = await import('../src/pipeline/templates.js');

  const dir = join(ROOT, 'models', 'stories15M-onnx');
  const webgpu = kind !== 'peer';
  let driverNote = '';
  let limit = args.limit;
  const notes: string[] = [];
  if (webgpu) {
    // the same Vulkan driver concord's webgpu child takes (device.ts's rule), set before ORT loads
    const { configureNodeVulkanDriver } = await import('../src/gpu/device.js');
    driverNote = await configureNodeVulkanDriver();
    const icd = process.env.VK_ICD_FILENAMES || process.env.VK_DRIVER_FILES || '';
    if (/lvp_icd|swiftshader/i.test(icd) || /software/i.test(driverNote)) {
      limit = Math.min(args.limit, args.softwareGpuLimit);
      if (limit < args.limit) notes.push(`software adapter: first ${limit} pairs per data set only (--software-gpu-limit), as concord webgpu`);
    }
  }
  let t = now();
  const peer = await loadPeer(dir, { device: webgpu ? 'webgpu' : 'cpu' });
  const loadMs = now() - t;
  const hfConfig = JSON.parse(readFileSync(join(dir, 'config.json'), 'utf8')) as { max_position_embeddings: number };
  // concord's tokenizer, templates, truncation and the four-pass plan: the same ids as concord's
  const tok = llama2cTokenizer(join(ROOT, 'models', 'stories15M', 'tokenizer.bin'), 32000);
  const scorePair = peerPairScorer(peer, tok, hfConfig.max_position_embeddings);
  let tokenizerMismatches = 0;
  const checkTokenizer = (text: string, ids: number[]) => {
    const theirs = peer.encode(text);
    if (theirs.length !== ids.length || theirs.some((v, k) => v !== ids[k])) tokenizerMismatches++;
  };

  const datasets = DATASETS.map((ds) => ({ ds, records: readRecords(args.dataDir, ds, limit) }));
  const batched = kind === 'peer-webgpu-batched';
  const maxLen = hfConfig.max_position_embeddings;
  t = now();
  const warm = datasets[0].records.slice(0, WARMUP);
  if (batched) await peerBatchedScores(peer, tok, maxLen, warm, WEBGPU_PEER_BUDGET);
  else for (const r of warm) await scorePair(r);
  const firstRunMs = now() - t;

  const runs: RunFigures[] = [];
  for (const { ds, records } of datasets) {
    const tokens0 = peer.tokens;
    const scores: PairFigures[] = [];
    const pairMs: number[] = [];
    const cpu0 = process.cpuUsage();
    t = now();
    if (batched) scores.push(...await peerBatchedScores(peer, tok, maxLen, records, WEBGPU_PEER_BUDGET));
    else {
      for (const r of records) {
        const t1 = now();
        scores.push(await scorePair(r));
        pairMs.push(now() - t1);
      }
    }
    const ms = now() - t;
    const cpuMs = cpuMsSince(cpu0);
    runs.push({
      dataset: ds.name, pairs: scores.length, ms, cpuMs,
      pairTokens: scores.reduce((n, s) => n + s.xTokens + s.yTokens, 0),
      lmTokens: peer.tokens - tokens0, paddingEfficiency: 1, batches: batched ? 0 : 4 * scores.length,
      truncated: scores.filter((s) => s.truncated).length, loadavg: loadavg(), scores, ...(batched ? {} : { pairMs }),
    });
    // not timed: does transformers.js's tokenizer (the exported tokenizer.json) give concord's ids?
    for (const r of records) {
      const p = recordToPair(r);
      checkTokenizer(p.x, encodeStandalone(tok, p.x));
      checkTokenizer(p.y, encodeStandalone(tok, p.y));
    }
  }
  const nTexts = 2 * datasets.reduce((n, d) => n + d.records.length, 0);
  notes.push(
    `token ids from concord's tokenizer; transformers.js's own tokenizer (exported tokenizer.json) agrees on ${nTexts - tokenizerMismatches}/${nTexts} texts`,
    webgpu ? `onnxruntime-node WebGPU execution provider; Vulkan driver: ${driverNote}${batched ? `; batches of ≤ ${WEBGPU_PEER_BUDGET} padded tokens, length-sorted, right-padded` : ''}`
      : 'onnxruntime-node default session options (intra-op threads = physical cores)',
  );
  const ortVersion = (JSON.parse(readFileSync(join(ROOT, 'node_modules', 'onnxruntime-node', 'package.json'), 'utf8')) as { version: string }).version;
  const result: WorkerResult = {
    contestant: kind, name: batched ? WEBGPU_BATCHED_PEER_NAME : peer.name,
    device: webgpu ? `webgpu (onnxruntime-node ${ortVersion} WebGPU EP)` : `cpu (onnxruntime-node ${ortVersion}, ${cpus().length} cores)`,
    version: `@huggingface/transformers ${peer.version}`,
    loadMs, firstRunMs, firstRunPairs: warm.length, runs,
    peakRssBytes: process.resourceUsage().maxRSS * 1024, gpuPeakBytes: null, gpuWeightBytes: null, notes,
  };
  await peer.dispose();
  return result;
}

async function workerMain(args: Args): Promise<void> {
  const c = args.worker!;
  let result: WorkerResult;
  try {
    result = c === 'peer' || isWebgpuPeer(c) ? await runPeer(args, c as 'peer' | 'peer-webgpu' | 'peer-webgpu-batched') : await runConcord(c as 'webgpu' | 'cpu', args);
  } catch (e) {
    const err = e as Error;
    result = {
      contestant: c, name: c === 'peer' ? 'transformers.js' : isWebgpuPeer(c) ? `transformers.js-${c.slice(5)}` : `concord ${c}`, device: '', version: '', loadMs: 0, firstRunMs: 0, firstRunPairs: 0,
      runs: [], peakRssBytes: process.resourceUsage().maxRSS * 1024, gpuPeakBytes: null, gpuWeightBytes: null, notes: [],
      error: `${err.message}${settings.benchStack ? `\n${err.stack}` : ''}`,
    };
  }
  writeFileSync(args.resultFile!, JSON.stringify(result));
  // dawn.node can keep the event loop alive; the result is on disk
  process.exit(0);
}

// ---------------------------------------------------------------------------------------------
// parent side: run the contestants, validate, report

export interface Comparison { contestant: Contestant; dataset: string; pairs: number; maxAbsDiff: number; worst: string; tokenMismatches: number; ok: boolean }

export interface E2eReport {
  kind: 'concord-bench-e2e';
  date: string;
  command: string;
  machine: { cpu: string; cores: number; memGiB: number; os: string; node: string };
  limit: number;
  tol: number;
  data: string;
  model: string;
  results: WorkerResult[];
  comparisons: Comparison[];
  loadavgStart: number[];
  loadavgEnd: number[];
  pending: string[];
}

const resultFileOf = (c: Contestant) => join(tmpdir(), `concord-e2e-${process.pid}-${c}.json`);

function spawnWorker(c: Contestant, args: Args, again = false): Promise<WorkerResult> {
  const resultFile = again ? resultFileOf(c).replace(/\.json$/, '-again.json') : resultFileOf(c);
  const argv = [fileURLToPath(import.meta.url), '--worker', c, '--result-file', resultFile, '--limit', String(args.limit),
    '--software-gpu-limit', String(args.softwareGpuLimit), '--data', args.dataDir];
  if (c !== 'peer' && existsSync(resultFileOf('peer'))) argv.push('--peer-result', resultFileOf('peer'));
  return new Promise((resolveP) => {
    const child = spawn(process.execPath, argv, { stdio: ['ignore', 'inherit', 'inherit'] });
    child.on('exit', (code, signal) => {
      if (existsSync(resultFile)) {
        resolveP(JSON.parse(readFileSync(resultFile, 'utf8')) as WorkerResult);
        return;
      }
      resolveP({
        contestant: c, name: c === 'peer' ? 'transformers.js' : isWebgpuPeer(c) ? `transformers.js-${c.slice(5)}` : `concord ${c}`, device: '', version: '', loadMs: 0, firstRunMs: 0, firstRunPairs: 0,
        runs: [], peakRssBytes: 0, gpuPeakBytes: null, gpuWeightBytes: null, notes: [], error: `worker exited with ${signal ?? code} and no result`,
      });
    });
  });
}

function compare(a: WorkerResult, peer: WorkerResult): Comparison[] {
  return a.runs.map((run) => {
    const ref = peer.runs.find((r) => r.dataset === run.dataset);
    if (!ref) return { contestant: a.contestant, dataset: run.dataset, pairs: 0, maxAbsDiff: NaN, worst: 'peer did not run', tokenMismatches: 0, ok: false };
    const n = Math.min(run.scores.length, ref.scores.length);
    const { maxAbsDiff, worst, tokenMismatches } = maxDiff(run.scores, ref.scores);
    const ok = n === run.scores.length && tokenMismatches === 0 && maxAbsDiff <= TOL;
    return { contestant: a.contestant, dataset: run.dataset, pairs: n, maxAbsDiff, worst, tokenMismatches, ok };
  });
}

const mb = (b: number | null) => (b === null ? '—' : `${(b / 2 ** 20).toFixed(0)} MiB`);
const f = (x: number, d = 2) => (Number.isFinite(x) ? x.toFixed(d) : '—');
/** Rates and ratios: 2 decimals, or 2 significant digits below 1 (0.0061, not 0.01). */
const g = (x: number) => (!Number.isFinite(x) ? '—' : x >= 1 ? x.toFixed(2) : x.toPrecision(2));

/** The peer's pairs/s over its first n pairs (the subset a slower contestant scored). */
function peerPairsPerS(pr: RunFigures, n: number): number {
  if (n >= pr.pairs || !pr.pairMs) return pr.pairs / (pr.ms / 1000);
  const ms = pr.pairMs.slice(0, n).reduce((a, b) => a + b, 0);
  return n / (ms / 1000);
}

interface Row {
  contestant: string; dataset: string; pairsPerS: number; ratio: number | null; pairTokS: number; lmTokS: number; padEff: number; padFull: string; cpuPerPair: number;
  firstS: number; loadS: number; rss: string; gpu: string; diff: string; valid: string; load1: string;
}

/** The peer's pairs/s on a data set's first n pairs, averaged over its runs (first and last). */
function peerRate(rep: E2eReport, dataset: string, n: number): number | null {
  const rates = rep.results
    .filter((r) => r.contestant === 'peer' && !r.error)
    .flatMap((r) => r.runs.filter((p) => p.dataset === dataset).map((p) => peerPairsPerS(p, n)));
  return rates.length ? rates.reduce((a, b) => a + b, 0) / rates.length : null;
}

function rows(rep: E2eReport): Row[] {
  const out: Row[] = [];
  for (const r of rep.results) {
    if (r.error) continue;
    for (const run of r.runs) {
      const pps = run.pairs / (run.ms / 1000);
      const pr = r.contestant === 'peer' ? null : peerRate(rep, run.dataset, run.pairs);
      const cmp = rep.comparisons.find((c) => c.contestant === r.contestant && c.dataset === run.dataset);
      out.push({
        contestant: r.contestant !== 'peer' ? r.name : r.round === 'again' ? 'transformers.js (peer, again)' : 'transformers.js (peer)',
        dataset: run.pairs < rep.limit ? `${run.dataset} (first ${run.pairs})` : run.dataset,
        pairsPerS: pps,
        ratio: pr === null ? null : pps / pr,
        cpuPerPair: run.cpuMs === undefined ? NaN : run.cpuMs / 1000 / run.pairs,
        pairTokS: run.pairTokens / (run.ms / 1000),
        lmTokS: run.lmTokens / (run.ms / 1000),
        padEff: run.paddingEfficiency,
        padFull: ((p) => (p ? `${f(p.paddingEfficiency, 3)} (${p.pairs})` : '—'))(r.packing?.find((p) => p.dataset === run.dataset)),
        firstS: r.firstRunMs / 1000,
        loadS: r.loadMs / 1000,
        rss: mb(r.peakRssBytes),
        gpu: mb(r.gpuPeakBytes),
        diff: r.contestant === 'peer' ? 'reference' : cmp ? cmp.maxAbsDiff.toExponential(1) : '—',
        valid: r.contestant === 'peer' ? '—' : cmp?.ok ? 'valid' : 'INVALID',
        load1: run.loadavg[0].toFixed(1),
      });
    }
  }
  return out;
}

/** concord webgpu against transformers.js-webgpu (batch 1, batched) on the same adapter, pairs and run. */
export function webgpuComparison(rep: E2eReport): string[] {
  const cw = rep.results.find((r) => r.contestant === 'webgpu' && !r.error);
  const peers = rep.results.filter((r) => isWebgpuPeer(r.contestant) && !r.error);
  if (!cw || !peers.length) return [];
  const out: string[] = [];
  for (const run of cw.runs) {
    const c = run.pairs / (run.ms / 1000);
    const parts = peers.map((p) => {
      const pr = p.runs.find((x) => x.dataset === run.dataset);
      if (!pr) return `${p.name}: not run`;
      const n = Math.min(pr.pairs, run.pairs);
      const rate = peerPairsPerS(pr, n);
      return `${p.contestant === 'peer-webgpu' ? 'batch 1' : 'batched'} ${g(rate)} pairs/s → concord ${g(c / rate)}×`;
    });
    out.push(`- ${run.dataset} (${run.pairs} pairs): concord webgpu ${g(c)} pairs/s; transformers.js-webgpu ${parts.join('; ')}`);
  }
  return out;
}

function prevalidationText(r: WorkerResult): string {
  const p = r.prevalidation;
  if (!p) return '';
  return `; checked before timing: first-run pair${p.pairs > 1 ? 's' : ''} vs the peer, max |Δ| ${p.maxAbsDiff.toExponential(1)} nats/token${p.ok ? '' : ' — DISAGREES'}`;
}

export function renderMarkdown(rep: E2eReport): string {
  const m = rep.machine;
  const lines: string[] = [];
  lines.push(`### End-to-end scoring: concord vs transformers.js (stories15M, ${rep.limit} pairs per data set)`);
  lines.push('');
  lines.push(`Machine: ${m.cpu}, ${m.cores} cores, ${m.memGiB} GiB, ${m.os}, Node ${m.node}. Date: ${rep.date}.  `);
  lines.push(`Command: \`${rep.command}\`. Load average at start ${rep.loadavgStart.map((x) => x.toFixed(1)).join(' / ')}, at end ${rep.loadavgEnd.map((x) => x.toFixed(1)).join(' / ')} (shared machine).`);
  lines.push('');
  for (const r of rep.results) {
    if (r.round === 'again') continue;
    lines.push(`- **${r.name}**: ${r.error ? `not measured — ${r.error.split('\n')[0]}` : `${r.device}; ${r.version}${prevalidationText(r)}${r.notes.length ? `; ${r.notes.join('; ')}` : ''}`}`);
  }
  lines.push('');
  lines.push('| contestant | data set | pairs/s | × peer | pair tok/s | LM tok/s | CPU s/pair | padding eff. | padding eff., whole set (pairs) | first run (s) | load (s) | peak RSS | GPU peak | max \\|Δ\\| nats/tok vs peer | check | load avg |');
  lines.push('|---|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|---|--:|');
  for (const r of rows(rep)) {
    lines.push(`| ${r.contestant} | ${r.dataset} | ${g(r.pairsPerS)} | ${r.ratio === null ? '—' : `${g(r.ratio)}×`} | ${f(r.pairTokS, 0)} | ${f(r.lmTokS, 0)} | ${f(r.cpuPerPair, 2)} | ${f(r.padEff, 3)} | ${r.padFull} | ${f(r.firstS, 1)} | ${f(r.loadS, 1)} | ${r.rss} | ${r.gpu} | ${r.diff} | ${r.valid} | ${r.load1} |`);
  }
  const wg = webgpuComparison(rep);
  if (wg.length) {
    lines.push('');
    lines.push(`WebGPU peer on the same adapter, same run (target: concord ≥ 2× transformers.js-webgpu's pairs/s):`);
    lines.push('');
    lines.push(...wg);
  }
  lines.push('');
  lines.push(`padding eff.: real ÷ computed tokens of the measured run's batches; whole set: the scheduler's packing of the complete data set under the backend's token budget (no model run).`);
  lines.push('');
  lines.push(`pairs/s: pairs scored (all four likelihoods) per second of wall-clock, after a separate first run of ${WARMUP} pair${WARMUP > 1 ? 's' : ''}; × peer is against the peer's time on the same pairs, averaged over its two runs (first and last). pair tok/s: x + y tokens per second (same numerator for all). CPU s/pair: CPU time of the contestant's process (all threads; ORT's pool spin-waits, which counts) per pair, less sensitive than wall-clock to other load on the machine. LM tok/s: tokens through the model (concord: 2 passes per pair, padding excluded; peer: 4 passes). check: every pair's four per-token means agree with the peer within ${rep.tol} nats/token and the token counts match.`);
  for (const p of rep.pending) lines.push('', p);
  return lines.join('\n');
}

function renderText(rep: E2eReport): string {
  const out: string[] = [];
  for (const r of rep.results) if (r.round !== 'again') out.push(`${r.name}: ${r.error ? `NOT MEASURED: ${r.error}` : `${r.device}; ${r.version}${prevalidationText(r)}; load ${f(r.loadMs / 1000, 1)} s; first run (${r.firstRunPairs} pairs) ${f(r.firstRunMs / 1000, 1)} s${r.notes.length ? `; ${r.notes.join('; ')}` : ''}`}`);
  out.push('');
  out.push(`${'contestant'.padEnd(30)} ${'data set'.padEnd(38)} ${'pairs/s'.padStart(8)} ${'×peer'.padStart(6)} ${'pairtok/s'.padStart(9)} ${'LMtok/s'.padStart(8)} ${'pad'.padStart(5)} ${'RSS'.padStart(8)} ${'GPU'.padStart(8)} ${'max|Δ|'.padStart(9)} check    load`);
  for (const r of rows(rep)) {
    out.push(`${r.contestant.slice(0, 30).padEnd(30)} ${r.dataset.padEnd(38)} ${g(r.pairsPerS).padStart(8)} ${(r.ratio === null ? '—' : g(r.ratio)).padStart(6)} ${f(r.pairTokS, 0).padStart(9)} ${f(r.lmTokS, 0).padStart(8)} ${f(r.padEff, 3).padStart(5)} ${r.rss.padStart(8)} ${r.gpu.padStart(8)} ${r.diff.padStart(9)} ${r.valid.padEnd(8)} ${r.load1}`);
  }
  const wg = webgpuComparison(rep);
  if (wg.length) out.push('', 'WebGPU, same adapter:', ...wg);
  for (const c of rep.comparisons) {
    if (!c.ok) out.push(`\n!!! concord ${c.contestant} on ${c.dataset} DISAGREES with the peer: max |Δ| ${c.maxAbsDiff.toExponential(2)} nats/token (tolerance ${rep.tol}) at ${c.worst}; ${c.tokenMismatches} pairs with different token counts. Its figures are INVALID.`);
  }
  for (const p of rep.pending) out.push('', p);
  return out.join('\n');
}

async function ensureExport(): Promise<string | null> {
  const onnx = join(ROOT, 'models', 'stories15M-onnx', 'onnx', 'model.onnx');
  if (existsSync(onnx)) return null;
  console.error(`bench/e2e: ${relative(ROOT, onnx)} is missing; exporting it (scripts/export_onnx.py, needs python3-torch)…`);
  const py = existsSync('/usr/bin/python3') ? '/usr/bin/python3' : 'python3';
  try {
    execFileSync(py, [join(ROOT, 'scripts', 'export_onnx.py')], { cwd: ROOT, stdio: ['ignore', 'inherit', 'inherit'] });
  } catch (e) {
    return `the ONNX export failed (${(e as Error).message.split('\n')[0]}): install python3-torch (apt-get install python3-torch) and run /usr/bin/python3 scripts/export_onnx.py`;
  }
  return existsSync(onnx) ? null : 'the ONNX export wrote no model';
}

export const GPU_PENDING = 'Real-GPU figures (H100/H200) are pending: no hardware GPU was available to this run; the `webgpu` rows above ran on a software Vulkan driver (CPU), so they measure the code path, not GPU speed.';

async function parentMain(args: Args): Promise<number> {
  if (args.report) {
    const rep = JSON.parse(readFileSync(args.report, 'utf8')) as E2eReport;
    console.log(args.markdown ? renderMarkdown(rep) : args.json ? JSON.stringify(rep, null, 2) : renderText(rep));
    return 0;
  }
  const missing = DATASETS.filter((d) => !existsSync(join(args.dataDir, d.file)));
  if (missing.length) {
    console.error(`bench/e2e: BENCHMARK DATA NOT FOUND — ${missing.map((d) => join(args.dataDir, d.file)).join(', ')} ` +
      `do not exist. The benchmark reads ../shared/data relative to the project root (or --data DIR); see the data README there. Nothing was measured.`);
    return 2;
  }
  const loadavgStart = loadavg();
  const results: WorkerResult[] = [];
  // The peer runs first (its scores validate the others) and again last: the load on a shared
  // machine drifts, and the ratio uses the mean of the two.
  const webgpuPeers: Contestant[] = args.peer && args.webgpuPeer && args.devices.includes('webgpu') ? [...WEBGPU_PEERS] : [];
  const order: Contestant[] = [...(args.peer ? ['peer' as const] : []), ...webgpuPeers, ...args.devices, ...(args.peer && args.devices.length ? ['peer' as const] : [])];
  for (const [k, c] of order.entries()) {
    const again = c === 'peer' && k > 0;
    if (c === 'peer' && !again) {
      const why = await ensureExport();
      if (why) {
        results.push({ contestant: 'peer', name: 'transformers.js', device: '', version: '', loadMs: 0, firstRunMs: 0, firstRunPairs: 0, runs: [], peakRssBytes: 0, gpuPeakBytes: null, gpuWeightBytes: null, notes: [], error: why });
        continue;
      }
    }
    console.error(`bench/e2e: ${c}: ${args.limit} pairs per data set… (load average ${loadavg().map((x) => x.toFixed(1)).join(' ')})`);
    const r = await spawnWorker(c, args, again);
    if (again) r.round = 'again';
    if (r.error) console.error(`bench/e2e: ${c} FAILED: ${r.error}`);
    else for (const run of r.runs) console.error(`  ${run.dataset}: ${run.pairs} pairs in ${(run.ms / 1000).toFixed(1)} s (${(run.pairs / (run.ms / 1000)).toFixed(2)} pairs/s, load ${run.loadavg[0].toFixed(1)})`);
    results.push(r);
  }
  const peer = results.find((r) => r.contestant === 'peer' && !r.error);
  const comparisons = peer ? results.filter((r) => r.contestant !== 'peer' && !r.error).flatMap((r) => compare(r, peer)) : [];
  const date = new Date().toISOString();
  const rep: E2eReport = {
    kind: 'concord-bench-e2e',
    date,
    command: `npm run bench -- ${process.argv.slice(2).join(' ')}`.trim(),
    machine: { cpu: cpus()[0]?.model ?? 'unknown', cores: cpus().length, memGiB: Math.round(totalmem() / 2 ** 30), os: `Linux ${release()}`, node: process.version },
    limit: args.limit,
    tol: TOL,
    data: relative(ROOT, args.dataDir),
    model: 'stories15M (llama2.c model.bin; the peer: the same weights exported by scripts/export_onnx.py, float32)',
    results,
    comparisons,
    loadavgStart,
    loadavgEnd: loadavg(),
    pending: results.some((r) => r.contestant === 'webgpu' && !r.error && /swiftshader|lavapipe|llvmpipe|software/i.test(r.device)) ? [GPU_PENDING] : [],
  };
  if (args.out) {
    mkdirSync(args.out, { recursive: true });
    const stem = join(args.out, `e2e-${date.slice(0, 10)}`);
    writeFileSync(`${stem}.json`, JSON.stringify(rep, null, 1) + '\n');
    writeFileSync(`${stem}.md`, renderMarkdown(rep) + '\n');
    console.error(`bench/e2e: wrote ${relative(ROOT, stem)}.json and .md`);
  }
  console.log(args.markdown ? renderMarkdown(rep) : args.json ? JSON.stringify(rep, null, 2) : renderText(rep));
  for (const c of order) {
    rmSync(resultFileOf(c), { force: true });
    rmSync(resultFileOf(c).replace(/\.json$/, '-again.json'), { force: true });
  }
  const invalid = comparisons.some((c) => !c.ok) || results.some((r) => r.error);
  return invalid ? 4 : 0;
}

const isMain = process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1];
if (isMain) {
  const args = parse(process.argv.slice(2));
  if (args.worker) await workerMain(args);
  else process.exitCode = await parentMain(args);
}
