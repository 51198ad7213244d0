// `concord synthesize`'s file job (Node): MAIN's data step. For each unlabelled response, k
// candidate instructions from the reverse model (the prompt builder and engine of `concord
// generate`), every (candidate, response) pair scored by the Scorer in the batched passes of `concord
// score`, the candidate the filter rule ranks first kept (choose.ts), then the set-level rule over the
// chosen pairs, seed pairs mixed in with weights (alpha.ts), written in a trainer's record shape
// (shapes.ts) through src/io's writers. Responses are processed a chunk at a time (generate, then
// score); the chosen pairs are held until the set rule has seen them all. Outputs appear only at
// the end (atomic); a rerun recomputes everything (no checkpoints).

import * as fs from 'node:fs';
import { InputError } from '../errors.js';
import { applyFilter, type FilterOptions, type FilterResult } from '../filter/index.js';
import { openRecords, type FileRecord } from '../io/index.js';
import { openWriter, type OutFormat, type RecordWriter } from '../io/record-writer.js';
import { AtomicWriter } from '../io/writers.js';
import { BadRecords, StrictError, errorLine } from '../jobs/bad-records.js';
import { generate, type FinishReason } from '../generate/engine.js';
import { sourceText } from '../generate/job.js';
import type { PromptBuilder } from '../generate/prompts.js';
import type { SamplingParams } from '../generate/types.js';
import type { LanguageModel } from '../models/lm.js';
import { encodeStandalone } from '../pipeline/templates.js';
import { DEFAULT_FIELDS, RecordError, recordToPair, type FieldMap } from '../pipeline/input.js';
import type { PairScores, Scorer } from '../pipeline/scorer.js';
import { quantiles, type Quantiles } from '../pipeline/stats.js';
import { alphaAt, describeAlpha, type AlphaSchedule } from './alpha.js';
import { rankCandidates } from './choose.js';
import { otherFields, shapeRecord, type RecordShape, type ShapedPair } from './shapes.js';

export interface SynthesizeFileOptions {
  /** Unlabelled responses: records with an output field (or a messages/conversations assistant turn). */
  input: string;
  output: string;
  /** Chosen pairs the set rule drops. */
  dropOut?: string;
  errorsPath: string;
  /** Scores the (candidate, response) pairs (createScorer; default field names). */
  scorer: Scorer;
  /** Writes the candidates: the reverse model (or the forward model with the reverse template). */
  decoderModel: LanguageModel;
  /** promptBuilder(…, {direction: 'reverse'}) */
  builder: PromptBuilder;
  fields?: Partial<FieldMap>;
  /** seed: the base; candidate j of record i draws with (seed + i·k + j) mod 2³², as `concord generate`. */
  sampling: SamplingParams;
  numCandidates: number;
  maxNewTokens: number;
  stop: string[];
  slots: number;
  maxLen?: number;
  /** The rule: per response over its candidates (explicit thresholds only), then over the chosen pairs. */
  filter: FilterOptions;
  shape: RecordShape;
  keepCandidates?: boolean;
  seedData?: string;
  alpha: AlphaSchedule;
  iteration: number;
  /** Only the first N records of the input. */
  limit?: number;
  /**
   * A response whose reverse prompt leaves fewer than maxNewTokens positions: its head is kept in the
   * prompt (true, the default, as the scorer truncates y) or the record is an error (false).
   */
  truncate?: boolean;
  /** Responses generated and scored together (default 32). */
  chunk?: number;
  strict?: boolean;
  outFormat?: OutFormat;
  log: (line: string) => void;
  onProgress?: (responses: number, candidates: number) => void;
}

interface Candidate {
  index: number;
  text: string;
  generated_tokens: number;
  finish_reason: FinishReason;
  scores: PairScores | null;
  error?: string;
}

interface Chosen {
  rec: FileRecord;
  y: string;
  original: string | null;
  cands: Candidate[];
  pick: number;
  rank: (number | null)[];
  ruleScore: (number | null)[];
}

