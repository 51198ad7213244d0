// The demo's one seam onto the engine: everything the page and its worker need from src/ goes
// through here, so following a change in the engine's API is a change in this file only.
// It runs in the browser's worker and in Node (the browser test computes its reference with it).
//
//   model:   LoadedWeights + TextTokenizer (from web/model-source.ts) → modelFromWeights on 'webgpu'
//            or 'cpu'; never one for the other.
//   encoder: the CLI's default sentence encoder (all-MiniLM-L6-v2, ONNX) from bytes → createEmbedder
//            on the model's GPU runtime (or the CPU twin), for the cosine.
//   scoring: browserScorer from src/pipeline (createScorer's composition, the CLI's), given both.
//   filter:  applyFilter (src/filter) with any rule the CLI offers, default 'auto' as the CLI's.
//   output:  the CLI's record shape: the record, `scores`, `keep`, `filter_score`.
//   propose: the reverse prompt (promptBuilder) → generate on model.createDecoder (the WebGPU
//            decoder: sampling on the GPU) → the candidates scored as above → chooseCandidate: the
//            argmax of the rule's rank (applyFilter over the candidates).

import { createEmbedder, type Embedder } from '../src/encoder/index.js';
import { bertFromOnnx } from '../src/encoder/onnx-bert.js';
import { appliedParams, mainSignals, RULES, type Rule } from '../src/filter/index.js';
import { externalLocations } from '../src/formats/onnx.js';
import { requestGpu } from '../src/gpu/device.js';
import { GpuRuntime } from '../src/gpu/runtime.js';
import type { LanguageModel } from '../src/models/lm.js';
import { modelFromWeights } from '../src/models/model.js';
import type { LoadedWeights } from '../src/models/types.js';
import { applyFilter, browserScorer, recordToPair, type FilterResult, type PairScores, type ScoreProgress } from '../src/pipeline/index.js';
import type { TextTokenizer } from '../src/tokenizer/types.js';
import { generate, type FinishReason, type GenerateRequest, type GenerateResult } from '../src/generate/engine.js';
import { promptBuilder } from '../src/generate/prompts.js';
import { outputRecord as generateOutputRecord, sourceText } from '../src/generate/records.js';
import type { SamplingParams } from '../src/generate/types.js';
import { DEFAULT_FIELDS } from '../src/pipeline/input.js';

export { appliedParams, RULES, type Rule };
export type Device = 'webgpu' | 'cpu';
export type { PairScores, ScoreProgress, FilterResult };

// ---- models -------------------------------------------------------------------------------------
// The engine's own constructor over in-memory weights (the same one loadModel uses in Node).

/** Token budget per batch (sequences × padded length): small batches keep the page's progress lively. */
const GPU_TOKEN_BUDGET = 2048;
const CPU_TOKEN_BUDGET = 512;

/** A LanguageModel on the device asked for. 'webgpu' without an adapter throws; it never becomes 'cpu'. */
export async function openModel(weights: LoadedWeights, tokenizer: TextTokenizer, device: Device): Promise<LanguageModel> {
  if (device === 'cpu') return modelFromWeights(weights, tokenizer, { device: 'cpu', tokenBudget: CPU_TOKEN_BUDGET, reason: 'CPU chosen on the page' });
  const gpu = await requestGpu(); // throws GpuUnavailableError: the caller reports it, no fallback
  const rt = new GpuRuntime(gpu);
  const lm = await modelFromWeights(weights, tokenizer, { device: rt, tokenBudget: GPU_TOKEN_BUDGET, reason: 'WebGPU chosen on the page' });
  const software = gpu.info.software ? ' [software adapter]' : '';
  return { ...lm, deviceName: lm.deviceName.replace(/^webgpu: ([^,]*)/, `webgpu: $1${software}`), dispose: () => { lm.dispose(); rt.destroy(); } };
}

// ---- the sentence encoder ----------------------------------------------------------------------
// The CLI's default (--cosine auto → all-MiniLM-L6-v2); cosine_source reads 'embed:<name>' as there.

export const DEFAULT_ENCODER = 'all-MiniLM-L6-v2';
/** The files of the default encoder, under models/all-MiniLM-L6-v2/ (served with the page). */
export const ENCODER_FILES = ['model_q4.onnx', 'model_q4.onnx_data', 'tokenizer.json', 'tokenizer_config.json', 'config.json'] as const;

