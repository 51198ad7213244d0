// The filter job (Node): a scored input (any kind src/io reads) → kept (and dropped) records with
// `keep` and `filter_score`, JSONL or Parquet (src/io openWriter). Two passes over the input: the
// scores (only the fields the rules read), then the records. A record the rule cannot use is a
// `file:line: reason` line in the errors file; an input with no usable record at all is an error
// (exit 3), as select and report treat it.

import * as fs from 'node:fs';
import { InputError } from '../errors.js';
import { applyFilter, type FilterOptions, type FilterResult, type ScoreFields } from '../filter/index.js';
import { openRecords, type RecordInput } from '../io/inputs.js';
import type { FileRecord } from '../io/records.js';
import { openWriter, type OutFormat, type RecordWriter } from '../io/record-writer.js';
import { AtomicWriter } from '../io/writers.js';
import { BadRecords, StrictError, errorLine, errorsPathFor } from './bad-records.js';
import { crashPoint } from './checkpoint.js';

export interface FilterFileOptions {
  /** The input as the user named it (a file, a folder, a glob). */
  input: string;
  /** The kept records (JSONL or Parquet); optional only when dropOut is given (merge). */
  output?: string;
  dropOut?: string;
  /** default `<output>.errors.jsonl` */
  errors?: string;
  filter: FilterOptions;
  strict?: boolean;
  log: (line: string) => void;
  maxErrorLines?: number;
  /** The input's files (default: openRecords(input)). */
  inputs?: RecordInput;
  /** The outputs' format (default: by extension). */
  outFormat?: OutFormat;
}

export interface FilterSummary {
  command: string;
  input: string;
  output: string;
  drop_out: string | null;
  errors_file: string | null;
  counts: { records: number; kept: number; dropped: number; errors: number };
  applied: FilterResult['applied'];
  [k: string]: unknown;
}

/** The score fields a rule reads: each must be a finite number, else the record is an error. */
export function requiredScores(f: FilterOptions): (keyof ScoreFields)[] {
  switch (f.rule ?? 'auto') {
    // auto is main or fused, decided on the whole set (src/filter): both need the gains.
    case 'main': case 'auto': return f.signal === 'logp' ? ['fwd_logp', 'rev_logp'] : ['fwd_logp', 'y_logp', 'rev_logp', 'x_logp'];
    case 'fused': return ['fwd_logp', 'y_logp', 'rev_logp', 'x_logp', 'cosine'];
    case 'ifd': case 'superfilter': return ['ifd'];
    case 'rifd': return ['ifd', 'rifd'];
    case 'cosine': return ['cosine'];
  }
}

/**
 * The largest magnitude a score may have. A log-prob sum is bounded by tokens × log(vocabulary)
 * (below 1e9 for any real model and text); beyond this, sums of two scores could overflow to ±Inf.
 */
export const SCORE_LIMIT = 1e12;

/** A scored record's scores, or why the rule cannot use it (every field in `need` must be a finite number). */
export function scoresOf(r: FileRecord, need: (keyof ScoreFields)[]): { scores?: ScoreFields; error?: string } {
  if (r.parseError) return { error: r.parseError };
  const rec = r.record;
  if (!rec || typeof rec !== 'object' || Array.isArray(rec)) return { error: 'record must be a JSON object' };
  const s = (rec as { scores?: unknown }).scores;
  if (!s || typeof s !== 'object' || Array.isArray(s)) return { error: "no 'scores' object (run `concord score` first)" };
  for (const k of need) {
    const v = (s as Record<string, unknown>)[k];
    if (typeof v !== 'number' || !Number.isFinite(v)) {
      return { error: `scores.${k} is ${v === undefined ? 'missing' : v === null ? 'null' : `not a finite number (${JSON.stringify(v)})`}; the rule needs it` };
    }
    if (Math.abs(v) > SCORE_LIMIT) return { error: `scores.${k} = ${v} is out of range (|score| ≤ ${SCORE_LIMIT}: no real log-prob, ratio or cosine is that large)` };
  }
  return { scores: s as ScoreFields };
}

