// `concord select scored.jsonl (--budget N | --keep-fraction F) [--objective deita|facility-location] [--prefilter ifd:F] -o selected.jsonl`:
// budgeted, diversity-aware selection (src/select).

import { FUSIONS, RULES, type Fusion, type Rule } from '../filter/index.js';
import { OBJECTIVES, selectFile, type Prefilter, type SelectObjective } from '../select/file.js';
import { openRecords } from '../io/inputs.js';
import { outFormatFlag } from './filter.js';
import { writeFileAtomic } from '../io/writers.js';
import { choiceFlag, command, deviceFlag, EXIT, numFlag, parseFlags, UsageError } from './common.js';

export const SELECT_HELP = `concord select <scored.jsonl> (--budget N | --keep-fraction F) [--objective deita|facility-location] [--prefilter ifd:F] -o selected.jsonl

deita (default): walks the pairs by the rule's score, best first, and keeps one only if the cosine
of its embedding with every pair kept so far is below τ, until N (or F × records) pairs are kept
(DEITA's score-first greedy). facility-location: embeds every candidate and chooses greedily the
pair of largest marginal gain of f(S) = Σ_i max_{j∈S} max(0, cos(i, j)) until N are chosen
(Superfiltering.D with --prefilter ifd:F). Output: the selected records in input order, with
select_rank (the choice order), filter_score and, for facility-location, select_gain.

  --budget N             pairs to keep
  --keep-fraction F      or this fraction of the scored records
  --objective O          deita (default) or facility-location
  --diversity τ          deita: cosine bound to every kept pair (default 0.9; 1 = no diversity: top-N by score)
  --prefilter ifd:F      first keep only the top F × (scored records) by IFD among IFD < 1, highest
                         first (Cherry's IFD = PPL(y|x) / PPL(y), as --rule ifd/superfilter rank it;
                         scores from a tool publishing 1/IFD must be inverted first)
  --rule R               the ranking (default auto: fused with encoder cosines, else main); also
                         ${RULES.join(', ')}
  --fusion sum|mean|min  --signal gain|logp  --fwd-threshold X  --rev-threshold X  --min-cosine X
                         as for concord filter (thresholds given exclude pairs from the walk)
  --on x|y|xy            the text embedded: the prompt x, the response y, or x + "\\n\\n" + y (default xy)
  --embed-model M        sentence encoder (default minilm = all-MiniLM-L6-v2)
  --device auto|webgpu|cpu  where the encoder and the all-pairs cosine run (default auto)
  --block-size N         candidates per block; facility-location: rows per score block (default:
                         GPU up to 4096, CPU 1024)
  --out-format jsonl|parquet  the output's format (default: by extension)
  --summary FILE  --quiet
The input may be any kind concord reads: JSONL, JSONL.gz/.zst, a JSON array, Parquet, a folder, a glob.`;

