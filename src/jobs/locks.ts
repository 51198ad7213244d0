// One concord per output path: `<path>.lock` files taken with O_EXCL (pid, host, start time), stale
// ones (a dead holder) taken over, released at exit.

import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { PathError } from './preflight.js';

/** Another running concord holds an output path (exit 2). */
export class LockError extends PathError {}

interface LockInfo { pid: number; host: string; start: string | null; since: string }

/** The process's start time from /proc (Linux), to tell a live lock holder from a reused pid. */
function procStart(pid: number): string | null {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19] ?? null;
  } catch {
    return null;
  }
}

function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** Whether the process that wrote a lock is still running (same host: by pid and start time). */
export function lockHolderAlive(info: LockInfo): boolean {
  if (info.host !== os.hostname()) return true; // cannot tell: assume it is
  if (!pidAlive(info.pid)) return false;
  const start = procStart(info.pid);
  return !(info.start && start && start !== info.start);
}

export const lockPathFor = (p: string) => `${p}.lock`;

const held = new Set<string>();
let exitHook = false;

/**
 * Take `<path>.lock` for every output (created with O_EXCL, holding pid, host and start time). A
 * lock whose process is gone (kill -9, a crash) is stale and taken over; a live one raises
 * LockError naming the holder. Also removes temporary files (`<path>.tmp-<pid>`) that dead
 * processes left next to the outputs. Locks are released by the returned function and at exit.
 */
export function lockOutputs(paths: string[]): () => void {
  const mine: string[] = [];
  const release = () => {
    for (const l of mine.splice(0)) {
      fs.rmSync(l, { force: true });
      held.delete(l);
    }
  };
  if (!exitHook) {
    exitHook = true;
    process.on('exit', () => { for (const l of held) fs.rmSync(l, { force: true }); });
  }
  const me: LockInfo = { pid: process.pid, host: os.hostname(), start: procStart(process.pid), since: new Date().toISOString() };
  try {
    for (const p of paths) {
      const lock = lockPathFor(path.resolve(p));
      for (let attempt = 0; ; attempt++) {
        try {
          const fd = fs.openSync(lock, 'wx');
          try { fs.writeSync(fd, JSON.stringify(me) + '\n'); } finally { fs.closeSync(fd); }
          mine.push(lock);
          held.add(lock);
          break;
        } catch (e) {
          if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw new PathError(`${p}: cannot create the lock file ${lock} (${(e as Error).message})`);
        }
        let info: LockInfo | null = null;
        try { info = JSON.parse(fs.readFileSync(lock, 'utf8')) as LockInfo; } catch { /* being written, or garbage */ }
        if (info && typeof info.pid === 'number' && lockHolderAlive(info)) {
          throw new LockError(`${p} is being written by another concord (pid ${info.pid}${info.host !== me.host ? ` on ${info.host}` : ''}, since ${info.since}); wait for it to finish, or delete ${lock} if that process is gone`);
        }
        if (attempt >= 2) throw new LockError(`${p}: cannot take the lock ${lock} (it keeps reappearing); is another concord starting?`);
        if (info || attempt > 0) fs.rmSync(lock, { force: true }); // stale (or unreadable twice)
        else Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 50); // maybe being written
      }
      removeStaleTmp(p);
    }
  } catch (e) {
    release();
    throw e;
  }
  return release;
}

/** Remove `<p>.tmp-<pid>` files whose process is gone (AtomicWriter's temporary names). */
function removeStaleTmp(p: string): void {
  const dir = path.dirname(path.resolve(p)), base = path.basename(p) + '.tmp-';
  let names: string[];
  try { names = fs.readdirSync(dir); } catch { return; }
  for (const n of names) {
    if (!n.startsWith(base)) continue;
    const pid = Number(n.slice(base.length));
    if (Number.isInteger(pid) && pid > 0 && pid !== process.pid && !pidAlive(pid)) fs.rmSync(path.join(dir, n), { force: true });
  }
}

