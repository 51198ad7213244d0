// From an input record to the pair (x, y) the scorer works on. Pure (no I/O), shared by the CLI,
// the library and the browser demo.
//
// Rules (README "Input records"):
//  - Alpaca: x = instruction, plus "\n\n" + input when input is a non-empty string; y = output.
//    Field names can be remapped (--instruction-field/--input-field/--output-field).
//  - `messages` (OpenAI style: [{role, content}]) and ShareGPT `conversations` ([{from, value}];
//    from: human/user → user, gpt/assistant/chatgpt/bing/bard → assistant, system → system):
//    y = the content of the LAST assistant turn; turns after it are ignored. x = the turns before
//    it: a single user turn is taken as is (so a one-turn chat scores like an Alpaca pair);
//    anything longer is rendered as "System: …", "User: …", "Assistant: …" blocks joined by "\n\n".
//  - A record that is not an object, lacks a field, has a non-string field or an empty (all
//    whitespace) instruction/output is an error with a one-line reason; the run goes on.

export interface FieldMap {
  instruction: string;
  input: string;
  output: string;
}

export const DEFAULT_FIELDS: FieldMap = { instruction: 'instruction', input: 'input', output: 'output' };

export interface PairText {
  x: string;
  y: string;
  format: 'alpaca' | 'messages' | 'sharegpt';
  /** Number of turns in x (1 for Alpaca pairs). */
  turns: number;
}

export class RecordError extends Error {}

/** A record read from a file, with where it came from (for `file:line: reason` messages). */
export class SourcedRecord {
  constructor(
    /** The parsed JSON value, or undefined when the text did not parse. */
    readonly record: unknown,
    /** e.g. 'data.jsonl:12' */
    readonly loc: string,
    /** Set when the text is not valid JSON: the reason. */
    readonly parseError?: string,
  ) {}
}

/** How x is built from an Alpaca record: the instruction, then a blank line and the input when non-empty. */
export function joinPrompt(instruction: string, input: string | undefined): string {
  return input && input.trim() !== '' ? `${instruction}\n\n${input}` : instruction;
}

const typeName = (v: unknown): string => (v === null ? 'null' : Array.isArray(v) ? 'array' : typeof v);

/**
 * Fields of a record read from Parquet whose value is the decimal string of an INT64 beyond ±2^53
 * (src/io/parquet.ts marks them): text fields must come from string columns, so such a field is
 * refused like any other number (one treatment for every INT64 value, docs/data.md).
 */
export const INT64_STRINGS: unique symbol = Symbol('concord.int64Strings');

function stringField(rec: Record<string, unknown>, name: string, required: boolean): string | undefined {
  const v = rec[name];
  if (v === undefined || v === null) {
    if (required) throw new RecordError(`missing field '${name}'`);
    return undefined;
  }
  if (typeof v !== 'string') throw new RecordError(`field '${name}' must be a string (got ${typeName(v)})`);
  if ((rec as { [INT64_STRINGS]?: Set<string> })[INT64_STRINGS]?.has(name)) throw new RecordError(`field '${name}' must be a string (got an INT64 Parquet column)`);
  if (required && v.trim() === '') throw new RecordError(`empty field '${name}'`);
  return v;
}

type Role = 'system' | 'user' | 'assistant';

const SHAREGPT_ROLES: Record<string, Role> = {
  human: 'user', user: 'user', gpt: 'assistant', assistant: 'assistant', chatgpt: 'assistant', bing: 'assistant', bard: 'assistant', model: 'assistant', system: 'system',
};

function turnsFrom(list: unknown, field: 'messages' | 'conversations'): { role: Role; text: string }[] {
  if (!Array.isArray(list)) throw new RecordError(`field '${field}' must be an array (got ${typeName(list)})`);
  const [roleKey, textKey] = field === 'messages' ? ['role', 'content'] : ['from', 'value'];
  return list.map((t, k) => {
    if (!t || typeof t !== 'object' || Array.isArray(t)) throw new RecordError(`${field}[${k}] must be an object (got ${typeName(t)})`);
    const o = t as Record<string, unknown>;
    const r = o[roleKey];
    if (typeof r !== 'string') throw new RecordError(`${field}[${k}].${roleKey} must be a string (got ${typeName(r)})`);
    const role = field === 'messages' ? (['system', 'user', 'assistant'].includes(r) ? (r as Role) : undefined) : SHAREGPT_ROLES[r.toLowerCase()];
    if (!role) throw new RecordError(`${field}[${k}].${roleKey}: unknown role '${r}'`);
    let text = o[textKey];
    // OpenAI content parts: [{type: 'text', text}, ...] → the text parts joined.
    if (Array.isArray(text)) {
      text = text.map((p) => (p && typeof p === 'object' && typeof (p as { text?: unknown }).text === 'string' ? (p as { text: string }).text : '')).join('');
    }
    if (typeof text !== 'string') throw new RecordError(`${field}[${k}].${textKey} must be a string (got ${typeName(text)})`);
    return { role, text };
  });
}

const LABEL: Record<Role, string> = { system: 'System', user: 'User', assistant: 'Assistant' };

/** x and y of a conversation (see the rules at the top). */
export function pairFromTurns(turns: { role: Role; text: string }[], field: string): { x: string; y: string; turns: number } {
  let last = -1;
  for (let k = turns.length - 1; k >= 0; k--) if (turns[k].role === 'assistant') { last = k; break; }
  if (last < 0) throw new RecordError(`${field}: no assistant turn`);
  const y = turns[last].text;
  if (y.trim() === '') throw new RecordError(`${field}[${last}]: empty assistant turn`);
  const history = turns.slice(0, last);
  if (!history.some((t) => t.role === 'user' && t.text.trim() !== '')) throw new RecordError(`${field}: no non-empty user turn before the last assistant turn`);
  const x = history.length === 1 ? history[0].text : history.map((t) => `${LABEL[t.role]}: ${t.text}`).join('\n\n');
  return { x, y, turns: history.length };
}

/** The pair of one record (throws RecordError with a one-line reason). */
export function recordToPair(record: unknown, fields: FieldMap = DEFAULT_FIELDS): PairText {
  if (!record || typeof record !== 'object' || Array.isArray(record)) {
    throw new RecordError(`record must be a JSON object (got ${typeName(record)})`);
  }
  const rec = record as Record<string, unknown>;
  const alpacaFieldsPresent = rec[fields.instruction] !== undefined || rec[fields.output] !== undefined;
  if (!alpacaFieldsPresent && rec.messages !== undefined) {
    return { ...pairFromTurns(turnsFrom(rec.messages, 'messages'), 'messages'), format: 'messages' };
  }
  if (!alpacaFieldsPresent && rec.conversations !== undefined) {
    return { ...pairFromTurns(turnsFrom(rec.conversations, 'conversations'), 'conversations'), format: 'sharegpt' };
  }
  const instruction = stringField(rec, fields.instruction, true)!;
  const input = stringField(rec, fields.input, false);
  const output = stringField(rec, fields.output, true)!;
  return { x: joinPrompt(instruction, input), y: output, format: 'alpaca', turns: 1 };
}
