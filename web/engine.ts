// The demo's one seam onto the engine: everything the page and its worker need from src/ goes
// through here, so following a change in the engine's API is a change in this file only.
// It runs in the browser's worker and in Node (the browser test computes its reference with it).
//
//   model:   LoadedWeights + TextTokenizer (from web/model-source.ts) → modelFromWeights on 'webgpu'
//            or 'cpu'; never one for the other.
//   scoring: browserScorer from src/pipeline (createScorer's composition, from a loaded model).
//   filter:  applyFilter (src/filter), rule 'main' (mutual: both directions must accept).

import { mainSignals } from '../src/filter/index.js';
import { requestGpu } from '../src/gpu/device.js';
import { GpuRuntime } from '../src/gpu/runtime.js';
import type { LanguageModel } from '../src/models/lm.js';
import { modelFromWeights } from '../src/models/model.js';
import type { LoadedWeights } from '../src/models/types.js';
import { applyFilter, browserScorer, recordToPair, type FilterResult, type PairScores, type ScoreProgress } from '../src/pipeline/index.js';
import type { TextTokenizer } from '../src/tokenizer/types.js';

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

/** Score records with one model (both directions), in input order. */
export async function scoreRecords(model: LanguageModel, records: unknown[], opts: ScoreRunOptions = {}): Promise<ScoredPair[]> {
  const scorer = await browserScorer({ model, cosine: 'off', onProgress: opts.onProgress });
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
  | { kind: 'fraction'; keepFraction: number }
  | { kind: 'thresholds'; fwdThreshold?: number; revThreshold?: number };

/** The mutual filter over scored pairs (unscored pairs are dropped). No rescoring. */
export function filterPairs(pairs: ScoredPair[], control: FilterControl): FilterResult {
  const fields = pairs.map((p) => p.scores ?? {});
  if (control.kind === 'fraction') return applyFilter(fields, { rule: 'main', signal: 'gain', keepFraction: control.keepFraction });
  return applyFilter(fields, { rule: 'main', signal: 'gain', fwdThreshold: control.fwdThreshold, revThreshold: control.revThreshold });
}

/** One output line: the record as given, with its scores and the decision under `concord`. */
export function outputRecord(p: ScoredPair, keep: boolean, combined: number): Record<string, unknown> {
  const base = p.record && typeof p.record === 'object' && !Array.isArray(p.record) ? (p.record as Record<string, unknown>) : { record: p.record };
  return {
    ...base,
    concord: p.scores
      ? { ...p.scores, g_fwd: p.g_fwd, g_rev: p.g_rev, combined: Number.isFinite(combined) ? combined : null, keep }
      : { error: p.error ?? 'not scored', keep: false },
  };
}

export function toJsonl(rows: object[]): string {
  return rows.map((r) => JSON.stringify(r)).join('\n') + (rows.length ? '\n' : '');
}
