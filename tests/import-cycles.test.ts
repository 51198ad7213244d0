// No import cycles under src/, kernels/ or bench/: every static (value) import between the
// project's own modules forms a DAG. Type-only imports are erased by the compiler and do not count.

import * as fs from 'node:fs';
import * as path from 'node:path';
import { expect, test } from 'vitest';

const ROOT = path.resolve(__dirname, '..');
const DIRS = ['src', 'kernels', 'bench'];

function files(dir: string): string[] {
  return fs.readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const p = path.join(dir, e.name);
    return e.isDirectory() ? files(p) : e.name.endsWith('.ts') && !e.name.endsWith('.d.ts') ? [p] : [];
  });
}

/** Static value imports of a module: `import … from './x.js'`, `export … from './x.js'`, `import './x.js'`. */
export function importsOf(file: string, text = fs.readFileSync(file, 'utf8')): string[] {
  const out: string[] = [];
  const re = /^\s*(import|export)\s+(type\s+)?([^'";]*?\s+from\s+)?['"]([^'"]+)['"]/gm;
  for (const m of text.matchAll(re)) {
    if (m[2]) continue; // import type / export type
    if (m[1] === 'export' && !m[3]) continue;
    const spec = m[4];
    if (!spec.startsWith('.')) continue;
    // `import { type A, type B } from` is erased too.
    if (m[3] && /^\{[^}]*\}\s+from\s+$/.test(m[3]) && m[3].slice(1, m[3].indexOf('}')).split(',').every((n) => /^\s*type\s/.test(n) || !n.trim())) continue;
    const target = path.resolve(path.dirname(file), spec.replace(/\.js$/, '.ts'));
    if (fs.existsSync(target)) out.push(target);
  }
  return out;
}

export function findCycle(graph: Map<string, string[]>): string[] | null {
  const state = new Map<string, 1 | 2>();
  const stack: string[] = [];
  const visit = (n: string): string[] | null => {
    state.set(n, 1);
    stack.push(n);
    for (const m of graph.get(n) ?? []) {
      if (state.get(m) === 1) return [...stack.slice(stack.indexOf(m)), m];
      if (!state.has(m)) {
        const c = visit(m);
        if (c) return c;
      }
    }
    stack.pop();
    state.set(n, 2);
    return null;
  };
  for (const n of graph.keys()) if (!state.has(n)) { const c = visit(n); if (c) return c; }
  return null;
}

test('the cycle finder finds a planted cycle (and the parser sees value imports only)', () => {
  expect(importsOf(path.join(ROOT, 'src/x.ts'), "import type { A } from './cli/main.js';\nimport { type B } from './cli/common.js';\n")).toEqual([]);
  expect(importsOf(path.join(ROOT, 'src/x.ts'), "import { A } from './cli/main.js';\n")).toEqual([path.join(ROOT, 'src/cli/main.ts')]);
  expect(findCycle(new Map([['a', ['b']], ['b', ['c']], ['c', ['a']]]))).toEqual(['a', 'b', 'c', 'a']);
  expect(findCycle(new Map([['a', ['b']], ['b', ['c']], ['c', []]]))).toBeNull();
});

test('no import cycle under src/, kernels/, bench/', () => {
  const graph = new Map<string, string[]>();
  for (const d of DIRS) for (const f of files(path.join(ROOT, d))) graph.set(f, importsOf(f));
  expect(graph.size).toBeGreaterThan(50);
  const cycle = findCycle(graph);
  expect(cycle?.map((f) => path.relative(ROOT, f)) ?? null).toBeNull();
});

test('CONCORD_* settings are read only in src/env.ts', () => {
  const offenders: string[] = [];
  for (const d of DIRS) {
    for (const f of files(path.join(ROOT, d))) {
      if (f === path.join(ROOT, 'src', 'env.ts')) continue;
      fs.readFileSync(f, 'utf8').split('\n').forEach((line, i) => {
        // A read (not an assignment such as --gpu setting CONCORD_GPU for the device layer).
        if (/process\.env\.CONCORD_\w+\b(?!\s*=[^=])|env\?*\.CONCORD_\w+\b(?!\s*=[^=])|\['CONCORD_\w+'\]/.test(line)) offenders.push(`${path.relative(ROOT, f)}:${i + 1}`);
      });
    }
  }
  expect(offenders).toEqual([]);
});

/** Every project import of a module, type-only and dynamic `import('…')` included (for layering rules). */
export function allImportsOf(file: string, text = fs.readFileSync(file, 'utf8')): string[] {
  const out: string[] = [];
  const re = /^\s*(?:import|export)\s+(?:type\s+)?(?:[^'";]*?\s+from\s+)?['"]([^'"]+)['"]|\bimport\(\s*['"]([^'"]+)['"]\s*\)/gm;
  for (const m of text.matchAll(re)) {
    const spec = m[1] ?? m[2];
    if (!spec.startsWith('.')) continue;
    const target = path.resolve(path.dirname(file), spec.replace(/\.js$/, '.ts'));
    if (fs.existsSync(target)) out.push(target);
  }
  return out;
}

test('the layering parser sees type-only and dynamic imports', () => {
  const f = path.join(ROOT, 'src/gpu/x.ts');
  expect(allImportsOf(f, "import type { A } from '../models/types.js';\nconst m = await import('../tune/index.js');\n")).toEqual([
    path.join(ROOT, 'src/models/types.ts'), path.join(ROOT, 'src/tune/index.ts'),
  ]);
});

