// A small deterministic LanguageModel for pipeline tests: word-level tokenizer (hashed ids), and a
// "language model" whose next-token distribution is a proper log-softmax over the vocabulary of
//   logits[v] = A(prev, v) + boost · [v occurs earlier in the sequence]
// with A a fixed pseudo-random table. Words shared by prompt and response are therefore more likely
// given the other side — aligned pairs get positive gains, unrelated ones do not — and a sequence's
// scores depend only on itself (batch invariance holds exactly).
//
// Self-contained on purpose (type-only imports): tests transpile this file to plain JS with
// TypeScript's transpileModule so that a spawned `concord` CLI can load it through the
// CONCORD_TEST_MODEL_MODULE hook (createScorer, src/pipeline/create.ts).

import type { LanguageModel, SequenceRequest, SequenceScores } from '../../src/models/lm.js';
import type { ModelConfig } from '../../src/models/types.js';
import type { TextTokenizer } from '../../src/tokenizer/types.js';

export interface FakeLmOptions {
  vocabSize?: number;
  maxLen?: number;
  tokenBudget?: number;
  /** Sleep this long in every scoreBatch call (lets a test kill the CLI mid-run). */
  delayMs?: number;
  boost?: number;
  backend?: 'webgpu' | 'cpu';
  name?: string;
}

export interface FakeLm extends LanguageModel {
  /** Every scoreBatch call: the sequence lengths it got. */
  calls: number[][];
  hiddenCalls: number[][];
}

function mix(a: number, b: number): number {
  let h = (Math.imul(a ^ 0x9e3779b9, 0x85ebca6b) ^ Math.imul(b + 0x7f4a7c15, 0xc2b2ae35)) >>> 0;
  h ^= h >>> 16;
  h = Math.imul(h, 0x7feb352d) >>> 0;
  h ^= h >>> 15;
  h = Math.imul(h, 0x846ca68b) >>> 0;
  h ^= h >>> 16;
  return h >>> 0;
}

function wordHash(w: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < w.length; i++) h = Math.imul(h ^ w.charCodeAt(i), 0x01000193) >>> 0;
  return h >>> 0;
}

export class FakeTokenizer implements TextTokenizer {
  readonly bosId = 1;
  readonly eosId = 2;
  readonly padId = 0;
  readonly dummyPrefix = false;
  readonly source = 'fake word tokenizer';
  private readonly words = new Map<number, string>();
  constructor(readonly vocabSize: number) {}

  encode(text: string): number[] {
    const words = text.toLowerCase().match(/[a-z0-9']+|[^\sa-z0-9']/g) ?? [];
    return words.map((w) => {
      const id = 3 + (wordHash(w) % (this.vocabSize - 3));
      this.words.set(id, w);
      return id;
    });
  }
  decode(ids: readonly number[]): string {
    return ids.map((id) => this.idToToken(id)).join(' ');
  }
  idToToken(id: number): string | undefined {
    if (id === 1) return '<s>';
    if (id === 2) return '</s>';
    return this.words.get(id) ?? `<${id}>`;
  }
}

/** log p(ids[t] | ids[<t]) for t = 1 .. n − 1, computed in f64. */
export function fakeLogprobs(ids: readonly number[], vocabSize: number, boost: number): Float64Array {
  const out = new Float64Array(Math.max(0, ids.length - 1));
  const seen = new Uint8Array(vocabSize);
  const logits = new Float64Array(vocabSize);
  for (let t = 1; t < ids.length; t++) {
    seen[ids[t - 1]] = 1;
    const prev = ids[t - 1];
    let max = -Infinity;
    for (let v = 0; v < vocabSize; v++) {
      const a = (mix(prev, v) / 4294967296) * 4 - 2;
      logits[v] = a + (seen[v] ? boost : 0);
      if (logits[v] > max) max = logits[v];
    }
    let s = 0;
    for (let v = 0; v < vocabSize; v++) s += Math.exp(logits[v] - max);
    out[t - 1] = logits[ids[t]] - max - Math.log(s);
  }
  return out;
}

export function createFakeLm(o: FakeLmOptions = {}): FakeLm {
  const vocabSize = o.vocabSize ?? 257;
  const maxLen = o.maxLen ?? 256;
  const boost = o.boost ?? 2;
  const tokenizer = new FakeTokenizer(vocabSize);
  const config: ModelConfig = {
    arch: 'llama', name: o.name ?? 'fake-lm', vocabSize, dim: 8, hiddenDim: 16, nLayers: 1, nHeads: 1, nKvHeads: 1, headDim: 8,
    maxSeqLen: maxLen, normEps: 1e-5, norm: 'rms', act: 'swiglu', pos: 'rope', ropeTheta: 10000, ropeLayout: 'interleaved',
    qkvBias: false, mlpBias: false, tiedEmbeddings: true, bosId: 1, eosId: 2, padId: 0,
  };
  const calls: number[][] = [];
  const hiddenCalls: number[][] = [];
  const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
  const check = (seqs: SequenceRequest[]) => {
    for (const s of seqs) if (s.ids.length > maxLen) throw new Error(`fake-lm: sequence of ${s.ids.length} tokens is over maxLen ${maxLen}`);
  };
  return {
    config, tokenizer, backend: o.backend ?? 'cpu', deviceName: 'fake (deterministic test model)', maxLen,
    tokenBudget: o.tokenBudget ?? 512, calls, hiddenCalls,
    async scoreBatch(seqs: SequenceRequest[]): Promise<SequenceScores[]> {
      check(seqs);
      calls.push(seqs.map((s) => s.ids.length));
      if (o.delayMs) await sleep(o.delayMs);
      return seqs.map((s) => ({ logprobs: Float32Array.from(fakeLogprobs(s.ids, vocabSize, boost)) }));
    },
    async meanHidden(seqs: SequenceRequest[]): Promise<Float32Array[]> {
      check(seqs);
      hiddenCalls.push(seqs.map((s) => s.ids.length));
      return seqs.map((s) => {
        const v = new Float32Array(8);
        for (const id of s.ids) for (let d = 0; d < 8; d++) v[d] += (mix(id, 1000 + d) / 4294967296 - 0.5) / s.ids.length;
        return v;
      });
    },
    dispose() {},
  };
}

/** The CONCORD_TEST_MODEL_MODULE entry point: options from the environment. */
export async function loadModel(name: string, opts: { device?: string } = {}): Promise<LanguageModel> {
  const env = (globalThis as { process?: { env: Record<string, string | undefined> } }).process?.env ?? {};
  const n = (k: string) => (env[k] !== undefined ? Number(env[k]) : undefined);
  return createFakeLm({
    name: `fake:${name}`,
    vocabSize: n('CONCORD_FAKE_VOCAB'),
    delayMs: n('CONCORD_FAKE_DELAY_MS'),
    maxLen: n('CONCORD_FAKE_MAXLEN'),
    tokenBudget: n('CONCORD_FAKE_BUDGET'),
    backend: opts.device === 'cpu' ? 'cpu' : 'webgpu',
  });
}
