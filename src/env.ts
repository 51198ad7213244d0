// Where concord's files are and every CONCORD_* setting, in one place. Nothing else under src/
// reads process.env for a CONCORD_* variable or walks up to package.json.
//
//   import { settings, packageRoot, modelsDir, nodeBuiltin } from './env.js';
//
// `settings` is frozen; each entry reads its environment variable when asked (so a test that sets
// a variable for one case sees it), and is documented in the README's "Settings" table. In a
// browser every setting reads as unset and the folder helpers throw (no file system there).

import { UsageError } from './errors.js';

type NodeProcess = { env?: Record<string, string | undefined>; getBuiltinModule?: (m: string) => unknown };

const proc = (): NodeProcess | undefined => (globalThis as { process?: NodeProcess }).process;
const raw = (name: string): string | undefined => {
  const v = proc()?.env?.[name];
  return v === undefined || v === '' ? undefined : v;
};

/** True in Node (process.getBuiltinModule exists from Node 20.16). */
export const isNode = typeof proc()?.getBuiltinModule === 'function';

/** A Node builtin module (node:fs, node:path, …) without a static import, so browser bundles stay clean. */
export function nodeBuiltin<T = unknown>(name: 'fs' | 'path' | 'url' | 'os' | 'crypto'): T {
  const m = proc()?.getBuiltinModule?.(`node:${name}`);
  if (!m) throw new Error(`node:${name} is needed here and exists only in Node (>= 20.16); in a browser, pass the data in memory`);
  return m as T;
}

export interface Settings {
  /** CONCORD_REQUIRE_GPU=1: a missing WebGPU adapter is an error (exit 5) and `--device auto` accepts a software adapter. */
  readonly requireGpu: boolean;
  /** CONCORD_MODELS_DIR: the folder of the embedded models (default <package root>/models). */
  readonly modelsDir: string | undefined;
  /** CONCORD_SHADER_DIR: the folder of the WGSL files (default <package root>/shaders). */
  readonly shaderDir: string | undefined;
  /** CONCORD_CPU_THREADS: worker threads of the CPU backend (default: cores, at most 8). */
  readonly cpuThreads: number | undefined;
  /** CONCORD_HUB_MAX_FILE_GB: the largest file a Hub download accepts, in GiB (default 64; docs/hub.md). */
  readonly hubMaxFileGb: number;
  /** CONCORD_ORT_SPINNING=1: onnxruntime's intra-op threads spin between ops (off by default: ~25% faster on a loaded machine). */
  readonly ortSpinning: boolean;
  /** CONCORD_DAWN_NODE: a dawn.node file to load instead of the npm `webgpu` package's (the GPU bundle carries it alone). */
  readonly dawnNode: string | undefined;
  /** CONCORD_DAWN_FLAGS: dawn.node create() flags, space-separated (e.g. enable-dawn-features=allow_unsafe_apis). */
  readonly dawnFlags: string | undefined;
  /**
   * CONCORD_DAWN_ENABLE: the Dawn toggles concord enables, comma-separated, instead of its default
   * (allow_unsafe_apis,vulkan_enable_f16_on_nvidia); 'none' for none. src/gpu/device.ts dawnToggles().
   */
  readonly dawnEnable: string | undefined;
  /** CONCORD_DAWN_DISABLE: the Dawn toggles concord disables instead of its default (timestamp_quantization); 'none' for none. */
  readonly dawnDisable: string | undefined;
  /** CONCORD_GPU (or --gpu): which Vulkan adapter on a host with several GPUs — an index (PCI order) or a part of its name (src/gpu/select.ts). */
  readonly gpu: string | undefined;
  /** CONCORD_CPU_BACKEND: 'onnxruntime' (default in Node) or 'twin' (the TypeScript twin) for --device cpu, the LM and the encoder. */
  readonly cpuBackend: 'onnxruntime' | 'twin' | undefined;
  /**
   * CONCORD_KERNEL_VARIANT: force kernel variants, for benchmarks and bug reports: one variant for
   * every op that has it ('direct', 'tiled') or per op ('matmul=tiled,logprob=direct'). Read by
   * kernelVariant() in src/gpu/variants.ts, the one place that chooses variants.
   */
  readonly kernelVariant: string | undefined;
  /**
   * CONCORD_TUNE: kernel autotuning (src/tune/index.ts). 'auto' (default): use cached winners, and
   * on hardware adapters tune what is missing when a GPU model is built; 'off': neither (defaults
   * only); 'refresh': tune again, on any adapter, replacing the cached entries.
   */
  readonly tune: 'auto' | 'off' | 'refresh';
  /** CONCORD_TUNE_CACHE: the folder of the tuning cache (default ~/.cache/concord/tune). */
  readonly tuneCache: string | undefined;
  /**
   * CONCORD_TUNE_EXPERIMENTAL=1: let the variants that round activations to f16 (matmul
   * 'subgroup-matrix', logprob 'sgmat'; src/tune/index.ts EXPERIMENTAL_VARIANTS) win tuning.
   */
  readonly tuneExperimental: boolean;
  /**
   * CONCORD_MAX_LINE_BYTES: the longest JSONL line read (bytes, default 64 MiB); a longer line is a
   * per-record error naming file:line and the run goes on (docs/data.md).
   */
  readonly maxLineBytes: number;
  /**
   * CONCORD_MAX_ERRORS: bad input records a file job reports before it stops (default 100000;
   * exit 3), so a stream of invalid lines cannot write an unbounded errors file (docs/data.md).
   */
  readonly maxErrors: number;
  /** CONCORD_DRY_RUN=1: a command stops once its flags parse (tests/docs.test.ts checks every documented command this way). */
  readonly dryRun: boolean;
  /** CONCORD_DEBUG=1: the CLI prints the stack of an error, not only its one-line message. */
  readonly debug: boolean;
  /** CONCORD_TEST_MODEL_MODULE: test hook, an ES module whose loadModel() the CLI uses instead of src/models. */
  readonly testModelModule: string | undefined;
  /** CONCORD_TEST_INJECT_DEVIATION: test hook, added to every primary log-prob (shows that --verify catches it). */
  readonly testInjectDeviation: number;
  /** CONCORD_TEST_FAIL_WRITE=<substring>:<bytes>: test hook, writes to matching output paths fail with ENOSPC past <bytes>. */
  readonly testFailWrite: string | undefined;
  /** CONCORD_TEST_CRASH_AT=<point>: test hook, SIGKILL at a named point ('between-renames', 'filter-written') to test --resume. */
  readonly testCrashAt: string | undefined;
  /** CONCORD_GPU_SHORT=1: bench/gpu's run in its short mode (tiny shapes, few pairs: the rehearsal). */
  readonly gpuShort: boolean;
  /** CONCORD_SHARED_DATA: where bench/gpu/bundle.ts finds the shared data sets (default ../shared/data). */
  readonly sharedData: string | undefined;
  /** CONCORD_BENCH_REV: the revision bench/e2e.ts records with its results. */
  readonly benchRev: string | undefined;
  /** CONCORD_BENCH_STACK=1: bench/e2e.ts keeps the stack of a failed row. */
  readonly benchStack: boolean;
}

