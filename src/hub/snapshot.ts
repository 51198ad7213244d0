// The cache's write side and what a snapshot needs, in the layout huggingface_hub writes:
//   <cache>/models--Org--Name/blobs/<etag>            the bytes (etag: LFS sha256 or git blob id)
//   <cache>/models--Org--Name/snapshots/<commit>/<f>  a relative symlink to ../../blobs/<etag>
//   <cache>/models--Org--Name/refs/<revision>         the commit hash, no newline
// Which files concord needs from a repo: the config, tokenizer and chat-template files it has, and
// the weights — the shards listed by model.safetensors.index.json, else model.safetensors — or
// only the one GGUF file asked for.

import { copyFile, mkdir, rename, rm, symlink, writeFile } from 'node:fs/promises';
import { existsSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';
import { checkRepoFileName, HubError } from './names.js';

/** Small files read when the repo has them. */
export const SIDE_FILES = [
  'config.json', 'generation_config.json', 'tokenizer.json', 'tokenizer_config.json', 'special_tokens_map.json',
  'added_tokens.json', 'chat_template.jinja', 'chat_template.json', 'vocab.txt',
];
export const INDEX_FILE = 'model.safetensors.index.json';
export const SINGLE_FILE = 'model.safetensors';
const MAX_INDEX_BYTES = 64 * 2 ** 20;

export const pointerPath = (repoDir: string, commit: string, file: string): string => join(repoDir, 'snapshots', commit, ...file.split('/'));

/** snapshots/<commit>/<file> → blobs/<etag> as a relative symlink (a copy where links cannot be made); a dangling link there is replaced. */
export async function linkBlob(blob: string, pointer: string): Promise<void> {
  await mkdir(dirname(pointer), { recursive: true });
  await rm(pointer, { force: true });
  try {
    await symlink(relative(dirname(pointer), blob), pointer);
  } catch {
    await copyFile(blob, pointer);
  }
}

/** refs/<revision> := commit, written whole (temporary file + rename). */
export async function writeRef(repoDir: string, revision: string, commit: string): Promise<void> {
  if (revision === commit) return;
  const p = join(repoDir, 'refs', ...revision.split('/'));
  await mkdir(dirname(p), { recursive: true });
  const tmp = `${p}.${process.pid}.tmp`;
  await writeFile(tmp, commit);
  await rename(tmp, p);
}

/** Is there a file (through its symlink) at `p`? A dangling link is no file. */
export const present = (p: string): boolean => existsSync(p) && statSync(p).isFile();

/** The shard names a downloaded index lists, each checked to stay inside the snapshot. */
export function indexShards(indexPath: string, what: string): string[] {
  const size = statSync(indexPath).size;
  if (size > MAX_INDEX_BYTES) throw new HubError(`${what}: ${size} bytes, more than an index needs (${MAX_INDEX_BYTES}); refused`);
  let map: unknown;
  try {
    map = (JSON.parse(readFileSync(indexPath, 'utf8')) as { weight_map?: unknown }).weight_map;
  } catch (e) {
    throw new HubError(`${what}: not valid JSON (${(e as Error).message})`);
  }
  if (!map || typeof map !== 'object' || Array.isArray(map)) throw new HubError(`${what}: no "weight_map" object`);
  const shards = new Set<string>();
  for (const f of Object.values(map as Record<string, unknown>)) {
    if (typeof f !== 'string') throw new HubError(`${what}: a weight_map entry is not a file name`);
    shards.add(checkRepoFileName(f, what));
  }
  return [...shards].sort();
}

/**
 * The files concord needs, from the repo's file list: weights first decided (GGUF, index, single
 * file), then the side files the repo has.
 */
export function chooseFiles(files: string[], id: string, ggufFile?: string): { side: string[]; weights: string[]; index: boolean } {
  const have = new Set(files);
  if (ggufFile) {
    if (!have.has(ggufFile)) {
      const ggufs = files.filter((f) => f.endsWith('.gguf'));
      throw new HubError(`${id} has no file ${JSON.stringify(ggufFile)}${ggufs.length ? `; its GGUF files: ${ggufs.slice(0, 12).join(', ')}${ggufs.length > 12 ? ', …' : ''}` : ' (and no GGUF files)'}`);
    }
    return { side: [], weights: [ggufFile], index: false };
  }
  const side = SIDE_FILES.filter((f) => have.has(f));
  if (have.has(INDEX_FILE)) return { side, weights: [INDEX_FILE], index: true };
  if (have.has(SINGLE_FILE)) return { side, weights: [SINGLE_FILE], index: false };
  const ggufs = files.filter((f) => f.endsWith('.gguf'));
  const hint = ggufs.length ? `; it has GGUF files — pick one with --gguf-file (${ggufs.slice(0, 6).join(', ')}${ggufs.length > 6 ? ', …' : ''})` : files.some((f) => f.endsWith('.bin')) ? ' (pytorch .bin weights are not supported)' : '';
  throw new HubError(`${id} has neither ${SINGLE_FILE} nor ${INDEX_FILE}${hint}`);
}

/** Is a snapshot already whole for what concord reads (no request needed)? */
export function snapshotComplete(snap: string, ggufFile?: string): boolean {
  if (ggufFile) return present(join(snap, ...ggufFile.split('/')));
  if (!present(join(snap, 'config.json'))) return false;
  const index = join(snap, INDEX_FILE);
  if (present(index)) {
    try {
      return indexShards(index, index).every((f) => present(join(snap, ...f.split('/'))));
    } catch {
      return false;
    }
  }
  return present(join(snap, SINGLE_FILE));
}
