// Sharded runs: `concord score … --shard i/n --out-dir DIR` scores a deterministic share of the
// records and writes DIR/shard-<i>-of-<n>.<ext> (atomically, resumable) plus a manifest
// DIR/shard-<i>-of-<n>.manifest.json; `concord merge DIR` (merge.ts) checks and joins them.
//
// The share: with N records in the input (counted across its files in order, the same whatever
// the format), shard i of n takes the contiguous index range [⌊iN/n⌋, ⌊(i+1)N/n⌋). Contiguous
// ranges make the merge a concatenation in shard order, so the merged output is the single-process
// output byte for byte.
//
// i and n: --shard i/n, else from the job engine with --shards n (or Slurm's own count):
// SLURM_ARRAY_TASK_ID − SLURM_ARRAY_TASK_MIN (so arrays numbered 1..n work) and
// SLURM_ARRAY_TASK_COUNT; Kubernetes Indexed Jobs' JOB_COMPLETION_INDEX.

import { createHash } from 'node:crypto';
import { InputError, UsageError } from '../errors.js';
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { FileFingerprint, RecordRange } from '../io/inputs.js';

/** A shard manifest that cannot be read or trusted (exit 3): it names the file and the problem. */
export class ManifestError extends InputError {}

/** The most shards one run may have: a bound on what merge checks and lists (docs/scale.md). */
export const MAX_SHARDS = 65536;

/** A sharding flag or environment that does not fit (exit 2). */
export class ShardError extends UsageError {
  override readonly pointsAtHelp = false;
}

export interface ShardSpec {
  i: number;
  n: number;
  /** Where i/n came from ('--shard', 'SLURM_ARRAY_TASK_ID', 'JOB_COMPLETION_INDEX'). */
  source: string;
}

function int(v: string, what: string): number {
  if (!/^\d+$/.test(v.trim())) throw new ShardError(`${what} must be a non-negative integer (got '${v}')`);
  return Number(v);
}

/** i/n from the flags and the job engine's environment; null when the run is not sharded. */
export function resolveShard(o: { shard?: string; shards?: string; outDir?: string }, env: Record<string, string | undefined> = process.env): ShardSpec | null {
  let spec: ShardSpec | null = null;
  if (o.shard !== undefined) {
    const m = /^\s*(\d+)\s*\/\s*(\d+)\s*$/.exec(o.shard);
    if (!m) throw new ShardError(`--shard must be i/n, e.g. 0/8 (got '${o.shard}')`);
    spec = { i: Number(m[1]), n: Number(m[2]), source: '--shard' };
    if (o.shards !== undefined && int(o.shards, '--shards') !== spec.n) throw new ShardError(`--shard ${o.shard} and --shards ${o.shards} disagree`);
  } else if (o.shards !== undefined || o.outDir !== undefined) {
    const n = o.shards !== undefined ? int(o.shards, '--shards') : undefined;
    if (env.SLURM_ARRAY_TASK_ID !== undefined) {
      const id = int(env.SLURM_ARRAY_TASK_ID, 'SLURM_ARRAY_TASK_ID');
      const min = env.SLURM_ARRAY_TASK_MIN !== undefined ? int(env.SLURM_ARRAY_TASK_MIN, 'SLURM_ARRAY_TASK_MIN') : 0;
      const count = env.SLURM_ARRAY_TASK_COUNT !== undefined ? int(env.SLURM_ARRAY_TASK_COUNT, 'SLURM_ARRAY_TASK_COUNT') : undefined;
      const nn = n ?? count;
      if (nn === undefined) throw new ShardError('SLURM_ARRAY_TASK_ID is set but neither --shards nor SLURM_ARRAY_TASK_COUNT says how many shards');
      spec = { i: id - min, n: nn, source: `SLURM_ARRAY_TASK_ID=${id}${min ? ` − SLURM_ARRAY_TASK_MIN=${min}` : ''}` };
    } else if (env.JOB_COMPLETION_INDEX !== undefined) {
      if (n === undefined) throw new ShardError('JOB_COMPLETION_INDEX is set: pass --shards n (the Job\'s completions)');
      spec = { i: int(env.JOB_COMPLETION_INDEX, 'JOB_COMPLETION_INDEX'), n, source: `JOB_COMPLETION_INDEX=${env.JOB_COMPLETION_INDEX}` };
    } else {
      throw new ShardError('a sharded run needs --shard i/n, or --shards n inside a Slurm array task (SLURM_ARRAY_TASK_ID) or a Kubernetes Indexed Job (JOB_COMPLETION_INDEX)');
    }
  }
  if (!spec) return null;
  if (spec.n > MAX_SHARDS) throw new ShardError(`the shard count must be ≤ ${MAX_SHARDS} (got ${spec.n}, ${spec.source})`);
  if (spec.n < 1) throw new ShardError(`the shard count must be ≥ 1 (got ${spec.n})`);
  if (spec.i < 0 || spec.i >= spec.n) throw new ShardError(`shard index ${spec.i} is outside 0..${spec.n - 1} (${spec.source})`);
  if (o.outDir === undefined) throw new ShardError('a sharded run writes into --out-dir DIR (shard-<i>-of-<n>.<ext> and its manifest)');
  return spec;
}

