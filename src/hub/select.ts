// Which files concord needs from a Hub repo, shared by the CLI's cache download (./download.ts) and
// the browser demo's (./memory.ts): the config, tokenizer and chat-template files it has, and the
// weights — the shards listed by model.safetensors.index.json, else model.safetensors — or only
// the one GGUF file asked for. Browser-safe (no Node imports).

import { checkRepoFileName, HubError } from './names.js';

/** Small files read when the repo has them. */
export const SIDE_FILES = [
  'config.json', 'generation_config.json', 'tokenizer.json', 'tokenizer_config.json', 'special_tokens_map.json',
  'added_tokens.json', 'chat_template.jinja', 'chat_template.json', 'vocab.txt',
];
export const INDEX_FILE = 'model.safetensors.index.json';
export const SINGLE_FILE = 'model.safetensors';

/** The shard names an index's text lists, each checked to stay inside the snapshot; `what` names the index in messages. */
export function shardsOfIndex(text: string, what: string): string[] {
  let map: unknown;
  try {
    map = (JSON.parse(text) as { weight_map?: unknown }).weight_map;
  } catch (e) {
    throw new HubError(`${what}: not valid JSON (${(e as Error).message})`);
  }
  if (!map || typeof map !== 'object' || Array.isArray(map)) throw new HubError(`${what}: no "weight_map" object`);
  const shards = new Set<string>();
  for (const f of Object.values(map as Record<string, unknown>)) {
    if (typeof f !== 'string') throw new HubError(`${what}: a weight_map entry is not a file name`);
    shards.add(checkRepoFileName(f, what));
  }
  return [...shards].sort();
}

/**
 * The files concord needs, from the repo's file list: weights first decided (GGUF, index, single
 * file), then the side files the repo has. `ggufAdvice` finishes the message for a repo that has
 * only GGUF weights (the CLI: pick one with --gguf-file).
 */
export function chooseFiles(files: string[], id: string, ggufFile?: string, ggufAdvice = 'pick one with --gguf-file'): { side: string[]; weights: string[]; index: boolean } {
  const have = new Set(files);
  if (ggufFile) {
    if (!have.has(ggufFile)) {
      const ggufs = files.filter((f) => f.endsWith('.gguf'));
      throw new HubError(`${id} has no file ${JSON.stringify(ggufFile)}${ggufs.length ? `; its GGUF files: ${ggufs.slice(0, 12).join(', ')}${ggufs.length > 12 ? ', …' : ''}` : ' (and no GGUF files)'}`);
    }
    return { side: [], weights: [ggufFile], index: false };
  }
  const side = SIDE_FILES.filter((f) => have.has(f));
  if (have.has(INDEX_FILE)) return { side, weights: [INDEX_FILE], index: true };
  if (have.has(SINGLE_FILE)) return { side, weights: [SINGLE_FILE], index: false };
  const ggufs = files.filter((f) => f.endsWith('.gguf'));
  const hint = ggufs.length ? `; it has GGUF files — ${ggufAdvice} (${ggufs.slice(0, 6).join(', ')}${ggufs.length > 6 ? ', …' : ''})` : files.some((f) => f.endsWith('.bin')) ? ' (pytorch .bin weights are not supported)' : '';
  throw new HubError(`${id} has neither ${SINGLE_FILE} nor ${INDEX_FILE}${hint}`);
}
