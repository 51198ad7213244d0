// Models by Hugging Face Hub id, downloaded on first use (src/hub/), against a local Hub
// (tests/helpers/hub-server.ts: the API, /resolve with the Hub's headers, LFS redirects to a CDN
// on another origin). The CLI runs as a child process (`concord logprob --model org/name`), with
// HF_ENDPOINT at the local Hub and HF_HUB_CACHE in a temporary folder; the request log counts what
// each run asked. Also the path holes of issue 26 item 2 (revision names, refs contents, weight_map
// entries).

import { existsSync, lstatSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, readlinkSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, beforeEach, describe, expect, test } from 'vitest';
import { ensureHubModel, ttyProgress } from '../src/hub/download.js';
import { isRepoFileName, isRevisionName } from '../src/hub/names.js';
import { resolveCachedModel } from '../src/models/hf-cache.js';
import { loadWeights, resolveModel } from '../src/models/load.js';
import { openSafetensorsIndex } from '../src/formats/safetensors.js';
import { setupCli, noStack, type Run } from './helpers/cli.js';
import { FakeHub, gitBlobId, sha256 } from './helpers/hub-server.js';
import { makeTinyModel } from './helpers/tiny-models.js';
import { writeSafetensors } from './helpers/writers.js';
import { loadEmbedder } from '../src/encoder/index.js';
import { ggufExport } from '../src/formats/gguf-export.js';
import { writeGguf } from '../src/formats/gguf-write.js';

const C1 = '1'.repeat(40), C2 = '2'.repeat(40), CG = 'a'.repeat(40), CS = 'c'.repeat(40);
const cli = setupCli('concord-hub-');
const hub = new FakeHub();
let root: string, cache: string, plain: string, plain2: string;
let files1: Map<string, Buffer>, files2: Map<string, Buffer>;

const SHARD = 'model-00001-of-00002.safetensors';
const read = (dir: string): Map<string, Buffer> => new Map(readdirSync(dir).map((n) => [n, readFileSync(join(dir, n))]));

beforeAll(async () => {
  root = mkdtempSync(join(tmpdir(), 'concord-hub-'));
  plain = makeTinyModel('hf-qwen2', join(root, 'plain'), { seed: 3 });
  plain2 = makeTinyModel('hf-qwen2', join(root, 'plain2'), { seed: 4 });
  files1 = read(plain);
  files2 = read(plain2);
  files1.set('README.md', Buffer.from('# not needed\n'));
  await hub.start();
  hub.add('tiny/qwen', C1, files1);
  hub.add('tiny/gated', CG, files1, { gated: true });
});
afterAll(async () => {
  await hub.stop();
  rmSync(root, { recursive: true, force: true });
});

beforeEach(() => {
  cache = mkdtempSync(join(root, 'cache-'));
  hub.log = [];
  hub.hooks = {};
});

const env = (extra: Record<string, string> = {}): Record<string, string> => ({
  HF_ENDPOINT: hub.url, HF_HUB_CACHE: cache, HF_HOME: join(root, 'hf-home'), HF_TOKEN: '', HUGGING_FACE_HUB_TOKEN: '', HF_HUB_OFFLINE: '',
  HF_HUB_DOWNLOAD_TIMEOUT: '5', ...extra,
});
const ARGS = ['--device', 'cpu-twin', '--context', 'Once upon a time', '--target', 'there was a girl', '--json'];
const logprob = (model: string, e: Record<string, string> = {}, more: string[] = []): Promise<Run> => cli.run(['logprob', '--model', model, ...ARGS, ...more], env(e), { fake: false });
const sumOf = (r: Run): number => JSON.parse(r.stdout).sum;
const repoDir = (id: string) => join(cache, `models--${id.replace('/', '--')}`);

let reference: number;
beforeAll(async () => {
  const r = await cli.run(['logprob', '--model', plain, ...ARGS], env(), { fake: false });
  expect(r.code, r.stderr).toBe(0);
  reference = sumOf(r);
});

