// The pipeline subcommands: score, filter, run, logprob, demo. Each parses its own flags and returns
// an exit code (src/cli/main.ts EXIT; README "Exit codes").

import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import { FilterError, RULES, applyFilter, mainSignals, type FilterOptions, type Rule } from '../filter/index.js';
import { parseDeviceChoice, type DeviceChoice } from '../gpu/device.js';
import type { GpuRuntime } from '../gpu/runtime.js';
import type { LanguageModel } from '../models/lm.js';
import { StrictError, filterFile, scoreFile, type FilterSummary, type ScoreSummary } from '../pipeline/files.js';
import { InputError, ResumeError, hashOptions, writeFileAtomic } from '../pipeline/node-io.js';
import { createScorerFromModels, type CosineMode, type Scorer, type TextEmbedder } from '../pipeline/scorer.js';
import { InputSet } from '../formats/records.js';
import { isParquetPath, scoreTarget } from '../formats/parquet.js';
import { ShardError, argvWithoutShard, resolveShard } from '../shard/index.js';
import { ShardRun, defaultShardFormat, type ShardRunPlan } from '../shard/run.js';
import { filterInputs } from '../shard/merge.js';
import { TemplateError, encodeStandalone, resolveChatFormat } from '../pipeline/templates.js';
import { EXIT, type Command } from './main.js';

class CliUsageError extends Error {}

// ---- model loading -------------------------------------------------------------------------------

type LoadedLm = LanguageModel & { deviceReason?: string; runtime?: GpuRuntime | null };

/**
 * loadModel from src/models, or — test hook — from the module named by CONCORD_TEST_MODEL_MODULE
 * (an ES module exporting the same `loadModel(name, {device})`; tests point it at a fake model).
 */
async function loadLm(spec: string, device: DeviceChoice, extra: { f16?: boolean } = {}): Promise<LoadedLm> {
  const hook = process.env.CONCORD_TEST_MODEL_MODULE;
  if (hook) {
    const mod = (await import(pathToFileURL(path.resolve(hook)).href)) as { loadModel: (s: string, o: { device: DeviceChoice }) => Promise<LoadedLm> };
    return mod.loadModel(spec, { device });
  }
  const { loadModel } = await import('../models/index.js');
  return loadModel(spec, { device, ...extra });
}

async function loadShared(spec: string, device: DeviceChoice, share: LoadedLm | null): Promise<LoadedLm> {
  if (share?.runtime && !process.env.CONCORD_TEST_MODEL_MODULE) {
    const { loadModel } = await import('../models/index.js');
    return loadModel(spec, { device: share.runtime });
  }
  return loadLm(spec, device);
}

const log = (s: string) => process.stderr.write(s + '\n');

function describeDevice(lm: LoadedLm, label = 'model'): string {
  return `concord: ${label} ${lm.config.name} on ${lm.deviceName}${lm.deviceReason ? ` — ${lm.deviceReason}` : ''}`;
}

// ---- flag helpers --------------------------------------------------------------------------------

/** Backslash escapes in template flags: \n, \t, \\ (so a shell can pass "{x}\n\n{y}"). */
export function unescapeCli(s: string): string {
  return s.replace(/\\([nt\\])/g, (_, c: string) => (c === 'n' ? '\n' : c === 't' ? '\t' : '\\'));
}

function numFlag(v: string | undefined, name: string, o: { int?: boolean; min?: number; max?: number } = {}): number | undefined {
  if (v === undefined) return undefined;
  const n = Number(v);
  if (!Number.isFinite(n) || (o.int && !Number.isInteger(n)) || (o.min !== undefined && n < o.min) || (o.max !== undefined && n > o.max)) {
    const range = o.min !== undefined || o.max !== undefined ? ` in [${o.min ?? '-∞'}, ${o.max ?? '∞'}]` : '';
    throw new CliUsageError(`${name} must be ${o.int ? 'an integer' : 'a number'}${range} (got '${v}')`);
  }
  return n;
}

