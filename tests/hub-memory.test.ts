// Hugging Face models from bytes (what the browser demo loads): the loader, the safetensors reader
// and the tokenizer read a folder given as bytes in memory (src/formats/files.ts memoryFiles)
// through the same code as a folder on disk, for every family the CLI loads; and a model by Hub id
// fetched into memory (src/hub/memory.ts, the page's Hub client) against the local Hub of
// tests/helpers/hub-server.ts: the files concord reads, sizes and SHA-256 checked, a store that
// makes the second load download nothing, one-line errors. The page itself is driven in
// tests/browser-hub.test.ts.

import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { afterAll, beforeAll, beforeEach, describe, expect, test } from 'vitest';
import { memoryFiles } from '../src/formats/files.js';
import { CLI_HINTS } from '../src/hub/http.js';
import { fetchHubModel, type BlobStore } from '../src/hub/memory.js';
import type { HubSettings } from '../src/hub/settings.js';
import { loadHf, loadHfFiles } from '../src/models/hf.js';
import { hfTokenizerFromFiles, loadHfTokenizer } from '../src/tokenizer/hf.js';
import { FakeHub } from './helpers/hub-server.js';
import { scratchDir } from './helpers/scratch.js';
import { buildTinyModel, type TinyKind } from './helpers/tiny-models.js';

const ROOT = resolve(import.meta.dirname, '..');
const FIX = join(ROOT, 'tests', 'fixtures', 'hf');
const FAMILIES = readdirSync(FIX).filter((f) => statSync(join(FIX, f)).isDirectory()).sort();
const TINY_HF: TinyKind[] = ['hf-llama', 'hf-mistral', 'hf-qwen2', 'hf-gpt2'];

const folderBytes = (dir: string): Map<string, Uint8Array> => new Map(readdirSync(dir).filter((n) => statSync(join(dir, n)).isFile()).map((n) => [n, new Uint8Array(readFileSync(join(dir, n)))]));

const scratch = scratchDir('concord-hub-memory-');

/** The folder loaded from disk and from its bytes: the same config, special ids, tensors (bit for bit) and encodings. */
function sameFromBytes(dir: string): void {
  const disk = loadHf(dir, loadHfTokenizer(dir));
  const files = memoryFiles(dir, folderBytes(dir));
  const tok = hfTokenizerFromFiles(files);
  const mem = loadHfFiles(files, tok);
  expect(mem.config).toEqual(disk.config);
  expect([...mem.tensors.keys()].sort()).toEqual([...disk.tensors.keys()].sort());
  for (const [name, t] of disk.tensors) expect(Buffer.from(mem.tensors.get(name)!.buffer).equals(Buffer.from(t.buffer)), name).toBe(true);
  const text = 'Once upon a time, a little girl named Lily saw a big dog.';
  expect(tok.encode(text)).toEqual(loadHfTokenizer(dir).encode(text));
  // Lazy (the WebGPU path streams refs): chunks from memory equal the eager tensors.
  const lazy = loadHfFiles(files, tok, { lazy: true });
  for (const [name, r] of lazy.refs!) expect(Buffer.from(r.read().buffer).equals(Buffer.from(disk.tensors.get(name)!.buffer)), name).toBe(true);
}

