// `concord run`: score, then filter (src/jobs/run.ts runFile), with the flags of both.

import { errorsPathFor, lockOutputs, preflightPaths, runFile, scoredPathFor } from '../jobs/index.js';
import { writeFileAtomic } from '../io/writers.js';
import { command, log, parseFlags, UsageError } from './common.js';
import { FILTER_HELP, FILTER_OPTIONS, filterOptionsFrom, formatFilterSummary } from './filter.js';
import {
  SCORE_HELP, SCORE_OPTIONS, describeRun, formatScoreSummary, inputSetFor, oneInput, outFormatFlag, requireOutput, scoreSettings, verifyCode, withScorer,
} from './score.js';

const RUN_OPTIONS = { ...FILTER_OPTIONS, ...SCORE_OPTIONS, 'scored-out': { type: 'string' } } as const;

export const RUN_HELP = `concord run <in.jsonl> -o kept.jsonl [--drop-out dropped.jsonl] [--scored-out scored.jsonl] [score and filter options]

Bad input records go to --errors (default <out>.errors.jsonl). The scored records go to
--scored-out, or to <out>.scored.jsonl, removed at the end (--resume continues from it).

${SCORE_HELP}

${FILTER_HELP}`;

export const runCommand = command('run', RUN_HELP, async (argv, defer) => {
  const { values: v, positionals } = parseFlags(argv, RUN_OPTIONS, true);
  const input = oneInput(positionals, 'concord run in.jsonl -o kept.jsonl');
  const output = requireOutput(v.output);
  const s = scoreSettings(v);
  const filter = filterOptionsFrom(v);
  if (v.shard || v.shards || v['out-dir']) throw new UsageError('concord run does not shard: use concord score --shard i/n --out-dir DIR, then concord merge DIR --kept …');
  const inputs = inputSetFor(input, v.split);
  const scoredOut = scoredPathFor({ output, scoredOut: v['scored-out'] });
  defer(lockOutputs(preflightPaths({ input: inputs.plainSingle ? inputs.files[0].path : undefined, output, dropOut: v['drop-out'], scoredOut, errors: v.errors ?? errorsPathFor(output), summary: v.summary }).outputs));
  return withScorer(s, !!v.quiet, 'run', async (scorer) => {
    const r = await runFile({
      scorer, input, inputs, output, dropOut: v['drop-out'], scoredOut: v['scored-out'], errors: v.errors, filter,
      resume: v.resume, strict: v.strict, quiet: v.quiet, log, checkpointEvery: s.checkpointEvery, limit: s.limit,
      outFormat: outFormatFlag(v['out-format']),
    });
    describeRun(r.score, scorer, 'run');
    if (!v.quiet) log(`${formatScoreSummary(r.score)}\n${formatFilterSummary(r.filter)}`);
    if (v.summary) writeFileAtomic(v.summary, JSON.stringify({ ...r.score, filter: r.filter }, null, 2) + '\n');
    return verifyCode(r.score);
  });
});
