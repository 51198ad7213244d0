// `npm run build && node dist/bench/scale.js [--sizes 1e4,1e5,1e6] [--shards 4] [--format jsonl|parquet] [--markdown]`
// (--format parquet: the input is a Parquet file with row groups of 4,096 and every output is
// Parquet: this shows the row-group-bounded reader and the Parquet writer at scale.)
//
// Scale figures for concord's data path: synthetic records streamed through `concord score` (one
// process), the same records as a sharded run (`--shard i/n --out-dir`, the shards one after
// another) and `concord merge` (plain merge, and merge + a `main --keep-fraction` rule over all
// shards), at 10^4, 10^5 and 10^6 records. Each command is a child process; the figures are its
// wall time per record and its peak RSS (process.resourceUsage().maxRSS, written at exit by a
// preloaded hook). V8 lets garbage pile up when memory is plentiful, so peak RSS overstates live
// memory; `--heap MB` runs every child with --max-old-space-size=MB to show what fits in a cap.
//
// The model is the deterministic fake LM of tests/helpers/fake-lm.ts (vocabulary 16, no delay),
// loaded through the CLI's CONCORD_TEST_MODEL_MODULE hook: these figures measure reading, pairing,
// tokenising, scheduling, checkpointing, writing and merging — not model compute, which is
// measured by `npm run bench` (bench/e2e.ts) and dominates any real run.
//
// Validation before any figure is reported: the merged output must equal the single-process output
// byte for byte (sha256), with the expected record count. The peer, run in the same run: a plain
// Node stream that reads the same JSONL, JSON.parse + JSON.stringify each line and writes it out —
// the floor for any per-record JSONL pipeline on this machine.

import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import ts from 'typescript';
import { writeParquetRows } from '../src/io/parquet.js';

const here = path.dirname(fileURLToPath(import.meta.url));
function findRoot(dir: string): string {
  for (let d = dir; ; d = path.dirname(d)) {
    if (fs.existsSync(path.join(d, 'package.json')) && fs.existsSync(path.join(d, 'bin', 'concord.js'))) return d;
    if (path.dirname(d) === d) throw new Error('no package root above bench/scale');
  }
}
const ROOT = findRoot(here);
const BIN = path.join(ROOT, 'bin', 'concord.js');

const { values: opt } = parseArgs({
  options: {
    sizes: { type: 'string', default: '1e4,1e5,1e6' },
    shards: { type: 'string', default: '4' },
    format: { type: 'string', default: 'jsonl' },
    markdown: { type: 'boolean', default: false },
    keep: { type: 'boolean', default: false },
    /** --max-old-space-size for every child (MB): peak RSS with V8 told to collect, i.e. close to live memory. */
    heap: { type: 'string' },
  },
});
const sizes = opt.sizes!.split(',').map((s) => Math.round(Number(s)));
const nShards = Number(opt.shards);
const fmt = opt.format as 'jsonl' | 'parquet';

const dir = fs.mkdtempSync(path.join(tmpdir(), 'concord-scale-bench-'));
const fake = path.join(dir, 'fake-lm.mjs');
fs.writeFileSync(fake, ts.transpileModule(fs.readFileSync(path.join(ROOT, 'tests', 'helpers', 'fake-lm.ts'), 'utf8'), {
  compilerOptions: { module: ts.ModuleKind.ES2022, target: ts.ScriptTarget.ES2022 },
}).outputText);
const hook = path.join(dir, 'rss-hook.mjs');
fs.writeFileSync(hook, `import { writeFileSync } from 'node:fs';\nprocess.on('exit', () => { if (process.env.RSS_OUT) writeFileSync(process.env.RSS_OUT, String(process.resourceUsage().maxRSS)); });\n`);

