// The holes a hostile run found (issue 17), each through the CLI (a child process with the fake
// model): full disk, checkpoints inside a window, deep records, colliding paths, concurrent runs,
// resume error paths, FIFOs, the exit-code contract, invalid UTF-8, unusable scores, duplicate ids,
// binary inputs, run --resume after the filter step, an edited input, a huge line.

import { execFileSync, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as zlib from 'node:zlib';
import { beforeAll, describe, expect, test } from 'vitest';
import { BIN, noStack, record, setupCli, waitFor, type Cli } from './helpers/cli.js';

let c: Cli;
beforeAll(() => { c = setupCli('concord-robust-'); });
const p = (n: string) => c.p(n);
const write = (n: string, rows: unknown[]) => fs.writeFileSync(p(n), rows.map((r) => (typeof r === 'string' ? r : JSON.stringify(r))).join('\n') + '\n');
const read = (n: string) => fs.readFileSync(p(n), 'utf8');
const exists = (n: string) => fs.existsSync(p(n));
const leftovers = (dir = c.tmp) => fs.readdirSync(dir).filter((n) => /\.tmp-\d+$|\.partial$|\.progress\.json$|\.ahead$|\.lock$/.test(n));
const oneLine = (stderr: string) => stderr.trim().split('\n').length === 1;
/** The model was loaded (the CLI names it on stderr unless --quiet). */
const modelLoaded = (stderr: string) => /concord: model fake:/.test(stderr);

/** A record with a long output (≈ bytes of JSON each). */
const bigRecord = (i: number, bytes: number) => ({ ...record(i), output: `${record(i).output} ${'happy dog '.repeat(Math.ceil(bytes / 10))}`.trim() });

describe('1. full disk', () => {
  test('an injected write error (ENOSPC) fails filter, score and run: exit 1, one line, no final file, no tmp left', async () => {
    write('d.jsonl', Array.from({ length: 40 }, (_, i) => bigRecord(i, 1500)));
    expect((await c.run(['score', 'd.jsonl', '-o', 'd.scored.jsonl', '--cosine', 'off', '--quiet'])).code).toBe(0);

    const f = await c.run(['filter', 'd.scored.jsonl', '-o', 'd.kept.jsonl', '--keep-fraction', '1'], { CONCORD_TEST_FAIL_WRITE: 'd.kept.jsonl:20000' });
    expect(f.code, f.stderr).toBe(1);
    expect(f.stderr).toMatch(/^concord filter: .*d\.kept\.jsonl: writing failed: ENOSPC/m);
    expect(f.stderr).not.toMatch(/\d+ kept/);
    expect(oneLine(f.stderr) && noStack(f.stderr)).toBe(true);
    expect(exists('d.kept.jsonl')).toBe(false);

    // score: the last checkpoint stands, so once there is room again --resume finishes the same file.
    const sargs = ['score', 'd.jsonl', '-o', 'd2.jsonl', '--cosine', 'off', '--quiet', '--checkpoint-every', '4', '--window', '8'];
    const s = await c.run(sargs, { CONCORD_TEST_FAIL_WRITE: 'd2.jsonl:30000' });
    expect(s.code, s.stderr).toBe(1);
    expect(s.stderr).toMatch(/^concord score: d2\.jsonl.*: writing failed: ENOSPC/);
    expect(oneLine(s.stderr) && noStack(s.stderr)).toBe(true);
    expect(exists('d2.jsonl')).toBe(false);
    expect((await c.run([...sargs, '--resume'])).code).toBe(0);
    expect(read('d2.jsonl')).toBe(read('d.scored.jsonl'));

    const rargs = ['run', 'd.jsonl', '-o', 'd3.jsonl', '--cosine', 'off', '--keep-fraction', '1', '--quiet'];
    const r = await c.run(rargs, { CONCORD_TEST_FAIL_WRITE: 'd3.jsonl:10000' });
    expect(r.code, r.stderr).toBe(1);
    expect(oneLine(r.stderr) && noStack(r.stderr)).toBe(true);
    expect(exists('d3.jsonl')).toBe(false);
    expect((await c.run([...rargs, '--resume'])).code).toBe(0);
    expect(c.lines('d3.jsonl')).toHaveLength(40);
    expect(leftovers().filter((n) => n.startsWith('d'))).toEqual([]);
  });

  test('a real full disk (64 KiB tmpfs): filter exits 1 and leaves no torn kept file', async (ctx) => {
    const mnt = p('small');
    fs.mkdirSync(mnt, { recursive: true });
    const m = spawnSync('mount', ['-t', 'tmpfs', '-o', 'size=64k', 'tmpfs', mnt], { encoding: 'utf8' });
    if (m.status !== 0) ctx.skip(`cannot mount a tmpfs (needs root with CAP_SYS_ADMIN): ${m.stderr.trim()}`);
    try {
      write('t.jsonl', Array.from({ length: 40 }, (_, i) => bigRecord(i, 2500)));
      expect((await c.run(['score', 't.jsonl', '-o', 't.scored.jsonl', '--cosine', 'off', '--quiet'])).code).toBe(0);
      expect(fs.statSync(p('t.scored.jsonl')).size).toBeGreaterThan(100_000);
      const f = await c.run(['filter', 't.scored.jsonl', '-o', path.join(mnt, 'kept.jsonl'), '--keep-fraction', '1']);
      expect(f.code, f.stderr).toBe(1);
      expect(f.stderr).toMatch(/kept\.jsonl: writing failed: ENOSPC/);
      expect(f.stderr).not.toMatch(/\d+ kept/);
      expect(fs.readdirSync(mnt).filter((n) => n.startsWith('kept.jsonl'))).toEqual([]);
    } finally {
      spawnSync('umount', [mnt]);
    }
  });
});

describe('2. checkpoints inside a window', () => {
  const N = 300;
  test('kill -9 mid-window (window 300): --resume goes on from the checkpointed results, output byte-identical', async () => {
    write('w.jsonl', Array.from({ length: N }, (_, i) => (i % 41 === 7 ? '{"broken' : record(i))));
    const args = ['score', 'w.jsonl', '--cosine', 'off', '--window', String(N), '--checkpoint-every', '8', '--quiet'];
    const env = { CONCORD_FAKE_BUDGET: '64' };
    const ref = await c.run([...args, '-o', 'w.ref.jsonl'], env);
    expect(ref.code, ref.stderr).toBe(0);

    const { child, done } = c.cli([...args, '-o', 'w.jsonl.out'], { ...env, CONCORD_FAKE_DELAY_MS: '25' });
    // The whole input is one window: before the window ends, only out-of-order results can be checkpointed.
    const ck = await waitFor(() => {
      const k = JSON.parse(read('w.jsonl.out.progress.json'));
      return k.ahead >= 60 ? k : null;
    }, 60_000, 'a checkpoint with 60 results inside the window');
    child.kill('SIGKILL');
    expect((await done).signal).toBe('SIGKILL');
    const last = JSON.parse(read('w.jsonl.out.progress.json'));
    expect(last.position.units + last.ahead).toBeLessThan(N);
    expect(last.ahead).toBeGreaterThanOrEqual(ck.ahead);
    fs.appendFileSync(p('w.jsonl.out.ahead'), '17\t{"torn'); // a torn line after the checkpoint

    const resumed = await c.run([...args, '-o', 'w.jsonl.out', '--resume', '--summary', 'w.sum.json'], env);
    expect(resumed.code, resumed.stderr).toBe(0);
    expect(read('w.jsonl.out')).toBe(read('w.ref.jsonl'));
    expect(read('w.jsonl.out.errors.jsonl')).toBe(read('w.ref.jsonl.errors.jsonl'));
    const sum = JSON.parse(read('w.sum.json'));
    expect(sum.counts.resumed_from).toBe(last.position.units + last.ahead);
    expect(sum.counts.resumed_from).toBeGreaterThan(0);
    expect(sum.counts.records).toBe(N);
    // The recovered records were not scored again.
    expect(sum.throughput.pairs).toBe(N - sum.counts.resumed_from);
    expect(leftovers().filter((n) => n.startsWith('w.jsonl.out'))).toEqual([]);
  });
});

describe('3. deeply nested record', () => {
  test('a field nested 5000 deep is an error record with file:line; the run goes on', async () => {
    const deep = '['.repeat(5000) + ']'.repeat(5000);
    write('deep.jsonl', [record(1), `{"instruction": "a b", "output": "c d", "extra": ${deep}}`, record(2)]);
    const r = await c.run(['score', 'deep.jsonl', '-o', 'deep.out.jsonl', '--cosine', 'off', '--quiet']);
    expect(r.code, r.stderr).toBe(0);
    expect(c.lines('deep.out.jsonl').map((o) => o.id)).toEqual([1, 2]);
    expect(c.lines('deep.out.jsonl.errors.jsonl').map((e) => e.message)).toEqual(['deep.jsonl:2: record nested more than 512 levels deep']);
  });
});

describe('4 and 8. paths checked before the model loads', () => {
  beforeAll(() => write('in.jsonl', Array.from({ length: 6 }, (_, i) => record(i))));

  test.each([
    ['score -o X --errors X', ['score', 'in.jsonl', '-o', 'X.jsonl', '--errors', 'X.jsonl'], /--errors X\.jsonl and -o X\.jsonl are the same file/],
    ['run in -o in', ['run', 'in.jsonl', '-o', 'in.jsonl'], /-o in\.jsonl is the input file/],
    ['score -o in', ['score', 'in.jsonl', '-o', './in.jsonl'], /-o \.\/in\.jsonl is the input file/],
    ['filter -o K --drop-out K', ['filter', 'X.jsonl', '-o', 'K.jsonl', '--drop-out', 'K.jsonl', '--quiet'], /--drop-out K\.jsonl and -o K\.jsonl are the same file/],
    ['score -o a hard link to the input', ['score', 'in.jsonl', '-o', 'in-link.jsonl'], /is the input file/],
    ['score --summary = -o', ['score', 'in.jsonl', '-o', 'S.jsonl', '--summary', 'S.jsonl'], /same file/],
    ['run --scored-out = --drop-out', ['run', 'in.jsonl', '-o', 'k.jsonl', '--scored-out', 'sc.jsonl', '--drop-out', 'sc.jsonl'], /same file/],
    ['a missing output directory', ['score', 'in.jsonl', '-o', 'no/such/dir/out.jsonl'], /the directory .*no\/such\/dir does not exist/],
    ['a directory as -o', ['score', 'in.jsonl', '-o', 'adir'], /-o adir: is a directory/],
    ['a summary in a missing directory', ['score', 'in.jsonl', '-o', 'o.jsonl', '--summary', 'nodir/s.json'], /--summary nodir\/s\.json: the directory/],
  ])('%s: exit 2, one line, nothing touched, no model loaded', async (_name, args, msg) => {
    fs.writeFileSync(p('X.jsonl'), 'precious\n');
    fs.rmSync(p('in-link.jsonl'), { force: true });
    fs.linkSync(p('in.jsonl'), p('in-link.jsonl'));
    fs.mkdirSync(p('adir'), { recursive: true });
    const before = read('in.jsonl');
    const r = await c.run(args[0] === 'filter' ? args : [...args, '--cosine', 'off']);
    expect(r.code, r.stderr).toBe(2);
    expect(r.stderr).toMatch(msg);
    expect(oneLine(r.stderr) && noStack(r.stderr) && !modelLoaded(r.stderr)).toBe(true);
    expect(read('in.jsonl')).toBe(before);
    expect(read('X.jsonl')).toBe('precious\n');
    expect(leftovers().filter((n) => !n.startsWith('d'))).toEqual([]);
  });

  test('input problems: a directory, a FIFO, a missing file exit 3 at once; unreadable too', async () => {
    fs.mkdirSync(p('indir'), { recursive: true });
    const dir = await c.run(['score', 'indir', '-o', 'o.jsonl']);
    // A folder is a dataset (issue 14); one without data files is an input error.
    expect([dir.code, dir.stderr.trim()]).toEqual([3, 'concord score: indir: no data files (.parquet, .jsonl, .jsonl.gz, .jsonl.zst, .json) in this folder']);
    const miss = await c.run(['filter', 'nope.jsonl', '-o', 'o.jsonl']);
    expect([miss.code, miss.stderr.trim()]).toEqual([3, 'concord filter: nope.jsonl: no such file']);
    if (typeof process.getuid === 'function' && process.getuid() === 0) {
      // root reads anything: run the CLI as nobody on a copy of the input it may not read
      fs.chmodSync(c.tmp, 0o777);
      // which needs nobody to reach the checkout itself (not so under a private folder, e.g. mktemp -d's 0700)
      const reach = spawnSync('test', ['-r', BIN], { uid: 65534, gid: 65534 });
      expect(reach.status, `uid 65534 (nobody) cannot read ${BIN}: this test runs the CLI as nobody, so the checkout's folders must be traversable by others`).toBe(0);
      fs.writeFileSync(p('secret.jsonl'), JSON.stringify(record(1)) + '\n', { mode: 0o600 });
      const r = await c.run(['score', 'secret.jsonl', '-o', 'nobody.jsonl'], {}, { uid: 65534 });
      expect(r.code, r.stderr).toBe(3);
      expect(r.stderr.trim()).toBe('concord score: secret.jsonl: cannot read (permission denied)');
    } else {
      fs.writeFileSync(p('secret.jsonl'), '{}\n', { mode: 0o000 });
      const r = await c.run(['score', 'secret.jsonl', '-o', 'nobody.jsonl']);
      expect([r.code, r.stderr.trim()]).toEqual([3, 'concord score: secret.jsonl: cannot read (permission denied)']);
    }
  });
});

describe('5. one concord per output', () => {
  test('a second run to the same -o exits 2 naming the first; a stale lock (dead pid) is taken over', async () => {
    write('lk.jsonl', Array.from({ length: 30 }, (_, i) => record(i)));
    const args = ['score', 'lk.jsonl', '-o', 'lk.out.jsonl', '--cosine', 'off', '--quiet'];
    const first = c.cli(args, { CONCORD_FAKE_DELAY_MS: '40', CONCORD_FAKE_BUDGET: '32' });
    await waitFor(() => exists('lk.out.jsonl.lock'), 20_000, 'the lock');
    const second = await c.run(args);
    expect(second.code).toBe(2);
    expect(second.stderr.trim()).toMatch(new RegExp(`^concord score: lk\\.out\\.jsonl is being written by another concord \\(pid ${first.child.pid}, since .*\\); wait for it to finish, or delete .*lk\\.out\\.jsonl\\.lock if that process is gone$`));
    const r1 = await first.done;
    expect(r1.code, r1.stderr).toBe(0);
    expect(c.lines('lk.out.jsonl').map((o) => o.id)).toEqual(Array.from({ length: 30 }, (_, i) => i));
    expect(exists('lk.out.jsonl.lock')).toBe(false);

    // A lock left by a process that is gone (kill -9).
    const dead = spawnSync(process.execPath, ['-e', 'process.stdout.write(String(process.pid))'], { encoding: 'utf8' });
    fs.writeFileSync(p('lk.out.jsonl.lock'), JSON.stringify({ pid: Number(dead.stdout), host: (await import('node:os')).hostname(), start: null, since: 'then' }));
    const again = await c.run(args);
    expect(again.code, again.stderr).toBe(0);
    expect(exists('lk.out.jsonl.lock')).toBe(false);
  });
});

describe('6. resume error paths: exit 6 with the way out, never a stack', () => {
  const args = (o: string) => ['score', 'rs.jsonl', '-o', o, '--cosine', 'off', '--window', '4', '--checkpoint-every', '2', '--quiet'];
  const env = { CONCORD_FAKE_BUDGET: '48' };
  async function killedRun(o: string): Promise<void> {
    const { child, done } = c.cli(args(o), { ...env, CONCORD_FAKE_DELAY_MS: '40' });
    await waitFor(() => JSON.parse(read(`${o}.progress.json`)).position.units >= 8, 40_000, 'a checkpoint');
    child.kill('SIGKILL');
    await done;
  }
  beforeAll(() => write('rs.jsonl', Array.from({ length: 40 }, (_, i) => (i === 5 ? '{"bad' : record(i)))));

  test.each([
    ['the .partial deleted', (o: string) => fs.rmSync(p(`${o}.partial`)), /\.partial is missing but the checkpoint says \d+ bytes were written; delete .*progress\.json to start over/],
    ['the .partial truncated', (o: string) => fs.truncateSync(p(`${o}.partial`), 10), /\.partial is shorter \(10 bytes\) than its checkpoint/],
    ['a progress file with missing fields', (o: string) => {
      const k = JSON.parse(read(`${o}.progress.json`));
      delete k.outBytes;
      fs.writeFileSync(p(`${o}.progress.json`), JSON.stringify(k));
    }, /unusable checkpoint \(missing or invalid 'outBytes'\); delete it to start over/],
    ['a progress file that is not JSON', (o: string) => fs.writeFileSync(p(`${o}.progress.json`), '{"version'), /unreadable checkpoint .*; delete it to start over/],
  ])('%s', async (name, damage, msg) => {
    const o = `rs-${name.replace(/\W+/g, '-')}.jsonl`;
    await killedRun(o);
    damage(o);
    const r = await c.run([...args(o), '--resume'], env);
    expect(r.code, r.stderr).toBe(6);
    expect(r.stderr).toMatch(msg);
    expect(oneLine(r.stderr) && noStack(r.stderr)).toBe(true);
  });

  test('killed between the final renames (either order): --resume completes it, byte-identical, exit 0', async () => {
    expect((await c.run(args('rs.ref.jsonl'), env)).code).toBe(0);
    const k = await c.run(args('rs.k.jsonl'), { ...env, CONCORD_TEST_CRASH_AT: 'between-renames' });
    expect(k.signal).toBe('SIGKILL');
    expect(exists('rs.k.jsonl.partial') && exists('rs.k.jsonl.errors.jsonl') && !exists('rs.k.jsonl')).toBe(true);
    // The other half-state (the hostile run's): output renamed, the errors file still .partial.
    fs.copyFileSync(p('rs.k.jsonl.progress.json'), p('rs.k2.jsonl.progress.json'));
    fs.copyFileSync(p('rs.k.jsonl.partial'), p('rs.k2.jsonl'));
    fs.copyFileSync(p('rs.k.jsonl.errors.jsonl'), p('rs.k2.jsonl.errors.jsonl.partial'));
    fs.writeFileSync(p('rs.k2.jsonl.progress.json'), read('rs.k2.jsonl.progress.json'));
    for (const o of ['rs.k.jsonl', 'rs.k2.jsonl']) {
      const r = await c.run([...args(o), '--resume', '--summary', `${o}.sum.json`], env);
      expect(r.code, r.stderr).toBe(0);
      expect(read(o)).toBe(read('rs.ref.jsonl'));
      expect(read(`${o}.errors.jsonl`)).toBe(read('rs.ref.jsonl.errors.jsonl'));
      expect(JSON.parse(read(`${o}.sum.json`)).counts).toMatchObject({ records: 40, errors: 1, scored: 39 });
      fs.rmSync(p(`${o}.sum.json`));
    }
    expect(leftovers().filter((n) => n.startsWith('rs.k'))).toEqual([]);
  });
});

describe('7. FIFO input', () => {
  test('a named pipe is refused at once (exit 3), not read into a hang', async () => {
    const fifo = p('in.fifo');
    execFileSync('mkfifo', [fifo]);
    const { child, done } = c.cli(['score', 'in.fifo', '-o', 'fifo.out.jsonl']);
    const timer = setTimeout(() => child.kill('SIGKILL'), 15_000);
    const r = await done;
    clearTimeout(timer);
    expect(r.signal).toBe(null);
    expect(r.code).toBe(3);
    expect(r.stderr.trim()).toMatch(/^concord score: in\.fifo: is a FIFO \(named pipe\); .* give it a regular file$/);
  });
});

describe('7. signals', () => {
  test('SIGTERM mid-run: exit 143 pointing at --resume, the lock released; --resume finishes the same output', async () => {
    write('sig.jsonl', Array.from({ length: 40 }, (_, i) => record(i)));
    const args = ['score', 'sig.jsonl', '--cosine', 'off', '--window', '8', '--checkpoint-every', '2', '--quiet'];
    expect((await c.run([...args, '-o', 'sig.ref.jsonl'])).code).toBe(0);
    const { child, done } = c.cli([...args, '-o', 'sig.out.jsonl'], { CONCORD_FAKE_DELAY_MS: '40', CONCORD_FAKE_BUDGET: '32' });
    await waitFor(() => JSON.parse(read('sig.out.jsonl.progress.json')).position.units >= 4, 40_000, 'a checkpoint');
    child.kill('SIGTERM');
    const r = await done;
    expect(r.code).toBe(143);
    expect(r.stderr).toMatch(/interrupted \(SIGTERM\); rerun the same command with --resume/);
    expect(exists('sig.out.jsonl.lock')).toBe(false);
    expect((await c.run([...args, '-o', 'sig.out.jsonl', '--resume'])).code).toBe(0);
    expect(read('sig.out.jsonl')).toBe(read('sig.ref.jsonl'));
  });
});

describe('9. nothing silently changed', () => {
  test('invalid UTF-8 is an error record with file:line (the text is not scored altered)', async () => {
    const good = Buffer.from(JSON.stringify(record(1)) + '\n');
    const bad = Buffer.concat([Buffer.from('{"instruction": "caf'), Buffer.from([0xe9]), Buffer.from('", "output": "nice place"}\n')]);
    fs.writeFileSync(p('u8.jsonl'), Buffer.concat([good, bad, good]));
    const r = await c.run(['score', 'u8.jsonl', '-o', 'u8.out.jsonl', '--cosine', 'off', '--quiet']);
    expect(r.code, r.stderr).toBe(0);
    expect(c.lines('u8.out.jsonl')).toHaveLength(2);
    expect(c.lines('u8.out.jsonl.errors.jsonl').map((e) => e.message)).toEqual(['u8.jsonl:2: invalid UTF-8 (byte 21 of the line)']);
    expect(read('u8.out.jsonl')).not.toContain('\ufffd');
  });

  test('filter counts null, non-numeric and missing scores as errors (main and ifd)', async () => {
    write('sc.jsonl', Array.from({ length: 8 }, (_, i) => record(i)));
    expect((await c.run(['score', 'sc.jsonl', '-o', 'sc.out.jsonl', '--cosine', 'off', '--quiet'])).code).toBe(0);
    const rows = c.lines('sc.out.jsonl');
    rows[1].scores.fwd_logp = null;
    delete rows[2].scores.ifd;
    rows[3].scores.x_logp = 'NaN';
    fs.writeFileSync(p('sc.bad.jsonl'), rows.map((r) => JSON.stringify(r)).join('\n') + '\n');
    for (const rule of ['main', 'ifd']) {
      const f = await c.run(['filter', 'sc.bad.jsonl', '--rule', rule, '-o', `sc.${rule}.jsonl`, '--drop-out', `sc.${rule}.drop.jsonl`, '--summary', `sc.${rule}.sum.json`]);
      expect(f.code, f.stderr).toBe(0);
      const s = JSON.parse(read(`sc.${rule}.sum.json`));
      const errs = c.lines(`sc.${rule}.jsonl.errors.jsonl`).map((e) => e.message);
      if (rule === 'main') {
        expect(errs).toEqual(['sc.bad.jsonl:2: scores.fwd_logp is null; the rule needs it', 'sc.bad.jsonl:4: scores.x_logp is not a finite number ("NaN"); the rule needs it']);
      } else {
        expect(errs).toEqual(['sc.bad.jsonl:3: scores.ifd is missing; the rule needs it']);
      }
      expect(s.counts.errors).toBe(errs.length);
      expect(s.counts.kept + s.counts.dropped).toBe(8 - errs.length);
    }
  });

  test('duplicate ids are warned with file:line (and counted); the records are still scored', async () => {
    write('dup.jsonl', [record(1), record(2), record(1), { ...record(3), id: 'a' }, { ...record(4), id: 'a' }]);
    const r = await c.run(['score', 'dup.jsonl', '-o', 'dup.out.jsonl', '--cosine', 'off', '--summary', 'dup.sum.json']);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toContain('dup.jsonl:3: warning: duplicate id 1 (first at line 1); scored anyway');
    expect(r.stderr).toContain('dup.jsonl:5: warning: duplicate id "a" (first at line 4); scored anyway');
    expect(JSON.parse(read('dup.sum.json')).duplicate_ids).toBe(2);
    expect(c.lines('dup.out.jsonl')).toHaveLength(5);
  });
});

describe('10. binary input', () => {
  test.each([
    // Parquet and gzip/zstd-compressed JSONL are inputs since issue 14: what is refused is a file that
    // does not decode as what it looks like.
    ['Parquet', () => Buffer.concat([Buffer.from('PAR1'), Buffer.alloc(64, 7), Buffer.from('PAR1')]), /not a readable Parquet file/],
    ['gzip', () => zlib.gzipSync(JSON.stringify(record(1)) + '\n').subarray(0, 20), /gzip/],
    ['zstd', () => Buffer.from([0x28, 0xb5, 0x2f, 0xfd, 1, 2, 3]), /zstd/],
    ['NUL bytes', () => Buffer.concat([Buffer.from(JSON.stringify(record(1)) + '\n'), Buffer.alloc(10)]), /looks like binary data \(a NUL byte at offset \d+\)/],
    ['text that is no JSON at all', () => Buffer.from('id,instruction,output\n1,a,b\n2,c,d\n'), /none of its 3 lines is a JSON record \(bin\.text.*:1: malformed JSON.*\); is it JSONL or a JSON array\?/],
  ])('%s: exit 3 saying what the file looks like; no output', async (name, bytes, msg) => {
    const f = `bin.${name.replace(/\W+/g, '')}`;
    fs.writeFileSync(p(f), bytes());
    for (const cmd of ['score', 'filter']) {
      const r = await c.run([cmd, f, '-o', `${f}.${cmd}.jsonl`, '--cosine', 'off', '--quiet'].filter((a) => cmd === 'score' || a !== '--cosine' && a !== 'off'));
      expect(r.code, r.stderr).toBe(3);
      expect(r.stderr).toMatch(msg);
      expect(oneLine(r.stderr) && noStack(r.stderr)).toBe(true);
      expect(fs.readdirSync(c.tmp).filter((n) => n.startsWith(`${f}.`))).toEqual([]);
    }
  });
});

describe('11. run --resume after a kill during the filter step', () => {
  test('does not score again and leaves no temporary files', async () => {
    write('rf.jsonl', Array.from({ length: 20 }, (_, i) => record(i)));
    const args = ['run', 'rf.jsonl', '-o', 'rf.kept.jsonl', '--drop-out', 'rf.drop.jsonl', '--cosine', 'off', '--keep-fraction', '0.5', '--quiet'];
    const ref = await c.run([...args.map((a) => a.replace(/^rf\.(kept|drop)/, 'rf.ref.$1'))]);
    expect(ref.code, ref.stderr).toBe(0);
    const k = await c.run(args, { CONCORD_TEST_CRASH_AT: 'filter-written' });
    expect(k.signal).toBe('SIGKILL');
    expect(fs.readdirSync(c.tmp).some((n) => /^rf\.kept\.jsonl\.tmp-\d+$/.test(n))).toBe(true);
    const r = await c.run([...args, '--resume', '--summary', 'rf.sum.json']);
    expect(r.code, r.stderr).toBe(0);
    expect(JSON.parse(read('rf.sum.json')).throughput.pairs).toBe(0); // nothing scored again
    expect(read('rf.kept.jsonl')).toBe(read('rf.ref.kept.jsonl'));
    expect(read('rf.drop.jsonl')).toBe(read('rf.ref.drop.jsonl'));
    expect(fs.readdirSync(c.tmp).filter((n) => n.startsWith('rf.') && !/^rf\.(jsonl|kept\.jsonl|drop\.jsonl|ref\.kept\.jsonl|ref\.drop\.jsonl|sum\.json)$/.test(n))).toEqual([]);
  });
});

describe('12. resume checks a hash of the consumed prefix', () => {
  test('an edit past the first KiB (same size and mtime) inside the consumed prefix refuses to resume (exit 6)', async () => {
    write('ed.jsonl', Array.from({ length: 60 }, (_, i) => record(i)));
    const args = ['score', 'ed.jsonl', '-o', 'ed.out.jsonl', '--cosine', 'off', '--window', '4', '--checkpoint-every', '2', '--quiet'];
    const { child, done } = c.cli(args, { CONCORD_FAKE_DELAY_MS: '40', CONCORD_FAKE_BUDGET: '48' });
    await waitFor(() => JSON.parse(read('ed.out.jsonl.progress.json')).position.offset > 3000, 40_000, 'a checkpoint past 3000 bytes');
    child.kill('SIGKILL');
    await done;
    const st = fs.statSync(p('ed.jsonl'), { bigint: true });
    execFileSync('cp', ['--preserve=timestamps', p('ed.jsonl'), p('ed.stamp')]);
    const buf = fs.readFileSync(p('ed.jsonl'));
    const at = buf.indexOf('"output":"', 2000) + 10;
    buf[at] = buf[at] === 0x78 ? 0x79 : 0x78; // one letter of a response past the first KiB
    fs.writeFileSync(p('ed.jsonl'), buf);
    execFileSync('touch', ['-r', p('ed.stamp'), p('ed.jsonl')]);
    const now = fs.statSync(p('ed.jsonl'), { bigint: true });
    expect([now.size, now.mtimeNs]).toEqual([st.size, st.mtimeNs]);
    const r = await c.run([...args, '--resume']);
    expect(r.code, r.stderr).toBe(6);
    expect(r.stderr.trim()).toMatch(/^concord score: cannot resume ed\.out\.jsonl: the input changed since the checkpoint \(the SHA-256 of its first \d+ bytes.*\); run without --resume to start over$/);
  });
});
