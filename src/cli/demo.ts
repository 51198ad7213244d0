// `concord demo` (npm start): score the embedded sample and filter it with the CLI's own defaults
// (--cosine auto, --rule auto → fused with the MiniLM encoder), show what happened, and print the one
// command that does the same on the user's own file.

import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { packageRoot } from '../env.js';
import { appliedParams, applyFilter, mainSignals, RULES } from '../filter/index.js';
import { scoreFile } from '../jobs/index.js';
import { command, EXIT, log, parseFlags } from './common.js';
import { filterOptionsFrom } from './filter.js';
import { describeRun, formatScoreSummary, scoreSettings, withScorer } from './score.js';

export const DEMO_HELP = `concord demo [--device auto|webgpu|cpu] [--model <path|default>] [--input pairs.jsonl]
            [--rule ${RULES.join('|')}] [--keep-fraction F] [--cosine auto|embed|lm|off] [--keep]

Scores data/sample-pairs.jsonl (60 instruction → story pairs, 15 deliberately misaligned) and
filters it with the same defaults as concord score/filter/run (--cosine auto: the MiniLM sentence
encoder; --rule auto: fused when every pair has an encoder cosine), shows the best and worst pairs
and where the misaligned ones landed, and prints the concord run command that does the same on
your own file.
  --keep        keep the scored records (the folder is printed)`;

/** How the user calls concord: `node <relative path to bin/concord.js>` from a checkout, else `concord`. */
function invocation(): string {
  const bin = process.argv[1] ?? '';
  if (path.basename(bin) !== 'concord.js') return 'concord';
  const rel = path.relative(process.cwd(), bin);
  return `node ${rel.startsWith('..') || path.isAbsolute(rel) ? bin : rel}`;
}

/** The one command that runs what the demo ran (score + filter, same flags) on the user's file. */
export function ownFileCommand(flags: Record<string, string | boolean | undefined>, bin = invocation()): string {
  const passed = ['model', 'device', 'cosine', 'rule', 'keep-fraction']
    .filter((k) => typeof flags[k] === 'string')
    .map((k) => ` --${k} ${/^[\w./:=-]+$/.test(String(flags[k])) ? flags[k] : JSON.stringify(flags[k])}`)
    .join('');
  return `${bin} run your-pairs.jsonl -o kept.jsonl${passed}`;
}

export const demoCommand = command('demo', DEMO_HELP, async (argv) => {
  const { values: v } = parseFlags(argv, {
    device: { type: 'string' }, model: { type: 'string' }, input: { type: 'string' }, rule: { type: 'string' },
    'keep-fraction': { type: 'string' }, cosine: { type: 'string' }, keep: { type: 'boolean' },
  });
  const input = v.input ?? path.join(packageRoot(), 'data', 'sample-pairs.jsonl');
  const s = scoreSettings({ device: v.device, model: v.model, cosine: v.cosine });
  const filter = filterOptionsFrom({ rule: v.rule, 'keep-fraction': v['keep-fraction'] });
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'concord-demo-'));
  const scored = path.join(dir, 'scored.jsonl');
  const t0 = performance.now();
  const summary = await withScorer(s, false, 'demo', async (scorer) => describeRun(await scoreFile({ scorer, input, output: scored, log }), scorer, 'demo'));
  log(formatScoreSummary(summary));
  const recs = fs.readFileSync(scored, 'utf8').trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown> & { scores: Record<string, number> });
  const f = applyFilter(recs.map((r) => r.scores), filter);
  const kept = f.keep.filter(Boolean).length;
  console.log(`\n${f.applied.rule} rule (${appliedParams(f.applied, 4).map(([k, x]) => `${k}=${x}`).join(' ')}): kept ${kept}, dropped ${recs.length - kept} of ${recs.length}`);
  const order = recs.map((_, i) => i).sort((a, b) => f.score[b] - f.score[a]);
  const show = (i: number) => {
    const r = recs[i];
    const g = mainSignals(r.scores, 'gain');
    const y = String(r.output).replace(/\s+/g, ' ');
    return `  [${r.note === 'misaligned' ? 'misaligned' : 'aligned   '}] score ${f.score[i].toFixed(3)}  g_fwd ${g.fwd.toFixed(3)}  g_rev ${g.rev.toFixed(3)}${typeof r.scores.cosine === 'number' ? `  cosine ${r.scores.cosine.toFixed(3)}` : ''}  ${f.keep[i] ? 'KEPT   ' : 'DROPPED'}\n      x: ${String(r.instruction)}${r.input ? ` / ${String(r.input)}` : ''}\n      y: ${y.length > 90 ? y.slice(0, 90) + '…' : y}`;
  };
  console.log('\nbest pairs:');
  for (const i of order.slice(0, 3)) console.log(show(i));
  console.log('\nworst pairs:');
  for (const i of order.slice(-3).reverse()) console.log(show(i));
  const mis = recs.map((r, i) => [r.note === 'misaligned', f.keep[i]] as const);
  const nMis = mis.filter(([m]) => m).length;
  const misDropped = mis.filter(([m, k]) => m && !k).length;
  const alignedKept = mis.filter(([m, k]) => !m && k).length;
  console.log(`\nmisaligned pairs: ${misDropped} of ${nMis} dropped; aligned pairs: ${alignedKept} of ${recs.length - nMis} kept`);
  if (misDropped === nMis) console.log('every misaligned pair landed among the dropped ones.');
  else {
    console.log(`${nMis - misDropped} misaligned pair(s) were kept:`);
    recs.forEach((r, i) => { if (r.note === 'misaligned' && f.keep[i]) console.log(show(i)); });
  }
  console.log(`(${((performance.now() - t0) / 1000).toFixed(1)} s; scored records in ${v.keep ? scored : 'a temporary folder, removed'})`);
  if (!v.keep) fs.rmSync(dir, { recursive: true, force: true });
  console.log(`\nthe same on your own file (JSONL, JSON, Parquet; instruction/input/output or messages):\n  ${ownFileCommand(v)}`);
  return EXIT.ok;
});