describe('a model by Hub id', () => {
  test('first use downloads into the standard cache layout and scores; a second run asks once and downloads nothing; offline asks nothing', async () => {
    const a = await logprob('tiny/qwen');
    expect(a.code, a.stderr).toBe(0);
    expect(sumOf(a)).toBe(reference);
    expect(a.stderr).toMatch(/concord: downloading tiny\/qwen@main \(commit 111111111111\)/);
    // the layout huggingface_hub writes: refs/main, snapshots/<commit>/<file> → ../../blobs/<etag>
    const repo = repoDir('tiny/qwen');
    expect(readFileSync(join(repo, 'refs', 'main'), 'utf8')).toBe(C1);
    const snap = join(repo, 'snapshots', C1);
    expect(readdirSync(snap).sort()).toEqual(['config.json', 'generation_config.json', SHARD, 'model-00002-of-00002.safetensors', 'model.safetensors.index.json', 'tokenizer.json', 'tokenizer_config.json']);
    expect(readlinkSync(join(snap, SHARD))).toBe(join('..', '..', 'blobs', sha256(files1.get(SHARD)!)));
    expect(readlinkSync(join(snap, 'config.json'))).toBe(join('..', '..', 'blobs', gitBlobId(files1.get('config.json')!)));
    expect(readdirSync(join(repo, 'blobs')).some((n) => n.endsWith('.incomplete'))).toBe(false);
    // LFS bytes came from the CDN origin, without the token; nothing but what concord reads was fetched
    expect(hub.log.filter((l) => l.url.includes('README.md'))).toEqual([]);
    expect(hub.count('cdn')).toBe(2);

    hub.log = [];
    const b = await logprob('tiny/qwen');
    expect(b.code, b.stderr).toBe(0);
    expect(sumOf(b)).toBe(reference);
    expect(b.stderr).not.toMatch(/downloading/);
    expect(hub.log.map((l) => `${l.method} ${l.url.split('?')[0]}`)).toEqual(['GET /api/models/tiny/qwen/revision/main']);

    hub.log = [];
    const c = await logprob('tiny/qwen', { HF_HUB_OFFLINE: '1' });
    expect(c.code, c.stderr).toBe(0);
    expect(sumOf(c)).toBe(reference);
    expect(hub.count()).toBe(0);
    // a commit hash whose snapshot is whole needs no request either
    const d = await logprob(`tiny/qwen@${C1}`);
    expect(d.code, d.stderr).toBe(0);
    expect(hub.count()).toBe(0);
  });

  test('concord score data.jsonl --model org/name: scores with no step before it on an empty cache, as the local folder does', async () => {
    const data = join(root, 'pairs.jsonl');
    writeFileSync(data, ['{"instruction":"Once upon a time","output":"there was a girl"}', '{"instruction":"Lily liked","output":"to play in the park"}'].join('\n') + '\n');
    const score = (model: string, out: string) => cli.run(['score', data, '-o', join(root, out), '--model', model, '--device', 'cpu-twin', '--cosine', 'off'], env(), { fake: false });
    const a = await score('tiny/qwen', 'by-id.jsonl');
    expect(a.code, a.stderr).toBe(0);
    const b = await score(plain, 'by-folder.jsonl');
    expect(b.code, b.stderr).toBe(0);
    const scores = (f: string) => readFileSync(join(root, f), 'utf8').trim().split('\n').map((l) => JSON.parse(l).scores);
    expect(scores('by-id.jsonl')).toEqual(scores('by-folder.jsonl'));
    expect(scores('by-id.jsonl').map((s) => typeof s.fwd_logp)).toEqual(['number', 'number']);
  });

  test('HF_HUB_OFFLINE=1 with an empty cache: a clear error, exit 2, zero requests', async () => {
    const r = await logprob('tiny/qwen', { HF_HUB_OFFLINE: '1' });
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/HF_HUB_OFFLINE=1 \(no network\): model 'tiny\/qwen' is not in the Hugging Face cache/);
    expect(noStack(r.stderr)).toBe(true);
    expect(hub.count()).toBe(0);
  });

  test('a branch that moved downloads the new commit; Org/Name@rev and --revision', async () => {
    const id = 'tiny/moving';
    hub.add(id, C1, files1);
    expect((await logprob(id)).code).toBe(0);
    hub.add(id, C2, files2); // main moves to C2
    hub.add(id, C1, files1, { ref: 'v1' });
    hub.log = [];
    const r = await logprob(id);
    expect(r.code, r.stderr).toBe(0);
    expect(sumOf(r)).not.toBe(reference);
    expect(readFileSync(join(repoDir(id), 'refs', 'main'), 'utf8')).toBe(C2);
    // the unchanged tokenizer files are not fetched again (their blobs are there): only HEADs for them
    expect(hub.log.filter((l) => l.method === 'GET' && l.url.includes('tokenizer.json'))).toEqual([]);
    const v1 = await logprob(`${id}@v1`);
    expect(v1.code, v1.stderr).toBe(0);
    expect(sumOf(v1)).toBe(reference);
    const both = await logprob(`${id}@v1`, {}, ['--revision', 'main']);
    expect(both.code).toBe(2);
    expect(both.stderr).toMatch(/names revision 'v1' but --revision says 'main'/);
    const missing = await logprob(id, {}, ['--revision', 'nope']);
    expect(missing.code).toBe(2);
    expect(missing.stderr).toMatch(/404 — no such revision/);
  });

  test('an interrupted download is resumed with a Range request by the next run', async () => {
    const size = files1.get(SHARD)!.length;
    const half = Math.floor(size / 2);
    hub.hooks.cut = { file: SHARD, after: half, times: 1 };
    const a = await logprob('tiny/qwen');
    expect(a.code).toBe(2);
    expect(a.stderr).toMatch(/model-00001-of-00002\.safetensors: download stopped at \d+ of \d+ bytes .*run again to resume/);
    const part = join(repoDir('tiny/qwen'), 'blobs', `${sha256(files1.get(SHARD)!)}.incomplete`);
    const kept = statSync(part).size;
    expect(kept).toBeGreaterThan(0);
    expect(kept).toBeLessThan(size);
    expect(existsSync(join(repoDir('tiny/qwen'), 'snapshots', C1, SHARD))).toBe(false);
    hub.log = [];
    const b = await logprob('tiny/qwen');
    expect(b.code, b.stderr).toBe(0);
    expect(sumOf(b)).toBe(reference);
    const sha = sha256(files1.get(SHARD)!);
    expect(hub.log.filter((l) => l.server === 'cdn' && l.url.includes(sha)).map((l) => l.range)).toEqual([`bytes=${kept}-`]);
    expect(existsSync(part)).toBe(false);
  });

  test('a download that stalls is stopped after HF_HUB_DOWNLOAD_TIMEOUT and continued by the next run', async () => {
    hub.hooks.cut = { file: SHARD, after: 1000, times: 1, hang: true };
    const t0 = Date.now();
    const a = await logprob('tiny/qwen', { HF_HUB_DOWNLOAD_TIMEOUT: '1' });
    expect(a.code).toBe(2);
    expect(a.stderr).toMatch(/download stopped at 1000 of \d+ bytes \(connection cut or stalled\); run again to resume/);
    expect(Date.now() - t0).toBeLessThan(20000);
    hub.log = [];
    const b = await logprob('tiny/qwen');
    expect(b.code, b.stderr).toBe(0);
    expect(hub.log.filter((l) => l.server === 'cdn' && l.url.includes(sha256(files1.get(SHARD)!))).map((l) => l.range)).toEqual(['bytes=1000-']);
  });

  test('a gated repo: without HF_TOKEN a one-line error naming HF_TOKEN (exit 2); with it, works, and the token never goes to the CDN', async () => {
    const a = await logprob('tiny/gated');
    expect(a.code).toBe(2);
    expect(a.stderr.trim().split('\n').filter((l) => l.startsWith('concord logprob:'))).toHaveLength(1);
    expect(a.stderr).toMatch(/tiny\/gated is gated or private: set HF_TOKEN/);
    const bad = await logprob('tiny/gated', { HF_TOKEN: 'hf_wrong' });
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(/401 — the token from HF_TOKEN may not read tiny\/gated/);
    hub.log = [];
    const b = await logprob('tiny/gated', { HF_TOKEN: hub.token });
    expect(b.code, b.stderr).toBe(0);
    expect(sumOf(b)).toBe(reference);
    expect(hub.log.filter((l) => l.server === 'hub').every((l) => l.auth === `Bearer ${hub.token}`)).toBe(true);
    expect(hub.log.filter((l) => l.server === 'cdn').every((l) => l.auth === undefined)).toBe(true);
    expect(hub.count('cdn')).toBeGreaterThan(0);
  });
});

