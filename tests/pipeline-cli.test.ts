// The `concord` CLI as a child process (bin/concord.js → dist/), with the fake model loaded through
// the CONCORD_TEST_MODEL_MODULE hook: bad input, JSON arrays, kill -9 then --resume, --verify with
// an injected deviation, filter and run. dist/ is rebuilt first when older than the sources.

import * as fs from 'node:fs';
import { beforeAll, describe, expect, test } from 'vitest';
import { record, setupCli, type Cli } from './helpers/cli.js';
import { makeTinyModel } from './helpers/tiny-models.js';

let c: Cli;
beforeAll(() => { c = setupCli(); });
const cli: Cli['cli'] = (...a) => c.cli(...a);
const run: Cli['run'] = (...a) => c.run(...a);
const p = (name: string) => c.p(name);
const lines = (file: string) => c.lines(file);

describe('bad input', () => {
  test('file:line: reason in the errors file, the good records scored, exit 0; --strict stops with exit 3', async () => {
    fs.writeFileSync(p('bad.jsonl'), [
      JSON.stringify(record(0)),
      '{"instruction": "no end"',
      '',
      JSON.stringify({ instruction: 'x' }),
      JSON.stringify({ instruction: 'a', output: '   ' }),
      JSON.stringify({ instruction: ['a'], output: 'b' }),
      '[1, 2]',
      JSON.stringify(record(1)),
      JSON.stringify({ messages: [{ role: 'user', content: 'hi' }, { role: 'assistant', content: 'hello there' }] }),
    ].join('\n') + '\n');
    const r = await run(['score', 'bad.jsonl', '-o', 'bad.out.jsonl', '--cosine', 'off']);
    expect(r.code).toBe(0);
    const errs = lines('bad.out.jsonl.errors.jsonl');
    expect(errs.map((e) => e.message)).toEqual([
      expect.stringMatching(/^bad\.jsonl:2: malformed JSON: /),
      "bad.jsonl:4: missing field 'output'",
      "bad.jsonl:5: empty field 'output'",
      "bad.jsonl:6: field 'instruction' must be a string (got array)",
      'bad.jsonl:7: record must be a JSON object (got array)',
    ]);
    expect(r.stderr).toContain("bad.jsonl:4: missing field 'output'");
    const out = lines('bad.out.jsonl');
    expect(out.map((o) => o.id ?? 'chat')).toEqual([0, 1, 'chat']);
    expect(out[0].scores).toMatchObject({ x_tokens: expect.any(Number), truncated: false });

    const s = await run(['score', 'bad.jsonl', '-o', 'strict.jsonl', '--cosine', 'off', '--strict']);
    expect(s.code).toBe(3);
    expect(s.stderr).toContain('bad.jsonl:2: malformed JSON');
    expect(fs.existsSync(p('strict.jsonl'))).toBe(false);
  });

  test('a JSON array input: element line numbers in messages', async () => {
    fs.writeFileSync(p('arr.json'), `[\n  ${JSON.stringify(record(2))},\n  {"instruction": "only"},\n  ${JSON.stringify(record(3))}\n]\n`);
    const r = await run(['score', 'arr.json', '-o', 'arr.out.jsonl', '--cosine', 'off', '--quiet']);
    expect(r.code).toBe(0);
    expect(lines('arr.out.jsonl').map((o) => o.id)).toEqual([2, 3]);
    expect(lines('arr.out.jsonl.errors.jsonl')[0].message).toBe("arr.json:3: missing field 'output'");
  });

  test('usage errors exit 2', async () => {
    expect((await run(['score', 'bad.jsonl'])).code).toBe(2);
    expect((await run(['filter', 'bad.out.jsonl', '-o', 'k.jsonl', '--rule', 'nope'])).code).toBe(2);
    expect((await run(['score', 'bad.jsonl', '-o', 'x.jsonl', '--forward-template', '{y}{x}'])).code).toBe(2);
  });
});

