// WGSL lives in shaders/<op>.wgsl or shaders/<op>/<variant>.wgsl, never in TypeScript strings.
// In Node the files are read from the package's shaders/ folder; a browser bundle registers them
// up front (see web/ : import.meta.glob(..., {query: '?raw'})) with registerShaders().

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

/** The WGSL text of a shader by name, e.g. 'logprob/partial'. */
export function shaderSource(name: string): string {
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
  if (!registered.has(name)) registered.set(name, header + parts.map((p) => shaderSource(p)).join('\n'));
  return name;
}