const SCORE_OPTIONS = {
  output: { type: 'string', short: 'o' },
  model: { type: 'string', default: 'default' },
  'reverse-model': { type: 'string' },
  device: { type: 'string', default: 'auto' },
  'forward-template': { type: 'string' },
  'reverse-template': { type: 'string' },
  'chat-template': { type: 'string' },
  passes: { type: 'string', default: 'min' },
  'max-len': { type: 'string' },
  'on-overlong': { type: 'string', default: 'truncate' },
  'instruction-field': { type: 'string' },
  'input-field': { type: 'string' },
  'output-field': { type: 'string' },
  cosine: { type: 'string', default: 'auto' },
  'embed-model': { type: 'string' },
  errors: { type: 'string' },
  strict: { type: 'boolean', default: false },
  resume: { type: 'boolean', default: false },
  summary: { type: 'string' },
  quiet: { type: 'boolean', default: false },
  verify: { type: 'string' },
  'verify-tol': { type: 'string' },
  window: { type: 'string' },
  'token-budget': { type: 'string' },
  'checkpoint-every': { type: 'string' },
  limit: { type: 'string' },
  split: { type: 'string' },
  shard: { type: 'string' },
  shards: { type: 'string' },
  'out-dir': { type: 'string' },
  'out-format': { type: 'string' },
  gpu: { type: 'string' },
  help: { type: 'boolean', short: 'h', default: false },
} as const;

const FILTER_OPTIONS = {
  output: { type: 'string', short: 'o' },
  'drop-out': { type: 'string' },
  rule: { type: 'string', default: 'main' },
  signal: { type: 'string', default: 'gain' },
  'keep-fraction': { type: 'string' },
  'fwd-threshold': { type: 'string' },
  'rev-threshold': { type: 'string' },
  'min-cosine': { type: 'string' },
  errors: { type: 'string' },
  strict: { type: 'boolean', default: false },
  summary: { type: 'string' },
  quiet: { type: 'boolean', default: false },
  help: { type: 'boolean', short: 'h', default: false },
} as const;

export const SCORE_HELP = `concord score <in.jsonl|in.json> -o scored.jsonl [options]

Models and devices
  --model <path|default>        forward model (default: stories15M)
  --reverse-model <path>        a separate y→x model (default: the forward model with the reverse template)
  --device auto|webgpu|cpu      (default auto; the choice and its reason are printed)
  --gpu N|NAME                  which Vulkan adapter: N-th GPU (0-based, PCI order) or a substring of
                                its name (README "Several GPUs in one host")
Templates (slots {x} and {y}; \\n \\t \\\\ escapes; {{ }} literal braces)
  --forward-template T          default "{x}{y}" for word-start (sentencepiece) tokenizers such as
                                stories15M's, "{x}\\n\\n{y}" for byte-level ones (GPT-2, Qwen2)
  --reverse-template T          default "{y}{x}" / "{y}\\n\\n{x}"
  --chat-template NAME|auto     role-prefix chat format: chatml, llama2, zephyr, alpaca, or auto
                                (detected from the model's tokenizer_config.json chat_template)
  --passes min|4                min (default): fewest passes the templates allow; 4: always four
Lengths
  --max-len N                   longest sequence (default: the model's maxLen)
  --on-overlong truncate|error  truncate (default: x from the left, y from the right) or report an error
Input
  --instruction-field F  --input-field F  --output-field F   (Alpaca field names)
  --limit N                     score only the first N records
  in.* may be JSONL, JSONL.gz/.zst, a JSON array, Parquet, a dataset folder or a quoted glob
  --split NAME                  a folder's or glob's split (train-*.parquet, train/…)
Sharded runs (README "Sharded runs")
  --shard i/n                   score shard i of n (default: SLURM_ARRAY_TASK_ID / JOB_COMPLETION_INDEX)
  --shards n                    the shard count when i comes from the job engine
  --out-dir DIR                 write DIR/shard-<i>-of-<n>.<ext> + manifest; then concord merge DIR
  --out-format jsonl|parquet    the shards' format (default parquet for Parquet input, else jsonl)
Cosine
  --cosine auto|embed|lm|off    auto: the sentence encoder when its files exist and the model runs on
                                WebGPU, else the LM's mean hidden states; off skips it (fastest)
  --embed-model <path|minilm>   sentence encoder for --cosine embed/auto (default minilm)
Output and robustness
  --errors FILE                 bad records as JSONL (default <out>.errors.jsonl)
  --strict                      stop at the first bad record (exit 3)
  --resume                      continue an interrupted run from its checkpoint
  --checkpoint-every N          records between checkpoints (default 256; also every 5 s)
  --summary FILE                write the summary as JSON
  --quiet                       no progress or summary on stderr
Checking
  --verify N                    re-score N sampled batches on the CPU twin; exit 4 if max |Δ| > tol
  --verify-tol X                default 1e-3
Tuning
  --window N                    pairs per scheduling window (default 1024)
  --token-budget N              override the model's tokens per batch`;