test('the progress line: redrawn on a terminal, nothing otherwise', () => {
  const out: string[] = [];
  const p = ttyProgress({ isTTY: true, write: (s) => out.push(s) })!;
  p({ file: 'o/n/model.safetensors', bytesDone: 5e5, bytesTotal: 2e6 });
  p({ file: 'o/n/model.safetensors', bytesDone: 2e6, bytesTotal: 2e6 });
  expect(out).toEqual(['\r\x1b[2Kdownloading o/n/model.safetensors  0.50 / 2.00 MB  25%', '\r\x1b[2Kdownloading o/n/model.safetensors  2.00 / 2.00 MB  100%\n']);
  expect(ttyProgress({ isTTY: false, write: () => {} })).toBeUndefined();
});

/** A tiny random BERT folder (MiniLM's tokenizer, d = 8, one layer), as a Hub repo's files. */
function tinyBert(dir: string): string {
  mkdirSync(dir, { recursive: true });
  const V = 30522, d = 8, ff = 16, P = 64;
  let s = 7;
  const rnd = (n: number) => Float32Array.from({ length: n }, () => ((s = (s * 1103515245 + 12345) % 2 ** 31) / 2 ** 31 - 0.5) * 0.2);
  const ones = (n: number) => new Float32Array(n).fill(1);
  const t = [
    { name: 'embeddings.word_embeddings.weight', data: rnd(V * d), shape: [V, d] },
    { name: 'embeddings.position_embeddings.weight', data: rnd(P * d), shape: [P, d] },
    { name: 'embeddings.token_type_embeddings.weight', data: rnd(2 * d), shape: [2, d] },
    { name: 'embeddings.LayerNorm.weight', data: ones(d), shape: [d] }, { name: 'embeddings.LayerNorm.bias', data: rnd(d), shape: [d] },
  ];
  const p = 'encoder.layer.0.';
  for (const [n, shape] of [['attention.self.query', [d, d]], ['attention.self.key', [d, d]], ['attention.self.value', [d, d]], ['attention.output.dense', [d, d]], ['intermediate.dense', [ff, d]], ['output.dense', [d, ff]]] as const) {
    t.push({ name: `${p}${n}.weight`, data: rnd(shape[0] * shape[1]), shape: [...shape] }, { name: `${p}${n}.bias`, data: rnd(shape[0]), shape: [shape[0]] });
  }
  for (const n of ['attention.output.LayerNorm', 'output.LayerNorm']) t.push({ name: `${p}${n}.weight`, data: ones(d), shape: [d] }, { name: `${p}${n}.bias`, data: rnd(d), shape: [d] });
  writeSafetensors(join(dir, 'model.safetensors'), t.map((x) => ({ ...x, dtype: 'F32' as const })));
  writeFileSync(join(dir, 'config.json'), JSON.stringify({ architectures: ['BertModel'], model_type: 'bert', vocab_size: V, hidden_size: d, num_hidden_layers: 1, num_attention_heads: 2, intermediate_size: ff, max_position_embeddings: P, type_vocab_size: 2, layer_norm_eps: 1e-12, hidden_act: 'gelu' }));
  for (const f of ['tokenizer.json', 'tokenizer_config.json']) writeFileSync(join(dir, f), readFileSync(join(import.meta.dirname, '..', 'models', 'all-MiniLM-L6-v2', f)));
  return dir;
}

