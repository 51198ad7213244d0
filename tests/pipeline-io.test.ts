// Library-level checks of the file plumbing (issue 17): checked writes, input detection, UTF-8 and
// depth checks, prefix hashing, preflightPaths and lockOutputs.

import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, describe, expect, test } from 'vitest';
import { InputError } from '../src/errors.js';
import { AtomicWriter, OutputError, detectInputKind, firstInvalidUtf8, formatOf, jsonDepth, writeFileAtomic } from '../src/io/index.js';
import { LockError, PathError, PrefixHasher, lockOutputs, preflightPaths } from '../src/jobs/index.js';

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'concord-io-'));
const p = (n: string) => path.join(dir, n);
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

describe('checked writes', () => {
  test('AtomicWriter: a write failure raises OutputError, leaves no final file and no tmp', () => {
    process.env.CONCORD_TEST_FAIL_WRITE = 'aw.jsonl:100';
    try {
      const w = new AtomicWriter(p('aw.jsonl'));
      for (let i = 0; i < 10; i++) w.write(JSON.stringify({ i, pad: 'x'.repeat(20) }));
      expect(() => w.commit()).toThrow(OutputError);
      expect(() => writeFileAtomic(p('aw.jsonl.sum'), 'y'.repeat(200))).toThrow(/aw\.jsonl\.sum: writing failed: ENOSPC/);
    } finally {
      delete process.env.CONCORD_TEST_FAIL_WRITE;
    }
    expect(fs.readdirSync(dir).filter((n) => n.startsWith('aw.'))).toEqual([]);
    const ok = new AtomicWriter(p('aw.jsonl'));
    ok.write('{"a":1}');
    ok.commit();
    expect(fs.readFileSync(p('aw.jsonl'), 'utf8')).toBe('{"a":1}\n');
  });
});

describe('input checks', () => {
  test('detectInputKind: magic numbers, NUL bytes, JSONL, arrays (with BOM)', () => {
    const cases: [string, Buffer, string][] = [
      ['a.parquet', Buffer.from('PAR1xxxxPAR1'), 'parquet'],
      ['a.gz', Buffer.from([0x1f, 0x8b, 8, 0]), 'gzip'],
      ['a.zst', Buffer.from([0x28, 0xb5, 0x2f, 0xfd]), 'zstd'],
      ['a.xz', Buffer.from([0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00]), 'xz'],
      ['a.u16', Buffer.from([0xff, 0xfe, 0x7b, 0]), 'utf16'],
      ['a.bin', Buffer.from('{"a":1}\n\0\0'), 'binary'],
      ['a.jsonl', Buffer.from('{"a":1}\n'), 'jsonl'],
      ['a.json', Buffer.from('\ufeff  \n[{"a":1}]'), 'json-array'],
      ['empty', Buffer.alloc(0), 'jsonl'],
    ];
    for (const [n, b, kind] of cases) {
      fs.writeFileSync(p(n), b);
      expect([n, detectInputKind(p(n)).kind]).toEqual([n, kind]);
    }
    expect(formatOf(p('a.parquet'))).toBe('parquet');
    expect(() => formatOf(p('a.xz'), 'a.xz')).toThrow(new InputError('a.xz: this looks like an xz-compressed file, not JSONL, a JSON array, Parquet or gzip/zstd-compressed JSONL'));
  });

  test('firstInvalidUtf8 and jsonDepth (iterative: 100 000 levels)', () => {
    expect(firstInvalidUtf8(Buffer.from('héllo ✓ 😀'))).toBe(-1);
    expect(firstInvalidUtf8(Buffer.from([0x61, 0xc3]))).toBe(1); // truncated sequence
    expect(firstInvalidUtf8(Buffer.from([0x61, 0xc0, 0x80]))).toBe(1); // overlong
    expect(firstInvalidUtf8(Buffer.from([0xed, 0xa0, 0x80]))).toBe(0); // surrogate
    let deep: unknown = 1;
    for (let i = 0; i < 100_000; i++) deep = [deep];
    expect(jsonDepth(deep, 1e9)).toBe(100_000);
    expect(jsonDepth({ a: [1, { b: {} }] })).toBe(4);
  });

  test('PrefixHasher: the SHA-256 of the first n bytes, extended incrementally', () => {
    const data = Buffer.from(Array.from({ length: 5000 }, (_, i) => i % 251));
    fs.writeFileSync(p('h.bin'), data);
    const h = new PrefixHasher(p('h.bin'));
    h.advance(1000);
    h.advance(3000);
    expect(h.identity()).toMatchObject({ hashedBytes: 3000, sha256: createHash('sha256').update(data.subarray(0, 3000)).digest('hex') });
    h.advance(5000);
    expect(h.identity().sha256).toBe(createHash('sha256').update(data).digest('hex'));
  });
});

describe('preflightPaths and lockOutputs', () => {
  test('collisions by path and inode, directories, missing directories; nothing created', () => {
    fs.writeFileSync(p('in.jsonl'), '{}\n');
    fs.symlinkSync(p('in.jsonl'), p('in-sym.jsonl'));
    const before = fs.readdirSync(dir).sort();
    expect(preflightPaths({ input: p('in.jsonl'), output: p('o.jsonl'), errors: p('o.err.jsonl') })).toEqual({ outputs: [p('o.jsonl'), p('o.err.jsonl')] });
    expect(() => preflightPaths({ input: p('in.jsonl'), output: p('in-sym.jsonl') })).toThrow(/is the input file/);
    expect(() => preflightPaths({ output: p('o.jsonl'), dropOut: path.join(dir, '.', 'o.jsonl') })).toThrow(PathError);
    expect(() => preflightPaths({ output: dir })).toThrow(/is a directory/);
    expect(() => preflightPaths({ output: p('nope/o.jsonl') })).toThrow(/does not exist/);
    expect(() => preflightPaths({ input: dir })).toThrow(InputError);
    expect(fs.readdirSync(dir).sort()).toEqual(before);
  });

  test('a held lock refuses a second taker until released; a stale one is taken over', () => {
    const release = lockOutputs([p('l1.jsonl'), p('l2.jsonl')]);
    expect(fs.existsSync(p('l1.jsonl.lock')) && fs.existsSync(p('l2.jsonl.lock'))).toBe(true);
    expect(() => lockOutputs([p('l3.jsonl'), p('l2.jsonl')])).toThrow(LockError);
    expect(fs.existsSync(p('l3.jsonl.lock'))).toBe(false); // released what it had taken
    release();
    expect(fs.existsSync(p('l1.jsonl.lock'))).toBe(false);
    fs.writeFileSync(p('l4.jsonl.lock'), JSON.stringify({ pid: 2 ** 22 + 12345, host: os.hostname(), start: null, since: 'x' }));
    fs.writeFileSync(p(`l4.jsonl.tmp-${2 ** 22 + 12345}`), 'torn');
    const r2 = lockOutputs([p('l4.jsonl')]);
    expect(JSON.parse(fs.readFileSync(p('l4.jsonl.lock'), 'utf8')).pid).toBe(process.pid);
    expect(fs.existsSync(p(`l4.jsonl.tmp-${2 ** 22 + 12345}`))).toBe(false);
    r2();
  });
});
