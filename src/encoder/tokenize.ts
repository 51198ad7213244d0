// WordPiece tokenisation for BERT-family encoders through @huggingface/tokenizers (pure JS) from
// tokenizer.json + tokenizer_config.json: [CLS] text [SEP], attention mask, token types 0, and
// truncation to maxLength (sentence-transformers' max_seq_length: 256 for all-MiniLM-L6-v2),
// keeping [SEP] last. Truncations are counted, not hidden.

import { Tokenizer } from '@huggingface/tokenizers';

export interface BertEncoding {
  ids: number[];
  /** true when the text was cut to maxLength tokens */
  truncated: boolean;
  /** token count before truncation (with [CLS] and [SEP]) */
  fullLength: number;
}

export class BertTokenizer {
  readonly tok: Tokenizer;
  readonly clsId: number;
  readonly sepId: number;
  readonly padId: number;

  constructor(tokenizerJson: object, tokenizerConfig: object = {}, readonly maxLength = 256) {
    this.tok = new Tokenizer(tokenizerJson, tokenizerConfig);
    const id = (t: string): number => {
      const v = this.tok.token_to_id(t);
      if (v === undefined) throw new Error(`tokenizer: no '${t}' token: not a BERT WordPiece tokenizer`);
      return v;
    };
    this.clsId = id('[CLS]');
    this.sepId = id('[SEP]');
    this.padId = this.tok.token_to_id('[PAD]') ?? 0;
    if (maxLength < 2) throw new Error(`tokenizer: maxLength ${maxLength} < 2`);
  }

  encode(text: string): BertEncoding {
    const e = this.tok.encode(text, { add_special_tokens: true });
    let ids = e.ids;
    if (ids[0] !== this.clsId || ids[ids.length - 1] !== this.sepId) {
      throw new Error(`tokenizer: expected [CLS] ... [SEP] from the post-processor, got ${ids.slice(0, 3)} ... ${ids.slice(-2)}`);
    }
    const fullLength = ids.length;
    const truncated = fullLength > this.maxLength;
    if (truncated) ids = [...ids.slice(0, this.maxLength - 1), this.sepId];
    return { ids, truncated, fullLength };
  }

  tokens(text: string): string[] {
    return this.tok.tokenize(text, { add_special_tokens: true });
  }
}
