// `concord score`: the scorer's flags → createScorer → scoreFile. Also the pieces `run` and
// `demo` share: the score flags, their help, the scorer set-up and the summary lines.

import { DEFAULT_FIELDS } from '../pipeline/input.js';
import { createScorer, type ConfiguredScorer } from '../pipeline/create.js';
import { checkInputFile, errorsPathFor, lockOutputs, preflightPaths, scoreFile, scoreOptionsHash, type ScoreSummary } from '../jobs/index.js';
import { openRecords, type RecordInput } from '../io/inputs.js';
import { OUT_FORMATS, scoreTarget, type OutFormat } from '../io/record-writer.js';
import { argvWithoutShard, resolveShard } from '../shard/index.js';
import { ShardRun, defaultShardFormat } from '../shard/run.js';
import { writeFileAtomic } from '../io/writers.js';
import { nodeBuiltin, settings } from '../env.js';
import { SIGNAL_HELP, SIGNAL_OPTIONS, attachSignals, needsTokenLogprobs, signalSettings } from '../signals/cli.js';
import { withGgufFile } from '../models/load.js';
import { choiceFlag, command, deviceFlag, EXIT, loadProgressPrinter, log, numFlag, parseFlags, unescapeCli, UsageError } from './common.js';

export const SCORE_OPTIONS = {
  output: { type: 'string', short: 'o' },
  model: { type: 'string' },
  'gguf-file': { type: 'string' },
  'reverse-model': { type: 'string' },
  device: { type: 'string' },
  'forward-template': { type: 'string' },
  'reverse-template': { type: 'string' },
  'chat-template': { type: 'string' },
  system: { type: 'string' },
  revision: { type: 'string' },
  passes: { type: 'string' },
  'max-len': { type: 'string' },
  'on-overlong': { type: 'string' },
  'instruction-field': { type: 'string' },
  'input-field': { type: 'string' },
  'output-field': { type: 'string' },
  cosine: { type: 'string' },
  'embed-model': { type: 'string' },
  errors: { type: 'string' },
  strict: { type: 'boolean' },
  resume: { type: 'boolean' },
  summary: { type: 'string' },
  quiet: { type: 'boolean' },
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
  'no-entropy': { type: 'boolean' },
  ...SIGNAL_OPTIONS,
} as const;

export type ScoreFlags = { [K in keyof typeof SCORE_OPTIONS]?: (typeof SCORE_OPTIONS)[K]['type'] extends 'boolean' ? boolean : string };

