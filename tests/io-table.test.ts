// Issue 21: every command reads every input kind (embed: --records) (JSONL, a JSON array, Parquet, .jsonl.gz,
// .jsonl.zst, a dataset folder, a glob) through src/io and writes both output kinds (JSONL and
// Parquet, by extension and by --out-format). CLI runs use the fake model (CONCORD_TEST_MODEL_MODULE)
// and, for select / dedup, the MiniLM encoder on the CPU; outputs are read back with hyparquet
// (Parquet) or line by line (JSONL), independently of the reader under test.

import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as zlib from 'node:zlib';
import { parquetReadObjects } from 'hyparquet';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { fileAsyncBuffer, writeParquetRows } from '../src/io/parquet.js';
import { toJsonValue, unflattenScores } from '../src/formats/parquet-values.js';
import { record, setupCli, type Cli } from './helpers/cli.js';

const N = 8;
const KINDS = ['jsonl', 'json', 'parquet', 'gz', 'zst', 'folder', 'glob'] as const;
type Kind = (typeof KINDS)[number];
let c: Cli;

/** Write `rows` as input kind `kind` under `base`; returns the argument that names it. */
async function writeKind(kind: Kind, base: string, rows: Record<string, unknown>[]): Promise<string> {
  const text = rows.map((r) => JSON.stringify(r)).join('\n') + '\n';
  switch (kind) {
    case 'jsonl': fs.writeFileSync(c.p(`${base}.jsonl`), text); return `${base}.jsonl`;
    case 'json': fs.writeFileSync(c.p(`${base}.json`), JSON.stringify(rows, null, 1)); return `${base}.json`;
    case 'parquet': await writeParquetRows(c.p(`${base}.parquet`), async function* () { yield* rows; }); return `${base}.parquet`;
    case 'gz': fs.writeFileSync(c.p(`${base}.jsonl.gz`), zlib.gzipSync(text)); return `${base}.jsonl.gz`;
    case 'zst':
      fs.writeFileSync(c.p(`${base}.jsonl`), text);
      execFileSync('zstd', ['-q', '-f', c.p(`${base}.jsonl`), '-o', c.p(`${base}.jsonl.zst`)]);
      fs.rmSync(c.p(`${base}.jsonl`));
      return `${base}.jsonl.zst`;
    case 'folder': {
      fs.mkdirSync(c.p(`${base}-dir`), { recursive: true });
      const half = rows.length >> 1;
      fs.writeFileSync(c.p(`${base}-dir/train-00000-of-00002.jsonl`), rows.slice(0, half).map((r) => JSON.stringify(r)).join('\n') + '\n');
      await writeParquetRows(c.p(`${base}-dir/train-00001-of-00002.parquet`), async function* () { yield* rows.slice(half); });
      return `${base}-dir`;
    }
    case 'glob': {
      fs.mkdirSync(c.p(`${base}-glob`), { recursive: true });
      const half = rows.length >> 1;
      fs.writeFileSync(c.p(`${base}-glob/part-1.jsonl`), rows.slice(0, half).map((r) => JSON.stringify(r)).join('\n') + '\n');
      fs.writeFileSync(c.p(`${base}-glob/part-2.jsonl.gz`), zlib.gzipSync(rows.slice(half).map((r) => JSON.stringify(r)).join('\n') + '\n'));
      return `${base}-glob/part-*`;
    }
  }
}

/** The records of an output file, by its first bytes (Parquet through hyparquet, else JSONL lines). */
async function readOut(file: string): Promise<Record<string, unknown>[]> {
  const buf = fs.readFileSync(c.p(file));
  if (buf.subarray(0, 4).toString('latin1') === 'PAR1') {
    const ab = fileAsyncBuffer(c.p(file));
    try {
      return ((await parquetReadObjects({ file: ab })) as Record<string, unknown>[]).map((r) => unflattenScores(toJsonValue(r) as Record<string, unknown>));
    } finally { ab.close(); }
  }
  return buf.toString('utf8').split('\n').filter((l) => l.trim() !== '').map((l) => JSON.parse(l));
}

const OUTS = [
  { name: 'jsonl', ext: 'jsonl', flags: [] as string[], magic: false },
  { name: 'parquet', ext: 'parquet', flags: [] as string[], magic: true },
  { name: 'parquet (--out-format)', ext: 'out', flags: ['--out-format', 'parquet'], magic: true },
];

const raw = Array.from({ length: N }, (_, i) => ({ ...record(i), label: i % 2 === 0 }));
let scored: Record<string, unknown>[] = [];
const rawIn = new Map<Kind, string>();
const scoredIn = new Map<Kind, string>();

