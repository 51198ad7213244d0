// The tokenizer and chat template of a GGUF file, from its tokenizer.ggml.* metadata, built as the
// tokenizer.json object src/tokenizer/hf.ts runs (one tokenizer mechanism for every model source).
//
//   tokenizer.ggml.model 'gpt2'   byte-level BPE: tokens (byte-level spellings) + merges ("a b"); the
//                                 pre-tokenizer regex is named by tokenizer.ggml.pre (table below)
//   tokenizer.ggml.model 'llama'  SentencePiece BPE: tokens + scores; merges built from the scores as
//                                 Hugging Face's SentencePieceExtractor does (every split of a piece
//                                 into two pieces, ranked by the piece's score); byte fallback
//                                 through the <0xXX> tokens; '▁' prefix when add_space_prefix
//   tokenizer.ggml.token_type     1 normal, 2 unknown, 3 control (special added token), 4 user-defined
//                                 (added token, not special), 5 unused, 6 byte
//   bos/eos/unknown/padding_token_id, add_bos_token / add_eos_token, tokenizer.chat_template

import { ModelFileError } from '../errors.js';
import { HfTextTokenizer, type TokenizerJson } from '../tokenizer/hf.js';
import { metaArray, metaString, type GgufFile, type GgufValue } from './gguf.js';

const TOKEN_TYPE = { normal: 1, unknown: 2, control: 3, user: 4, unused: 5, byte: 6 } as const;

const LLAMA3_REGEX = "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
const QWEN2_REGEX = "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";

const splitThenBytes = (regex: string) => ({
  type: 'Sequence',
  pretokenizers: [
    { type: 'Split', pattern: { Regex: regex }, behavior: 'Isolated', invert: false },
    { type: 'ByteLevel', add_prefix_space: false, trim_offsets: false, use_regex: false },
  ],
});

/** tokenizer.ggml.pre → the pre-tokenizer (and normalizer) of the Hugging Face tokenizer it came from (llama-vocab.cpp). */
const BPE_PRE: Record<string, { pre: unknown; normalizer: unknown }> = {
  'default': { pre: { type: 'ByteLevel', add_prefix_space: false, trim_offsets: false, use_regex: true }, normalizer: null },
  'gpt-2': { pre: { type: 'ByteLevel', add_prefix_space: false, trim_offsets: false, use_regex: true }, normalizer: null },
  'smollm': { pre: { type: 'ByteLevel', add_prefix_space: false, trim_offsets: false, use_regex: true }, normalizer: null },
  'llama-bpe': { pre: splitThenBytes(LLAMA3_REGEX), normalizer: null },
  'llama3': { pre: splitThenBytes(LLAMA3_REGEX), normalizer: null },
  'qwen2': { pre: splitThenBytes(QWEN2_REGEX), normalizer: { type: 'NFC' } },
};

const fail = (f: GgufFile, why: string): ModelFileError => new ModelFileError(`${f.path}: ${why}`, f.path);

function stringList(f: GgufFile, key: string, required: true): string[];
function stringList(f: GgufFile, key: string, required: false): string[] | undefined;
function stringList(f: GgufFile, key: string, required: boolean): string[] | undefined {
  const v = metaArray(f, key);
  if (v === undefined) { if (required) throw fail(f, `no '${key}' metadata`); return undefined; }
  if (v.some((x) => typeof x !== 'string')) throw fail(f, `'${key}' is not a list of strings`);
  return v as string[];
}

function numberList(f: GgufFile, key: string, n: number): number[] | undefined {
  const v = metaArray(f, key);
  if (v === undefined) return undefined;
  if (v.length !== n || v.some((x: GgufValue) => typeof x !== 'number')) throw fail(f, `'${key}' must hold ${n} numbers (one per token)`);
  return v as number[];
}