export const SCORE_HELP = `concord score <in.jsonl|in.json> -o scored.jsonl [options]

Models and devices
  --model <path|id|default>     forward model (default: stories15M); an id such as Qwen/Qwen3-0.6B is
                                downloaded into the Hugging Face cache on first use (docs/hub.md)
  --revision REV                branch, tag or commit of a --model id (default main)
  --gguf-file NAME              one GGUF file of the --model id's repo, downloaded alone (the same as
                                --model Org/Name:NAME, the form every model flag takes; docs/gguf.md)
  --reverse-model <path|id>     a separate y→x model (default: the forward model with the reverse template)
  --device auto|webgpu|cpu|cpu-twin  (default auto; the choice and its reason are printed;
                                cpu runs onnxruntime, cpu-twin the TypeScript reference twin)
  --gpu N|NAME                  which Vulkan adapter: N-th GPU (0-based, PCI order) or a substring of
                                its name (docs/scale.md "Several GPUs in one host")
Templates (slots {x} and {y}; \\n \\t \\\\ escapes; {{ }} literal braces)
  --forward-template T          default "{x}{y}" for word-start (sentencepiece) tokenizers such as
                                stories15M's, "{x}\\n\\n{y}" for byte-level ones (GPT-2, Qwen2)
  --reverse-template T          default "{y}{x}" / "{y}\\n\\n{x}"
  --chat-template auto|none|F   the model's own Jinja chat template (auto: chat_template.jinja or
                                tokenizer_config.json's chat_template, when it has one), none (default),
                                or a .jinja file; x is the user turn and y the assistant turn (reverse:
                                swapped)
  --system TEXT                 a system prompt for the chat template (implies --chat-template auto;
                                \\n \\t \\\\ escapes)
  --passes min|4                min (default): fewest passes the templates allow; 4: always four
Lengths
  --max-len N                   longest sequence (default: the model's maxLen)
  --on-overlong truncate|error  truncate (default: x from the left, y from the right) or report an error
Input
  --instruction-field F  --input-field F  --output-field F   (Alpaca field names)
  --limit N                     score only the first N records
  in.* may be JSONL, JSONL.gz/.zst, a JSON array, Parquet, a dataset folder or a quoted glob
  --split NAME                  a folder's or glob's split (train-*.parquet, train/…)
Sharded runs (docs/scale.md "Sharded runs")
  --shard i/n                   score shard i of n (default: SLURM_ARRAY_TASK_ID / JOB_COMPLETION_INDEX)
  --shards n                    the shard count when i comes from the job engine
  --out-dir DIR                 write DIR/shard-<i>-of-<n>.<ext> + manifest; then concord merge DIR
  --out-format jsonl|parquet    the output's format (-o: default by extension; shards: default
                                parquet for Parquet input, else jsonl)
Cosine
  --cosine auto|embed|lm|off    auto: the sentence encoder (on WebGPU or onnxruntime) when its files
                                exist, else the LM's mean hidden states; off skips it (fastest)
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
  --token-budget N              override the model's tokens per batch
Scores (docs/signals.md)
  fwd_logp rev_logp y_logp x_logp (mean log-probs), ifd, rifd, cosine, y_entropy x_entropy (mean
  next-token entropy, nats), upd (OpenDataArena-Tool UPD), norm_loss (bits/token).
  --no-entropy                  skip the next-token entropy: y_entropy, x_entropy and upd are null
                                (norm_loss stays); saves the entropy's cost on the onnxruntime path
  ifd is Cherry LLM's IFD: PPL(y | x) / PPL(y) = exp(y_logp − fwd_logp); ifd > 1 means the
  instruction does not help predict the response. Some tools (Oumi's IFDAnalyzer) publish the inverse,
  PPL(y) / PPL(y | x) = 1 / ifd, where higher is better: invert before comparing. rifd likewise.
${SIGNAL_HELP}`;

/** Every score flag checked (values, ranges, choices) before anything is loaded. */
export function scoreSettings(v: ScoreFlags) {
  const passes = choiceFlag(v.passes ?? 'min', '--passes', ['min', '4'] as const);
  const fields = {
    ...(v['instruction-field'] ? { instruction: v['instruction-field'] } : {}),
    ...(v['input-field'] ? { input: v['input-field'] } : {}),
    ...(v['output-field'] ? { output: v['output-field'] } : {}),
  };
  for (const [k, f] of Object.entries(fields)) if (!f.trim()) throw new UsageError(`--${k}-field must name a field (default '${DEFAULT_FIELDS[k as keyof typeof DEFAULT_FIELDS]}')`);
  const verifyN = numFlag(v.verify, '--verify', { int: true, min: 0 }) ?? 0;
  return {
    model: withGgufFile(v.model, v['gguf-file']) ?? 'default',
    reverseModel: v['reverse-model'] ?? null,
    device: deviceFlag(v.device),
    forwardTemplate: v['forward-template'] !== undefined ? unescapeCli(v['forward-template']) : undefined,
    reverseTemplate: v['reverse-template'] !== undefined ? unescapeCli(v['reverse-template']) : undefined,
    chatTemplate: v['chat-template'],
    system: v.system !== undefined ? unescapeCli(v.system) : undefined,
    revision: v.revision,
    passes: passes === '4' ? (4 as const) : ('min' as const),
    maxLen: numFlag(v['max-len'], '--max-len', { int: true, min: 2 }),
    overlong: choiceFlag(v['on-overlong'] ?? 'truncate', '--on-overlong', ['truncate', 'error'] as const),
    fields,
    cosine: choiceFlag(v.cosine ?? 'auto', '--cosine', ['auto', 'embed', 'lm', 'off'] as const),
    embedModel: v['embed-model'],
    verify: verifyN > 0 ? { batches: verifyN, tol: numFlag(v['verify-tol'], '--verify-tol', { min: 0 }) ?? 1e-3 } : null,
    windowSize: numFlag(v.window, '--window', { int: true, min: 1 }),
    tokenBudget: numFlag(v['token-budget'], '--token-budget', { int: true, min: 1 }),
    checkpointEvery: numFlag(v['checkpoint-every'], '--checkpoint-every', { int: true, min: 1 }),
    limit: numFlag(v.limit, '--limit', { int: true, min: 0 }),
    signals: signalSettings(v),
    entropy: !v['no-entropy'],
  };
}