test('layering: src/gpu imports only src/gpu, src/util, src/errors.ts, src/env.ts; kernels/ never imports src/tune', () => {
  const rel = (f: string) => path.relative(ROOT, f).split(path.sep).join('/');
  const gpuAllowed = (t: string) => /^src\/(gpu|util)\//.test(t) || t === 'src/errors.ts' || t === 'src/env.ts';
  const offenders: string[] = [];
  const gpuFiles = files(path.join(ROOT, 'src/gpu'));
  expect(gpuFiles.length).toBeGreaterThan(3);
  for (const f of gpuFiles) for (const t of allImportsOf(f)) if (!gpuAllowed(rel(t))) offenders.push(`${rel(f)} → ${rel(t)}`);
  for (const f of files(path.join(ROOT, 'kernels'))) for (const t of allImportsOf(f)) if (rel(t).startsWith('src/tune/')) offenders.push(`${rel(f)} → ${rel(t)}`);
  expect(offenders).toEqual([]);
});

/** Bare (package or built-in) specifiers a module imports as values, `import('…')` with a literal included. */
function bareImportsOf(file: string): string[] {
  const text = fs.readFileSync(file, 'utf8');
  const out: string[] = [];
  for (const m of text.matchAll(/^\s*(?:import|export)\s+(type\s+)?(?:([^'";]*?)\s+from\s+)?['"]([^'"]+)['"]|(?<!typeof\s+)\bimport\(\s*['"]([^'"]+)['"]\s*\)/gm)) {
    if (m[1]) continue; // import type (a `typeof import('…')` type is skipped by the lookbehind)
    if (m[2] && /^\{[^}]*\}$/.test(m[2]) && m[2].slice(1, -1).split(',').every((n) => /^\s*type\s/.test(n) || !n.trim())) continue;
    const spec = m[3] ?? m[4];
    if (!spec.startsWith('.')) out.push(spec);
  }
  return out;
}

/** Every project module reached from `entry` through static value imports (what a bundler must include). */
function staticClosure(entry: string): Set<string> {
  const seen = new Set<string>();
  const walk = (f: string) => { if (seen.has(f)) return; seen.add(f); for (const t of importsOf(f)) walk(t); };
  walk(entry);
  return seen;
}

const NODE_ONLY = /^(node:|fs$|path$|os$|url$|crypto$|worker_threads$|child_process$|onnxruntime-node$|webgpu$)/;

test('the browser-safe scorer (src/pipeline/index.ts: plan, sequences, templates, chat template, bounds, stats, scorer, composition) reaches no Node module', () => {
  const rel = (f: string) => path.relative(ROOT, f).split(path.sep).join('/');
  const closure = staticClosure(path.join(ROOT, 'src/pipeline/index.ts'));
  for (const m of ['plan', 'sequences', 'templates', 'chat-template', 'bound', 'stats', 'scorer', 'compose']) expect(closure.has(path.join(ROOT, `src/pipeline/${m}.ts`))).toBe(true);
  const offenders = [...closure].flatMap((f) => bareImportsOf(f).filter((s) => NODE_ONLY.test(s)).map((s) => `${rel(f)} → ${s}`));
  expect(offenders).toEqual([]);
  // And the Node loaders stay out of it: only the composition root (create.ts) reaches them.
  for (const m of ['src/models/index.ts', 'src/models/load.ts', 'src/pipeline/create.ts']) expect(closure.has(path.join(ROOT, m))).toBe(false);
});

test('the composition root (src/pipeline/create.ts) imports the model and encoder loaders statically', () => {
  const create = importsOf(path.join(ROOT, 'src/pipeline/create.ts'));
  expect(create).toContain(path.join(ROOT, 'src/models/index.ts'));
  expect(create).toContain(path.join(ROOT, 'src/encoder/index.ts'));
  // The Node closure does reach node: modules, so the check above is not vacuous.
  const closure = staticClosure(path.join(ROOT, 'src/pipeline/create.ts'));
  expect([...closure].some((f) => bareImportsOf(f).some((s) => NODE_ONLY.test(s)))).toBe(true);
});

test('the bytes-based loaders and the page\'s Hub client (HF loader, safetensors, tokenizer, files, src/hub/memory.ts) reach no Node module', () => {
  const rel = (f: string) => path.relative(ROOT, f).split(path.sep).join('/');
  const entries = ['src/models/hf.ts', 'src/formats/safetensors.ts', 'src/formats/files.ts', 'src/tokenizer/hf.ts', 'src/hub/memory.ts', 'src/hub/select.ts', 'src/hub/api.ts', 'src/hub/http.ts', 'src/hub/names.ts'];
  const closure = new Set(entries.flatMap((e) => [...staticClosure(path.join(ROOT, e))]));
  const offenders = [...closure].flatMap((f) => bareImportsOf(f).filter((s) => NODE_ONLY.test(s)).map((s) => `${rel(f)} → ${s}`));
  expect(offenders).toEqual([]);
  // The Node layers (the disk cache, settings from the environment) stay out of it.
  for (const m of ['src/hub/download.ts', 'src/hub/blob.ts', 'src/hub/settings.ts', 'src/hub/snapshot.ts', 'src/models/load.ts']) expect(closure.has(path.join(ROOT, m)), m).toBe(false);
  // …and the page's model source reaches them through this closure, not a copy.
  const web = staticClosure(path.join(ROOT, 'web/model-source.ts'));
  for (const m of ['src/models/hf.ts', 'src/tokenizer/hf.ts', 'src/formats/files.ts']) expect(web.has(path.join(ROOT, m)), m).toBe(true);
});