/** Pass 1: the fields the rules read, per usable record; the bad records' error lines. */
async function readScores(o: FilterFileOptions, inputs: RecordInput, errorsPath: string): Promise<{ scores: ScoreFields[]; errs: string[] }> {
  const need = requiredScores(o.filter);
  const scores: ScoreFields[] = [];
  const errs: string[] = [];
  const bad = new BadRecords(o.log, errorsPath, o.maxErrorLines ?? 10);
  let parseErrors = 0, firstParseError = '', firstError = '';
  for await (const r of inputs) {
    if (!r.parseError) bad.release();
    const s = scoresOf(r, need);
    // Only the fields the rules read (not the whole record): O(N) small objects for a whole-set rule.
    if (s.scores) {
      const x = s.scores;
      scores.push({ fwd_logp: x.fwd_logp, rev_logp: x.rev_logp, y_logp: x.y_logp, x_logp: x.x_logp, ifd: x.ifd, rifd: x.rifd, cosine: x.cosine, cosine_source: x.cosine_source });
      continue;
    }
    if (r.parseError && parseErrors++ === 0) firstParseError = `${r.loc}: ${r.parseError}`;
    if (!firstError) firstError = `${r.loc}: ${s.error}`;
    if (o.strict) throw new StrictError(`${r.loc}: ${s.error} (--strict: stopping at the first bad record)`);
    bad.report(`${r.loc}: ${s.error}`);
    errs.push(errorLine({ loc: r.loc, error: s.error, record: r.record }));
  }
  if (parseErrors > 0 && parseErrors === errs.length && scores.length === 0) {
    throw new InputError(`${o.input}: none of its ${parseErrors} lines is a JSON record (${firstParseError}); is it JSONL or a JSON array?`);
  }
  if (scores.length === 0 && errs.length > 0) {
    throw new InputError(`${o.input}: none of its ${errs.length} records can be filtered (${firstError}); nothing written`);
  }
  bad.release();
  return { scores, errs };
}

export async function filterFile(o: FilterFileOptions): Promise<FilterSummary> {
  const inputs = o.inputs ?? openRecords(o.input);
  const main = o.output ?? o.dropOut;
  if (!main) throw new Error('filterFile: give output or dropOut');
  const errorsPath = o.errors ?? errorsPathFor(main);
  const need = requiredScores(o.filter);
  const { scores, errs } = await readScores(o, inputs, errorsPath);
  const decision = applyFilter(scores, o.filter);
  // Pass 2: every valid record to kept or dropped, with `keep` and `filter_score`. Every file is
  // written and fsynced before any is renamed into place.
  const kept = o.output ? openWriter(o.output, { format: o.outFormat }) : null;
  const dropped = o.dropOut ? openWriter(o.dropOut, { format: o.outFormat }) : null;
  const errW = errs.length > 0 ? new AtomicWriter(errorsPath) : null;
  const outs = [kept, dropped].filter((w): w is RecordWriter => w !== null);
  try {
    let k = 0;
    for await (const r of inputs) {
      if (!scoresOf(r, need).scores) continue;
      const keep = decision.keep[k];
      const fs_ = decision.score[k];
      k++;
      const rec = { ...(r.record as object), keep, filter_score: Number.isFinite(fs_) ? fs_ : null };
      (keep ? kept : dropped)?.write(rec);
    }
    if (k !== scores.length) throw new InputError(`${o.input}: changed while it was being filtered (${k} valid records on the second read, ${scores.length} on the first)`);
    for (const l of errs) errW!.write(l);
    for (const w of outs) await w.prepare();
    errW?.sync();
    crashPoint('filter-written');
    for (const w of outs) await w.commit();
    errW?.commit();
  } catch (e) {
    for (const w of outs) w.abort();
    errW?.abort();
    throw e;
  }
  if (!errW) fs.rmSync(errorsPath, { force: true });
  return {
    command: 'filter', input: o.input, output: o.output ?? '', drop_out: o.dropOut ?? null, errors_file: errs.length ? errorsPath : null,
    counts: { records: scores.length + errs.length, kept: decision.kept, dropped: decision.dropped, errors: errs.length },
    applied: decision.applied,
  };
}