export interface EncoderBytes {
  name: string;
  /** the .onnx graph */
  onnx: Uint8Array;
  /** its external data files, by the location the graph names */
  external: Map<string, Uint8Array>;
  tokenizerJson: object;
  tokenizerConfig?: object;
  config?: Record<string, unknown>;
}

/** The external data files a graph names (to fetch them next to it). */
export const encoderExternalFiles = (onnx: Uint8Array): string[] => externalLocations(onnx);

/** An encoder on the language model's device: its GPU runtime when it runs on WebGPU, else the CPU twin. */
export function openEncoder(src: EncoderBytes, lm: LanguageModel): Embedder {
  const weights = bertFromOnnx(src.onnx, src.external, { name: src.name, hfConfig: src.config ?? null });
  const rt = lm.runtime ?? null;
  return createEmbedder({ weights, tokenizerJson: src.tokenizerJson, tokenizerConfig: src.tokenizerConfig ?? {} }, { device: rt ?? 'cpu' });
}

// ---- data ---------------------------------------------------------------------------------------

export interface ParsedRecords {
  records: unknown[];
  /** 'line N: reason' for lines that are not JSON */
  errors: string[];
  format: 'jsonl' | 'json';
}

/** JSONL (one object a line) or a JSON array of objects. */
export function parseRecords(text: string): ParsedRecords {
  const t = text.trim();
  if (t === '') return { records: [], errors: [], format: 'jsonl' };
  if (t.startsWith('[')) {
    let arr: unknown;
    try {
      arr = JSON.parse(t);
    } catch (e) {
      return { records: [], errors: [`not valid JSON: ${(e as Error).message}`], format: 'json' };
    }
    if (!Array.isArray(arr)) return { records: [], errors: ['a JSON file must hold an array of records'], format: 'json' };
    return { records: arr, errors: [], format: 'json' };
  }
  const records: unknown[] = [];
  const errors: string[] = [];
  text.split(/\r?\n/).forEach((line, k) => {
    if (line.trim() === '') return;
    try {
      records.push(JSON.parse(line));
    } catch (e) {
      errors.push(`line ${k + 1}: ${(e as Error).message}`);
    }
  });
  return { records, errors, format: 'jsonl' };
}

/** The prompt and response text of a record, for display (null when it is not a pair). */
export function pairText(record: unknown): { x: string; y: string } | null {
  try {
    const p = recordToPair(record);
    return { x: p.x, y: p.y };
  } catch {
    return null;
  }
}

// ---- scoring ------------------------------------------------------------------------------------

export interface ScoredPair {
  index: number;
  record: unknown;
  x: string;
  y: string;
  scores?: PairScores;
  /** g_fwd = fwd_logp − y_logp, g_rev = rev_logp − x_logp (per-token means, nats) */
  g_fwd: number;
  g_rev: number;
  error?: string;
}

export interface ScoreRunOptions {
  onProgress?: (p: ScoreProgress) => void;
  /** Called after each batch with the pairs finished so far (in input order). */
  onPairs?: (pairs: ScoredPair[]) => void;
}

/** Score records with one model (both directions) and, when given, the sentence encoder's cosine, in input order. */
export async function scoreRecords(model: LanguageModel, records: unknown[], opts: ScoreRunOptions & { encoder?: Embedder | null; encoderName?: string } = {}): Promise<ScoredPair[]> {
  const enc = opts.encoder ?? null;
  const scorer = await browserScorer({
    model, onProgress: opts.onProgress,
    ...(enc ? { cosine: 'embed', embedModel: { embed: (t: string[]) => enc.embed(t), name: opts.encoderName ?? DEFAULT_ENCODER } } : { cosine: 'off' }),
  });
  const out: ScoredPair[] = [];
  for await (const r of scorer.score(records)) {
    const text = pairText(r.record) ?? { x: '', y: '' };
    const g = r.scores ? mainSignals(r.scores, 'gain') : { fwd: NaN, rev: NaN };
    out.push({ index: r.index, record: r.record, ...text, scores: r.scores, g_fwd: g.fwd, g_rev: g.rev, error: r.error });
    opts.onPairs?.(out);
  }
  return out;
}

// ---- filtering ----------------------------------------------------------------------------------

export type FilterControl =
  /** the rule's own defaults, as `concord filter --rule R` without thresholds */
  | { kind: 'defaults' }
  | { kind: 'fraction'; keepFraction: number }
  | { kind: 'thresholds'; fwdThreshold?: number; revThreshold?: number };

