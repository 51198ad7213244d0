// Data at scale (issue 14): the readers (Parquet row group by row group, JSONL.gz/.zst, dataset
// folders with splits, globs), the Parquet writer, sharded runs (`--shard i/n --out-dir`, their
// manifests, skip when complete, resume when partial) and `concord merge` (byte-identical to one
// process; filter rules over all shards; missing / unfinished / tampered shards named with the
// command that redoes them), and `--gpu` selection. CLI runs use the fake model through the
// CONCORD_TEST_MODEL_MODULE hook; the `--gpu` adapter test runs dawn.node on the real adapter.

import { execFileSync, spawn, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as zlib from 'node:zlib';
import ts from 'typescript';
import { parquetReadObjects, parquetMetadataAsync } from 'hyparquet';
import { parquetWriteFile } from 'hyparquet-writer';
import { beforeAll, describe, expect, test } from 'vitest';
import { openRecords, resolveInputs, splitOf } from '../src/io/inputs.js';
import { fileAsyncBuffer, readParquetRows } from '../src/io/parquet.js';
import { InputError } from '../src/errors.js';
import { ShardError, resolveShard, shardRange } from '../src/shard/index.js';
import { selectGpu, driPrimeTag } from '../src/gpu/select.js';
import { Column, quantiles } from '../src/pipeline/stats.js';
import { scratchDir } from './helpers/scratch.js';

const ROOT = path.resolve(import.meta.dirname, '..');
const BIN = path.join(ROOT, 'bin', 'concord.js');
let tmp = '';
let fakeModule = '';
const p = (...f: string[]) => path.join(tmp, ...f);

function newestMtime(dir: string): number {
  let t = 0;
  for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
    const q = path.join(dir, e.name);
    t = Math.max(t, e.isDirectory() ? newestMtime(q) : fs.statSync(q).mtimeMs);
  }
  return t;
}

