// Issue 26, the hostile run's holes outside the record I/O layer: shard manifests and merge (paths
// confined, counts bounded and counted from the files, a run's own files not overwritten, another
// run's shards refused), scores that overflow or are not numbers, `select --diversity 1`, a model
// whose numbers go NaN, overlapping safetensors tensors, chat templates without a bound, and
// CONCORD_* values outside their range. Each test failed before its fix.

import { spawn, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import ts from 'typescript';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { ModelFileError } from '../src/errors.js';
import { parseSafetensorsHeader } from '../src/formats/safetensors.js';
import { readGguf } from '../src/formats/gguf.js';
import type { LanguageModel, SequenceRequest } from '../src/models/lm.js';
import { ChatTemplateError, chatFormatFromTemplate } from '../src/pipeline/chat-template.js';
import { createScorerFromModels } from '../src/pipeline/scorer.js';
import { DiversitySelector } from '../src/select/index.js';
import { generate } from '../src/generate/engine.js';
import { GREEDY, type Decoder, type StepInput } from '../src/generate/types.js';
import { createFakeLm } from './helpers/fake-lm.js';

const ROOT = path.resolve(import.meta.dirname, '..');
const BIN = path.join(ROOT, 'bin', 'concord.js');
let tmp = '';
let fakeModule = '';
const p = (...f: string[]) => path.join(tmp, ...f);

beforeAll(() => {
  const built = path.join(ROOT, 'dist', 'src', 'cli', 'main.js');
  if (!fs.existsSync(built)) {
    const r = spawnSync(process.execPath, [path.join(ROOT, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', 'tsconfig.build.json'], { cwd: ROOT, encoding: 'utf8' });
    if (r.status !== 0) throw new Error(`build failed:\n${r.stdout}\n${r.stderr}`);
  }
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'concord-hostile-'));
  const src = fs.readFileSync(path.join(ROOT, 'tests', 'helpers', 'fake-lm.ts'), 'utf8');
  fakeModule = p('fake-lm.mjs');
  fs.writeFileSync(fakeModule, ts.transpileModule(src, { compilerOptions: { module: ts.ModuleKind.ES2022, target: ts.ScriptTarget.ES2022 } }).outputText);
  const rows = Array.from({ length: 40 }, (_, i) => JSON.stringify({ id: i, instruction: `tell a story about the cat number ${i}`, output: `the cat ${i} sat on the mat and the cat was happy` }));
  fs.writeFileSync(p('in.jsonl'), rows.join('\n') + '\n');
  fs.writeFileSync(p('other.jsonl'), rows.slice(0, 10).join('\n') + '\n');
});

afterAll(() => { if (tmp) fs.rmSync(tmp, { recursive: true, force: true }); });

interface Run { code: number | null; stdout: string; stderr: string; ms: number }

function run(args: string[], env: Record<string, string> = {}, fake = true): Promise<Run> {
  const t0 = Date.now();
  const child = spawn(process.execPath, [BIN, ...args], { cwd: tmp, env: { ...process.env, ...(fake ? { CONCORD_TEST_MODEL_MODULE: fakeModule } : {}), ...env } });
  let stdout = '', stderr = '';
  child.stdout.on('data', (d) => { stdout += d; });
  child.stderr.on('data', (d) => { stderr += d; });
  return new Promise((res) => child.on('close', (code) => res({ code, stdout, stderr, ms: Date.now() - t0 })));
}

const score = ['score', 'in.jsonl', '--cosine', 'off', '--quiet'];
const manifest = (dir: string, i: number, n: number) => p(dir, `shard-${i}-of-${n}.manifest.json`);
const editManifest = (file: string, edit: (m: Record<string, any>) => void) => {
  const m = JSON.parse(fs.readFileSync(file, 'utf8'));
  edit(m);
  fs.writeFileSync(file, JSON.stringify(m));
};

const editJson = (file: string, edit: (m: Record<string, any>) => void) => {
  const m = JSON.parse(fs.readFileSync(file, 'utf8'));
  edit(m);
  fs.writeFileSync(file, JSON.stringify(m));
};

async function shardedRun(dir: string): Promise<void> {
  for (const i of [0, 1]) {
    const r = await run([...score, '--shard', `${i}/2`, '--out-dir', dir]);
    expect(r.code, r.stderr).toBe(0);
  }
}

describe('shards and merge', () => {
  test('a manifest naming a file outside its folder is refused (exit 3), nothing is copied', async () => {
    await shardedRun('esc');
    const secret = p('secret.txt');
    fs.writeFileSync(secret, 'not yours\n');
    const { createHash } = await import('node:crypto');
    editManifest(manifest('esc', 0, 2), (m) => {
      m.output.file = '../secret.txt';
      m.output.bytes = 10;
      m.output.sha256 = createHash('sha256').update('not yours\n').digest('hex');
    });
    const r = await run(['merge', 'esc', '-o', 'merged.jsonl']);
    expect(r.code).toBe(3);
    expect(r.stderr).toMatch(/shard-0-of-2\.manifest\.json: not a valid concord shard manifest: output\.file must be shard-0-of-2\.jsonl/);
    expect(fs.existsSync(p('merged.jsonl'))).toBe(false);
  });

  test('a manifest with n = 10^9 is refused at once; --shard 5/10000000 is a usage error', async () => {
    await shardedRun('huge');
    editManifest(manifest('huge', 0, 2), (m) => { m.shard.n = 1e9; });
    const r = await run(['merge', 'huge', '-o', 'x.jsonl']);
    expect(r.code).toBe(3);
    expect(r.stderr).toMatch(/shard\.n must be an integer in 1\.\.65536/);
    expect(r.ms).toBeLessThan(20_000);
    const s = await run([...score, '--shard', '5/10000000', '--out-dir', 'huge2']);
    expect(s.code).toBe(2);
    expect(s.stderr).toMatch(/the shard count must be ≤ 65536 \(got 10000000/);
  });

  test('merge -o into the run\'s own shard files is refused (exit 2), the shard is untouched', async () => {
    await shardedRun('own');
    const before = fs.readFileSync(p('own', 'shard-0-of-2.jsonl'));
    for (const target of ['own/shard-0-of-2.jsonl', 'own/shard-1-of-2.manifest.json']) {
      const r = await run(['merge', 'own', '-o', target]);
      expect(r.code).toBe(2);
      expect(r.stderr).toMatch(/is one of the run's own shard files/);
    }
    expect(fs.readFileSync(p('own', 'shard-0-of-2.jsonl')).equals(before)).toBe(true);
    const ok = await run(['merge', 'own', '-o', 'own/merged.jsonl']);
    expect(ok.code, ok.stderr).toBe(0);
  });

  test('merge counts the records in the files, not the manifests\' claims', async () => {
    await shardedRun('lie');
    editManifest(manifest('lie', 1, 2), (m) => { m.counts.scored += 5; });
    const r = await run(['merge', 'lie', '-o', 'lie.jsonl']);
    expect(r.code).toBe(3);
    expect(r.stderr).toMatch(/shard 1\/2: its files hold 20 scored records and 0 errors, its manifest says 25 and 0/);
    const good = await run(['merge', 'own', '-o', 'own-merged.jsonl', '--summary', 'merge.json']);
    expect(good.code, good.stderr).toBe(0);
    expect(JSON.parse(fs.readFileSync(p('merge.json'), 'utf8')).counts).toEqual({ records: 40, scored: 40, errors: 0 });
  });

  test('a shard into a folder holding another run\'s shards is refused (exit 6)', async () => {
    const a = await run([...score, '--shard', '0/2', '--out-dir', 'mixed']);
    expect(a.code, a.stderr).toBe(0);
    const b = await run(['score', 'other.jsonl', '--cosine', 'off', '--quiet', '--shard', '1/2', '--out-dir', 'mixed']);
    expect(b.code).toBe(6);
    expect(b.stderr).toMatch(/shard-0-of-2\.manifest\.json belongs to another run/);
    expect(fs.existsSync(p('mixed', 'shard-1-of-2.jsonl'))).toBe(false);
  });
});

describe('scores that are not usable numbers', () => {
  test('filter: ±1e308 scores are per-record errors; the fraction is taken of the rest', async () => {
    const r0 = await run([...score, '-o', 'scored.jsonl']);
    expect(r0.code, r0.stderr).toBe(0);
    const lines = fs.readFileSync(p('scored.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l));
    lines[3].scores.fwd_logp = 1e308;
    lines[3].scores.y_logp = -1e308;
    lines[7].scores.rev_logp = -1e308;
    fs.writeFileSync(p('huge.jsonl'), lines.map((l) => JSON.stringify(l)).join('\n') + '\n');
    const r = await run(['filter', 'huge.jsonl', '--rule', 'main', '--keep-fraction', '0.5', '-o', 'kept.jsonl']);
    expect(r.code, r.stderr).toBe(0); // as concord score: bad records go to the errors file
    const kept = fs.readFileSync(p('kept.jsonl'), 'utf8').trim().split('\n');
    expect(kept.length).toBe(19); // round(0.5 · 38 readable) … of 40 records, 2 errors
    const errs = fs.readFileSync(p('kept.jsonl.errors.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l));
    expect(errs.map((e) => e.message)).toEqual([expect.stringMatching(/huge\.jsonl:4: scores\.fwd_logp = 1e\+308 is out of range/), expect.stringMatching(/huge\.jsonl:8: scores\.rev_logp = -1e\+308 is out of range/)]);
  });

  test('select --diversity 1 keeps exact duplicates (no diversity bound)', async () => {
    const d = 4;
    const v = new Float32Array([1, 0, 0, 0, 1, 0, 0, 0, 0, 1, 0, 0]);
    const sel = new DiversitySelector({ tau: 1, budget: 3, dim: d, device: 'cpu' });
    expect([...(await sel.offer(v, 3))]).toEqual([1, 1, 1]);
    const strict = new DiversitySelector({ tau: 0.99, budget: 3, dim: d, device: 'cpu' });
    expect([...(await strict.offer(v, 3))]).toEqual([1, 0, 1]);
  });

  test('a model whose numbers go NaN: every pair is an error naming the score, none "scored"', async () => {
    const base = createFakeLm();
    const lm: LanguageModel = { ...base, scoreBatch: async (seqs: SequenceRequest[]) => (await base.scoreBatch(seqs)).map((s) => ({ logprobs: s.logprobs.map(() => NaN) })) };
    const sc = createScorerFromModels({ model: lm, cosine: 'off' });
    const out = [];
    for await (const r of sc.score([{ instruction: 'a cat', output: 'the cat sat' }, { instruction: 'a dog', output: 'the dog ran' }])) out.push(r);
    expect(out.map((r) => r.error)).toEqual([expect.stringMatching(/^fwd_logp is NaN: the model's numbers are not finite/), expect.stringMatching(/^fwd_logp is NaN/)]);
    expect(sc.stats.scored).toBe(0);
    expect(sc.stats.errors).toBe(2);
  });
});

describe('model and template files', () => {
  test('overlapping data_offsets in a safetensors header are refused', () => {
    const header = JSON.stringify({ a: { dtype: 'F32', shape: [4], data_offsets: [0, 16] }, b: { dtype: 'F32', shape: [4], data_offsets: [8, 24] } });
    const len = Buffer.alloc(8);
    len.writeBigUInt64LE(BigInt(header.length));
    const f = p('overlap.safetensors');
    fs.writeFileSync(f, Buffer.concat([len, Buffer.from(header), Buffer.alloc(24)]));
    expect(() => parseSafetensorsHeader(f)).toThrow(ModelFileError);
    expect(() => parseSafetensorsHeader(f)).toThrow(/tensors 'a' and 'b' overlap/);
  });

  test('GGUF headers with lying counts and sizes are refused at once (exit-3 errors naming the file)', async () => {
    const u32 = (n: number) => { const b = Buffer.alloc(4); b.writeUInt32LE(n); return b; };
    const u64 = (n: bigint) => { const b = Buffer.alloc(8); b.writeBigUInt64LE(n); return b; };
    const str = (t: string) => Buffer.concat([u64(BigInt(t.length)), Buffer.from(t)]);
    const head = (tensors: bigint, kvs: bigint) => Buffer.concat([Buffer.from('GGUF'), u32(3), u64(tensors), u64(kvs)]);
    const cases: [string, Buffer][] = [
      ['tensor count', head(2n ** 62n, 0n)],
      ['metadata count', head(0n, 2n ** 62n)],
      ['string length', Buffer.concat([head(0n, 1n), str('general.architecture'), u32(8), u64(2n ** 40n)])],
      ['array length', Buffer.concat([head(0n, 1n), str('tokenizer.ggml.tokens'), u32(9), u32(8), u64(2n ** 40n)])],
      ['dimension', Buffer.concat([head(1n, 1n), str('general.architecture'), u32(8), str('llama'), str('token_embd.weight'), u32(2), u64(2n ** 40n), u64(2n ** 40n), u32(0), u64(0n)])],
    ];
    for (const [what, bytes] of cases) {
      const f = p(`lying-${what.replace(' ', '-')}.gguf`);
      fs.writeFileSync(f, bytes);
      const t0 = Date.now();
      await expect(readGguf(f), what).rejects.toThrow(ModelFileError);
      await expect(readGguf(f), what).rejects.toThrow(/not a readable GGUF file: .*exceeds/);
      expect(Date.now() - t0).toBeLessThan(10_000);
    }
  });

  test('chat templates run under a render budget (steps, range length, text size)', () => {
    const tok = createFakeLm().tokenizer;
    for (const [text, why] of [
      ['{% for i in range(100000000) %}x{% endfor %}{% for m in messages %}{{ m.content }}{% endfor %}', /range\(100000000\) is longer than the template budget/],
      ['{% for i in range(90000) %}{% for j in range(90000) %}x{% endfor %}{% endfor %}', /runs past its budget of 100000 steps/],
      ['{% set ns = namespace(s="xxxxxxxx") %}{% for i in range(40) %}{% set ns.s = ns.s ~ ns.s %}{% endfor %}', /builds a text of over \d+ characters/],
    ] as const) {
      const t0 = Date.now();
      expect(() => chatFormatFromTemplate({ text, origin: 'hostile' }, tok, { model: 'fake' })).toThrow(ChatTemplateError);
      expect(() => chatFormatFromTemplate({ text, origin: 'hostile' }, tok, { model: 'fake' })).toThrow(why);
      expect(Date.now() - t0).toBeLessThan(30_000);
    }
  });

  test('a bad config.json or tokenizer.json is an input error (exit 3) naming the file, not an unexpected failure', async () => {
    const fixture = path.join(ROOT, 'tests', 'fixtures', 'hf', 'llama3');
    const cases: [string, (dir: string) => void, RegExp][] = [
      ['heads', (d) => editJson(path.join(d, 'config.json'), (c) => { c.num_attention_heads = 7; }), /config\.json: num_attention_heads 7 is not a multiple of num_key_value_heads/],
      ['theta', (d) => editJson(path.join(d, 'config.json'), (c) => { c.rope_theta = -1; }), /config\.json: rope_theta must be a positive number \(got -1\)/],
      ['hidden', (d) => editJson(path.join(d, 'config.json'), (c) => { c.hidden_size = 'abc'; }), /config\.json: LlamaForCausalLM needs a numeric "hidden_size"/],
      ['tok', (d) => fs.writeFileSync(path.join(d, 'tokenizer.json'), '{"model": {"type": "BPE", "vocab": 5}}'), /tokenizer\.json.*cannot build the tokenizer/],
    ];
    for (const [name, spoil, msg] of cases) {
      const dir = p(`model-${name}`);
      fs.cpSync(fixture, dir, { recursive: true });
      spoil(dir);
      const r = await run([...score, '-o', `m-${name}.jsonl`, '--device', 'cpu-twin', '--model', dir], {}, false);
      expect(r.code, r.stderr).toBe(3);
      expect(r.stderr.trim().split('\n')).toEqual([expect.stringMatching(msg)]);
    }
  });

  test('CONCORD_* values outside their range stop the command at once (exit 2, naming the variable)', async () => {
    for (const [env, msg] of [
      [{ CONCORD_CPU_THREADS: '1000000' }, /CONCORD_CPU_THREADS=1000000: must be an integer in 1\.\.256/],
      [{ CONCORD_CPU_BACKEND: 'gpu' }, /CONCORD_CPU_BACKEND must be onnxruntime, twin/],
      [{ CONCORD_TUNE: 'always' }, /CONCORD_TUNE must be auto, off, refresh/],
    ] as const) {
      const r = await run([...score, '-o', 'never.jsonl'], env);
      expect(r.code).toBe(2);
      expect(r.stderr.trim().split('\n')).toEqual([expect.stringMatching(msg)]);
    }
    expect(fs.existsSync(p('never.jsonl'))).toBe(false);
  });
});

describe('generation inputs', () => {
  test('a stop string late in a long generation is found, cut exactly, in time linear in the text', async () => {
    // A decoder that writes 'a' (id 1) 500 times, then 'S','T','O','P' (ids 2..5), then 'a' again.
    const script = [...Array(500).fill(1), 2, 3, 4, 5, ...Array(100).fill(1)];
    const chars = ['', 'a', 'S', 'T', 'O', 'P'];
    const pos = new Map<number, number>();
    const dec: Decoder = {
      slots: 1, maxLen: 4096,
      reset: (slot) => { pos.set(slot, 0); },
      step: async (inputs: StepInput[]) => Int32Array.from(inputs.map((i) => { const k = pos.get(i.slot) ?? 0; pos.set(i.slot, k + 1); return script[k]; })),
      stepLogprobs: async () => { throw new Error('unused'); },
      scoreTokens: async () => { throw new Error('unused'); },
      truncate: () => { throw new Error('unused'); },
      dispose: () => {},
    };
    let decoded = 0;
    const decode = (ids: number[]) => { decoded += ids.length; return ids.map((t) => chars[t]).join(''); };
    const { results } = await generate(dec, [{ prompt: [0], sampling: GREEDY, maxNewTokens: 1000, stopStrings: ['STOP'] }], { decode });
    expect(results[0]).toMatchObject({ finish_reason: 'stop', text: 'a'.repeat(500), generated_tokens: 504 });
    // Decoding the whole text every step would cost ~504²/2 ≈ 127k token decodes; the tail check ~504·24.
    expect(decoded).toBeLessThan(20_000);
  });

  test('concord generate: an empty --stop and --num-samples beyond 1024 are usage errors', async () => {
    const a = await run(['generate', '--model', 'stories15M', '--prompt', 'Once', '--stop', '', '--device', 'cpu-twin'], {}, false);
    expect(a.code).toBe(2);
    expect(a.stderr).toMatch(/--stop needs a non-empty string/);
    const b = await run(['generate', '--model', 'stories15M', '--prompt', 'Once', '--num-samples', '1000000', '--device', 'cpu-twin'], {}, false);
    expect(b.code).toBe(2);
    expect(b.stderr).toMatch(/--num-samples must be an integer in \[1, 1024\]/);
  });

  test('concord synthesize: an empty --stop and --num-candidates beyond 1024 are usage errors', async () => {
    fs.writeFileSync(p('responses.jsonl'), '{"output": "the cat sat on the mat"}\n');
    for (const [flags, msg] of [[['--stop', ''], /--stop needs a non-empty string/], [['--num-candidates', '1000000'], /--num-candidates must be an integer in \[1, 1024\]/]] as const) {
      const r = await run(['synthesize', 'responses.jsonl', '-o', 'pairs.jsonl', '--model', 'stories15M', '--device', 'cpu-twin', '--cosine', 'off', ...flags], {}, false);
      expect(r.code).toBe(2);
      expect(r.stderr).toMatch(msg);
    }
    expect(fs.existsSync(p('pairs.jsonl'))).toBe(false);
  });
});