/** Shard i of n of N records: [⌊iN/n⌋, ⌊(i+1)N/n⌋). */
export function shardRange(i: number, n: number, total: number): RecordRange {
  return { start: Math.floor((i * total) / n), end: Math.floor(((i + 1) * total) / n) };
}

export const shardBase = (i: number, n: number) => `shard-${i}-of-${n}`;

export interface ShardPaths { output: string; errors: string; manifest: string }

/** The shard manifests in a folder, in shard order. */
export function manifestNames(dir: string): string[] {
  return fs.readdirSync(dir).filter((f) => /^shard-\d+-of-\d+\.manifest\.json$/.test(f)).sort((a, b) => a.localeCompare(b, 'en', { numeric: true }));
}

export function shardPaths(dir: string, i: number, n: number, ext: 'jsonl' | 'parquet'): ShardPaths {
  const b = path.join(dir, shardBase(i, n));
  return { output: `${b}.${ext}`, errors: `${b}.errors.jsonl`, manifest: `${b}.manifest.json` };
}

export interface FileDigest { file: string; bytes: number; sha256: string }

export function digestFile(file: string): FileDigest {
  const h = createHash('sha256');
  const fd = fs.openSync(file, 'r');
  const buf = Buffer.alloc(1 << 20);
  let bytes = 0;
  try {
    for (;;) {
      const n = fs.readSync(fd, buf, 0, buf.length, bytes);
      if (n === 0) break;
      h.update(buf.subarray(0, n));
      bytes += n;
    }
  } finally {
    fs.closeSync(fd);
  }
  return { file: path.basename(file), bytes, sha256: h.digest('hex') };
}

export interface ManifestInput extends FileFingerprint { name: string; format: string; records: number }

export interface ShardManifest {
  concord_shard_manifest: 1;
  /** Same for every shard of one run: a hash of the inputs, the scoring options and n. */
  run_id: string;
  inputs: ManifestInput[];
  input_spec: string;
  split: string | null;
  options_hash: string;
  total_records: number;
  shard: { i: number; n: number; start: number; end: number; source: string };
  counts: { records: number; scored: number; errors: number };
  output: FileDigest & { format: 'jsonl' | 'parquet' };
  errors: FileDigest | null;
  /** The score command's arguments without the shard flags (merge prints the command that redoes a shard). */
  argv: string[];
  finished_at: string;
}

export function runId(inputs: ManifestInput[], optionsHash: string, n: number, format: string): string {
  const key = { inputs: inputs.map((f) => ({ size: f.size, mtimeMs: f.mtimeMs, sha256: f.sha256, records: f.records, name: f.name })), optionsHash, n, format };
  return createHash('sha256').update(JSON.stringify(key)).digest('hex').slice(0, 16);
}

