// The run job: score, then filter (src/jobs/score.ts, src/jobs/filter.ts).

import * as fs from 'node:fs';
import type { FilterOptions } from '../filter/index.js';
import { errorsPathFor } from './bad-records.js';
import { progressPathFor } from './checkpoint.js';
import { filterFile, type FilterSummary } from './filter.js';
import { scoreFile, type ScoreFileOptions, type ScoreSummary } from './score.js';
import type { OutFormat } from '../io/record-writer.js';

/** `run`: drop the complete-marker scoreFile kept (keepDoneMarker), then the scored file unless kept. */
export function removeDoneMarker(scoredOut: string, removeScored: boolean): void {
  fs.rmSync(progressPathFor(scoredOut), { force: true });
  if (removeScored) fs.rmSync(scoredOut, { force: true });
}

export interface RunFileOptions extends Omit<ScoreFileOptions, 'output' | 'keepDoneMarker' | 'range'> {
  /** The kept records. */
  output: string;
  dropOut?: string;
  /** Keep the scored records here (default: `<output>.scored.jsonl`, removed at the end; --resume continues from it). */
  scoredOut?: string;
  filter: FilterOptions;
  /** The kept / dropped records' format (default: by extension). */
  outFormat?: OutFormat;
}

/** Where runFile writes its scored records. */
export const scoredPathFor = (o: { output: string; scoredOut?: string }): string => o.scoredOut ?? `${o.output}.scored.jsonl`;

/**
 * Score `input`, then filter the scored records. Bad input records go to the errors file of the
 * run's output (errorsPathFor(output), or `errors`); the filter step reads what the score step
 * wrote, so it runs strict: a record it cannot filter is an error of the run. The scored file keeps
 * its complete-marker until the filter has finished, so a run killed during the filter step resumes
 * without scoring again.
 */
export async function runFile(o: RunFileOptions): Promise<{ score: ScoreSummary; filter: FilterSummary }> {
  const scoredOut = scoredPathFor(o);
  const score = await scoreFile({ ...o, output: scoredOut, errors: o.errors ?? errorsPathFor(o.output), keepDoneMarker: true });
  const filter = await filterFile({ input: scoredOut, output: o.output, dropOut: o.dropOut, filter: o.filter, strict: true, log: o.log, maxErrorLines: o.maxErrorLines, outFormat: o.outFormat });
  removeDoneMarker(scoredOut, !o.scoredOut);
  return { score, filter };
}
