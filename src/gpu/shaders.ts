// WGSL lives in shaders/<op>.wgsl or shaders/<op>/<variant>.wgsl, never in TypeScript strings.
// In Node the files are read from the package's shaders/ folder; a browser bundle registers them
// up front (see web/ : import.meta.glob(..., {query: '?raw'})) with registerShaders().

const registered = new Map<string, string>();
let shaderDir: string | null = null;

/** Register shader sources by name ('matmul/tiled'), e.g. from a bundler. */
export function registerShaders(sources: Record<string, string>): void {
  for (const [name, text] of Object.entries(sources)) registered.set(name, text);
}

type NodeProcess = { getBuiltinModule?: (m: string) => unknown; env?: Record<string, string | undefined> };
function nodeProcess(): NodeProcess {
  return ((globalThis as { process?: NodeProcess }).process ?? {});
}

function findShaderDir(): string {
  if (shaderDir) return shaderDir;
  // Walk up from this module (src/gpu/ in tests, dist/src/gpu/ when built, a bundle elsewhere)
  // to the first folder holding shaders/.
  const proc = nodeProcess();
  const fs = proc.getBuiltinModule?.('node:fs') as typeof import('node:fs') | undefined;
  const url = proc.getBuiltinModule?.('node:url') as typeof import('node:url') | undefined;
  const path = proc.getBuiltinModule?.('node:path') as typeof import('node:path') | undefined;
  if (!fs || !url || !path) throw new Error('shader files can only be read from disk in Node; call registerShaders() first');
  const override = proc.env?.CONCORD_SHADER_DIR;
  if (override) return (shaderDir = override);
  let dir = path.dirname(url.fileURLToPath(import.meta.url));
  for (;;) {
    const candidate = path.join(dir, 'shaders');
    if (fs.existsSync(path.join(candidate, 'matmul'))) return (shaderDir = candidate);
    const parent = path.dirname(dir);
    if (parent === dir) throw new Error(`cannot find the shaders/ folder above ${url.fileURLToPath(import.meta.url)} (set CONCORD_SHADER_DIR)`);
    dir = parent;
  }
}

/** The WGSL text of a shader by name, e.g. 'logprob/partial'. */
export function shaderSource(name: string): string {
  const hit = registered.get(name);
  if (hit !== undefined) return hit;
  const fs = nodeProcess().getBuiltinModule?.('node:fs') as typeof import('node:fs');
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
