// The `concord` CLI as a child process for tests (bin/concord.js → dist/), with the fake model of
// fake-lm.ts loaded through the CONCORD_TEST_MODEL_MODULE hook. setupCli() rebuilds dist/ when it
// is older than the sources and transpiles the fake model to plain JS. CONCORD_TEST_BIN points the
// tests at another build (e.g. an older commit, to see a test fail before its fix).

import { spawn, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import ts from 'typescript';
import { scratchDir } from './scratch.js';

export const ROOT = path.resolve(import.meta.dirname, '..', '..');
export const BIN = process.env.CONCORD_TEST_BIN ?? path.join(ROOT, 'bin', 'concord.js');

function newestMtime(dir: string): number {
  let t = 0;
  for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
    const p = path.join(dir, e.name);
    t = Math.max(t, e.isDirectory() ? newestMtime(p) : fs.statSync(p).mtimeMs);
  }
  return t;
}

export interface Run { code: number | null; signal: NodeJS.Signals | null; stdout: string; stderr: string }

export interface Cli {
  tmp: string;
  fakeModule: string;
  p(name: string): string;
  cli(args: string[], env?: Record<string, string>, opts?: { fake?: boolean; uid?: number; gid?: number }): { child: ReturnType<typeof spawn>; done: Promise<Run> };
  run(args: string[], env?: Record<string, string>, opts?: { fake?: boolean; uid?: number; gid?: number }): Promise<Run>;
  lines(file: string): any[];
}

export function setupCli(prefix = 'concord-cli-'): Cli {
  const built = path.join(ROOT, 'dist', 'src', 'cli', 'main.js');
  const srcTime = Math.max(...['src'].map((d) => newestMtime(path.join(ROOT, d))));
  if (!process.env.CONCORD_TEST_BIN && (!fs.existsSync(built) || fs.statSync(built).mtimeMs < srcTime)) {
    const r = spawnSync(process.execPath, [path.join(ROOT, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', 'tsconfig.build.json'], { cwd: ROOT, encoding: 'utf8' });
    if (!fs.existsSync(built)) throw new Error(`build failed:\n${r.stdout}\n${r.stderr}`);
  }
  const tmp = scratchDir(prefix);
  const src = fs.readFileSync(path.join(ROOT, 'tests', 'helpers', 'fake-lm.ts'), 'utf8');
  const fakeModule = path.join(tmp, 'fake-lm.mjs');
  fs.writeFileSync(fakeModule, ts.transpileModule(src, { compilerOptions: { module: ts.ModuleKind.ES2022, target: ts.ScriptTarget.ES2022 } }).outputText);
  const p = (name: string) => path.join(tmp, name);
  const cli: Cli['cli'] = (args, env = {}, opts = {}) => {
    const child = spawn(process.execPath, [BIN, ...args], {
      cwd: tmp,
      env: { ...process.env, ...(opts.fake === false ? {} : { CONCORD_TEST_MODEL_MODULE: fakeModule }), ...env },
      ...(opts.uid !== undefined ? { uid: opts.uid, gid: opts.gid ?? opts.uid } : {}),
    });
    let stdout = '', stderr = '';
    child.stdout!.on('data', (d) => { stdout += d; });
    child.stderr!.on('data', (d) => { stderr += d; });
    const done = new Promise<Run>((res) => child.on('close', (code, signal) => res({ code, signal, stdout, stderr })));
    return { child, done };
  };
  return {
    tmp, fakeModule, p, cli,
    run: (args, env = {}, opts = {}) => cli(args, env, opts).done,
    lines: (file) => fs.readFileSync(p(file), 'utf8').split('\n').filter((l) => l !== '').map((l) => JSON.parse(l)),
  };
}

const WORDS = ['cat', 'dog', 'sun', 'rain', 'ball', 'tree', 'park', 'red', 'big', 'happy', 'play', 'run', 'home', 'mom', 'friend'];

/** A deterministic Alpaca record with varied lengths. */
export function record(i: number): { id: number; instruction: string; input: string; output: string } {
  const w = (n: number, s: number) => Array.from({ length: n }, (_, k) => WORDS[(i * 7 + k * s) % WORDS.length]).join(' ');
  return { id: i, instruction: `story ${w(2 + (i % 5), 3)}`, input: i % 3 === 0 ? w(2, 5) : '', output: w(3 + ((i * 11) % 13), 2) };
}

/** Poll until `f` returns a truthy value (or throw after `ms`). */
export async function waitFor<T>(f: () => T | undefined | null | false, ms: number, what: string): Promise<T> {
  const t0 = Date.now();
  for (;;) {
    let v: T | undefined | null | false;
    try { v = f(); } catch { v = undefined; }
    if (v) return v;
    if (Date.now() - t0 > ms) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 15));
  }
}

/** No stack trace in a CLI's stderr. */
export const noStack = (stderr: string) => !/\n\s+at .+[:(]/.test(stderr);
