// A local stand-in for the Hugging Face Hub (node:http on 127.0.0.1, random ports) serving fixture
// repos through the routes and headers the clients read:
//   GET  /api/models/<repo>/revision/<rev>     { sha, siblings: [{ rfilename }], gated, ... }
//   HEAD|GET /<repo>/resolve/<rev>/<file>      small files: 200, ETag = git blob id, X-Repo-Commit;
//                                              LFS files (*.safetensors, *.gguf): 302 to the CDN with
//                                              X-Linked-Size, X-Linked-Etag = sha256, X-Repo-Commit
//   GET  <cdn>/lfs/<sha256>                    the bytes, with Range (206) — on a second server, so
//                                              a different origin, as the Hub's CDN is
//   POST /api/models/<repo>/paths-info/<rev>   [{ path, type, size, oid, lfs?: { oid, size } }] for
//                                              the JSON body's paths (@huggingface/hub pathsInfo)
// Both servers answer CORS as the Hub does (Access-Control-Allow-Origin *, the X-* headers exposed,
// OPTIONS preflights), so the browser demo served from another origin can use them.
// Errors as the Hub sends them: 404 with X-Error-Code RepoNotFound / RevisionNotFound /
// EntryNotFound; 401 with X-Error-Code GatedRepo for a gated repo without a valid token. Hooks
// make it hostile: cut a body midway, lie about a size or hash, redirect in a loop or off http.

import { createHash } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

export interface FixtureRepo {
  refs: Record<string, string>;
  /** commit → file name → bytes */
  commits: Record<string, Map<string, Buffer>>;
  gated?: boolean;
}

export interface Hooks {
  /** Cut the CDN body of this file after this many bytes, for the next `times` requests (`hang`: stop sending, keep the connection open). */
  cut?: { file: string; after: number; times: number; hang?: boolean };
  /** Serve these bytes for a file instead of the real ones (headers still describe the real file). */
  wrongBytes?: { file: string; bytes: Buffer };
  /** Declare this X-Linked-Size for a file. */
  declaredSize?: { file: string; size: number };
  /** Redirect a file's resolve to itself (a loop), or to a non-http URL. */
  redirect?: { file: string; to: 'loop' | 'ftp' };
}

export interface LoggedRequest { method: string; url: string; range?: string; auth?: string; server: 'hub' | 'cdn' }

export const gitBlobId = (b: Buffer): string => createHash('sha1').update(`blob ${b.length}\0`).update(b).digest('hex');
export const sha256 = (b: Buffer): string => createHash('sha256').update(b).digest('hex');
const isLfs = (f: string): boolean => f.endsWith('.safetensors') || f.endsWith('.gguf');

export class FakeHub {
  repos = new Map<string, FixtureRepo>();
  log: LoggedRequest[] = [];
  hooks: Hooks = {};
  token = 'hf_test_token_1234';
  private hub!: Server;
  private cdn!: Server;
  url = '';
  cdnUrl = '';
  private blobs = new Map<string, { file: string; bytes: Buffer }>();

  async start(): Promise<void> {
    this.hub = createServer((q, r) => this.onHub(q, r));
    this.cdn = createServer((q, r) => this.onCdn(q, r));
    for (const [s, k] of [[this.hub, 'url'], [this.cdn, 'cdnUrl']] as const) {
      await new Promise<void>((res) => s.listen(0, '127.0.0.1', res));
      this[k] = `http://127.0.0.1:${(s.address() as AddressInfo).port}`;
    }
  }

  async stop(): Promise<void> {
    for (const s of [this.hub, this.cdn]) {
      s.closeAllConnections();
      await new Promise((res) => s.close(res));
    }
  }

  /** Add (or move a branch of) a repo: `files` become a new commit that `ref` points at. */
  add(id: string, commit: string, files: Map<string, Buffer>, o: { ref?: string; gated?: boolean } = {}): void {
    const repo = this.repos.get(id) ?? { refs: {}, commits: {}, gated: o.gated };
    repo.commits[commit] = files;
    repo.refs[o.ref ?? 'main'] = commit;
    this.repos.set(id, repo);
    for (const [f, b] of files) if (isLfs(f)) this.blobs.set(sha256(b), { file: f, bytes: b });
  }

