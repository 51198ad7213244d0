// llama2.c's tokenizer.bin → an equivalent Hugging Face tokenizer.json (Llama sentencepiece-style BPE).
//
// tokenizer.bin: int32 max_token_length, then per token: f32 score, int32 byte length, UTF-8 bytes.
// The token count is not stored (run.c takes it from the checkpoint's vocab_size). Two exports
// exist: the older one writes byte tokens <0xXX> as the raw character chr(XX), the newer keeps the
// '<0xXX>' spelling; both write BOS/EOS as '\n<s>\n' / '\n</s>\n' and sentencepiece's '▁' as ' '.
// We map every file back to the sentencepiece pieces ('<s>', '<0x0A>', '▁the', ...).
//
// run.c's encode(): prepend a dummy ' ' to non-empty text, split into code points (unknown code
// points fall back to byte tokens id = byte + 3), then repeatedly merge the adjacent pair whose
// concatenation is a vocabulary piece with the highest score, the leftmost such pair on ties.
// The tokenizer.json built here reproduces it with the library's BPE model: Prepend('▁') +
// Replace(' ' → '▁') normalizers, no pre-tokenizer, byte_fallback, and merges listed as HF's
// sentencepiece conversion lists them (every split (l, r) of each piece with l and r in the vocab,
// ordered by the piece's score). HF ranks each (l, r) pair separately, so two different pairs that
// build the same piece (or two pieces with equal scores, e.g. the -1e9 whitespace runs) are ordered
// by rank, where run.c takes the leftmost. `llama2cTokenizer` therefore re-ranks the loaded BPE
// model by merged-piece score (equal scores → equal rank, and the library breaks equal ranks
// leftmost-first), which makes it exactly run.c's rule; tests/tokenizer.test.ts checks it against a
// TypeScript port of run.c's encode().

import { HfTextTokenizer, type TokenizerJson } from './hf.js';
import { nodeFs } from './node.js';

export interface SentencePieceVocab {
  /** sentencepiece pieces by id ('<unk>', '<s>', '</s>', '<0x00>'..'<0xFF>', '▁the', ...) */
  pieces: string[];
  scores: Float32Array;
  /** From the file header (run.c's buffer sizing); informational. */
  maxTokenLength: number;
  /** True when ids 3..258 are the 256 byte tokens (sentencepiece byte_fallback layout). */
  byteFallback: boolean;
  unkId: number;
  bosId: number;
  eosId: number;
}

const byteName = (b: number): string => `<0x${b.toString(16).toUpperCase().padStart(2, '0')}>`;

/**
 * Parse a llama2.c tokenizer.bin held in memory. `source` names it in errors; `vocabSize` (from the
 * checkpoint) is checked when given.
 */
export function parseLlama2cTokenizer(data: Uint8Array | ArrayBuffer, source: string, vocabSize?: number): SentencePieceVocab {
  const buf = data instanceof Uint8Array ? data : new Uint8Array(data);
  const dv = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  if (buf.length < 4) throw new Error(`${source}: llama2.c tokenizer is ${buf.length} bytes, shorter than its 4-byte header`);
  const maxTokenLength = dv.getInt32(0, true);
  const raw: string[] = [];
  const scoreList: number[] = [];
  const dec = new TextDecoder('utf-8');
  let o = 4;
  while (o < buf.length) {
    if (o + 8 > buf.length) throw new Error(`${source}: truncated llama2.c tokenizer: token ${raw.length} header at byte ${o} runs past the end (${buf.length} bytes)`);
    const score = dv.getFloat32(o, true);
    const len = dv.getInt32(o + 4, true);
    if (len < 0 || o + 8 + len > buf.length) throw new Error(`${source}: truncated llama2.c tokenizer: token ${raw.length} claims ${len} bytes at byte ${o + 8}, file has ${buf.length}`);
    const bytes = buf.subarray(o + 8, o + 8 + len);
    raw.push(bytes.every((b) => b < 0x80) ? String.fromCharCode(...bytes) : dec.decode(bytes));
    scoreList.push(score);
    o += 8 + len;
  }
  if (vocabSize !== undefined && raw.length !== vocabSize) {
    throw new Error(`${source}: llama2.c tokenizer holds ${raw.length} tokens but the checkpoint's vocab_size is ${vocabSize}`);
  }
  if (raw.length < 3) throw new Error(`${source}: llama2.c tokenizer holds only ${raw.length} tokens`);

  // Byte tokens: ids 3..258 spelled '<0xXX>' (newer export) or chr(XX) (older export).
  let byteFallback = raw.length >= 259;
  for (let b = 0; byteFallback && b < 256; b++) {
    const t = raw[b + 3];
    if (t !== byteName(b) && t !== String.fromCharCode(b)) byteFallback = false;
  }
  const pieces = raw.map((t, id) => {
    if (byteFallback && id >= 3 && id < 259) return byteName(id - 3);
    if (id < 3) {
      const s = t.trim();
      if (s === '<unk>' || s === '<s>' || s === '</s>') return s;
    }
    return t.replaceAll(' ', '\u2581');
  });
  return { pieces, scores: Float32Array.from(scoreList), maxTokenLength, byteFallback, unkId: 0, bosId: 1, eosId: 2 };
}