beforeAll(() => {
  const built = path.join(ROOT, 'dist', 'src', 'cli', 'merge.js');
  const srcTime = Math.max(...['src/pipeline', 'src/cli', 'src/formats', 'src/shard', 'src/gpu'].map((d) => newestMtime(path.join(ROOT, d))));
  if (!fs.existsSync(built) || fs.statSync(built).mtimeMs < srcTime) {
    const r = spawnSync(process.execPath, [path.join(ROOT, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', 'tsconfig.build.json'], { cwd: ROOT, encoding: 'utf8' });
    if (r.status !== 0) throw new Error(`build failed:\n${r.stdout}\n${r.stderr}`);
  }
  tmp = scratchDir('concord-scale-');
  const src = fs.readFileSync(path.join(ROOT, 'tests', 'helpers', 'fake-lm.ts'), 'utf8');
  fakeModule = p('fake-lm.mjs');
  fs.writeFileSync(fakeModule, ts.transpileModule(src, { compilerOptions: { module: ts.ModuleKind.ES2022, target: ts.ScriptTarget.ES2022 } }).outputText);
});

interface Run { code: number | null; signal: NodeJS.Signals | null; stdout: string; stderr: string }

function cli(args: string[], env: Record<string, string> = {}, fake = true): { child: ReturnType<typeof spawn>; done: Promise<Run> } {
  const child = spawn(process.execPath, [BIN, ...args], { cwd: tmp, env: { ...process.env, ...(fake ? { CONCORD_TEST_MODEL_MODULE: fakeModule } : {}), ...env } });
  let stdout = '', stderr = '';
  child.stdout!.on('data', (d) => { stdout += d; });
  child.stderr!.on('data', (d) => { stderr += d; });
  return { child, done: new Promise<Run>((res) => child.on('close', (code, signal) => res({ code, signal, stdout, stderr }))) };
}
const run = (args: string[], env: Record<string, string> = {}, fake = true) => cli(args, env, fake).done;
const bytes = (f: string) => fs.readFileSync(p(f));

const WORDS = ['cat', 'dog', 'sun', 'rain', 'ball', 'tree', 'park', 'red', 'big', 'happy', 'play', 'run', 'home'];
function rec(i: number): { id: number; instruction: string; input: string; output: string } {
  const w = (n: number, s: number) => Array.from({ length: n }, (_, k) => WORDS[(i * 7 + k * s) % WORDS.length]).join(' ');
  return { id: i, instruction: `story ${w(2 + (i % 5), 3)}`, input: i % 3 === 0 ? w(2, 5) : '', output: w(3 + ((i * 11) % 13), 2) };
}
const jsonl = (rows: string[]) => rows.join('\n') + '\n';

async function readAllRows(file: string): Promise<Record<string, unknown>[]> {
  const buf = fileAsyncBuffer(file);
  try { return (await parquetReadObjects({ file: buf })) as Record<string, unknown>[]; } finally { buf.close(); }
}

// ---- readers ------------------------------------------------------------------------------------

describe('readers', () => {
  test('Parquet: row group by row group from any row, BigInt → number, nested lists kept, every codec hyparquet-compressors decodes', async () => {
    const rows = Array.from({ length: 50 }, (_, i) => rec(i));
    // Node 20 compresses gzip and brotli itself; zstd pages come from the zstd command line tool
    // when it is installed (hyparquet-compressors' fzstd decodes them).
    const zstdCli = spawnSync('zstd', ['--version']).status === 0;
    const codecs = {
      GZIP: (b: Uint8Array) => new Uint8Array(zlib.gzipSync(b)),
      BROTLI: (b: Uint8Array) => new Uint8Array(zlib.brotliCompressSync(b)),
      ZSTD: (b: Uint8Array) => new Uint8Array(execFileSync('zstd', ['-q', '-c', '-3'], { input: b })),
    };
    for (const codec of ['SNAPPY', 'GZIP', 'BROTLI', 'UNCOMPRESSED', ...(zstdCli ? ['ZSTD' as const] : [])] as const) {
      const f = p(`rg-${codec}.parquet`);
      parquetWriteFile({
        filename: f, rowGroupSize: 7, codec, compressors: codecs,
        columnData: [
          { name: 'id', data: rows.map((r) => BigInt(r.id)), type: 'INT64' },
          { name: 'instruction', data: rows.map((r) => r.instruction), type: 'STRING' },
          { name: 'output', data: rows.map((r) => r.output), type: 'STRING' },
          { name: 'tags', data: rows.map((r) => [r.id % 2 ? 'odd' : 'even', 'x']), type: 'JSON' },
        ],
      });
      const meta = await parquetMetadataAsync(fileAsyncBuffer(f));
      expect(meta.row_groups.length).toBe(8); // 7 × 7 + 1
      const got = [];
      for await (const r of readParquetRows(f, 'rg.parquet', 17)) got.push(r);
      expect(got.map((r) => r.row)).toEqual(Array.from({ length: 33 }, (_, k) => 18 + k));
      expect(got[0].record).toEqual({ id: 17, instruction: rows[17].instruction, output: rows[17].output, tags: ['odd', 'x'] });
    }
  });

  test('the browser demo reads a Parquet file into the same records (web/parquet.ts, pure: no Node APIs)', async () => {
    const { parquetToJsonl, isParquetBytes } = await import('../web/parquet.js');
    const buf = fs.readFileSync(p('rg-GZIP.parquet'));
    expect(isParquetBytes(new Uint8Array(buf.subarray(0, 4)))).toBe(true);
    const { text, rows } = await parquetToJsonl(buf.buffer.slice(buf.byteOffset, buf.byteOffset + buf.length) as ArrayBuffer);
    expect(rows).toBe(50);
    const recs = text.trim().split('\n').map((l) => JSON.parse(l));
    expect(recs[3]).toEqual({ id: 3, instruction: rec(3).instruction, output: rec(3).output, tags: ['odd', 'x'] });
  });

  test('a truncated or non-Parquet file with a Parquet name: file: reason (an InputError, exit 3 in the CLI)', async () => {
    const good = fs.readFileSync(p('rg-SNAPPY.parquet'));
    fs.writeFileSync(p('torn.parquet'), good.subarray(0, good.length - 40));
    const it = readParquetRows(p('torn.parquet'), 'torn.parquet');
    await expect(it.next()).rejects.toThrow(/^torn\.parquet: not a readable Parquet file/);
    await expect(readParquetRows(p('torn.parquet'), 'torn.parquet').next()).rejects.toBeInstanceOf(InputError);
  });

  test('JSONL compressed with gzip and zstd: same records, line numbers, bad lines reported', async () => {
    const lines = [JSON.stringify(rec(0)), '', '{"broken', JSON.stringify(rec(1))];
    fs.writeFileSync(p('c.jsonl'), jsonl(lines));
    fs.writeFileSync(p('c.jsonl.gz'), zlib.gzipSync(jsonl(lines)));
    // Node 20 has no zstd compressor: the fixture is these lines through `zstd` (tests/fixtures/README.md).
    fs.copyFileSync(path.join(ROOT, 'tests', 'fixtures', 'c.jsonl.zst'), p('c.jsonl.zst'));
    for (const f of ['c.jsonl.gz', 'c.jsonl.zst']) {
      const set = openRecords(p(f));
      expect(set.files[0].format).toBe(f.endsWith('gz') ? 'jsonl.gz' : 'jsonl.zst');
      expect(await set.total()).toBe(3);
      const got = [];
      for await (const r of (await set.open()).records) got.push(r);
      expect(got.map((r) => r.loc.replace(/^.*\//, ''))).toEqual([`${f}:1`, `${f}:3`, `${f}:4`]);
      expect(got[1].parseError).toMatch(/^malformed JSON/);
      expect(got[2].record).toEqual(rec(1));
      // Resuming / sharding: skip records without parsing them.
      const tail = [];
      for await (const r of (await set.open({ units: 1, offset: 0, line: 0 }, { start: 1, end: 3 })).records) tail.push(r.loc.replace(/^.*\//, ''));
      expect(tail).toEqual([`${f}:4`]);
    }
    fs.writeFileSync(p('bad.jsonl.gz'), zlib.gzipSync(jsonl(lines)).subarray(0, 20));
    const drain = async () => { for await (const _ of (await openRecords(p('bad.jsonl.gz')).open({ units: 0, offset: 0, line: 0 }, { start: 0, end: 3 })).records) { /* drain */ } };
    await expect(drain()).rejects.toThrow(/bad\.jsonl\.gz: gzip: unexpected end of file/);
  });

  test('a dataset folder: data files in natural order, --split picks one, several splits need --split; globs', () => {
    const d = p('hf');
    fs.mkdirSync(path.join(d, 'data'), { recursive: true });
    fs.mkdirSync(path.join(d, '.cache'), { recursive: true });
    for (const f of ['train-00010-of-00011.parquet', 'train-00002-of-00011.parquet', 'test-00000-of-00001.parquet']) fs.copyFileSync(p('rg-SNAPPY.parquet'), path.join(d, 'data', f));
    fs.writeFileSync(path.join(d, '.cache', 'x.jsonl'), '{}\n');
    fs.writeFileSync(path.join(d, 'README.md'), '# card\n');
    expect(() => resolveInputs(d)).toThrow(/several splits \(test, train\); pass --split/);
    expect(resolveInputs(d, { split: 'train' }).map((f) => path.basename(f.path))).toEqual(['train-00002-of-00011.parquet', 'train-00010-of-00011.parquet']);
    expect(() => resolveInputs(d, { split: 'validation' })).toThrow(/no files of split 'validation' \(splits here: train, test\)|no files of split 'validation' \(splits here: test, train\)/);
    expect(resolveInputs(path.join(d, 'data', 'train-*.parquet')).map((f) => path.basename(f.path))).toEqual(['train-00002-of-00011.parquet', 'train-00010-of-00011.parquet']);
    expect(() => resolveInputs(p('nothing-*.parquet'))).toThrow(/no file matches/);
    expect(splitOf('default/train/0000.parquet')).toBe('train');
    expect(splitOf('data/validation-00000-of-00001.parquet')).toBe('validation');
  });

  test('records are counted across files the same whatever the format; a range crosses file boundaries', async () => {
    const set = openRecords(p('hf'), { split: 'train' });
    expect(await set.recordCounts()).toEqual([50, 50]);
    const locs: string[] = [];
    for await (const r of (await set.open({ units: 2, offset: 0, line: 0 }, { start: 45, end: 53 })).records) locs.push(path.basename(r.loc));
    expect(locs).toEqual(['train-00002-of-00011.parquet:48', 'train-00002-of-00011.parquet:49', 'train-00002-of-00011.parquet:50',
      'train-00010-of-00011.parquet:1', 'train-00010-of-00011.parquet:2', 'train-00010-of-00011.parquet:3']);
  });
});

// ---- shards: the share, i/n from the job engine --------------------------------------------------

describe('shard arithmetic and job-engine defaults', () => {
  test('the n shares partition [0, N) with no gap or overlap, sizes within one', () => {
    for (const [n, N] of [[1, 0], [4, 2400], [7, 100], [8, 3], [3, 1000001]]) {
      let next = 0;
      for (let i = 0; i < n; i++) {
        const r = shardRange(i, n, N);
        expect(r.start).toBe(next);
        expect(r.end - r.start).toBeGreaterThanOrEqual(Math.floor(N / n));
        expect(r.end - r.start).toBeLessThanOrEqual(Math.ceil(N / n));
        next = r.end;
      }
      expect(next).toBe(N);
    }
  });

  test('--shard i/n, SLURM_ARRAY_TASK_ID/COUNT (minus MIN), JOB_COMPLETION_INDEX with --shards', () => {
    expect(resolveShard({})).toBeNull();
    expect(resolveShard({ shard: '2/8', outDir: 'o' }, {})).toMatchObject({ i: 2, n: 8, source: '--shard' });
    expect(resolveShard({ outDir: 'o' }, { SLURM_ARRAY_TASK_ID: '3', SLURM_ARRAY_TASK_COUNT: '4' })).toMatchObject({ i: 3, n: 4 });
    expect(resolveShard({ outDir: 'o' }, { SLURM_ARRAY_TASK_ID: '4', SLURM_ARRAY_TASK_MIN: '1', SLURM_ARRAY_TASK_COUNT: '4' })).toMatchObject({ i: 3, n: 4 });
    expect(resolveShard({ shards: '6', outDir: 'o' }, { JOB_COMPLETION_INDEX: '5' })).toMatchObject({ i: 5, n: 6 });
    expect(() => resolveShard({ outDir: 'o' }, { JOB_COMPLETION_INDEX: '5' })).toThrow(/pass --shards n/);
    expect(() => resolveShard({ shards: '4', outDir: 'o' }, {})).toThrow(ShardError);
    expect(() => resolveShard({ shard: '4/4', outDir: 'o' }, {})).toThrow(/outside 0\.\.3/);
    expect(() => resolveShard({ shard: '1/4' }, {})).toThrow(/--out-dir/);
    expect(() => resolveShard({ shard: '1-4', outDir: 'o' }, {})).toThrow(/must be i\/n/);
  });
});

describe('summary statistics in bounded memory', () => {
  test('exact quantiles up to the cap; beyond it a fixed-seed uniform sample of cap values, n/mean/min/max exact', () => {
    const vals = Array.from({ length: 100_000 }, (_, i) => (i * 7919) % 100_000); // a permutation of 0..99999
    const small = new Column(1 << 20);
    for (const v of vals) small.push(v);
    expect(small.quantiles()).toEqual(quantiles(Float64Array.from(vals)));
    const c = new Column(4096), c2 = new Column(4096);
    for (const v of vals) { c.push(v); c2.push(v); }
    expect(c.values().length).toBe(4096);
    const q = c.quantiles()!;
    expect(q).toMatchObject({ n: 100_000, min: 0, max: 99_999, mean: 49_999.5 });
    for (const [k, want] of [['p05', 5_000], ['p25', 25_000], ['p50', 50_000], ['p75', 75_000], ['p95', 95_000]] as const) {
      expect(Math.abs(q[k] - want)).toBeLessThan(2_500); // ≈ 3 standard errors of a 4,096 sample
    }
    expect(c2.quantiles()).toEqual(q); // the same values in the same order: the same summary
  });
});

// ---- the CLI: Parquet in and out, shards, merge ---------------------------------------------------

describe('concord score / merge with Parquet and shards (fake model)', () => {
  const N = 180;
  beforeAll(() => {
    const rows = Array.from({ length: N }, (_, i) => rec(i));
    // A Hugging Face-style dataset with other column names (field mapping) and a bad row.
    fs.mkdirSync(p('ds', 'data'), { recursive: true });
    for (const [k, part] of [[0, rows.slice(0, 100)], [1, rows.slice(100)]] as const) {
      parquetWriteFile({
        filename: p('ds', 'data', `train-0000${k}-of-00002.parquet`), rowGroupSize: 32,
        columnData: [
          { name: 'id', data: part.map((r) => BigInt(r.id)), type: 'INT64' },
          { name: 'prompt', data: part.map((r) => r.instruction), type: 'STRING' },
          { name: 'response', data: part.map((r) => (r.id === 42 ? null : r.output)), type: 'STRING' },
        ],
      });
    }
    fs.writeFileSync(p('in.jsonl'), jsonl(rows.map((r, i) => (i % 37 === 5 ? '{"instruction": "broken' : JSON.stringify(r)))));
  });

  const pq = ['--instruction-field', 'prompt', '--output-field', 'response', '--cosine', 'off', '--quiet'];

  test('Parquet dataset folder in, Parquet out: input columns + one column per score; field mapping; file:row errors', async () => {
    const r = await run(['score', 'ds', '--split', 'train', '-o', 'scored.parquet', ...pq]);
    expect(r.code, r.stderr).toBe(0);
    const rows = await readAllRows(p('scored.parquet'));
    expect(rows).toHaveLength(N - 1);
    expect(Object.keys(rows[0]).slice(0, 4)).toEqual(['id', 'prompt', 'response', 'scores.fwd_logp']);
    expect(Object.keys(rows[0])).toEqual(expect.arrayContaining(['scores.rev_logp', 'scores.ifd', 'scores.x_tokens', 'scores.truncated']));
    expect(rows[0].id).toBe(0n); // INT64 stays INT64
    expect(typeof rows[0]['scores.fwd_logp']).toBe('number');
    const errs = fs.readFileSync(p('scored.parquet.errors.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l));
    expect(errs.map((e) => e.message)).toEqual([`${path.join('ds', 'data', 'train-00000-of-00002.parquet')}:43: missing field 'response'`]);
    expect(errs[0].record).toMatchObject({ id: 42, prompt: rec(42).instruction, response: null });
    expect(fs.existsSync(p('scored.parquet.scored.jsonl'))).toBe(false); // staging removed
    // The same rows as JSONL scoring of the same records.
    const j = await run(['score', 'ds', '--split', 'train', '-o', 'scored-pq.jsonl', ...pq]);
    expect(j.code).toBe(0);
    const jl = fs.readFileSync(p('scored-pq.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l));
    expect(jl.map((x) => x.scores.fwd_logp)).toEqual(rows.map((x) => x['scores.fwd_logp']));
  });

  test('kill -9 while scoring a Parquet folder, then --resume: the output equals an uninterrupted run', async () => {
    const args = ['score', 'ds', '--split', 'train', ...pq, '--window', '4', '--checkpoint-every', '2'];
    const { child, done } = cli([...args, '-o', 'res.parquet'], { CONCORD_FAKE_DELAY_MS: '40', CONCORD_FAKE_BUDGET: '32' });
    const progress = p('res.parquet.scored.jsonl.progress.json');
    const t0 = Date.now();
    for (;;) {
      try { if (JSON.parse(fs.readFileSync(progress, 'utf8')).position.units >= 10) break; } catch { /* not yet */ }
      if (Date.now() - t0 > 40_000) throw new Error('never checkpointed');
      await new Promise((r) => setTimeout(r, 15));
    }
    child.kill('SIGKILL');
    expect((await done).signal).toBe('SIGKILL');
    expect(fs.existsSync(p('res.parquet'))).toBe(false);
    const r = await run([...args, '-o', 'res.parquet', '--resume']);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toMatch(/resuming res\.parquet\.scored\.jsonl: \d+ records already done/);
    expect(bytes('res.parquet').equals(bytes('scored.parquet'))).toBe(true);
  });

  test('4 shards (JSONL in) merge to the single-process output byte for byte; a filter over all shards = filter of the whole', async () => {
    const single = await run(['score', 'in.jsonl', '-o', 'single.jsonl', '--cosine', 'off', '--quiet']);
    expect(single.code).toBe(0);
    const tasks = [0, 1, 2, 3].map((i) => run(['score', 'in.jsonl', '--cosine', 'off', '--quiet', '--shards', '4', '--out-dir', 'out4'], { SLURM_ARRAY_TASK_ID: String(i), SLURM_ARRAY_TASK_COUNT: '4' }));
    for (const t of await Promise.all(tasks)) expect(t.code, t.stderr).toBe(0);
    const m = JSON.parse(fs.readFileSync(p('out4', 'shard-2-of-4.manifest.json'), 'utf8'));
    expect(m).toMatchObject({ shard: { i: 2, n: 4, start: 90, end: 135 }, total_records: N, counts: { records: 45 }, output: { file: 'shard-2-of-4.jsonl', format: 'jsonl' } });
    expect(m.output.sha256).toMatch(/^[0-9a-f]{64}$/);
    expect(m.inputs[0]).toMatchObject({ name: 'in.jsonl', records: N, format: 'jsonl' });
    const mg = await run(['merge', 'out4', '-o', 'merged.jsonl', '--kept', 'kept.jsonl', '--drop-out', 'dropped.jsonl', '--keep-fraction', '0.3']);
    expect(mg.code, mg.stderr).toBe(0);
    expect(bytes('merged.jsonl').equals(bytes('single.jsonl'))).toBe(true);
    expect(bytes('merged.jsonl.errors.jsonl').equals(bytes('single.jsonl.errors.jsonl'))).toBe(true);
    const f = await run(['filter', 'single.jsonl', '-o', 'kept1.jsonl', '--drop-out', 'dropped1.jsonl', '--keep-fraction', '0.3']);
    expect(f.code).toBe(0);
    expect(bytes('kept.jsonl').equals(bytes('kept1.jsonl'))).toBe(true);
    expect(bytes('dropped.jsonl').equals(bytes('dropped1.jsonl'))).toBe(true);
    // Rerunning a complete shard skips it.
    const again = await run(['score', 'in.jsonl', '--cosine', 'off', '--shard', '1/4', '--out-dir', 'out4']);
    expect(again.code).toBe(0);
    expect(again.stderr).toMatch(/shard 1\/4 \(records 45\.\.89 of 180; --shard\) is complete .*skipping/);
  });

  test('Parquet shards of a Parquet dataset merge to the single-process Parquet byte for byte', async () => {
    for (const i of [0, 1, 2]) {
      const t = await run(['score', 'ds', '--split', 'train', ...pq, '--shard', `${i}/3`, '--out-dir', 'pq3']);
      expect(t.code, t.stderr).toBe(0);
    }
    expect(fs.existsSync(p('pq3', 'shard-0-of-3.parquet'))).toBe(true);
    const mg = await run(['merge', 'pq3', '-o', 'merged.parquet', '--kept', 'kept.parquet', '--keep-fraction', '0.25']);
    expect(mg.code, mg.stderr).toBe(0);
    expect(bytes('merged.parquet').equals(bytes('scored.parquet'))).toBe(true);
    expect(bytes('merged.parquet.errors.jsonl').equals(bytes('scored.parquet.errors.jsonl'))).toBe(true);
    const f = await run(['filter', 'scored.parquet', '-o', 'kept1.parquet', '--keep-fraction', '0.25']);
    expect(f.code, f.stderr).toBe(0);
    expect(bytes('kept.parquet').equals(bytes('kept1.parquet'))).toBe(true);
    const kept = await readAllRows(p('kept.parquet'));
    expect(kept.length).toBe(Math.round(0.25 * (N - 1)));
    expect(kept.every((r) => r.keep === true)).toBe(true);
  });

  test('merge names a missing, an unfinished and a tampered shard with the command that redoes it (exit 3); the redo resumes', async () => {
    const base = ['score', 'in.jsonl', '--cosine', 'off', '--quiet', '--window', '4', '--checkpoint-every', '2', '--out-dir', 'bad3'];
    expect((await run([...base, '--shard', '0/3'])).code).toBe(0);
    // Shard 1: killed mid-run (SIGKILL after a few checkpoints).
    const { child, done } = cli([...base, '--shard', '1/3'], { CONCORD_FAKE_DELAY_MS: '40', CONCORD_FAKE_BUDGET: '32' });
    const progress = p('bad3', 'shard-1-of-3.jsonl.progress.json');
    const t0 = Date.now();
    for (;;) {
      try { if (JSON.parse(fs.readFileSync(progress, 'utf8')).position.units >= 8) break; } catch { /* not yet */ }
      if (Date.now() - t0 > 40_000) throw new Error('shard 1 never checkpointed');
      await new Promise((r) => setTimeout(r, 15));
    }
    child.kill('SIGKILL');
    expect((await done).signal).toBe('SIGKILL');
    let mg = await run(['merge', 'bad3', '-o', 'x.jsonl']);
    expect(mg.code).toBe(3);
    expect(mg.stderr).toContain('2 shard problems');
    expect(mg.stderr).toMatch(/shard 1\/3 is unfinished \(.*shard-1-of-3\.jsonl\.progress\.json is its checkpoint\); resume it: concord score in\.jsonl --cosine off --quiet --window 4 --checkpoint-every 2 --out-dir bad3 --shard 1\/3/);
    expect(mg.stderr).toMatch(/shard 2\/3 is missing \(no bad3\/shard-2-of-3\.manifest\.json\); run: concord score in\.jsonl .* --shard 2\/3/);
    expect(fs.existsSync(p('x.jsonl'))).toBe(false);
    // The same command resumes shard 1 from its checkpoint; shard 2 runs; then shard 0 is tampered with.
    const r1 = await run([...base, '--shard', '1/3']);
    expect(r1.code).toBe(0);
    expect(r1.stderr).toMatch(/resuming its checkpoint/);
    expect((await run([...base, '--shard', '2/3'])).code).toBe(0);
    fs.appendFileSync(p('bad3', 'shard-0-of-3.jsonl'), '{"id": 1}\n');
    mg = await run(['merge', 'bad3', '-o', 'x.jsonl']);
    expect(mg.code).toBe(3);
    expect(mg.stderr).toMatch(/shard 0\/3: .*shard-0-of-3\.jsonl does not match its manifest .*; redo it: concord score .* --shard 0\/3/);
    // Redoing it (the same command: the manifest no longer matches, so it is scored again) heals the run.
    const r0 = await run([...base, '--shard', '0/3']);
    expect(r0.code).toBe(0);
    expect(r0.stderr).toMatch(/changed since the manifest was written; scoring the shard again/);
    mg = await run(['merge', 'bad3', '-o', 'x.jsonl']);
    expect(mg.code, mg.stderr).toBe(0);
    expect(bytes('x.jsonl').equals(bytes('single.jsonl'))).toBe(true);
  });

  test('shards of two different runs in one folder, or a shard run with other options over an existing shard, are refused', async () => {
    expect((await run(['score', 'in.jsonl', '--cosine', 'off', '--quiet', '--shard', '0/2', '--out-dir', 'mix'])).code).toBe(0);
    const clash = await run(['score', 'in.jsonl', '--cosine', 'off', '--quiet', '--max-len', '40', '--shard', '0/2', '--out-dir', 'mix']);
    expect(clash.code).toBe(6);
    expect(clash.stderr).toMatch(/shard-0-of-2\.manifest\.json: it belongs to a run with other inputs or options/);
    // Another run's shard into the same folder: refused too (issue 26), so a mixed folder can only be made by hand.
    const other = await run(['score', 'in.jsonl', '--cosine', 'off', '--quiet', '--max-len', '40', '--shard', '1/2', '--out-dir', 'mix']);
    expect(other.code).toBe(6);
    expect(other.stderr).toMatch(/shard-0-of-2\.manifest\.json belongs to another run/);
    expect((await run(['score', 'in.jsonl', '--cosine', 'off', '--quiet', '--max-len', '40', '--shard', '1/2', '--out-dir', 'mix-b'])).code).toBe(0);
    for (const f of fs.readdirSync(p('mix-b'))) fs.copyFileSync(p('mix-b', f), p('mix', f));
    const mg = await run(['merge', 'mix', '-o', 'y.jsonl']);
    expect(mg.code).toBe(3);
    expect(mg.stderr).toMatch(/holds shards of 2 different runs/);
    expect((await run(['merge', 'nowhere', '-o', 'y.jsonl'])).code).toBe(3);
    expect((await run(['merge', 'mix'])).code).toBe(2);
    expect((await run(['score', 'in.jsonl', '--shard', '0/2', '--out-dir', 'mix', '-o', 'z.jsonl'])).code).toBe(2);
  });
});

// ---- --gpu ------------------------------------------------------------------------------------------

describe('--gpu selection', () => {
  const gpus = [
    { address: '0000:17:00.0', vendor: '0x10de', device: '0x2335', driver: 'nvidia' },
    { address: '0000:2a:00.0', vendor: '0x10de', device: '0x2335', driver: 'nvidia' },
  ];
  test('a name → dawn.node adapter=; an index → Mesa device-select by PCI address; impossible requests are errors', () => {
    expect(selectGpu('H200', { gpus, layer: null })).toMatchObject({ flags: ['adapter=H200'], env: {} });
    expect(selectGpu('1', { gpus, layer: '/usr/share/vulkan/implicit_layer.d/VkLayer_MESA_device_select.json' }))
      .toMatchObject({ flags: [], env: { DRI_PRIME: 'pci-0000_2a_00_0', MESA_VK_DEVICE_SELECT_FORCE_DEFAULT_DEVICE: '1' } });
    expect(driPrimeTag('0000:41:00.0')).toBe('pci-0000_41_00_0');
    expect(() => selectGpu('2', { gpus, layer: 'x' })).toThrow(/--gpu 2: 2 GPUs on the PCI bus \(0: 0000:17:00\.0 .*1: 0000:2a:00\.0/);
    expect(() => selectGpu('0', { gpus, layer: null })).toThrow(/needs Mesa's device-select Vulkan layer/);
  });

  test('on the real adapter: --gpu with a part of its name takes it; an unknown name fails, listing the adapters (exit 5)', async () => {
    const doc = await run(['doctor', '--json'], {}, false);
    const report = JSON.parse(doc.stdout);
    if (!report.adapter) {
      if (process.env.CONCORD_REQUIRE_GPU === '1') throw new Error(`no WebGPU adapter: ${report.adapterError}`);
      return; // no adapter here: nothing to select among
    }
    // dawn.node matches the native adapter name, which `doctor` shows as the description
    // ('llvmpipe (LLVM 15.0.6, 256 bits)'; adapter.info.device is a slug of it).
    const name: string = report.adapter.description || report.adapter.device;
    const part = /[A-Za-z0-9]+/.exec(name)![0];
    const ok = await run(['doctor', '--json'], { CONCORD_GPU: part }, false);
    const okr = JSON.parse(ok.stdout);
    expect(okr.adapter?.device, okr.adapterError).toBe(report.adapter.device);
    expect(okr.driver).toContain(`--gpu ${part}: the first Vulkan adapter whose name contains`);
    fs.writeFileSync(p('g.jsonl'), jsonl([JSON.stringify(rec(1))]));
    const bad = await run(['score', 'g.jsonl', '-o', 'g.out.jsonl', '--gpu', 'no-such-gpu-xyz', '--cosine', 'off'], {}, false);
    expect(bad.code).toBe(5);
    expect(bad.stderr).toMatch(/--gpu no-such-gpu-xyz: /);
    expect(bad.stderr).toMatch(new RegExp(`Available adapters:[\\s\\S]*name: '[^']*${part}`));
  });
});
