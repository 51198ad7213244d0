// The local Hugging Face hub cache, read the way `transformers` / `huggingface_hub` read it offline
// (HF_HUB_OFFLINE=1): a model id such as 'Qwen/Qwen3-0.6B' resolves to a snapshot folder
//   <cache>/models--Qwen--Qwen3-0.6B/snapshots/<commit>/
// where <cache> is $HF_HUB_CACHE, else $HF_HOME/hub, else ~/.cache/huggingface/hub (huggingface_hub
// constants.py; $HUGGINGFACE_HUB_CACHE is the older name of HF_HUB_CACHE and is honoured after it),
// and <commit> is the revision: a branch or tag name is looked up in refs/<name> (a file holding
// the commit hash; 'main' by default), a 40-hex commit hash is used as is, and a short hash prefix
// matching exactly one snapshot is accepted. Snapshot files are usually symlinks into blobs/; they
// are read through the link. This module only reads the cache (src/hub/ downloads into it); an
// absent model is an error that says which folders were looked in. Nothing read from the user or
// the cache is joined onto a path unchecked: the revision must be a ref name or a commit hash
// (src/hub/names.ts), and a refs/<name> file must hold a 40-hex commit hash.

import { UsageError } from '../errors.js';
import { checkRevision, isCommit, isRepoId, shown } from '../hub/names.js';
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { homedir } from 'node:os';
import { join, resolve } from 'node:path';

export class HfCacheError extends UsageError {}

/** resolve(), with a leading '~' taken as the home folder (as Python's os.path.expanduser). */
const expand = (p: string): string => resolve(p === '~' || p.startsWith('~/') ? join(homedir(), p.slice(1)) : p);

/** The hub cache folder, and how it was chosen (for messages). */
export function hfHubCache(env: NodeJS.ProcessEnv = process.env): { dir: string; from: string } {
  if (env.HF_HUB_CACHE) return { dir: expand(env.HF_HUB_CACHE), from: 'HF_HUB_CACHE' };
  if (env.HUGGINGFACE_HUB_CACHE) return { dir: expand(env.HUGGINGFACE_HUB_CACHE), from: 'HUGGINGFACE_HUB_CACHE' };
  if (env.HF_HOME) return { dir: join(expand(env.HF_HOME), 'hub'), from: 'HF_HOME/hub' };
  const xdg = env.XDG_CACHE_HOME ? expand(env.XDG_CACHE_HOME) : join(homedir(), '.cache');
  return { dir: join(xdg, 'huggingface', 'hub'), from: env.XDG_CACHE_HOME ? 'XDG_CACHE_HOME/huggingface/hub' : '~/.cache/huggingface/hub' };
}

/**
 * Does this string look like a hub model id ('Org/Name' or 'Name'), rather than a file path? Ids
 * have one '/' at most, no leading '.', '/' or '~', and only the characters the hub allows.
 */
export function looksLikeModelId(s: string): boolean {
  return /^(?:[A-Za-z0-9][A-Za-z0-9._-]*\/)?[A-Za-z0-9][A-Za-z0-9._-]*$/.test(s) && !s.includes('..') && !s.endsWith('.bin');
}

/** The cache folder name of a model repo: 'Qwen/Qwen3-0.6B' → 'models--Qwen--Qwen3-0.6B'. */
export function repoFolderName(id: string): string {
  return `models--${id.split('/').join('--')}`;
}

export interface CachedModel {
  /** The snapshot folder (files inside may be symlinks into ../../blobs). */
  path: string;
  commit: string;
  /** The revision asked for ('main' by default). */
  revision: string;
  cache: string;
}

const isDir = (p: string): boolean => existsSync(p) && statSync(p).isDirectory();

/**
 * Resolve a model id in the local cache. Throws HfCacheError, naming the cache folder (and how it
 * was chosen) and what was missing, when the model or the revision is not there.
 */
export function resolveCachedModel(id: string, opts: { revision?: string; env?: NodeJS.ProcessEnv } = {}): CachedModel {
  if (!isRepoId(id)) throw new HfCacheError(`${shown(id)} is not a model id (Org/Name)`);
  const revision = checkRevision(opts.revision ?? 'main');
  const { dir: cache, from } = hfHubCache(opts.env);
  const where = `the Hugging Face cache ${cache} (${from}; set HF_HUB_CACHE or HF_HOME to look elsewhere)`;
  const repo = join(cache, repoFolderName(id));
  if (!isDir(repo)) {
    throw new HfCacheError(`model '${id}' is not in ${where}: no ${repo}`);
  }
  const snapshots = join(repo, 'snapshots');
  const snaps = isDir(snapshots) ? readdirSync(snapshots).filter((n) => isDir(join(snapshots, n))).sort() : [];
  let commit: string;
  if (/^[0-9a-f]{40}$/.test(revision)) {
    commit = revision;
  } else {
    const ref = join(repo, 'refs', ...revision.split('/'));
    if (existsSync(ref) && statSync(ref).isFile()) {
      commit = readFileSync(ref, 'utf8').trim();
      if (!isCommit(commit)) throw new HfCacheError(`model '${id}' revision '${revision}': ${ref} does not hold a commit hash (40 hex digits); a damaged cache — delete that file`);
    } else {
      const byPrefix = /^[0-9a-f]{7,39}$/.test(revision) ? snaps.filter((n) => n.startsWith(revision)) : [];
      if (byPrefix.length === 1) commit = byPrefix[0];
      else {
        const refs = isDir(join(repo, 'refs')) ? readdirSync(join(repo, 'refs')).sort() : [];
        throw new HfCacheError(
          `model '${id}' revision '${revision}': no ${ref} in ${where}` +
            ` (refs there: ${refs.join(', ') || 'none'}; snapshots: ${snaps.join(', ') || 'none'})`,
        );
      }
    }
  }
  const path = join(snapshots, commit);
  if (!isDir(path)) {
    throw new HfCacheError(`model '${id}' revision '${revision}' is commit ${commit}, but ${path} is missing from ${where} (snapshots: ${snaps.join(', ') || 'none'})`);
  }
  return { path, commit, revision, cache };
}
