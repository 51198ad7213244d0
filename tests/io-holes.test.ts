// Issue 26's holes in the record I/O layer (src/io), each fixed once there: zstd frame checksums,
// symlinked dataset files and `**` loops, long lines (linear time, a cap with a per-record error),
// a cap on bad records, unreadable files in a folder or glob (exit 3), a folder holding one
// train.jsonl, `filter` on a wholly unscored file (exit 3), Parquet footers that lie, `__proto__` /
// `constructor` fields through Parquet, and a record's own `scores` field (warned). CLI cases run
// bin/concord.js with the fake model (CONCORD_TEST_BIN=<older build> shows them failing before).

import { execFileSync, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as zlib from 'node:zlib';
import { parquetWriteFile } from 'hyparquet-writer';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { jsonlRecords } from '../src/io/records.js';
import { Xxh64 } from '../src/io/xxh64.js';
import { BIN, noStack, record, setupCli, type Cli } from './helpers/cli.js';

let c: Cli;
beforeAll(() => { c = setupCli('concord-io-holes-'); });
afterAll(() => { if (c) fs.rmSync(c.tmp, { recursive: true, force: true }); });

const jl = (rows: unknown[]) => rows.map((r) => JSON.stringify(r)).join('\n') + '\n';
const recs = (a: number, b: number) => Array.from({ length: b - a }, (_, i) => record(a + i));
const score = (input: string, out: string, env: Record<string, string> = {}, more: string[] = []) => c.run(['score', input, '-o', out, '--cosine', 'off', '--quiet', ...more], env);

describe('zstd: the frame checksum is verified (26.3)', () => {
  test('XXH64 (seed 0) matches the reference values, whole and in pieces', () => {
    const h = (s: string, step = 0) => {
      const x = new Xxh64();
      const b = Buffer.from(s);
      if (step) for (let i = 0; i < b.length; i += step) x.update(b.subarray(i, i + step));
      else x.update(b);
      return x.digest().toString(16).padStart(16, '0');
    };
    expect(h('')).toBe('ef46db3751d8e999');
    expect(h('a')).toBe('d24ec4f1a98c6e5b');
    expect(h('abc')).toBe('44bc2cf5ad770999');
    const long = 'The quick brown fox jumps over the lazy dog. '.repeat(50);
    expect(h(long, 7)).toBe(h(long));
    expect(h(long, 33)).toBe(h(long));
  });

  test('a flipped bit in a .jsonl.zst: exit 3 naming the file; the intact file scores', async () => {
    fs.writeFileSync(c.p('z.jsonl'), jl(recs(0, 40)));
    execFileSync('zstd', ['-q', '-f', '--check', c.p('z.jsonl'), '-o', c.p('z.jsonl.zst')]);
    const ok = await score('z.jsonl.zst', 'z.out.jsonl');
    expect(ok.code, ok.stderr).toBe(0);
    expect(c.lines('z.out.jsonl')).toHaveLength(40);
    const bytes = fs.readFileSync(c.p('z.jsonl.zst'));
    // Flip bits in the last block's payload (before the 4-byte checksum) until the frame still
    // decodes: then only the checksum can tell (zstd -t agrees that the file is damaged).
    let caught = 0;
    for (let k = 12; k < 40 && caught < 2; k += 3) {
      const bad = Buffer.from(bytes);
      bad[bad.length - k] ^= 0x04;
      fs.writeFileSync(c.p('zb.jsonl.zst'), bad);
      if (spawnSync('zstd', ['-t', '-q', c.p('zb.jsonl.zst')]).status === 0) continue; // not damage zstd sees
      const r = await score('zb.jsonl.zst', 'zb.out.jsonl');
      expect(r.code, r.stderr).toBe(3);
      expect(r.stderr).toMatch(/zb\.jsonl\.zst: zstd: /);
      expect(noStack(r.stderr)).toBe(true);
      expect(fs.existsSync(c.p('zb.out.jsonl'))).toBe(false);
      caught++;
    }
    expect(caught).toBe(2);
  }, 120_000);
});

describe('dataset folders and globs (26.4, 26.12)', () => {
  test('a symlinked file in a folder is read; a folder of symlinks only works', async () => {
    fs.mkdirSync(c.p('real'), { recursive: true });
    fs.writeFileSync(c.p('real/a.jsonl'), jl(recs(0, 5)));
    fs.writeFileSync(c.p('real/b.jsonl'), jl(recs(5, 12)));
    fs.mkdirSync(c.p('mixed'), { recursive: true });
    fs.writeFileSync(c.p('mixed/train-0.jsonl'), jl(recs(0, 5)));
    fs.symlinkSync(c.p('real/b.jsonl'), c.p('mixed/train-1.jsonl'));
    const m = await score('mixed', 'mixed.out.jsonl');
    expect(m.code, m.stderr).toBe(0);
    expect(c.lines('mixed.out.jsonl').map((r) => r.id)).toEqual(Array.from({ length: 12 }, (_, i) => i));
    fs.mkdirSync(c.p('links'), { recursive: true });
    fs.symlinkSync(c.p('real/a.jsonl'), c.p('links/train-0.jsonl'));
    fs.symlinkSync(c.p('real/b.jsonl'), c.p('links/train-1.jsonl'));
    const l = await score('links', 'links.out.jsonl');
    expect(l.code, l.stderr).toBe(0);
    expect(c.lines('links.out.jsonl')).toHaveLength(12);
  }, 60_000);

  test('a ** glob through a symlink loop reads each file once', async () => {
    fs.mkdirSync(c.p('loop/sub'), { recursive: true });
    fs.writeFileSync(c.p('loop/sub/x.jsonl'), jl(recs(0, 3)));
    fs.symlinkSync('..', c.p('loop/sub/up'));
    const r = await score('loop/**/*.jsonl', 'loop.out.jsonl');
    expect(r.code, r.stderr).toBe(0);
    expect(c.lines('loop.out.jsonl').map((x) => x.id)).toEqual([0, 1, 2]);
  }, 60_000);

  test('a folder holding exactly one train.jsonl is a dataset (no EISDIR)', async () => {
    fs.mkdirSync(c.p('one'), { recursive: true });
    fs.writeFileSync(c.p('one/train.jsonl'), jl(recs(0, 4)));
    const r = await score('one', 'one.out.jsonl');
    expect(r.code, r.stderr).toBe(0);
    expect(c.lines('one.out.jsonl')).toHaveLength(4);
  }, 60_000);

  test('an unreadable file inside a folder or a glob: exit 3 naming it', async () => {
    fs.mkdirSync(c.p('locked'), { recursive: true });
    fs.writeFileSync(c.p('locked/train-0.jsonl'), jl(recs(0, 3)));
    // A broken symlink is unreadable for anyone (root included).
    fs.symlinkSync(c.p('locked/gone.txt'), c.p('locked/train-1.jsonl'));
    const r0 = await score('locked', 'locked.out.jsonl');
    expect([r0.code, r0.stderr.trim()]).toEqual([3, 'concord score: locked/train-1.jsonl: a broken symlink']);
    fs.rmSync(c.p('locked/train-1.jsonl'));
    if (typeof process.getuid === 'function' && process.getuid() === 0) {
      fs.chmodSync(c.tmp, 0o777);
      fs.chmodSync(c.p('locked'), 0o777);
      if (spawnSync('test', ['-r', BIN], { uid: 65534, gid: 65534 }).status !== 0) return; // see pipeline-robust: nobody cannot reach the checkout
      fs.writeFileSync(c.p('locked/train-2.jsonl'), jl(recs(3, 4)), { mode: 0o600 });
      for (const input of ['locked', 'locked/*.jsonl']) {
        const r = await c.run(['score', input, '-o', 'locked/out.jsonl', '--cosine', 'off', '--quiet'], {}, { uid: 65534 });
        expect([r.code, r.stderr.trim()], input).toEqual([3, 'concord score: locked/train-2.jsonl: cannot read (permission denied)']);
      }
    }
  }, 60_000);
});

describe('long lines and streams of bad lines (26.8, 26.11b)', () => {
  test('a 16 MB line arriving in 1 KiB chunks is assembled in linear time', async () => {
    const big = JSON.stringify({ instruction: 'x', output: 'y'.repeat(16 << 20) }) + '\n';
    const buf = Buffer.from(big);
    async function* chunks() { for (let i = 0; i < buf.length; i += 1024) yield buf.subarray(i, i + 1024); }
    const t0 = Date.now();
    const out = [];
    for await (const r of jsonlRecords(chunks(), { name: 'big.jsonl' })) out.push(r);
    expect(out).toHaveLength(1);
    expect((out[0].record as { output: string }).output.length).toBe(16 << 20);
    // Appending each chunk to the unfinished line copies ~128 GB here (minutes); linear is < 1 s.
    expect(Date.now() - t0).toBeLessThan(15_000);
  }, 60_000);

  test('CONCORD_MAX_LINE_BYTES: a longer line in a .gz is an error naming file:line; the run goes on', async () => {
    const rows = [JSON.stringify(record(0)), JSON.stringify({ ...record(1), output: 'z'.repeat(5000) }), JSON.stringify(record(2))];
    fs.writeFileSync(c.p('long.jsonl.gz'), zlib.gzipSync(rows.join('\n') + '\n'));
    const r = await c.run(['score', 'long.jsonl.gz', '-o', 'long.out.jsonl', '--cosine', 'off'], { CONCORD_MAX_LINE_BYTES: '1000' });
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toMatch(/long\.jsonl\.gz:2: line longer than 1000 bytes \(CONCORD_MAX_LINE_BYTES/);
    expect(c.lines('long.out.jsonl').map((x) => x.id)).toEqual([0, 2]);
    expect(c.lines('long.out.jsonl.errors.jsonl').map((x) => x.loc)).toEqual(['long.jsonl.gz:2']);
  }, 60_000);

  test('a stream of invalid lines stops at CONCORD_MAX_ERRORS (exit 3) instead of an unbounded errors file', async () => {
    const garbage = Array.from({ length: 5000 }, (_, i) => (i === 0 ? JSON.stringify(record(0)) : `not json ${i}`)).join('\n') + '\n';
    fs.writeFileSync(c.p('junk.jsonl.gz'), zlib.gzipSync(garbage));
    const r = await c.run(['score', 'junk.jsonl.gz', '-o', 'junk.out.jsonl', '--cosine', 'off', '--quiet'], { CONCORD_MAX_ERRORS: '100' });
    expect(r.code, r.stderr).toBe(3);
    expect(r.stderr).toMatch(/more than 100 bad input records .*CONCORD_MAX_ERRORS/);
    expect(noStack(r.stderr)).toBe(true);
    expect(fs.existsSync(c.p('junk.out.jsonl.errors.jsonl'))).toBe(false);
    const partial = c.p('junk.out.jsonl.errors.jsonl.partial');
    if (fs.existsSync(partial)) expect(fs.readFileSync(partial, 'utf8').split('\n').filter(Boolean).length).toBeLessThanOrEqual(100);
  }, 60_000);
});

describe('filter and Parquet (26.6, 26.7)', () => {
  test('filter on a wholly unscored file exits 3 (as select and report do); nothing written', async () => {
    fs.writeFileSync(c.p('unscored.jsonl'), jl(recs(0, 6)));
    const r = await c.run(['filter', 'unscored.jsonl', '-o', 'unscored.kept.jsonl']);
    expect(r.code, r.stderr).toBe(3);
    expect(r.stderr).toMatch(/unscored\.jsonl: none of its 6 records can be filtered/);
    expect(fs.existsSync(c.p('unscored.kept.jsonl'))).toBe(false);
  }, 60_000);

  test('Parquet output keeps a __proto__ field and adds no constructor field; a constructor field round-trips', async () => {
    const s = { fwd_logp: -1, rev_logp: -1, x_logp: -2, y_logp: -2 };
    fs.writeFileSync(c.p('proto.jsonl'), '{"__proto__":{"a":1},"instruction":"a","output":"b","scores":' + JSON.stringify(s) + '}\n' + JSON.stringify({ instruction: 'c', output: 'd', scores: s }) + '\n');
    expect((await c.run(['filter', 'proto.jsonl', '-o', 'proto.parquet', '--keep-fraction', '1', '--quiet'])).code).toBe(0);
    expect((await c.run(['filter', 'proto.parquet', '-o', 'proto.back.jsonl', '--keep-fraction', '1', '--quiet'])).code).toBe(0);
    const back = fs.readFileSync(c.p('proto.back.jsonl'), 'utf8').trim().split('\n');
    expect(back[0]).toMatch(/^\{"__proto__":\{"a":1\},"instruction":"a"/);
    expect(back.join('\n')).not.toMatch(/"constructor"/);
  }, 60_000);

  test('a Parquet footer whose row count disagrees with its row groups: exit 3 naming the file', async () => {
    expect((await c.run(['filter', 'proto.jsonl', '-o', 'lie.parquet', '--keep-fraction', '1', '--quiet'])).code).toBe(0);
    const b = fs.readFileSync(c.p('lie.parquet'));
    // FileMetaData.num_rows is thrift field 3 (i64, zigzag varint): 2 rows → 0x04 after the schema list.
    const footerLen = b.readUInt32LE(b.length - 8);
    const start = b.length - 8 - footerLen;
    const footer = b.subarray(start, b.length - 8);
    let at = -1;
    for (let i = 0; i < footer.length - 1; i++) if (footer[i] === 0x16 && footer[i + 1] === 0x04) { at = i + 1; break; }
    expect(at).toBeGreaterThan(0);
    footer[at] = 0x0a; // 5 rows
    fs.writeFileSync(c.p('lie.parquet'), b);
    const r = await c.run(['filter', 'lie.parquet', '-o', 'lie.kept.jsonl', '--keep-fraction', '1']);
    expect(r.code, r.stderr).toBe(3);
    expect(r.stderr).toMatch(/lie\.parquet: damaged Parquet footer: it says 5 rows but its row groups hold 2/);
  }, 60_000);

  test('an INT64 instruction column is refused the same way whatever the value (safe or beyond 2^53), naming the field', async () => {
    parquetWriteFile({
      filename: c.p('int64.parquet'),
      columnData: [
        { name: 'id', data: [1n, 2n ** 60n, 3n], type: 'INT64' },
        { name: 'instruction', data: [5n, 2n ** 60n + 1n, 7n], type: 'INT64' },
        { name: 'output', data: ['a b', 'c d', 'e f'], type: 'STRING' },
      ],
    });
    const r = await c.run(['score', 'int64.parquet', '-o', 'int64.out.jsonl', '--cosine', 'off', '--quiet']);
    expect(r.code, r.stderr).toBe(0);
    const errs = c.lines('int64.out.jsonl.errors.jsonl');
    expect(errs.map((e) => e.loc)).toEqual(['int64.parquet:1', 'int64.parquet:2', 'int64.parquet:3']);
    for (const e of errs) expect(e.error).toMatch(/^field 'instruction' must be a string \(got (number|an INT64 Parquet column)\)$/);
    // An INT64 id beyond 2^53 is kept exactly, as its decimal string.
    expect(errs[1].record.id).toBe(String(2n ** 60n));
  }, 60_000);

  test("a record's own 'scores' field is replaced with a warning naming file:line (and counted)", async () => {
    fs.writeFileSync(c.p('own.jsonl'), jl([record(0), { ...record(1), scores: { mine: 1 } }]));
    const r = await c.run(['score', 'own.jsonl', '-o', 'own.out.jsonl', '--cosine', 'off', '--summary', 'own.sum.json']);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toMatch(/own\.jsonl:2: warning: the record has its own 'scores' field; the output's 'scores' replaces it/);
    expect(JSON.parse(fs.readFileSync(c.p('own.sum.json'), 'utf8')).replaced_scores).toBe(1);
  }, 60_000);
});
