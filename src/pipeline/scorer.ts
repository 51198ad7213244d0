// The scorer: records in, records' scores out, in input order. No Node-only code here (the browser
// demo runs the same module); files, checkpoints and progress bars live in src/jobs, src/io and the CLI.
//
//   const scorer = createScorerFromModels({ model, reverseModel, ... });
//   for await (const r of scorer.score(records)) { r.scores / r.error }
//
// Scores per pair (README "Scores"), with x, y, F, R and the passes as in plan.ts:
//   fwd_logp = mean over y's tokens of log p_F(y_t | template(x), y_<t)   fwd_sum = the sum
//   rev_logp = mean over x's tokens of log p_R(x_t | template(y), x_<t)   rev_sum = the sum
//   y_logp   = mean of log p_F(y_t | BOS, y_<t)      x_logp = mean of log p_R(x_t | BOS, x_<t)
//   ifd  = exp(y_logp − fwd_logp) = PPL(y|x) / PPL(y)       (Cherry LLM)
//   rifd = exp(x_logp − rev_logp) = PPL(x|y) / PPL(x)       (Reflection-Tuning r-IFD)
//   cosine of the embeddings of x and y: a sentence encoder when given (cosine_source
//   'embed:<name>'), else the mean final hidden state of F over [BOS x] and [BOS y]
//   (cosine_source 'lm-mean-hidden'); null with cosine 'off'.
//   x_tokens, y_tokens (as scored), truncated (+ x_tokens_full / y_tokens_full when cut).
// From the next-token entropies H_t of the same passes (the fused head's online entropy; docs/signals.md):
//   y_entropy = mean over y's tokens of H_F(· | template(x), y_<t)   (the positions of fwd_logp)
//   x_entropy = mean over x's tokens of H_R(· | template(y), x_<t)   (the positions of rev_logp)
//   upd       = mean over y's tokens of σ(−log p_t) · max(0, 1 − H_t / log V)   (OpenDataArena-Tool UPDScorer)
//   norm_loss = −(mean of log p over every token after the start token of the forward sequence) / ln 2,
//               bits per token of template(x, y)                          (OpenDataArena-Tool NormLossScorer)

import { UsageError } from '../errors.js';
import { cosineRowsCpu } from '../../kernels/cosine.js';
import { rng } from '../util/rng.js';
import type { LanguageModel, SequenceRequest } from '../models/lm.js';
import { Scheduler, type BatchInfo, type Job, type Lane, type SchedulerStats } from '../scheduler/index.js';
import { boundEncoderText } from './bound.js';
import { DEFAULT_FIELDS, RecordError, SourcedRecord, recordToPair, type FieldMap } from './input.js';
import { spanSum, type PassPlan, type PassSequence, type Quantity } from './plan.js';
import { sequenceBuilder, type SequenceBuilder } from './sequences.js';
import type { ChatFormat } from './chat-template.js';

export interface PairScores {
  fwd_logp: number;
  fwd_sum: number;
  rev_logp: number;
  rev_sum: number;
  y_logp: number;
  y_sum: number;
  x_logp: number;
  x_sum: number;
  ifd: number;
  rifd: number;
  /**
   * mean next-token entropy (nats) at y's positions in the forward pass (given x). null (and
   * x_entropy, upd too) only for a LanguageModel that does not return entropies (ScoreOptions).
   */
  y_entropy: number | null;
  /** mean next-token entropy (nats) at x's positions in the reverse pass (given y) */
  x_entropy: number | null;
  /** UPD (OpenDataArena-Tool): mean over y's tokens (given x) of σ(loss)·max(0, 1 − H/log V), loss = −log p */
  upd: number | null;
  /** NormLoss (OpenDataArena-Tool): mean loss in bits per token over the whole forward sequence after the start token */
  norm_loss: number;
  cosine: number | null;
  cosine_source: string | null;
  x_tokens: number;
  y_tokens: number;
  truncated: boolean;
  x_tokens_full?: number;
  y_tokens_full?: number;
  /** A side was far over the budget and only its kept end was tokenised: the full counts are estimates. */
  tokens_full_estimated?: boolean;
}

