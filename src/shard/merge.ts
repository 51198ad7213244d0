// `concord merge DIR`: check that every shard of one run is in DIR and agrees (same inputs, options
// and n; contiguous ranges with no gap or overlap; files matching their manifests' hashes), then
// write the scored set in input order (shard order: the ranges are contiguous) and/or apply a filter
// rule over all shards at once — percentile rules (main, --keep-fraction) are decided over the
// whole set, never per shard.

import * as fs from 'node:fs';
import { InputError, UsageError } from '../errors.js';
import * as path from 'node:path';
import type { FilterOptions } from '../filter/index.js';
import { RecordInput, type InputFile } from '../io/inputs.js';
import { openWriter } from '../io/record-writer.js';
import { formatOf } from '../io/sniff.js';
import { progressPathFor } from '../jobs/checkpoint.js';
import { filterFile, type FilterSummary } from '../jobs/filter.js';
import { digestFile, manifestNames, readManifest, redoCommand, shardBase, shardPaths, shardRange, type ShardManifest } from './index.js';

/** A missing, unfinished or inconsistent shard (exit 3). */
export class MergeError extends InputError {}

// ---- checking the shards --------------------------------------------------------------------------------

export interface CheckedRun {
  dir: string;
  manifests: ShardManifest[];
  n: number;
  total: number;
  runId: string;
}

/** How many shard problems merge lists before it says how many more there are. */
const MAX_LISTED = 20;

/** Every shard of the one run in `dir`, checked; throws MergeError listing every problem and the commands that fix them. */
export function checkShards(dir: string): CheckedRun {
  if (!fs.existsSync(dir) || !fs.statSync(dir).isDirectory()) throw new MergeError(`${dir}: no such folder`);
  const names = manifestNames(dir);
  const partials = fs.readdirSync(dir).filter((f) => /^shard-\d+-of-\d+\..*progress\.json$/.test(f));
  if (names.length === 0) {
    const hint = partials.length ? ` (only unfinished shards: ${partials.join(', ')}; rerun their score commands)` : '';
    throw new MergeError(`${dir}: no shard manifests (shard-<i>-of-<n>.manifest.json)${hint}; run concord score … --shard i/n --out-dir ${dir} first`);
  }
  const all = names.map((f) => readManifest(path.join(dir, f)));
  const runs = new Map<string, ShardManifest[]>();
  for (const m of all) runs.set(m.run_id, [...(runs.get(m.run_id) ?? []), m]);
  if (runs.size > 1) {
    const list = [...runs].map(([id, ms]) => `run ${id} (n=${ms[0].shard.n}, ${ms[0].input_spec}: ${ms.map((m) => shardBase(m.shard.i, m.shard.n)).join(', ')})`).join('; ');
    throw new MergeError(`${dir} holds shards of ${runs.size} different runs (inputs, options or n differ): ${list}; keep one run per --out-dir`);
  }
  const [runId, ms] = [...runs][0];
  const n = ms[0].shard.n;
  const total = ms[0].total_records;
  const argv = ms[0].argv;
  const byI = new Map(ms.map((m) => [m.shard.i, m]));
  const problems: string[] = [];
  for (let i = 0; i < n; i++) {
    const m = byI.get(i);
    const cmd = redoCommand(argv, i, n);
    const want = shardRange(i, n, total);
    if (!m) {
      const p = shardPaths(dir, i, n, ms[0].output.format);
      const staged = [progressPathFor(p.output), progressPathFor(`${p.output}.scored.jsonl`)].find((f) => fs.existsSync(f));
      problems.push(staged
        ? `shard ${i}/${n} is unfinished (${staged} is its checkpoint); resume it: ${cmd}`
        : `shard ${i}/${n} is missing (no ${p.manifest}); run: ${cmd}`);
      continue;
    }
    if (m.shard.start !== want.start || m.shard.end !== want.end) {
      problems.push(`shard ${i}/${n}: records ${m.shard.start}..${m.shard.end} but the run's share is ${want.start}..${want.end}; redo it: ${cmd}`);
    }
    if (m.counts.records !== m.shard.end - m.shard.start) {
      problems.push(`shard ${i}/${n}: ${m.counts.records} records done of its ${m.shard.end - m.shard.start}; redo it: ${cmd}`);
    }
    for (const d of [m.output, m.errors]) {
      if (!d) continue;
      const f = path.join(dir, d.file);
      if (!fs.existsSync(f)) { problems.push(`shard ${i}/${n}: ${f} is missing; redo it: ${cmd}`); continue; }
      const now = digestFile(f);
      if (now.bytes !== d.bytes || now.sha256 !== d.sha256) problems.push(`shard ${i}/${n}: ${f} does not match its manifest (sha256 ${now.sha256.slice(0, 12)}…, manifest ${d.sha256.slice(0, 12)}…); redo it: ${cmd}`);
    }
  }
  if (problems.length) {
    const shown = problems.slice(0, MAX_LISTED);
    if (problems.length > MAX_LISTED) shown.push(`… and ${problems.length - MAX_LISTED} more`);
    throw new MergeError(`${dir}: ${problems.length} shard problem${problems.length > 1 ? 's' : ''} (run ${runId}, ${n} shards):\n  ${shown.join('\n  ')}`);
  }
  return { dir, manifests: [...byI.values()].sort((a, b) => a.shard.i - b.shard.i), n, total, runId };
}

