// `npm run gpu:bundle`: builds the git-ignored .gpu/ folder that the bare GPU machine runs
// (`bash .gpu/run.sh`, see docs/benchmarks.md), at most 60 MiB in all:
//   node.xz            this machine's Node binary, xz -9 (run.sh unpacks it with Python's lzma)
//   dawn.node.xz       webgpu's dist/linux-x64/dawn.node alone (not the 133 MB package)
//   concord-gpu.mjs    engine + benchmarks, one esbuild bundle of bench/gpu/entry.ts, WGSL inlined
//   gl/*.deb           the Vulkan/EGL loader packages ../shared/gpu/prepare.sh fetches
//   models/stories15M  the trained checkpoint as a Hugging Face folder, f16 safetensors (xz), tokenizer.bin
//   shapes.json        model shapes whose random weights peer.py draws on the GPU machine from a seed
//   data/*.jsonl       data/sample-pairs.jsonl + the first pairs of ../shared/data (realistic lengths)
//   run.sh, peer.py    the one command and the PyTorch peers
// Slow parts (xz of Node and dawn.node, apt-get download) are cached in .gpu/ between runs and
// redone when their source changes.

import { settings } from '../../src/env.js';
import { execFileSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { loadLlama2c } from '../../src/models/llama2c.js';
import { writeSafetensors, type TensorToWrite } from '../../src/formats/safetensors.js';
import type { LoadedWeights } from '../../src/models/types.js';

export const MAX_BYTES = 60 * 2 ** 20;
const LOADER_PACKAGES = ['libvulkan1', 'libegl1', 'libglvnd0', 'libopengl0', 'libgl1', 'libglx0', 'libgles2'];
/** Pairs taken from each ../shared/data file. */
const SHARED_SLICE = 256;

function projectRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  while (!existsSync(join(dir, 'package.json'))) {
    const up = dirname(dir);
    if (up === dir) throw new Error('gpu:bundle: no package.json above this file');
    dir = up;
  }
  return dir;
}

const log = (s: string) => console.error(`gpu:bundle: ${s}`);

/** Redo `make` unless `stamp` records the same source (path, size, mtime) and xz level. */
function cached(out: string, source: string, level: number, make: () => void): void {
  const st = statSync(source);
  const key = `${source} ${st.size} ${st.mtimeMs} xz-${level}`;
  const stamp = `${out}.stamp`;
  if (existsSync(out) && existsSync(stamp) && readFileSync(stamp, 'utf8') === key) { log(`${relative(process.cwd(), out)}: cached`); return; }
  make();
  writeFileSync(stamp, key);
}

function xz(src: string, dst: string, level: number): void {
  log(`xz -${level} ${src} → ${dst}${level > 3 ? ' (a minute or two)' : ''}…`);
  execFileSync('sh', ['-c', `xz -${level} -T0 -c "$0" > "$1"`, src, dst], { stdio: 'inherit' });
}

/** llama2.c's interleaved RoPE rows → HF's rotate_half order, per head (transformers' permute). */
export function permuteToHalf(w: Float32Array, nHeads: number, rows: number, cols: number): Float32Array {
  const hd = rows / nHeads, out = new Float32Array(w.length);
  for (let h = 0; h < nHeads; h++) {
    for (let i = 0; i < hd / 2; i++) {
      for (let b = 0; b < 2; b++) {
        const src = (h * hd + 2 * i + b) * cols, dst = (h * hd + b * (hd / 2) + i) * cols;
        out.set(w.subarray(src, src + cols), dst);
      }
    }
  }
  return out;
}

/** stories15M (llama2.c) → a Hugging Face LlamaForCausalLM folder with f16 safetensors. */
export function writeStoriesHf(w: LoadedWeights, dir: string): void {
  const c = w.config;
  const T = (name: string, data: Float32Array, shape: number[]): TensorToWrite => ({ name, data, shape, dtype: 'F16' });
  const g = (n: string) => w.tensors.get(n)!;
  const { dim: d, hiddenDim: ff, vocabSize: V } = c;
  const kvd = c.nKvHeads * c.headDim;
  const ts: TensorToWrite[] = [T('model.embed_tokens.weight', g('tok_emb'), [V, d])];
  for (let i = 0; i < c.nLayers; i++) {
    const p = `model.layers.${i}.`, o = `layers.${i}.`;
    ts.push(
      T(`${p}input_layernorm.weight`, g(`${o}attn_norm.weight`), [d]),
      T(`${p}self_attn.q_proj.weight`, permuteToHalf(g(`${o}wq`), c.nHeads, d, d), [d, d]),
      T(`${p}self_attn.k_proj.weight`, permuteToHalf(g(`${o}wk`), c.nKvHeads, kvd, d), [kvd, d]),
      T(`${p}self_attn.v_proj.weight`, g(`${o}wv`), [kvd, d]),
      T(`${p}self_attn.o_proj.weight`, g(`${o}wo`), [d, d]),
      T(`${p}post_attention_layernorm.weight`, g(`${o}ffn_norm.weight`), [d]),
      T(`${p}mlp.gate_proj.weight`, g(`${o}w_gate`), [ff, d]),
      T(`${p}mlp.up_proj.weight`, g(`${o}w_up`), [ff, d]),
      T(`${p}mlp.down_proj.weight`, g(`${o}w_down`), [d, ff]),
    );
  }
  ts.push(T('model.norm.weight', g('final_norm.weight'), [d]));
  if (!c.tiedEmbeddings) ts.push(T('lm_head.weight', g('lm_head'), [V, d]));
  mkdirSync(dir, { recursive: true });
  writeSafetensors(join(dir, 'model.safetensors'), ts);
  writeFileSync(join(dir, 'config.json'), JSON.stringify({
    architectures: ['LlamaForCausalLM'], model_type: 'llama', hidden_size: d, intermediate_size: ff, num_hidden_layers: c.nLayers,
    num_attention_heads: c.nHeads, num_key_value_heads: c.nKvHeads, vocab_size: V, max_position_embeddings: c.maxSeqLen,
    rms_norm_eps: c.normEps, rope_theta: c.ropeTheta, tie_word_embeddings: c.tiedEmbeddings, hidden_act: 'silu',
    bos_token_id: 1, eos_token_id: 2, torch_dtype: 'float16', use_cache: false,
  }, null, 1) + '\n');
}