export interface ScoreResult {
  /** Position in the input (0-based, over all items given to score()). */
  index: number;
  /** 'file:line' for records read from files, else '#index'. */
  loc: string;
  /** The input record as given (undefined when its text did not parse). */
  record: unknown;
  scores?: PairScores;
  /** One-line reason when the record could not be scored. */
  error?: string;
  /** With ScorerOptions.tokenLogprobs: the per-token log-probs behind the sums (extra signals). */
  tokens?: TokenLogprobs;
}

/** Per-token log-probs of one pair, position by position over the tokens as scored. */
export interface TokenLogprobs {
  xIds: number[];
  yIds: number[];
  /** log p_F(y_t | template(x), y_<t) */
  fwd: Float64Array;
  /** log p_F(y_t | BOS, y_<t) */
  y: Float64Array;
  /** log p_R(x_t | template(y), x_<t) */
  rev: Float64Array;
  /** log p_R(x_t | BOS, x_<t) */
  x: Float64Array;
}

/** A sentence encoder (src/encoder's Embedder fits). */
export interface TextEmbedder {
  embed(texts: string[]): Promise<Float32Array[]>;
  /** shown in cosine_source, e.g. 'all-MiniLM-L6-v2' */
  name?: string;
  /** Free what the encoder holds (createScorer calls it for an encoder it loaded). */
  dispose?(): void;
}

export type CosineMode = 'embed' | 'lm' | 'off';

export interface VerifyOptions {
  /** The CPU twin of the forward model (and of the reverse model when there is one). */
  model: LanguageModel;
  reverseModel?: LanguageModel;
  /** How many batches to re-score (half of them the first ones, half sampled from the rest). */
  batches: number;
  /** Largest allowed |Δ| of a per-token log-prob (default 1e-3). */
  tol?: number;
  seed?: number;
}

export interface VerifyReport {
  batches: number;
  sequences: number;
  tokens: number;
  maxAbsDiff: number;
  tol: number;
  ok: boolean;
  /** Where the largest difference is. */
  worst: { batch: number; lane: string; sequence: number; position: number } | null;
}

export interface ScoreProgress {
  /** Results yielded so far (this score() call). */
  done: number;
  /**
   * Pairs' worth of work finished, counting the partly scored window: items prepared × the
   * fraction of their jobs done. Results come out a window at a time; this moves with every batch.
   */
  estimatedDone: number;
  scored: number;
  errors: number;
  tokens: number;
  elapsedMs: number;
}

export interface ScorerOptions {
  model: LanguageModel;
  /** A separate reverse model (trained on y → x); else the forward model scores both directions. */
  reverseModel?: LanguageModel | null;
  /** Default: defaultTemplates(tokenizer) — "{x}{y}" for word-start tokenizers, "{x}\n\n{y}" for byte-level ones. */
  forwardTemplate?: string;
  reverseTemplate?: string;
  /** A chat format (./chat-template.ts): its templates replace the default ones (explicit templates still win); stripContent strips x and y. */
  chat?: ChatFormat | null;
  /** 'min' (default): the fewest passes the templates allow; 4: always the four-pass computation. */
  passes?: 'min' | 4;
  /** Longest sequence (default: the smaller maxLen of the models). */
  maxLen?: number;
  /** Over-long pairs: cut them (default) or report them as errors. */
  overlong?: 'truncate' | 'error';
  fields?: Partial<FieldMap>;
  /** 'embed' needs `embedder`. Default: 'embed' when an embedder is given, else 'lm'. */
  cosine?: CosineMode;
  embedder?: TextEmbedder | null;
  /** Pairs per scheduling window (default 1024). */
  windowSize?: number;
  /** Override the models' tokenBudget. */
  tokenBudget?: number;
  /** Batches in flight at once (default 1). */
  inFlight?: number;
  verify?: VerifyOptions | null;
  /** Keep each pair's per-token log-probs on its result (`tokens`): for the extra signals (src/signals). */
  tokenLogprobs?: boolean;
  /**
   * Ask the models for next-token entropies (y_entropy, x_entropy, upd; default true). false: those
   * scores are null and the backends skip the entropy (onnxruntime keeps its plain head graph).
   */
  entropy?: boolean;
  /** Test hook: add this to every primary log-prob (shows that verify catches a deviation). */
  injectDeviation?: number;
  onProgress?: (p: ScoreProgress) => void;
  /** Clock for rates (default performance.now / Date.now). */
  now?: () => number;
}

