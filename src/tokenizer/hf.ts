// TextTokenizer over @huggingface/tokenizers: built from a tokenizer.json object and a
// tokenizer_config.json object, or from a model folder's files holding those (src/formats/files.ts:
// on disk, or in memory in the browser). No static Node imports: the browser demo imports this module too.

import { Tokenizer } from '@huggingface/tokenizers';
import { ModelConfigError } from '../errors.js';
import { folderFiles, type ModelFiles } from '../formats/files.js';
import type { DecodeOptions, EncodeOptions, TextTokenizer } from './types.js';

/** The parts of tokenizer.json this module looks at (the library validates the rest). */
export interface TokenizerJson {
  added_tokens?: { id: number; content: string; special?: boolean }[];
  normalizer?: unknown;
  pre_tokenizer?: unknown;
  post_processor?: unknown;
  decoder?: unknown;
  model: { type: string; vocab?: unknown; merges?: unknown; [k: string]: unknown };
  [k: string]: unknown;
}

export type TokenizerConfigJson = Record<string, unknown>;

/** A Jinja chat template and where it was read from (src/pipeline/chat-template.ts renders it). */
export interface ChatTemplateSource {
  text: string;
  origin: string;
}

export interface SpecialIds {
  bosId?: number | null;
  eosId?: number | null;
  padId?: number | null;
}

export class HfTextTokenizer implements TextTokenizer {
  readonly hf: Tokenizer;
  readonly bosId: number | null;
  readonly eosId: number | null;
  readonly padId: number | null;
  readonly vocabSize: number;
  readonly dummyPrefix: boolean;
  /** The model's chat template: chat_template.jinja in the folder, else tokenizer_config.json's chat_template; null when none. */
  readonly chatTemplate: ChatTemplateSource | null;

  constructor(
    readonly json: TokenizerJson, readonly config: TokenizerConfigJson, readonly source: string, ids: SpecialIds = {},
    chatTemplate?: ChatTemplateSource | null,
  ) {
    const full = { added_tokens: [], normalizer: null, pre_tokenizer: null, post_processor: null, decoder: null, ...json };
    try {
      this.hf = new Tokenizer(full, config);
    } catch (e) {
      throw new ModelConfigError(`${source}: cannot build the tokenizer: ${(e as Error).message}`);
    }
    const tokenId = (key: string): number | null => {
      let v = config[key];
      if (v && typeof v === 'object' && 'content' in v) v = (v as { content: unknown }).content;
      if (typeof v !== 'string') return null;
      return this.hf.token_to_id(v) ?? null;
    };
    this.bosId = ids.bosId !== undefined ? ids.bosId : tokenId('bos_token');
    this.eosId = ids.eosId !== undefined ? ids.eosId : tokenId('eos_token');
    this.padId = ids.padId !== undefined ? ids.padId : tokenId('pad_token');
    let maxId = -1;
    for (const id of this.hf.get_vocab(true).values()) if (id > maxId) maxId = id;
    this.vocabSize = maxId + 1;
    this.dummyPrefix = hasDummyPrefix(full);
    const ct = configChatTemplate(config);
    this.chatTemplate = chatTemplate !== undefined ? chatTemplate : ct !== null ? { text: ct, origin: 'tokenizer_config.json' } : null;
  }

  encode(text: string, opts: EncodeOptions = {}): number[] {
    return this.hf.encode(text, { add_special_tokens: opts.addSpecial ?? true }).ids;
  }

  decode(ids: readonly number[], opts: DecodeOptions = {}): string {
    if (ids.length === 0) return '';
    return this.hf.decode([...ids], { skip_special_tokens: opts.skipSpecial ?? false });
  }

  idToToken(id: number): string | undefined {
    return this.hf.id_to_token(id);
  }
}

/** tokenizer_config.json's chat_template: a string, or the one named 'default' in a list of named templates. */
export function configChatTemplate(config: TokenizerConfigJson): string | null {
  const ct = config.chat_template;
  if (typeof ct === 'string') return ct;
  if (Array.isArray(ct)) {
    const d = ct.find((c) => (c as { name?: unknown }).name === 'default') as { template?: unknown } | undefined;
    if (typeof d?.template === 'string') return d.template;
  }
  return null;
}

/** Does this tokenizer.json prepend a word-start marker (sentencepiece dummy prefix / add_prefix_space)? */
function hasDummyPrefix(json: TokenizerJson): boolean {
  const walk = (node: unknown): boolean => {
    if (!node || typeof node !== 'object') return false;
    const n = node as Record<string, unknown>;
    if (n.type === 'Prepend') return true;
    if (n.type === 'Metaspace') return (n.prepend_scheme ?? (n.add_prefix_space === false ? 'never' : 'always')) !== 'never';
    if (n.type === 'ByteLevel') return n.add_prefix_space === true;
    for (const k of ['normalizers', 'pretokenizers']) {
      const list = n[k];
      if (Array.isArray(list) && list.some(walk)) return true;
    }
    return false;
  };
  return walk(json.normalizer) || walk(json.pre_tokenizer);
}

function readJson(files: ModelFiles, name: string): unknown {
  const path = files.path(name);
  let text: string;
  try {
    text = files.text(name);
  } catch (e) {
    throw new ModelConfigError(`${path}: cannot read ${name}: ${(e as Error).message}`);
  }
  try {
    return JSON.parse(text);
  } catch (e) {
    throw new ModelConfigError(`${path}: ${name} is not valid JSON: ${(e as Error).message}`);
  }
}

/** Tokenizer of a Hugging Face model folder on disk (Node): tokenizer.json (required) + tokenizer_config.json (optional). */
export function loadHfTokenizer(dir: string, ids: SpecialIds = {}): HfTextTokenizer {
  return hfTokenizerFromFiles(folderFiles(dir), ids);
}

/** Tokenizer of a model folder's files: tokenizer.json (required) + tokenizer_config.json and chat_template.jinja (optional). */
export function hfTokenizerFromFiles(files: ModelFiles, ids: SpecialIds = {}): HfTextTokenizer {
  const dir = files.dir;
  const tj = files.path('tokenizer.json');
  if (!files.has('tokenizer.json')) {
    throw new ModelConfigError(`${dir}: no tokenizer.json (concord needs the "fast" tokenizer file; tokenizer.model / vocab.json alone are not supported)`);
  }
  const json = readJson(files, 'tokenizer.json') as TokenizerJson;
  if (!json || typeof json !== 'object' || !json.model) throw new ModelConfigError(`${tj}: tokenizer.json has no "model" section`);
  const tc = files.path('tokenizer_config.json');
  const config = files.has('tokenizer_config.json') ? (readJson(files, 'tokenizer_config.json') as TokenizerConfigJson) : {};
  // Like transformers: chat_template.jinja beside the tokenizer wins over tokenizer_config.json's.
  let chat: ChatTemplateSource | null = null;
  if (files.has('chat_template.jinja')) chat = { text: files.text('chat_template.jinja'), origin: files.path('chat_template.jinja') };
  else {
    const ct = configChatTemplate(config);
    if (ct !== null) chat = { text: ct, origin: tc };
  }
  return new HfTextTokenizer(json, config, `tokenizer.json (${tj})`, ids, chat);
}
