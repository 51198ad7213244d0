// WGSL lives in shaders/<op>.wgsl or shaders/<op>/<variant>.wgsl, never in TypeScript strings.
// In Node the files are read from the package's shaders/ folder; a browser bundle registers them
// up front (see web/ : import.meta.glob(..., {query: '?raw'})) with registerShaders().
//
// Shared WGSL (shaders/common/: math.wgsl — sigmoid, silu, gelu_tanh, tanh_safe; reduce.wgsl —
// the workgroup sum) is composed in, never copied: a line `//#include common/math` in a shader is
// replaced by that file's text, once per composed shader (a second include of the same file, in
// the same file or another part of a composeShader, is dropped).

import { nodeBuiltin, shadersDir } from '../env.js';

const registered = new Map<string, string>();
let shaderDir: string | null = null;

/** Register shader sources by name ('matmul/tiled'), e.g. from a bundler. */
export function registerShaders(sources: Record<string, string>): void {
  for (const [name, text] of Object.entries(sources)) registered.set(name, text);
}

function findShaderDir(): string {
  return (shaderDir ??= shadersDir());
}

const INCLUDE = /^[ \t]*\/\/#include[ \t]+(\S+)[ \t]*$/gm;

/** Replace `//#include name` lines by the named file's text (itself expanded), each name once per `seen`. */
function expandIncludes(text: string, seen: Set<string>, from: string): string {
  return text.replace(INCLUDE, (_line, inc: string) => {
    if (seen.has(inc)) return `// (${inc} included above)`;
    seen.add(inc);
    let body: string;
    try { body = rawSource(inc); } catch (e) { throw new Error(`shader '${from}': //#include ${inc}: ${(e as Error).message}`); }
    return expandIncludes(body, seen, inc);
  });
}

/** The WGSL text of a shader by name, e.g. 'logprob/partial', with its includes expanded. */
export function shaderSource(name: string): string {
  return expandIncludes(rawSource(name), new Set(), name);
}

/** A shader file's text as written (includes not expanded). */
function rawSource(name: string): string {
  const hit = registered.get(name);
  if (hit !== undefined) return hit;
  const fs = nodeBuiltin<typeof import('node:fs')>('fs');
  const file = `${findShaderDir()}/${name}.wgsl`;
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch {
    throw new Error(`shader '${name}' not found (looked for ${file})`);
  }
  registered.set(name, text);
  return text;
}

/**
 * Register (once) and return the name of a shader composed of a header (enable directives,
 * generated `const`s) and the named shader files in order, e.g. a kernel plus a shared WGSL
 * function file. The name must determine the text: it becomes the ProgramSpec's shader, so it is
 * part of the pipeline cache key.
 */
export function composeShader(name: string, header: string, parts: string[]): string {
  if (!registered.has(name)) {
    const seen = new Set<string>();
    registered.set(name, header + parts.map((p) => expandIncludes(rawSource(p), seen, p)).join('\n'));
  }
  return name;
}

const WEIGHT_ALIAS = 'alias WeightT = f32;';

/**
 * A composed shader whose weight binding is read as u32 words (GGUF blocks, dequantized by
 * shaders/common/quant.wgsl): composeShader's text with `alias WeightT = f32;` made u32, the way
 * GpuRuntime makes it f16 for f16 weights. Registered once under `${name}<u32>`.
 */
export function composeWordShader(name: string, parts: string[], header = ''): string {
  const words = `${name}<u32>`;
  if (!registered.has(words)) {
    const text = shaderSource(composeShader(name, header, parts));
    if (!text.includes(WEIGHT_ALIAS)) throw new Error(`shader '${name}' has no '${WEIGHT_ALIAS}': it cannot read u32 weight words`);
    registered.set(words, text.replace(WEIGHT_ALIAS, 'alias WeightT = u32;'));
  }
  return words;
}
