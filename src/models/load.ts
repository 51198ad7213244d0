// loadWeights(pathOrName): one entry point for every model source.
//   'default' | 'stories15M'      → <models dir>/stories15M (llama2.c model.bin + tokenizer.bin)
//   a .bin file                   → llama2.c checkpoint; tokenizer.bin (or tokenizer.json) beside it
//   a folder with model.bin       → the same
//   a folder with config.json     → Hugging Face folder (safetensors + tokenizer.json)
//   a .gguf file                  → GGUF (llama.cpp) model, its tokenizer from the file (src/formats/gguf*.ts)
//   a hub id ('Qwen/Qwen3-0.6B',  → its snapshot in the Hugging Face cache, downloaded on first use
//    'Org/Name@rev')                (src/hub/; only when no such file or folder exists; the sync
//                                   resolveModel() reads the cache only, ./hf-cache.ts)
//   'Org/Name[@rev]:FILE.gguf'    → that one GGUF file of the repo, downloaded alone (`--gguf-file FILE`
//                                   with --model Org/Name says the same: withGgufFile)
// The models dir is src/env.ts modelsDir(): <package root>/models, or CONCORD_MODELS_DIR.

import { existsSync, statSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { modelsDir } from '../env.js';
import { UsageError } from '../errors.js';
import { loadHfTokenizer } from '../tokenizer/hf.js';
import { llama2cTokenizer } from '../tokenizer/llama2c.js';
import type { TextTokenizer } from '../tokenizer/types.js';
import { loadHf } from './hf.js';
import { readLlama2cHeader } from '../formats/llama2c.js';
import { HfCacheError, looksLikeModelId, resolveCachedModel } from './hf-cache.js';
import { checkRepoFileName, hubLabel, splitModelSpec } from '../hub/names.js';
import { loadLlama2c } from './llama2c.js';
import { readGguf } from '../formats/gguf.js';
import { loadGgufWeights } from '../formats/gguf-model.js';
import { ggufTokenizer } from '../formats/gguf-tokenizer.js';
import type { LoadedWeights } from './types.js';

export const DEFAULT_MODEL = 'stories15M';
export type ModelFormat = 'llama2c' | 'hf' | 'gguf';
const NAMED_MODELS: Record<string, string> = { default: DEFAULT_MODEL, stories15M: DEFAULT_MODEL };

export interface LoadedModel extends LoadedWeights {
  tokenizer: TextTokenizer;
  /** 'llama2c', 'hf' or 'gguf' */
  format: ModelFormat;
  /** The resolved file or folder. */
  path: string;
}

export interface LoadOptions {
  /** Tokenizer file to use instead of the one found beside the model (tokenizer.bin or a folder with tokenizer.json). */
  tokenizer?: string;
  /** Branch, tag or commit of a Hub model id (default 'main'; 'Org/Name@rev' says the same). */
  revision?: string;
  /**
   * Hugging Face folders: leave the tensors in their files (`refs`) for GpuTransformer to stream to
   * the GPU; `tensors` then reads a tensor as f32 only when asked. Default false (all read now, f32).
   */
  lazy?: boolean;
}

export function defaultModelDir(): string {
  return join(modelsDir(), DEFAULT_MODEL);
}

/** Resolve a name or path to what will be loaded. */
export function resolveModel(pathOrName: string, opts: { revision?: string } = {}): { format: ModelFormat; path: string; hubId?: string } {
  const named = NAMED_MODELS[pathOrName];
  if (opts.revision !== undefined && (named !== undefined || existsSync(resolve(pathOrName)))) {
    throw new UsageError(`model '${pathOrName}': --revision applies to a model id in the Hugging Face cache, not to a local file or folder`);
  }
  const spec = named === undefined && !existsSync(resolve(pathOrName)) ? splitModelSpec(pathOrName) : null;
  const hubFile = spec?.file !== undefined && spec.revision === undefined && looksLikeModelId(spec.id) ? ggufFileOf(pathOrName, spec.id, spec.file) : undefined;
  if (spec && (looksLikeModelId(pathOrName) || hubFile !== undefined)) {
    const id = hubFile !== undefined ? spec.id : pathOrName;
    let cached;
    try {
      cached = resolveCachedModel(id, { revision: opts.revision });
    } catch (e) {
      if (!(e instanceof HfCacheError)) throw e;
      throw new HfCacheError(`${e.message}; nor is there a file or folder ${resolve(pathOrName)}`);
    }
    if (hubFile !== undefined) {
      const p = join(cached.path, ...hubFile.split('/'));
      if (!existsSync(p)) throw new HfCacheError(`model '${pathOrName}': the cached snapshot ${cached.path} has no ${hubFile}`);
      return { format: 'gguf', path: p, hubId: `${hubLabel(id, cached.revision, cached.commit)}:${hubFile}` };
    }
    const r = resolveModel(cached.path);
    return { ...r, hubId: hubLabel(pathOrName, cached.revision, cached.commit) };
  }
  if (named !== undefined) {
    const p = join(modelsDir(), named, 'model.bin');
    if (!existsSync(p)) throw new UsageError(`model '${pathOrName}': ${p} not found (run \`npm run fetch-models\`, or set CONCORD_MODELS_DIR)`);
    return { format: 'llama2c', path: p };
  }
  const p = resolve(pathOrName);
  if (!existsSync(p)) {
    throw new UsageError(`model '${pathOrName}': no such file or folder (${p}); give 'default', '${DEFAULT_MODEL}', a llama2.c .bin or a Hugging Face folder`);
  }
  if (statSync(p).isDirectory()) {
    if (existsSync(join(p, 'config.json'))) return { format: 'hf', path: p };
    if (existsSync(join(p, 'model.bin'))) return { format: 'llama2c', path: join(p, 'model.bin') };
    throw new UsageError(`${p}: folder has neither config.json (Hugging Face) nor model.bin (llama2.c)`);
  }
  if (p.endsWith('.bin')) return { format: 'llama2c', path: p };
  if (p.toLowerCase().endsWith('.gguf')) return { format: 'gguf', path: p };
  throw new UsageError(`${p}: not a model (expected a llama2.c .bin checkpoint, a .gguf file or a Hugging Face folder with config.json)`);
}

function tokenizerAt(path: string, vocabSize?: number): TextTokenizer {
  if (existsSync(path) && statSync(path).isDirectory()) return loadHfTokenizer(path);
  if (path.endsWith('tokenizer.json')) return loadHfTokenizer(dirname(path));
  return llama2cTokenizer(path, vocabSize);
}

/** The FILE of 'Org/Name[@rev]:FILE': a .gguf name (checked as a repo file name by src/hub). */
function ggufFileOf(spec: string, id: string, file: string): string {
  if (!/\.gguf$/i.test(file)) throw new UsageError(`model '${spec}': after ':' give one .gguf file of the repo (e.g. ${id}:model.Q4_K_M.gguf), got '${file}'`);
  return checkRepoFileName(file, `model '${spec}'`);
}

/**
 * `--model M --gguf-file F` as one model spec, 'M:F' (docs/gguf.md "From the Hugging Face Hub"). A
 * usage error when F is empty, when there is no M, when M is a local file or folder or a named model
 * (a local .gguf file is given as --model itself), or when M names another file already.
 */
export function withGgufFile(model: string | undefined, ggufFile: string | undefined, flag = '--gguf-file'): string | undefined {
  if (ggufFile === undefined) return model;
  if (ggufFile === '') throw new UsageError(`${flag} needs a file name (one GGUF file of the model's Hub repo)`);
  if (model === undefined) throw new UsageError(`${flag} needs --model Org/Name (the Hub repo that holds ${ggufFile})`);
  if (NAMED_MODELS[model] !== undefined || existsSync(resolve(model))) {
    throw new UsageError(`${flag} picks a file of a Hub model id, and '${model}' is a local model; give a local .gguf file itself as --model`);
  }
  const { id, file } = splitModelSpec(model);
  if (!looksLikeModelId(id)) throw new UsageError(`${flag}: '${model}' is neither a Hub model id (Org/Name) nor a file or folder here`);
  if (file !== undefined && file !== ggufFile) throw new UsageError(`--model ${model} names the file '${file}' but ${flag} says '${ggufFile}'; give one`);
  return file !== undefined ? model : `${model}:${ggufFile}`;
}

/**
 * resolveModel, with Hub ids ('Org/Name', 'Org/Name@rev') downloaded into the cache on first use
 * (src/hub/ensureHubModel: HF_ENDPOINT, HF_TOKEN, HF_HUB_OFFLINE=1 — docs/hub.md).
 */
export async function resolveModelSource(pathOrName: string, opts: { revision?: string } = {}): Promise<{ format: ModelFormat; path: string; hubId?: string }> {
  const { id, revision: atRev, file } = splitModelSpec(pathOrName);
  const local = NAMED_MODELS[pathOrName] !== undefined || existsSync(resolve(pathOrName));
  if (local || !looksLikeModelId(id)) return resolveModel(pathOrName, opts);
  if (atRev !== undefined && opts.revision !== undefined && atRev !== opts.revision) {
    throw new UsageError(`model '${pathOrName}' names revision '${atRev}' but --revision says '${opts.revision}'; give one`);
  }
  const ggufFile = file === undefined ? undefined : ggufFileOf(pathOrName, id, file);
  const { ensureHubModel } = await import('../hub/download.js');
  const m = await ensureHubModel(id, { revision: atRev ?? opts.revision, ggufFile });
  const label = hubLabel(id, m.revision, m.commit);
  return { ...resolveModel(m.path), hubId: ggufFile === undefined ? label : `${label}:${ggufFile}` };
}

/** Load weights (canonical names, f32) and the model's tokenizer. */
export async function loadWeights(pathOrName = 'default', opts: LoadOptions = {}): Promise<LoadedModel> {
  const { format, path, hubId } = await resolveModelSource(pathOrName, { revision: opts.revision });
  if (format === 'hf') {
    const tokenizer = opts.tokenizer ? tokenizerAt(opts.tokenizer) : loadHfTokenizer(path);
    const w = loadHf(path, tokenizer, { lazy: opts.lazy });
    // A cached id is named by the id and revision, not by the snapshot path.
    if (hubId) w.config.name = w.config.name.split(path).join(hubId);
    return { ...w, tokenizer, format, path };
  }
  if (format === 'gguf') {
    const f = await readGguf(path);
    const w = loadGgufWeights(f, { lazy: opts.lazy });
    const tokenizer = opts.tokenizer ? tokenizerAt(opts.tokenizer) : ggufTokenizer(f);
    if (hubId) w.config.name = w.config.name.split(path).join(hubId);
    return { ...w, tokenizer, format, path };
  }
  const header = readLlama2cHeader(path);
  let tokenizer: TextTokenizer;
  if (opts.tokenizer) tokenizer = tokenizerAt(opts.tokenizer, header.vocabSize);
  else {
    const dir = dirname(path);
    if (existsSync(join(dir, 'tokenizer.bin'))) tokenizer = llama2cTokenizer(join(dir, 'tokenizer.bin'), header.vocabSize);
    else if (existsSync(join(dir, 'tokenizer.json'))) tokenizer = loadHfTokenizer(dir);
    else throw new Error(`${path}: no tokenizer.bin or tokenizer.json beside the checkpoint (pass opts.tokenizer)`);
  }
  const isDefault = NAMED_MODELS[pathOrName] !== undefined;
  const w = loadLlama2c(path, isDefault ? `${DEFAULT_MODEL} (llama2.c)` : `${path} (llama2.c)`);
  return { ...w, tokenizer, format, path };
}