const flag = (f: GgufFile, key: string, fallback: boolean): boolean => {
  const v = f.metadata.get(key);
  return typeof v === 'boolean' ? v : fallback;
};
const idOf = (f: GgufFile, key: string, n: number): number | null => {
  const v = f.metadata.get(`tokenizer.ggml.${key}_token_id`);
  if (v === undefined) return null;
  const id = Number(v);
  if (!Number.isInteger(id) || id < 0 || id >= n) throw fail(f, `tokenizer.ggml.${key}_token_id ${String(v)} is not a token id (vocabulary of ${n})`);
  return id;
};

/** Merges of a SentencePiece vocabulary, as HF's SentencePieceExtractor lists them. */
function sentencepieceMerges(tokens: string[], scores: number[], types: number[]): [string, string][] {
  const vocab = new Map<string, number>();
  tokens.forEach((t, i) => vocab.set(t, i)); // duplicates: the last id wins (see ggufTokenizerJson)
  // User-defined pieces (Gemma's runs of '▁') are merge results too; control and byte tokens are not.
  const mergeable = (id: number) => types[id] === TOKEN_TYPE.normal || types[id] === TOKEN_TYPE.user;
  const merges: { l: string; r: string; score: number; li: number; ri: number }[] = [];
  for (let id = 0; id < tokens.length; id++) {
    if (!mergeable(id)) continue;
    const piece = tokens[id];
    const local: typeof merges = [];
    let prefix = '';
    const cps = Array.from(piece);
    for (let i = 1; i < cps.length; i++) {
      prefix += cps[i - 1];
      const rest = piece.slice(prefix.length);
      const li = vocab.get(prefix), ri = vocab.get(rest);
      if (li !== undefined && ri !== undefined && mergeable(li) && mergeable(ri)) local.push({ l: prefix, r: rest, score: scores[id], li, ri });
    }
    local.sort((a, b) => a.li - b.li || a.ri - b.ri);
    for (const m of local) merges.push(m);
  }
  merges.sort((a, b) => b.score - a.score); // stable, as Python's sorted()
  return merges.map((m) => [m.l, m.r]);
}

function postProcessor(tokens: string[], bos: number | null, eos: number | null, addBos: boolean, addEos: boolean): unknown {
  const single: unknown[] = [], specials: Record<string, unknown> = {};
  const add = (id: number) => {
    single.push({ SpecialToken: { id: tokens[id], type_id: 0 } });
    specials[tokens[id]] = { id: tokens[id], ids: [id], tokens: [tokens[id]] };
  };
  if (addBos && bos !== null) add(bos);
  single.push({ Sequence: { id: 'A', type_id: 0 } });
  if (addEos && eos !== null) add(eos);
  if (single.length === 1) return null;
  return { type: 'TemplateProcessing', single, pair: [...single, { Sequence: { id: 'B', type_id: 1 } }], special_tokens: specials };
}

