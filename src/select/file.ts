// `concord select` on files: read the scores (one pass, keeping each record's byte range), rank by
// the rule (and, with a prefilter, keep only the IFD top fraction), then
//  - objective deita: walk best first in candidate blocks — read those records back by offset,
//    embed their text, offer them to the DiversitySelector — until the budget is met;
//  - objective facility-location: embed every candidate (in rule order), then the greedy of
//    src/select/facility.ts down to the budget;
// then write the selected records in input order (a second pass), each with `select_rank` (its
// place in the choice order among the selected), `filter_score` and, for facility location,
// `select_gain` (its marginal gain when chosen).

import * as fs from 'node:fs';
import { applyFilter, type FilterOptions, type ScoreFields } from '../filter/index.js';
import type { GpuRuntime } from '../gpu/runtime.js';
import { DEFAULT_FIELDS, recordToPair } from '../pipeline/input.js';
import { openRecords, type RecordInput } from '../io/inputs.js';
import { openWriter, type OutFormat } from '../io/record-writer.js';
import { DiversitySelector, walkOrder } from './index.js';
import { facilityLocation } from './facility.js';
import { requiredScores, scoresOf } from '../jobs/filter.js';

export type SelectOn = 'x' | 'y' | 'xy';
export type SelectObjective = 'deita' | 'facility-location';
export const OBJECTIVES: SelectObjective[] = ['deita', 'facility-location'];

/** Keep the top `fraction` of the scored records by IFD first (Superfiltering's step 1: `--rule superfilter`'s order). */
export interface Prefilter {
  signal: 'ifd';
  fraction: number;
}

export interface SelectEmbedder {
  readonly dim: number;
  embed(texts: string[]): Promise<Float32Array[]>;
}

export interface SelectFileOptions {
  input: string;
  /** The input's files (default openRecords(input)): the CLI opens it before loading the encoder. */
  inputs?: RecordInput;
  output: string;
  /** default: by the output's extension */
  outFormat?: OutFormat;
  filter: FilterOptions;
  /** pairs to keep; or keepFraction × (records with scores) */
  budget?: number;
  keepFraction?: number;
  /** deita (default): score-first walk under τ; facility-location: the greedy of src/select/facility.ts */
  objective?: SelectObjective;
  /** deita: the cosine bound (ignored by facility-location) */
  tau: number;
  prefilter?: Prefilter;
  on: SelectOn;
  embedder: SelectEmbedder;
  device: GpuRuntime | 'cpu';
  blockSize?: number;
  log?: (s: string) => void;
}

export interface SelectSummary {
  records: number;
  /** records with scores that the rule ranks (finite score, clearing explicit thresholds) */
  ranked: number;
  budget: number;
  selected: number;
  walked: number;
  rejected_for_diversity: number;
  errors: number;
  objective: SelectObjective;
  /** deita's τ (null for facility-location) */
  tau: number | null;
  /** e.g. 'ifd:0.2', or null */
  prefilter: string | null;
  /** pairs the selection chose from: ranked, and within the prefilter's fraction */
  candidates: number;
  /** facility location: f(S) = Σ_i max_{j∈S} max(0, cos), gain evaluations, f64 rechecks of f32 gains (GPU) */
  facility: { value: number; evaluated: number; rechecked: number; batches: number } | null;
  on: SelectOn;
  block_size: number;
  score_blocks: number;
  applied: Record<string, number | string | null>;
  embed_ms: number;
  compare_ms: number;
}

export function textOf(record: unknown, on: SelectOn): string {
  const p = recordToPair(record, DEFAULT_FIELDS);
  return on === 'x' ? p.x : on === 'y' ? p.y : `${p.x}\n\n${p.y}`;
}