async function esbuildBundle(root: string, out: string): Promise<void> {
  const esbuild = await import('esbuild');
  const shaderDir = join(root, 'shaders');
  const walk = (d: string): string[] => readdirSync(d, { withFileTypes: true }).flatMap((e) => (e.isDirectory() ? walk(join(d, e.name)) : e.name.endsWith('.wgsl') ? [join(d, e.name)] : []));
  const sources: Record<string, string> = {};
  for (const f of walk(shaderDir)) sources[relative(shaderDir, f).replace(/\.wgsl$/, '')] = readFileSync(f, 'utf8');
  const registerPath = join(root, 'src', 'gpu', 'shaders.ts');
  await esbuild.build({
    entryPoints: [join(root, 'bench', 'gpu', 'entry.ts')],
    bundle: true, platform: 'node', format: 'esm', target: 'node20', outfile: out, logLevel: 'warning',
    // some dependencies are CommonJS: give them a require()
    banner: { js: "import { createRequire as __cr } from 'node:module'; const require = __cr(import.meta.url);" },
    external: ['webgpu', 'onnxruntime-node', '@huggingface/transformers'],
    // the bundle has no package.json beside it: concordVersion() (src/tune/index.ts) reads this instead
    define: { 'globalThis.__CONCORD_VERSION__': JSON.stringify((JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as { version: string }).version) },
    plugins: [{
      name: 'concord-shaders',
      setup(b) {
        b.onLoad({ filter: /bench[\\/]gpu[\\/]shaders-bundled\.ts$/ }, () => ({
          contents: `import { registerShaders } from ${JSON.stringify(registerPath)};\nregisterShaders(${JSON.stringify(sources)});\n`,
          loader: 'ts', resolveDir: root,
        }));
      },
    }],
  });
  log(`concord-gpu.mjs: ${Object.keys(sources).length} shaders inlined, ${(statSync(out).size / 1024).toFixed(0)} KiB`);
}

function dataFiles(root: string, gpu: string, shared: boolean): void {
  const dir = join(gpu, 'data');
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(dir, { recursive: true });
  copyFileSync(join(root, 'data', 'sample-pairs.jsonl'), join(dir, '0-sample-pairs.jsonl'));
  if (!shared) return;
  // ../shared/data from the project root (the main checkout); a worktree one level deeper, or CONCORD_SHARED_DATA
  const candidates = [settings.sharedData, join(root, '..', 'shared', 'data'), join(root, '..', '..', 'shared', 'data')].filter((d): d is string => !!d);
  const sharedDir = candidates.find((d) => existsSync(d)) ?? candidates[0];
  const si = join(sharedDir, 'self-instruct-user-oriented.jsonl');
  const al = join(sharedDir, 'alpaca-cherry-5pct.json');
  if (existsSync(si)) writeFileSync(join(dir, '1-self-instruct-user-oriented.jsonl'), readFileSync(si, 'utf8').split('\n').filter((l) => l.trim()).slice(0, SHARED_SLICE).join('\n') + '\n');
  if (existsSync(al)) writeFileSync(join(dir, '2-alpaca-cherry-5pct.jsonl'), (JSON.parse(readFileSync(al, 'utf8')) as unknown[]).slice(0, SHARED_SLICE).map((r) => JSON.stringify(r)).join('\n') + '\n');
  if (!existsSync(si) || !existsSync(al)) log(`WARNING: ${sharedDir} is missing: only data/sample-pairs.jsonl is bundled (short pairs; the shared data gives realistic lengths)`);
}