export const FILTER_HELP = `concord filter <scored.jsonl> -o kept.jsonl [--drop-out dropped.jsonl] [options]

  --rule main|ifd|superfilter|rifd|cosine   (default main)
  --signal gain|logp            main: pointwise gains (default) or raw log-probs
  --keep-fraction F             keep ≈ F of the pairs by the rule's ranking
  --fwd-threshold X  --rev-threshold X      main: explicit thresholds (signal units)
  --min-cosine X                cosine rule
  --errors FILE  --strict  --summary FILE  --quiet`;

type ScoreValues = { [K in keyof typeof SCORE_OPTIONS]?: (typeof SCORE_OPTIONS)[K]['type'] extends 'boolean' ? boolean : string };
type FilterValues = { [K in keyof typeof FILTER_OPTIONS]?: (typeof FILTER_OPTIONS)[K]['type'] extends 'boolean' ? boolean : string };

function filterOptionsFrom(v: FilterValues): FilterOptions {
  const rule = v.rule as Rule;
  if (!RULES.includes(rule)) throw new CliUsageError(`--rule must be one of ${RULES.join(', ')} (got '${v.rule}')`);
  if (v.signal !== 'gain' && v.signal !== 'logp') throw new CliUsageError(`--signal must be gain or logp (got '${v.signal}')`);
  return {
    rule,
    signal: v.signal,
    keepFraction: numFlag(v['keep-fraction'], '--keep-fraction', { min: 0, max: 1 }),
    fwdThreshold: numFlag(v['fwd-threshold'], '--fwd-threshold'),
    revThreshold: numFlag(v['rev-threshold'], '--rev-threshold'),
    minCosine: numFlag(v['min-cosine'], '--min-cosine', { min: -1, max: 1 }),
  };
}

// ---- scorer set-up -------------------------------------------------------------------------------

interface ScoreSetup {
  scorer: Scorer;
  optionsHash: string;
  models: LoadedLm[];
  device: { backend: string; name: string; reason: string | null };
  limit: number | undefined;
}

async function embedderFor(mode: string, spec: string | undefined, lm: LoadedLm): Promise<{ cosine: CosineMode; embedder: TextEmbedder | null; note?: string }> {
  if (mode === 'off' || mode === 'lm') return { cosine: mode, embedder: null };
  if (mode !== 'auto' && mode !== 'embed') throw new CliUsageError(`--cosine must be auto, embed, lm or off (got '${mode}')`);
  const name = spec ?? 'minilm';
  // auto on the CPU path: the encoder's CPU twin costs several times the LM per token (measured on
  // the sample: ~4×), so auto takes the LM's hidden states there unless --embed-model is given.
  if (mode === 'auto' && !spec && lm.backend === 'cpu') {
    return { cosine: 'lm', embedder: null, note: "concord: cosine from the LM's mean hidden states (CPU path; --cosine embed for all-MiniLM-L6-v2, slower on the CPU)" };
  }
  try {
    const { loadEmbedder } = await import('../embed/index.js');
    const enc = await loadEmbedder(name, { device: lm.runtime ?? 'cpu' });
    const label = name.toLowerCase() === 'minilm' ? 'all-MiniLM-L6-v2' : path.basename(name.replace(/[\\/]+$/, ''));
    return { cosine: 'embed', embedder: { embed: (t) => enc.embed(t), name: label } };
  } catch (e) {
    if (mode === 'embed' || spec) throw new CliUsageError(`--embed-model ${name}: ${(e as Error).message}`);
    return { cosine: 'lm', embedder: null, note: `concord: no sentence encoder (${(e as Error).message}); cosine from the LM's mean hidden states` };
  }
}

