// `concord dedup`: drop near-duplicate records by sentence-embedding cosine.
//
//   concord dedup <in.jsonl|json> -o unique.jsonl [--threshold 0.95] [--on x|y|xy]
//                 [--dupes-out dupes.jsonl] [--model …] [--device …] [--max-length 256]
//                 [--block-size N] [--memory-budget MB]
//
// dedup keeps a record unless the cosine of its embedding with an earlier KEPT record reaches the
// threshold (greedy, input order: the first of a group of near-duplicates survives). Records that
// are not pairs are kept untouched and reported as file:line: reason; lines that are not JSON are
// reported and left out. The comparison is exact and blockwise (src/dedup/): all-pairs cosine
// blocks on the device, vectors in memory or, past --memory-budget, in a temporary file.

import { DEDUP_CPU_BLOCK, DEDUP_MEMORY_BUDGET, dedupFile } from '../dedup/index.js';
import { openRecords } from '../io/inputs.js';
import { lockOutputs, preflightPaths } from '../jobs/index.js';
import { outFormatFlag, preflightInput } from './filter.js';
import { choiceFlag, command, deviceFlag, EXIT, log, numFlag, parseFlags, UsageError } from './common.js';
import { openEmbedder } from './embed.js';

export const DEDUP_HELP = `concord dedup — drop near-duplicate records by sentence-embedding cosine

  concord dedup <input> -o unique.jsonl [options]   (any input kind: JSONL, .gz/.zst, JSON array, Parquet, folder, glob)
  --threshold T          a record whose cosine with an earlier kept record is >= T is dropped (default 0.95)
  --on x|y|xy            what is embedded: the prompt x, the response y, or x + "\\n\\n" + y (default xy)
  --dupes-out <file>     dropped records, each with concord_dup_of (the kept record's location) and concord_cosine
  --model, --device, --max-length   as for concord embed
  --block-size N         records per comparison block (default: GPU the largest up to 4096 that one
                         storage binding holds; CPU ${DEDUP_CPU_BLOCK})
  --out-format jsonl|parquet  the outputs' format (default: by extension)
  --memory-budget MB     embeddings held in memory (default ${DEDUP_MEMORY_BUDGET / 1048576}); beyond it they go to a temporary file
Exit codes: 0 ok, 1 failure, 2 usage, 3 some records could not be read (reported as file:line: reason), 5 no GPU for --device webgpu.`;

export const dedupCommand = command('dedup', DEDUP_HELP, async (argv, defer) => {
  const { values, positionals } = parseFlags(argv, {
      output: { type: 'string', short: 'o' },
      threshold: { type: 'string' },
      on: { type: 'string' },
      'dupes-out': { type: 'string' },
      model: { type: 'string' },
      device: { type: 'string' },
      'max-length': { type: 'string' },
      'block-size': { type: 'string' },
      'memory-budget': { type: 'string' },
      'out-format': { type: 'string' },
  }, true);
  if (positionals.length !== 1) throw new UsageError('expected one input file');
  if (!values.output) throw new UsageError('-o <unique.jsonl> is required');
  const threshold = numFlag(values.threshold ?? '0.95', '--threshold', { min: -1, max: 1 })!;
  const on = choiceFlag(values.on ?? 'xy', '--on', ['x', 'y', 'xy'] as const);
  const budgetMb = numFlag(values['memory-budget'], '--memory-budget', { min: 0 }) ?? DEDUP_MEMORY_BUDGET / 1048576;
  const blockSize = numFlag(values['block-size'], '--block-size', { int: true, min: 1 });
  const maxLength = numFlag(values['max-length'], '--max-length', { int: true, min: 2 });
  const device = deviceFlag(values.device);
  const outFormat = outFormatFlag(values['out-format']);
  const file = positionals[0];
  const inputs = openRecords(file); // checked (exit 3) before the encoder loads
  const dupes = values['dupes-out'];
  defer(lockOutputs(preflightPaths({ input: preflightInput(inputs), output: values.output, more: dupes ? [{ flag: '--dupes-out', path: dupes }] : [] }).outputs));

  const { enc, rt } = await openEmbedder(values.model ?? 'minilm', device, maxLength);
  try {
    const s = await dedupFile({
      input: file, inputs, outFormat, output: values.output!, dupesOut: values['dupes-out'], threshold, on,
      embedder: enc, device: rt ?? 'cpu', blockSize, memoryBudget: Math.floor(budgetMb * 1048576), log,
    });
    const rate = (n: number, ms: number): string => `${ms.toFixed(0)} ms, ${(n / Math.max(ms, 1e-3) * 1000).toFixed(1)} records/s`;
    log(`concord dedup: ${s.records} records, ${s.kept} kept, ${s.dropped} near-duplicates dropped (cosine >= ${threshold} on ${on}), ${s.errors} unreadable${s.truncated ? `, ${s.truncated} texts truncated to ${enc.tokenizer.maxLength} tokens` : ''}`);
    log(`concord dedup: embedding ${rate(s.embedded, s.embedMs)} on ${enc.deviceName}; comparison ${rate(s.embedded, s.compareMs)} on ${rt ? rt.name : 'CPU'} (${s.blocks} blocks of ${s.blockSize}, ${s.blockPairs} score blocks, vectors ${s.spilled ? 'in a temporary file' : 'in memory'}); writing ${s.writeMs.toFixed(0)} ms`);
    return s.errors ? EXIT.inputErrors : EXIT.ok;
  } finally {
    enc.dispose();
  }
});
