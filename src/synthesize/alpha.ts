// The weight of synthetic pairs against seed pairs (MAIN's dynamic weighting of synthetic vs seed
// data, concord's own schedule — docs/synthesize.md). Seed pairs always weigh 1; the synthetic pairs
// kept at iteration t weigh α_t:
//   constant A          α_t = A
//   linear:A0:A1:T      α_t = A0 + (A1 − A0) · min(t, T) / T
//   balance             α   = n_seed / n_synthetic_kept   (both sets carry the same total weight)

import { UsageError } from '../errors.js';

export type AlphaSchedule =
  | { kind: 'constant'; value: number }
  | { kind: 'linear'; a0: number; a1: number; steps: number }
  | { kind: 'balance' };

const finite = (s: string, what: string, spec: string): number => {
  const n = s.trim() === '' ? NaN : Number(s);
  if (!Number.isFinite(n) || n < 0) throw new UsageError(`--alpha ${spec}: ${what} must be a number ≥ 0 (got '${s}')`);
  return n;
};

/** Parse `--alpha`: a number, `linear:A0:A1:T` or `balance`. */
export function parseAlpha(spec: string): AlphaSchedule {
  if (spec === 'balance') return { kind: 'balance' };
  if (spec.startsWith('linear:')) {
    const parts = spec.split(':');
    if (parts.length !== 4) throw new UsageError(`--alpha ${spec}: expected linear:A0:A1:T`);
    const steps = Number(parts[3]);
    if (!Number.isInteger(steps) || steps < 1) throw new UsageError(`--alpha ${spec}: T must be an integer ≥ 1 (got '${parts[3]}')`);
    return { kind: 'linear', a0: finite(parts[1], 'A0', spec), a1: finite(parts[2], 'A1', spec), steps };
  }
  if (/^[0-9.eE+-]+$/.test(spec)) return { kind: 'constant', value: finite(spec, 'A', spec) };
  throw new UsageError(`--alpha must be a number, linear:A0:A1:T or balance (got '${spec}')`);
}

/** α at iteration t (≥ 0) for n_seed seed pairs and n_syn synthetic pairs kept. */
export function alphaAt(s: AlphaSchedule, t: number, nSeed: number, nSyn: number): number {
  switch (s.kind) {
    case 'constant': return s.value;
    case 'linear': return s.a0 + ((s.a1 - s.a0) * Math.min(t, s.steps)) / s.steps;
    case 'balance': return nSyn > 0 ? nSeed / nSyn : 1;
  }
}

/** The schedule as a formula, for summaries. */
export function describeAlpha(s: AlphaSchedule): string {
  switch (s.kind) {
    case 'constant': return `α = ${s.value}`;
    case 'linear': return `α_t = ${s.a0} + (${s.a1} − ${s.a0})·min(t, ${s.steps})/${s.steps}`;
    case 'balance': return 'α = n_seed / n_synthetic_kept';
  }
}
