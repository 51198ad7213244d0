// The cache's write side and what a snapshot needs, in the layout huggingface_hub writes:
//   <cache>/models--Org--Name/blobs/<etag>            the bytes (etag: LFS sha256 or git blob id)
//   <cache>/models--Org--Name/snapshots/<commit>/<f>  a relative symlink to ../../blobs/<etag>
//   <cache>/models--Org--Name/refs/<revision>         the commit hash, no newline
// Which files concord needs from a repo is ./select.ts (shared with the browser demo).

import { copyFile, mkdir, rename, rm, symlink, writeFile } from 'node:fs/promises';
import { existsSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';
import { HubError } from './names.js';
import { INDEX_FILE, SINGLE_FILE, shardsOfIndex } from './select.js';

export { chooseFiles, INDEX_FILE, SIDE_FILES, SINGLE_FILE, shardsOfIndex } from './select.js';

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
  return shardsOfIndex(readFileSync(indexPath, 'utf8'), what);
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