  count(server?: 'hub' | 'cdn'): number {
    return this.log.filter((l) => !server || l.server === server).length;
  }

  private record(q: IncomingMessage, server: 'hub' | 'cdn'): void {
    this.log.push({ method: q.method ?? '', url: q.url ?? '', range: q.headers.range, auth: q.headers.authorization, server });
  }

  private error(r: ServerResponse, status: number, code: string): void {
    r.writeHead(status, { 'X-Error-Code': code, 'Content-Type': 'application/json' });
    r.end(JSON.stringify({ error: code }));
  }

  /** CORS as the Hub sends it; true when the request was a preflight (answered here). */
  private cors(q: IncomingMessage, r: ServerResponse): boolean {
    r.setHeader('Access-Control-Allow-Origin', '*');
    r.setHeader('Access-Control-Expose-Headers', 'X-Repo-Commit, X-Linked-Size, X-Linked-Etag, ETag, X-Error-Code, Content-Range, Content-Length');
    if (q.method !== 'OPTIONS') return false;
    r.writeHead(204, { 'Access-Control-Allow-Methods': 'GET, HEAD, POST, OPTIONS', 'Access-Control-Allow-Headers': 'Authorization, Content-Type, Range, Accept', 'Access-Control-Max-Age': '600' });
    r.end();
    return true;
  }

  private onHub(q: IncomingMessage, r: ServerResponse): void {
    this.record(q, 'hub');
    if (this.cors(q, r)) return;
    const path = decodeURIComponent((q.url ?? '').split('?')[0]);
    const api = /^\/api\/models\/([^/]+\/[^/]+)\/revision\/(.+)$/.exec(path);
    if (api) return this.onApi(r, api[1], api[2]);
    const info = /^\/api\/models\/([^/]+\/[^/]+)\/paths-info\/(.+)$/.exec(path);
    if (info && q.method === 'POST') return void this.onPathsInfo(q, r, info[1], info[2]);
    const res = /^\/([^/]+\/[^/]+)\/resolve\/([^/]+)\/(.+)$/.exec(path);
    if (res) return this.onResolve(q, r, res[1], res[2], res[3]);
    this.error(r, 404, 'NotFound');
  }

  private commitOf(repo: FixtureRepo, rev: string): string | undefined {
    return repo.refs[rev] ?? (repo.commits[rev] ? rev : undefined);
  }

  private onApi(r: ServerResponse, id: string, rev: string): void {
    const repo = this.repos.get(id);
    if (!repo) return this.error(r, 404, 'RepoNotFound');
    const commit = this.commitOf(repo, rev);
    if (!commit) return this.error(r, 404, 'RevisionNotFound');
    const siblings = [...repo.commits[commit].keys()].map((rfilename) => ({ rfilename }));
    r.writeHead(200, { 'Content-Type': 'application/json' });
    r.end(JSON.stringify({ _id: id, id, sha: commit, siblings, gated: repo.gated ? 'manual' : false, private: false, downloads: 0, likes: 0, lastModified: '2026-01-01T00:00:00Z' }));
  }

  private async onPathsInfo(q: IncomingMessage, r: ServerResponse, id: string, rev: string): Promise<void> {
    let text = '';
    for await (const c of q) text += c;
    const repo = this.repos.get(id);
    if (!repo) return this.error(r, 404, 'RepoNotFound');
    const commit = this.commitOf(repo, rev);
    if (!commit) return this.error(r, 404, 'RevisionNotFound');
    if (repo.gated && q.headers.authorization !== `Bearer ${this.token}`) return this.error(r, 401, 'GatedRepo');
    let paths: unknown;
    try {
      paths = (JSON.parse(text) as { paths?: unknown }).paths;
    } catch {
      return this.error(r, 400, 'BadRequest');
    }
    if (!Array.isArray(paths)) return this.error(r, 400, 'BadRequest');
    const files = repo.commits[commit];
    const out = paths.filter((p): p is string => typeof p === 'string' && files.has(p)).map((p) => {
      const b = files.get(p)!;
      const size = this.hooks.declaredSize?.file === p ? this.hooks.declaredSize.size : b.length;
      return { type: 'file', path: p, size, oid: gitBlobId(b), ...(isLfs(p) ? { lfs: { oid: sha256(b), size, pointerSize: 134 } } : {}) };
    });
    r.writeHead(200, { 'Content-Type': 'application/json' });
    r.end(JSON.stringify(out));
  }