test('the sentence encoder by Hub id (--embed-model Org/Name): downloaded, then the same vectors as the folder', async () => {
  const dir = tinyBert(join(root, 'bert'));
  hub.add('tiny/bert', CS, read(dir));
  const e = env();
  const saved = { ...process.env };
  Object.assign(process.env, e);
  try {
    const viaHub = await loadEmbedder('tiny/bert', { device: 'cpu', cpuBackend: 'twin' });
    const local = await loadEmbedder(dir, { device: 'cpu', cpuBackend: 'twin' });
    const texts = ['a small test', 'another sentence here'];
    expect(await viaHub.embed(texts)).toEqual(await local.embed(texts));
    expect(existsSync(join(repoDir('tiny/bert'), 'snapshots', CS, 'model.safetensors'))).toBe(true);
    viaHub.dispose();
    local.dispose();
  } finally {
    for (const k of Object.keys(e)) {
      if (saved[k] === undefined) delete process.env[k];
      else process.env[k] = saved[k];
    }
  }
});

describe('hostile Hub answers', () => {
  const noWeights = (id: string, commit = C1) => {
    const snap = join(repoDir(id), 'snapshots', commit, SHARD);
    const blobs = existsSync(join(repoDir(id), 'blobs')) ? readdirSync(join(repoDir(id), 'blobs')) : [];
    return !existsSync(snap) && !blobs.includes(sha256(files1.get(SHARD)!)) && !blobs.some((b) => b.endsWith('.incomplete'));
  };

  test('a wrong SHA-256: error, nothing left in snapshots or blobs', async () => {
    const bytes = Buffer.from(files1.get(SHARD)!);
    bytes[bytes.length - 1] ^= 1;
    hub.hooks.wrongBytes = { file: SHARD, bytes };
    const r = await logprob('tiny/qwen');
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/model-00001-of-00002\.safetensors: the downloaded file has SHA-256 [0-9a-f]{64}, not [0-9a-f]{64}; deleted/);
    expect(noWeights('tiny/qwen')).toBe(true);
  });

  test('more bytes than the declared size: refused, nothing left', async () => {
    hub.hooks.declaredSize = { file: SHARD, size: 100 };
    const r = await logprob('tiny/qwen');
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/sent more than the 100 bytes it declared; refused/);
    expect(noWeights('tiny/qwen')).toBe(true);
  });

  test('a huge declared size is refused before any byte is fetched', async () => {
    hub.hooks.declaredSize = { file: SHARD, size: 10 ** 15 };
    const r = await logprob('tiny/qwen');
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/declared size 1000000000000000 bytes is above the 64 GiB limit \(CONCORD_HUB_MAX_FILE_GB\); refused/);
    expect(hub.count('cdn')).toBe(0);
    expect(noWeights('tiny/qwen')).toBe(true);
    // within the limit but beyond the free disk space: refused too
    hub.hooks.declaredSize = { file: SHARD, size: 2 ** 41 };
    const s = await logprob('tiny/qwen', { CONCORD_HUB_MAX_FILE_GB: '4096' });
    expect(s.code).toBe(2);
    expect(s.stderr).toMatch(/needs \d+ more bytes but .* has \d+ free; refused/);
    expect(hub.count('cdn')).toBe(0);
  });

  test('a redirect loop stops after 5 hops; a redirect off http(s) is refused', async () => {
    hub.hooks.redirect = { file: 'config.json', to: 'loop' };
    const r = await logprob('tiny/qwen');
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/more than 5 redirects .*; refused/);
    expect(hub.log.filter((l) => l.url.includes('config.json')).length).toBeLessThanOrEqual(6);
    hub.hooks.redirect = { file: 'config.json', to: 'ftp' };
    const f = await logprob('tiny/qwen');
    expect(f.code).toBe(2);
    expect(f.stderr).toMatch(/redirects to a ftp: URL; refused/);
  });

  test('file names from the server that would leave the snapshot are refused', async () => {
    const evil = new Map(files1);
    evil.set('model.safetensors.index.json', Buffer.from(JSON.stringify({ weight_map: { 'model.embed_tokens.weight': '../../../../evil.safetensors' } })));
    hub.add('tiny/evil', C1, evil);
    const r = await logprob('tiny/evil');
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/file name "..\/..\/..\/..\/evil.safetensors" would leave the model folder/);
    expect(existsSync(join(cache, '..', 'evil.safetensors'))).toBe(false);
    await expect(ensureHubModel('tiny/qwen', { ggufFile: '../x.gguf', env: env() })).rejects.toThrow(/would leave the model folder/);
  });

  test('a single-file checkpoint: model.safetensors', async () => {
    const gpt2 = makeTinyModel('hf-gpt2', join(root, 'gpt2'), { seed: 5 });
    hub.add('tiny/gpt2', CS, read(gpt2));
    const want = await cli.run(['logprob', '--model', gpt2, ...ARGS], env(), { fake: false });
    const r = await logprob('tiny/gpt2');
    expect(r.code, r.stderr).toBe(0);
    expect(sumOf(r)).toBe(sumOf(want));
    expect(readdirSync(join(repoDir('tiny/gpt2'), 'snapshots', CS))).toContain('model.safetensors');
  });

  test('one GGUF file asked for is fetched alone', async () => {
    const gguf = Buffer.concat([Buffer.from('GGUF'), Buffer.alloc(60, 7)]);
    hub.add('tiny/gguf', C1, new Map([['a.Q4_0.gguf', gguf], ['b.Q8_0.gguf', Buffer.from('GGUFxx')], ['README.md', Buffer.from('x')]]));
    const m = await ensureHubModel('tiny/gguf', { ggufFile: 'a.Q4_0.gguf', env: env(), log: () => {} });
    expect(m.path).toBe(join(repoDir('tiny/gguf'), 'snapshots', C1, 'a.Q4_0.gguf'));
    expect(readFileSync(m.path)).toEqual(gguf);
    expect(lstatSync(m.path).isSymbolicLink()).toBe(true);
    expect(readdirSync(join(repoDir('tiny/gguf'), 'snapshots', C1))).toEqual(['a.Q4_0.gguf']);
    await expect(ensureHubModel('tiny/gguf', { env: env() })).rejects.toThrow(/pick one with --gguf-file \(a\.Q4_0\.gguf, b\.Q8_0\.gguf\)/);
    await expect(ensureHubModel('tiny/gguf', { ggufFile: 'c.gguf', env: env() })).rejects.toThrow(/has no file "c.gguf"; its GGUF files: a\.Q4_0\.gguf, b\.Q8_0\.gguf/);
    // the same through `concord download`: the second GGUF now, then nothing new; offline, no request
    const dl = (e: Record<string, string> = {}) => cli.run(['download', 'tiny/gguf', '--gguf-file', 'b.Q8_0.gguf', '--json'], env(e), { fake: false });
    const first = await dl();
    expect(first.code, first.stderr).toBe(0);
    expect(JSON.parse(first.stdout)).toEqual({ path: join(repoDir('tiny/gguf'), 'snapshots', C1, 'b.Q8_0.gguf'), commit: C1, revision: 'main', downloaded: ['b.Q8_0.gguf'], requests: 3 }); // the API, a HEAD, the CDN's GET
    const again = JSON.parse((await dl()).stdout);
    expect([again.downloaded, again.requests]).toEqual([[], 1]);
    hub.log = [];
    const off = await dl({ HF_HUB_OFFLINE: '1' });
    expect(off.code, off.stderr).toBe(0);
    expect(JSON.parse(off.stdout).requests).toBe(0);
    expect(hub.count()).toBe(0);
  });

  test('an unreachable endpoint: a cached snapshot is used with a note; none cached is a clear error', async () => {
    const srv = createServer();
    await new Promise<void>((res) => srv.listen(0, '127.0.0.1', res));
    const port = (srv.address() as AddressInfo).port;
    await new Promise((res) => srv.close(res));
    const dead = `http://127.0.0.1:${port}`;
    const r = await logprob('tiny/qwen', { HF_ENDPOINT: dead });
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/tiny\/qwen: cannot reach http:\/\/127\.0\.0\.1:\d+ \(ECONNREFUSED\); set HF_HUB_OFFLINE=1/);
    expect((await logprob('tiny/qwen')).code).toBe(0);
    const s = await logprob('tiny/qwen', { HF_ENDPOINT: dead });
    expect(s.code, s.stderr).toBe(0);
    expect(s.stderr).toMatch(/using the cached tiny\/qwen@main \(commit 111111111111\)/);
  });
});