export type ScoreSettings = ReturnType<typeof scoreSettings>;

export function scorerFromSettings(s: ScoreSettings, quiet: boolean): Promise<ConfiguredScorer> {
  const inject = settings.testInjectDeviation;
  return createScorer({
    model: s.model, reverseModel: s.reverseModel, device: s.device,
    forwardTemplate: s.forwardTemplate, reverseTemplate: s.reverseTemplate, chatTemplate: s.chatTemplate, system: s.system, revision: s.revision,
    passes: s.passes, maxLen: s.maxLen, overlong: s.overlong, fields: s.fields,
    cosine: s.cosine, embedModel: s.embedModel, verify: s.verify,
    windowSize: s.windowSize, tokenBudget: s.tokenBudget, injectDeviation: inject || undefined, entropy: s.entropy,
    ...(needsTokenLogprobs(s.signals) ? { tokenLogprobs: true } : {}),
    log: quiet ? undefined : log,
    onLoadProgress: quiet ? undefined : loadProgressPrinter(),
  });
}

const fmt = (x: number | undefined | null, d = 3) => (x === undefined || x === null || !Number.isFinite(x) ? '–' : x.toFixed(d));

export function formatScoreSummary(s: ScoreSummary): string {
  const c = s.counts;
  const lines = [
    `concord score: ${c.records} records → ${c.scored} scored, ${c.errors} errors${s.errors_file ? ` (${s.errors_file})` : ''}, ${c.truncated} truncated${c.resumed_from ? ` (resumed after ${c.resumed_from})` : ''}`,
    `  passes ${s.passes}  forward ${JSON.stringify(s.templates.forward)}  reverse ${JSON.stringify(s.templates.reverse)}  max-len ${s.max_len}  cosine ${s.cosine_source ?? 'off'}`,
  ];
  const dev = s.device as { backend: string; name: string; reason: string | null } | undefined;
  // The reason for the device is on the opening line ("concord: model … on …"), not repeated here.
  if (dev) lines.push(`  device ${dev.name}`);
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

/**
 * Load the scorer for the checked settings, run `job` with it, free it. Ctrl-C / kill leave the
 * last checkpoint standing and say how to continue (exit 128 + signal number).
 */
export async function withScorer<T>(s: ScoreSettings, quiet: boolean, cmd: string, job: (scorer: ConfiguredScorer) => Promise<T>): Promise<T> {
  const scorer = await attachSignals(await scorerFromSettings(s, quiet), s.signals, s.fields, s.device);
  const onSignal = (sig: NodeJS.Signals) => {
    log(`\nconcord ${cmd}: interrupted (${sig}); rerun the same command with --resume to continue from the last checkpoint`);
    process.exit(sig === 'SIGINT' ? 130 : 143);
  };
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  try {
    return await job(scorer);
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
    scorer.dispose();
  }
}

/** What a score summary says of the scorer (command, device, models). */
export function describeRun(summary: ScoreSummary, scorer: ConfiguredScorer, cmd: string): ScoreSummary {
  return Object.assign(summary, { command: cmd, device: scorer.device, model: scorer.models[0].config.name, reverse_model: scorer.models[1]?.config.name ?? null });
}

export const verifyCode = (summary: ScoreSummary): number => (summary.verify && !summary.verify.ok ? EXIT.verifyFailed : EXIT.ok);

/** --out-format, when given. */
export const outFormatFlag = (v: string | undefined): OutFormat | undefined => (v === undefined ? undefined : choiceFlag(v, '--out-format', OUT_FORMATS));

/** The one input file a file command takes. */
export function oneInput(positionals: string[], usage: string): string {
  if (positionals.length !== 1) throw new UsageError(`expected one input file (${usage})`);
  return positionals[0];
}

export function requireOutput(o: string | undefined): string {
  if (!o) throw new UsageError('-o/--output is required');
  return o;
}

/** The input as a set of files (one file, a folder, a glob; --split), checked before any model loads. */
export function inputSetFor(input: string, split: string | undefined): RecordInput {
  // A FIFO, a device, an unreadable file: refused before anything opens it (exit 3). A folder is a dataset.
  let st: import('node:fs').Stats | null = null;
  try { st = nodeBuiltin<typeof import('node:fs')>('fs').statSync(input); } catch { /* a glob, or missing: resolve says */ }
  if (st && !st.isDirectory()) checkInputFile(input);
  return openRecords(input, { split });
}

export const scoreCommand = command('score', SCORE_HELP, async (argv, defer) => {
  const { values: v, positionals } = parseFlags(argv, SCORE_OPTIONS, true);
  const input = oneInput(positionals, 'concord score in.jsonl -o scored.jsonl');
  const shard = resolveShard({ shard: v.shard, shards: v.shards, outDir: v['out-dir'] });
  if (!v.output && !shard) throw new UsageError('-o/--output is required (or --out-dir with --shard for a sharded run)');
  if (shard && v.output) throw new UsageError('a sharded run writes into --out-dir; drop -o (concord merge DIR -o … joins the shards)');
  if (shard && v.limit !== undefined) throw new UsageError('--limit does not combine with --shard');
  const s = scoreSettings(v);
  const inputs = inputSetFor(input, v.split);
  if (v.gpu !== undefined) process.env.CONCORD_GPU = v.gpu; // read by src/gpu/device.ts (settings.gpu)
  let run: ShardRun | null = null;
  if (shard) {
    const format = choiceFlag(v['out-format'] ?? defaultShardFormat(inputs), '--out-format', ['jsonl', 'parquet'] as const);
    run = new ShardRun({ spec: shard, outDir: v['out-dir']!, format, inputs, inputSpec: input, split: v.split, argv: argvWithoutShard(argv), log });
  } else {
    // Paths are checked (collisions, directories) and locked before any model loads.
    const output = v.output!;
    defer(lockOutputs(preflightPaths({ input: inputs.plainSingle ? inputs.files[0].path : undefined, output, errors: v.errors ?? errorsPathFor(output), summary: v.summary }).outputs));
  }
  const summary = await withScorer(s, !!v.quiet, 'score', async (scorer) => {
    const optionsHash = scoreOptionsHash(scorer, s.limit);
    // A shard decides where it writes (or that it is complete already) once the options hash is known.
    const plan = run ? await run.plan(optionsHash) : { output: v.output!, errors: v.errors, resume: !!v.resume, range: undefined };
    if (!plan) return null;
    if (run) defer(lockOutputs([plan.output]));
    // A Parquet output is scored into a resumable JSONL staging file and converted at the end.
    const target = scoreTarget(plan.output, plan.errors ?? errorsPathFor(plan.output), run ? undefined : outFormatFlag(v['out-format']));
    const sum = await scoreFile({
      scorer, input, inputs, range: plan.range, output: target.scoreTo, errors: target.errors, resume: plan.resume, strict: v.strict,
      quiet: v.quiet, log, checkpointEvery: s.checkpointEvery, limit: s.limit, optionsHash,
    });
    await target.finish();
    sum.output = plan.output;
    return describeRun(sum, scorer, 'score');
  });
  if (!summary) return EXIT.ok; // a complete shard, skipped
  if (run) { run.finish(summary); summary.manifest = run.manifestPath; }
  const code = verifyCode(summary);
  if (!v.quiet) log(formatScoreSummary(summary));
  if (v.summary) writeFileAtomic(v.summary, JSON.stringify(summary, null, 2) + '\n');
  if (code === EXIT.verifyFailed) log('concord score: --verify: the primary backend deviates from the CPU twin beyond --verify-tol');
  return code;
});
