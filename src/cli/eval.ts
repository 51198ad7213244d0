// `concord eval scored.jsonl --label FIELD [--positive VALUE] [--json]`: AUC of every score and
// every rule, and precision / recall at each rule's keep decision, on a labelled scored file.

import { evaluate, formatEval, parseLabel, type EvalReport } from '../eval/index.js';
import type { FilterOptions, ScoreFields } from '../filter/index.js';
import { openRecords } from '../io/inputs.js';
import { InputError } from '../errors.js';
import { writeFileAtomic } from '../io/writers.js';
import { command, EXIT, numFlag, parseFlags, UsageError } from './common.js';

export const EVAL_HELP = `concord eval <scored.jsonl> --label FIELD [options]

  --label FIELD        the record field holding the label (true/false, 1/0, "yes"/"no")
  --positive VALUE     the label value that counts as positive (others negative), e.g.
                       --label source --positive expert
  --keep-fraction F    judge every rule's keep decision at this fraction (default: each rule's
                       default thresholds; rules without one at the share of positives)
  --min-cosine X       cosine / fused rules: the cosine threshold for the keep decision
  --json               the report as JSON
  --out FILE           also write the JSON report to FILE
Records without scores or label are reported (file:line) and left out.`;

export interface LabelledScores {
  scores: ScoreFields[];
  labels: boolean[];
  /** every record read, in file order, with its fields (for the report) */
  records: Record<string, unknown>[];
  problems: string[];
}

/** Scores and labels of a scored input (any kind src/io reads); bad records are listed, not fatal. */
export async function readLabelled(file: string, label: string | undefined, positive?: string): Promise<LabelledScores> {
  const out: LabelledScores = { scores: [], labels: [], records: [], problems: [] };
  for await (const r of openRecords(file)) {
    if (r.parseError) { out.problems.push(`${r.loc}: ${r.parseError}`); continue; }
    const rec = r.record as Record<string, unknown> | null;
    if (!rec || typeof rec !== 'object' || Array.isArray(rec)) { out.problems.push(`${r.loc}: record must be a JSON object`); continue; }
    const s = rec.scores;
    if (!s || typeof s !== 'object') { out.problems.push(`${r.loc}: no 'scores' object (run \`concord score\` first)`); continue; }
    if (label !== undefined) {
      const l = parseLabel(rec[label], positive);
      if (typeof l === 'string') { out.problems.push(`${r.loc}: ${l === 'no label' ? `no '${label}' field` : l}`); continue; }
      out.labels.push(l);
    }
    out.scores.push(s as ScoreFields);
    out.records.push(rec);
  }
  return out;
}

export const evalCommand = command('eval', EVAL_HELP, async (argv) => {
  const { values: v, positionals } = parseFlags(argv, {
    label: { type: 'string' }, positive: { type: 'string' }, json: { type: 'boolean' }, out: { type: 'string' },
    'keep-fraction': { type: 'string' }, 'min-cosine': { type: 'string' },
  }, true);
  if (positionals.length !== 1) throw new UsageError('expected one scored file (concord eval scored.jsonl --label label)');
  if (!v.label) throw new UsageError('--label FIELD is required');
  const given: Partial<FilterOptions> = {};
  const keepFraction = numFlag(v['keep-fraction'], '--keep-fraction', { min: 0, max: 1 });
  const minCosine = numFlag(v['min-cosine'], '--min-cosine', { min: -1, max: 1 });
  if (keepFraction !== undefined) given.keepFraction = keepFraction;
  if (minCosine !== undefined) given.minCosine = minCosine;
  const file = positionals[0];
  const data = await readLabelled(file, v.label, v.positive);
  for (const p of data.problems.slice(0, 10)) console.error(p);
  if (data.problems.length > 10) console.error(`… and ${data.problems.length - 10} more records left out`);
  const pos = data.labels.filter(Boolean).length;
  if (pos === 0 || pos === data.labels.length) {
    throw new InputError(`${file}: need both positive and negative labels in '${v.label}' (${pos} positive of ${data.labels.length})`);
  }
  const report: EvalReport & { file: string; label: string; left_out: number } = {
    file, label: v.label, left_out: data.problems.length, ...evaluate(data.scores, data.labels, { given }),
  };
  if (v.out) writeFileAtomic(v.out, JSON.stringify(report, null, 2) + '\n');
  console.log(v.json ? JSON.stringify(report, null, 2) : formatEval(report, file));
  return EXIT.ok;
});
