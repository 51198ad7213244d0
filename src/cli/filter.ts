// `concord filter`: a scored file → kept (and dropped) records by a rule (src/filter).

import { appliedParams, FUSIONS, RULES, type FilterOptions, type Fusion, type Rule } from '../filter/index.js';
import { openRecords, type RecordInput } from '../io/inputs.js';
import { writeFileAtomic } from '../io/writers.js';
import { errorsPathFor, filterFile, lockOutputs, preflightPaths, type FilterSummary } from '../jobs/index.js';
import { choiceFlag, command, EXIT, log, numFlag, parseFlags } from './common.js';
import { oneInput, outFormatFlag, requireOutput } from './score.js';
export { outFormatFlag };

export const FILTER_OPTIONS = {
  output: { type: 'string', short: 'o' },
  'drop-out': { type: 'string' },
  rule: { type: 'string' },
  signal: { type: 'string' },
  fusion: { type: 'string' },
  'min-score': { type: 'string' },
  'keep-fraction': { type: 'string' },
  'fwd-threshold': { type: 'string' },
  'rev-threshold': { type: 'string' },
  'min-cosine': { type: 'string' },
  errors: { type: 'string' },
  strict: { type: 'boolean' },
  summary: { type: 'string' },
  quiet: { type: 'boolean' },
  'out-format': { type: 'string' },
} as const;

export type FilterFlags = { [K in keyof typeof FILTER_OPTIONS]?: (typeof FILTER_OPTIONS)[K]['type'] extends 'boolean' ? boolean : string };

export const FILTER_HELP = `concord filter <scored.jsonl> -o kept.jsonl [--drop-out dropped.jsonl] [options]

  --rule auto|main|fused|ifd|superfilter|rifd|cosine
                                auto (default): fused when every record has an encoder cosine
                                (cosine_source embed:…), else main (both directions' gains)
  --signal gain|logp            main: pointwise gains (default) or raw log-probs
  --fusion sum|mean|min         fused: sum (default): cosine + 0.1·(g_fwd + g_rev); mean / min:
                                the mean / smallest of the percentile ranks of g_fwd, g_rev, cosine
  --min-score X                 fused: keep only a fused score ≥ X
  --keep-fraction F             keep ≈ F of the pairs by the rule's ranking
  --fwd-threshold X  --rev-threshold X      main: explicit thresholds (signal units)
  --min-cosine X                cosine and fused rules (fused default: docs/scoring.md "Evaluating rules")
  --out-format jsonl|parquet    the outputs' format (default: by extension, .parquet → Parquet)
  --errors FILE  --strict  --summary FILE  --quiet
IFD convention: ifd = PPL(y | x) / PPL(y) as Cherry LLM defines it (lower is better; > 1: the
instruction does not help). Oumi's IFDAnalyzer publishes the inverse PPL(y) / PPL(y | x);
scores from them must be inverted (1 / x) before --rule ifd. rifd follows Cherry's direction too.
The input may be JSONL, JSONL.gz/.zst, a JSON array, Parquet, a dataset folder or a quoted glob (docs/data.md).`;

export function filterOptionsFrom(v: FilterFlags): FilterOptions {
  return {
    rule: choiceFlag(v.rule ?? 'auto', '--rule', RULES as readonly Rule[]),
    signal: choiceFlag(v.signal ?? 'gain', '--signal', ['gain', 'logp'] as const),
    keepFraction: numFlag(v['keep-fraction'], '--keep-fraction', { min: 0, max: 1 }),
    fwdThreshold: numFlag(v['fwd-threshold'], '--fwd-threshold'),
    revThreshold: numFlag(v['rev-threshold'], '--rev-threshold'),
    minCosine: numFlag(v['min-cosine'], '--min-cosine', { min: -1, max: 1 }),
    fusion: choiceFlag(v.fusion ?? 'sum', '--fusion', FUSIONS as readonly Fusion[]),
    minScore: numFlag(v['min-score'], '--min-score'),
  };
}

export function formatFilterSummary(s: FilterSummary): string {
  const c = s.counts;
  const a = appliedParams(s.applied, 5).map(([k, v]) => `${k}=${v}`).join(' ');
  return `concord filter: ${c.records} records → ${c.kept} kept, ${c.dropped} dropped, ${c.errors} errors  (${a})`;
}


/** The file the preflight checks an input against (collisions with outputs): a one-file input's file. */
export const preflightInput = (inputs: RecordInput): string | undefined => (inputs.files.length === 1 ? inputs.files[0].path : undefined);

export const filterCommand = command('filter', FILTER_HELP, async (argv, defer) => {
  const { values: v, positionals } = parseFlags(argv, FILTER_OPTIONS, true);
  const input = oneInput(positionals, 'concord filter scored.jsonl -o kept.jsonl');
  const output = requireOutput(v.output);
  const filter = filterOptionsFrom(v);
  const outFormat = outFormatFlag(v['out-format']);
  const inputs = openRecords(input);
  defer(lockOutputs(preflightPaths({ input: preflightInput(inputs), output, dropOut: v['drop-out'], errors: v.errors ?? errorsPathFor(output), summary: v.summary }).outputs));
  const summary = await filterFile({ input, inputs, output, dropOut: v['drop-out'], errors: v.errors, filter, strict: v.strict, log, outFormat });
  if (!v.quiet) log(formatFilterSummary(summary));
  if (v.summary) writeFileAtomic(v.summary, JSON.stringify(summary, null, 2) + '\n');
  return EXIT.ok;
});