describe('a Hugging Face folder from bytes loads as from disk', () => {
  test.each(FAMILIES)('fixture family %s', (family) => sameFromBytes(join(FIX, family)));
  test.each(TINY_HF)('tiny %s (sharded qwen2, bf16 mistral, GPT-2 Conv1D)', (kind) => sameFromBytes(buildTinyModel(kind, join(scratch, kind), { seed: 5 }).path));
  test('errors name the file within the folder, as on disk', () => {
    const dir = buildTinyModel('hf-qwen2', join(scratch, 'broken'), { seed: 6 }).path;
    const bytes = folderBytes(dir);
    bytes.delete('model-00002-of-00002.safetensors');
    expect(() => loadHfFiles(memoryFiles('Org/Name@main', bytes))).toThrow(/^Org\/Name@main\/model\.safetensors\.index\.json: shard 'model-00002-of-00002\.safetensors' \(holding '.*'\) not found/);
    bytes.set('model-00002-of-00002.safetensors', new Uint8Array(4));
    expect(() => loadHfFiles(memoryFiles('Org/Name@main', bytes))).toThrow(/Org\/Name@main\/model-00002-of-00002\.safetensors: not a safetensors file: 4 bytes/);
    expect(() => hfTokenizerFromFiles(memoryFiles('Org/Name@main', new Map()))).toThrow(/^Org\/Name@main: no tokenizer\.json/);
  });
});

// ---- by Hub id, into memory -----------------------------------------------------------------------

const C1 = '1'.repeat(40), C2 = '2'.repeat(40), CG = 'a'.repeat(40), CN = 'b'.repeat(40);
const hub = new FakeHub();
let qwenDir: string, files1: Map<string, Buffer>, files2: Map<string, Buffer>;
const buffers = (dir: string) => new Map([...folderBytes(dir)].map(([k, v]) => [k, Buffer.from(v)]));

const settings = (): HubSettings => ({ endpoint: hub.url, token: undefined, tokenFrom: undefined, offline: false, metaTimeoutMs: 5000, stallTimeoutMs: 2000, maxFileBytes: 2 ** 30 });
const mapStore = (): BlobStore & { keys: Map<string, Uint8Array> } => {
  const keys = new Map<string, Uint8Array>();
  return { keys, get: async (k) => keys.get(k) ?? null, put: async (k, b) => void keys.set(k, b) };
};
const fetches = (what: 'resolve' | 'cdn' | 'api') => hub.log.filter((l) => (what === 'cdn' ? l.server === 'cdn' : l.server === 'hub' && (what === 'api' ? l.url.startsWith('/api/') : l.url.includes('/resolve/')))).length;

beforeAll(async () => {
  qwenDir = buildTinyModel('hf-qwen2', join(scratch, 'qwen'), { seed: 3 }).path;
  files1 = buffers(qwenDir);
  files1.set('README.md', Buffer.from('# not needed\n'));
  files2 = buffers(buildTinyModel('hf-qwen2', join(scratch, 'qwen2'), { seed: 4 }).path);
  await hub.start();
  hub.add('tiny/qwen', C1, files1);
  hub.add('tiny/gated', CG, files1, { gated: true });
  hub.add('tiny/nothing', CN, new Map([['config.json', files1.get('config.json')!], ['pytorch_model.bin', Buffer.alloc(8)]]));
});
afterAll(() => hub.stop());
beforeEach(() => {
  hub.log = [];
  hub.hooks = {};
});