describe('issue 26 item 2: nothing read outside the cache or the model folder', () => {
  test('--revision ../../../../etc/passwd is refused as a name, nothing read or printed', async () => {
    // a cache that holds the model, so the old code went on to join the revision onto refs/
    expect((await logprob('tiny/qwen')).code).toBe(0);
    for (const e of [{ HF_HUB_OFFLINE: '1' }, {}] as Record<string, string>[]) {
      const r = await logprob('tiny/qwen', e, ['--revision', '../../../../etc/passwd']);
      expect(r.code).toBe(2);
      expect(r.stderr).toMatch(/--revision "..\/..\/..\/..\/etc\/passwd" is not a branch, tag or commit name/);
      expect(r.stderr).not.toMatch(/root:/);
    }
    // a file the traversal reaches from the cache's refs/ folder: <root>/secret (refs/.. = repo, ../ = cache, ../ = root)
    writeFileSync(join(root, 'secret'), 'TOPSECRET-LINE\n');
    const r = await logprob('tiny/qwen', { HF_HUB_OFFLINE: '1' }, ['--revision', '../../../secret']);
    expect(r.code).toBe(2);
    expect(r.stderr).not.toMatch(/TOPSECRET/);
    process.env.HF_HUB_CACHE = cache;
    try {
      expect(() => resolveModel('tiny/qwen', { revision: '../../../secret' })).toThrow(/is not a branch, tag or commit name/);
    } finally {
      delete process.env.HF_HUB_CACHE;
    }
    for (const bad of ['..', 'a/../b', '/main', 'main/', '.hidden', 'x.lock', 'a\\b', 'a b', 'a@{1}', '']) expect(isRevisionName(bad), bad).toBe(false);
    for (const ok of ['main', 'v1.0', 'refs/pr/3', 'release-2024_01', C1]) expect(isRevisionName(ok), ok).toBe(true);
  });

  test('a refs/main holding a path does not load a model from outside the cache', async () => {
    const c = join(root, 'refs-cache', 'hub');
    const repo = join(c, 'models--tiny--outside');
    mkdirSync(join(repo, 'refs'), { recursive: true });
    mkdirSync(join(repo, 'snapshots'), { recursive: true });
    makeTinyModel('hf-qwen2', join(root, 'refs-cache', 'somewhere'), { seed: 3 });
    writeFileSync(join(repo, 'refs', 'main'), '../../../somewhere');
    expect(() => resolveCachedModel('tiny/outside', { env: { HF_HUB_CACHE: c } })).toThrow(/refs\/main does not hold a commit hash \(40 hex digits\)/);
    const r = await logprob('tiny/outside', { HF_HUB_CACHE: c, HF_HUB_OFFLINE: '1' });
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/does not hold a commit hash/);
  });

  test('a weight_map entry with ../ or an absolute path is not loaded from outside the model folder', async () => {
    const outer = join(root, 'wm');
    const dir = makeTinyModel('hf-qwen2', join(outer, 'model'), { seed: 3 });
    // the second shard moves out of the folder; the index names it there
    const index = JSON.parse(readFileSync(join(dir, 'model.safetensors.index.json'), 'utf8')) as { weight_map: Record<string, string> };
    writeFileSync(join(outer, 'outside.safetensors'), readFileSync(join(dir, 'model-00002-of-00002.safetensors')));
    rmSync(join(dir, 'model-00002-of-00002.safetensors'));
    for (const shard of ['../outside.safetensors', join(outer, 'outside.safetensors')]) {
      const map = Object.fromEntries(Object.entries(index.weight_map).map(([n, f]) => [n, f === 'model-00002-of-00002.safetensors' ? shard : f]));
      writeFileSync(join(dir, 'model.safetensors.index.json'), JSON.stringify({ weight_map: map }));
      expect(() => openSafetensorsIndex(join(dir, 'model.safetensors.index.json'))).toThrow(/names shard .* outside the model folder; refused/);
      await expect(loadWeights(dir)).rejects.toThrow(/outside the model folder; refused/);
    }
    expect(isRepoFileName('model-00001-of-00002.safetensors')).toBe(true);
    expect(isRepoFileName('sub/dir/x.safetensors')).toBe(true);
    for (const bad of ['../x', '/abs', 'a/../../x', 'C:x', 'a\\..\\x', '', 'a//b', './x']) expect(isRepoFileName(bad), bad).toBe(false);
  });
});

