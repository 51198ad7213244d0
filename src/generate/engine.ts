// The generation engine: continuous batching over any Decoder (src/generate/types.ts). Requests
// wait in a queue; each decode step feeds every busy slot its input (the prompt right after the
// slot was given a request, then the token it sampled last) and gets one token per slot back. A
// slot whose sequence finishes (a stop id, a stop string, max new tokens, a full cache) takes the
// next request from the queue in the same step's aftermath, so the batch never waits for its
// longest member. Results come back in input order (and, with onResult, are streamed in input
// order as soon as every earlier one is done).

import { checkSampling } from './sampling.js';
import type { Decoder, SamplingParams, StepInput } from './types.js';

export interface GenerateRequest {
  /** Prompt token ids (BOS included where the model wants one). */
  prompt: number[];
  sampling: SamplingParams;
  maxNewTokens: number;
  /** Ids that end the sequence (EOS and the like): finish_reason 'eos'; the id is not part of the output. */
  stopIds?: readonly number[];
  /** Strings that end the sequence once the decoded text contains one: finish_reason 'stop'; the text is cut before it. */
  stopStrings?: readonly string[];
  /** A request that failed before generation (e.g. its record had no prompt): passed through, in order, as a result with this error. */
  error?: string;
}

export type FinishReason = 'eos' | 'stop' | 'length';

export interface GenerateResult {
  /** Generated ids: up to (not including) a stop id; up to and including the token that completed a stop string. */
  ids: number[];
  /** Decoded text of `ids`, cut before the first stop string. */
  text: string;
  /** ids.length */
  generated_tokens: number;
  finish_reason: FinishReason;
  /** Set (and nothing generated) when the request could not run, e.g. a prompt longer than the cache. */
  error?: string;
}

export interface EngineOptions {
  /** Token ids → text (the tokenizer's decode): the output text and the stop-string check. */
  decode: (ids: number[]) => string;
  /** Called with each result in input order, as soon as it and every earlier one are done. */
  onResult?: (result: GenerateResult, index: number) => void | Promise<void>;
}

export interface EngineStats {
  /** decoder.step calls */
  steps: number;
  /** inputs over all steps (busy slot-steps) */
  slotSteps: number;
  /** tokens sampled */
  sampled: number;
}

interface Active {
  index: number;
  req: GenerateRequest;
  ids: number[];
  /** what the slot appends next step */
  next: number[];
}

/** Why a request cannot run on this decoder, or null. */
function requestProblem(r: GenerateRequest, maxLen: number): string | null {
  if (r.prompt.length === 0) return 'empty prompt';
  if (r.prompt.length > maxLen) return `prompt of ${r.prompt.length} tokens exceeds the decoder's ${maxLen} positions`;
  if (!Number.isInteger(r.maxNewTokens) || r.maxNewTokens < 0) return `max new tokens must be an integer ≥ 0, got ${r.maxNewTokens}`;
  try {
    checkSampling(r.sampling);
  } catch (e) {
    return (e as Error).message;
  }
  return null;
}

/** The finish reason after appending token `t` (null: go on); mutates the state's ids. */
function advance(a: Active, t: number, maxLen: number, decode: (ids: number[]) => string): { reason: FinishReason; text?: string } | null {
  if (a.req.stopIds?.includes(t)) return { reason: 'eos' };
  a.ids.push(t);
  const stops = a.req.stopStrings?.filter((s) => s.length > 0) ?? [];
  if (stops.length) {
    // A stop string completed by token t lies within the last few tokens (a token is at least one
    // byte, a character at most 4): decode that tail each step, the whole text only on a hit, so the
    // check costs O(longest stop string) per step, not O(generated text).
    const tail = 4 * Math.max(...stops.map((s) => s.length)) + 8;
    if (a.ids.length > tail && !stops.some((s) => decode(a.ids.slice(-tail)).includes(s))) return lengthReason(a, maxLen);
    const text = decode(a.ids);
    let cut = -1;
    for (const s of stops) {
      const i = text.indexOf(s);
      if (i >= 0 && (cut < 0 || i < cut)) cut = i;
    }
    if (cut >= 0) return { reason: 'stop', text: text.slice(0, cut) };
  }
  return lengthReason(a, maxLen);
}

function lengthReason(a: Active, maxLen: number): { reason: FinishReason } | null {
  // The next step would append t at position prompt + ids - 1: the cache must hold it.
  if (a.ids.length >= a.req.maxNewTokens || a.req.prompt.length + a.ids.length > maxLen) return { reason: 'length' };
  return null;
}

/** Run every request to completion on `decoder` (all its slots); results in input order. */
export async function generate(decoder: Decoder, requests: GenerateRequest[], opts: EngineOptions): Promise<{ results: GenerateResult[]; stats: EngineStats }> {
  const results: GenerateResult[] = new Array(requests.length);
  const stats = await generateStream(decoder, requests, {
    ...opts,
    onResult: async (r, i) => { results[i] = r; await opts.onResult?.(r, i); },
  });
  return { results, stats };
}

/**
 * The same over a stream of requests, pulled one at a time as slots free up (a file job need not
 * hold its input); results only through onResult, in input order.
 */
export async function generateStream(decoder: Decoder, source: Iterable<GenerateRequest> | AsyncIterable<GenerateRequest>, opts: EngineOptions): Promise<EngineStats> {
  const stats: EngineStats = { steps: 0, slotSteps: 0, sampled: 0 };
  const done = new Map<number, GenerateResult>();
  let emitted = 0;
  const finish = async (index: number, r: GenerateResult): Promise<void> => {
    done.set(index, r);
    for (let next = done.get(emitted); next; next = done.get(emitted)) {
      done.delete(emitted);
      await opts.onResult?.(next, emitted);
      emitted++;
    }
  };
  const it = Symbol.asyncIterator in source ? (source as AsyncIterable<GenerateRequest>)[Symbol.asyncIterator]() : (source as Iterable<GenerateRequest>)[Symbol.iterator]();
  let drained = false, pulled = 0;
  const active = new Map<number, Active>();
  const free = Array.from({ length: decoder.slots }, (_, s) => decoder.slots - 1 - s); // pop() gives slot 0 first

  while (!drained || active.size) {
    while (free.length && !drained) {
      const nx = await it.next();
      if (nx.done) { drained = true; break; }
      const index = pulled++, req = nx.value;
      const problem = req.error ?? requestProblem(req, decoder.maxLen);
      if (problem || req.maxNewTokens === 0) {
        await finish(index, { ids: [], text: '', generated_tokens: 0, finish_reason: 'length', ...(problem ? { error: problem } : {}) });
        continue;
      }
      const slot = free.pop()!;
      decoder.reset(slot);
      active.set(slot, { index, req, ids: [], next: req.prompt });
    }
    if (!active.size) continue;
    const slots = [...active.keys()];
    const inputs: StepInput[] = slots.map((slot) => {
      const a = active.get(slot)!;
      return { slot, ids: a.next, sampling: a.req.sampling, step: a.ids.length };
    });
    const out = await decoder.step(inputs);
    stats.steps++;
    stats.slotSteps += inputs.length;
    stats.sampled += inputs.length;
    for (let j = 0; j < slots.length; j++) {
      const a = active.get(slots[j])!;
      const end = advance(a, out[j], decoder.maxLen, opts.decode);
      if (!end) {
        a.next = [out[j]];
        continue;
      }
      active.delete(slots[j]);
      free.push(slots[j]);
      const text = end.text ?? opts.decode(a.ids);
      await finish(a.index, { ids: a.ids, text, generated_tokens: a.ids.length, finish_reason: end.reason });
    }
  }
  return stats;
}
