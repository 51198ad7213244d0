// Chat templates: a model's own Jinja `chat_template` (tokenizer_config.json, or chat_template.jinja
// in the model folder), rendered with @huggingface/jinja (the engine transformers.js uses) and cut
// into the same structure as a hand-written template (./templates.ts): literal pieces and the slots
// {x} and {y}. The pair's texts never go through the template engine:
//
//  1. The template renders a conversation whose messages are sentinel strings:
//       forward  [system?] user = ⟨x⟩, assistant = ⟨y⟩
//       reverse  [system?] user = ⟨y⟩, assistant = ⟨x⟩   (roles swapped: r-IFD scores p(x | y))
//  2. The rendered text is cut at the sentinels: the text before the first one, the text between
//     them, and the slots. The text after the last slot (end-of-turn markers) is not scored and is
//     dropped. Each sentinel must appear exactly once and unchanged; a template that transforms
//     (`| upper`, `replace`, truncation…), drops or repeats message content cannot be cut and is a
//     ChatTemplateError naming the model. The cut is repeated with a second set of sentinels and the
//     literal text must not change (a template whose text depends on the content cannot be cut).
//  3. Whitespace: many templates strip message content (`message['content'] | trim` in Llama 3 and
//     Gemma 3; Qwen3 `lstrip`s the assistant turn, which @huggingface/jinja — unlike Python — does
//     for all whitespace). The template is rendered again with whitespace before, then after, each
//     sentinel: each side is either kept verbatim or stripped. x and y are stripped on every side
//     the template strips in any message (ChatFormat.stripContent), before they are tokenised, in
//     every pass — so the template's own stripping leaves them unchanged and their ids are the same
//     everywhere. Any other change to that whitespace is an error.
//  4. BOS: concord starts every sequence with the tokenizer's BOS (else EOS) token. A template that
//     emits the BOS token itself (`{{ bos_token }}`, Llama 3, Gemma 3, Mistral; or a first marker
//     that *is* the BOS token, SmolLM2's `<|im_start|>`) has that leading BOS removed, so it is
//     never doubled.
//  5. Word-start (sentencepiece) tokenizers encode every slot with its word-start marker '▁'
//     (templates.ts); one space right before a slot ('[INST] ' in Mistral's template) is that
//     marker and is dropped from the literal, so the model sees one space, not two.
// The pieces are then tokenised exactly as any template: templates.ts encodeTemplate.

import { Environment, Interpreter, Template as JinjaTemplate } from '@huggingface/jinja';
import type { ChatTemplateSource } from '../tokenizer/hf.js';
import { nodeFs } from '../tokenizer/node.js';
import type { TextTokenizer } from '../tokenizer/types.js';
import { TemplateError } from './templates.js';

/** The templates a chat format gives, as template strings with {x} and {y} (see ./templates.ts). */
export interface ChatFormat {
  name: string;
  forward: string;
  reverse: string;
  /**
   * Strip leading / trailing whitespace (String trimStart / trimEnd, as @huggingface/jinja's trim,
   * strip, lstrip, rstrip do) of x and y before tokenising, in every pass: the sides the template
   * strips in any message, so that its stripping leaves x and y verbatim wherever they appear.
   */
  stripContent?: { start: boolean; end: boolean };
  /** What was done to the rendered text (BOS removed, spaces folded into word-start markers, …). */
  notes?: string[];
}

export class ChatTemplateError extends TemplateError {}

export type { ChatTemplateSource };

export interface ChatTemplateOptions {
  /** The model's name, for error messages. */
  model: string;
  /** A system prompt: rendered as a first `system` message in both directions. */
  system?: string;
  /** tokenizer_config.json, for the special-token variables (bos_token, eos_token, …); default: the tokenizer's own config when it has one. */
  config?: Record<string, unknown>;
  /** Extra template variables (e.g. { enable_thinking: false }, { date_string: '26 Jul 2024' }). */
  variables?: Record<string, unknown>;
}

