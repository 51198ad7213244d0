// Before any model is loaded, the file jobs check their paths: the input readable and a regular
// file (InputError, exit 3), every output writable, not a directory and all distinct (PathError,
// exit 2). Nothing is created or touched here.

import * as fs from 'node:fs';
import * as path from 'node:path';
import { UsageError } from '../errors.js';
import { checkReadable } from '../io/inputs.js';

/** Output paths that cannot be used: colliding, in a missing directory, a directory, locked (exit 2). */
export class PathError extends UsageError {
  override readonly pointsAtHelp = false;
}

export interface PreflightOptions {
  /** The input file (checked: exists, a regular file, readable). */
  input?: string;
  output?: string;
  errors?: string;
  dropOut?: string;
  scoredOut?: string;
  summary?: string;
  /** More outputs, with the flag that names them in messages. */
  more?: { flag: string; path: string }[];
}

const FLAG: Record<string, string> = { output: '-o', errors: '--errors', dropOut: '--drop-out', scoredOut: '--scored-out', summary: '--summary' };

/** Check the input like preflightPaths does (InputError, exit 3). Never blocks (no FIFO is opened). */
export const checkInputFile = (input: string): void => checkReadable(input);

/** dev:ino of an existing file, else its absolute path with the directory's symlinks resolved. */
function fileKey(p: string): string {
  try {
    const st = fs.statSync(p);
    return `ino:${st.dev}:${st.ino}`;
  } catch {
    let dir = path.dirname(path.resolve(p));
    try { dir = fs.realpathSync(dir); } catch { /* reported by the directory check */ }
    return `path:${path.join(dir, path.basename(p))}`;
  }
}

/**
 * Everything about the paths that can be checked before a model is loaded: the input (InputError,
 * exit 3) and every output (PathError, exit 2): its directory exists and is writable, it is not a
 * directory, and no two of them — input included — are the same file (by inode when they exist,
 * by resolved path otherwise). Nothing is created or touched. Returns the outputs, for lockOutputs.
 */
export function preflightPaths(o: PreflightOptions): { outputs: string[] } {
  if (o.input !== undefined) checkInputFile(o.input);
  const named: { flag: string; path: string }[] = [];
  for (const k of ['output', 'errors', 'dropOut', 'scoredOut', 'summary'] as const) {
    const v = o[k];
    if (v !== undefined) named.push({ flag: FLAG[k], path: v });
  }
  named.push(...(o.more ?? []));
  const seen = new Map<string, { flag: string; path: string }>();
  if (o.input !== undefined) seen.set(fileKey(o.input), { flag: 'the input', path: o.input });
  for (const n of named) {
    const what = `${n.flag} ${n.path}`;
    if (n.path === '') throw new PathError(`${n.flag}: empty path`);
    let st: fs.Stats | null = null;
    try { st = fs.statSync(n.path); } catch { /* does not exist yet */ }
    if (st?.isDirectory()) throw new PathError(`${what}: is a directory; give a file name`);
    if (st && !st.isFile()) throw new PathError(`${what}: exists and is not a regular file`);
    const dir = path.dirname(path.resolve(n.path));
    let ds: fs.Stats;
    try {
      ds = fs.statSync(dir);
    } catch {
      throw new PathError(`${what}: the directory ${dir} does not exist`);
    }
    if (!ds.isDirectory()) throw new PathError(`${what}: ${dir} is not a directory`);
    try {
      fs.accessSync(dir, fs.constants.W_OK);
    } catch {
      throw new PathError(`${what}: the directory ${dir} is not writable`);
    }
    const key = fileKey(n.path);
    const prev = seen.get(key);
    if (prev) {
      throw new PathError(prev.flag === 'the input'
        ? `${what} is the input file; writing it would destroy the input (choose another path)`
        : `${what} and ${prev.flag} ${prev.path} are the same file; give them different paths`);
    }
    seen.set(key, n);
  }
  return { outputs: named.map((n) => n.path) };
}