export interface SynthesizeSummary {
  command: 'synthesize';
  input: string;
  output: string;
  drop_out: string | null;
  errors_file: string | null;
  counts: { records: number; responses: number; candidates: number; scored_candidates: number; chosen: number; kept: number; dropped: number; seed: number; errors: number };
  applied: FilterResult['applied'];
  alpha: { schedule: string; iteration: number; value: number };
  /** Encoder (or LM) cosine of the candidate to the response: the chosen ones and the rejected ones. */
  cosine: { chosen: Quantiles | null; rejected: Quantiles | null; source: string | null };
  generated_tokens: number;
  elapsed_s: { generate: number; score: number; total: number };
}

interface Pending { rec: FileRecord; index: number; y: string; original: string | null; prompt: number[] }

/** The seed record's pair: Alpaca records keep their instruction/input split. */
function seedPair(record: Record<string, unknown>, f: FieldMap): ShapedPair {
  const p = recordToPair(record, f);
  if (p.format !== 'alpaca') return { instruction: p.x, output: p.y };
  const input = record[f.input];
  return { instruction: record[f.instruction] as string, ...(typeof input === 'string' && input.trim() ? { input } : {}), output: p.y };
}

/** The reverse prompt for response y, its head only when the whole would leave no room for maxNewTokens. */
function reversePrompt(y: string, o: SynthesizeFileOptions, maxLen: number): number[] {
  const room = maxLen - o.maxNewTokens;
  let prompt = o.builder.build(y);
  if (prompt.length > room && o.truncate !== false) {
    const tok = o.decoderModel.tokenizer;
    const ids = encodeStandalone(tok, y);
    const keep = ids.length - (prompt.length - room);
    if (keep > 0) prompt = o.builder.build(tok.decode(ids.slice(0, keep)));
  }
  if (prompt.length > room) throw new RecordError(`the reverse prompt has ${prompt.length} tokens; with --max-new-tokens ${o.maxNewTokens} it does not fit the decoder's ${maxLen} positions${o.truncate === false ? ' (--on-overlong error)' : ''}`);
  return prompt;
}

/** The instruction the response had, when the record holds a whole pair (shown beside the chosen one). */
function originalInstruction(record: unknown, f: FieldMap): string | null {
  try { return recordToPair(record, f).x; } catch { return null; }
}