/**
 * A rule over the scored pairs, as `concord filter` applies it: the pairs without scores are left
 * out of the set (the CLI sends them to its errors file) and dropped here. No rescoring.
 */
export function filterPairs(pairs: ScoredPair[], control: FilterControl, rule: Rule = 'auto'): FilterResult {
  const scored = pairs.map((p, i) => (p.scores ? i : -1)).filter((i) => i >= 0);
  const fields = scored.map((i) => pairs[i].scores!);
  const opts = control.kind === 'fraction' ? { rule, keepFraction: control.keepFraction }
    : control.kind === 'thresholds' ? { rule, fwdThreshold: control.fwdThreshold, revThreshold: control.revThreshold }
    : { rule };
  const f = fields.length ? applyFilter(fields, opts) : { keep: [], score: [], rank: [], kept: 0, dropped: 0, applied: { rule } };
  const keep = new Array<boolean>(pairs.length).fill(false);
  const score = new Array<number>(pairs.length).fill(NaN);
  const rank = new Array<number>(pairs.length).fill(-Infinity);
  scored.forEach((i, k) => { keep[i] = f.keep[k]; score[i] = f.score[k]; rank[i] = f.rank[k]; });
  return { keep, score, rank, kept: f.kept, dropped: pairs.length - f.kept, applied: f.applied };
}

/** One output line in the CLI's shape (`concord score` + `concord filter`): the record as given, its `scores`, `keep`, `filter_score`. */
export function outputRecord(p: ScoredPair, keep: boolean, filterScore: number): Record<string, unknown> {
  const base = p.record && typeof p.record === 'object' && !Array.isArray(p.record) ? (p.record as Record<string, unknown>) : { record: p.record };
  if (!p.scores) return { ...base, error: p.error ?? 'not scored', keep: false, filter_score: null };
  return { ...base, scores: p.scores, keep, filter_score: Number.isFinite(filterScore) ? filterScore : null };
}

export function toJsonl(rows: object[]): string {
  return rows.map((r) => JSON.stringify(r)).join('\n') + (rows.length ? '\n' : '');
}

// ---- proposing instructions (MAIN's data step for one response) -------------------------------
// `concord generate --direction reverse` on the decoder of the model's device (WebGPU: sampling on
// the GPU), then the candidates scored as above and ranked by the chosen rule's `rank`
// (applyFilter over the candidates, as `concord synthesize` chooses per response).

export interface ProposeSettings {
  /** candidates per response (sample j draws with seed + j, as `concord generate` on a file's first record) */
  k: number;
  maxNewTokens: number;
  /** temperature 0 = greedy */
  sampling: SamplingParams;
  /** a stop string ('' = none), with the CLI's escapes (\n, \t, \\) */
  stop: string;
}

/** A candidate instruction: the record `concord generate --direction reverse` writes for it, scored. */
export interface Candidate extends ScoredPair {
  sample: number;
  generated_tokens: number;
  finish_reason: FinishReason;
}

export interface Proposal {
  /** the record proposed for (Alpaca fields) */
  source: Record<string, unknown>;
  response: string;
  /** its instruction, when it has one */
  original: string | null;
  promptTokens: number;
  template: string;
  candidates: Candidate[];
  generateSeconds: number;
  scoreSeconds: number;
  /** the original pair scored beside the candidates (null without an original instruction) */
  originalPair: ScoredPair | null;
}

/** The CLI's escapes in --stop ('\n', '\t', '\\'), as src/cli/common.ts unescapeCli. */
export const unescapeStop = (s: string): string => s.replace(/\\([nt\\])/g, (_, c: string) => (c === 'n' ? '\n' : c === 't' ? '\t' : '\\'));

/**
 * The record a response is proposed for, in Alpaca fields (what `concord generate` reads and
 * writes): an Alpaca record as it is; a messages / conversations record as its pair; a bare text
 * as { output }.
 */
export function responseRecord(input: unknown): Record<string, unknown> {
  if (typeof input === 'string') return { output: input };
  if (input && typeof input === 'object' && !Array.isArray(input)) {
    const r = input as Record<string, unknown>;
    if (typeof r.output === 'string') return r;
    const pair = pairText(r);
    if (pair) {
      const { messages: _m, conversations: _c, ...rest } = r;
      return { ...rest, instruction: pair.x, output: pair.y };
    }
  }
  throw new Error('give a response text or a record with an output (or messages / conversations)');
}

