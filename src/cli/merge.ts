// `concord merge <out-dir>`: join the shards of a sharded `concord score` run (src/shard/merge.ts).

import { appliedParams, type FilterOptions } from '../filter/index.js';
import { lockOutputs, preflightPaths } from '../jobs/index.js';
import { writeFileAtomic } from '../io/writers.js';
import { mergeShards } from '../shard/merge.js';
import { command, EXIT, log, parseFlags, UsageError } from './common.js';
import { filterOptionsFrom } from './filter.js';

export const MERGE_HELP = `concord merge <out-dir> [-o scored.jsonl|.parquet] [--kept kept.jsonl --drop-out dropped.jsonl --rule … --keep-fraction F]

Checks that every shard of one run is in <out-dir> and agrees (same inputs, options and shard count;
no gap or overlap; files matching their manifests), then writes:
  -o FILE                       the scored set in input order (the same bytes one process writes)
  --errors FILE                 the shards' bad records (default <out>.errors.jsonl)
  --kept FILE  --drop-out FILE  a filter rule over ALL shards at once (percentiles over the whole set)
  --rule R  --signal gain|logp  --fusion F  --min-score X  --keep-fraction F   (as concord filter;
  --fwd-threshold X  --rev-threshold X  --min-cosine X                        default rule auto)
  --summary FILE  --quiet
A missing, unfinished or inconsistent shard is an error (exit 3) naming it and the command that redoes it.`;

export const mergeCommand = command('merge', MERGE_HELP, async (argv, defer) => {
  const { values: v, positionals } = parseFlags(argv, {
    output: { type: 'string', short: 'o' }, errors: { type: 'string' }, kept: { type: 'string' }, 'drop-out': { type: 'string' },
    rule: { type: 'string' }, signal: { type: 'string' }, fusion: { type: 'string' }, 'min-score': { type: 'string' }, 'keep-fraction': { type: 'string' },
    'fwd-threshold': { type: 'string' }, 'rev-threshold': { type: 'string' }, 'min-cosine': { type: 'string' },
    summary: { type: 'string' }, quiet: { type: 'boolean' },
  }, true);
  const say = (s: string) => { if (!v.quiet) log(s); };
  if (positionals.length !== 1) throw new UsageError('expected one folder (concord merge out-dir -o scored.jsonl)');
  if (!v.output && !v.kept && !v['drop-out']) throw new UsageError('nothing to write: give -o for the scored set and/or --kept/--drop-out for a filter rule');
  const filter: FilterOptions = filterOptionsFrom(v);
  const named: [string, string | undefined][] = [['-o', v.output], ['--errors', v.errors], ['--kept', v.kept], ['--drop-out', v['drop-out']], ['--summary', v.summary]];
  defer(lockOutputs(preflightPaths({ more: named.filter(([, p]) => p).map(([flag, p]) => ({ flag, path: p! })) }).outputs));
  const s = await mergeShards({ dir: positionals[0], output: v.output, errors: v.errors, kept: v.kept, dropOut: v['drop-out'], filter, log: say });
  if (s.filter) {
    const c = s.filter.counts;
    say(`concord merge: filter over all ${s.shards} shards: ${c.records} records → ${c.kept} kept, ${c.dropped} dropped (${appliedParams(s.filter.applied, 5).map(([k, x]) => `${k}=${x}`).join(' ')})`);
  }
  if (v.summary) writeFileAtomic(v.summary, JSON.stringify(s, null, 2) + '\n');
  return EXIT.ok;
});
