// The Hub's HTTP, with the rules a download from an untrusted network needs, in one place:
//  - every request has a time limit (HF_HUB_ETAG_TIMEOUT for metadata, HF_HUB_DOWNLOAD_TIMEOUT as
//    the longest stall while a body streams) and is counted (tests count them);
//  - redirects are followed by hand: at most 5, http(s) only, never from https down to http, and
//    the token (Authorization) goes only to the endpoint's own origin — an LFS file's redirect to a
//    CDN on another host is followed without it (as the Hub's clients do);
//  - the Hub's answer for a file is read from the endpoint's own response (the 302 for LFS files,
//    as huggingface_hub's HEAD does): X-Repo-Commit, X-Linked-Etag (the LFS sha256) or ETag,
//    X-Linked-Size or Content-Length; a redirect target cannot change them;
//  - JSON answers are bounded (32 MiB), so a hostile endpoint cannot fill the memory;
//  - HTTP errors become one-line HubErrors: 401/403 name the token (HF_TOKEN) and gating, 404
//    names what was missing (X-Error-Code: RepoNotFound, RevisionNotFound, EntryNotFound).

//  - in a browser (the demo), fetch follows redirects itself (a manual redirect is opaque there):
//    the browser applies its own rules (no Authorization across origins, no https page loading http).
// Browser-safe: no Node imports (the settings come in as an object).

import { isNode } from '../env.js';
import { HubError, isCommit, shown } from './names.js';
import type { HubSettings } from './settings.js';

/** A connection that failed (refused, unresolvable, timed out): the caller may fall back to the cache. */
export class HubNetworkError extends HubError {}

/** What the messages advise, where the CLI's advice (environment variables) does not apply. */
export interface HubHints {
  /** after "gated or private: " when no token was sent */
  noToken: string;
  /** after "(a private repo also answers 404 " */
  private404: string;
  /** after a network failure */
  network: string;
}

export const CLI_HINTS: HubHints = {
  noToken: 'set HF_TOKEN to an access token that may read it (and accept its conditions on the model page)',
  private404: 'without HF_TOKEN',
  network: 'set HF_HUB_OFFLINE=1 to use the cache only, or HF_ENDPOINT for a mirror',
};

/** The Hub's URL of one file at one revision (each path part escaped). */
export const resolveUrl = (endpoint: string, repoId: string, revision: string, file: string): string =>
  `${endpoint}/${repoId}/resolve/${encodeURIComponent(revision)}/${file.split('/').map(encodeURIComponent).join('/')}`;

export const MAX_REDIRECTS = 5;
const MAX_JSON_BYTES = 32 * 2 ** 20;

export interface FileMeta {
  /** The blob name in the cache: the LFS sha256, else the git blob id. */
  etag: string;
  size: number;
  /** The sha256 the content must have (LFS files), else null. */
  sha256: string | null;
  /** Where the bytes are: the resolve URL, or the CDN location it redirected to. */
  url: string;
}

export class HubHttp {
  /** Requests sent so far (each redirect hop counts). */
  requests = 0;
  /** X-Error-Code of the last answer libraryFetch passed on (the library's errors drop it). */
  lastErrorCode: string | null = null;
  private readonly origin: string;

  constructor(readonly s: HubSettings, private readonly repoId: string, readonly hints: HubHints = CLI_HINTS) {
    this.origin = new URL(s.endpoint).origin;
  }

  /** One request, no redirect followed; network failures and timeouts as HubNetworkError. */
  private async once(url: string, init: RequestInit, timeoutMs: number): Promise<Response> {
    const headers = new Headers(init.headers);
    if (this.s.token && new URL(url).origin === this.origin) headers.set('Authorization', `Bearer ${this.s.token}`);
    else headers.delete('Authorization');
    this.requests++;
    try {
      return await fetch(url, { ...init, headers, redirect: isNode ? 'manual' : 'follow', signal: init.signal ?? AbortSignal.timeout(timeoutMs) });
    } catch (e) {
      const err = e as Error & { cause?: { code?: string; message?: string } };
      const why = err.name === 'TimeoutError' || err.name === 'AbortError' ? `no answer in ${timeoutMs / 1000} s` : err.cause?.code ?? err.cause?.message ?? err.message;
      throw new HubNetworkError(`${this.repoId}: cannot reach ${new URL(url).origin} (${why}); ${this.hints.network}`);
    }
  }

  /**
   * A request with redirects followed by the rules above. `stopAtOtherHost`: return the redirect
   * response itself when it points at another origin (a HEAD reading the Hub's own headers).
   */
  async send(url: string, init: RequestInit = {}, o: { timeoutMs?: number; stopAtOtherHost?: boolean } = {}): Promise<Response> {
    let at = url;
    for (let hop = 0; ; hop++) {
      const r = await this.once(at, init, o.timeoutMs ?? this.s.metaTimeoutMs);
      if (r.status < 300 || r.status >= 400 || r.status === 304) return r;
      const loc = r.headers.get('location');
      if (!loc) return r;
      let next: URL;
      try {
        next = new URL(loc, at);
      } catch {
        throw new HubError(`${this.repoId}: ${at} redirects to ${shown(loc)}, not a URL; refused`);
      }
      if (next.protocol !== 'http:' && next.protocol !== 'https:') throw new HubError(`${this.repoId}: ${at} redirects to a ${next.protocol} URL; refused`);
      if (new URL(at).protocol === 'https:' && next.protocol === 'http:') throw new HubError(`${this.repoId}: ${at} redirects from https to plain http (${next.origin}); refused`);
      if (o.stopAtOtherHost && next.origin !== new URL(at).origin) return r;
      if (hop >= MAX_REDIRECTS) throw new HubError(`${this.repoId}: more than ${MAX_REDIRECTS} redirects from ${url} (a redirect loop?); refused`);
      await r.body?.cancel();
      at = next.href;
    }
  }