export async function synthesizeFile(o: SynthesizeFileOptions): Promise<SynthesizeSummary> {
  const t0 = Date.now();
  const fields: FieldMap = { ...DEFAULT_FIELDS, ...o.fields };
  const k = o.numCandidates;
  const bad = new BadRecords(o.log, o.errorsPath, 10);
  const errs: string[] = [];
  const reportBad = (loc: string, error: string, record: unknown): void => {
    if (o.strict) throw new StrictError(`${loc}: ${error} (--strict: stopping at the first bad record)`);
    bad.report(`${loc}: ${error}`);
    errs.push(errorLine({ loc, error, record }));
  };

  // Seed pairs first: a bad seed file fails before any generation.
  const seeds: Record<string, unknown>[] = [];
  if (o.seedData) {
    for await (const rec of openRecords(o.seedData)) {
      try {
        if (rec.parseError) throw new RecordError(rec.parseError);
        bad.release();
        const r = rec.record as Record<string, unknown>;
        seeds.push(shapeRecord(otherFields(r, fields), o.shape, seedPair(r, fields)));
      } catch (e) {
        if (!(e instanceof RecordError)) throw e;
        reportBad(rec.loc, `seed data: ${e.message}`, rec.record);
      }
    }
  }

  const chosen: Chosen[] = [];
  const cosChosen: number[] = [], cosRejected: number[] = [];
  const counts = { records: 0, responses: 0, candidates: 0, scored_candidates: 0 };
  let genTokens = 0, genMs = 0, scoreMs = 0;
  const tok = o.decoderModel.tokenizer;
  const decoder = await o.decoderModel.createDecoder!({ slots: o.slots, maxLen: o.maxLen ?? o.decoderModel.maxLen });
  const stopIds = tok.eosId !== null ? [tok.eosId] : [];

  async function runChunk(chunk: Pending[]): Promise<void> {
    const reqs = chunk.flatMap((c) => Array.from({ length: k }, (_, j) => ({
      prompt: c.prompt, sampling: { ...o.sampling, seed: (o.sampling.seed + c.index * k + j) >>> 0 }, maxNewTokens: o.maxNewTokens, stopIds, stopStrings: o.stop,
    })));
    let t = Date.now();
    const { results } = await generate(decoder, reqs, { decode: (ids) => tok.decode(ids) });
    genMs += Date.now() - t;
    // The pairs as one-turn conversations: the scorer reads them whatever its field names.
    // The candidate is the generated text without its surrounding whitespace (what is scored is what is written).
    for (const r of results) r.text = r.text.trim();
    const pairs = results.map((r, n) => ({ messages: [{ role: 'user', content: r.text }, { role: 'assistant', content: chunk[Math.floor(n / k)].y }] }));
    t = Date.now();
    const scored: (PairScores | null)[] = [], why: (string | undefined)[] = [];
    for await (const s of o.scorer.score(pairs, { firstIndex: 0 })) {
      scored.push(s.scores ?? null);
      const r = results[s.index];
      why.push(r.error ?? (r.text === '' ? `an empty instruction (finish ${r.finish_reason} after ${r.generated_tokens} tokens)` : s.error));
    }
    scoreMs += Date.now() - t;
    chunk.forEach((c, ci) => {
      const cands: Candidate[] = Array.from({ length: k }, (_, j) => {
        const n = ci * k + j, r = results[n];
        genTokens += r.generated_tokens;
        return { index: j, text: r.text, generated_tokens: r.generated_tokens, finish_reason: r.finish_reason, scores: r.error ? null : scored[n], ...(why[n] ? { error: why[n] } : {}) };
      });
      counts.candidates += k;
      counts.scored_candidates += cands.filter((x) => x.scores).length;
      const ranking = rankCandidates(cands.map((x) => x.scores), o.filter);
      if (ranking.chosen < 0) {
        reportBad(c.rec.loc, `none of the ${k} candidate instructions could be scored (${cands[0].error ?? 'no scores'})`, c.rec.record);
        return;
      }
      counts.responses++;
      chosen.push({ rec: c.rec, y: c.y, original: c.original, cands, pick: ranking.chosen, rank: ranking.rank, ruleScore: ranking.ruleScore });
      for (const x of cands) {
        const cos = x.scores?.cosine;
        if (typeof cos === 'number') (x.index === ranking.chosen ? cosChosen : cosRejected).push(cos);
      }
    });
    o.onProgress?.(counts.records, counts.candidates);
  }

  try {
    let pending: Pending[] = [];
    for await (const rec of openRecords(o.input)) {
      if (o.limit !== undefined && counts.records >= o.limit) break;
      const index = counts.records++;
      try {
        if (rec.parseError) throw new RecordError(rec.parseError);
        bad.release();
        const y = sourceText(rec.record, 'reverse', fields);
        const prompt = reversePrompt(y, o, decoder.maxLen);
        pending.push({ rec, index, y, original: originalInstruction(rec.record, fields), prompt });
      } catch (e) {
        if (!(e instanceof RecordError)) throw e;
        reportBad(rec.loc, e.message, rec.record);
      }
      if (pending.length >= (o.chunk ?? 32)) await runChunk(pending.splice(0));
    }
    if (pending.length) await runChunk(pending);
    pending = [];
  } finally {
    decoder.dispose();
  }
  if (chosen.length === 0 && seeds.length === 0) {
    throw new InputError(`${o.input}: none of its ${counts.records} records gave a synthetic pair${errs.length ? ` (${JSON.parse(errs[0]).message})` : ''}; nothing written`);
  }

  const decision = applyFilter(chosen.map((c) => c.cands[c.pick].scores!), o.filter);
  const alpha = alphaAt(o.alpha, o.iteration, seeds.length, decision.kept);
  await writeOutputs(o, chosen, decision, seeds, errs, fields, alpha);
  bad.release();
  const q = (v: number[]) => quantiles(v);
  return {
    command: 'synthesize', input: o.input, output: o.output, drop_out: o.dropOut ?? null, errors_file: errs.length ? o.errorsPath : null,
    counts: { ...counts, chosen: chosen.length, kept: decision.kept, dropped: decision.dropped, seed: seeds.length, errors: errs.length },
    applied: decision.applied,
    alpha: { schedule: describeAlpha(o.alpha), iteration: o.iteration, value: alpha },
    cosine: { chosen: q(cosChosen), rejected: q(cosRejected), source: o.scorer.cosineSource },
    generated_tokens: genTokens,
    elapsed_s: { generate: genMs / 1000, score: scoreMs / 1000, total: (Date.now() - t0) / 1000 },
  };
}

