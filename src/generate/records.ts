// The record side of generation, browser-safe (no file I/O): the text a record gives the prompt and
// the output record of one sample — what `concord generate` writes (src/generate/job.ts) and what
// the browser page's "propose instructions" view downloads.

import { joinPrompt, recordToPair, RecordError, type FieldMap } from '../pipeline/input.js';
import type { GenerateResult } from './engine.js';
import type { Direction } from './prompts.js';

const isObject = (v: unknown): v is Record<string, unknown> => !!v && typeof v === 'object' && !Array.isArray(v);

function textField(rec: Record<string, unknown>, name: string): string {
  const v = rec[name];
  if (typeof v !== 'string') throw new RecordError(`field '${name}' must be a string (got ${v === null ? 'null' : typeof v})`);
  if (v.trim() === '') throw new RecordError(`empty field '${name}'`);
  return v;
}

/** The text a record gives the prompt: x (forward) or y (reverse). */
export function sourceText(record: unknown, dir: Direction, f: FieldMap): string {
  if (!isObject(record)) throw new RecordError(`record must be a JSON object (got ${Array.isArray(record) ? 'array' : record === null ? 'null' : typeof record})`);
  const field = dir === 'forward' ? f.instruction : f.output;
  if (record[field] !== undefined) {
    if (dir === 'reverse') return textField(record, field);
    const input = record[f.input];
    return joinPrompt(textField(record, field), typeof input === 'string' ? input : undefined);
  }
  if (record.messages !== undefined || record.conversations !== undefined) {
    const pair = recordToPair(record, f);
    return dir === 'forward' ? pair.x : pair.y;
  }
  throw new RecordError(`missing field '${field}' (the ${dir === 'forward' ? 'instruction to answer' : 'response to write an instruction for'})`);
}

/**
 * The output record of one sample: the input's fields with the generated text in the target field
 * (forward: the output field; reverse: the instruction field, the input field folded into it). A
 * value it replaces is kept as original_<field>.
 */
export function outputRecord(record: Record<string, unknown>, dir: Direction, f: FieldMap, r: GenerateResult, sample: number, k: number): Record<string, unknown> {
  const o: Record<string, unknown> = { ...record };
  const field = dir === 'forward' ? f.output : f.instruction;
  if (o[field] !== undefined) o[`original_${field}`] = o[field];
  if (dir === 'reverse' && o[f.input] !== undefined) {
    o[`original_${f.input}`] = o[f.input];
    delete o[f.input];
  }
  o[field] = r.text;
  o.generated_tokens = r.generated_tokens;
  o.finish_reason = r.finish_reason;
  if (k > 1) o.sample = sample;
  return o;
}