/** Generate k instructions for one response (the reverse prompt) and score every (candidate, response). */
export async function proposeInstructions(model: LanguageModel, input: unknown, s: ProposeSettings,
  opts: { encoder?: Embedder | null; encoderName?: string; onStatus?: (text: string) => void } = {}): Promise<Proposal> {
  if (!model.createDecoder) throw new Error(`${model.deviceName} cannot decode`);
  if (!Number.isInteger(s.k) || s.k < 1 || s.k > 64) throw new Error(`candidates must be an integer in [1, 64], got ${s.k}`);
  if (!Number.isInteger(s.maxNewTokens) || s.maxNewTokens < 1) throw new Error(`max new tokens must be a positive integer, got ${s.maxNewTokens}`);
  const source = responseRecord(input);
  const response = sourceText(source, 'reverse', DEFAULT_FIELDS);
  const tok = model.tokenizer;
  const builder = promptBuilder(tok, { direction: 'reverse' });
  const prompt = builder.build(response);
  const stop = unescapeStop(s.stop);
  const requests: GenerateRequest[] = Array.from({ length: s.k }, (_, j) => ({
    prompt, sampling: { ...s.sampling, seed: (s.sampling.seed + j) >>> 0 }, maxNewTokens: s.maxNewTokens,
    stopIds: tok.eosId !== null ? [tok.eosId] : [], stopStrings: stop ? [stop] : [],
  }));
  opts.onStatus?.(`generating ${s.k} instructions (prompt ${prompt.length} tokens) on ${model.deviceName}`);
  const t0 = performance.now();
  const decoder = await model.createDecoder({ slots: Math.min(s.k, 8), maxLen: model.maxLen });
  let results: GenerateResult[];
  try {
    results = (await generate(decoder, requests, { decode: (ids) => tok.decode(ids) })).results;
  } finally {
    decoder.dispose();
  }
  const bad = results.find((r) => r.error);
  if (bad) throw new Error(`generation: ${bad.error}`);
  const t1 = performance.now();
  const records = results.map((r, j) => generatedRecord(source, r, j, s.k));
  const original = typeof source.instruction === 'string' && source.instruction.trim() !== '' ? pairText(source)?.x ?? null : null;
  opts.onStatus?.(`scoring ${s.k} candidates${original !== null ? ' and the original' : ''} both ways on ${model.deviceName}`);
  const scored = await scoreRecords(model, original !== null ? [...records, source] : records, { encoder: opts.encoder, encoderName: opts.encoderName });
  const candidates = results.map((r, j): Candidate => ({ ...scored[j], sample: j, generated_tokens: r.generated_tokens, finish_reason: r.finish_reason }));
  return {
    source, response, original, promptTokens: prompt.length, template: builder.template, candidates,
    originalPair: original !== null ? scored[s.k] : null,
    generateSeconds: (t1 - t0) / 1000, scoreSeconds: (performance.now() - t1) / 1000,
  };
}

/** The record `concord generate --direction reverse` writes for sample j of k (`sample` when k > 1, as the CLI). */
function generatedRecord(source: Record<string, unknown>, r: GenerateResult, j: number, k: number): Record<string, unknown> {
  return generateOutputRecord(source, 'reverse', DEFAULT_FIELDS, r, j, k);
}

/**
 * The rule over the candidates (applyFilter, with the rule's defaults, as `concord synthesize`
 * ranks one response's candidates) and the chosen one: the argmax of the rule's `rank` (the
 * lowest sample on ties; candidates without scores are never chosen; -1 when none has scores).
 */
export function chooseCandidate(candidates: ScoredPair[], rule: Rule = 'auto'): { filter: FilterResult; chosen: number } {
  const filter = filterPairs(candidates, { kind: 'defaults' }, rule);
  let chosen = -1;
  candidates.forEach((c, i) => {
    if (c.scores && (chosen < 0 || filter.rank[i] > filter.rank[chosen])) chosen = i;
  });
  return { filter, chosen };
}

/**
 * The candidates file in the CLI's shape — each line as `concord generate --direction reverse`
 * writes it, then `concord score` (`scores`) and `concord filter` over the candidates (`keep`,
 * `filter_score`) — with `chosen` (true on the rule's first) and `rank` (the rule's rank value).
 */
export function candidateLines(candidates: ScoredPair[], filter: FilterResult, chosen: number): Record<string, unknown>[] {
  return candidates.map((c, i) => ({
    ...outputRecord(c, filter.keep[i], filter.score[i]),
    chosen: i === chosen,
    rank: Number.isFinite(filter.rank[i]) ? filter.rank[i] : null,
  }));
}