beforeAll(async () => {
  c = setupCli('concord-io-table-');
  fs.writeFileSync(c.p('base.jsonl'), raw.map((r) => JSON.stringify(r)).join('\n') + '\n');
  const r = await c.run(['score', 'base.jsonl', '-o', 'base.scored.jsonl', '--cosine', 'off', '--quiet']);
  expect(r.code, r.stderr).toBe(0);
  scored = c.lines('base.scored.jsonl');
  expect(scored).toHaveLength(N);
  for (const k of KINDS) {
    rawIn.set(k, await writeKind(k, `raw-${k}`, raw));
    scoredIn.set(k, await writeKind(k, `scored-${k}`, scored));
  }
}, 120_000);
afterAll(() => { if (c) fs.rmSync(c.tmp, { recursive: true, force: true }); });

async function ok(args: string[]): Promise<string> {
  const r = await c.run(args);
  expect(r.code, `concord ${args.join(' ')}\n${r.stderr}`).toBe(0);
  return r.stdout;
}

async function expectOut(file: string, magic: boolean, n: number | [number, number], check?: (rows: Record<string, unknown>[]) => void): Promise<void> {
  expect(fs.readFileSync(c.p(file)).subarray(0, 4).toString('latin1') === 'PAR1', file).toBe(magic);
  const rows = await readOut(file);
  if (typeof n === 'number') expect(rows, file).toHaveLength(n);
  else { expect(rows.length, file).toBeGreaterThanOrEqual(n[0]); expect(rows.length, file).toBeLessThanOrEqual(n[1]); }
  check?.(rows);
}

const ids = (rows: Record<string, unknown>[]) => rows.map((r) => r.id).sort((a, b) => Number(a) - Number(b));
const allIds = raw.map((r) => r.id);

describe.each(KINDS)('input kind %s', (kind) => {
  test.each(OUTS)('score, run, filter, select, dedup → $name', async (out) => {
    const o = (cmd: string) => `${cmd}-${kind}.${out.ext}`;
    const [ri, si] = [rawIn.get(kind)!, scoredIn.get(kind)!];
    await ok(['score', ri, '-o', o('score'), '--cosine', 'off', '--quiet', ...out.flags]);
    await expectOut(o('score'), out.magic, N, (rows) => {
      expect(ids(rows)).toEqual(allIds);
      for (const r of rows) expect(typeof (r.scores as Record<string, unknown>).fwd_logp).toBe('number');
    });
    await ok(['run', ri, '-o', o('run'), '--drop-out', o('run-drop'), '--cosine', 'off', '--quiet', ...out.flags]);
    const kept = await readOut(o('run')), dropped = await readOut(o('run-drop'));
    await expectOut(o('run'), out.magic, kept.length);
    expect(ids([...kept, ...dropped])).toEqual(allIds);
    await ok(['filter', si, '-o', o('filter'), '--drop-out', o('filter-drop'), '--quiet', ...out.flags]);
    const fk = await readOut(o('filter')), fd = await readOut(o('filter-drop'));
    await expectOut(o('filter'), out.magic, fk.length, (rows) => { for (const r of rows) expect(r.keep).toBe(true); });
    expect(ids([...fk, ...fd])).toEqual(allIds);
    await ok(['select', si, '-o', o('select'), '--budget', '3', '--diversity', '1', '--device', 'cpu', '--quiet', ...out.flags]);
    await expectOut(o('select'), out.magic, 3, (rows) => { for (const r of rows) expect(typeof r.select_rank).toBe('number'); });
    await ok(['dedup', ri, '-o', o('dedup'), '--device', 'cpu', ...out.flags]);
    await expectOut(o('dedup'), out.magic, [1, N]);
  }, 240_000);

  test('eval, report, embed --records; merge of a one-shard run → jsonl and parquet', async () => {
    const si = scoredIn.get(kind)!;
    const em = JSON.parse(await ok(['embed', '--records', rawIn.get(kind)!, '--device', 'cpu', '--json'])) as { embeddings: { text: string }[] };
    expect(em.embeddings.map((e) => e.text)).toEqual(raw.map((r) => `${r.input ? `${r.instruction}\n\n${r.input}` : r.instruction}\n\n${r.output}`));
    const ev = JSON.parse(await ok(['eval', si, '--label', 'label', '--json'])) as { left_out: number };
    expect(ev.left_out).toBe(0);
    await ok(['report', si, '-o', `report-${kind}.html`]);
    expect(fs.readFileSync(c.p(`report-${kind}.html`), 'utf8')).toMatch(/<html/i);
    await ok(['score', rawIn.get(kind)!, '--cosine', 'off', '--quiet', '--shard', '0/1', '--out-dir', `shards-${kind}`]);
    for (const out of OUTS.slice(0, 2)) {
      await ok(['merge', `shards-${kind}`, '-o', `merge-${kind}.${out.ext}`, '--quiet']);
      await expectOut(`merge-${kind}.${out.ext}`, out.magic, N, (rows) => expect(ids(rows)).toEqual(allIds));
    }
  }, 120_000);
});