describe('resume after kill -9', () => {
  const N = 90;
  beforeAll(() => {
    const rows = Array.from({ length: N }, (_, i) => (i % 17 === 9 ? '{"instruction": "broken' : JSON.stringify(record(i))));
    fs.writeFileSync(p('big.jsonl'), rows.join('\n') + '\n');
  });

  test('every input record ends up exactly once, in order, identical to an uninterrupted run', async () => {
    const args = ['score', 'big.jsonl', '--cosine', 'lm', '--window', '4', '--checkpoint-every', '2', '--quiet'];
    const env = { CONCORD_FAKE_BUDGET: '48' };
    const ref = await run([...args, '-o', 'ref.jsonl'], env);
    expect(ref.code).toBe(0);

    const { child, done } = cli([...args, '-o', 'res.jsonl'], { ...env, CONCORD_FAKE_DELAY_MS: '60' });
    const progress = p('res.jsonl.progress.json');
    const t0 = Date.now();
    for (;;) {
      if (fs.existsSync(progress)) {
        try {
          if (JSON.parse(fs.readFileSync(progress, 'utf8')).position.units >= 20) break;
        } catch { /* being renamed into place */ }
      }
      if (Date.now() - t0 > 40_000) throw new Error('the run never reached 20 records');
      await new Promise((r) => setTimeout(r, 15));
    }
    child.kill('SIGKILL');
    const killed = await done;
    expect(killed.signal).toBe('SIGKILL');
    expect(fs.existsSync(p('res.jsonl'))).toBe(false);
    const ck = JSON.parse(fs.readFileSync(progress, 'utf8'));
    expect(ck.position.units).toBeLessThan(N);
    // A torn line after the checkpoint, as a crash in the middle of a write leaves.
    fs.appendFileSync(p('res.jsonl.partial'), '{"id": 999, "instruction": "tor');

    const resumed = await run([...args, '-o', 'res.jsonl', '--resume', '--summary', 'res.summary.json'], env);
    expect(resumed.code).toBe(0);
    expect(fs.readFileSync(p('res.jsonl'), 'utf8')).toBe(fs.readFileSync(p('ref.jsonl'), 'utf8'));
    expect(fs.readFileSync(p('res.jsonl.errors.jsonl'), 'utf8')).toBe(fs.readFileSync(p('ref.jsonl.errors.jsonl'), 'utf8'));
    const ids = lines('res.jsonl').map((o) => o.id);
    expect(ids).toEqual(Array.from({ length: N }, (_, i) => i).filter((i) => i % 17 !== 9));
    for (const f of ['res.jsonl.partial', 'res.jsonl.progress.json', 'res.jsonl.errors.jsonl.partial']) expect(fs.existsSync(p(f))).toBe(false);
    const sum = JSON.parse(fs.readFileSync(p('res.summary.json'), 'utf8'));
    expect(sum.counts.resumed_from).toBe(ck.position.units + ck.ahead);
    expect(sum.counts.records).toBe(N);
    expect(sum.counts.errors).toBe(Math.floor((N - 10) / 17) + 1);
  });

  test('--resume refuses a checkpoint made with other options (exit 6)', async () => {
    const args = ['score', 'big.jsonl', '--cosine', 'off', '--window', '8', '--checkpoint-every', '1', '--quiet'];
    const { child, done } = cli([...args, '-o', 'mm.jsonl'], { CONCORD_FAKE_DELAY_MS: '60', CONCORD_FAKE_BUDGET: '32' });
    const t0 = Date.now();
    while (!fs.existsSync(p('mm.jsonl.progress.json'))) {
      if (Date.now() - t0 > 40_000) throw new Error('no checkpoint');
      await new Promise((r) => setTimeout(r, 15));
    }
    child.kill('SIGKILL');
    await done;
    const r = await run([...args, '-o', 'mm.jsonl', '--resume', '--max-len', '100']);
    expect(r.code).toBe(6);
    expect(r.stderr).toMatch(/cannot resume mm\.jsonl: the scoring options/);
  });

  test('--resume refuses a checkpoint made with the other entropy setting (exit 6), and resumes with the same one', async () => {
    const args = ['score', 'big.jsonl', '--cosine', 'off', '--window', '8', '--checkpoint-every', '1', '--quiet'];
    const { child, done } = cli([...args, '-o', 'ent.jsonl'], { CONCORD_FAKE_DELAY_MS: '60', CONCORD_FAKE_BUDGET: '32' });
    const t0 = Date.now();
    while (!fs.existsSync(p('ent.jsonl.progress.json'))) {
      if (Date.now() - t0 > 40_000) throw new Error('no checkpoint');
      await new Promise((r) => setTimeout(r, 15));
    }
    child.kill('SIGKILL');
    await done;
    const r = await run([...args, '-o', 'ent.jsonl', '--resume', '--no-entropy']);
    expect(r.code).toBe(6);
    expect(r.stderr).toMatch(/cannot resume ent\.jsonl: the scoring options \(.*--no-entropy.*\) differ/);
    expect(fs.existsSync(p('ent.jsonl.progress.json'))).toBe(true);
    const ok = await run([...args, '-o', 'ent.jsonl', '--resume']);
    expect(ok.code, ok.stderr).toBe(0);
    expect(lines('ent.jsonl').length).toBe(N - (Math.floor((N - 10) / 17) + 1));
  });
});