/** The tokenizer.json object (and special ids) of a GGUF file's tokenizer.ggml.* metadata. */
export function ggufTokenizerJson(f: GgufFile): { json: TokenizerJson; config: Record<string, unknown>; ids: { bosId: number | null; eosId: number | null; padId: number | null } } {
  const model = metaString(f, 'tokenizer.ggml.model');
  if (model === undefined) throw fail(f, "no tokenizer in the file ('tokenizer.ggml.model' missing); pass --tokenizer");
  const tokens = stringList(f, 'tokenizer.ggml.tokens', true);
  const n = tokens.length;
  const types = numberList(f, 'tokenizer.ggml.token_type', n) ?? new Array(n).fill(TOKEN_TYPE.normal);
  const bos = idOf(f, 'bos', n), eos = idOf(f, 'eos', n), unk = idOf(f, 'unknown', n), pad = idOf(f, 'padding', n);
  const addBos = flag(f, 'tokenizer.ggml.add_bos_token', model === 'llama');
  const addEos = flag(f, 'tokenizer.ggml.add_eos_token', false);
  const added = tokens.flatMap((content, id) => (types[id] === TOKEN_TYPE.control || types[id] === TOKEN_TYPE.user || id === bos || id === eos || id === pad
    ? [{ id, content, single_word: false, lstrip: false, rstrip: false, normalized: false, special: types[id] !== TOKEN_TYPE.user }] : []));
  // A spelling listed twice maps to its last id. @huggingface/gguf 0.4.6 decodes strings with a
  // default TextDecoder, which drops a leading U+FEFF: Gemma's '\ufeff#' (id 208867) reads as '#',
  // a second '#' before the real one (236865), which must keep the plain spelling.
  const vocab: Record<string, number> = {};
  tokens.forEach((t, i) => { vocab[t] = i; });
  const post = postProcessor(tokens, bos, eos, addBos, addEos);
  let json: TokenizerJson;
  if (model === 'gpt2') {
    const pre = metaString(f, 'tokenizer.ggml.pre') ?? 'default';
    const p = BPE_PRE[pre];
    if (!p) throw fail(f, `tokenizer.ggml.pre '${pre}' is not supported (supported: ${Object.keys(BPE_PRE).join(', ')})`);
    const merges = stringList(f, 'tokenizer.ggml.merges', true).map((m, i) => {
      const sp = m.indexOf(' ', 1);
      if (sp < 0) throw fail(f, `tokenizer.ggml.merges[${i}] ${JSON.stringify(m)} is not 'left right'`);
      return [m.slice(0, sp), m.slice(sp + 1)];
    });
    json = {
      added_tokens: added, normalizer: p.normalizer, pre_tokenizer: p.pre, post_processor: post,
      decoder: { type: 'ByteLevel', add_prefix_space: false, trim_offsets: false, use_regex: false },
      model: { type: 'BPE', dropout: null, unk_token: null, continuing_subword_prefix: null, end_of_word_suffix: null, fuse_unk: false, byte_fallback: false, ignore_merges: pre.startsWith('llama'), vocab, merges },
    };
  } else if (model === 'llama') {
    const scores = numberList(f, 'tokenizer.ggml.scores', n);
    if (!scores) throw fail(f, "tokenizer model 'llama' needs 'tokenizer.ggml.scores'");
    const prefix = flag(f, 'tokenizer.ggml.add_space_prefix', true);
    const replace = { type: 'Replace', pattern: { String: ' ' }, content: '\u2581' };
    json = {
      added_tokens: added,
      normalizer: prefix ? { type: 'Sequence', normalizers: [{ type: 'Prepend', prepend: '\u2581' }, replace] } : replace,
      pre_tokenizer: null, post_processor: post,
      decoder: { type: 'Sequence', decoders: [{ type: 'Replace', pattern: { String: '\u2581' }, content: ' ' }, { type: 'ByteFallback' }, { type: 'Fuse' }, ...(prefix ? [{ type: 'Strip', content: ' ', start: 1, stop: 0 }] : [])] },
      model: {
        type: 'BPE', dropout: null, unk_token: unk !== null ? tokens[unk] : null, continuing_subword_prefix: null, end_of_word_suffix: null, fuse_unk: true,
        byte_fallback: types.includes(TOKEN_TYPE.byte), ignore_merges: false, vocab, merges: sentencepieceMerges(tokens, scores, types),
      },
    };
  } else {
    throw fail(f, `tokenizer.ggml.model '${model}' is not supported (gpt2, llama)`);
  }
  const config = { bos_token: bos !== null ? tokens[bos] : null, eos_token: eos !== null ? tokens[eos] : null, add_bos_token: addBos, add_eos_token: addEos };
  return { json, config, ids: { bosId: bos, eosId: eos, padId: pad } };
}

/** The TextTokenizer of a GGUF file, with tokenizer.chat_template as its chat template. */
export function ggufTokenizer(f: GgufFile): HfTextTokenizer {
  const { json, config, ids } = ggufTokenizerJson(f);
  const tmpl = metaString(f, 'tokenizer.chat_template');
  return new HfTextTokenizer(json, config, `GGUF tokenizer (${f.path})`, ids, tmpl !== undefined ? { text: tmpl, origin: `${f.path} (tokenizer.chat_template)` } : null);
}