export async function selectFile(o: SelectFileOptions): Promise<SelectSummary> {
  const log = o.log ?? ((s: string) => { process.stderr.write(`${s}\n`); });
  // Pass 1: scores and where each record is.
  const scores: ScoreFields[] = [];
  const locs: string[] = [];
  const start: number[] = [], end: number[] = [];
  const inMemory: unknown[] = [];
  let records = 0, errors = 0, prevEnd = 0;
  // The rule's scores, and IFD when a prefilter reads it.
  const need = [...new Set([...requiredScores(o.filter), ...(o.prefilter ? requiredScores({ rule: 'superfilter' }) : [])])];
  const input = o.inputs ?? openRecords(o.input);
  // One plain JSONL file: records are read back by byte range; other inputs are held in memory.
  const jsonl = input.plainSingle && input.format === 'jsonl';
  for await (const r of input) {
    records++;
    const rs = prevEnd;
    prevEnd = r.endOffset;
    const got = scoresOf(r, need);
    if (!got.scores) {
      errors++;
      if (errors <= 10) log(`${r.loc}: ${got.error} (left out)`);
      continue;
    }
    scores.push(got.scores);
    locs.push(r.loc);
    if (jsonl) { start.push(rs); end.push(r.endOffset); } else inMemory.push(r.record);
  }
  const n = scores.length;
  const budget = o.budget ?? Math.round((o.keepFraction ?? 1) * n);
  const objective = o.objective ?? 'deita';
  // The rule's order: its ranking with only the thresholds given explicitly (the budget cuts).
  const ranked = applyFilter(scores, { ...o.filter, keepFraction: 1 });
  let order = walkOrder(ranked.rank);
  if (o.prefilter) {
    // Superfiltering's IFD step: IFD < 1, the top fraction × (scored records) by IFD, highest first.
    const pre = applyFilter(scores, { rule: 'superfilter', keepFraction: o.prefilter.fraction });
    order = order.filter((i) => pre.keep[i]);
  }
  const selectedRank = new Map<number, number>();
  const selectedGain = new Map<number, number>();
  let embedMs = 0, compareMs = 0;
  const fd = jsonl ? fs.openSync(input.files[0].path, 'r') : null;
  const readRecord = (i: number): unknown => {
    if (!fd) return inMemory[i];
    const buf = Buffer.alloc(end[i] - start[i]);
    fs.readSync(fd, buf, 0, buf.length, start[i]);
    return JSON.parse(buf.toString('utf8'));
  };
  /** The next block of ≤ bs candidates from order[k...] that can be read: their indices, texts and the next k. */
  const nextBlock = (k: number, bs: number) => {
    const idx: number[] = [], texts: string[] = [];
    for (; k < order.length && idx.length < bs; k++) {
      const i = order[k];
      try {
        texts.push(textOf(readRecord(i), o.on));
        idx.push(i);
      } catch (e) {
        errors++;
        if (errors <= 10) log(`${locs[i]}: ${(e as Error).message} (left out)`);
      }
    }
    return { idx, texts, k };
  };
  const d = o.embedder.dim;
  let walked = 0, rejected = 0, blockSize: number, scoreBlocks = 0, candidates = order.length;
  let facility: SelectSummary['facility'] = null;
  try {
    if (objective === 'deita') {
      const sel = new DiversitySelector({ tau: o.tau, budget, dim: d, device: o.device, blockSize: o.blockSize });
      try {
        const bs = (blockSize = sel.blockSize);
        for (let k = 0; k < order.length && !sel.full; ) {
          const blk = nextBlock(k, bs);
          k = blk.k;
          if (!blk.idx.length) break;
          let t0 = performance.now();
          const vecs = await o.embedder.embed(blk.texts);
          embedMs += performance.now() - t0;
          const flat = new Float32Array(blk.idx.length * d);
          vecs.forEach((v, r) => flat.set(v, r * d));
          t0 = performance.now();
          const res = await sel.offer(flat, blk.idx.length);
          compareMs += performance.now() - t0;
          res.forEach((x, r) => { if (x === 1) selectedRank.set(blk.idx[r], selectedRank.size); });
        }
      } finally {
        walked = sel.walked;
        rejected = sel.rejected;
        scoreBlocks = sel.blockPairs;
        sel.dispose();
      }
    } else {
      // Every candidate is embedded (rule order: ties in the greedy go to the better ranked).
      const idx: number[] = [];
      let E = new Float32Array(Math.min(order.length, 1024) * d);
      const bsEmbed = o.blockSize ?? 1024;
      for (let k = 0; k < order.length; ) {
        const blk = nextBlock(k, bsEmbed);
        k = blk.k;
        if (!blk.idx.length) continue;
        const t0 = performance.now();
        const vecs = await o.embedder.embed(blk.texts);
        embedMs += performance.now() - t0;
        if ((idx.length + blk.idx.length) * d > E.length) {
          const grown = new Float32Array(Math.max(2 * E.length, (idx.length + blk.idx.length) * d));
          grown.set(E.subarray(0, idx.length * d));
          E = grown;
        }
        vecs.forEach((v, r) => E.set(v, (idx.length + r) * d));
        idx.push(...blk.idx);
      }
      candidates = walked = idx.length;
      const t0 = performance.now();
      const fl = await facilityLocation(E, idx.length, { budget, dim: d, device: o.device, blockSize: o.blockSize });
      compareMs += performance.now() - t0;
      fl.chosen.forEach((c, r) => { selectedRank.set(idx[c], r); selectedGain.set(idx[c], fl.gains[r]); });
      blockSize = fl.blockSize;
      scoreBlocks = fl.batches;
      facility = { value: fl.value, evaluated: fl.evaluated, rechecked: fl.rechecked, batches: fl.batches };
    }
  } finally {
    if (fd !== null) fs.closeSync(fd);
  }
  // Pass 2: the selected records in input order.
  const out = openWriter(o.output, { format: o.outFormat });
  try {
    let v = 0;
    for await (const r of input) {
      if (!scoresOf(r, need).scores) continue;
      const rec = r.record as object;
      const rank = selectedRank.get(v);
      if (rank !== undefined) {
        const fsc = ranked.score[v];
        const gain = selectedGain.get(v);
        out.write(JSON.stringify({ ...(rec as object), select_rank: rank, filter_score: Number.isFinite(fsc) ? fsc : null, ...(gain === undefined ? {} : { select_gain: gain }) }));
      }
      v++;
    }
    await out.commit();
  } catch (e) {
    out.abort();
    throw e;
  }
  return {
    records, ranked: ranked.rank.filter((x) => Number.isFinite(x)).length, budget, selected: selectedRank.size, walked, rejected_for_diversity: rejected, errors,
    objective, tau: objective === 'deita' ? o.tau : null, prefilter: o.prefilter ? `${o.prefilter.signal}:${o.prefilter.fraction}` : null, candidates, facility,
    on: o.on, block_size: blockSize!, score_blocks: scoreBlocks, applied: ranked.applied, embed_ms: embedMs, compare_ms: compareMs,
  };
}