const SENTINELS = [
  { x: 'concord-Slot-x-5e1b', y: 'concord-Slot-y-5e1b' },
  { x: 'concord-Slot-x-b7c2q9', y: 'concord-Slot-y-b7c2q9' }, // another length too (templates that use `| length`)
];
/** Whitespace put around a sentinel to see whether the template strips message content. */
const PAD = ' \t\n';

// The special-token variables transformers / transformers.js pass to a chat template.
const SPECIAL_TOKEN_KEYS = ['bos_token', 'eos_token', 'unk_token', 'sep_token', 'pad_token', 'cls_token', 'mask_token'];

function specialTokenVariables(config: Record<string, unknown>): Record<string, string> {
  const out: Record<string, string> = {};
  for (const k of SPECIAL_TOKEN_KEYS) {
    let v = config[k];
    if (v && typeof v === 'object' && 'content' in v) v = (v as { content: unknown }).content;
    if (typeof v === 'string' && v !== '') out[k] = v;
  }
  return out;
}

/** The chat template a tokenizer carries (HfTextTokenizer.chatTemplate), if any. */
export function tokenizerChatTemplate(tok: TextTokenizer): ChatTemplateSource | null {
  return (tok as { chatTemplate?: ChatTemplateSource | null }).chatTemplate ?? null;
}

function tokenizerConfig(tok: TextTokenizer): Record<string, unknown> {
  return (tok as { config?: Record<string, unknown> }).config ?? {};
}

function count(hay: string, needle: string): number {
  let n = 0;
  for (let i = hay.indexOf(needle); i >= 0; i = hay.indexOf(needle, i + needle.length)) n++;
  return n;
}

interface Cut {
  /** text before the first slot, text between the slots */
  pre: string;
  mid: string;
}

/**
 * The render budget of a chat template (a template is code from the model's files): at most
 * TEMPLATE_MAX_STEPS evaluated nodes, `range()` at most that long, no value over
 * TEMPLATE_MAX_CHARS characters. Real templates take a few thousand steps and a few KiB; the
 * interpreter runs ~20k steps/s here, so a template at the bound fails within seconds.
 */
export const TEMPLATE_MAX_STEPS = 100_000;
export const TEMPLATE_MAX_CHARS = 1 << 24;

// @huggingface/jinja's Interpreter as it is at run time: its typings mark evaluate() private.
type Evaluated = { value?: unknown };
const JinjaInterpreter = Interpreter as unknown as new (env: Environment) => {
  evaluate(node: unknown, env: unknown): Evaluated;
  run(program: unknown): Evaluated;
};

/** An Interpreter that counts the nodes it evaluates and the size of what it builds. */
class BoundedInterpreter extends JinjaInterpreter {
  private steps = 0;
  override evaluate(node: unknown, env: unknown): Evaluated {
    if (++this.steps > TEMPLATE_MAX_STEPS) throw new Error(`the template runs past its budget of ${TEMPLATE_MAX_STEPS} steps`);
    const v = super.evaluate(node, env);
    if (typeof v.value === 'string' && v.value.length > TEMPLATE_MAX_CHARS) throw new Error(`the template builds a text of over ${TEMPLATE_MAX_CHARS} characters`);
    return v;
  }
}

function boundedRange(...args: number[]): number[] {
  const [a, b, step] = args.length === 1 ? [0, args[0], 1] : [args[0], args[1], args[2] ?? 1];
  if (step === 0) throw new Error('range() step must not be zero');
  const n = Math.max(0, Math.ceil((b - a) / step));
  if (!(n <= TEMPLATE_MAX_STEPS)) throw new Error(`range(${args.join(', ')}) is longer than the template budget of ${TEMPLATE_MAX_STEPS} steps`);
  return Array.from({ length: n }, (_, k) => a + k * step);
}

/** strftime_now as @huggingface/jinja defines it (the formats chat templates use). */
function strftimeNow(format: string): string {
  const d = new Date();
  const pad2 = (n: number) => (n < 10 ? '0' : '') + n;
  return format.replace(/%[YmdbBHM%]/g, (t) => ({
    '%Y': String(d.getFullYear()), '%m': pad2(d.getMonth() + 1), '%d': pad2(d.getDate()),
    '%b': new Intl.DateTimeFormat(undefined, { month: 'short' }).format(d), '%B': new Intl.DateTimeFormat(undefined, { month: 'long' }).format(d),
    '%H': pad2(d.getHours()), '%M': pad2(d.getMinutes()), '%%': '%',
  })[t] ?? t);
}

