// `concord select scored.jsonl (--budget N | --keep-fraction F) --diversity τ -o selected.jsonl`:
// budgeted, diversity-aware selection (src/select).

import * as fs from 'node:fs';
import { parseArgs } from 'node:util';
import { FUSIONS, RULES, type Fusion, type Rule } from '../filter/index.js';
import { parseDeviceChoice } from '../gpu/device.js';
import { selectFile, type SelectOn } from '../select/file.js';
import { EXIT, UsageError } from './main.js';

export const SELECT_HELP = `concord select <scored.jsonl> (--budget N | --keep-fraction F) [--diversity τ] -o selected.jsonl

Walks the pairs by the rule's score, best first, and keeps one only if the cosine of its embedding
with every pair kept so far is below τ, until N (or F × records) pairs are kept (DEITA's
score-first greedy). Output: the selected records in input order, with select_rank and filter_score.

  --budget N             pairs to keep
  --keep-fraction F      or this fraction of the scored records
  --diversity τ          cosine bound to every kept pair (default 0.9; 1 = no diversity: top-N by score)
  --rule R               the ranking (default auto: fused with encoder cosines, else main); also
                         ${RULES.join(', ')}
  --fusion sum|mean|min  --signal gain|logp  --fwd-threshold X  --rev-threshold X  --min-cosine X
                         as for concord filter (thresholds given exclude pairs from the walk)
  --on x|y|xy            the text embedded: the prompt x, the response y, or x + "\\n\\n" + y (default xy)
  --embed-model M        sentence encoder (default minilm = all-MiniLM-L6-v2)
  --device auto|webgpu|cpu  where the encoder and the all-pairs cosine run (default auto)
  --block-size N         candidates per block (default: GPU up to 4096, CPU 1024)
  --summary FILE  --quiet`;

function num(v: string | undefined, name: string, o: { int?: boolean; min?: number; max?: number } = {}): number | undefined {
  if (v === undefined) return undefined;
  const x = Number(v);
  if (!Number.isFinite(x) || (o.int && !Number.isInteger(x)) || (o.min !== undefined && x < o.min) || (o.max !== undefined && x > o.max)) {
    throw new UsageError(`${name} must be ${o.int ? 'an integer' : 'a number'}${o.min !== undefined ? ` ≥ ${o.min}` : ''}${o.max !== undefined ? ` ≤ ${o.max}` : ''} (got '${v}')`);
  }
  return x;
}

export async function selectCommand(argv: string[]): Promise<number> {
  const { values: v, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: {
      output: { type: 'string', short: 'o' }, budget: { type: 'string' }, 'keep-fraction': { type: 'string' },
      diversity: { type: 'string', default: '0.9' }, rule: { type: 'string', default: 'auto' }, fusion: { type: 'string', default: 'sum' },
      signal: { type: 'string', default: 'gain' }, 'fwd-threshold': { type: 'string' }, 'rev-threshold': { type: 'string' }, 'min-cosine': { type: 'string' },
      on: { type: 'string', default: 'xy' }, 'embed-model': { type: 'string', default: 'minilm' }, device: { type: 'string', default: 'auto' },
      'block-size': { type: 'string' }, summary: { type: 'string' }, quiet: { type: 'boolean', default: false }, help: { type: 'boolean', short: 'h', default: false },
    },
  });
  if (v.help) { console.log(SELECT_HELP); return EXIT.ok; }
  if (positionals.length !== 1) throw new UsageError('expected one scored file (concord select scored.jsonl --budget N -o selected.jsonl)');
  if (!v.output) throw new UsageError('-o/--output is required');
  const budget = num(v.budget, '--budget', { int: true, min: 0 });
  const keepFraction = num(v['keep-fraction'], '--keep-fraction', { min: 0, max: 1 });
  if ((budget === undefined) === (keepFraction === undefined)) throw new UsageError('give one of --budget N or --keep-fraction F');
  const tau = num(v.diversity, '--diversity', { min: -1, max: 1 })!;
  if (!RULES.includes(v.rule as Rule)) throw new UsageError(`--rule must be one of ${RULES.join(', ')} (got '${v.rule}')`);
  if (!FUSIONS.includes(v.fusion as Fusion)) throw new UsageError(`--fusion must be ${FUSIONS.join(', ')} (got '${v.fusion}')`);
  if (v.signal !== 'gain' && v.signal !== 'logp') throw new UsageError(`--signal must be gain or logp (got '${v.signal}')`);
  if (v.on !== 'x' && v.on !== 'y' && v.on !== 'xy') throw new UsageError(`--on must be x, y or xy (got '${v.on}')`);
  const blockSize = num(v['block-size'], '--block-size', { int: true, min: 1 });
  const file = positionals[0];
  if (!fs.existsSync(file)) { console.error(`concord select: ${file}: no such file`); return EXIT.inputErrors; }
  const log = v.quiet ? () => {} : (s: string) => { process.stderr.write(`${s}\n`); };

  const { sharedRuntime } = await import('../models/index.js');
  const { loadEmbedder } = await import('../embed/index.js');
  const { rt, reason } = await sharedRuntime(parseDeviceChoice(v.device));
  const enc = await loadEmbedder(v['embed-model']!, { device: rt ?? 'cpu' });
  log(`concord: encoder ${enc.config.name} on ${enc.deviceName} — ${reason}`);
  try {
    const s = await selectFile({
      input: file, output: v.output, budget, keepFraction, tau, on: v.on, embedder: enc, device: rt ?? 'cpu', blockSize,
      filter: {
        rule: v.rule as Rule, fusion: v.fusion as Fusion, signal: v.signal,
        fwdThreshold: num(v['fwd-threshold'], '--fwd-threshold'), revThreshold: num(v['rev-threshold'], '--rev-threshold'),
        minCosine: num(v['min-cosine'], '--min-cosine', { min: -1, max: 1 }),
      },
      log: (s) => process.stderr.write(`${s}\n`),
    });
    log(`concord select: ${s.records} records, ${s.ranked} ranked by ${s.applied.rule}; walked ${s.walked} best first, ${s.selected} selected (budget ${s.budget}), ${s.rejected_for_diversity} turned down (cosine ≥ ${s.tau} to a kept pair on ${s.on}), ${s.errors} unreadable`);
    log(`concord select: embedding ${s.embed_ms.toFixed(0)} ms on ${enc.deviceName}; comparison ${s.compare_ms.toFixed(0)} ms on ${rt ? rt.name : 'CPU'} (blocks of ${s.block_size}, ${s.score_blocks} score blocks)`);
    if (v.summary) fs.writeFileSync(v.summary, JSON.stringify(s, null, 2) + '\n');
    return s.errors ? EXIT.inputErrors : EXIT.ok;
  } finally {
    enc.dispose();
  }
}
