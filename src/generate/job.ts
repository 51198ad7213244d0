// `concord generate`'s file job (Node): records in (any input the record readers take), one output
// line per (record, sample) out, in input order, resumable. Every file-system call of the command
// goes through the few imports below (the scorer's readers, checkpointed writer and lock): when the
// record I/O changes only this block changes.
import { openRecords, type FileRecord, type InputPosition } from '../io/index.js';
import { errorLine } from '../jobs/bad-records.js';
import { completeFinishedRun, hashOptions, progressPathFor, readCheckpoint, ResumeError, ScoredOutput, type InputIdentity } from '../jobs/checkpoint.js';
// ---- end of the I/O block ----

import { DEFAULT_FIELDS, RecordError, type FieldMap } from '../pipeline/input.js';
import type { LanguageModel } from '../models/lm.js';
import { generateStream, type EngineStats, type FinishReason, type GenerateRequest, type GenerateResult } from './engine.js';
import type { PromptBuilder } from './prompts.js';
import { outputRecord, sourceText } from './records.js';
import type { SamplingParams } from './types.js';

export { outputRecord, sourceText };

export interface GenerateFileOptions {
  input: string;
  output: string;
  errorsPath: string;
  lm: LanguageModel;
  builder: PromptBuilder;
  fields?: Partial<FieldMap>;
  /** seed: the base seed; sample j of record i draws with seed (seed + i·k + j) mod 2³². */
  sampling: SamplingParams;
  numSamples: number;
  maxNewTokens: number;
  stop: string[];
  /** Decoder slots (sequences decoded together). */
  slots: number;
  /** Decoder cache length (prompt + generated). */
  maxLen: number;
  resume?: boolean;
  /** Checkpoint every this many records (and at least every 5 s). */
  checkpointEvery?: number;
  /** Everything else that changes the output (model, template…), for the resume check. */
  optionsKey: Record<string, unknown>;
  onRecord?: (done: number) => void;
}

export interface GenerateSummary {
  records: number;
  samples: number;
  errors: number;
  generatedTokens: number;
  finish: Record<FinishReason, number>;
  resumedFrom: number;
  stats: EngineStats;
}

interface Pending {
  rec: FileRecord;
  index: number;
  expect: number;
  results: GenerateResult[];
}

export async function generateFile(o: GenerateFileOptions): Promise<GenerateSummary> {
  const fields: FieldMap = { ...DEFAULT_FIELDS, ...o.fields };
  const k = o.numSamples;
  const inputs = openRecords(o.input);
  const fingerprint = hashOptions(inputs.fingerprints().map((f) => f.sha256));
  const optionsHash = hashOptions({ ...o.optionsKey, fields, sampling: o.sampling, k, maxNewTokens: o.maxNewTokens, stop: o.stop, maxLen: o.maxLen, input: fingerprint });
  const identity: InputIdentity = { path: o.input, hashedBytes: 0, sha256: fingerprint };
  const summary: GenerateSummary = { records: 0, samples: 0, errors: 0, generatedTokens: 0, finish: { eos: 0, stop: 0, length: 0 }, resumedFrom: 0, stats: { steps: 0, slotSteps: 0, sampled: 0 } };

  const ckpt = o.resume ? readCheckpoint(o.output) : null;
  if (ckpt && ckpt.optionsHash !== optionsHash) {
    throw new ResumeError(`cannot resume: the input or the generation options differ from the interrupted run (${progressPathFor(o.output)}); drop --resume or delete it to start over`);
  }
  if (ckpt?.complete) {
    completeFinishedRun(o.output, o.errorsPath, ckpt);
    return { ...summary, resumedFrom: ckpt.position.units };
  }
  summary.resumedFrom = ckpt?.position.units ?? 0;
  const out = new ScoredOutput(o.output, o.errorsPath, optionsHash, ckpt);
  try {
    const opened = await inputs.open(ckpt?.position);
    const decoder = await o.lm.createDecoder!({ slots: o.slots, maxLen: o.maxLen });
    const stopIds = o.lm.tokenizer.eosId !== null ? [o.lm.tokenizer.eosId] : [];
    const pending: Pending[] = [];
    let position: InputPosition = ckpt?.position ?? { units: 0, offset: 0, line: 0 };
    async function* requests(): AsyncGenerator<GenerateRequest> {
      let index = summary.resumedFrom;
      for await (const rec of opened.records) {
        let prompt: number[] | null = null, error: string | undefined;
        try {
          if (rec.parseError) throw new RecordError(rec.parseError);
          prompt = o.builder.build(sourceText(rec.record, o.builder.direction, fields));
        } catch (e) {
          if (!(e instanceof RecordError)) throw e;
          error = e.message;
        }
        const p: Pending = { rec, index, expect: prompt ? k : 1, results: [] };
        pending.push(p);
        for (let j = 0; j < p.expect; j++) {
          const sampling = { ...o.sampling, seed: (o.sampling.seed + index * k + j) >>> 0 };
          yield { prompt: prompt ?? [], sampling, maxNewTokens: o.maxNewTokens, stopIds, stopStrings: o.stop, ...(error ? { error } : {}) };
        }
        index++;
      }
    }
    const onResult = (r: GenerateResult): void => {
      const p = pending[0];
      p.results.push(r);
      if (p.results.length < p.expect) return;
      pending.shift();
      const err = p.results.find((x) => x.error)?.error;
      if (err) {
        out.errors.write(errorLine({ loc: p.rec.loc, error: err, record: p.rec.record }));
        summary.errors++;
      } else {
        p.results.forEach((x, j) => {
          out.out.write(JSON.stringify(outputRecord(p.rec.record as Record<string, unknown>, o.builder.direction, fields, x, j, k)));
          summary.samples++;
          summary.generatedTokens += x.generated_tokens;
          summary.finish[x.finish_reason]++;
        });
      }
      summary.records++;
      position = { units: p.index + 1, offset: p.rec.endOffset, line: p.rec.line };
      if (summary.records % (o.checkpointEvery ?? 64) === 0 || out.msSinceCheckpoint() > 5000) out.checkpoint(position, identity, 0);
      o.onRecord?.(summary.records);
    };
    try {
      summary.stats = await generateStream(decoder, requests(), { decode: (ids) => o.lm.tokenizer.decode(ids), onResult });
    } finally {
      decoder.dispose();
    }
    out.checkpoint(position, identity, 0, true);
    out.finish();
  } catch (e) {
    out.abort();
    throw e;
  }
  return summary;
}