/**
 * tpl.render(vars) under the render budget; throws an Error naming the bound it passed. The
 * globals are @huggingface/jinja's own (Template.render's setupGlobals), `range` bounded.
 */
export function renderBounded(tpl: JinjaTemplate, vars: Record<string, unknown>): string {
  const env = new Environment();
  const globals: Record<string, unknown> = {
    false: false, true: true, none: null, False: false, True: true, None: null,
    raise_exception: (msg: string) => { throw new Error(msg); },
    range: boundedRange,
    strftime_now: strftimeNow,
  };
  for (const [k, v] of Object.entries({ ...globals, ...vars })) env.set(k, v);
  return String(new BoundedInterpreter(env).run(tpl.parsed).value);
}

const escapeLiteral = (s: string): string => s.replace(/[{}]/g, (c) => c + c);

/**
 * Cut a chat template into forward and reverse templates (see the module comment). Throws
 * ChatTemplateError naming the model when the template cannot be cut.
 */
export function chatFormatFromTemplate(src: ChatTemplateSource, tok: TextTokenizer, opts: ChatTemplateOptions): ChatFormat {
  const what = `${opts.model}: chat template (${src.origin})`;
  let tpl: JinjaTemplate;
  try {
    tpl = new JinjaTemplate(src.text);
  } catch (e) {
    throw new ChatTemplateError(`${what}: cannot parse it: ${(e as Error).message}`);
  }
  const vars = { ...specialTokenVariables(opts.config ?? tokenizerConfig(tok)), ...opts.variables };
  const render = (user: string, assistant: string): string => {
    const messages = [
      ...(opts.system !== undefined ? [{ role: 'system', content: opts.system }] : []),
      { role: 'user', content: user },
      { role: 'assistant', content: assistant },
    ];
    try {
      return renderBounded(tpl, { messages, add_generation_prompt: false, ...vars });
    } catch (e) {
      const conv = `${opts.system !== undefined ? 'system, ' : ''}user, assistant`;
      throw new ChatTemplateError(`${what}: fails to render a ${conv} conversation: ${(e as Error).message}`);
    }
  };

  const bosText = tok.bosId !== null ? tok.idToToken(tok.bosId) : undefined;
  const notes = new Set<string>();
  // Sides of the messages the template strips whitespace from (in any role, either direction).
  const strip = { start: false, end: false };

  const direction = (name: 'forward' | 'reverse'): Cut => {
    // first = the slot in the user turn, second = the slot in the assistant turn
    const [first, second] = name === 'forward' ? (['x', 'y'] as const) : (['y', 'x'] as const);
    const cuts = SENTINELS.map((s) => {
      const u = s[first], a = s[second];
      const text = render(u, a);
      for (const [sent, role, slot] of [[u, 'user', first], [a, 'assistant', second]] as const) {
        const n = count(text, sent);
        if (n !== 1) {
          const how = n === 0 ? 'drops or transforms' : `repeats (${n} times)`;
          throw new ChatTemplateError(`${what}: it ${how} the ${role} message, so {${slot}} cannot be cut out of the rendered text (${name} template; concord needs each message's text verbatim, exactly once)`);
        }
      }
      const iu = text.indexOf(u), ia = text.indexOf(a);
      if (ia < iu) throw new ChatTemplateError(`${what}: it renders the assistant message before the user message (${name} template)`);
      return { text, u, a, cut: { pre: text.slice(0, iu), mid: text.slice(iu + u.length, ia) } };
    });
    if (cuts[0].cut.pre !== cuts[1].cut.pre || cuts[0].cut.mid !== cuts[1].cut.mid) {
      throw new ChatTemplateError(`${what}: the text it puts around the messages depends on their content (${name} template), so it cannot be cut into fixed pieces`);
    }
    // Whitespace around the content: kept verbatim, or stripped? Each side of each role on its own.
    const { text, u, a } = cuts[0];
    for (const [role, sent] of [['user', u], ['assistant', a]] as const) {
      for (const side of ['start', 'end'] as const) {
        const padded = side === 'start' ? PAD + sent : sent + PAD;
        const out = role === 'user' ? render(padded, a) : render(u, padded);
        if (out === text) strip[side] = true;
        else if (out !== text.replace(sent, padded)) {
          throw new ChatTemplateError(`${what}: it changes the whitespace at the ${side} of the ${role} message in a way concord cannot mirror (${name} template; only keeping it or stripping it all is supported)`);
        }
      }
    }

    let { pre, mid } = cuts[0].cut;
    if (bosText && pre.startsWith(bosText)) {
      pre = pre.slice(bosText.length);
      notes.add(`the template's leading ${bosText} is the start token concord puts first (not doubled)`);
    }
    if (tok.dummyPrefix) {
      if (pre.endsWith(' ')) { pre = pre.slice(0, -1); notes.add("a space before a slot is the slot's word-start marker"); }
      if (mid.endsWith(' ')) { mid = mid.slice(0, -1); notes.add("a space before a slot is the slot's word-start marker"); }
    }
    return { pre, mid };
  };

  const f = direction('forward');
  const r = direction('reverse');
  if (/\bstrftime_now\b/.test(src.text) && !('date_string' in vars)) {
    // Llama 3.2: "Today Date: " + strftime_now(...) — the literal text changes with the day of the run.
    notes.add("the template can insert today's date (strftime_now), so its text depends on the day it runs; set variables.date_string to pin it");
  }
  if (strip.start || strip.end) {
    const sides = strip.start && strip.end ? 'leading and trailing' : strip.start ? 'leading' : 'trailing';
    notes.add(`x and y are stripped of ${sides} whitespace, as the template strips message content`);
  }
  return {
    name: `${opts.model} chat template (${src.origin})`,
    forward: `${escapeLiteral(f.pre)}{x}${escapeLiteral(f.mid)}{y}`,
    reverse: `${escapeLiteral(r.pre)}{y}${escapeLiteral(r.mid)}{x}`,
    stripContent: { ...strip },
    notes: [...notes],
  };
}

