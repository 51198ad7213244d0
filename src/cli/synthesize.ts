// `concord synthesize`: backtranslation with the mutual filter (src/synthesize/, docs/synthesize.md).
// The flags of score (models, templates, cosine), generate (sampling) and filter (the rule) →
// createScorer + the reverse model's Decoder → synthesizeFile. `--demo` runs it on the sample stories.

import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { packageRoot } from '../env.js';
import { promptBuilder } from '../generate/prompts.js';
import type { SamplingParams } from '../generate/types.js';
import { openRecords } from '../io/inputs.js';
import { writeFileAtomic } from '../io/writers.js';
import { checkInputFile, errorsPathFor, lockOutputs, PathError, preflightPaths } from '../jobs/index.js';
import type { LanguageModel } from '../models/lm.js';
import { resolveChatTemplate } from '../pipeline/chat-template.js';
import type { ConfiguredScorer } from '../pipeline/index.js';
import { parseAlpha, RECORD_SHAPES, synthesizeFile, type SynthesizeSummary } from '../synthesize/index.js';
import { choiceFlag, command, EXIT, log, numFlag, parseFlags, UsageError } from './common.js';
import { MAX_SAMPLES, stopFlag } from './generate.js';
import { FILTER_OPTIONS, filterOptionsFrom } from './filter.js';
import { outFormatFlag, SCORE_OPTIONS, scoreSettings, withScorer, type ScoreFlags } from './score.js';

export const SYNTHESIZE_HELP = `concord synthesize <responses.jsonl> -o pairs.jsonl [options]
concord synthesize --demo [--model M] [--device D]

MAIN's data step (docs/synthesize.md): for each unlabelled response (its output field, or the last
assistant turn), K candidate instructions from the reverse model; every (candidate, response) pair
scored in both directions plus the cosine, as concord score does; per response the candidate the
rule ranks first (its explicit thresholds only; ties → lowest sample index); then the rule over
the chosen pairs. Output: the kept pairs with scores, filter_score, candidate {index, rank, of,
rule_score}, source, weight, iteration; seed pairs (--seed-data) mixed in with weight 1.

Generation (as concord generate --direction reverse)
  --num-candidates K          candidate instructions per response (default 4, at most 1024)
  --reverse-model M           the y→x model that writes and scores the instructions (default: the
                              forward model with the reverse template / chat roles swapped)
  --temperature T  --top-p P  (defaults 0.7 and 0.9, as Humpback)   --top-k K  --min-p P
  --max-new-tokens N          (default 64)   --seed S (default 0; candidate j of record i: S + i·K + j)
  --stop TEXT                 stop string (repeatable; \\n escapes); EOS always stops
  --slots N                   sequences decoded together (default 8)
  --chunk N                   responses generated, then scored, together (default 32)
Scoring (as concord score)
  --model M  --gguf-file F  --device auto|webgpu|cpu|cpu-twin  --revision R  --forward-template T  --reverse-template T
  --chat-template auto|none|F  --system TEXT  --max-len N  --on-overlong truncate|error (a response too long
  for its reverse prompt + --max-new-tokens: its head kept, or an error)  --cosine auto|embed|lm|off  --embed-model M
  --no-entropy (y_entropy, x_entropy, upd null; skips the entropy's cost)
  --instruction-field F  --input-field F  --output-field F  --limit N
Rule (as concord filter; default auto: fused with encoder cosines, else main)
  --rule R  --signal gain|logp  --fusion sum|mean|min  --min-score X  --keep-fraction F
  --fwd-threshold X  --rev-threshold X  --min-cosine X
Output
  --format alpaca|messages|sharegpt   record shape (default alpaca); other fields are kept
  --keep-candidates           the rejected candidates with their scores (candidates: […])
  --drop-out FILE             chosen pairs the set rule drops (weight 0)
  --seed-data FILE            seed pairs mixed in (source seed, weight 1)
  --alpha A|linear:A0:A1:T|balance   synthetic weight α_t (default 1): constant; A0 + (A1−A0)·min(t,T)/T;
                              n_seed / n_synthetic_kept
  --iteration t               MAIN loop iteration (default 1), recorded in every record
  --out-format jsonl|parquet  --errors FILE  --strict  --summary FILE  --quiet
Outputs appear atomically at the end; a rerun recomputes everything (no --resume).`;

