// Models from bytes (the browser has no file system): a llama2.c checkpoint + tokenizer.bin given as
// ArrayBuffers, parsed by the loaders' own browser-safe entry points (parseLlama2c,
// llama2cTokenizerFromBytes); a Hugging Face folder's files through loadHfFiles /
// hfTokenizerFromFiles — so the page and the CLI read a model the same way.

import { memoryFiles } from '../src/formats/files.js';
import { loadHfFiles } from '../src/models/hf.js';
import { parseLlama2c } from '../src/models/llama2c.js';
import type { LoadedWeights } from '../src/models/types.js';
import { hfTokenizerFromFiles } from '../src/tokenizer/hf.js';
import { llama2cTokenizerFromBytes } from '../src/tokenizer/llama2c.js';
import type { TextTokenizer } from '../src/tokenizer/types.js';

export interface ModelBytes {
  weights: LoadedWeights;
  tokenizer: TextTokenizer;
}

/** A llama2.c model (checkpoint + tokenizer.bin) from bytes. */
export function llama2cModelFromBytes(model: ArrayBuffer, tokenizer: ArrayBuffer, name: string): ModelBytes {
  const weights = parseLlama2c(model, name, name);
  const tok = llama2cTokenizerFromBytes(tokenizer, `${name} tokenizer`, weights.config.vocabSize);
  return { weights, tokenizer: tok };
}

/**
 * A Hugging Face model folder (config.json, *.safetensors, tokenizer.json, ...) from its files'
 * bytes, keyed by name within the folder (a chosen folder, or a Hub download), loaded by the CLI's
 * own loader through src/formats/files.ts memoryFiles. `lazy`: leave the tensors in their bytes
 * for the GPU upload to stream (as the CLI does on WebGPU).
 */
export function hfModelFromFiles(files: Map<string, ArrayBuffer | Uint8Array>, name: string, opts: { lazy?: boolean } = {}): ModelBytes {
  const missing = ['config.json', 'tokenizer.json'].filter((f) => !files.has(f));
  if (missing.length) throw new Error(`${name}: the folder has no ${missing.join(' or ')}`);
  if (![...files.keys()].some((f) => f.endsWith('.safetensors'))) throw new Error(`${name}: the folder has no .safetensors weights`);
  const mf = memoryFiles(name, files);
  const tokenizer = hfTokenizerFromFiles(mf);
  return { weights: loadHfFiles(mf, tokenizer, { lazy: opts.lazy }), tokenizer };
}
