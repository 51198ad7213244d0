// A model by Hub id into memory, for the browser demo (web/hub.ts gives it the Cache API as its
// store); the CLI's counterpart is ./download.ts, which writes the shared disk cache instead.
// The same steps and checks, through the same shared pieces:
//   1. the revision's commit and file list: the model API (./api.ts repoInfo, @huggingface/hub modelInfo);
//   2. which files: ./select.ts chooseFiles (config, tokenizer files, the index and its shards, or
//      model.safetensors), the index's shards by shardsOfIndex;
//   3. each file the store lacks (keyed by its resolve URL at the commit, so a moved branch gets new
//      files and an unchanged one none): its size and LFS SHA-256 from the API (./api.ts filesInfo,
//      @huggingface/hub pathsInfo, asked once and only when something is missing), its bytes from
//      /<id>/resolve/<commit>/<file> through HubHttp (which lets the browser follow the redirect to
//      the CDN), the body bounded by the size, a stall limit, the SHA-256 checked with
//      crypto.subtle; only a whole, checked file is stored.
// No resume: a file cut midway is fetched again whole (the store holds whole files only).
// Browser-safe (no Node imports; runs in Node too, which the tests use).

import { filesInfo, repoInfo, type HubFileInfo } from './api.js';
import { HubHttp, resolveUrl, type HubHints } from './http.js';
import { checkRevision, HubError, hubLabel, isCommit, isRepoId, shown } from './names.js';
import { chooseFiles, INDEX_FILE, shardsOfIndex } from './select.js';
import type { HubSettings } from './settings.js';

/** Whole, checked files by key (the browser: the Cache API). */
export interface BlobStore {
  get(key: string): Promise<Uint8Array | null>;
  put(key: string, bytes: Uint8Array): Promise<void>;
}

export interface MemoryProgress {
  file: string;
  bytesDone: number;
  bytesTotal: number;
}

export interface MemoryHubOptions {
  /** Branch, tag or commit (default 'main'). */
  revision?: string;
  settings: HubSettings;
  /** Where whole files are kept between loads (default: nowhere). */
  store?: BlobStore;
  /** Advice in messages (the page has no environment variables). */
  hints?: HubHints;
  /** Finishes the message for a repo with only GGUF weights. */
  ggufAdvice?: string;
  onProgress?: (p: MemoryProgress) => void;
}

export interface MemoryHubModel {
  id: string;
  revision: string;
  commit: string;
  /** 'Org/Name@main=0123456789ab', as the CLI names a model by id */
  label: string;
  /** The files concord reads, by name in the repo. */
  files: Map<string, Uint8Array>;
  /** HTTP requests sent (each redirect hop counts where the redirect is followed by hand). */
  requests: number;
  /** Files downloaded by this call (the rest came from the store). */
  downloaded: string[];
}

const hex = (b: ArrayBuffer): string => [...new Uint8Array(b)].map((x) => x.toString(16).padStart(2, '0')).join('');