/** One output record of a chosen pair. */
function synthRecord(c: Chosen, o: SynthesizeFileOptions, fields: FieldMap, filterScore: number, weight: number): Record<string, unknown> {
  const pick = c.cands[c.pick];
  const rec = shapeRecord(otherFields(c.rec.record as Record<string, unknown>, fields), o.shape, { instruction: pick.text, output: c.y });
  if (c.original !== null) rec.original_instruction = c.original;
  rec.scores = pick.scores;
  rec.filter_score = Number.isFinite(filterScore) ? filterScore : null;
  rec.candidate = { index: pick.index, rank: c.rank[c.pick], of: c.cands.length, rule_score: c.ruleScore[c.pick], generated_tokens: pick.generated_tokens, finish_reason: pick.finish_reason };
  if (o.keepCandidates) {
    rec.candidates = c.cands.filter((x) => x.index !== c.pick).map((x) => ({
      index: x.index, instruction: x.text, rank: c.rank[x.index], rule_score: c.ruleScore[x.index], scores: x.scores,
      generated_tokens: x.generated_tokens, finish_reason: x.finish_reason, ...(x.error ? { error: x.error } : {}),
    }));
  }
  return { ...rec, source: 'synthetic', weight, iteration: o.iteration };
}

/** Every output written and fsynced under temporary names, then renamed into place. */
async function writeOutputs(o: SynthesizeFileOptions, chosen: Chosen[], d: FilterResult, seeds: Record<string, unknown>[], errs: string[], fields: FieldMap, alpha: number): Promise<void> {
  const kept = openWriter(o.output, { format: o.outFormat });
  const dropped = o.dropOut ? openWriter(o.dropOut, { format: o.outFormat }) : null;
  const errW = errs.length ? new AtomicWriter(o.errorsPath) : null;
  const outs = [kept, dropped].filter((w): w is RecordWriter => w !== null);
  try {
    chosen.forEach((c, i) => {
      if (d.keep[i]) kept.write(synthRecord(c, o, fields, d.score[i], alpha));
      else dropped?.write(synthRecord(c, o, fields, d.score[i], 0));
    });
    for (const s of seeds) kept.write({ ...s, source: 'seed', weight: 1, iteration: o.iteration });
    for (const l of errs) errW!.write(l);
    for (const w of outs) await w.prepare();
    errW?.sync();
    for (const w of outs) await w.commit();
    errW?.commit();
  } catch (e) {
    for (const w of outs) w.abort();
    errW?.abort();
    throw e;
  }
  if (!errW) fs.rmSync(o.errorsPath, { force: true });
}