  /** `fetch` for @huggingface/hub's API calls: these rules, and a bounded JSON body. */
  readonly libraryFetch = async (input: string | URL | Request, init: RequestInit = {}): Promise<Response> => {
    const url = typeof input === 'string' ? input : input instanceof URL ? input.href : input.url;
    const r = await this.send(url, init);
    this.lastErrorCode = r.headers.get('x-error-code');
    const declared = Number(r.headers.get('content-length') ?? 0);
    if (declared > MAX_JSON_BYTES) throw new HubError(`${this.repoId}: ${url} answered with ${declared} bytes of metadata (more than ${MAX_JSON_BYTES}); refused`);
    let n = 0;
    const repoId = this.repoId;
    const bounded = r.body?.pipeThrough(new TransformStream<Uint8Array, Uint8Array>({
      transform(chunk, ctl) {
        n += chunk.byteLength;
        if (n > MAX_JSON_BYTES) ctl.error(new HubError(`${repoId}: ${url} sent more than ${MAX_JSON_BYTES} bytes of metadata; refused`));
        else ctl.enqueue(chunk);
      },
    }));
    const out = new Response(bounded ?? null, { status: r.status, statusText: r.statusText, headers: r.headers });
    Object.defineProperty(out, 'url', { value: url });
    return out;
  };

  /** A clear error for a failed Hub answer (its status, and X-Error-Code when there is one). */
  statusError(status: number, code: string | null, what: string): HubError {
    const tok = this.s.token ? `the token from ${this.s.tokenFrom}` : undefined;
    if (status === 401 || status === 403 || code === 'GatedRepo') {
      if (!tok) return new HubError(`${what}: ${status} — ${this.repoId} is gated or private: ${this.hints.noToken}`);
      return new HubError(`${what}: ${status} — ${tok} may not read ${this.repoId} (a gated model whose conditions are not accepted yet, or a token without access)`);
    }
    if (status === 404) {
      const missing = code === 'RevisionNotFound' ? 'no such revision' : code === 'EntryNotFound' ? 'no such file' : code === 'RepoNotFound' ? `no model ${this.repoId}` : 'not found';
      return new HubError(`${what}: 404 — ${missing} on ${this.s.endpoint}${tok ? '' : ` (a private repo also answers 404 ${this.hints.private404})`}`);
    }
    return new HubError(`${what}: HTTP ${status} from ${this.s.endpoint}`);
  }

  /**
   * What the Hub says about one file at one commit (a HEAD on /resolve, redirects to another host
   * not followed), checked: the commit is the one asked for, the etag a hash, the size an integer
   * within CONCORD_HUB_MAX_FILE_GB.
   */
  async fileMeta(commit: string, file: string): Promise<FileMeta> {
    const url = resolveUrl(this.s.endpoint, this.repoId, commit, file);
    const r = await this.send(url, { method: 'HEAD', headers: { 'Accept-Encoding': 'identity' } }, { stopAtOtherHost: true });
    if (r.status >= 400) throw this.statusError(r.status, r.headers.get('x-error-code'), `${this.repoId}/${file}`);
    const h = (k: string) => r.headers.get(k) ?? undefined;
    const got = h('x-repo-commit');
    if (got !== undefined && (!isCommit(got) || got !== commit)) throw new HubError(`${this.repoId}/${file}: the server answered for commit ${shown(got)}, not ${commit}; refused`);
    const etag = (h('x-linked-etag') ?? h('etag') ?? '').replace(/^W\//, '').replace(/"/g, '');
    if (!/^[0-9a-f]{40}$|^[0-9a-f]{64}$/.test(etag)) throw new HubError(`${this.repoId}/${file}: the server's ETag ${shown(etag)} is not a git or sha256 hash; refused`);
    const sizeText = h('x-linked-size') ?? h('content-length') ?? '';
    if (!/^\d{1,16}$/.test(sizeText)) throw new HubError(`${this.repoId}/${file}: the server gave no size (X-Linked-Size or Content-Length: ${shown(sizeText)}); refused`);
    const size = Number(sizeText);
    if (size > this.s.maxFileBytes) {
      throw new HubError(`${this.repoId}/${file}: declared size ${size} bytes is above the ${this.s.maxFileBytes / 2 ** 30} GiB limit (CONCORD_HUB_MAX_FILE_GB); refused`);
    }
    const loc = r.status >= 300 && r.status < 400 ? h('location') : undefined;
    return { etag, size, sha256: h('x-linked-etag') !== undefined && etag.length === 64 ? etag : null, url: loc ? new URL(loc, url).href : url };
  }
}