describe('--gguf-file: one GGUF file of a Hub repo, on every command that takes a model', () => {
  const CQ = 'b'.repeat(40);
  let q8: string, q4: string, data: string;
  beforeAll(async () => {
    // two GGUF files the project's writer makes of the tiny Qwen2 folder, served alone in a repo
    const m = await loadWeights(plain);
    q8 = join(root, 'tiny.Q8_0.gguf');
    q4 = join(root, 'tiny.Q4_0.gguf');
    for (const [f, t] of [[q8, 'q8_0'], [q4, 'q4_0']] as const) { const e = ggufExport(m, t); writeGguf(f, e.kvs, e.tensors); }
    hub.add('org/tiny', CQ, new Map([['tiny.Q8_0.gguf', readFileSync(q8)], ['tiny.Q4_0.gguf', readFileSync(q4)], ['README.md', Buffer.from('# x\n')]]));
    data = join(root, 'gguf-pairs.jsonl');
    writeFileSync(data, ['{"instruction":"Once upon a time","output":"there was a girl"}', '{"instruction":"Lily liked","output":"to play in the park"}'].join('\n') + '\n');
  });
  const score = (out: string, model: string[], e: Record<string, string> = {}) =>
    cli.run(['score', data, '-o', join(root, out), ...model, '--device', 'cpu-twin', '--cosine', 'off', '--quiet'], env(e), { fake: false });
  const scores = (f: string) => readFileSync(join(root, f), 'utf8').trim().split('\n').map((l) => JSON.parse(l).scores);

  test('score on an empty cache downloads that one file and scores as the local file does; a second run downloads nothing', async () => {
    const a = await score('gguf-hub.jsonl', ['--model', 'org/tiny', '--gguf-file', 'tiny.Q8_0.gguf']);
    expect(a.code, a.stderr).toBe(0);
    expect(a.stderr).toMatch(/concord: downloading org\/tiny@main \(commit bbbbbbbbbbbb\)/);
    const snap = join(repoDir('org/tiny'), 'snapshots', CQ);
    expect(readdirSync(snap)).toEqual(['tiny.Q8_0.gguf']);
    expect(hub.log.filter((l) => l.url.includes('Q4_0') || l.url.includes('README')).length).toBe(0);
    const local = await score('gguf-local.jsonl', ['--model', q8]);
    expect(local.code, local.stderr).toBe(0);
    expect(scores('gguf-hub.jsonl')).toEqual(scores('gguf-local.jsonl'));
    expect(scores('gguf-hub.jsonl').map((s) => typeof s.fwd_logp)).toEqual(['number', 'number']);

    hub.log = [];
    const b = await score('gguf-hub2.jsonl', ['--model', 'org/tiny', '--gguf-file', 'tiny.Q8_0.gguf']);
    expect(b.code, b.stderr).toBe(0);
    expect(b.stderr).not.toMatch(/downloading/);
    expect(hub.log.map((l) => `${l.method} ${l.url.split('?')[0]}`)).toEqual(['GET /api/models/org/tiny/revision/main']);
    expect(scores('gguf-hub2.jsonl')).toEqual(scores('gguf-local.jsonl'));
    hub.log = [];
    const off = await score('gguf-hub3.jsonl', ['--model', 'org/tiny', '--gguf-file', 'tiny.Q8_0.gguf'], { HF_HUB_OFFLINE: '1' });
    expect(off.code, off.stderr).toBe(0);
    expect(hub.count()).toBe(0);
  });

  test('Org/Name[@rev]:FILE.gguf is the same spec, for --model, --reverse-model and logprob', async () => {
    const want = await cli.run(['logprob', '--model', q4, ...ARGS], env(), { fake: false });
    expect(want.code, want.stderr).toBe(0);
    for (const spec of ['org/tiny:tiny.Q4_0.gguf', `org/tiny@main:tiny.Q4_0.gguf`, `org/tiny@${CQ}:tiny.Q4_0.gguf`]) {
      const r = await logprob(spec);
      expect(r.code, r.stderr).toBe(0);
      expect(sumOf(r)).toBe(sumOf(want));
      expect(JSON.parse(r.stdout).model).toMatch(/org\/tiny@.*:tiny\.Q4_0\.gguf/);
    }
    const r = await cli.run(['logprob', '--model', 'org/tiny', '--gguf-file', 'tiny.Q4_0.gguf', ...ARGS], env(), { fake: false });
    expect(sumOf(r)).toBe(sumOf(want));
    // a reverse model by spec: the Q4_0 file scores y → x beside the Q8_0 forward model
    const a = await score('gguf-rev.jsonl', ['--model', 'org/tiny', '--gguf-file', 'tiny.Q8_0.gguf', '--reverse-model', 'org/tiny:tiny.Q4_0.gguf']);
    expect(a.code, a.stderr).toBe(0);
    const b = await score('gguf-rev-local.jsonl', ['--model', q8, '--reverse-model', q4]);
    expect(b.code, b.stderr).toBe(0);
    expect(scores('gguf-rev.jsonl')).toEqual(scores('gguf-rev-local.jsonl'));
    expect(readdirSync(join(repoDir('org/tiny'), 'snapshots', CQ)).sort()).toEqual(['tiny.Q4_0.gguf', 'tiny.Q8_0.gguf']);
  });

  test('a missing file, a local model, no --model, a non-GGUF name: one line each, exit 2', async () => {
    const one = (r: Run, re: RegExp) => {
      expect(r.code, r.stderr).toBe(2);
      expect(r.stderr.trim().split('\n')).toHaveLength(1);
      expect(r.stderr).toMatch(re);
      expect(noStack(r.stderr)).toBe(true);
    };
    one(await score('x.jsonl', ['--model', 'org/tiny', '--gguf-file', 'nope.gguf']), /org\/tiny has no file "nope\.gguf"; its GGUF files: tiny\.Q8_0\.gguf, tiny\.Q4_0\.gguf/);
    one(await score('x.jsonl', ['--model', plain, '--gguf-file', 'tiny.Q8_0.gguf']), /--gguf-file picks a file of a Hub model id, and '.*plain' is a local model; give a local \.gguf file itself as --model/);
    one(await score('x.jsonl', ['--model', q8, '--gguf-file', 'tiny.Q8_0.gguf']), /is a local model/);
    one(await score('x.jsonl', ['--gguf-file', 'tiny.Q8_0.gguf']), /--gguf-file needs --model Org\/Name/);
    one(await score('x.jsonl', ['--model', 'org/tiny:tiny.Q8_0.gguf', '--gguf-file', 'tiny.Q4_0.gguf']), /names the file 'tiny\.Q8_0\.gguf' but --gguf-file says 'tiny\.Q4_0\.gguf'/);
    one(await logprob('org/tiny:README.md'), /after ':' give one \.gguf file of the repo/);
    one(await logprob('org/tiny:../x.gguf'), /would leave the model folder/);
    one(await cli.run(['logprob', '--model', 'org/tiny', '--gguf-file', '', ...ARGS], env(), { fake: false }), /--gguf-file needs a file name/);
    one(await logprob('org/tiny:nope.gguf', { HF_HUB_OFFLINE: '1' }), /HF_HUB_OFFLINE=1/);
    expect(existsSync(join(root, 'x.jsonl'))).toBe(false);
  });
});