export interface ScorerStats {
  pairs: number;
  scored: number;
  errors: number;
  truncated: number;
  /** Real tokens the language models computed (all passes, cosine hidden states included). */
  lmTokens: number;
  elapsedMs: number;
  scheduler: SchedulerStats | null;
  verify: VerifyReport | null;
}

export interface Scorer {
  readonly plan: PassPlan;
  /** 2, 3 or 4 */
  readonly passes: number;
  readonly maxLen: number;
  readonly cosineSource: string | null;
  readonly templates: { forward: string; reverse: string };
  /** The pair → sequences builder the scorer runs (templates, truncation): signals that lay pairs out as the scorer does reuse it. */
  readonly builder: SequenceBuilder;
  readonly stats: ScorerStats;
  /** Score records (objects, or SourcedRecord from a file reader); yields in input order. */
  score(
    items: Iterable<unknown> | AsyncIterable<unknown>,
    opts?: ScoreCallOptions,
  ): AsyncGenerator<ScoreResult>;
}

export interface ScoreCallOptions {
  /** Index of the first item (default: continues after the previous call). */
  firstIndex?: number;
  onProgress?: (p: ScoreProgress) => void;
  /**
   * Called as soon as a record's scores are complete, in any order (within a window records finish
   * longest-first), before it is yielded in input order; records that fail before scoring are not
   * reported here. For checkpoints that must not wait for a whole window.
   */
  onDone?: (r: ScoreResult) => void;
}

interface PairItem {
  index: number;
  loc: string;
  record: unknown;
  error?: string;
  xText: string;
  yText: string;
  xIds: number[];
  yIds: number[];
  xFull: number;
  yFull: number;
  fullEstimated?: boolean;
  truncated: boolean;
  sums: Partial<Record<Quantity, SpanStats>>;
  /** a pass came back without entropies (a LanguageModel that ignores ScoreOptions): entropy signals null */
  noEntropy?: boolean;
  /** Σ log p and count over every scored position of the forward pass (norm_loss) */
  whole?: { sum: number; count: number };
  /** per-token log-probs by quantity (tokenLogprobs only) */
  tokens?: Partial<Record<Quantity, Float64Array>>;
  vec: { x?: Float32Array; y?: Float32Array };
  /** per pass: where x and y sit in its sequence */
  spans: Partial<Record<'x' | 'y', [number, number]>>[];
}

const TAG_VEC_X = 1000, TAG_VEC_Y = 1001;

/** The quantities whose entropies a score reads: y_entropy and upd from fwd, x_entropy from rev. */
const ENTROPY_READS: readonly Quantity[] = ['fwd', 'rev'];

/**
 * The entropies a pass's sequence needs (SequenceRequest.entropySpan): the logprob indices of the
 * spans its fwd/rev reads cover ([0, 0) for a pass that reads neither, as the unconditioned passes).
 */
export function entropySpan(reads: readonly { quantity: Quantity; slot: 'x' | 'y' }[], spans: Partial<Record<'x' | 'y', [number, number]>>): [number, number] {
  let a = Infinity, b = -Infinity;
  for (const r of reads) {
    const sp = spans[r.slot];
    if (!ENTROPY_READS.includes(r.quantity) || !sp || sp[1] <= sp[0]) continue;
    a = Math.min(a, sp[0] - 1);
    b = Math.max(b, sp[1] - 1);
  }
  return a < b ? [a, b] : [0, 0];
}