describe('--no-entropy', () => {
  test('score and run: y_entropy, x_entropy, upd null, every other score unchanged (a real model on the CPU path)', async () => {
    const model = makeTinyModel('llama2c', p('tiny-ent'));
    fs.writeFileSync(p('ent-pairs.jsonl'), [
      { instruction: 'Tell a story about a cat.', output: 'Once upon a time there was a cat.' },
      { instruction: 'Say hello.', output: 'Hello, friend.' },
    ].map((r) => JSON.stringify(r)).join('\n') + '\n');
    const base = ['ent-pairs.jsonl', '--model', model, '--device', 'cpu', '--cosine', 'off', '--quiet'];
    const on = await run(['score', ...base, '-o', 'ent-on.jsonl'], {}, { fake: false });
    const off = await run(['score', ...base, '-o', 'ent-off.jsonl', '--no-entropy'], {}, { fake: false });
    expect(on.code, on.stderr).toBe(0);
    expect(off.code, off.stderr).toBe(0);
    const [a, b] = [lines('ent-on.jsonl'), lines('ent-off.jsonl')];
    expect(b.length).toBe(2);
    b.forEach((r, i) => {
      for (const k of ['y_entropy', 'x_entropy', 'upd']) {
        expect(a[i].scores[k]).toEqual(expect.any(Number));
        expect(r.scores[k]).toBeNull();
      }
      for (const k of ['fwd_logp', 'rev_logp', 'y_logp', 'x_logp', 'ifd', 'rifd', 'norm_loss']) expect(r.scores[k]).toBeCloseTo(a[i].scores[k], 5);
    });
    const kept = await run(['run', ...base, '-o', 'ent-kept.jsonl', '--scored-out', 'ent-run-scored.jsonl', '--keep-fraction', '1', '--no-entropy'], {}, { fake: false });
    expect(kept.code, kept.stderr).toBe(0);
    for (const r of lines('ent-run-scored.jsonl')) expect(r.scores.y_entropy).toBeNull();
  }, 120_000);
});

describe('verify, filter, run', () => {
  beforeAll(() => {
    fs.writeFileSync(p('v.jsonl'), Array.from({ length: 24 }, (_, i) => JSON.stringify(record(i))).join('\n') + '\n');
  });

  test('--verify passes on a faithful backend and catches an injected deviation (exit 4)', async () => {
    const ok = await run(['score', 'v.jsonl', '-o', 'v1.jsonl', '--cosine', 'off', '--verify', '2', '--summary', 'v1.sum.json']);
    expect(ok.code).toBe(0);
    expect(JSON.parse(fs.readFileSync(p('v1.sum.json'), 'utf8')).verify).toMatchObject({ ok: true, batches: 2, maxAbsDiff: 0 });
    const bad = await run(['score', 'v.jsonl', '-o', 'v2.jsonl', '--cosine', 'off', '--verify', '2'], { CONCORD_TEST_INJECT_DEVIATION: '0.01' });
    expect(bad.code).toBe(4);
    expect(bad.stderr).toMatch(/verify: 2 batches.*max \|Δ\| 1\.00e-2 > tol 0\.001 — FAILED/);
  });

  test('filter writes kept and dropped in input order; run = score + filter', async () => {
    const f = await run(['filter', 'v1.jsonl', '--rule', 'main', '--keep-fraction', '0.3', '-o', 'kept.jsonl', '--drop-out', 'dropped.jsonl', '--summary', 'f.sum.json']);
    expect(f.code).toBe(0);
    const kept = lines('kept.jsonl'), dropped = lines('dropped.jsonl');
    expect(kept.length + dropped.length).toBe(24);
    expect(kept.length).toBeGreaterThanOrEqual(Math.round(0.3 * 24));
    expect(kept.every((r) => r.keep === true && typeof r.filter_score === 'number')).toBe(true);
    expect(dropped.every((r) => r.keep === false)).toBe(true);
    const ids = kept.map((r) => r.id);
    expect(ids).toEqual([...ids].sort((a, b) => a - b));
    expect(Math.min(...kept.map((r) => r.filter_score))).toBeGreaterThanOrEqual(Math.max(...dropped.map((r) => r.filter_score)));
    const fs_ = JSON.parse(fs.readFileSync(p('f.sum.json'), 'utf8'));
    expect(fs_.counts).toEqual({ records: 24, kept: kept.length, dropped: dropped.length, errors: 0 });

    const r = await run(['run', 'v.jsonl', '-o', 'run-kept.jsonl', '--cosine', 'off', '--keep-fraction', '0.3', '--quiet']);
    expect(r.code).toBe(0);
    expect(fs.readFileSync(p('run-kept.jsonl'), 'utf8')).toBe(fs.readFileSync(p('kept.jsonl'), 'utf8'));
    expect(fs.existsSync(p('run-kept.jsonl.scored.jsonl'))).toBe(false);
  });
});

