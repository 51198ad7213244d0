// Extra score columns on a configured scorer: `concord score --signals …` wraps the scorer so each
// group of scored records gets the requested signals before it is yielded (and before onDone
// reports it, so checkpoints journal the complete line). Without --signals the scorer is used as is.

import type { ConfiguredScorer } from '../pipeline/index.js';
import { DEFAULT_FIELDS, recordToPair, type FieldMap } from '../pipeline/input.js';
import type { ScoreCallOptions, ScoreResult } from '../pipeline/scorer.js';

/** One family of extra columns computed from a group of pairs. */
export interface PairSignals {
  identity(): Record<string, unknown>;
  /** One set of columns per pair; `results` are the scored records (with `tokens` when the scorer keeps them). */
  score(pairs: readonly { x: string; y: string }[], results: readonly ScoreResult[]): Promise<Record<string, number | null | undefined>[]>;
  /** Called once the run has yielded its last record (side files are completed here). */
  finish?(): void;
}

export function withSignals(scorer: ConfiguredScorer, signals: PairSignals[], opts: { fields?: Partial<FieldMap>; group?: number; onDispose?: () => void } = {}): ConfiguredScorer {
  if (!signals.length) return scorer;
  const fields = { ...DEFAULT_FIELDS, ...opts.fields };
  const groupSize = opts.group ?? 64;
  async function* score(items: Iterable<unknown> | AsyncIterable<unknown>, call: ScoreCallOptions = {}): AsyncGenerator<ScoreResult> {
    let group: ScoreResult[] = [];
    const flush = async () => {
      const ok = group.filter((r) => r.scores);
      const pairs = ok.map((r) => recordToPair(r.record, fields));
      for (const s of signals) {
        const cols = await s.score(pairs, ok);
        ok.forEach((r, i) => Object.assign(r.scores as object, cols[i]));
      }
      for (const r of ok) { delete r.tokens; call.onDone?.(r); }
      const done = group;
      group = [];
      return done;
    };
    for await (const r of scorer.score(items, { firstIndex: call.firstIndex, onProgress: call.onProgress })) {
      group.push(r);
      if (group.length >= groupSize) yield* await flush();
    }
    if (group.length) yield* await flush();
    for (const s of signals) s.finish?.();
  }
  const identity = { ...scorer.identity, signals: signals.map((s) => s.identity()) };
  return {
    get plan() { return scorer.plan; },
    get passes() { return scorer.passes; },
    get maxLen() { return scorer.maxLen; },
    get cosineSource() { return scorer.cosineSource; },
    get templates() { return scorer.templates; },
    get builder() { return scorer.builder; },
    get stats() { return scorer.stats; },
    get models() { return scorer.models; },
    get device() { return scorer.device; },
    identity,
    score,
    dispose: () => { opts.onDispose?.(); scorer.dispose(); },
  };
}