async function setupScorer(v: ScoreValues, quiet: boolean): Promise<ScoreSetup> {
  const device = parseDeviceChoice(v.device);
  const lm = await loadLm(v.model ?? 'default', device);
  if (!quiet) log(describeDevice(lm, 'model'));
  const rev = v['reverse-model'] ? await loadShared(v['reverse-model'], device, lm) : null;
  if (rev && !quiet) log(describeDevice(rev, 'reverse model'));
  const passes = v.passes === '4' ? 4 : v.passes === 'min' ? 'min' : null;
  if (passes === null) throw new CliUsageError(`--passes must be min or 4 (got '${v.passes}')`);
  if (v['on-overlong'] !== 'truncate' && v['on-overlong'] !== 'error') throw new CliUsageError(`--on-overlong must be truncate or error`);
  const chat = v['chat-template'] ? resolveChatFormat(v['chat-template'], lm.tokenizer) : null;
  const cos = await embedderFor(v.cosine ?? 'auto', v['embed-model'], lm);
  if (cos.note && !quiet) log(cos.note);

  const verifyN = numFlag(v.verify, '--verify', { int: true, min: 0 }) ?? 0;
  let verify = null;
  if (verifyN > 0) {
    // An f16 GPU model is checked by a twin whose weights are rounded through f16 the same way, so
    // the f32 tolerance measures the kernels, not the storage format.
    const f16 = { f16: (lm as { f16?: boolean }).f16 ?? false };
    const twin = await loadLm(v.model ?? 'default', 'cpu', f16);
    const twinRev = v['reverse-model'] ? await loadLm(v['reverse-model'], 'cpu', f16) : undefined;
    verify = { model: twin, reverseModel: twinRev, batches: verifyN, tol: numFlag(v['verify-tol'], '--verify-tol', { min: 0 }) ?? 1e-3 };
  }
  const inject = Number(process.env.CONCORD_TEST_INJECT_DEVIATION ?? 0);
  if (inject && !quiet) log(`concord: CONCORD_TEST_INJECT_DEVIATION=${inject}: perturbing every primary log-prob (test hook)`);

  const fields = {
    ...(v['instruction-field'] ? { instruction: v['instruction-field'] } : {}),
    ...(v['input-field'] ? { input: v['input-field'] } : {}),
    ...(v['output-field'] ? { output: v['output-field'] } : {}),
  };
  const scorer = createScorerFromModels({
    model: lm,
    reverseModel: rev,
    forwardTemplate: v['forward-template'] !== undefined ? unescapeCli(v['forward-template']) : undefined,
    reverseTemplate: v['reverse-template'] !== undefined ? unescapeCli(v['reverse-template']) : undefined,
    chat,
    passes,
    maxLen: numFlag(v['max-len'], '--max-len', { int: true, min: 2 }),
    overlong: v['on-overlong'],
    fields,
    cosine: cos.cosine,
    embedder: cos.embedder,
    windowSize: numFlag(v.window, '--window', { int: true, min: 1 }),
    tokenBudget: numFlag(v['token-budget'], '--token-budget', { int: true, min: 1 }),
    verify,
    injectDeviation: inject || undefined,
  });
  const optionsHash = hashOptions({
    model: [v.model ?? 'default', lm.config.name], reverse: rev ? [v['reverse-model'], rev.config.name] : null,
    templates: scorer.templates, passes: scorer.passes, maxLen: scorer.maxLen, overlong: v['on-overlong'], fields,
    cosine: scorer.cosineSource, limit: v.limit ?? null,
  });
  return {
    scorer, optionsHash, models: [lm, ...(rev ? [rev] : [])],
    device: { backend: lm.backend, name: lm.deviceName, reason: lm.deviceReason ?? null },
    limit: numFlag(v.limit, '--limit', { int: true, min: 0 }),
  };
}

// ---- summaries -----------------------------------------------------------------------------------

const fmt = (x: number | undefined | null, d = 3) => (x === undefined || x === null || !Number.isFinite(x) ? '–' : x.toFixed(d));