const OPTIONS = {
  ...SCORE_OPTIONS, ...FILTER_OPTIONS,
  'num-candidates': { type: 'string' }, temperature: { type: 'string' }, 'top-p': { type: 'string' }, 'top-k': { type: 'string' },
  'min-p': { type: 'string' }, 'max-new-tokens': { type: 'string' }, seed: { type: 'string' }, stop: { type: 'string', multiple: true },
  slots: { type: 'string' }, chunk: { type: 'string' }, format: { type: 'string' }, 'keep-candidates': { type: 'boolean' },
  'seed-data': { type: 'string' }, alpha: { type: 'string' }, iteration: { type: 'string' }, demo: { type: 'boolean' },
} as const;

type Flags = ReturnType<typeof parseFlags<typeof OPTIONS>>['values'];

function samplingFrom(v: Flags): SamplingParams {
  const s: SamplingParams = {
    temperature: numFlag(v.temperature, '--temperature', { min: 0 }) ?? 0.7,
    topK: numFlag(v['top-k'], '--top-k', { int: true, min: 0 }) ?? 0,
    topP: numFlag(v['top-p'], '--top-p', { min: 0, max: 1 }) ?? 0.9,
    minP: numFlag(v['min-p'], '--min-p', { min: 0, max: 1 }) ?? 0,
    seed: numFlag(v.seed, '--seed', { int: true, min: 0, max: 0xffffffff }) ?? 0,
  };
  if (s.topP === 0) throw new UsageError('--top-p must be above 0 (1 = off)');
  return s;
}

/** The model that writes the candidates: the reverse model, else the forward one; it must decode. */
function decodingModel(scorer: ConfiguredScorer): LanguageModel {
  const lm = scorer.models[1] ?? scorer.models[0];
  if (!lm.createDecoder) throw new UsageError(`${lm.config.name} on ${lm.deviceName} cannot decode yet; use --device cpu or --device cpu-twin`);
  return lm;
}

async function run(v: Flags, input: string, output: string, defer: (fn: () => void) => void, quiet: boolean): Promise<SynthesizeSummary> {
  const s = scoreSettings(v as ScoreFlags);
  const sampling = samplingFrom(v);
  const filter = filterOptionsFrom(v);
  const k = numFlag(v['num-candidates'], '--num-candidates', { int: true, min: 1, max: MAX_SAMPLES }) ?? 4;
  const stop = stopFlag(v.stop);
  const maxNewTokens = numFlag(v['max-new-tokens'], '--max-new-tokens', { int: true, min: 1 }) ?? 64;
  const slots = numFlag(v.slots, '--slots', { int: true, min: 1 }) ?? 8;
  const chunk = numFlag(v.chunk, '--chunk', { int: true, min: 1 });
  const iteration = numFlag(v.iteration, '--iteration', { int: true, min: 0 }) ?? 1;
  const alpha = parseAlpha(v.alpha ?? '1');
  if (alpha.kind === 'balance' && !v['seed-data']) throw new UsageError('--alpha balance needs --seed-data (α = n_seed / n_synthetic_kept)');
  const shape = choiceFlag(v.format ?? 'alpaca', '--format', RECORD_SHAPES);
  const outFormat = outFormatFlag(v['out-format']);
  const errorsPath = v.errors ?? errorsPathFor(output);
  // Paths checked and locked before any model loads; the inputs readable (exit 3).
  const inputs = openRecords(input);
  if (v['seed-data']) { checkInputFile(v['seed-data']); openRecords(v['seed-data']); }
  const { outputs } = preflightPaths({
    input: inputs.files.length === 1 ? inputs.files[0].path : undefined, output, dropOut: v['drop-out'], errors: errorsPath, summary: v.summary,
  });
  const seedKey = v['seed-data'] ? fs.realpathSync(v['seed-data']) : null;
  for (const out of outputs) {
    if (seedKey && fs.existsSync(out) && fs.realpathSync(out) === seedKey) throw new PathError(`${out} is the --seed-data file; writing it would destroy the seed pairs (choose another path)`);
  }
  defer(lockOutputs(outputs));
  return withScorer(s, quiet, 'synthesize', async (scorer) => {
    const lm = decodingModel(scorer);
    const chat = resolveChatTemplate(s.chatTemplate ?? (s.system !== undefined ? 'auto' : 'none'), scorer.models[0].tokenizer, { model: scorer.models[0].config.name, system: s.system });
    const builder = promptBuilder(lm.tokenizer, { direction: 'reverse', template: s.reverseTemplate, chat: chat.format });
    if (!quiet) log(`concord synthesize: ${k} candidates per response from ${lm.config.name} on ${lm.deviceName}, reverse prompt ${JSON.stringify(builder.template)}; T ${sampling.temperature}, top-p ${sampling.topP}, seed ${sampling.seed}`);
    return synthesizeFile({
      input, output, dropOut: v['drop-out'], errorsPath, scorer, decoderModel: lm, builder, fields: s.fields, sampling, numCandidates: k, maxNewTokens,
      stop, slots, maxLen: s.maxLen, filter, shape, keepCandidates: v['keep-candidates'], seedData: v['seed-data'],
      alpha, iteration, limit: s.limit, chunk, truncate: s.overlong !== 'error', strict: v.strict, outFormat, log,
      onProgress: quiet ? undefined : (n, c) => log(`concord synthesize: ${n} records read, ${c} candidates`),
    });
  });
}