export interface ResolvedChatTemplate {
  /** null: no chat template (the plain default templates apply). */
  format: ChatFormat | null;
  /** One line for the log: which template, or why none. */
  note: string;
}

/**
 * `--chat-template auto|none|<file.jinja>`:
 *  - auto: the model's own template (chat_template.jinja in its folder, else tokenizer_config.json's
 *    chat_template) when it has one; else none;
 *  - none: no chat template;
 *  - a path: that Jinja file, rendered with the model tokenizer's special tokens.
 */
export function resolveChatTemplate(spec: string, tok: TextTokenizer, opts: ChatTemplateOptions): ResolvedChatTemplate {
  if (spec === 'none') {
    if (opts.system !== undefined) throw new ChatTemplateError(`--system needs a chat template (got --chat-template none)`);
    return { format: null, note: 'chat template: none' };
  }
  let src: ChatTemplateSource | null;
  if (spec === 'auto') {
    src = tokenizerChatTemplate(tok);
    if (!src) {
      if (opts.system !== undefined) throw new ChatTemplateError(`--system: ${opts.model} has no chat template (no chat_template.jinja, no chat_template in tokenizer_config.json); pass --chat-template <file.jinja>`);
      return { format: null, note: `chat template: none (${opts.model} has no chat_template; plain templates)` };
    }
  } else {
    const fs = nodeFs();
    if (!fs.existsSync(spec) || !fs.statSync(spec).isFile()) {
      throw new ChatTemplateError(`--chat-template ${spec}: no such file (give auto, none or a Jinja chat template file)`);
    }
    src = { text: fs.readFileSync(spec, 'utf8'), origin: spec };
  }
  const format = chatFormatFromTemplate(src, tok, opts);
  return { format, note: `chat template: ${format.name}${format.notes?.length ? `; ${format.notes.join('; ')}` : ''}` };
}