export function formatScoreSummary(s: ScoreSummary): string {
  const c = s.counts;
  const lines = [
    `concord score: ${c.records} records → ${c.scored} scored, ${c.errors} errors${s.errors_file ? ` (${s.errors_file})` : ''}, ${c.truncated} truncated${c.resumed_from ? ` (resumed after ${c.resumed_from})` : ''}`,
    `  passes ${s.passes}  forward ${JSON.stringify(s.templates.forward)}  reverse ${JSON.stringify(s.templates.reverse)}  max-len ${s.max_len}  cosine ${s.cosine_source ?? 'off'}`,
  ];
  const dev = s.device as { backend: string; name: string; reason: string | null } | undefined;
  if (dev) lines.push(`  device ${dev.name}${dev.reason ? ` (${dev.reason})` : ''}`);
  const t = s.throughput;
  lines.push(`  ${fmt(t.pairs_per_s, 2)} pairs/s  ${t.tokens_per_s} tokens/s  padding efficiency ${fmt(s.padding_efficiency, 4)} over ${s.batches} batches  ${fmt(t.elapsed_s, 1)} s`);
  lines.push(`  ${'score'.padEnd(9)} ${['p05', 'p25', 'p50', 'p75', 'p95', 'mean'].map((h) => h.padStart(9)).join('')}`);
  for (const [k, q] of Object.entries(s.scores)) {
    if (!q) continue;
    lines.push(`  ${k.padEnd(9)} ${[q.p05, q.p25, q.p50, q.p75, q.p95, q.mean].map((x) => fmt(x, Math.abs(x) >= 100 ? 1 : 3).padStart(9)).join('')}`);
  }
  if (s.verify) {
    const vr = s.verify;
    lines.push(`  verify: ${vr.batches} batches, ${vr.tokens} tokens on the CPU twin: max |Δ| ${vr.maxAbsDiff.toExponential(2)} ${vr.ok ? '≤' : '>'} tol ${vr.tol} — ${vr.ok ? 'ok' : 'FAILED'}`);
  }
  return lines.join('\n');
}

function formatFilterSummary(s: FilterSummary): string {
  const c = s.counts;
  const a = Object.entries(s.applied).map(([k, v]) => `${k}=${typeof v === 'number' ? Number(v.toPrecision(5)) : v}`).join(' ');
  return `concord filter: ${c.records} records → ${c.kept} kept, ${c.dropped} dropped, ${c.errors} errors  (${a})`;
}

async function* limited<T>(it: AsyncIterable<T>, n: number | undefined): AsyncGenerator<T> {
  if (n === 0) return;
  let k = 0;
  for await (const x of it) {
    yield x;
    if (n !== undefined && ++k >= n) return;
  }
}

/** Plain JSONL in and out: filterFile as before; Parquet in or out, a folder or a glob: the format-aware filter. */
async function filterAny(fo: Parameters<typeof filterFile>[0]): Promise<FilterSummary> {
  const inputs = InputSet.resolve(fo.input);
  const parquetOut = isParquetPath(fo.output) || (!!fo.dropOut && isParquetPath(fo.dropOut));
  return inputs.plainSingle && !parquetOut ? filterFile(fo) : filterInputs({ ...fo, inputs });
}

/** Map the pipeline's errors to exit codes (others propagate to main: EXIT.failure). */
function exitFor(e: unknown, cmd: string): number {
  const msg = (e as Error).message;
  if (e instanceof StrictError || e instanceof InputError) { log(`concord ${cmd}: ${msg}`); return EXIT.inputErrors; }
  if (e instanceof ResumeError) { log(`concord ${cmd}: ${msg}`); return EXIT.resumeMismatch; }
  if (e instanceof CliUsageError || e instanceof FilterError || e instanceof TemplateError || e instanceof ShardError) { log(`concord ${cmd}: ${msg}`); return EXIT.usage; }
  throw e;
}

async function runScore(
  v: ScoreValues, input: string, output: string, cmd: string,
  io: { inputs?: InputSet; plan?: (optionsHash: string) => Promise<ShardRunPlan | null> } = {},
): Promise<{ code: number; summary: ScoreSummary | null }> {
  const quiet = !!v.quiet;
  if (v.gpu !== undefined) process.env.CONCORD_GPU = v.gpu;
  const setup = await setupScorer(v, quiet);
  // A shard decides where it writes (or that it is already complete) once the options hash is known.
  const plan = io.plan ? await io.plan(setup.optionsHash) : { output, errors: v.errors, resume: v.resume, range: undefined };
  if (!plan) { for (const m of setup.models) m.dispose(); return { code: EXIT.ok, summary: null }; }
  const target = scoreTarget(plan.output, plan.errors);
  const { scorer } = setup;
  // --limit: wrap the scorer's input (the checkpoint counts records the same way).
  const s0 = scorer.score.bind(scorer);
  if (setup.limit !== undefined) {
    const lim = setup.limit;
    (scorer as { score: Scorer['score'] }).score = (items, o) => s0(limited(items as AsyncIterable<unknown>, Math.max(0, lim - (o?.firstIndex ?? 0))), o);
  }
  // Ctrl-C / kill: the last checkpoint stands; say how to continue (exit 128 + signal number).
  const onSignal = (sig: NodeJS.Signals) => {
    log(`\nconcord ${cmd}: interrupted (${sig}); rerun the same command with --resume to continue from the last checkpoint`);
    process.exit(sig === 'SIGINT' ? 130 : 143);
  };
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  const summary = await scoreFile({
    scorer, input, output: target.scoreTo, errors: target.errors, resume: plan.resume, strict: v.strict, optionsHash: setup.optionsHash, quiet, log,
    checkpointEvery: numFlag(v['checkpoint-every'], '--checkpoint-every', { int: true, min: 1 }), limit: setup.limit,
    inputs: io.inputs, range: plan.range,
  });
  process.off('SIGINT', onSignal);
  process.off('SIGTERM', onSignal);
  await target.finish();
  summary.output = plan.output;
  summary.command = cmd;
  summary.device = setup.device;
  summary.model = setup.models[0].config.name;
  summary.reverse_model = setup.models[1]?.config.name ?? null;
  for (const m of setup.models) m.dispose();
  const code = summary.verify && !summary.verify.ok ? EXIT.verifyFailed : EXIT.ok;
  return { code, summary };
}