describe('logprob (stories15M, CPU)', () => {
  test('per-token log-probs with decoded tokens; sum and mean', async () => {
    const r = await run(['logprob', '--model', 'default', '--device', 'cpu', '--context', 'Once upon a time', '--target', 'there was a dog.', '--json'], {}, { fake: false });
    expect(r.code).toBe(0);
    expect(r.stderr).toContain('--device cpu: CPU path chosen explicitly');
    const o = JSON.parse(r.stdout);
    expect(o.context_tokens).toBe(4);
    expect(o.tokens.map((t: { token: string }) => t.token).join('')).toBe('▁there▁was▁a▁dog.');
    const sum = o.tokens.reduce((s: number, t: { logprob: number }) => s + t.logprob, 0);
    expect(o.sum).toBeCloseTo(sum, 10);
    expect(o.mean).toBeCloseTo(sum / o.target_tokens, 10);
    expect(o.tokens.every((t: { logprob: number }) => t.logprob < 0)).toBe(true);
  });
});

describe('run on WebGPU with a real (tiny) model', () => {
  // The GPU path end to end through the CLI: `--device webgpu` must take the adapter (SwiftShader
  // here; no CPU fallback), `--verify` re-scores batches on the CPU twin and must agree.
  test('concord run --device webgpu --verify: scores every pair, agrees with the CPU twin, filters', async () => {
    const { makeTinyModel } = await import('./helpers/tiny-models.js');
    const model = makeTinyModel('hf-qwen2', p('tiny-qwen2'));
    fs.writeFileSync(p('gpu.jsonl'), Array.from({ length: 12 }, (_, i) => JSON.stringify(record(i))).join('\n') + '\n');
    const r = await run(['run', 'gpu.jsonl', '--model', model, '--device', 'webgpu', '--verify', '2', '--cosine', 'lm',
      '-o', 'gpu-kept.jsonl', '--scored-out', 'gpu-scored.jsonl', '--summary', 'gpu-sum.json', '--keep-fraction', '0.5'], {}, { fake: false });
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toMatch(/--device webgpu: .*\[software adapter\]|--device webgpu: /);
    const scored = lines('gpu-scored.jsonl');
    expect(scored.map((s) => s.id)).toEqual(Array.from({ length: 12 }, (_, i) => i));
    for (const s of scored) {
      expect(Number.isFinite(s.scores.fwd_logp) && Number.isFinite(s.scores.rev_logp)).toBe(true);
      expect(s.scores.ifd).toBeCloseTo(Math.exp(s.scores.y_logp - s.scores.fwd_logp), 10);
      expect(s.scores.cosine_source).toBe('lm-mean-hidden');
    }
    const sum = JSON.parse(fs.readFileSync(p('gpu-sum.json'), 'utf8'));
    expect(JSON.stringify(sum)).toMatch(/webgpu/);
    expect(sum.verify.ok).toBe(true);
    expect(sum.verify.maxAbsDiff).toBeLessThan(1e-3);
    expect(lines('gpu-kept.jsonl').length).toBeGreaterThan(0);
  });
});
