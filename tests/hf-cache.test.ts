// The local Hugging Face cache (src/models/hf-cache.ts): a model id resolves to its snapshot the way
// transformers / huggingface_hub do offline. The cache is laid out in a temporary folder exactly as
// the hub client writes it: blobs/<sha256> holding the files, snapshots/<commit>/<name> symlinks
// into ../../blobs, refs/<branch or tag> holding a commit hash.

import { createHash } from 'node:crypto';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, symlinkSync, writeFileSync, lstatSync, renameSync } from 'node:fs';
import { homedir, tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, test } from 'vitest';
import { HfCacheError, hfHubCache, looksLikeModelId, repoFolderName, resolveCachedModel } from '../src/models/hf-cache.js';
import { loadWeights, resolveModel } from '../src/models/load.js';
import { makeTinyModel } from './helpers/tiny-models.js';

let root: string;
const COMMIT_A = 'a'.repeat(8) + '0123456789abcdef0123456789abcdef';
const COMMIT_B = 'b7e1c0de' + '00112233445566778899aabbccddeeff';
const saved = { ...process.env };

/** Move a model folder's files into a hub-cache layout: blobs + a snapshot of symlinks. */
function addSnapshot(cache: string, id: string, commit: string, srcDir: string): void {
  const repo = join(cache, repoFolderName(id));
  const snap = join(repo, 'snapshots', commit);
  mkdirSync(join(repo, 'blobs'), { recursive: true });
  mkdirSync(snap, { recursive: true });
  for (const name of readdirSync(srcDir)) {
    const data = readFileSync(join(srcDir, name));
    const sha = createHash('sha256').update(data).digest('hex');
    const blob = join(repo, 'blobs', sha);
    renameSync(join(srcDir, name), blob);
    symlinkSync(join('..', '..', 'blobs', sha), join(snap, name));
  }
}

function setRef(cache: string, id: string, ref: string, commit: string): void {
  const p = join(cache, repoFolderName(id), 'refs', ...ref.split('/'));
  mkdirSync(join(p, '..'), { recursive: true });
  writeFileSync(p, commit); // the hub client writes the bare hash, no newline
}

beforeAll(() => {
  // this file tests the cache's read side: no Hub requests (tests/hub.test.ts covers downloads)
  process.env.HF_HUB_OFFLINE = '1';
  root = mkdtempSync(join(tmpdir(), 'concord-hfcache-'));
  const cache = join(root, 'hub');
  // main → commit A (seed 1), tag v1 → commit B (seed 2): two different tiny Qwen2 checkpoints.
  addSnapshot(cache, 'TinyOrg/Tiny-Qwen', COMMIT_A, makeTinyModel('hf-qwen2', join(root, 'src-a'), { seed: 1 }));
  addSnapshot(cache, 'TinyOrg/Tiny-Qwen', COMMIT_B, makeTinyModel('hf-qwen2', join(root, 'src-b'), { seed: 2 }));
  setRef(cache, 'TinyOrg/Tiny-Qwen', 'main', COMMIT_A);
  setRef(cache, 'TinyOrg/Tiny-Qwen', 'v1', COMMIT_B);
  setRef(cache, 'TinyOrg/Tiny-Qwen', 'refs/pr/3', COMMIT_B);
  // reference copies, as plain folders
  makeTinyModel('hf-qwen2', join(root, 'plain-a'), { seed: 1 });
  makeTinyModel('hf-qwen2', join(root, 'plain-b'), { seed: 2 });
});
afterAll(() => {
  rmSync(root, { recursive: true, force: true });
  if (saved.HF_HUB_OFFLINE === undefined) delete process.env.HF_HUB_OFFLINE;
  else process.env.HF_HUB_OFFLINE = saved.HF_HUB_OFFLINE;
});
afterEach(() => {
  for (const k of ['HF_HUB_CACHE', 'HUGGINGFACE_HUB_CACHE', 'HF_HOME', 'XDG_CACHE_HOME']) {
    if (saved[k] === undefined) delete process.env[k];
    else process.env[k] = saved[k];
  }
});

describe('cache folder', () => {
  test('HF_HUB_CACHE, else HUGGINGFACE_HUB_CACHE, else HF_HOME/hub, else XDG_CACHE_HOME or ~/.cache /huggingface/hub', () => {
    expect(hfHubCache({ HF_HUB_CACHE: '/c', HF_HOME: '/h' })).toEqual({ dir: '/c', from: 'HF_HUB_CACHE' });
    expect(hfHubCache({ HUGGINGFACE_HUB_CACHE: '/old', HF_HOME: '/h' })).toEqual({ dir: '/old', from: 'HUGGINGFACE_HUB_CACHE' });
    expect(hfHubCache({ HF_HOME: '/h' })).toEqual({ dir: '/h/hub', from: 'HF_HOME/hub' });
    expect(hfHubCache({ HF_HOME: '~/hf' }).dir).toBe(join(homedir(), 'hf', 'hub'));
    expect(hfHubCache({ XDG_CACHE_HOME: '/x' }).dir).toBe('/x/huggingface/hub');
    expect(hfHubCache({})).toEqual({ dir: join(homedir(), '.cache', 'huggingface', 'hub'), from: '~/.cache/huggingface/hub' });
  });

  test('ids and folder names', () => {
    expect(repoFolderName('Qwen/Qwen3-0.6B')).toBe('models--Qwen--Qwen3-0.6B');
    expect(repoFolderName('gpt2')).toBe('models--gpt2');
    for (const id of ['Qwen/Qwen3-0.6B', 'gpt2', 'meta-llama/Llama-3.2-1B-Instruct', 'HuggingFaceTB/SmolLM2-135M']) expect(looksLikeModelId(id)).toBe(true);
    for (const p of ['./models/x', '/abs/path', 'a/b/c', '../up', 'model.bin', '~/m', 'a/../b']) expect(looksLikeModelId(p)).toBe(false);
  });
});

