// What may be joined onto a path or a URL, checked before it is: repo ids, revision names, commit
// hashes, file names inside a repo. Everything the Hub client reads from the user (--model,
// --revision), from the cache (refs/<name>) or from the server (file lists, weight_map entries)
// goes through one of these before it touches the file system; a bad one is a HubError (exit 2)
// that names it without echoing anything read from disk.

import { UsageError } from '../errors.js';

/** A Hub or cache problem the user can act on (exit 2, one line; not a flag error, so no --help hint). */
export class HubError extends UsageError {
  override readonly pointsAtHelp: boolean = false;
}

/** Shown instead of a value that failed validation: short, printable, never a file's content. */
export const shown = (s: string): string => JSON.stringify(s.length > 80 ? `${s.slice(0, 77)}...` : s);

/** 'Org/Name' or 'Name': the characters the Hub allows, no '..', one '/' at most (huggingface_hub validate_repo_id). */
export function isRepoId(s: string): boolean {
  return s.length <= 96 && /^(?:[A-Za-z0-9][A-Za-z0-9._-]*\/)?[A-Za-z0-9][A-Za-z0-9._-]*$/.test(s) && !s.includes('..') && !s.endsWith('.git');
}

/** A full commit hash: 40 lowercase hex digits (what refs/<name> files and snapshot folders hold). */
export const isCommit = (s: string): boolean => /^[0-9a-f]{40}$/.test(s);

/**
 * A branch, tag or PR ref name as git allows it (git check-ref-format), narrowed to printable ASCII
 * without shell or path specials: '/'-separated parts, none empty, '.' or '..', none starting with
 * '.' or ending with '.lock'; no '..' or '@{' anywhere; at most 255 characters.
 */
export function isRevisionName(s: string): boolean {
  if (s.length === 0 || s.length > 255 || !/^[A-Za-z0-9._+\-/]+$/.test(s) || s.includes('..') || s.includes('@{')) return false;
  return s.split('/').every((p) => p.length > 0 && !p.startsWith('.') && !p.endsWith('.lock'));
}

export function checkRevision(revision: string, what = '--revision'): string {
  if (!isRevisionName(revision)) {
    throw new HubError(`${what} ${shown(revision)} is not a branch, tag or commit name (letters, digits, '._+-' and '/'-separated parts; no '..', no leading '.' or '/')`);
  }
  return revision;
}

/**
 * A file name inside a repo, as a relative POSIX path that stays inside the folder it is joined to
 * (huggingface_hub _validate_relative_filename): no '..' part, not absolute, no drive or UNC
 * prefix, no backslash, no empty or '.' part, no control characters.
 */
export function isRepoFileName(s: string): boolean {
  if (s.length === 0 || s.length > 1024 || s.includes('\\') || /[\x00-\x1f\x7f]/.test(s) || s.startsWith('/')) return false;
  return s.split('/').every((p) => p !== '' && p !== '.' && p !== '..' && !/^[A-Za-z]:/.test(p));
}

export function checkRepoFileName(name: string, from: string): string {
  if (!isRepoFileName(name)) throw new HubError(`${from}: file name ${shown(name)} would leave the model folder (absolute, '..', or not a plain relative path); refused`);
  return name;
}

/**
 * 'Org/Name[@rev][:FILE]' → { id, revision?, file? }. FILE is one file of the repo (a GGUF file:
 * `--gguf-file FILE` says the same); neither a repo id nor a git ref name may hold ':', so the first
 * ':' ends the id. A Windows drive path ('C:\\…', 'C:/…') is left whole.
 */
export function splitModelSpec(spec: string): { id: string; revision?: string; file?: string } {
  const colon = /^[A-Za-z]:[\\/]/.test(spec) ? -1 : spec.indexOf(':');
  const head = colon < 0 ? spec : spec.slice(0, colon);
  const file = colon < 0 ? undefined : spec.slice(colon + 1);
  const at = head.indexOf('@');
  const r = at < 0 ? { id: head } : { id: head.slice(0, at), revision: head.slice(at + 1) };
  return file === undefined ? r : { ...r, file };
}

/** An endpoint URL (HF_ENDPOINT, or the page's endpoint field): http(s), without trailing slashes. */
export function checkEndpoint(value: string, what = 'HF_ENDPOINT'): string {
  const v = value.trim().replace(/\/+$/, '');
  let u: URL;
  try {
    u = new URL(v);
  } catch {
    throw new HubError(`${what} ${JSON.stringify(v)} is not a URL`);
  }
  if (u.protocol !== 'https:' && u.protocol !== 'http:') throw new HubError(`${what} ${JSON.stringify(v)} must be an http(s) URL`);
  return v;
}

/** How a model by Hub id is named in messages and model names: 'Org/Name@main=0123456789ab', or 'Org/Name@<commit12>' for a commit. */
export const hubLabel = (id: string, revision: string, commit: string): string => `${id}@${revision === commit ? commit.slice(0, 12) : `${revision}=${commit.slice(0, 12)}`}`;
