// A model by Hub id, downloaded on first use into the shared Hugging Face cache:
//
//   const m = await ensureHubModel('Org/Name', { revision: 'main' });   // m.path: the snapshot folder
//
// The revision's commit and file list come from the Hub's model API (@huggingface/hub modelInfo,
// one request; it is also how a later run learns whether the branch moved); each needed file that
// the snapshot lacks is then fetched by commit (src/hub/http.ts fileMeta + src/hub/blob.ts): the
// library's own downloadFileToCacheDir cannot resume an .incomplete file, checks neither size nor
// SHA-256, and names the snapshot after a file's last commit rather than the revision's, so the
// transfer is concord's. HF_HUB_OFFLINE=1 sends nothing and reads the cache only; a revision given
// as a commit hash whose snapshot is whole sends nothing either; a network failure falls back to a
// whole cached snapshot of that revision, with a note.

import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { HfCacheError, hfHubCache, repoFolderName, resolveCachedModel } from '../models/hf-cache.js';
import { downloadBlob, type BlobProgress } from './blob.js';
import { repoInfo } from './api.js';
import { HubHttp, HubNetworkError } from './http.js';
import { checkRepoFileName, checkRevision, HubError, isCommit, isRepoId, shown } from './names.js';
import { hubSettings } from './settings.js';
import { chooseFiles, indexShards, linkBlob, pointerPath, present, snapshotComplete, writeRef } from './snapshot.js';

export interface HubModelOptions {
  /** Branch, tag or commit (default 'main'). */
  revision?: string;
  /** Fetch only this GGUF file (a name in the repo) instead of config, tokenizer and safetensors. */
  ggufFile?: string;
  env?: NodeJS.ProcessEnv;
  /** Bytes as they arrive (default: a one-line progress on stderr when it is a terminal). */
  onProgress?: (p: BlobProgress) => void;
  /** One-line notes (what is downloaded, a fallback to the cache); default stderr. */
  log?: (line: string) => void;
}

export interface HubModel {
  /** The snapshot folder (the GGUF file inside it when ggufFile was given). */
  path: string;
  commit: string;
  revision: string;
  /** HTTP requests sent (0 offline or when a commit's snapshot was whole). */
  requests: number;
  /** Files downloaded by this call. */
  downloaded: string[];
}

/** '\r'-redrawn progress line on a terminal's stderr, at most 10 per second. */
export function ttyProgress(stream: { isTTY?: boolean; write(s: string): unknown } = process.stderr): ((p: BlobProgress) => void) | undefined {
  if (!stream.isTTY) return undefined;
  let last = 0;
  return (p) => {
    const end = p.bytesDone >= p.bytesTotal, now = Date.now();
    if (!end && now - last < 100) return;
    last = now;
    const [unit, scale] = p.bytesTotal >= 1e9 ? ['GB', 1e9] : ['MB', 1e6];
    const pct = p.bytesTotal ? Math.floor((100 * p.bytesDone) / p.bytesTotal) : 100;
    stream.write(`\r\x1b[2Kdownloading ${p.file}  ${(p.bytesDone / scale).toFixed(2)} / ${(p.bytesTotal / scale).toFixed(2)} ${unit}  ${pct}%${end ? '\n' : ''}`);
  };
}

function fromCache(id: string, revision: string, ggufFile: string | undefined, env: NodeJS.ProcessEnv, why: string): HubModel {
  let c;
  try {
    c = resolveCachedModel(id, { revision, env });
  } catch (e) {
    throw e instanceof HfCacheError ? new HubError(`${why}: ${e.message}`) : e;
  }
  if (!snapshotComplete(c.path, ggufFile)) {
    throw new HubError(`${why}, and the cached snapshot ${c.path} of ${id}@${revision} lacks ${ggufFile ?? 'config.json or weights'} (an earlier download did not finish)`);
  }
  return { path: ggufFile ? join(c.path, ...ggufFile.split('/')) : c.path, commit: c.commit, revision, requests: 0, downloaded: [] };
}

interface Fetcher { http: HubHttp; repoDir: string; commit: string; id: string; onProgress?: (p: BlobProgress) => void; downloaded: string[]; announce: () => void }

/** One file into the snapshot: nothing when its link is there, else its blob (downloaded unless present) linked. */
async function ensureFile(f: Fetcher, file: string): Promise<string> {
  const pointer = pointerPath(f.repoDir, f.commit, checkRepoFileName(file, f.id));
  if (present(pointer)) return pointer;
  const meta = await f.http.fileMeta(f.commit, file);
  const blob = join(f.repoDir, 'blobs', meta.etag);
  if (!present(blob)) {
    f.announce();
    await mkdir(join(f.repoDir, 'blobs'), { recursive: true });
    await downloadBlob(f.http, meta, blob, `${f.id}/${file}`, f.onProgress);
    f.downloaded.push(file);
  }
  await linkBlob(blob, pointer);
  return pointer;
}

/** Download what concord needs of a Hub model into the cache (see the top of this file). */
export async function ensureHubModel(id: string, o: HubModelOptions = {}): Promise<HubModel> {
  const env = o.env ?? process.env;
  if (!isRepoId(id)) throw new HubError(`${shown(id)} is not a Hub model id (Org/Name)`);
  const revision = checkRevision(o.revision ?? 'main');
  if (o.ggufFile !== undefined) checkRepoFileName(o.ggufFile, '--gguf-file');
  const s = hubSettings(env);
  const cache = hfHubCache(env).dir;
  const repoDir = join(cache, repoFolderName(id));
  if (s.offline) return fromCache(id, revision, o.ggufFile, env, 'HF_HUB_OFFLINE=1 (no network)');
  if (isCommit(revision) && snapshotComplete(join(repoDir, 'snapshots', revision), o.ggufFile)) return fromCache(id, revision, o.ggufFile, env, 'cached');
  const http = new HubHttp(s, id);
  let info;
  try {
    info = await repoInfo(http, id, revision);
  } catch (e) {
    if (!(e instanceof HubNetworkError)) throw e;
    const cached = (() => { try { return fromCache(id, revision, o.ggufFile, env, e.message); } catch { return null; } })();
    if (!cached) throw e;
    (o.log ?? ((l: string) => process.stderr.write(`${l}\n`)))(`concord: ${e.message.split(';')[0]}; using the cached ${id}@${revision} (commit ${cached.commit.slice(0, 12)})`);
    return { ...cached, requests: http.requests };
  }
  const { commit, files } = info;
  const downloaded: string[] = [];
  let said = false;
  const f: Fetcher = {
    http, repoDir, commit, id, downloaded, onProgress: o.onProgress ?? ttyProgress(),
    announce: () => {
      if (!said) (o.log ?? ((l: string) => process.stderr.write(`${l}\n`)))(`concord: downloading ${id}@${revision} (commit ${commit.slice(0, 12)}) from ${s.endpoint} into ${cache}`);
      said = true;
    },
  };
  const plan = chooseFiles(files, id, o.ggufFile);
  let weights = plan.weights;
  if (plan.index) weights = indexShards(await ensureFile(f, plan.weights[0]), `${id}/${plan.weights[0]}`);
  for (const file of [...plan.side, ...weights]) await ensureFile(f, file);
  await writeRef(repoDir, revision, commit);
  const snap = join(repoDir, 'snapshots', commit);
  return { path: o.ggufFile ? join(snap, ...o.ggufFile.split('/')) : snap, commit, revision, requests: http.requests, downloaded };
}
