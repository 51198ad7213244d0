// The score flags that ask for extra signals (`--signals ask-llm,rating` …), checked before any
// model loads, and the wrapping of the configured scorer with them.

import { readFileSync } from 'node:fs';
import { InputError, UsageError } from '../errors.js';
import { checkReadable, openRecords } from '../io/inputs.js';
import { DEFAULT_FIELDS, RecordError, recordToPair } from '../pipeline/input.js';
import { InContextInfluence } from './icl.js';
import type { ConfiguredScorer } from '../pipeline/index.js';
import type { FieldMap } from '../pipeline/input.js';
import { withSignals, type PairSignals } from './attach.js';
import { RatingSignals, parseTemplateFile } from './rating.js';
import { selectiveIfd, tokenPmi } from './sifd.js';
import { ReferenceLosses, TokenScoresFile } from './token-losses.js';
import type { LanguageModel } from '../models/lm.js';
import type { GpuRuntime } from '../gpu/runtime.js';
import type { DeviceChoice } from '../gpu/device.js';

export const SIGNAL_NAMES = ['ask-llm', 'rating', 'sifd', 'ref-loss', 'icl'] as const;
export type SignalName = (typeof SIGNAL_NAMES)[number];

export const SIGNAL_OPTIONS = {
  signals: { type: 'string' },
  'ask-template': { type: 'string' },
  'rating-template': { type: 'string' },
  'rating-scale': { type: 'string' },
  'selectit-alpha': { type: 'string' },
  'sifd-threshold': { type: 'string' },
  'reference-model': { type: 'string' },
  'token-scores': { type: 'string' },
  anchors: { type: 'string' },
} as const;

export const SIGNAL_HELP = `Extra signals (columns only when asked; docs/signals.md)
  --signals LIST                comma-separated: ask-llm (column ask_llm = log p("yes") after a
                                quality question), rating (rating = expected score over "1".."k",
                                rating_var = its variance over the wordings, selectit)
  --ask-template FILE           the Ask-LLM prompt ({instruction}, {response}; answer "yes")
  --rating-template FILE        rating wordings, separated by lines of ---; {k} is the scale
  --rating-scale K              rating tokens "1".."K" (default 5)
  --selectit-alpha A            SelectIT's uncertainty weight (default 0.2)
  --sifd-threshold T            --signals sifd (T-SHIRT selective IFD): tokens with |PMI| > T nats
                                count (required; T-SHIRT's T is the median |PMI| of the data set)
  --reference-model M           --signals ref-loss (Token Cleaning): ref_logp, tc_diff (mean of
                                loss − reference loss over y), tc_positive (share of tokens > 0)
  --token-scores FILE           per-token side file, one JSON line per scored record: ids, tokens,
                                loss, uncond_loss (+ ref_loss, diff with --reference-model)
  --anchors FILE                --signals icl (in-context influence, NUGGETS): A anchor pairs (any
                                input format); per record, with the record as a one-shot example
                                before each anchor: icl_gold (share of anchors whose response
                                log-prob rises, NUGGETS' golden score), icl_delta (mean gain in
                                log-prob per response token), icl_ratio (zero-shot ÷ one-shot loss,
                                Data-Juicer's); N×A anchor scorings, each record prefilled once`;

export interface SignalSettings {
  names: SignalName[];
  askTemplate?: string;
  ratingTemplates?: string[];
  scale?: number;
  alpha?: number;
  sifdThreshold?: number;
  referenceModel?: string;
  tokenScores?: string;
  anchors?: string;
}

type Flags = { [K in keyof typeof SIGNAL_OPTIONS]?: string } & { resume?: boolean; shard?: string; 'out-dir'?: string };

function readTemplates(file: string): string[] {
  let text: string;
  try { text = readFileSync(file, 'utf8'); } catch (e) { throw new UsageError(`${file}: cannot read the template file (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`); }
  return parseTemplateFile(text, file);
}

function numberFlag(v: string | undefined, flag: string, int: boolean): number | undefined {
  if (v === undefined) return undefined;
  const n = Number(v);
  if (!v.trim() || !Number.isFinite(n) || (int && !Number.isInteger(n)) || n < 0) throw new UsageError(`${flag} must be a ${int ? 'whole ' : ''}number ≥ 0 (got '${v}')`);
  return n;
}