/** One file's bytes from /resolve at the commit, checked against the API's size and SHA-256. */
async function download(http: HubHttp, id: string, commit: string, file: string, meta: HubFileInfo, onProgress?: (p: MemoryProgress) => void): Promise<Uint8Array> {
  const what = `${id}/${file}`;
  if (meta.size > http.s.maxFileBytes) throw new HubError(`${what}: ${meta.size} bytes, above the ${http.s.maxFileBytes / 2 ** 30} GiB limit; refused`);
  const ctl = new AbortController();
  let stall: ReturnType<typeof setTimeout> | undefined;
  const arm = () => { clearTimeout(stall); stall = setTimeout(() => ctl.abort(new Error(`no data for ${http.s.stallTimeoutMs / 1000} s`)), http.s.stallTimeoutMs); };
  arm();
  try {
    const r = await http.send(resolveUrl(http.s.endpoint, id, commit, file), { signal: ctl.signal }, { timeoutMs: http.s.stallTimeoutMs });
    if (r.status >= 400) throw http.statusError(r.status, r.headers.get('x-error-code'), what);
    if (r.status !== 200 || !r.body) throw new HubError(`${what}: HTTP ${r.status} where the file's bytes were expected`);
    const got = r.headers.get('x-repo-commit');
    if (got !== null && got !== commit) throw new HubError(`${what}: the server answered for commit ${shown(got)}, not ${commit}; refused`);
    let out: Uint8Array<ArrayBuffer>;
    try {
      out = new Uint8Array(meta.size);
    } catch {
      await r.body.cancel();
      throw new HubError(`${what}: ${meta.size} bytes do not fit in memory here; refused`);
    }
    let have = 0;
    try {
      for await (const chunk of r.body as unknown as AsyncIterable<Uint8Array>) {
        arm();
        if (have + chunk.byteLength > meta.size) throw new HubError(`${what}: the server sent more than the ${meta.size} bytes the API declared; refused`);
        out.set(chunk, have);
        have += chunk.byteLength;
        onProgress?.({ file: what, bytesDone: have, bytesTotal: meta.size });
      }
    } catch (e) {
      if (e instanceof HubError) throw e;
      throw new HubError(`${what}: download stopped at ${have} of ${meta.size} bytes (${(e as Error).message}); load again to retry`);
    }
    if (have !== meta.size) throw new HubError(`${what}: download stopped at ${have} of ${meta.size} bytes (connection cut); load again to retry`);
    if (meta.sha256) {
      const sha = hex(await crypto.subtle.digest('SHA-256', out));
      if (sha !== meta.sha256) throw new HubError(`${what}: the downloaded file has SHA-256 ${sha}, not ${meta.sha256}; discarded (load again to download it anew)`);
    }
    onProgress?.({ file: what, bytesDone: have, bytesTotal: meta.size });
    return out;
  } finally {
    clearTimeout(stall);
  }
}

/** What concord reads of a Hub model, from the store or downloaded (see the top of this file). */
export async function fetchHubModel(id: string, o: MemoryHubOptions): Promise<MemoryHubModel> {
  if (!isRepoId(id)) throw new HubError(`${shown(id)} is not a Hub model id (Org/Name)`);
  const revision = checkRevision(o.revision ?? 'main', 'revision');
  const http = new HubHttp(o.settings, id, o.hints);
  const { commit, files: listed } = await repoInfo(http, id, revision);
  if (!isCommit(commit)) throw new HubError(`${id}@${revision}: no commit hash; refused`);
  const plan = chooseFiles(listed, id, undefined, o.ggufAdvice);
  const files = new Map<string, Uint8Array>();
  const downloaded: string[] = [];
  let infos: Map<string, HubFileInfo> | null = null;
  const key = (file: string) => resolveUrl(o.settings.endpoint, id, commit, file);
  const get = async (file: string): Promise<Uint8Array> => {
    const kept = await o.store?.get(key(file));
    if (kept) return kept;
    // Sizes and hashes of every file this load may need, in one request.
    infos ??= await filesInfo(http, id, commit, [...plan.side, ...plan.weights, ...(plan.index ? listed.filter((f) => f.endsWith('.safetensors')) : [])]);
    const meta = infos.get(file);
    if (!meta) throw new HubError(`${id}@${revision}: the API lists ${file} but gave no size for it; refused`);
    const bytes = await download(http, id, commit, file, meta, o.onProgress);
    await o.store?.put(key(file), bytes);
    downloaded.push(file);
    return bytes;
  };
  let weights = plan.weights;
  if (plan.index) {
    const index = await get(INDEX_FILE);
    files.set(INDEX_FILE, index);
    weights = shardsOfIndex(new TextDecoder().decode(index), `${id}/${INDEX_FILE}`);
    const missing = weights.filter((f) => !listed.includes(f));
    if (missing.length) throw new HubError(`${id}@${revision}: ${INDEX_FILE} names ${missing.join(', ')}, which the repo does not have`);
  }
  for (const file of [...plan.side, ...weights]) if (!files.has(file)) files.set(file, await get(file));
  return { id, revision, commit, label: hubLabel(id, revision, commit), files, requests: http.requests, downloaded };
}