const WORDS = ['cat', 'dog', 'sun', 'rain', 'ball', 'tree', 'park', 'red', 'big', 'happy', 'play', 'run', 'home', 'mom', 'friend', 'little', 'girl', 'boy'];
/** Records like the tests': 3–7 word prompts, 3–15 word responses; every 1000th line is malformed. */
function line(i: number): string {
  if (i % 1000 === 999) return '{"instruction": "broken';
  const w = (n: number, s: number) => Array.from({ length: n }, (_, k) => WORDS[(i * 7 + k * s) % WORDS.length]).join(' ');
  return JSON.stringify({ id: i, instruction: `story ${w(2 + (i % 5), 3)}`, input: i % 3 === 0 ? w(2, 5) : '', output: w(3 + ((i * 11) % 13), 2) });
}

async function writeInput(file: string, n: number): Promise<void> {
  const out = fs.createWriteStream(file);
  for (let i = 0; i < n; i += 10_000) {
    const chunk: string[] = [];
    for (let k = i; k < Math.min(n, i + 10_000); k++) chunk.push(line(k));
    if (!out.write(chunk.join('\n') + '\n')) await new Promise<void>((r) => out.once('drain', () => r()));
  }
  await new Promise<void>((r, j) => out.end((e?: Error | null) => (e ? j(e) : r())));
}

interface Measured { ms: number; rssMB: number }

async function child(args: string[], env: Record<string, string> = {}): Promise<Measured> {
  const rssOut = path.join(dir, `rss-${process.hrtime.bigint()}`);
  const t0 = performance.now();
  const code = await new Promise<number | null>((res) => {
    const c = spawn(process.execPath, [...(opt.heap ? [`--max-old-space-size=${opt.heap}`] : []), '--import', hook, ...args], {
      cwd: dir, stdio: ['ignore', 'ignore', 'pipe'],
      env: { ...process.env, CONCORD_TEST_MODEL_MODULE: fake, CONCORD_FAKE_VOCAB: '16', RSS_OUT: rssOut, ...env },
    });
    let err = '';
    c.stderr!.on('data', (d) => { err = (err + d).slice(-4000); });
    c.on('close', (k) => { if (k !== 0) process.stderr.write(err); res(k); });
  });
  const ms = performance.now() - t0;
  // Under --heap a child may run out of heap: that is a figure too (reported as such), not a crash.
  if (code !== 0 && opt.heap && !fs.existsSync(rssOut)) return { ms: NaN, rssMB: NaN };
  if (code !== 0) throw new Error(`${args.join(' ')}: exit ${code}`);
  return { ms, rssMB: Number(fs.readFileSync(rssOut, 'utf8')) / 1024 };
}

function sha256(file: string): string {
  const h = createHash('sha256');
  const fd = fs.openSync(file, 'r');
  const buf = Buffer.alloc(1 << 20);
  for (let pos = 0; ;) {
    const n = fs.readSync(fd, buf, 0, buf.length, pos);
    if (n === 0) break;
    h.update(buf.subarray(0, n));
    pos += n;
  }
  fs.closeSync(fd);
  return h.digest('hex');
}

function countLines(file: string): number {
  let n = 0;
  const fd = fs.openSync(file, 'r');
  const buf = Buffer.alloc(1 << 20);
  for (let pos = 0; ;) {
    const k = fs.readSync(fd, buf, 0, buf.length, pos);
    if (k === 0) break;
    for (let i = 0; i < k; i++) if (buf[i] === 0x0a) n++;
    pos += k;
  }
  fs.closeSync(fd);
  return n;
}

const PEER = `import { createReadStream, createWriteStream } from 'node:fs';
import { createInterface } from 'node:readline';
const out = createWriteStream(process.argv[2] + '.peer.jsonl');
for await (const l of createInterface({ input: createReadStream(process.argv[2]), crlfDelay: Infinity })) {
  if (l.trim() === '') continue;
  let r; try { r = JSON.parse(l); } catch { continue; }
  if (!out.write(JSON.stringify(r) + '\\n')) await new Promise((res) => out.once('drain', res));
}
out.end();`;
const peerFile = path.join(dir, 'peer.mjs');
fs.writeFileSync(peerFile, PEER);