// ---- merging ----------------------------------------------------------------------------------------------

export interface MergeOptions {
  dir: string;
  /** The scored set, in input order (JSONL or Parquet by extension). */
  output?: string;
  /** default `<output>.errors.jsonl` (the shards' bad records, in input order) */
  errors?: string;
  /** A filter rule over all shards: kept records here … */
  kept?: string;
  /** … and dropped ones here. */
  dropOut?: string;
  filter?: FilterOptions;
  log: (s: string) => void;
}

export interface MergeSummary {
  command: 'merge';
  dir: string;
  run_id: string;
  shards: number;
  counts: { records: number; scored: number; errors: number };
  output: string | null;
  errors_file: string | null;
  filter: FilterSummary | null;
}

/** Outputs named inside the run's own shard files would overwrite the run (exit 2, nothing touched). */
function refuseOwnFiles(o: MergeOptions): void {
  const dir = fs.realpathSync(o.dir);
  for (const [flag, f] of [['-o', o.output], ['--errors', o.errors], ['--kept', o.kept], ['--drop-out', o.dropOut]] as const) {
    if (!f) continue;
    const parent = path.dirname(path.resolve(f));
    const inDir = fs.existsSync(parent) && fs.realpathSync(parent) === dir;
    if (inDir && /^shard-\d+-of-\d+\./.test(path.basename(f))) {
      throw new UsageError(`${flag} ${f} is one of the run's own shard files in ${o.dir}; write the merged output elsewhere`);
    }
  }
}

/** Records and errors counted in the shards' files (not taken from the manifests), checked against them. */
async function countShardRecords(run: CheckedRun, shardSet: RecordInput): Promise<{ records: number; scored: number; errors: number }> {
  const rows = await shardSet.recordCounts();
  const problems: string[] = [];
  let scored = 0;
  let errors = 0;
  run.manifests.forEach((m, k) => {
    const errs = m.errors ? countLines(path.join(run.dir, m.errors.file)) : 0;
    if (rows[k] !== m.counts.scored || errs !== m.counts.errors) {
      problems.push(`shard ${m.shard.i}/${m.shard.n}: its files hold ${rows[k]} scored records and ${errs} errors, its manifest says ${m.counts.scored} and ${m.counts.errors}; redo it: ${redoCommand(m.argv, m.shard.i, m.shard.n)}`);
    }
    scored += rows[k];
    errors += errs;
  });
  if (problems.length) throw new MergeError(`${run.dir}: ${problems.length} shard problem${problems.length > 1 ? 's' : ''}:\n  ${problems.slice(0, MAX_LISTED).join('\n  ')}`);
  return { records: scored + errors, scored, errors };
}

