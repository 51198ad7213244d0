// `npm run gpu:table [-- FILE.json] [--readme]`: the markdown table of a GPU benchmark run.
// FILE defaults to the newest bench/results/gpu-*.json (a run's $OUT/gpu-<date>.json, committed
// there). With --readme the table replaces what stands between docs/benchmarks.md's
//   <!-- gpu-table:start --> and <!-- gpu-table:end -->
// markers; without it the table is printed. The table is re-rendered from the JSON (the rows and
// checks are recomputed by the same code that wrote them), so a JSON edited by hand cannot carry a
// figure or a 'valid' the scores do not support.

import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { buildReport, renderGpuMarkdown, type GpuReport } from './report.js';

export const START = '<!-- gpu-table:start -->';
export const END = '<!-- gpu-table:end -->';

export function tableFromJson(path: string): string {
  const saved = JSON.parse(readFileSync(path, 'utf8')) as GpuReport;
  if (saved.kind !== 'concord-bench-gpu') throw new Error(`${path}: not a GPU benchmark result (kind ${JSON.stringify(saved.kind)})`);
  const rep = buildReport(saved);
  return renderGpuMarkdown(rep) + `\n\nSource: \`${path.replace(/^.*?(bench\/results\/)/, '$1')}\` (rendered by \`npm run gpu:table\`).`;
}

export function replaceBlock(readme: string, table: string): string {
  const a = readme.indexOf(START), b = readme.indexOf(END);
  if (a < 0 || b < a) throw new Error(`docs/benchmarks.md has no ${START} … ${END} block`);
  return readme.slice(0, a + START.length) + '\n' + table + '\n' + readme.slice(b);
}

const isMain = process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1];
if (isMain) {
  let root = dirname(fileURLToPath(import.meta.url));
  while (!existsSync(join(root, 'package.json'))) root = dirname(root);
  const args = process.argv.slice(2);
  let file = args.find((a) => !a.startsWith('--'));
  if (!file) {
    const dir = join(root, 'bench', 'results');
    const all = readdirSync(dir).filter((f) => /^gpu-.*\.json$/.test(f) && !f.includes('rehearsal')).sort();
    if (!all.length) { console.error(`gpu:table: no bench/results/gpu-*.json yet (run .gpu/run.sh on the GPU machine, commit its $OUT/gpu-<date>.json there)`); process.exit(2); }
    file = join(dir, all[all.length - 1]);
  }
  const table = tableFromJson(file);
  if (args.includes('--readme')) {
    const p = join(root, 'docs', 'benchmarks.md');
    writeFileSync(p, replaceBlock(readFileSync(p, 'utf8'), table));
    console.error(`gpu:table: docs/benchmarks.md updated from ${file}`);
  } else console.log(table);
}
