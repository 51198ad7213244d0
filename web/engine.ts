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
