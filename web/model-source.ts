// Models from bytes (the browser has no file system): a llama2.c checkpoint + tokenizer.bin given as
// ArrayBuffers, parsed by the loaders' own browser-safe entry points (parseLlama2c,
// llama2cTokenizerFromBytes), so the page and the CLI read a checkpoint the same way.

import { parseLlama2c } from '../src/models/llama2c.js';
import type { LoadedWeights } from '../src/models/types.js';
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
 * A Hugging Face model folder (config.json, *.safetensors, tokenizer.json, ...) from the files a
 * folder input gave, keyed by name within the folder. Waits for bytes-based entry points in
 * src/models/hf.ts and safetensors.ts (config from parsed JSON, tensors from ArrayBuffers); until
 * then the page says so instead of failing somewhere deeper.
 */
export async function hfModelFromFiles(files: Map<string, ArrayBuffer>, name: string): Promise<ModelBytes> {
  const missing = ['config.json', 'tokenizer.json'].filter((f) => !files.has(f));
  if (missing.length) throw new Error(`${name}: the folder has no ${missing.join(' or ')}`);
  if (![...files.keys()].some((f) => f.endsWith('.safetensors'))) throw new Error(`${name}: the folder has no .safetensors weights`);
  throw new Error(`${name}: Hugging Face folders cannot be loaded in the browser yet (the HF loader reads from disk only); use a llama2.c checkpoint + tokenizer.bin`);
}
