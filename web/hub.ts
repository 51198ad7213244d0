// The page's models by Hub id: src/hub/memory.ts (the same API calls, file choice, size and
// SHA-256 checks as the CLI's download) with the browser's Cache API as its store — keyed by each
// file's /resolve URL at the commit, so a reload asks the API where the revision points and
// downloads nothing it already holds.

import type { HubHints } from '../src/hub/http.js';
import { fetchHubModel, type BlobStore, type MemoryHubModel, type MemoryProgress } from '../src/hub/memory.js';
import { checkEndpoint, splitModelSpec } from '../src/hub/names.js';
import type { HubSettings } from '../src/hub/settings.js';

export const DEFAULT_ENDPOINT = 'https://huggingface.co';
/** The Cache API bucket the downloads go to. */
export const HUB_CACHE = 'concord-hub-v1';

/** The advice of the CLI's messages, said the page's way (it has no environment variables and sends no token). */
export const PAGE_HINTS: HubHints = {
  noToken: 'the page sends no token (download it with the CLI and HF_TOKEN, then choose the folder)',
  private404: 'to a page without a token',
  network: 'check the endpoint (and that it answers this page: CORS)',
};

/** The Cache API as a BlobStore; entries whose length is not the stored one are ignored. */
export async function cacheStore(): Promise<BlobStore | undefined> {
  if (typeof caches === 'undefined') return undefined; // not a secure context: no cache, every load downloads
  const cache = await caches.open(HUB_CACHE);
  return {
    async get(key) {
      const r = await cache.match(key);
      if (!r) return null;
      const bytes = new Uint8Array(await r.arrayBuffer());
      return String(bytes.byteLength) === r.headers.get('x-concord-size') ? bytes : null;
    },
    async put(key, bytes) {
      await cache.put(key, new Response(bytes as Uint8Array<ArrayBuffer>, { headers: { 'Content-Type': 'application/octet-stream', 'X-Concord-Size': String(bytes.byteLength) } }));
    },
  };
}

/** The page's Hub settings: the endpoint field (as HF_ENDPOINT), no token, the CLI's time limits. */
export function pageHubSettings(endpoint: string): HubSettings {
  return {
    endpoint: checkEndpoint(endpoint || DEFAULT_ENDPOINT, 'endpoint'),
    token: undefined, tokenFrom: undefined, offline: false,
    metaTimeoutMs: 30_000, stallTimeoutMs: 30_000, maxFileBytes: 64 * 2 ** 30,
  };
}

/** 'Org/Name@rev' from the page's field into id and revision (validated by fetchHubModel). */
export const parseHubSpec = (spec: string): { id: string; revision?: string } => splitModelSpec(spec.trim());

export async function hubModel(spec: string, endpoint: string, onProgress: (p: MemoryProgress) => void): Promise<MemoryHubModel> {
  const { id, revision } = parseHubSpec(spec);
  return fetchHubModel(id, {
    revision, settings: pageHubSettings(endpoint), store: await cacheStore(), hints: PAGE_HINTS, onProgress,
    ggufAdvice: 'the page reads safetensors weights only (the CLI loads GGUF with --gguf-file)',
  });
}