/** A CONCORD_* variable with a value outside what it allows (exit 2, naming the variable and the range). */
export class SettingError extends UsageError {
  override readonly pointsAtHelp = false;
}

const num = (name: string): number | undefined => {
  const v = raw(name);
  if (v === undefined) return undefined;
  const n = Number(v);
  if (!Number.isFinite(n)) throw new SettingError(`${name}=${v}: not a number`);
  return n;
};

/** An integer setting in [min, max]; undefined when unset. */
const int = (name: string, min: number, max: number): number | undefined => {
  const v = raw(name);
  if (v === undefined) return undefined;
  if (!/^\d+$/.test(v.trim()) || Number(v) < min || Number(v) > max) throw new SettingError(`${name}=${v}: must be an integer in ${min}..${max}`);
  return Number(v);
};

/** One of the listed values; undefined when unset. */
function oneOf<T extends string>(name: string, allowed: readonly T[]): T | undefined {
  const v = raw(name);
  if (v !== undefined && !allowed.includes(v as T)) throw new SettingError(`${name} must be ${allowed.join(', ')} (got '${v}')`);
  return v as T | undefined;
}

/** The most worker threads CONCORD_CPU_THREADS may ask for. */
export const MAX_CPU_THREADS = 256;

/** A whole number ≥ 1 (default when unset); anything else is a clear error naming the variable. */
const positiveInt = (name: string, dflt: number): number => {
  const v = raw(name);
  if (v === undefined) return dflt;
  const n = Number(v);
  if (!Number.isSafeInteger(n) || n < 1) throw new SettingError(`${name}=${v}: must be a whole number ≥ 1`);
  return n;
};

