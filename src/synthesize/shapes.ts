// The record shapes trainers read: Alpaca (instruction / input / output), OpenAI `messages`
// ([{role: user}, {role: assistant}]) and ShareGPT `conversations` ([{from: human}, {from: gpt}]).
// A record keeps its other fields; the fields that held its pair (the mapped instruction / input /
// output names, messages, conversations) are replaced by the shape's.

import type { FieldMap } from '../pipeline/input.js';

export type RecordShape = 'alpaca' | 'messages' | 'sharegpt';
export const RECORD_SHAPES: readonly RecordShape[] = ['alpaca', 'messages', 'sharegpt'];

/** The pair of one output record; `input` only for Alpaca records that had one (seed data). */
export interface ShapedPair {
  instruction: string;
  input?: string;
  output: string;
}

/** The record's fields other than those holding its pair. */
export function otherFields(record: Record<string, unknown>, f: FieldMap): Record<string, unknown> {
  const o: Record<string, unknown> = { ...record };
  for (const k of [f.instruction, f.input, f.output, 'messages', 'conversations']) delete o[k];
  return o;
}

/** `rest` with the pair in `shape`. */
export function shapeRecord(rest: Record<string, unknown>, shape: RecordShape, p: ShapedPair): Record<string, unknown> {
  const x = p.input ? `${p.instruction}\n\n${p.input}` : p.instruction;
  switch (shape) {
    case 'alpaca': return { instruction: p.instruction, input: p.input ?? '', output: p.output, ...rest };
    case 'messages': return { messages: [{ role: 'user', content: x }, { role: 'assistant', content: p.output }], ...rest };
    case 'sharegpt': return { conversations: [{ from: 'human', value: x }, { from: 'gpt', value: p.output }], ...rest };
  }
}
