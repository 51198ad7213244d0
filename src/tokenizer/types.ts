// The one tokenizer interface the engine uses, whatever the model. Every implementation goes through
// @huggingface/tokenizers (a tokenizer.json object + tokenizer_config.json object); llama2.c's
// tokenizer.bin is converted into an equivalent tokenizer.json first (see ./llama2c.ts).

export interface EncodeOptions {
  /**
   * Hugging Face `add_special_tokens` (default true): run the tokenizer's post-processor, which for
   * Llama/Mistral sentencepiece tokenizers prepends BOS and for GPT-2/Qwen2 adds nothing.
   * Pass false for the second part of a pair (the target), whose ids are appended to the context's.
   */
  addSpecial?: boolean;
}

export interface DecodeOptions {
  /** Drop special tokens (BOS/EOS/pad...) from the text (default false). */
  skipSpecial?: boolean;
}

export interface TextTokenizer {
  /**
   * Token ids of `text`. Sentencepiece-style tokenizers (`dummyPrefix`) mark the start of every
   * non-empty text as a word start ('▁', i.e. a space), so a target encoded on its own is scored as
   * if a space separated it from its context — exactly what llama2.c's run.c encode() does on that
   * text alone. Byte-level tokenizers (GPT-2, Qwen2) take the text literally: put the separating
   * space (if any) into the target text yourself.
   */
  encode(text: string, opts?: EncodeOptions): number[];
  /** Text of `ids` ('' for no ids). */
  decode(ids: readonly number[], opts?: DecodeOptions): string;
  /** Token string of one id (as the tokenizer's vocabulary spells it), or undefined. */
  idToToken(id: number): string | undefined;
  readonly bosId: number | null;
  readonly eosId: number | null;
  readonly padId: number | null;
  /** One past the largest id the tokenizer can produce (added tokens included). */
  readonly vocabSize: number;
  /** True when encode() prepends a word-start marker to non-empty text (sentencepiece add_dummy_prefix). */
  readonly dummyPrefix: boolean;
  /** Where it came from, e.g. 'llama2.c tokenizer.bin (models/stories15M/tokenizer.bin)'. */
  readonly source: string;
}