describe('resolving an id', () => {
  const cache = () => join(root, 'hub');
  const env = () => ({ HF_HUB_CACHE: cache() });

  test('refs/main by default; a tag; a PR ref; a full commit; a unique short commit prefix', () => {
    const snap = (c: string) => join(cache(), 'models--TinyOrg--Tiny-Qwen', 'snapshots', c);
    expect(resolveCachedModel('TinyOrg/Tiny-Qwen', { env: env() })).toEqual({ path: snap(COMMIT_A), commit: COMMIT_A, revision: 'main', cache: cache() });
    expect(resolveCachedModel('TinyOrg/Tiny-Qwen', { env: env(), revision: 'v1' }).commit).toBe(COMMIT_B);
    expect(resolveCachedModel('TinyOrg/Tiny-Qwen', { env: env(), revision: 'refs/pr/3' }).commit).toBe(COMMIT_B);
    expect(resolveCachedModel('TinyOrg/Tiny-Qwen', { env: env(), revision: COMMIT_B }).path).toBe(snap(COMMIT_B));
    expect(resolveCachedModel('TinyOrg/Tiny-Qwen', { env: env(), revision: 'b7e1c0d' }).commit).toBe(COMMIT_B);
    // the snapshot's files are symlinks into blobs/, as in the real cache
    expect(lstatSync(join(snap(COMMIT_A), 'config.json')).isSymbolicLink()).toBe(true);
    expect(statSync(join(snap(COMMIT_A), 'config.json')).isFile()).toBe(true);
  });

  test('absent model, revision or snapshot: errors that say where concord looked; nothing is downloaded', () => {
    expect(() => resolveCachedModel('Qwen/Qwen3-0.6B', { env: env() })).toThrow(HfCacheError);
    expect(() => resolveCachedModel('Qwen/Qwen3-0.6B', { env: env() })).toThrow(
      `model 'Qwen/Qwen3-0.6B' is not in the Hugging Face cache ${cache()} (HF_HUB_CACHE; set HF_HUB_CACHE or HF_HOME to look elsewhere): no ${join(cache(), 'models--Qwen--Qwen3-0.6B')}`,
    );
    expect(() => resolveCachedModel('TinyOrg/Tiny-Qwen', { env: env(), revision: 'dev' })).toThrow(
      /revision 'dev': no .*refs\/dev in the Hugging Face cache .*\(refs there: main, refs, v1; snapshots: /,
    );
    expect(() => resolveCachedModel('TinyOrg/Tiny-Qwen', { env: env(), revision: 'c'.repeat(40) })).toThrow(/is commit c{40}, but .*snapshots\/c{40} is missing/);
    expect(() => resolveCachedModel('TinyOrg/Tiny-Qwen', { env: { HF_HOME: join(root, 'nowhere') } })).toThrow(`${join(root, 'nowhere', 'hub')} (HF_HOME/hub;`);
  });
});

describe('loading a cached model by id', () => {
  test('loadWeights("Org/Name") = loading the same files as a plain folder; --revision picks the snapshot', async () => {
    process.env.HF_HUB_CACHE = join(root, 'hub');
    for (const [rev, plain] of [[undefined, 'plain-a'], ['v1', 'plain-b']] as const) {
      const viaId = await loadWeights('TinyOrg/Tiny-Qwen', { revision: rev });
      const direct = await loadWeights(join(root, plain));
      expect(viaId.format).toBe('hf');
      expect(viaId.path).toBe(join(root, 'hub', 'models--TinyOrg--Tiny-Qwen', 'snapshots', rev ? COMMIT_B : COMMIT_A));
      expect({ ...viaId.config, name: '' }).toEqual({ ...direct.config, name: '' });
      expect(viaId.config.name).toBe(`Qwen2ForCausalLM (TinyOrg/Tiny-Qwen@${rev ?? 'main'}=${(rev ? COMMIT_B : COMMIT_A).slice(0, 12)})`);
      expect([...viaId.tensors.keys()]).toEqual([...direct.tensors.keys()]);
      for (const [k, t] of direct.tensors) expect(Buffer.from(viaId.tensors.get(k)!.buffer).equals(Buffer.from(t.buffer))).toBe(true);
      expect(viaId.tokenizer.encode('the cat sat')).toEqual(direct.tokenizer.encode('the cat sat'));
    }
    // The two revisions really are different checkpoints.
    const a = await loadWeights('TinyOrg/Tiny-Qwen'), b = await loadWeights('TinyOrg/Tiny-Qwen', { revision: 'v1' });
    expect(Buffer.from(a.tensors.get('tok_emb')!.buffer).equals(Buffer.from(b.tensors.get('tok_emb')!.buffer))).toBe(false);
  });

  test('a local folder wins over the cache; --revision on a local path is an error; absent id: both places named', () => {
    process.env.HF_HUB_CACHE = join(root, 'hub');
    expect(resolveModel(join(root, 'plain-a')).path).toBe(join(root, 'plain-a'));
    expect(() => resolveModel(join(root, 'plain-a'), { revision: 'main' })).toThrow(/--revision applies to a model id in the Hugging Face cache, not to a local file or folder/);
    expect(() => resolveModel('Qwen/Qwen3-0.6B')).toThrow(/model 'Qwen\/Qwen3-0\.6B' is not in the Hugging Face cache .*; nor is there a file or folder .*Qwen\/Qwen3-0\.6B/);
    // Paths that are not ids keep the old message.
    expect(() => resolveModel('./no/such/dir')).toThrow(/no such file or folder/);
  });
});
