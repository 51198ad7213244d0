// `concord tune`: validate every variant of every tunable op against its CPU twin on this adapter,
// time the valid ones, print the table and write the tuning cache (src/tune/index.ts).

import { chooseBackend } from '../gpu/device.js';
import { GpuRuntime } from '../gpu/runtime.js';
import { defaultRequests, modelRequests, tunableOps, tuneFor, type TuneReport } from '../tune/index.js';
import { KERNEL_VARIANTS } from '../gpu/variants.js';
import { choiceFlag, command, EXIT, log, numFlag, parseFlags, UsageError } from './common.js';

export const TUNE_HELP = `concord tune [--model <path|id> [--max-tokens N]] [--op OPS] [--size small|full] [--configs all|first] [--dry-run] [--json] [--gpu N|NAME]

Validate every kernel variant against its CPU twin on the WebGPU adapter (software ones included),
time the valid ones (timestamp queries, else wall-clock) and write the winners to the tuning cache
(CONCORD_TUNE_CACHE, default ~/.cache/concord/tune/<adapter key>.json), which GPU models read when
they are built. A variant that fails validation is reported and never used.
  --model M        tune the shapes of this model's prefill (default: a few shape classes per op)
  --max-tokens N   with --model: the largest batch (tokens) to tune for (default 8192 on GPUs,
                   1024 on software adapters)
  --op OPS         only these ops, comma-separated (${Object.keys(KERNEL_VARIANTS).join(', ')})
  --size S         default shape classes: small (the default on software adapters) or full
  --configs C      tile configurations per variant: all (default on GPUs) or first (default on
                   software adapters: each kernel's default config)
  --budget-ms N    time budget of one candidate's timed runs (default 50)
  --dry-run        measure and print, but do not write the cache
  --json           the report as JSON
  --gpu N|NAME     which Vulkan adapter (index or part of its name)`;

const fmt = (x: number): string => (x === 0 ? '0' : Number.isFinite(x) ? x.toExponential(1) : String(x));

/** A tile config as ' wgx=16 wgy=16 bk=16' (its variant field left out). */
const configText = (c: Readonly<Record<string, unknown>> | undefined): string =>
  (c ? Object.entries(c).filter(([k]) => k !== 'variant').map(([k, x]) => ` ${k}=${String(x)}`).join('') : '');

export function formatTune(r: TuneReport, timingNote: string): string {
  const rows: string[][] = [['op', 'shape class', 'shape', 'variant', 'status', 'max err', 'ms', 'winner']];
  for (const e of r.entries) {
    const shape = Object.entries(e.shape).map(([k, v]) => (typeof v === 'boolean' ? (v ? k : '') : `${k}=${v}`)).filter(Boolean).join(' ');
    e.candidates.forEach((c, i) => {
      const name = `${c.variant}${configText(c.config)}`;
      rows.push([
        i === 0 ? e.op : '', i === 0 ? e.shapeClass : '', i === 0 ? shape : '', name,
        c.status === 'valid' ? 'valid' : c.status === 'failed' ? 'FAILED' : 'unavailable',
        c.maxError === undefined ? '-' : fmt(c.maxError), c.ms === undefined ? '-' : c.ms.toFixed(3),
        e.winner === c.variant && c.status === 'valid' && JSON.stringify(e.winnerConfig) === JSON.stringify(c.config) ? '*' : '',
      ]);
    });
  }
  const widths = rows[0].map((_, j) => Math.max(...rows.map((row) => row[j].length)));
  const table = rows.map((row) => row.map((c, j) => c.padEnd(widths[j])).join('  ').trimEnd());
  const notes = r.entries.flatMap((e) => e.candidates.filter((c) => c.error).map((c) => `  ${e.op} ${e.shapeClass} ${c.variant}${configText(c.config)}: ${c.status}: ${c.error}`));
  return [
    `adapter  ${r.adapter.description || r.adapter.device} (${r.adapter.vendor}/${r.adapter.architecture}${r.adapter.software ? ', software' : ''})`,
    `timing   ${timingNote}`,
    `cache    ${r.cacheFile ?? '-'}${r.written ? ' (written)' : ' (not written)'}`,
    '',
    ...table,
    ...(notes.length ? ['', 'not used:', ...notes] : []),
    ...(r.skipped.length ? ['', ...r.skipped.map((s) => `skipped ${s.op} ${s.shapeClass}: ${s.reason}`)] : []),
  ].join('\n');
}

export const tuneCommand = command('tune', TUNE_HELP, async (argv) => {
  const { values: v } = parseFlags(argv, {
    model: { type: 'string' }, op: { type: 'string' }, size: { type: 'string' }, 'budget-ms': { type: 'string' }, configs: { type: 'string' }, 'max-tokens': { type: 'string' },
    'dry-run': { type: 'boolean' }, json: { type: 'boolean' }, gpu: { type: 'string' },
  });
  const ops = v.op === undefined ? tunableOps() : v.op.split(',').map((s) => s.trim()).filter(Boolean);
  for (const op of ops) {
    if (!tunableOps().includes(op)) throw new UsageError(`--op: '${op}' is not a tunable op (${tunableOps().join(', ')})`);
  }
  if (!ops.length) throw new UsageError('--op needs at least one op');
  const size = v.size === undefined ? undefined : choiceFlag(v.size, '--size', ['small', 'full'] as const);
  const configs = v.configs === undefined ? undefined : choiceFlag(v.configs, '--configs', ['all', 'first'] as const);
  const budgetMs = numFlag(v['budget-ms'], '--budget-ms', { min: 1 });
  const maxTokens = numFlag(v['max-tokens'], '--max-tokens', { int: true, min: 1 });
  if (maxTokens !== undefined && v.model === undefined) throw new UsageError('--max-tokens needs --model');
  if (v.gpu !== undefined) process.env.CONCORD_GPU = v.gpu; // read by src/gpu/device.ts (settings.gpu)
  const d = await chooseBackend('webgpu');
  const rt = new GpuRuntime(d.gpu!);
  try {
    let requests;
    if (v.model !== undefined) {
      const { loadWeights } = await import('../models/load.js');
      const w = await loadWeights(v.model, { lazy: true }); // only the config is needed: no tensor is read
      const f16 = rt.hasF16 && !rt.handle.info.software; // what GpuTransformer picks by default
      requests = modelRequests(w.config, { f16, maxTokens: maxTokens ?? (rt.handle.info.software ? 1024 : 8192) }).filter((q) => ops.includes(q.op));
      log(`concord tune: ${w.config.name}: ${requests.length} shapes (${f16 ? 'f16' : 'f32'} weights)`);
    } else {
      requests = defaultRequests(rt, size ?? (rt.handle.info.software ? 'small' : 'full'), ops);
    }
    const report = await tuneFor(rt, requests, { always: true, write: !v['dry-run'], budgetMs, configs });
    const timing = rt.hasTimestamps ? 'timestamp queries' : 'wall-clock (no timestamp-query)';
    if (v.json) console.log(JSON.stringify({ ...report, features: rt.handle.features, timing: rt.hasTimestamps ? 'timestamp' : 'wall-clock', dryRun: !!v['dry-run'] }, null, 2));
    else console.log(formatTune(report, timing));
    if (report.writeError) throw new Error(report.writeError);
    const failed = report.entries.reduce((s, e) => s + e.candidates.filter((c) => c.status === 'failed').length, 0);
    if (failed) log(`concord tune: ${failed} candidate${failed === 1 ? '' : 's'} failed validation and will not be used`);
    return EXIT.ok;
  } finally {
    rt.destroy();
  }
});