/** Read a llama2.c tokenizer.bin (Node). */
export function readLlama2cTokenizer(path: string, vocabSize?: number): SentencePieceVocab {
  let buf: Uint8Array;
  try {
    buf = nodeFs().readFileSync(path);
  } catch (e) {
    throw new Error(`${path}: cannot read llama2.c tokenizer: ${(e as Error).message}`);
  }
  return parseLlama2cTokenizer(buf, path, vocabSize);
}

/**
 * The tokenizer.json object equivalent to a sentencepiece BPE vocabulary (the form HF's
 * LlamaConverter produces, legacy normalizer flavour). Merges follow HF's SentencePieceExtractor.
 */
export function sentencepieceTokenizerJson(v: SentencePieceVocab): TokenizerJson {
  const vocab: Record<string, number> = {};
  for (let id = 0; id < v.pieces.length; id++) {
    const p = v.pieces[id];
    if (Object.prototype.hasOwnProperty.call(vocab, p)) throw new Error(`sentencepiece vocab: piece ${JSON.stringify(p)} appears twice (ids ${vocab[p]} and ${id})`);
    vocab[p] = id;
  }
  const special = new Set([v.unkId, v.bosId, v.eosId]);
  const merges: { l: string; r: string; score: number; li: number; ri: number }[] = [];
  for (let id = 0; id < v.pieces.length; id++) {
    if (special.has(id)) continue;
    const piece = v.pieces[id];
    const cps = Array.from(piece);
    const local: typeof merges = [];
    let prefix = '';
    for (let i = 1; i < cps.length; i++) {
      prefix += cps[i - 1];
      const rest = piece.slice(prefix.length);
      const li = vocab[prefix], ri = vocab[rest];
      if (li !== undefined && ri !== undefined && !special.has(li) && !special.has(ri)) local.push({ l: prefix, r: rest, score: v.scores[id], li, ri });
    }
    local.sort((a, b) => a.li - b.li || a.ri - b.ri);
    merges.push(...local);
  }
  merges.sort((a, b) => b.score - a.score); // stable: ties keep piece-id order, as Python's sorted()
  const specialToken = (id: number) => ({ id, content: v.pieces[id], single_word: false, lstrip: false, rstrip: false, normalized: false, special: true });
  const bos = v.pieces[v.bosId];
  return {
    version: '1.0',
    truncation: null,
    padding: null,
    added_tokens: [...special].sort((a, b) => a - b).map(specialToken),
    normalizer: { type: 'Sequence', normalizers: [{ type: 'Prepend', prepend: '\u2581' }, { type: 'Replace', pattern: { String: ' ' }, content: '\u2581' }] },
    pre_tokenizer: null,
    post_processor: {
      type: 'TemplateProcessing',
      single: [{ SpecialToken: { id: bos, type_id: 0 } }, { Sequence: { id: 'A', type_id: 0 } }],
      pair: [{ SpecialToken: { id: bos, type_id: 0 } }, { Sequence: { id: 'A', type_id: 0 } }, { SpecialToken: { id: bos, type_id: 1 } }, { Sequence: { id: 'B', type_id: 1 } }],
      special_tokens: { [bos]: { id: bos, ids: [v.bosId], tokens: [bos] } },
    },
    decoder: {
      type: 'Sequence',
      decoders: [
        { type: 'Replace', pattern: { String: '\u2581' }, content: ' ' },
        { type: 'ByteFallback' },
        { type: 'Fuse' },
        { type: 'Strip', content: ' ', start: 1, stop: 0 },
      ],
    },
    model: {
      type: 'BPE',
      dropout: null,
      unk_token: v.pieces[v.unkId],
      continuing_subword_prefix: null,
      end_of_word_suffix: null,
      fuse_unk: true,
      byte_fallback: v.byteFallback,
      ignore_merges: false,
      vocab,
      merges: merges.map((m) => [m.l, m.r]),
    },
  };
}

