// Tokenizers from GGUF metadata (src/formats/gguf-tokenizer.ts) against the Hugging Face tokenizers
// of the same models: the GGUF tokenizer.ggml.* entries are written here from the real Llama 3,
// Qwen3 and Gemma 3 tokenizer files (as llama.cpp's convert_hf_to_gguf.py would: byte-level BPE
// tokens + merges for Llama 3 and Qwen3; a SentencePiece vocabulary with scores and token types for
// Gemma 3, its scores ranking each piece by the first merge that makes it), into a GGUF file that
// is then read back; every string of the shared set must give the same ids.

import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { readGguf } from '../src/formats/gguf.js';
import { ggufTokenizer } from '../src/formats/gguf-tokenizer.js';
import { kv, writeGguf, type GgufKv } from '../src/formats/gguf-write.js';
import { concordTokenizer, realDir, REAL_KEYS, type RealKey } from './helpers/real-tokenizers.js';
import { STRINGS } from './helpers/tokenizer-strings.js';

const dir = mkdtempSync(join(tmpdir(), 'concord-gguf-tok-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

interface Added { id: number; content: string; special: boolean }

/** GGUF tokenizer metadata for a real tokenizer folder. */
function metadataOf(key: RealKey): GgufKv[] {
  const j = JSON.parse(readFileSync(join(realDir(key), 'tokenizer.json'), 'utf8'));
  const cfg = JSON.parse(readFileSync(join(realDir(key), 'tokenizer_config.json'), 'utf8'));
  const vocab = j.model.vocab as Record<string, number>;
  const added = j.added_tokens as Added[];
  const n = [...Object.values(vocab), ...added.map((a) => a.id)].reduce((a, b) => Math.max(a, b), 0) + 1;
  const tokens: string[] = Array.from({ length: n }, (_, i) => `[PAD${i}]`);
  const types: number[] = new Array(n).fill(5);
  for (const [t, id] of Object.entries(vocab)) { tokens[id] = t; types[id] = 1; }
  for (const a of added) { tokens[a.id] = a.content; types[a.id] = a.special ? 3 : 4; }
  const idOf = (s: unknown) => (typeof s === 'string' ? tokens.indexOf(s) : -1);
  const merges = (j.model.merges as (string | [string, string])[]).map((m) => (typeof m === 'string' ? m.split(' ') as [string, string] : m));
  const out: GgufKv[] = [kv.str('general.architecture', 'llama'), kv.strs('tokenizer.ggml.tokens', tokens)];
  const eos = idOf(cfg.eos_token);
  if (eos >= 0) out.push(kv.u32('tokenizer.ggml.eos_token_id', eos));
  if (key === 'gemma3') {
    // SentencePiece: score = −(rank of the first merge that produces the piece); types: byte, unknown.
    const first = new Map<string, number>();
    merges.forEach(([l, r], rank) => { if (!first.has(l + r)) first.set(l + r, rank); });
    const scores = tokens.map((t) => -(first.get(t) ?? 0));
    tokens.forEach((t, i) => { if (/^<0x[0-9A-F]{2}>$/.test(t)) types[i] = 6; });
    types[idOf('<unk>')] = 2;
    out.push(kv.str('tokenizer.ggml.model', 'llama'), kv.f32s('tokenizer.ggml.scores', scores), kv.bool('tokenizer.ggml.add_space_prefix', false),
      kv.u32('tokenizer.ggml.bos_token_id', idOf('<bos>')), kv.u32('tokenizer.ggml.unknown_token_id', idOf('<unk>')),
      kv.u32('tokenizer.ggml.padding_token_id', idOf('<pad>')), kv.bool('tokenizer.ggml.add_bos_token', true));
  } else {
    out.push(kv.str('tokenizer.ggml.model', 'gpt2'), kv.str('tokenizer.ggml.pre', key === 'llama3' ? 'llama-bpe' : 'qwen2'),
      kv.strs('tokenizer.ggml.merges', merges.map(([l, r]) => `${l} ${r}`)));
    if (key === 'llama3') out.push(kv.u32('tokenizer.ggml.bos_token_id', idOf('<|begin_of_text|>')), kv.bool('tokenizer.ggml.add_bos_token', true));
    else out.push(kv.bool('tokenizer.ggml.add_bos_token', false), kv.u32('tokenizer.ggml.padding_token_id', idOf(cfg.pad_token)));
  }
  out.push(kv.i32s('tokenizer.ggml.token_type', types));
  if (typeof cfg.chat_template === 'string') out.push(kv.str('tokenizer.chat_template', cfg.chat_template));
  return out;
}

describe('tokenizer from GGUF metadata = the Hugging Face tokenizer, id for id', () => {
  for (const key of REAL_KEYS) {
    it(`${key}: ${STRINGS.length} strings`, async () => {
      const path = join(dir, `${key}.gguf`);
      writeGguf(path, metadataOf(key), []);
      const f = await readGguf(path);
      const tok = ggufTokenizer(f);
      const hf = concordTokenizer(key);
      let bad = 0, first = '';
      for (const s of STRINGS) {
        const a = tok.encode(s, { addSpecial: false }), b = hf.encode(s, { addSpecial: false });
        if (a.length !== b.length || a.some((v, i) => v !== b[i])) {
          if (!bad) first = `${JSON.stringify(s.slice(0, 80))}: gguf [${a.slice(0, 12)}] hf [${b.slice(0, 12)}]`;
          bad++;
        }
      }
      expect(first).toBe("");
      expect(bad).toBe(0);
      // Special ids and BOS handling follow the file's flags.
      expect(tok.eosId).toBe(hf.eosId);
      const withSpecial = tok.encode('Hello world');
      if (key === 'qwen3') expect(withSpecial).toEqual(hf.encode('Hello world', { addSpecial: false }));
      else expect(withSpecial).toEqual([tok.bosId, ...tok.encode('Hello world', { addSpecial: false })]);
      expect(tok.decode(tok.encode('Hello, wörld! 你好', { addSpecial: false }))).toBe('Hello, wörld! 你好');
      // The chat template comes from tokenizer.chat_template.
      expect(tok.chatTemplate?.text).toBe(hf.chatTemplate?.text);
      expect(tok.chatTemplate?.origin).toContain('tokenizer.chat_template');
    });
  }

  it('refuses an unknown tokenizer model or pre-tokenizer, naming the file', async () => {
    const p1 = join(dir, 'bad-model.gguf');
    writeGguf(p1, [kv.str('tokenizer.ggml.model', 'rwkv'), kv.strs('tokenizer.ggml.tokens', ['a'])], []);
    const f1 = await readGguf(p1);
    expect(() => ggufTokenizer(f1)).toThrow(/bad-model\.gguf: tokenizer\.ggml\.model 'rwkv' is not supported/);
    const p2 = join(dir, 'bad-pre.gguf');
    writeGguf(p2, [kv.str('tokenizer.ggml.model', 'gpt2'), kv.str('tokenizer.ggml.pre', 'klingon'), kv.strs('tokenizer.ggml.tokens', ['a']), kv.strs('tokenizer.ggml.merges', [])], []);
    await expect(readGguf(p2).then(ggufTokenizer)).rejects.toThrow(/bad-pre\.gguf: tokenizer\.ggml\.pre 'klingon' is not supported/);
  });
});
