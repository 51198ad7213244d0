// `concord select` on files: read the scores (one pass, keeping each record's byte range), rank by
// the rule, walk best first in candidate blocks — read those records back by offset, embed their
// text, offer them to the DiversitySelector — until the budget is met; then write the selected
// records in input order (a second pass), each with `select_rank` (its place in the walk order
// among the selected) and `filter_score`.

import * as fs from 'node:fs';
import { applyFilter, type FilterOptions, type ScoreFields } from '../filter/index.js';
import type { GpuRuntime } from '../gpu/runtime.js';
import { DEFAULT_FIELDS, recordToPair } from '../pipeline/input.js';
import { openRecords, type RecordInput } from '../io/inputs.js';
import { openWriter, type OutFormat } from '../io/record-writer.js';
import { DiversitySelector, walkOrder } from './index.js';
import { requiredScores, scoresOf } from '../jobs/filter.js';

export type SelectOn = 'x' | 'y' | 'xy';

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
  tau: number;
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
  tau: number;
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
  const need = requiredScores(o.filter);
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
  // The rule's order: its ranking with only the thresholds given explicitly (the budget cuts).
  const ranked = applyFilter(scores, { ...o.filter, keepFraction: 1 });
  const order = walkOrder(ranked.rank);
  const sel = new DiversitySelector({ tau: o.tau, budget, dim: o.embedder.dim, device: o.device, blockSize: o.blockSize });
  const selectedRank = new Map<number, number>();
  let embedMs = 0, compareMs = 0;
  const fd = jsonl ? fs.openSync(input.files[0].path, 'r') : null;
  const readRecord = (i: number): unknown => {
    if (!fd) return inMemory[i];
    const buf = Buffer.alloc(end[i] - start[i]);
    fs.readSync(fd, buf, 0, buf.length, start[i]);
    return JSON.parse(buf.toString('utf8'));
  };
  try {
    const bs = sel.blockSize;
    for (let k = 0; k < order.length && !sel.full; ) {
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
      if (!idx.length) break;
      let t0 = performance.now();
      const vecs = await o.embedder.embed(texts);
      embedMs += performance.now() - t0;
      const flat = new Float32Array(idx.length * o.embedder.dim);
      vecs.forEach((v, r) => flat.set(v, r * o.embedder.dim));
      t0 = performance.now();
      const res = await sel.offer(flat, idx.length);
      compareMs += performance.now() - t0;
      res.forEach((x, r) => { if (x === 1) selectedRank.set(idx[r], selectedRank.size); });
    }
  } finally {
    if (fd !== null) fs.closeSync(fd);
    sel.dispose();
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
        out.write(JSON.stringify({ ...(rec as object), select_rank: rank, filter_score: Number.isFinite(fsc) ? fsc : null }));
      }
      v++;
    }
    await out.commit();
  } catch (e) {
    out.abort();
    throw e;
  }
  return {
    records, ranked: order.length, budget, selected: selectedRank.size, walked: sel.walked, rejected_for_diversity: sel.rejected, errors,
    tau: o.tau, on: o.on, block_size: sel.blockSize, score_blocks: sel.blockPairs, applied: ranked.applied, embed_ms: embedMs, compare_ms: compareMs,
  };
}