describe('a model by Hub id into memory (the page\'s client)', () => {
  test('first load fetches what concord reads, checked; the second downloads nothing; the bytes load as the folder does', async () => {
    const store = mapStore();
    const a = await fetchHubModel('tiny/qwen', { settings: settings(), store });
    expect(a.commit).toBe(C1);
    expect(a.label).toBe('tiny/qwen@main=111111111111');
    const want = [...files1.keys()].filter((f) => f !== 'README.md').sort();
    expect([...a.files.keys()].sort()).toEqual(want);
    for (const f of want) expect(Buffer.from(a.files.get(f)!).equals(files1.get(f)!), f).toBe(true);
    expect(a.downloaded.sort()).toEqual(want);
    // the API twice (modelInfo, pathsInfo), each file once through /resolve, the LFS shards from the CDN
    expect(fetches('api')).toBe(2);
    expect(fetches('resolve')).toBe(want.length);
    expect(fetches('cdn')).toBe(want.filter((f) => f.endsWith('.safetensors')).length);
    const mem = loadHfFiles(memoryFiles(a.label, a.files), hfTokenizerFromFiles(memoryFiles(a.label, a.files)));
    const disk = loadHf(qwenDir);
    for (const [name, t] of disk.tensors) expect(Buffer.from(mem.tensors.get(name)!.buffer).equals(Buffer.from(t.buffer)), name).toBe(true);
    expect(mem.config.name).toBe('Qwen2ForCausalLM (tiny/qwen@main=111111111111)');

    hub.log = [];
    const b = await fetchHubModel('tiny/qwen', { settings: settings(), store });
    expect(b.downloaded).toEqual([]);
    expect(hub.log.map((l) => `${l.method} ${l.url.split('?')[0]}`)).toEqual(['GET /api/models/tiny/qwen/revision/main']);
    expect([...b.files.keys()].sort()).toEqual(want);

    // The branch moves: the new commit's files are fetched, keyed by commit.
    hub.add('tiny/qwen', C2, files2);
    hub.log = [];
    const c = await fetchHubModel('tiny/qwen', { settings: settings(), store });
    expect(c.commit).toBe(C2);
    expect(c.downloaded.length).toBe(files2.size);
    hub.add('tiny/qwen', C1, files1); // back, for the other tests
  });

  test('one-line errors: a missing repo, a missing revision, a gated repo, no safetensors weights', async () => {
    const hints = { ...CLI_HINTS, noToken: 'the page sends no token' };
    const err = async (id: string, revision?: string) => {
      const e = await fetchHubModel(id, { settings: settings(), revision, hints }).then(() => null, (x: Error) => x);
      expect(e).not.toBeNull();
      expect(e!.message).not.toContain('\n');
      return e!.message;
    };
    expect(await err('tiny/absent')).toMatch(/^tiny\/absent@main: 404 — no model tiny\/absent on http:\/\/127\.0\.0\.1:\d+/);
    expect(await err('tiny/qwen', 'nope')).toMatch(/^tiny\/qwen@nope: 404 — no such revision/);
    expect(await err('tiny/gated')).toMatch(/^tiny\/gated: 401 — tiny\/gated is gated or private: the page sends no token$/);
    expect(await err('tiny/nothing')).toMatch(/^tiny\/nothing has neither model\.safetensors nor model\.safetensors\.index\.json \(pytorch \.bin weights are not supported\)$/);
    expect(await err('../x')).toMatch(/is not a Hub model id/);
  });

  test('a wrong SHA-256 or a cut body stores nothing; the next load fetches the file whole', async () => {
    const store = mapStore();
    const shard = 'model-00001-of-00002.safetensors';
    hub.hooks.wrongBytes = { file: shard, bytes: Buffer.alloc(files1.get(shard)!.length, 7) };
    await expect(fetchHubModel('tiny/qwen', { settings: settings(), store })).rejects.toThrow(/tiny\/qwen\/model-00001-of-00002\.safetensors: the downloaded file has SHA-256 [0-9a-f]{64}, not [0-9a-f]{64}; discarded/);
    expect([...store.keys.keys()].some((k) => k.endsWith(shard))).toBe(false);
    hub.hooks = { cut: { file: shard, after: 100, times: 1 } };
    await expect(fetchHubModel('tiny/qwen', { settings: settings(), store })).rejects.toThrow(/tiny\/qwen\/model-00001-of-00002\.safetensors: download stopped at \d+ of \d+ bytes/);
    expect([...store.keys.keys()].some((k) => k.endsWith(shard))).toBe(false);
    const ok = await fetchHubModel('tiny/qwen', { settings: settings(), store });
    expect(Buffer.from(ok.files.get(shard)!).equals(files1.get(shard)!)).toBe(true);
    hub.hooks = { declaredSize: { file: shard, size: 10 } };
    await expect(fetchHubModel('tiny/qwen', { settings: settings() })).rejects.toThrow(/sent more than the 10 bytes the API declared; refused/);
  });
});