/** A span's log-prob sum and count, with its entropy sum and UPD sum (docs/signals.md). */
export interface SpanStats { sum: number; count: number; entropy: number; upd: number }

/**
 * UPD of one token (OpenDataArena-Tool UPDScorer._compute_token_upd): σ(loss) · max(0, 1 − H / log V)
 * with loss = −log p(token) and H the entropy of the distribution it was drawn from.
 */
export const tokenUpd = (logp: number, entropy: number, logV: number): number => (1 / (1 + Math.exp(logp))) * Math.max(0, 1 - entropy / logV);

/**
 * spanSum with the entropies and UPD terms of the same positions (entropy[t - 1] belongs to
 * logprobs[t - 1]); entropy and upd are NaN without entropies.
 */
export function spanStats(logprobs: ArrayLike<number>, entropy: ArrayLike<number> | undefined, span: [number, number], logV: number): SpanStats {
  const { sum, count } = spanSum(logprobs, span);
  if (!entropy) return { sum, count, entropy: NaN, upd: NaN };
  let ent = 0, upd = 0;
  for (let t = span[0]; t < span[1]; t++) {
    ent += entropy[t - 1];
    upd += tokenUpd(logprobs[t - 1], entropy[t - 1], logV);
  }
  return { sum, count, entropy: ent, upd };
}

export function cosineSimilarity(a: Float32Array, b: Float32Array): number {
  if (a.length !== b.length) throw new Error(`cosine: vectors of length ${a.length} and ${b.length}`);
  return cosineRowsCpu(a, b, 1, a.length)[0];
}


