// `concord merge <out-dir>`: join the shards of a sharded `concord score` run (src/shard/merge.ts).

import { parseArgs } from 'node:util';
import { FilterError, RULES, type FilterOptions, type Rule } from '../filter/index.js';
import { InputError, writeFileAtomic } from '../pipeline/node-io.js';
import { ShardError } from '../shard/index.js';
import { MergeError, mergeShards } from '../shard/merge.js';
import { EXIT } from './main.js';

export const MERGE_HELP = `concord merge <out-dir> [-o scored.jsonl|.parquet] [--kept kept.jsonl --drop-out dropped.jsonl --rule … --keep-fraction F]

Checks that every shard of one run is in <out-dir> and agrees (same inputs, options and shard count;
no gap or overlap; files matching their manifests), then writes:
  -o FILE                       the scored set in input order (the same bytes one process writes)
  --errors FILE                 the shards' bad records (default <out>.errors.jsonl)
  --kept FILE  --drop-out FILE  a filter rule over ALL shards at once (percentiles over the whole set)
  --rule main|ifd|superfilter|rifd|cosine  --signal gain|logp  --keep-fraction F
  --fwd-threshold X  --rev-threshold X  --min-cosine X
  --summary FILE  --quiet
A missing, unfinished or inconsistent shard is an error (exit 3) naming it and the command that redoes it.`;

const num = (v: string | undefined, name: string, min?: number, max?: number): number | undefined => {
  if (v === undefined) return undefined;
  const n = Number(v);
  if (!Number.isFinite(n) || (min !== undefined && n < min) || (max !== undefined && n > max)) throw new ShardError(`${name} must be a number${min !== undefined ? ` in [${min}, ${max}]` : ''} (got '${v}')`);
  return n;
};

export async function mergeCommand(argv: string[]): Promise<number> {
  const { values: v, positionals } = parseArgs({
    args: argv, allowPositionals: true,
    options: {
      output: { type: 'string', short: 'o' }, errors: { type: 'string' }, kept: { type: 'string' }, 'drop-out': { type: 'string' },
      rule: { type: 'string', default: 'main' }, signal: { type: 'string', default: 'gain' }, 'keep-fraction': { type: 'string' },
      'fwd-threshold': { type: 'string' }, 'rev-threshold': { type: 'string' }, 'min-cosine': { type: 'string' },
      summary: { type: 'string' }, quiet: { type: 'boolean', default: false }, help: { type: 'boolean', short: 'h', default: false },
    },
  });
  if (v.help) { console.log(MERGE_HELP); return EXIT.ok; }
  const log = (s: string) => { if (!v.quiet) process.stderr.write(s + '\n'); };
  try {
    if (positionals.length !== 1) throw new ShardError('expected one folder (concord merge out-dir -o scored.jsonl)');
    if (!v.output && !v.kept && !v['drop-out']) throw new ShardError('nothing to write: give -o for the scored set and/or --kept/--drop-out for a filter rule');
    const rule = v.rule as Rule;
    if (!RULES.includes(rule)) throw new ShardError(`--rule must be one of ${RULES.join(', ')} (got '${v.rule}')`);
    if (v.signal !== 'gain' && v.signal !== 'logp') throw new ShardError(`--signal must be gain or logp (got '${v.signal}')`);
    const filter: FilterOptions = {
      rule, signal: v.signal, keepFraction: num(v['keep-fraction'], '--keep-fraction', 0, 1),
      fwdThreshold: num(v['fwd-threshold'], '--fwd-threshold'), revThreshold: num(v['rev-threshold'], '--rev-threshold'),
      minCosine: num(v['min-cosine'], '--min-cosine', -1, 1),
    };
    const s = await mergeShards({ dir: positionals[0], output: v.output, errors: v.errors, kept: v.kept, dropOut: v['drop-out'], filter, log });
    if (s.filter) {
      const c = s.filter.counts;
      log(`concord merge: filter over all ${s.shards} shards: ${c.records} records → ${c.kept} kept, ${c.dropped} dropped (${Object.entries(s.filter.applied).map(([k, x]) => `${k}=${typeof x === 'number' ? Number(x.toPrecision(5)) : x}`).join(' ')})`);
    }
    if (v.summary) writeFileAtomic(v.summary, JSON.stringify(s, null, 2) + '\n');
    return EXIT.ok;
  } catch (e) {
    if (e instanceof MergeError || e instanceof InputError) { process.stderr.write(`concord merge: ${(e as Error).message}\n`); return EXIT.inputErrors; }
    if (e instanceof ShardError || e instanceof FilterError) { process.stderr.write(`concord merge: ${(e as Error).message}\n`); return EXIT.usage; }
    throw e;
  }
}
