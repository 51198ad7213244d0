// `concord report scored.jsonl -o report.html [--group FIELD] [--label FIELD [--positive V]] [--rule R]`.

import * as fs from 'node:fs';
import * as path from 'node:path';
import { RULES, type Rule } from '../filter/index.js';
import { buildReport } from '../report/index.js';
import { readLabelled } from './eval.js';
import { InputError } from '../errors.js';
import { writeFileAtomic } from '../io/writers.js';
import { choiceFlag, command, EXIT, parseFlags, UsageError } from './common.js';

export const REPORT_HELP = `concord report <scored.jsonl> -o report.html [options]

One self-contained HTML page (inline SVG, no scripts, no external requests): a histogram per score,
the forward/reverse gain scatter, a table per group and, with labels, the eval table.

  --group FIELD        break down by this record field (e.g. source)
  --label FIELD        labels (as concord eval); histograms and the scatter are split by them
  --positive VALUE     the label value that counts as positive
  --rule R             the rule whose keep decision is shown (default auto; ${RULES.join(', ')})
  --title TEXT         page title (default: the file name)`;

export const reportCommand = command('report', REPORT_HELP, async (argv) => {
  const { values: v, positionals } = parseFlags(argv, {
    output: { type: 'string', short: 'o' }, group: { type: 'string' }, label: { type: 'string' }, positive: { type: 'string' },
    rule: { type: 'string' }, title: { type: 'string' },
  }, true);
  if (positionals.length !== 1) throw new UsageError('expected one scored file (concord report scored.jsonl -o report.html)');
  if (!v.output) throw new UsageError('-o/--output is required');
  const rule = choiceFlag(v.rule ?? 'auto', '--rule', RULES as readonly Rule[]);
  const file = positionals[0];
  const data = await readLabelled(file, v.label, v.positive);
  for (const p of data.problems.slice(0, 10)) console.error(p);
  if (!data.scores.length) throw new InputError(`${file}: no scored records`);
  const groups = v.group ? data.records.map((r) => (r[v.group!] === undefined ? '(none)' : String(r[v.group!]))) : undefined;
  const html = buildReport({
    title: v.title ?? path.basename(file), scores: data.scores, groups, groupField: v.group,
    labels: v.label ? data.labels : undefined, labelField: v.label, filter: { rule }, problems: data.problems,
  });
  writeFileAtomic(v.output, html);
  console.error(`concord report: ${data.scores.length} records → ${v.output} (${(html.length / 1024).toFixed(0)} KB)`);
  return data.problems.length ? EXIT.inputErrors : EXIT.ok;
});
