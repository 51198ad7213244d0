// Importance matrices as llama.cpp's `imatrix` tool computes them (tools/imatrix/imatrix.cpp,
// collect_imatrix): for every linear weight of the transformer blocks, the mean over the sample
// tokens of the squared input activation of each input column, E[x_j²]. Only `blk.*` weights get
// one (the tool's default: no token embedding, no LM head without --process-output). The values
// feed ggml's quant_weights paths (src/quant/quantize.ts) when `concord quantize --imatrix-data`
// writes a file.
//
// Here the activations come from concord's CPU twin forward (src/models/forward-cpu.ts), one
// sequence per calibration text, every token counted (the tool's batches are whole 512-token chunks,
// so its skip of batches under 16 tokens never applies there either). Sums are kept in f64, the
// mean rounded to f32 (the tool sums in f32 and llama-quantize divides by the count in f32).

import { forwardHiddenCpu } from '../models/forward-cpu.js';
import type { LoadedModel } from '../models/load.js';
import type { LoadedWeights } from '../models/types.js';
import { openRecords } from '../io/inputs.js';
import { recordToPair } from '../pipeline/input.js';
import { InputError } from '../errors.js';
import { readFileSync } from 'node:fs';

/** Per canonical weight name (`layers.3.wq`, ...): E[x_j²] over the calibration tokens, one value per input column. */
export interface Imatrix {
  values: Map<string, Float32Array>;
  /** Tokens the means are over (every weight sees every token). */
  tokens: number;
  sequences: number;
}

/** Run the twin over `seqs` (token ids) and collect E[x²] of every block linear's input columns. */
export function collectImatrix(w: LoadedWeights, seqs: readonly (readonly number[])[]): Imatrix {
  const sums = new Map<string, Float64Array>();
  let tokens = 0;
  for (const ids of seqs) {
    forwardHiddenCpu(w, ids, (weight, x, rows, cols) => {
      if (!weight.startsWith('layers.')) return;
      let s = sums.get(weight);
      if (!s) sums.set(weight, (s = new Float64Array(cols)));
      for (let r = 0; r < rows; r++) for (let j = 0; j < cols; j++) { const v = x[r * cols + j]; s[j] += v * v; }
    });
    tokens += ids.length;
  }
  const values = new Map<string, Float32Array>();
  for (const [k, s] of sums) values.set(k, Float32Array.from(s, (v) => v / tokens));
  return { values, tokens, sequences: seqs.length };
}

/** Longest calibration sequence: llama.cpp's imatrix default context (512), or the model's own if shorter. */
const chunkLen = (m: LoadedModel) => Math.min(512, m.config.maxSeqLen);

/**
 * Calibration token sequences from a file: a `.txt` file is one text cut into chunks of up to 512
 * tokens (each after BOS), as the imatrix tool cuts its -f file; any records file concord reads
 * (JSONL, JSON, Parquet, compressed) gives one sequence per record, its prompt and response joined
 * by a blank line (cut at 512 tokens). `limit` keeps the first sequences.
 */
export async function calibrationSequences(m: LoadedModel, file: string, limit = Infinity): Promise<number[][]> {
  const L = chunkLen(m), bos = m.tokenizer.bosId;
  const withBos = (ids: number[]) => (bos !== null ? [bos, ...ids] : ids);
  const out: number[][] = [];
  if (/\.txt$/i.test(file)) {
    let text: string;
    try { text = readFileSync(file, 'utf8'); } catch (e) { throw new InputError(`${file}: cannot read calibration text: ${(e as Error).message}`); }
    const ids = m.tokenizer.encode(text, { addSpecial: false });
    const step = bos !== null ? L - 1 : L;
    for (let i = 0; i < ids.length && out.length < limit; i += step) out.push(withBos(ids.slice(i, i + step)));
  } else {
    for await (const r of openRecords(file)) {
      if (out.length >= limit) break;
      if (r.parseError) throw new InputError(`${r.loc}: ${r.parseError}`);
      let pair;
      try { pair = recordToPair(r.record); } catch (e) { throw new InputError(`${r.loc}: ${(e as Error).message}`); }
      out.push(withBos(m.tokenizer.encode(`${pair.x}\n\n${pair.y}`, { addSpecial: false })).slice(0, L));
    }
  }
  if (out.length === 0 || out.every((s) => s.length < 2)) throw new InputError(`${file}: no calibration text`);
  return out;
}