export function formatSynthesizeSummary(s: SynthesizeSummary): string {
  const c = s.counts, q = s.cosine;
  const cq = (x: typeof q.chosen) => (x ? `mean ${x.mean.toFixed(3)} (p25 ${x.p25.toFixed(3)}, p50 ${x.p50.toFixed(3)}, p75 ${x.p75.toFixed(3)}; n ${x.n})` : '–');
  return [
    `concord synthesize: ${c.records} records → ${c.responses} responses with a chosen instruction (${c.candidates} candidates generated, ${c.scored_candidates} scored); ${c.kept} kept, ${c.dropped} dropped by the set rule (${Object.entries(s.applied).map(([k, v]) => `${k}=${typeof v === 'number' ? Number(v.toPrecision(4)) : v}`).join(' ')}); ${c.seed} seed; ${c.errors} errors${s.errors_file ? ` → ${s.errors_file}` : ''}`,
    `  weight: ${s.alpha.schedule} at iteration ${s.alpha.iteration} → synthetic weight ${Number(s.alpha.value.toPrecision(6))}, seed 1`,
    `  cosine (${q.source ?? 'off'}) of the candidate to the response: chosen ${cq(q.chosen)}; rejected ${cq(q.rejected)}`,
    `  ${s.generated_tokens} tokens generated; generate ${s.elapsed_s.generate.toFixed(1)} s, score ${s.elapsed_s.score.toFixed(1)} s, total ${s.elapsed_s.total.toFixed(1)} s (${(s.elapsed_s.total / Math.max(1, c.records)).toFixed(2)} s per response)`,
  ].join('\n');
}

/** --demo: the sample stories' responses, the proposed instructions beside the original ones. */
async function demo(v: Flags, defer: (fn: () => void) => void): Promise<number> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'concord-synthesize-demo-'));
  defer(() => fs.rmSync(dir, { recursive: true, force: true }));
  const input = path.join(packageRoot(), 'data', 'sample-pairs.jsonl');
  const flags: Flags = { limit: '6', 'max-new-tokens': '24', 'keep-candidates': true, 'keep-fraction': '1', ...v };
  const out = path.join(dir, 'pairs.jsonl');
  const s = await run(flags, input, out, defer, true);
  const line = (t: string) => JSON.stringify(t.length > 90 ? `${t.slice(0, 87)}...` : t);
  for (const r of openLines(out)) {
    console.log(`\n${r.id}  response: ${line(r.output)}`);
    console.log(`  original : ${line(r.original_instruction ?? '')}`);
    console.log(`  chosen   : ${line(r.instruction)}   (candidate ${r.candidate.index}, cosine ${r.scores.cosine?.toFixed(3)})`);
    for (const c of r.candidates ?? []) console.log(`  rejected : ${line(c.instruction)}   (rank ${c.rank ?? '–'}, cosine ${c.scores?.cosine?.toFixed(3) ?? '–'})`);
  }
  console.log(`\n${formatSynthesizeSummary(s)}`);
  return EXIT.ok;
}

// eslint-disable-next-line @typescript-eslint/no-explicit-any
const openLines = (f: string): any[] => fs.readFileSync(f, 'utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l));

export const synthesizeCommand = command('synthesize', SYNTHESIZE_HELP, async (argv, defer) => {
  const { values: v, positionals } = parseFlags(argv, OPTIONS, true);
  if (v.demo) {
    if (positionals.length || v.output) throw new UsageError('--demo takes no input or -o');
    return demo(v, defer);
  }
  if (positionals.length !== 1) throw new UsageError(`expected one responses file (concord synthesize responses.jsonl -o pairs.jsonl), got ${positionals.length}`);
  if (!v.output) throw new UsageError('-o/--output is required');
  const s = await run(v, positionals[0], v.output, defer, !!v.quiet);
  if (!v.quiet) log(formatSynthesizeSummary(s));
  if (v.summary) writeFileAtomic(v.summary, JSON.stringify(s, null, 2) + '\n');
  return EXIT.ok;
});