export function signalSettings(v: Flags): SignalSettings {
  const names = (v.signals ?? '').split(',').map((s) => s.trim()).filter(Boolean);
  for (const n of names) if (!(SIGNAL_NAMES as readonly string[]).includes(n)) throw new UsageError(`--signals: unknown signal '${n}' (known: ${SIGNAL_NAMES.join(', ')})`);
  const has = (n: SignalName) => names.includes(n);
  if (v['ask-template'] !== undefined && !has('ask-llm')) throw new UsageError('--ask-template needs --signals ask-llm');
  for (const f of ['rating-template', 'rating-scale', 'selectit-alpha'] as const) if (v[f] !== undefined && !has('rating')) throw new UsageError(`--${f} needs --signals rating`);
  if (v['sifd-threshold'] !== undefined && !has('sifd')) throw new UsageError('--sifd-threshold needs --signals sifd');
  if (has('sifd') && v['sifd-threshold'] === undefined) throw new UsageError('--signals sifd needs --sifd-threshold T (nats; T-SHIRT uses the median |PMI| over the data set\'s response tokens: see docs/signals.md)');
  if (has('ref-loss') !== (v['reference-model'] !== undefined)) throw new UsageError(has('ref-loss') ? '--signals ref-loss needs --reference-model M' : '--reference-model needs --signals ref-loss');
  if (has('icl') !== (v.anchors !== undefined)) throw new UsageError(has('icl') ? '--signals icl needs --anchors FILE (the anchor pairs)' : '--anchors needs --signals icl');
  if (v.anchors !== undefined) checkReadable(v.anchors);
  if (v['token-scores'] !== undefined && (v.resume || v.shard !== undefined || v['out-dir'] !== undefined)) throw new UsageError('--token-scores writes one side file per run: it does not combine with --resume or --shard');
  const ask = v['ask-template'] !== undefined ? readTemplates(v['ask-template']) : undefined;
  if (ask && ask.length > 1) throw new UsageError(`${v['ask-template']}: --ask-template takes one template (found ${ask.length})`);
  return {
    names: [...new Set(names)] as SignalName[],
    askTemplate: ask?.[0],
    ratingTemplates: v['rating-template'] !== undefined ? readTemplates(v['rating-template']) : undefined,
    scale: numberFlag(v['rating-scale'], '--rating-scale', true),
    alpha: numberFlag(v['selectit-alpha'], '--selectit-alpha', false),
    sifdThreshold: numberFlag(v['sifd-threshold'], '--sifd-threshold', false),
    referenceModel: v['reference-model'],
    tokenScores: v['token-scores'],
    anchors: v.anchors,
  };
}

/** The anchor pairs of --anchors (any input src/io reads), with the scorer's field names; a bad record stops the run naming it. */
export async function readAnchors(file: string, fields: Partial<FieldMap>): Promise<{ x: string; y: string }[]> {
  const out: { x: string; y: string }[] = [];
  const map = { ...DEFAULT_FIELDS, ...fields };
  for await (const r of openRecords(file)) {
    if (r.parseError) throw new InputError(`${r.loc}: anchor: ${r.parseError}`);
    try {
      const p = recordToPair(r.record, map);
      out.push({ x: p.x, y: p.y });
    } catch (e) {
      if (e instanceof RecordError) throw new InputError(`${r.loc}: anchor: ${e.message}`);
      throw e;
    }
  }
  if (!out.length) throw new InputError(`${file}: no anchor pairs in the file`);
  return out;
}

/** The scorer with the asked signals attached (the scorer itself when none are asked). */
export async function attachSignals(scorer: ConfiguredScorer, s: SignalSettings, fields: Partial<FieldMap>, device?: DeviceChoice): Promise<ConfiguredScorer> {
  if (!s.names.length && !s.tokenScores) return scorer;
  const list: PairSignals[] = [];
  const askLlm = s.names.includes('ask-llm'), rating = s.names.includes('rating');
  if (askLlm || rating) {
    const r = new RatingSignals(scorer.models[0], { askLlm, rating, askTemplate: s.askTemplate, ratingTemplates: s.ratingTemplates, scale: s.scale, alpha: s.alpha });
    list.push({ identity: () => r.identity(), score: (p) => r.score(p) as Promise<Record<string, number | null | undefined>[]> });
  }
  if (s.names.includes('sifd')) {
    const tau = s.sifdThreshold!;
    list.push({
      identity: () => ({ sifd: tau }),
      score: async (_p, results) => results.map((r) => {
        if (!r.tokens) throw new Error('sifd: the scorer did not keep per-token log-probs (create it with tokenLogprobs)');
        const { sifd, kept } = selectiveIfd(tokenPmi(r.tokens), tau);
        return { sifd: Number.isFinite(sifd) ? sifd : null, sifd_tokens: kept };
      }),
    });
  }
  if (s.names.includes('icl')) {
    const lm = scorer.models[0];
    if (!lm.createDecoder) throw new UsageError(`--signals icl: ${lm.config.name} on ${lm.deviceName} has no decoder (KV cache) here; use --device cpu or --device cpu-twin`);
    const anchors = await readAnchors(s.anchors!, fields);
    let icl: InContextInfluence;
    try {
      icl = new InContextInfluence(lm, scorer.builder, anchors);
    } catch (e) {
      if (e instanceof RecordError) throw new InputError(`${s.anchors}: ${e.message}`);
      throw e;
    }
    list.push({ identity: () => icl.identity(), score: (p) => icl.score(p) as unknown as Promise<Record<string, number | null | undefined>[]> });
  }
  let ref: LanguageModel | null = null;
  if (s.referenceModel || s.tokenScores) {
    if (s.referenceModel) {
      const rt = (scorer.models[0] as { runtime?: GpuRuntime | null }).runtime ?? null;
      ref = await (await import('../models/index.js')).loadModel(s.referenceModel, { device: rt ?? device ?? 'auto' });
    }
    try {
      list.push(new ReferenceLosses(scorer, ref, s.tokenScores ? new TokenScoresFile(s.tokenScores) : null));
    } catch (e) { ref?.dispose(); throw e; }
  }
  return withSignals(scorer, list, { fields, onDispose: () => ref?.dispose() });
}

/** Whether the scorer must keep per-token log-probs for the asked signals. */
export function needsTokenLogprobs(s: SignalSettings): boolean {
  return s.names.includes('sifd') || s.names.includes('ref-loss') || !!s.tokenScores;
}