interface Row { n: number; peer: Measured; score: Measured; shards: Measured; merge: Measured; mergeFilter: Measured; load: number }
const rows: Row[] = [];
const ext = fmt === 'parquet' ? 'parquet' : 'jsonl';
for (const n of sizes) {
  let input = path.join(dir, `in-${n}.jsonl`);
  await writeInput(input, n);
  if (fmt === 'parquet') {
    // The same records (the malformed lines become rows without an output field: still errors).
    const pqIn = path.join(dir, `in-${n}.parquet`);
    async function* recs(): AsyncGenerator<Record<string, unknown>> {
      for (let i = 0; i < n; i++) { const l = line(i); yield l.startsWith('{"instruction": "broken') ? { id: i, instruction: 'broken', input: '', output: null } : JSON.parse(l); }
    }
    await writeParquetRows(pqIn, recs);
    input = pqIn;
  }
  const load = loadavg()[0];
  const common = ['score', input, '--cosine', 'off', '--quiet'];
  const peer = await child([peerFile, input.replace(/\.parquet$/, '.jsonl')]);
  const score = await child([BIN, ...common, '-o', path.join(dir, `single-${n}.${ext}`)]);
  const outDir = path.join(dir, `shards-${n}`);
  let shardMs = 0, shardRss = 0;
  for (let i = 0; i < nShards; i++) {
    const m = await child([BIN, ...common, '--shard', `${i}/${nShards}`, '--out-dir', outDir, '--out-format', fmt]);
    shardMs += m.ms;
    shardRss = Math.max(shardRss, m.rssMB);
  }
  const merged = path.join(dir, `merged-${n}.${ext}`);
  const merge = await child([BIN, 'merge', outDir, '-o', merged, '--quiet']);
  const mergeFilter = await child([BIN, 'merge', outDir, '--kept', path.join(dir, `kept-${n}.${ext}`), '--keep-fraction', '0.3', '--quiet']);
  // Validate before reporting.
  const a = sha256(path.join(dir, `single-${n}.${ext}`)), b = sha256(merged);
  if (a !== b) throw new Error(`n=${n}: merged output differs from the single-process output (${a} vs ${b}): INVALID`);
  const bad = Math.floor((n + 1) / 1000);
  if (fmt === 'jsonl' && countLines(merged) !== n - bad) throw new Error(`n=${n}: ${countLines(merged)} scored records, expected ${n - bad}: INVALID`);
  rows.push({ n, peer, score, shards: { ms: shardMs, rssMB: shardRss }, merge, mergeFilter, load });
  process.stderr.write(`n=${n}: validated (merged = single, sha256 ${a.slice(0, 12)}…)\n`);
  for (const f of fs.readdirSync(dir)) if (f.includes(`-${n}`) && !opt.keep) fs.rmSync(path.join(dir, f), { recursive: true, force: true });
}

const us = (m: Measured, n: number) => (Number.isNaN(m.ms) ? `out of heap (--heap ${opt.heap})` : ((m.ms * 1000) / n).toFixed(1));
const mb = (m: Measured) => (Number.isNaN(m.rssMB) ? '–' : m.rssMB.toFixed(0));
if (opt.markdown) {
  console.log(`| records | peer: parse+write | score (1 process) | ${nShards} shards (sum) | merge | merge + main 30 % over all shards | load avg |`);
  console.log('|---:|---:|---:|---:|---:|---:|---:|');
  for (const r of rows) {
    console.log(`| ${r.n.toLocaleString('en')} | ${us(r.peer, r.n)} µs · ${mb(r.peer)} MB | ${us(r.score, r.n)} µs · ${mb(r.score)} MB | ${us(r.shards, r.n)} µs · ${mb(r.shards)} MB | ${us(r.merge, r.n)} µs · ${mb(r.merge)} MB | ${us(r.mergeFilter, r.n)} µs · ${mb(r.mergeFilter)} MB | ${r.load.toFixed(1)} |`);
  }
} else {
  console.log(JSON.stringify({ format: fmt, shards: nShards, rows: rows.map((r) => ({ ...r, us_per_record: { peer: us(r.peer, r.n), score: us(r.score, r.n), shards: us(r.shards, r.n), merge: us(r.merge, r.n), merge_filter: us(r.mergeFilter, r.n) } })) }, null, 2));
}
if (!opt.keep) fs.rmSync(dir, { recursive: true, force: true });