function parseScoreArgs(argv: string[], extra: Record<string, { type: 'string' | 'boolean'; short?: string; default?: string | boolean }> = {}) {
  const { values, positionals } = parseArgs({ args: argv, options: { ...SCORE_OPTIONS, ...extra }, allowPositionals: true });
  return { values: values as ScoreValues & Record<string, string | boolean | undefined>, positionals };
}

// ---- commands ------------------------------------------------------------------------------------

export const pipelineCommands: Record<string, Command> = {
  async score(argv) {
    const { values: v, positionals } = parseScoreArgs(argv);
    if (v.help) { console.log(SCORE_HELP); return EXIT.ok; }
    try {
      if (positionals.length !== 1) throw new CliUsageError('expected one input file (concord score in.jsonl -o scored.jsonl)');
      const shard = resolveShard({ shard: v.shard, shards: v.shards, outDir: v['out-dir'] });
      if (!v.output && !shard) throw new CliUsageError('-o/--output is required (or --out-dir with --shard for a sharded run)');
      const inputs = InputSet.resolve(positionals[0], { split: v.split });
      let run: ShardRun | null = null;
      if (shard) {
        if (v.output) throw new CliUsageError('a sharded run writes into --out-dir; drop -o (concord merge DIR -o … joins the shards)');
        if (v.limit !== undefined) throw new CliUsageError('--limit does not combine with --shard');
        const fmt = (v['out-format'] as 'jsonl' | 'parquet' | undefined) ?? defaultShardFormat(inputs);
        if (fmt !== 'jsonl' && fmt !== 'parquet') throw new CliUsageError(`--out-format must be jsonl or parquet (got '${fmt}')`);
        run = new ShardRun({ spec: shard, outDir: v['out-dir']!, format: fmt, inputs, inputSpec: positionals[0], split: v.split, argv: argvWithoutShard(argv), log });
      }
      const { code, summary } = await runScore(v, positionals[0], v.output ?? '', 'score', { inputs, plan: run ? (h) => run.plan(h) : undefined });
      if (!summary) return EXIT.ok; // a complete shard, skipped
      if (run) { run.finish(summary); summary.manifest = run.manifestPath; }
      if (!v.quiet) log(formatScoreSummary(summary));
      if (v.summary) writeFileAtomic(v.summary, JSON.stringify(summary, null, 2) + '\n');
      if (code === EXIT.verifyFailed) log('concord score: --verify: the primary backend deviates from the CPU twin beyond --verify-tol');
      return code;
    } catch (e) {
      return exitFor(e, 'score');
    }
  },

  async filter(argv) {
    const { values, positionals } = parseArgs({ args: argv, options: FILTER_OPTIONS, allowPositionals: true });
    const v = values as FilterValues;
    if (v.help) { console.log(FILTER_HELP); return EXIT.ok; }
    try {
      if (positionals.length !== 1) throw new CliUsageError('expected one scored file (concord filter scored.jsonl -o kept.jsonl)');
      if (!v.output) throw new CliUsageError('-o/--output is required');
      const summary = await filterAny({ input: positionals[0], output: v.output, dropOut: v['drop-out'], errors: v.errors, filter: filterOptionsFrom(v), strict: v.strict, log });
      if (!v.quiet) log(formatFilterSummary(summary));
      if (v.summary) writeFileAtomic(v.summary, JSON.stringify(summary, null, 2) + '\n');
      return EXIT.ok;
    } catch (e) {
      return exitFor(e, 'filter');
    }
  },

  async run(argv) {
    const filterFlags = Object.fromEntries(Object.entries(FILTER_OPTIONS).filter(([k]) => !(k in SCORE_OPTIONS)));
    const { values: v, positionals } = parseScoreArgs(argv, { ...filterFlags, 'scored-out': { type: 'string' } });
    if (v.help) { console.log(`concord run <in.jsonl> -o kept.jsonl [--drop-out dropped.jsonl] [--scored-out scored.jsonl] [score and filter options]\n\n${SCORE_HELP}\n\n${FILTER_HELP}`); return EXIT.ok; }
    try {
      if (positionals.length !== 1) throw new CliUsageError('expected one input file (concord run in.jsonl -o kept.jsonl)');
      if (!v.output) throw new CliUsageError('-o/--output is required');
      if (v.shard || v.shards || v['out-dir']) throw new CliUsageError('concord run does not shard: use concord score --shard i/n --out-dir DIR, then concord merge DIR --kept …');
      const filterOpts = filterOptionsFrom(v as FilterValues);
      const inputs = InputSet.resolve(positionals[0], { split: v.split as string | undefined });
      // The scored records go to --scored-out, or to <out>.scored.jsonl which is removed at the end
      // (it is also what --resume continues from).
      const scoredOut = (v['scored-out'] as string | undefined) ?? `${v.output}.scored.jsonl`;
      const { code, summary: s } = await runScore({ ...v, summary: undefined }, positionals[0], scoredOut, 'run', { inputs });
      const summary = s!;
      const fsum = await filterAny({
        input: scoredOut, output: v.output, dropOut: v['drop-out'] as string | undefined, errors: `${v.output}.filter-errors.jsonl`, filter: filterOpts, strict: v.strict, log,
      });
      if (!v['scored-out']) fs.rmSync(scoredOut, { force: true });
      if (!v.quiet) log(`${formatScoreSummary(summary)}\n${formatFilterSummary(fsum)}`);
      if (v.summary) writeFileAtomic(v.summary as string, JSON.stringify({ ...summary, filter: fsum }, null, 2) + '\n');
      return code;
    } catch (e) {
      return exitFor(e, 'run');
    }
  },

  async logprob(argv) {
    const { values: v } = parseArgs({
      args: argv,
      options: {
        model: { type: 'string', default: 'default' }, context: { type: 'string', default: '' }, target: { type: 'string' },
        device: { type: 'string', default: 'auto' }, json: { type: 'boolean', default: false },
      },
    });
    try {
      if (v.target === undefined || v.target === '') throw new CliUsageError('--target is required (the text to score)');
      const lm = await loadLm(v.model!, parseDeviceChoice(v.device));
      log(describeDevice(lm));
      const tok = lm.tokenizer;
      const start = tok.bosId ?? tok.eosId;
      if (start === null) throw new CliUsageError(`${lm.config.name}: no BOS/EOS token to start the sequence with`);
      // As in scoring: context and target are tokenised separately and joined as ids.
      const ctx = v.context ? encodeStandalone(tok, v.context) : [];
      const tgt = encodeStandalone(tok, v.target);
      const ids = [start, ...ctx, ...tgt];
      if (ids.length > lm.maxLen) throw new CliUsageError(`${ids.length} tokens is over the model's maxLen ${lm.maxLen}`);
      const [res] = await lm.scoreBatch([{ ids }]);
      const tokens = tgt.map((id, k) => {
        const pos = 1 + ctx.length + k;
        return { pos, id, token: tok.idToToken(id) ?? String(id), text: tok.decode([id]), logprob: res.logprobs[pos - 1] };
      });
      let sum = 0;
      for (const t of tokens) sum += t.logprob;
      const out = {
        model: lm.config.name, device: lm.deviceName, device_reason: lm.deviceReason ?? null,
        context_tokens: ctx.length, target_tokens: tgt.length, sum, mean: sum / tgt.length, ppl: Math.exp(-sum / tgt.length), tokens,
      };
      if (v.json) console.log(JSON.stringify(out, null, 2));
      else {
        console.log(`context: ${ctx.length} tokens (+BOS)   target: ${tgt.length} tokens`);
        console.log(`${'pos'.padStart(5)} ${'id'.padStart(6)}  ${'token'.padEnd(16)} logprob`);
        for (const t of tokens) console.log(`${String(t.pos).padStart(5)} ${String(t.id).padStart(6)}  ${JSON.stringify(t.token).padEnd(16)} ${t.logprob.toFixed(4)}`);
        console.log(`sum ${sum.toFixed(4)}   mean ${(sum / tgt.length).toFixed(4)}   perplexity ${out.ppl.toFixed(3)}`);
      }
      lm.dispose();
      return EXIT.ok;
    } catch (e) {
      return exitFor(e, 'logprob');
    }
  },

  /** `npm start`: score the embedded sample, filter with the main rule, show what happened. */
  async demo(argv) {
    const { values: v } = parseArgs({
      args: argv,
      options: {
        device: { type: 'string', default: 'auto' }, model: { type: 'string', default: 'default' }, input: { type: 'string' },
        'keep-fraction': { type: 'string' }, cosine: { type: 'string', default: 'off' }, keep: { type: 'boolean', default: false },
      },
    });
    try {
      const input = v.input ?? path.join(packageRoot(), 'data', 'sample-pairs.jsonl');
      const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'concord-demo-'));
      const scored = path.join(dir, 'scored.jsonl');
      const t0 = performance.now();
      const { summary } = await runScore({ device: v.device, model: v.model, cosine: v.cosine, passes: 'min', 'on-overlong': 'truncate' }, input, scored, 'demo');
      log(formatScoreSummary(summary!));
      const keepFraction = numFlag(v['keep-fraction'], '--keep-fraction', { min: 0, max: 1 });
      const recs = fs.readFileSync(scored, 'utf8').trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown> & { scores: Record<string, number> });
      const f = applyFilter(recs.map((r) => r.scores), { rule: 'main', keepFraction });
      const kept = f.keep.filter(Boolean).length;
      console.log(`\nmain rule (${Object.entries(f.applied).map(([k, x]) => `${k}=${typeof x === 'number' ? Number(x.toPrecision(4)) : x}`).join(' ')}): kept ${kept}, dropped ${recs.length - kept} of ${recs.length}`);
      const order = recs.map((_, i) => i).sort((a, b) => f.score[b] - f.score[a]);
      const show = (i: number) => {
        const r = recs[i];
        const g = mainSignals(r.scores, 'gain');
        const y = String(r.output).replace(/\s+/g, ' ');
        return `  [${r.note === 'misaligned' ? 'misaligned' : 'aligned   '}] score ${f.score[i].toFixed(3)}  g_fwd ${g.fwd.toFixed(3)}  g_rev ${g.rev.toFixed(3)}  ${f.keep[i] ? 'KEPT   ' : 'DROPPED'}\n      x: ${String(r.instruction)}${r.input ? ` / ${String(r.input)}` : ''}\n      y: ${y.length > 90 ? y.slice(0, 90) + '…' : y}`;
      };
      console.log('\nbest pairs:');
      for (const i of order.slice(0, 3)) console.log(show(i));
      console.log('\nworst pairs:');
      for (const i of order.slice(-3).reverse()) console.log(show(i));
      const mis = recs.map((r, i) => [r.note === 'misaligned', f.keep[i]] as const);
      const nMis = mis.filter(([m]) => m).length;
      const misDropped = mis.filter(([m, k]) => m && !k).length;
      const alignedKept = mis.filter(([m, k]) => !m && k).length;
      console.log(`\nmisaligned pairs: ${misDropped} of ${nMis} dropped; aligned pairs: ${alignedKept} of ${recs.length - nMis} kept`);
      if (misDropped === nMis) console.log('every misaligned pair landed among the dropped ones.');
      else {
        console.log(`${nMis - misDropped} misaligned pair(s) were kept:`);
        recs.forEach((r, i) => { if (r.note === 'misaligned' && f.keep[i]) console.log(show(i)); });
      }
      console.log(`(${((performance.now() - t0) / 1000).toFixed(1)} s; scored records in ${v.keep ? scored : 'a temporary folder, removed'})`);
      if (!v.keep) fs.rmSync(dir, { recursive: true, force: true });
      return EXIT.ok;
    } catch (e) {
      return exitFor(e, 'demo');
    }
  },
};

function packageRoot(): string {
  let dir = path.dirname(fileURLToPath(import.meta.url));
  for (;;) {
    if (fs.existsSync(path.join(dir, 'package.json'))) return dir;
    const up = path.dirname(dir);
    if (up === dir) throw new Error('no package.json above the CLI');
    dir = up;
  }
}