export const selectCommand = command('select', SELECT_HELP, async (argv) => {
  const { values: v, positionals } = parseFlags(argv, {
    output: { type: 'string', short: 'o' }, budget: { type: 'string' }, 'keep-fraction': { type: 'string' },
    diversity: { type: 'string' }, objective: { type: 'string' }, prefilter: { type: 'string' }, rule: { type: 'string' }, fusion: { type: 'string' },
    signal: { type: 'string' }, 'fwd-threshold': { type: 'string' }, 'rev-threshold': { type: 'string' }, 'min-cosine': { type: 'string' },
    on: { type: 'string' }, 'embed-model': { type: 'string' }, device: { type: 'string' },
    'block-size': { type: 'string' }, summary: { type: 'string' }, quiet: { type: 'boolean' }, 'out-format': { type: 'string' },
  }, true);
  if (positionals.length !== 1) throw new UsageError('expected one scored file (concord select scored.jsonl --budget N -o selected.jsonl)');
  if (!v.output) throw new UsageError('-o/--output is required');
  const output = v.output;
  const budget = numFlag(v.budget, '--budget', { int: true, min: 0 });
  const keepFraction = numFlag(v['keep-fraction'], '--keep-fraction', { min: 0, max: 1 });
  if ((budget === undefined) === (keepFraction === undefined)) throw new UsageError('give one of --budget N or --keep-fraction F');
  const objective = choiceFlag(v.objective ?? 'deita', '--objective', OBJECTIVES as readonly SelectObjective[]);
  if (objective !== 'deita' && v.diversity !== undefined) throw new UsageError('--diversity is the deita objective\'s bound; facility-location takes none');
  const tau = numFlag(v.diversity ?? '0.9', '--diversity', { min: -1, max: 1 })!;
  const prefilter = prefilterFlag(v.prefilter);
  const rule = choiceFlag(v.rule ?? 'auto', '--rule', RULES as readonly Rule[]);
  const fusion = choiceFlag(v.fusion ?? 'sum', '--fusion', FUSIONS as readonly Fusion[]);
  const signal = choiceFlag(v.signal ?? 'gain', '--signal', ['gain', 'logp'] as const);
  const on = choiceFlag(v.on ?? 'xy', '--on', ['x', 'y', 'xy'] as const);
  const device = deviceFlag(v.device);
  const blockSize = numFlag(v['block-size'], '--block-size', { int: true, min: 1 });
  const filter = {
    rule, fusion, signal,
    fwdThreshold: numFlag(v['fwd-threshold'], '--fwd-threshold'), revThreshold: numFlag(v['rev-threshold'], '--rev-threshold'),
    minCosine: numFlag(v['min-cosine'], '--min-cosine', { min: -1, max: 1 }),
  };
  const outFormat = outFormatFlag(v['out-format']);
  const file = positionals[0];
  const inputs = openRecords(file); // checked (exit 3) before the encoder loads
  const log = v.quiet ? () => {} : (s: string) => { process.stderr.write(`${s}\n`); };

  const { sharedRuntime } = await import('../models/index.js');
  const { loadEmbedder } = await import('../encoder/index.js');
  const { rt, reason } = await sharedRuntime(device);
  const enc = await loadEmbedder(v['embed-model'] ?? 'minilm', { device: rt ?? 'cpu' });
  log(`concord: encoder ${enc.config.name} on ${enc.deviceName} — ${reason}`);
  try {
    const s = await selectFile({
      input: file, inputs, outFormat, output, budget, keepFraction, objective, tau, prefilter, on, embedder: enc, device: rt ?? 'cpu', blockSize, filter,
      log: (s) => process.stderr.write(`${s}\n`),
    });
    const pre = s.prefilter ? `, ${s.candidates} in the prefilter's ${s.prefilter}` : '';
    if (s.facility) {
      log(`concord select: ${s.records} records, ${s.ranked} ranked by ${s.applied.rule}${pre}; facility location over ${s.candidates} on ${s.on}: ${s.selected} selected (budget ${s.budget}), f(S) = ${s.facility.value.toFixed(4)}, ${s.errors} unreadable`);
      log(`concord select: embedding ${s.embed_ms.toFixed(0)} ms on ${enc.deviceName}; greedy ${s.compare_ms.toFixed(0)} ms on ${rt ? rt.name : 'CPU'} (blocks of ${s.block_size}, ${s.facility.evaluated} gains in ${s.facility.batches} batches, ${s.facility.rechecked} rechecked in f64)`);
    } else {
      log(`concord select: ${s.records} records, ${s.ranked} ranked by ${s.applied.rule}${pre}; walked ${s.walked} best first, ${s.selected} selected (budget ${s.budget}), ${s.rejected_for_diversity} turned down (cosine ≥ ${s.tau} to a kept pair on ${s.on}), ${s.errors} unreadable`);
      log(`concord select: embedding ${s.embed_ms.toFixed(0)} ms on ${enc.deviceName}; comparison ${s.compare_ms.toFixed(0)} ms on ${rt ? rt.name : 'CPU'} (blocks of ${s.block_size}, ${s.score_blocks} score blocks)`);
    }
    if (v.summary) writeFileAtomic(v.summary, JSON.stringify(s, null, 2) + '\n');
    return s.errors ? EXIT.inputErrors : EXIT.ok;
  } finally {
    enc.dispose();
  }
});

/** `--prefilter ifd:F`: F in (0, 1]. */
function prefilterFlag(text: string | undefined): Prefilter | undefined {
  if (text === undefined) return undefined;
  const m = /^ifd:(.+)$/.exec(text);
  if (!m) throw new UsageError(`--prefilter: expected ifd:F, F a fraction in (0, 1] (got '${text}')`);
  const fraction = numFlag(m[1], '--prefilter ifd:F', { min: 0, max: 1 })!;
  if (!(fraction > 0)) throw new UsageError(`--prefilter ifd:F: F must be above 0 (got ${fraction})`);
  return { signal: 'ifd', fraction };
}
