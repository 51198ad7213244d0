// One file's bytes into blobs/<etag>, as huggingface_hub writes them: into blobs/<etag>.incomplete
// first, renamed when whole and checked. An .incomplete file left by an earlier run is continued
// with a Range request (its bytes are hashed first, so the SHA-256 covers the whole file); a server
// that ignores the Range starts it over. The body may not outgrow the declared size; a body that
// ends early leaves the .incomplete file for the next run and says so; a wrong SHA-256 (LFS files)
// or size deletes it. Nothing is written when the declared size does not fit the free disk space.

import { createHash, type Hash } from 'node:crypto';
import { createReadStream, existsSync, statSync } from 'node:fs';
import { open, rename, rm, statfs } from 'node:fs/promises';
import { dirname } from 'node:path';
import { HubError } from './names.js';
import type { FileMeta, HubHttp } from './http.js';

export interface BlobProgress {
  file: string;
  bytesDone: number;
  bytesTotal: number;
}

async function hashExisting(path: string, hash: Hash): Promise<void> {
  for await (const chunk of createReadStream(path)) hash.update(chunk as Buffer);
}

async function checkFreeSpace(dir: string, need: number, what: string): Promise<void> {
  const s = await statfs(dir);
  const free = s.bavail * s.bsize;
  if (need > free) throw new HubError(`${what}: needs ${need} more bytes but ${dir} has ${free} free; refused (free space, or point HF_HUB_CACHE elsewhere)`);
}

/** Open the body at `from` bytes: 206 continues, 200 starts over (returns 0), anything else fails. */
async function openBody(http: HubHttp, meta: FileMeta, from: number, what: string, signal: AbortSignal): Promise<{ body: ReadableStream<Uint8Array>; start: number }> {
  const headers: Record<string, string> = { 'Accept-Encoding': 'identity' };
  if (from > 0) headers.Range = `bytes=${from}-`;
  const r = await http.send(meta.url, { headers, signal }, { timeoutMs: http.s.stallTimeoutMs });
  if (r.status >= 400) throw http.statusError(r.status, r.headers.get('x-error-code'), what);
  if (!r.body) throw new HubError(`${what}: the server sent no body`);
  if (r.status === 206) {
    const m = /^bytes (\d+)-\d+\/(\d+|\*)$/.exec(r.headers.get('content-range') ?? '');
    if (!m || Number(m[1]) !== from) {
      await r.body.cancel();
      throw new HubError(`${what}: asked for bytes from ${from}, the server sent Content-Range ${JSON.stringify(r.headers.get('content-range'))}; refused`);
    }
    return { body: r.body, start: from };
  }
  if (r.status !== 200) {
    await r.body.cancel();
    throw new HubError(`${what}: HTTP ${r.status} where the file's bytes were expected`);
  }
  return { body: r.body, start: 0 };
}

/**
 * Download meta into `blobPath` (resuming `${blobPath}.incomplete`), verify it, rename it into place.
 * `what` names the file in messages ('Org/Name/model.safetensors').
 */
export async function downloadBlob(http: HubHttp, meta: FileMeta, blobPath: string, what: string, onProgress?: (p: BlobProgress) => void): Promise<void> {
  const part = `${blobPath}.incomplete`;
  let have = existsSync(part) ? statSync(part).size : 0;
  if (have > meta.size) {
    await rm(part, { force: true });
    have = 0;
  }
  await checkFreeSpace(dirname(blobPath), meta.size - have, what);
  const hash = createHash('sha256');
  if (have < meta.size) {
    const ctl = new AbortController();
    let stall: NodeJS.Timeout | undefined;
    const arm = () => { clearTimeout(stall); stall = setTimeout(() => ctl.abort(new Error(`no data for ${http.s.stallTimeoutMs / 1000} s`)), http.s.stallTimeoutMs); };
    arm();
    let opened;
    try {
      opened = await openBody(http, meta, have, what, ctl.signal);
    } finally {
      clearTimeout(stall);
    }
    const { body, start } = opened;
    if (start > 0) await hashExisting(part, hash);
    have = start;
    const fh = await open(part, start > 0 ? 'a' : 'w');
    try {
      arm();
      for await (const chunk of body as unknown as AsyncIterable<Uint8Array>) {
        arm();
        if (have + chunk.byteLength > meta.size) throw new HubError(`${what}: the server sent more than the ${meta.size} bytes it declared; refused`);
        await fh.write(chunk);
        hash.update(chunk);
        have += chunk.byteLength;
        onProgress?.({ file: what, bytesDone: have, bytesTotal: meta.size });
      }
    } catch (e) {
      if (e instanceof HubError) {
        await fh.close();
        await rm(part, { force: true });
        throw e;
      }
      // a cut connection or a stall: keep what arrived for the next run
    } finally {
      clearTimeout(stall);
      await fh.close().catch(() => {});
    }
    if (have < meta.size) throw new HubError(`${what}: download stopped at ${have} of ${meta.size} bytes (connection cut or stalled); run again to resume from ${part.split('/').pop()}`);
  } else {
    await hashExisting(part, hash);
  }
  const size = statSync(part).size;
  const sha = hash.digest('hex');
  if (size !== meta.size || (meta.sha256 && sha !== meta.sha256)) {
    await rm(part, { force: true });
    throw new HubError(`${what}: the downloaded file has ${size !== meta.size ? `${size} bytes, not ${meta.size}` : `SHA-256 ${sha}, not ${meta.sha256}`}; deleted (run again to download it anew)`);
  }
  onProgress?.({ file: what, bytesDone: size, bytesTotal: meta.size });
  await rename(part, blobPath);
}