/** The tokenizer_config.json object that goes with sentencepieceTokenizerJson. */
export function sentencepieceTokenizerConfig(v: SentencePieceVocab): Record<string, unknown> {
  return {
    tokenizer_class: 'LlamaTokenizerFast',
    bos_token: v.pieces[v.bosId],
    eos_token: v.pieces[v.eosId],
    unk_token: v.pieces[v.unkId],
    pad_token: null,
    add_bos_token: true,
    add_eos_token: false,
    clean_up_tokenization_spaces: false,
    legacy: true,
  };
}

interface BpeModel {
  merges: [string, string][];
  bpe_ranks: Map<string, number>;
  tokens_to_ids: Map<string, number>;
  clear_cache(): void;
}

/**
 * Re-rank the library's BPE merges by the merged piece's score (equal score → equal rank), so that
 * its leftmost-first tie-breaking reproduces run.c exactly (see the header comment).
 */
export function rankMergesByScore(tok: HfTextTokenizer, v: SentencePieceVocab): void {
  // The package's .d.ts files use extensionless re-exports that NodeNext cannot follow, so the BPE
  // class is described here rather than imported.
  const model = tok.hf.model as unknown as BpeModel | null;
  if (!model || !(model.bpe_ranks instanceof Map) || !Array.isArray(model.merges)) throw new Error(`${tok.source}: expected a BPE model`);
  const distinct = [...new Set(v.scores)].sort((a, b) => b - a);
  const rankOfScore = new Map(distinct.map((s, i) => [s, i]));
  const ranks = new Map<string, number>();
  for (const [l, r] of model.merges) {
    const id = model.tokens_to_ids.get(l + r);
    if (id === undefined) continue;
    ranks.set(JSON.stringify([l, r]), rankOfScore.get(v.scores[id])!);
  }
  model.bpe_ranks = ranks;
  model.clear_cache();
}

/** TextTokenizer for a parsed llama2.c vocabulary (run.c-exact encode; BOS with addSpecial). */
export function llama2cTokenizerFromVocab(v: SentencePieceVocab, source: string): HfTextTokenizer {
  const tok = new HfTextTokenizer(sentencepieceTokenizerJson(v), sentencepieceTokenizerConfig(v), `llama2.c tokenizer.bin (${source})`, {
    bosId: v.bosId,
    eosId: v.eosId,
    padId: null,
  });
  rankMergesByScore(tok, v);
  return tok;
}

/** TextTokenizer for a llama2.c tokenizer.bin held in memory. */
export function llama2cTokenizerFromBytes(data: Uint8Array | ArrayBuffer, source: string, vocabSize?: number): HfTextTokenizer {
  return llama2cTokenizerFromVocab(parseLlama2cTokenizer(data, source, vocabSize), source);
}

/** TextTokenizer for a llama2.c tokenizer.bin file (Node). */
export function llama2cTokenizer(path: string, vocabSize?: number): HfTextTokenizer {
  return llama2cTokenizerFromVocab(readLlama2cTokenizer(path, vocabSize), path);
}