export function readManifest(file: string): ShardManifest {
  let m: ShardManifest;
  try {
    m = JSON.parse(fs.readFileSync(file, 'utf8')) as ShardManifest;
  } catch (e) {
    throw new ManifestError(`${file}: unreadable manifest (${(e as Error).message})`);
  }
  if (m === null || typeof m !== 'object' || m.concord_shard_manifest !== 1 || !m.shard || !m.output) throw new ManifestError(`${file}: not a concord shard manifest`);
  const bad = manifestProblem(m);
  if (bad) throw new ManifestError(`${file}: not a valid concord shard manifest: ${bad}`);
  return m;
}

const isCount = (v: unknown): v is number => Number.isSafeInteger(v) && (v as number) >= 0;

/**
 * What is wrong with a parsed manifest, or null. A manifest is data from the folder, not trusted:
 * its numbers are bounded and the files it names are its own shard's, by name, inside the folder.
 */
function manifestProblem(m: ShardManifest): string | null {
  const { i, n, start, end } = m.shard;
  if (!isCount(n) || n < 1 || n > MAX_SHARDS) return `shard.n must be an integer in 1..${MAX_SHARDS}`;
  if (!isCount(i) || i >= n) return `shard.i must be an integer in 0..${n - 1}`;
  if (!isCount(start) || !isCount(end) || end < start) return 'shard.start/end must be integers with start ≤ end';
  if (!isCount(m.total_records) || end > m.total_records) return 'total_records must be an integer ≥ shard.end';
  const c = m.counts;
  if (!c || !isCount(c.records) || !isCount(c.scored) || !isCount(c.errors)) return 'counts must hold non-negative integers';
  if (typeof m.run_id !== 'string' || !Array.isArray(m.argv) || !m.argv.every((a) => typeof a === 'string')) return 'run_id and argv must be a string and strings';
  const base = shardBase(i, n);
  if (m.output.format !== 'jsonl' && m.output.format !== 'parquet') return "output.format must be 'jsonl' or 'parquet'";
  const files: [string, FileDigest | null, string][] = [['output', m.output, `${base}.${m.output.format}`], ['errors', m.errors ?? null, `${base}.errors.jsonl`]];
  for (const [what, d, want] of files) {
    if (!d) continue;
    if (d.file !== want) return `${what}.file must be ${want} (got ${JSON.stringify(d.file)})`;
    if (!isCount(d.bytes) || typeof d.sha256 !== 'string') return `${what}.bytes/sha256 missing`;
  }
  return null;
}

const SAFE = /^[A-Za-z0-9_./:=,@%+-]+$/;
export const shellQuote = (a: string) => (SAFE.test(a) ? a : `'${a.replace(/'/g, `'\\''`)}'`);

/** The command that (re)does shard i of n of a run. */
export function redoCommand(argv: string[], i: number, n: number): string {
  return ['concord', 'score', ...argv, '--shard', `${i}/${n}`].map(shellQuote).join(' ');
}

/** The score arguments without --shard/--shards (and their values): what every shard of a run shares. */
export function argvWithoutShard(argv: string[]): string[] {
  const out: string[] = [];
  for (let k = 0; k < argv.length; k++) {
    const a = argv[k];
    if (a === '--shard' || a === '--shards') { k++; continue; }
    if (a.startsWith('--shard=') || a.startsWith('--shards=')) continue;
    out.push(a);
  }
  return out;
}

/**
 * Whether a finished shard's manifest still describes this run and its files are intact (then the
 * shard is skipped). Returns null when it does, else why not.
 */
export function manifestStale(m: ShardManifest, id: string, dir: string, range: RecordRange): string | null {
  if (m.run_id !== id) return 'it belongs to a run with other inputs or options';
  if (m.shard.start !== range.start || m.shard.end !== range.end) return 'its record range differs';
  for (const d of [m.output, m.errors]) {
    if (!d) continue;
    const f = path.join(dir, d.file);
    if (!fs.existsSync(f)) return `${f} is missing`;
    const now = digestFile(f);
    if (now.bytes !== d.bytes || now.sha256 !== d.sha256) return `${f} changed since the manifest was written`;
  }
  return null;
}