function loaderDebs(gpu: string, fetch: boolean): void {
  const dir = join(gpu, 'gl');
  mkdirSync(dir, { recursive: true });
  if (!fetch) return;
  const have = readdirSync(dir).filter((f) => f.endsWith('.deb'));
  if (LOADER_PACKAGES.every((p) => have.some((f) => f.startsWith(`${p}_`)))) { log('gl/*.deb: cached'); return; }
  // as ../shared/gpu/prepare.sh does: amd64 lists in a temp dir, apt-get download
  const lists = execFileSync('mktemp', ['-d']).toString().trim();
  mkdirSync(join(lists, 'partial'), { recursive: true });
  const o = ['-oAPT::Architecture=amd64', '-oAPT::Architectures=amd64', `-oDir::State::Lists=${lists}`];
  log('apt-get download the Vulkan/EGL loader packages…');
  execFileSync('apt-get', [...o, 'update', '-qq'], { stdio: 'inherit' });
  execFileSync('apt-get', [...o, 'download', ...LOADER_PACKAGES], { cwd: dir, stdio: ['ignore', 'ignore', 'inherit'] });
  rmSync(lists, { recursive: true, force: true });
}

function sizeOf(p: string): number {
  const st = statSync(p);
  return st.isDirectory() ? readdirSync(p).reduce((n, f) => n + sizeOf(join(p, f)), 0) : st.size;
}

export interface BundleOptions {
  root?: string;
  /** Output folder (default <root>/.gpu). */
  out?: string;
  /** xz level (default 9). The 60 MiB limit is enforced at level 9 only; the test builds at level 0 for speed. */
  xzLevel?: number;
  /** apt-get download the loader packages (default true; the test, which must not need the network, copies them from `debsFrom` if there). */
  fetchDebs?: boolean;
  debsFrom?: string;
  /** Bundle a slice of ../shared/data (default true). */
  sharedData?: boolean;
}

export async function buildBundle(opts: BundleOptions = {}): Promise<string> {
  const root = opts.root ?? projectRoot();
  const gpu = opts.out ?? join(root, '.gpu');
  const level = opts.xzLevel ?? 9;
  mkdirSync(gpu, { recursive: true });
  cached(join(gpu, 'node.xz'), process.execPath, level, () => xz(process.execPath, join(gpu, 'node.xz'), level));
  const req = createRequire(join(root, 'package.json'));
  const dawn = join(dirname(req.resolve('webgpu/package.json')), 'dist', 'linux-x64', 'dawn.node');
  cached(join(gpu, 'dawn.node.xz'), dawn, level, () => xz(dawn, join(gpu, 'dawn.node.xz'), level));
  loaderDebs(gpu, opts.fetchDebs ?? true);
  if (opts.debsFrom && existsSync(opts.debsFrom)) {
    for (const f of readdirSync(opts.debsFrom).filter((n) => n.endsWith('.deb'))) copyFileSync(join(opts.debsFrom, f), join(gpu, 'gl', f));
  }
  const stories = join(root, 'models', 'stories15M', 'model.bin');
  if (!existsSync(stories)) throw new Error(`${stories} not found: run npm run fetch-models`);
  const sdir = join(gpu, 'models', 'stories15M');
  cached(join(sdir, 'model.safetensors.xz'), stories, level, () => {
    rmSync(sdir, { recursive: true, force: true });
    writeStoriesHf(loadLlama2c(stories, 'stories15M (llama2.c)'), sdir);
    copyFileSync(join(root, 'models', 'stories15M', 'tokenizer.bin'), join(sdir, 'tokenizer.bin'));
    xz(join(sdir, 'model.safetensors'), join(sdir, 'model.safetensors.xz'), level);
    rmSync(join(sdir, 'model.safetensors'));
  });
  await esbuildBundle(root, join(gpu, 'concord-gpu.mjs'));
  dataFiles(root, gpu, opts.sharedData ?? true);
  for (const f of ['run.sh', 'peer.py', 'shapes.json']) copyFileSync(join(root, 'bench', 'gpu', f), join(gpu, f));
  execFileSync('chmod', ['+x', join(gpu, 'run.sh')]);
  const parts = readdirSync(gpu).filter((f) => !f.endsWith('.stamp')).map((f) => ({ f, bytes: sizeOf(join(gpu, f)) }));
  const total = sizeOf(gpu);
  for (const p of parts) log(`  ${p.f.padEnd(20)} ${(p.bytes / 2 ** 20).toFixed(2)} MiB`);
  log(`.gpu: ${(total / 2 ** 20).toFixed(2)} MiB in all (limit ${MAX_BYTES / 2 ** 20} MiB)`);
  if (total > MAX_BYTES && level === 9) throw new Error(`.gpu is ${(total / 2 ** 20).toFixed(2)} MiB, over the ${MAX_BYTES / 2 ** 20} MiB the device tool can carry beside the tree`);
  writeFileSync(join(gpu, 'MANIFEST.txt'), `concord GPU bundle, built ${new Date().toISOString()}\n` +
    `carry: [".gpu"]; run: bash .gpu/run.sh (timeout_s 590); short rehearsal: bash .gpu/run.sh --short\n` +
    parts.map((p) => `${p.f}\t${p.bytes}`).join('\n') + '\n');
  return gpu;
}

const isMain = process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1];
if (isMain) {
  buildBundle().then((d) => log(`ready: ${d}`), (e) => { console.error(`gpu:bundle: ${(e as Error).message}`); process.exit(1); });
}