export function createScorerFromModels(opts: ScorerOptions): Scorer {
  const F = opts.model;
  const R = opts.reverseModel ?? F;
  const sameModel = R === F;
  const tokF = F.tokenizer;
  if (!sameModel && (R.tokenizer.vocabSize !== tokF.vocabSize || R.tokenizer.bosId !== tokF.bosId)) {
    throw new UsageError(`--reverse-model: its tokenizer differs from the forward model's (vocab ${R.tokenizer.vocabSize} vs ${tokF.vocabSize}); x and y must have the same ids under both`);
  }
  const startId = tokF.bosId ?? tokF.eosId;
  if (startId === null) throw new Error(`${F.config.name}: the tokenizer has neither a BOS nor an EOS token to start sequences with`);
  const modelMax = Math.min(F.maxLen, R.maxLen);
  const maxLen = opts.maxLen ?? modelMax;
  if (!(maxLen >= 2)) throw new UsageError(`--max-len must be at least 2 (got ${maxLen})`);
  if (maxLen > modelMax) throw new UsageError(`--max-len ${maxLen} is over the model's maximum sequence length ${modelMax}`);

  // The pass plan, the length budget and pair → sequences: the builder the benchmarks use too (sequences.ts).
  const builder = sequenceBuilder({
    tokenizer: tokF, maxLen, forwardTemplate: opts.forwardTemplate, reverseTemplate: opts.reverseTemplate, chat: opts.chat,
    sameModel, passes: opts.passes, overlong: opts.overlong,
  });
  const { plan } = builder;

  const cosineMode: CosineMode = opts.cosine ?? (opts.embedder ? 'embed' : 'lm');
  if (cosineMode === 'embed' && !opts.embedder) throw new UsageError('cosine: embed needs an embedder');
  const cosineSource = cosineMode === 'off' ? null : cosineMode === 'embed' ? `embed:${opts.embedder!.name ?? 'sentence-encoder'}` : 'lm-mean-hidden';
  const fields: FieldMap = { ...DEFAULT_FIELDS, ...opts.fields };
  const now = opts.now ?? (() => (typeof performance !== 'undefined' ? performance.now() : Date.now()));
  const delta = opts.injectDeviation ?? 0;
  const keepTokens = opts.tokenLogprobs ?? false;

  const stats: ScorerStats = { pairs: 0, scored: 0, errors: 0, truncated: 0, lmTokens: 0, elapsedMs: 0, scheduler: null, verify: null };

  // ---- verify: re-score sampled batches on the CPU twin ----
  const v = opts.verify && opts.verify.batches > 0 ? opts.verify : null;
  const vr: VerifyReport | null = v ? { batches: 0, sequences: 0, tokens: 0, maxAbsDiff: 0, tol: v.tol ?? 1e-3, ok: true, worst: null } : null;
  stats.verify = vr;
  const early = v ? Math.ceil(v.batches / 2) : 0;
  const reservoirSize = v ? v.batches - early : 0;
  const reservoir: { lane: string; index: number; seqs: number[][]; primary: Float32Array[] }[] = [];
  const rand = rng(v?.seed ?? 12345);
  let lateSeen = 0;
  let lmBatches = 0;

  async function verifyBatch(b: { lane: string; index: number; seqs: number[][]; primary: Float32Array[] }): Promise<void> {
    const twin = b.lane === 'R' ? (v!.reverseModel ?? v!.model) : v!.model;
    const ref = await twin.scoreBatch(b.seqs.map((ids) => ({ ids })));
    vr!.batches++;
    b.primary.forEach((p, s) => {
      vr!.sequences++;
      const r = ref[s].logprobs;
      if (r.length !== p.length) throw new Error(`verify: the CPU twin returned ${r.length} log-probs for a sequence of ${p.length + 1} tokens`);
      for (let t = 0; t < p.length; t++) {
        vr!.tokens++;
        const d = Math.abs(p[t] - r[t]);
        if (!(d <= vr!.maxAbsDiff)) {
          vr!.maxAbsDiff = Number.isNaN(d) ? Infinity : d;
          vr!.worst = { batch: b.index, lane: b.lane, sequence: s, position: t + 1 };
        }
      }
    });
    vr!.ok = vr!.maxAbsDiff <= vr!.tol;
  }

  function scoreLane(model: LanguageModel, name: string): Lane {
    return {
      budget: opts.tokenBudget ?? model.tokenBudget,
      padded: true,
      async run(payloads, info: BatchInfo) {
        const reqs = payloads as SequenceRequest[];
        const seqs = reqs.map((r) => r.ids);
        const out = await model.scoreBatch(reqs, { entropy: opts.entropy ?? true });
        stats.lmTokens += info.realTokens;
        let lp = out.map((o) => o.logprobs);
        if (delta !== 0) lp = lp.map((a) => a.map((x) => x + delta));
        if (v) {
          const k = lmBatches++;
          const b = { lane: name, index: info.index, seqs, primary: lp };
          if (k < early) await verifyBatch(b);
          else if (reservoirSize > 0) {
            // Reservoir sampling (Algorithm R) over the later batches.
            lateSeen++;
            if (reservoir.length < reservoirSize) reservoir.push(b);
            else {
              const j = Math.floor(rand() * lateSeen);
              if (j < reservoirSize) reservoir[j] = b;
            }
          }
        }
        return lp.map((logprobs, i) => ({ logprobs, entropy: out[i].entropy }));
      },
    };
  }
  const logV = { F: Math.log(F.config.vocabSize), R: Math.log(R.config.vocabSize) };

  const lanes: Record<string, Lane> = { F: scoreLane(F, 'F') };
  if (!sameModel) lanes.R = scoreLane(R, 'R');
  if (cosineMode === 'lm') {
    lanes.H = {
      budget: opts.tokenBudget ?? F.tokenBudget,
      padded: true,
      async run(payloads, info) {
        const out = await F.meanHidden((payloads as number[][]).map((ids) => ({ ids })));
        stats.lmTokens += info.realTokens;
        return out;
      },
    };
  } else if (cosineMode === 'embed') {
    const emb = opts.embedder!;
    lanes.E = { budget: Infinity, maxBatch: 256, padded: false, run: (payloads) => emb.embed(payloads as string[]) };
  }
  const laneOf = (m: 'F' | 'R') => (m === 'R' && !sameModel ? 'R' : 'F');

  function prepare(inputs: unknown[], first: number): { items: PairItem[]; jobs: Job[] } {
    const items: PairItem[] = [];
    const jobs: Job[] = [];
    inputs.forEach((input, k) => {
      const index = runOffset + first + k;
      const src = input instanceof SourcedRecord ? input : null;
      const item: PairItem = {
        index, loc: src?.loc ?? `#${index}`, record: src ? src.record : input,
        xText: '', yText: '', xIds: [], yIds: [], xFull: 0, yFull: 0, truncated: false, sums: {}, vec: {}, spans: [],
      };
      items.push(item);
      let sequences: PassSequence[];
      try {
        if (src?.parseError) throw new RecordError(src.parseError);
        const pair = recordToPair(item.record, fields);
        item.xText = pair.x;
        item.yText = pair.y;
        const b = builder.build(pair);
        item.xFull = b.xFull;
        item.yFull = b.yFull;
        if (b.fullEstimated) item.fullEstimated = true;
        item.xIds = b.xIds;
        item.yIds = b.yIds;
        item.truncated = b.truncated;
        sequences = b.sequences;
      } catch (e) {
        if (!(e instanceof RecordError)) throw e;
        item.error = e.message;
        return;
      }
      for (const s of sequences) {
        const payload: SequenceRequest = { ids: s.ids, entropySpan: entropySpan(plan.passes[s.pass].reads, s.spans) };
        jobs.push({ lane: laneOf(plan.passes[s.pass].model), length: s.ids.length, payload, item: k, tag: s.pass });
        item.spans[s.pass] = s.spans;
      }
      if (cosineMode === 'lm') {
        jobs.push({ lane: 'H', length: item.xIds.length + 1, payload: [startId!, ...item.xIds], item: k, tag: TAG_VEC_X });
        jobs.push({ lane: 'H', length: item.yIds.length + 1, payload: [startId!, ...item.yIds], item: k, tag: TAG_VEC_Y });
      } else if (cosineMode === 'embed') {
        jobs.push({ lane: 'E', length: 1, payload: boundEncoderText(item.xText), item: k, tag: TAG_VEC_X });
        jobs.push({ lane: 'E', length: 1, payload: boundEncoderText(item.yText), item: k, tag: TAG_VEC_Y });
      }
    });
    return { items, jobs };
  }

  function onResult(item: PairItem, job: Job, output: unknown): void {
    if (job.tag === TAG_VEC_X) { item.vec.x = output as Float32Array; return; }
    if (job.tag === TAG_VEC_Y) { item.vec.y = output as Float32Array; return; }
    const pass = plan.passes[job.tag];
    const spans = item.spans[job.tag];
    const { logprobs: lp, entropy } = output as { logprobs: Float32Array; entropy?: Float32Array };
    if (!entropy) item.noEntropy = true;
    const n = (job.payload as SequenceRequest).ids.length;
    if (lp.length !== n - 1 || (entropy && entropy.length !== lp.length)) {
      throw new Error(`scoreBatch returned ${lp.length} log-probs and ${entropy?.length ?? 'no'} entropies for a sequence of ${n} tokens`);
    }
    for (const r of pass.reads) item.sums[r.quantity] = spanStats(lp, entropy, spans[r.slot]!, logV[pass.model]);
    if (pass.name === 'forward') item.whole = spanSum(lp, [1, lp.length + 1]);
    if (keepTokens) for (const r of pass.reads) (item.tokens ??= {})[r.quantity] = Float64Array.from(lp.subarray(spans[r.slot]![0] - 1, spans[r.slot]![1] - 1));
  }

  function finish(item: PairItem): ScoreResult {
    if (item.error !== undefined) return { index: item.index, loc: item.loc, record: item.record, error: item.error };
    const q = (k: Quantity) => item.sums[k]!;
    const mean = (k: Quantity) => q(k).sum / q(k).count;
    const s: PairScores = {
      fwd_logp: mean('fwd'), fwd_sum: q('fwd').sum,
      rev_logp: mean('rev'), rev_sum: q('rev').sum,
      y_logp: mean('y'), y_sum: q('y').sum,
      x_logp: mean('x'), x_sum: q('x').sum,
      ifd: Math.exp(mean('y') - mean('fwd')),
      rifd: Math.exp(mean('x') - mean('rev')),
      y_entropy: item.noEntropy ? null : q('fwd').entropy / q('fwd').count,
      x_entropy: item.noEntropy ? null : q('rev').entropy / q('rev').count,
      upd: item.noEntropy ? null : q('fwd').upd / q('fwd').count,
      norm_loss: -(item.whole!.sum / item.whole!.count) / Math.LN2,
      cosine: item.vec.x && item.vec.y ? cosineSimilarity(item.vec.x, item.vec.y) : null,
      cosine_source: cosineSource,
      x_tokens: item.xIds.length,
      y_tokens: item.yIds.length,
      truncated: item.truncated,
    };
    const bad = (['fwd_logp', 'rev_logp', 'y_logp', 'x_logp', 'ifd', 'rifd', 'y_entropy', 'x_entropy', 'upd', 'norm_loss'] as const).find((k) => s[k] !== null && !Number.isFinite(s[k]));
    if (bad) {
      return { index: item.index, loc: item.loc, record: item.record, error: `${bad} is ${s[bad]}: the model's numbers are not finite for this pair (NaN or Inf in the forward pass: check the model's config and weights)` };
    }
    if (item.truncated) {
      s.x_tokens_full = item.xFull;
      s.y_tokens_full = item.yFull;
      if (item.fullEstimated) s.tokens_full_estimated = true;
    }
    if (keepTokens) {
      const t = item.tokens!;
      return { index: item.index, loc: item.loc, record: item.record, scores: s, tokens: { xIds: item.xIds, yIds: item.yIds, fwd: t.fwd!, y: t.y!, rev: t.rev!, x: t.x! } };
    }
    return { index: item.index, loc: item.loc, record: item.record, scores: s };
  }

  let nextIndex = 0;
  let runOffset = 0;
  async function* score(
    items: Iterable<unknown> | AsyncIterable<unknown>,
    o: ScoreCallOptions = {},
  ): AsyncGenerator<ScoreResult> {
    const t0 = now();
    const base = stats.elapsedMs;
    const p0 = { pairs: stats.pairs, scored: stats.scored, errors: stats.errors, tokens: stats.lmTokens };
    let emitted = 0;
    const report = (s: SchedulerStats) => {
      const cb = o.onProgress ?? opts.onProgress;
      if (!cb) return;
      const estimate = s.jobs > 0 ? (s.items * s.jobsDone) / s.jobs : s.items;
      cb({
        done: emitted, estimatedDone: Math.max(emitted, Math.min(s.items, estimate)), scored: stats.scored - p0.scored,
        errors: stats.errors - p0.errors, tokens: stats.lmTokens - p0.tokens, elapsedMs: now() - t0,
      });
    };
    const sched = new Scheduler<unknown, PairItem>({
      lanes, windowSize: opts.windowSize, inFlight: opts.inFlight, prepare, onResult, onBatchDone: report,
      onItemDone: o.onDone ? (item) => o.onDone!(finish(item)) : undefined,
    });
    stats.scheduler = sched.stats;
    runOffset = o.firstIndex ?? nextIndex;
    for await (const item of sched.run(items)) {
      const r = finish(item);
      nextIndex = r.index + 1;
      stats.pairs++;
      if (r.error !== undefined) stats.errors++;
      else {
        stats.scored++;
        if (r.scores!.truncated) stats.truncated++;
      }
      stats.elapsedMs = base + now() - t0;
      emitted++;
      report(sched.stats);
      yield r;
    }
    if (v) {
      for (const b of reservoir.splice(0)) await verifyBatch(b);
    }
    stats.elapsedMs = base + now() - t0;
  }

  return {
    plan, passes: plan.mode, maxLen, cosineSource, templates: builder.templates, builder, stats, score,
  };
}