function countLines(file: string): number {
  const fd = fs.openSync(file, 'r');
  const buf = Buffer.alloc(1 << 20);
  let lines = 0;
  try {
    for (let pos = 0; ;) {
      const n = fs.readSync(fd, buf, 0, buf.length, pos);
      if (n === 0) break;
      for (let k = buf.indexOf(10, 0); k !== -1 && k < n; k = buf.indexOf(10, k + 1)) lines++;
      pos += n;
    }
  } finally {
    fs.closeSync(fd);
  }
  return lines;
}

/** The files one after the other into `out`, atomically (a temporary file, fsync, rename). */
function concatFiles(files: string[], out: string): void {
  const tmp = `${out}.tmp-${process.pid}`;
  const fd = fs.openSync(tmp, 'w');
  try {
    const buf = Buffer.alloc(1 << 20);
    for (const f of files) {
      const src = fs.openSync(f, 'r');
      try {
        for (let pos = 0; ;) {
          const n = fs.readSync(src, buf, 0, buf.length, pos);
          if (n === 0) break;
          pos += n;
          for (let off = 0; off < n;) off += fs.writeSync(fd, buf, off, n - off);
        }
      } finally {
        fs.closeSync(src);
      }
    }
    fs.fsyncSync(fd);
    fs.closeSync(fd);
  } catch (e) {
    try { fs.closeSync(fd); } catch { /* closed */ }
    fs.rmSync(tmp, { force: true });
    throw e;
  }
  fs.renameSync(tmp, out);
}

export async function mergeShards(o: MergeOptions): Promise<MergeSummary> {
  const run = checkShards(o.dir);
  const outFiles = run.manifests.map((m) => path.join(o.dir, m.output.file));
  const files: InputFile[] = outFiles.map((f) => ({ path: f, name: f, format: formatOf(f) }));
  const shardSet = new RecordInput(o.dir, files);
  refuseOwnFiles(o);
  const counts = await countShardRecords(run, shardSet);
  let errorsFile: string | null = null;
  if (o.output) {
    const allJsonl = run.manifests.every((m) => m.output.format === 'jsonl');
    const out = openWriter(o.output);
    if (allJsonl && out.format === 'jsonl') {
      out.abort();
      concatFiles(outFiles, o.output); // byte for byte what one process writes
    } else {
      try {
        for await (const r of shardSet) out.write(r.record as object);
        await out.commit();
      } catch (e) {
        out.abort();
        throw e;
      }
    }
    const errFiles = run.manifests.filter((m) => m.errors).map((m) => path.join(o.dir, m.errors!.file));
    const errorsPath = o.errors ?? `${o.output}.errors.jsonl`;
    if (errFiles.length) { concatFiles(errFiles, errorsPath); errorsFile = errorsPath; }
    else fs.rmSync(errorsPath, { force: true });
    o.log(`concord merge: ${run.n} shards of run ${run.runId} → ${o.output} (${counts.scored} scored, ${counts.errors} errors${errorsFile ? ` in ${errorsFile}` : ''})`);
  }
  let filter: FilterSummary | null = null;
  if (o.kept || o.dropOut) {
    filter = await filterFile({ inputs: shardSet, input: o.dir, output: o.kept, dropOut: o.dropOut, errors: `${o.kept ?? o.dropOut}.errors.jsonl`, filter: o.filter ?? { rule: 'main' }, log: o.log });
  }
  return { command: 'merge', dir: o.dir, run_id: run.runId, shards: run.n, counts, output: o.output ?? null, errors_file: errorsFile, filter };
}
