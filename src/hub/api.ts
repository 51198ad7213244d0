// The Hub's model API through @huggingface/hub (fetch-based, so the browser demo uses it too):
// a revision's commit and file list (modelInfo), and the sizes and LFS SHA-256 of some files
// (pathsInfo). Requests go through HubHttp (its time limits, bounded answers, counted requests,
// one-line errors). Browser-safe.

import { HubHttp } from './http.js';
import { HubError, isCommit, shown } from './names.js';

/** The revision's commit and file list, from the model API (@huggingface/hub modelInfo). */
export async function repoInfo(http: HubHttp, id: string, revision: string): Promise<{ commit: string; files: string[] }> {
  const { modelInfo, HubApiError } = await import('@huggingface/hub');
  let info: { sha?: unknown; filePaths?: unknown; gated?: unknown };
  try {
    info = await modelInfo({ name: id, hubUrl: http.s.endpoint, revision, additionalFields: ['sha', 'filePaths'], fetch: http.libraryFetch });
  } catch (e) {
    if (e instanceof HubApiError) {
      // The Hub's X-Error-Code, else its message (without the library's "URL: …/revision/…" trailer).
      const code = http.lastErrorCode ?? (e.statusCode === 404 && /revision/i.test(e.message.split('. URL: ')[0]) ? 'RevisionNotFound' : null);
      throw http.statusError(e.statusCode, code, `${id}@${revision}`);
    }
    if (e instanceof HubError) throw e;
    throw new HubError(`${id}@${revision}: the model API's answer could not be read (${(e as Error).message.split('\n')[0]})`);
  }
  if (typeof info.sha !== 'string' || !isCommit(info.sha)) throw new HubError(`${id}@${revision}: the model API gave no commit hash (sha ${shown(String(info.sha))}); refused`);
  if (!Array.isArray(info.filePaths)) throw new HubError(`${id}@${revision}: the model API listed no files (siblings)`);
  if (info.gated && !http.s.token) throw http.statusError(401, 'GatedRepo', id);
  const files = (info.filePaths as unknown[]).filter((f): f is string => typeof f === 'string' && f !== '');
  return { commit: info.sha, files };
}

/** A file as the API describes it: its size, and the SHA-256 of its content when it is an LFS file. */
export interface HubFileInfo { size: number; sha256: string | null }

/** Sizes and LFS SHA-256 of `paths` at `commit` (@huggingface/hub pathsInfo: one POST to /api/models/<id>/paths-info/<commit>). */
export async function filesInfo(http: HubHttp, id: string, commit: string, paths: string[]): Promise<Map<string, HubFileInfo>> {
  const { pathsInfo, HubApiError } = await import('@huggingface/hub');
  let items: { path: string; type: string; size: number; lfs?: { oid?: string; size?: number } }[];
  try {
    items = await pathsInfo({ repo: { type: 'model', name: id }, paths, revision: commit, hubUrl: http.s.endpoint, fetch: http.libraryFetch });
  } catch (e) {
    if (e instanceof HubApiError) throw http.statusError(e.statusCode, http.lastErrorCode, `${id}@${commit.slice(0, 12)}`);
    if (e instanceof HubError) throw e;
    throw new HubError(`${id}@${commit.slice(0, 12)}: the paths-info answer could not be read (${(e as Error).message.split('\n')[0]})`);
  }
  const out = new Map<string, HubFileInfo>();
  for (const it of items) {
    if (!it || typeof it.path !== 'string' || it.type !== 'file') continue;
    const size = it.lfs?.size ?? it.size;
    if (!Number.isSafeInteger(size) || size < 0) throw new HubError(`${id}/${it.path}: the API gave size ${shown(String(size))}; refused`);
    const sha = it.lfs?.oid;
    if (sha !== undefined && !/^[0-9a-f]{64}$/.test(sha)) throw new HubError(`${id}/${it.path}: the API gave LFS oid ${shown(String(sha))}, not a SHA-256; refused`);
    out.set(it.path, { size, sha256: sha ?? null });
  }
  return out;
}
