// Shared WGSL (shaders/common/) is composed in by `//#include`, never copied (src/gpu/shaders.ts).

import * as fs from 'node:fs';
import * as path from 'node:path';
import { expect, test } from 'vitest';
import { composeShader, registerShaders, shaderSource } from '../src/gpu/shaders.js';

const DIR = path.join(__dirname, '..', 'shaders');
const SHARED = /^\s*fn\s+(sigmoid|silu|gelu_tanh|tanh_safe|reduce_sum|merge_splits)\s*\(|^\s*var<workgroup>\s+red\s*:\s*array<f32,\s*WG>/gm;

function wgslFiles(dir: string): string[] {
  return fs.readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const p = path.join(dir, e.name);
    return e.isDirectory() ? wgslFiles(p) : e.name.endsWith('.wgsl') ? [p] : [];
  });
}

test('the shared helpers are defined once, in shaders/common/, and every shader that uses them gets exactly one copy', () => {
  const copies: string[] = [];
  let users = 0;
  for (const f of wgslFiles(DIR)) {
    const name = path.relative(DIR, f).replace(/\\/g, '/').replace(/\.wgsl$/, '');
    if (name.startsWith('common/')) continue;
    const raw = fs.readFileSync(f, 'utf8');
    for (const m of raw.matchAll(SHARED)) copies.push(`${name}: ${m[0].trim()}`);
    if (!raw.includes('//#include')) continue;
    users++;
    const text = shaderSource(name);
    expect(text, name).not.toMatch(/^\s*\/\/#include/m);
    for (const fn of ['sigmoid', 'tanh_safe', 'reduce_sum', 'merge_splits']) expect(text.match(new RegExp(`^fn ${fn}\\(`, 'gm'))?.length ?? 0, `${name}: fn ${fn}`).toBeLessThanOrEqual(1);
  }
  expect(copies).toEqual([]);
  expect(users).toBeGreaterThanOrEqual(8); // act ×2, attention ×2, logprob/common, matmul/glu, layernorm, rmsnorm, cosine/normalize
});

test('an include appears once per composed shader, however many parts include it; a missing one is named', () => {
  registerShaders({
    'test-inc/lib': 'fn lib_fn() -> f32 { return 1.0; }',
    'test-inc/a': '//#include test-inc/lib\nfn a() -> f32 { return lib_fn(); }',
    'test-inc/b': '  //#include test-inc/lib\nfn b() -> f32 { return lib_fn(); }',
    'test-inc/bad': '//#include test-inc/none',
  });
  expect(shaderSource('test-inc/a')).toBe('fn lib_fn() -> f32 { return 1.0; }\nfn a() -> f32 { return lib_fn(); }');
  const name = composeShader('test-inc/a+b', '// header\n', ['test-inc/a', 'test-inc/b']);
  const text = shaderSource(name);
  expect(text.match(/fn lib_fn/g)).toHaveLength(1);
  expect(text).toContain('fn a()');
  expect(text).toContain('fn b()');
  expect(() => shaderSource('test-inc/bad')).toThrow(/test-inc\/bad.*#include test-inc\/none.*not found/);
});
