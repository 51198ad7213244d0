// Token-level reference losses (Token Cleaning, Pang et al. 2025, "Token Cleaning: Fine-Grained
// Data Selection for LLM Supervised Fine-Tuning"; github UCSC-REAL/TokenCleaning
// open_instruct/generate_token_label.py): per response token, the loss under the scoring model
// minus the loss under a reference model, on the same forward sequence (template(x) y).
//   diff_t      = −log p_F(y_t | x, y_<t) + log p_ref(y_t | x, y_<t)     (their loss_diff = loss1 − loss2)
//   ref_logp    = mean_t log p_ref(y_t | x, y_<t)
//   tc_diff     = mean_t diff_t
//   tc_positive = share of tokens with diff_t > 0 (their 'sample-positive' selection)
// The side file (--token-scores) holds every token's values for trainers that weight tokens.

import { closeSync, openSync, renameSync, writeSync } from 'node:fs';
import { UsageError } from '../errors.js';
import type { LanguageModel } from '../models/lm.js';
import type { ConfiguredScorer } from '../pipeline/index.js';
import { passSequences } from '../pipeline/plan.js';
import type { ScoreResult } from '../pipeline/scorer.js';
import type { PairSignals } from './attach.js';

/** The reference model must read the same ids: same vocabulary size and the same encoding of a probe text. */
export function checkSameTokenizer(model: LanguageModel, ref: LanguageModel): void {
  const probe = 'Token Cleaning: the same ids in both models? 123 — ✓';
  const a = model.tokenizer.encode(probe, { addSpecial: false }), b = ref.tokenizer.encode(probe, { addSpecial: false });
  if (model.config.vocabSize !== ref.config.vocabSize || a.length !== b.length || a.some((t, i) => t !== b[i]) || model.tokenizer.bosId !== ref.tokenizer.bosId) {
    throw new UsageError(`--reference-model ${ref.config.name}: its tokenizer differs from ${model.config.name}'s (token-level losses compare the same ids)`);
  }
}

/** The forward sequence of a scored pair and where y sits in it. */
function forwardSequence(scorer: ConfiguredScorer, startId: number, r: ScoreResult): { ids: number[]; y: [number, number] } {
  const k = scorer.plan.passes.findIndex((p) => p.name === 'forward');
  const s = passSequences(scorer.plan, startId, r.tokens!.xIds, r.tokens!.yIds)[k];
  return { ids: s.ids, y: s.spans.y! };
}

export class ReferenceLosses implements PairSignals {
  constructor(readonly scorer: ConfiguredScorer, readonly ref: LanguageModel | null, readonly side: TokenScoresFile | null) {
    if (ref) checkSameTokenizer(scorer.models[0], ref);
  }

  identity(): Record<string, unknown> {
    return { referenceModel: this.ref?.config.name ?? null, tokenScores: this.side !== null };
  }

  async score(_pairs: readonly unknown[], results: readonly ScoreResult[]): Promise<Record<string, number | null>[]> {
    const tok = this.scorer.models[0].tokenizer;
    const startId = (tok.bosId ?? tok.eosId)!;
    let refLp: Float64Array[] = [];
    if (this.ref) {
      const seqs = results.map((r) => forwardSequence(this.scorer, startId, r));
      const got = await scoreInBatches(this.ref, seqs.map((s) => s.ids));
      refLp = got.map((lp, i) => Float64Array.from(lp.subarray(seqs[i].y[0] - 1, seqs[i].y[1] - 1)));
    }
    return results.map((r, i) => {
      const t = r.tokens!;
      const cols: Record<string, number | null> = {};
      let diff: Float64Array | null = null;
      if (this.ref) {
        const ref = refLp[i];
        diff = t.fwd.map((lp, j) => -lp + ref[j]);
        const n = Math.max(diff.length, 1);
        cols.ref_logp = ref.reduce((a, b) => a + b, 0) / n;
        cols.tc_diff = diff.reduce((a, b) => a + b, 0) / n;
        cols.tc_positive = diff.filter((d) => d > 0).length / n;
      }
      this.side?.write({
        index: r.index, loc: r.loc, ids: t.yIds, tokens: t.yIds.map((id) => tok.idToToken(id) ?? null),
        loss: [...t.fwd].map((v) => -v), uncond_loss: [...t.y].map((v) => -v),
        ...(diff ? { ref_loss: [...refLp[i]].map((v) => -v), diff: [...diff] } : {}),
      });
      return cols;
    });
  }

  finish(): void { this.side?.finish(); }
}

async function scoreInBatches(m: LanguageModel, seqs: number[][]): Promise<Float32Array[]> {
  const out: Float32Array[] = [];
  let b = 0;
  while (b < seqs.length) {
    let e = b, longest = 0;
    while (e < seqs.length && (e === b || Math.max(longest, seqs[e].length) * (e - b + 1) <= m.tokenBudget)) longest = Math.max(longest, seqs[e++].length);
    for (const r of await m.scoreBatch(seqs.slice(b, e).map((ids) => ({ ids })))) out.push(r.logprobs);
    b = e;
  }
  return out;
}

/** The --token-scores side file: JSON lines in input order, written to FILE.tmp and renamed when the run ends. */
export class TokenScoresFile {
  private fd: number;
  private readonly tmp: string;
  constructor(readonly path: string) {
    this.tmp = `${path}.tmp`;
    try { this.fd = openSync(this.tmp, 'w'); } catch (e) { throw new UsageError(`${path}: cannot write the token-scores file (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`); }
  }
  write(line: Record<string, unknown>): void { writeSync(this.fd, JSON.stringify(line) + '\n'); }
  finish(): void {
    if (this.fd < 0) return;
    closeSync(this.fd);
    this.fd = -1;
    renameSync(this.tmp, this.path);
  }
}