export const settings: Settings = Object.freeze({
  get requireGpu() { return raw('CONCORD_REQUIRE_GPU') === '1'; },
  get modelsDir() { return raw('CONCORD_MODELS_DIR'); },
  get shaderDir() { return raw('CONCORD_SHADER_DIR'); },
  get cpuThreads() { return int('CONCORD_CPU_THREADS', 1, MAX_CPU_THREADS); },
  get hubMaxFileGb() {
    const n = num('CONCORD_HUB_MAX_FILE_GB') ?? 64;
    if (n <= 0 || n > 4096) throw new SettingError(`CONCORD_HUB_MAX_FILE_GB must be in (0, 4096] (got ${n})`);
    return n;
  },
  get ortSpinning() { return raw('CONCORD_ORT_SPINNING') === '1'; },
  get dawnNode() { return raw('CONCORD_DAWN_NODE'); },
  get dawnFlags() { return raw('CONCORD_DAWN_FLAGS'); },
  get dawnEnable() { return raw('CONCORD_DAWN_ENABLE'); },
  get dawnDisable() { return raw('CONCORD_DAWN_DISABLE'); },
  get gpu() { return raw('CONCORD_GPU'); },
  get cpuBackend() { return oneOf('CONCORD_CPU_BACKEND', ['onnxruntime', 'twin'] as const); },
  get kernelVariant() { return raw('CONCORD_KERNEL_VARIANT'); },
  get tune() { return oneOf('CONCORD_TUNE', ['auto', 'off', 'refresh'] as const) ?? 'auto'; },
  get tuneCache() { return raw('CONCORD_TUNE_CACHE'); },
  get tuneExperimental() { return raw('CONCORD_TUNE_EXPERIMENTAL') === '1'; },
  get maxLineBytes() { return positiveInt('CONCORD_MAX_LINE_BYTES', 64 * 1024 * 1024); },
  get maxErrors() { return positiveInt('CONCORD_MAX_ERRORS', 100_000); },
  get debug() { return raw('CONCORD_DEBUG') === '1'; },
  get dryRun() { return raw('CONCORD_DRY_RUN') === '1'; },
  get testModelModule() { return raw('CONCORD_TEST_MODEL_MODULE'); },
  get testInjectDeviation() { return num('CONCORD_TEST_INJECT_DEVIATION') ?? 0; },
  get testFailWrite() { return raw('CONCORD_TEST_FAIL_WRITE'); },
  get testCrashAt() { return raw('CONCORD_TEST_CRASH_AT'); },
  get gpuShort() { return raw('CONCORD_GPU_SHORT') === '1'; },
  get sharedData() { return raw('CONCORD_SHARED_DATA'); },
  get benchRev() { return raw('CONCORD_BENCH_REV'); },
  get benchStack() { return raw('CONCORD_BENCH_STACK') === '1'; },
});

/** The environment variable behind each setting, for the README table and error messages. */
export const SETTING_VARIABLES: Readonly<Record<keyof Settings, string>> = Object.freeze({
  requireGpu: 'CONCORD_REQUIRE_GPU',
  modelsDir: 'CONCORD_MODELS_DIR',
  shaderDir: 'CONCORD_SHADER_DIR',
  cpuThreads: 'CONCORD_CPU_THREADS',
  hubMaxFileGb: 'CONCORD_HUB_MAX_FILE_GB',
  cpuBackend: 'CONCORD_CPU_BACKEND',
  gpu: 'CONCORD_GPU',
  dawnNode: 'CONCORD_DAWN_NODE',
  dawnFlags: 'CONCORD_DAWN_FLAGS',
  dawnEnable: 'CONCORD_DAWN_ENABLE',
  dawnDisable: 'CONCORD_DAWN_DISABLE',
  ortSpinning: 'CONCORD_ORT_SPINNING',
  kernelVariant: 'CONCORD_KERNEL_VARIANT',
  tune: 'CONCORD_TUNE',
  tuneCache: 'CONCORD_TUNE_CACHE',
  tuneExperimental: 'CONCORD_TUNE_EXPERIMENTAL',
  maxLineBytes: 'CONCORD_MAX_LINE_BYTES',
  maxErrors: 'CONCORD_MAX_ERRORS',
  debug: 'CONCORD_DEBUG',
  dryRun: 'CONCORD_DRY_RUN',
  testModelModule: 'CONCORD_TEST_MODEL_MODULE',
  testInjectDeviation: 'CONCORD_TEST_INJECT_DEVIATION',
  testFailWrite: 'CONCORD_TEST_FAIL_WRITE',
  testCrashAt: 'CONCORD_TEST_CRASH_AT',
  gpuShort: 'CONCORD_GPU_SHORT',
  sharedData: 'CONCORD_SHARED_DATA',
  benchRev: 'CONCORD_BENCH_REV',
  benchStack: 'CONCORD_BENCH_STACK',
});

/** Read every setting once: a bad value stops a command before it loads anything (exit 2). */
export function checkSettings(): void {
  for (const k of Object.keys(SETTING_VARIABLES) as (keyof Settings)[]) void settings[k];
}

let root: string | null = null;

/** The package root: the first folder above this module holding package.json (src/ in tests, dist/src/ when built). */
export function packageRoot(): string {
  if (root) return root;
  const fs = nodeBuiltin<typeof import('node:fs')>('fs');
  const path = nodeBuiltin<typeof import('node:path')>('path');
  const url = nodeBuiltin<typeof import('node:url')>('url');
  const here = url.fileURLToPath(import.meta.url);
  for (let dir = path.dirname(here); ; ) {
    if (fs.existsSync(path.join(dir, 'package.json'))) return (root = dir);
    const up = path.dirname(dir);
    if (up === dir) throw new Error(`no package.json above ${here} (set CONCORD_MODELS_DIR and CONCORD_SHADER_DIR)`);
    dir = up;
  }
}

/** The embedded models: $CONCORD_MODELS_DIR, else <package root>/models. */
export function modelsDir(): string {
  const path = nodeBuiltin<typeof import('node:path')>('path');
  const env = settings.modelsDir;
  return env ? path.resolve(env) : path.join(packageRoot(), 'models');
}

/** The WGSL files: $CONCORD_SHADER_DIR, else <package root>/shaders. */
export function shadersDir(): string {
  const path = nodeBuiltin<typeof import('node:path')>('path');
  return settings.shaderDir ?? path.join(packageRoot(), 'shaders');
}