  private onResolve(q: IncomingMessage, r: ServerResponse, id: string, rev: string, file: string): void {
    const repo = this.repos.get(id);
    if (!repo) return this.error(r, 404, 'RepoNotFound');
    const commit = this.commitOf(repo, rev);
    if (!commit) return this.error(r, 404, 'RevisionNotFound');
    if (repo.gated && q.headers.authorization !== `Bearer ${this.token}`) return this.error(r, 401, 'GatedRepo');
    const bytes = repo.commits[commit].get(file);
    if (!bytes) return this.error(r, 404, 'EntryNotFound');
    const redirect = this.hooks.redirect?.file === file ? this.hooks.redirect.to : undefined;
    if (redirect) {
      r.writeHead(302, { Location: redirect === 'loop' ? q.url! : 'ftp://127.0.0.1/x', 'X-Repo-Commit': commit, ETag: `"${gitBlobId(bytes)}"`, 'Content-Length': '0' });
      return void r.end();
    }
    if (isLfs(file)) {
      const sha = sha256(bytes);
      const size = this.hooks.declaredSize?.file === file ? this.hooks.declaredSize.size : bytes.length;
      r.writeHead(302, { Location: `${this.cdnUrl}/lfs/${sha}?sig=x`, 'X-Repo-Commit': commit, 'X-Linked-Size': String(size), 'X-Linked-Etag': `"${sha}"`, ETag: `"${sha}"`, 'Content-Length': '0' });
      return void r.end();
    }
    r.writeHead(200, { 'X-Repo-Commit': commit, ETag: `"${gitBlobId(bytes)}"`, 'Content-Length': String(bytes.length), 'Content-Type': 'application/octet-stream' });
    r.end(q.method === 'HEAD' ? undefined : bytes);
  }

  private onCdn(q: IncomingMessage, r: ServerResponse): void {
    this.record(q, 'cdn');
    if (this.cors(q, r)) return;
    const m = /^\/lfs\/([0-9a-f]{64})/.exec(q.url ?? '');
    const blob = m ? this.blobs.get(m[1]) : undefined;
    if (!blob) return this.error(r, 404, 'NoSuchKey');
    const bytes = this.hooks.wrongBytes?.file === blob.file ? this.hooks.wrongBytes.bytes : blob.bytes;
    const range = /^bytes=(\d+)-$/.exec(q.headers.range ?? '');
    const start = range ? Number(range[1]) : 0;
    const body = bytes.subarray(start);
    r.writeHead(range ? 206 : 200, {
      'Content-Length': String(body.length), 'Content-Type': 'application/octet-stream',
      ...(range ? { 'Content-Range': `bytes ${start}-${bytes.length - 1}/${bytes.length}` } : {}),
    });
    const cut = this.hooks.cut;
    if (cut && cut.file === blob.file && cut.times > 0) {
      cut.times--;
      r.write(body.subarray(0, cut.after), () => { if (!cut.hang) setTimeout(() => r.socket?.destroy(), 20); });
      return;
    }
    r.end(body);
  }
}

/** A fixture repo's files from a model folder written by tiny-models.ts. */
export function filesOf(dir: string, read: (p: string) => Buffer, names: string[]): Map<string, Buffer> {
  return new Map(names.map((n) => [n, read(`${dir}/${n}`)]));
}
