// Every output concord writes goes through here: checked writes (every short write retried, every
// error an OutputError naming the file), whole files written atomically (a temporary file next to
// the final one, fsync, rename), append-only writers that become their final file on commit(), and
// the record writer every command writes records through (JSONL or Parquet by extension or by
// --out-format: openWriter).

import * as fs from 'node:fs';
import * as path from 'node:path';
import { settings } from '../env.js';
import { ConcordError } from '../errors.js';

/** Writing an output failed (disk full, I/O error): the command fails and no final file is torn. */
export class OutputError extends ConcordError {}

function outputError(file: string, what: string, e: unknown): OutputError {
  const err = e as NodeJS.ErrnoException;
  return new OutputError(`${file}: ${what} failed: ${err.code ? `${err.code} ` : ''}${(err.message ?? String(e)).replace(/^[A-Z]+: /, '')}`);
}

/**
 * Test hook: CONCORD_TEST_FAIL_WRITE=<substring>:<bytes> makes writes to files whose path contains
 * <substring> fail with ENOSPC once <bytes> bytes have gone to that file (the first part of the
 * write that crosses the limit is written, as a full disk does).
 */
function injectedLimit(file: string): number {
  const spec = settings.testFailWrite;
  if (!spec) return Infinity;
  const k = spec.lastIndexOf(':');
  const sub = spec.slice(0, k), n = Number(spec.slice(k + 1));
  return k > 0 && file.includes(sub) && Number.isFinite(n) ? n : Infinity;
}

/** An open file with every write checked: short writes are retried, errors raise OutputError. */
export class CheckedFile {
  private fd: number | null;
  /** Bytes in the file (this object's writes included). */
  bytes = 0;
  private readonly limit: number;

  constructor(readonly file: string, flags: 'w' | 'a', readonly label = file) {
    try {
      this.fd = fs.openSync(file, flags);
      if (flags === 'a') this.bytes = fs.fstatSync(this.fd).size;
    } catch (e) {
      throw outputError(label, 'opening', e);
    }
    this.limit = injectedLimit(label);
  }

  write(data: string | Buffer): void {
    const buf = typeof data === 'string' ? Buffer.from(data, 'utf8') : data;
    for (let off = 0; off < buf.length;) {
      let n: number;
      try {
        if (this.fd === null) throw new Error('file already closed');
        const room = this.limit - this.bytes;
        if (room <= 0) throw Object.assign(new Error('no space left on device (CONCORD_TEST_FAIL_WRITE)'), { code: 'ENOSPC' });
        n = fs.writeSync(this.fd, buf, off, Math.min(buf.length - off, room));
      } catch (e) {
        throw outputError(this.label, 'writing', e);
      }
      if (n <= 0) throw outputError(this.label, 'writing', Object.assign(new Error('the write wrote nothing'), { code: 'EIO' }));
      off += n;
      this.bytes += n;
    }
  }

  sync(): void {
    try {
      if (this.fd !== null) fs.fsyncSync(this.fd);
    } catch (e) {
      throw outputError(this.label, 'fsync', e);
    }
  }

  truncate(len: number): void {
    try {
      if (this.fd !== null) fs.ftruncateSync(this.fd, len);
      this.bytes = len;
    } catch (e) {
      throw outputError(this.label, 'truncating', e);
    }
  }

  close(): void {
    if (this.fd === null) return;
    const fd = this.fd;
    this.fd = null;
    try {
      fs.closeSync(fd);
    } catch (e) {
      throw outputError(this.label, 'closing', e);
    }
  }

  /** Close, ignoring errors (cleanup paths). */
  closeQuietly(): void {
    try { this.close(); } catch { /* cleanup */ }
  }
}

function fsyncDir(dir: string): void {
  try {
    const fd = fs.openSync(dir, 'r');
    try { fs.fsyncSync(fd); } finally { fs.closeSync(fd); }
  } catch { /* not supported everywhere; the rename itself is atomic */ }
}

export const tmpPathFor = (file: string) => `${file}.tmp-${process.pid}`;

export function renameInto(tmp: string, file: string): void {
  try {
    fs.renameSync(tmp, file);
  } catch (e) {
    throw outputError(file, `renaming ${tmp} into place`, e);
  }
  fsyncDir(path.dirname(path.resolve(file)));
}

/** Write a whole file atomically: a temporary file next to it, every write checked, fsync, rename. */
export function writeFileAtomic(file: string, data: string): void {
  const tmp = tmpPathFor(file);
  const f = new CheckedFile(tmp, 'w', file);
  try {
    f.write(data);
    f.sync();
    f.close();
  } catch (e) {
    f.closeQuietly();
    fs.rmSync(tmp, { force: true });
    throw e;
  }
  renameInto(tmp, file);
}

/** A buffered append-only file that becomes `final` atomically on commit(). Every write is checked. */
export class AtomicWriter {
  private f: CheckedFile;
  private buf: string[] = [];
  private bufLen = 0;
  /** Bytes written (flushed or not). */
  bytes = 0;
  lines = 0;

  constructor(readonly final: string, readonly tmp = tmpPathFor(final), opts: { append?: boolean } = {}) {
    this.f = new CheckedFile(tmp, opts.append ? 'a' : 'w', final);
    this.bytes = this.f.bytes;
  }

  write(line: string): void {
    const s = line.endsWith('\n') ? line : line + '\n';
    this.buf.push(s);
    this.bufLen += s.length;
    this.bytes += Buffer.byteLength(s);
    this.lines++;
    if (this.bufLen > 1 << 16) this.flush();
  }

  flush(): void {
    if (this.buf.length === 0) return;
    const data = this.buf.join('');
    this.buf = [];
    this.bufLen = 0;
    this.f.write(data);
  }

  sync(): void {
    this.flush();
    this.f.sync();
  }

  /** Drop everything after the first `len` bytes (flushing first). */
  truncate(len: number): void {
    this.flush();
    this.f.truncate(len);
    this.bytes = len;
  }

  commit(): void {
    try {
      this.sync();
      this.f.close();
    } catch (e) {
      this.abort();
      throw e;
    }
    renameInto(this.tmp, this.final);
  }

  /** Close without renaming; remove the temporary file unless `keep`. */
  abort(keep = false): void {
    if (keep) {
      try { this.flush(); } catch { /* the checkpoint stands */ }
    }
    this.buf = [];
    this.bufLen = 0;
    this.f.closeQuietly();
    if (!keep) fs.rmSync(this.tmp, { force: true });
  }
}
