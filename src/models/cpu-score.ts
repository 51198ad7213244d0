// The CPU backend's unit of work, shared by the in-thread path and the worker threads.

import { candidateLogprobCpu } from '../../kernels/logprob.js';
import { meanPoolCpu } from '../../kernels/pool.js';
import { forwardHiddenCpu, logProbsCpu, logProbsEntropyCpu } from './forward-cpu.js';
import { tensor, type LoadedWeights } from './types.js';

/** log p(ids[t] | ids[<t]) for t = 1 .. n-1 (positions 0..n-2 predict tokens 1..n-1). */
export function scoreSequenceCpu(w: LoadedWeights, ids: number[]): Float32Array {
  if (ids.length < 2) return new Float32Array(0);
  return Float32Array.from(logProbsCpu(w, ids).subarray(1));
}

/**
 * scoreSequenceCpu with the entropy of each position's next-token distribution, as one array:
 * [logprobs (n-1) | entropies (n-1)] (one transferable buffer from the worker threads).
 */
export function scoreSequenceEntropyCpu(w: LoadedWeights, ids: number[]): Float32Array {
  if (ids.length < 2) return new Float32Array(0);
  const { logp, entropy } = logProbsEntropyCpu(w, ids);
  const n = ids.length - 1, out = new Float32Array(2 * n);
  out.set(logp.subarray(1));
  out.set(entropy.subarray(1), n);
  return out;
}

/** Mean over positions of the final normed hidden states (the pooling kernel's CPU twin). */
export function meanHiddenCpu(w: LoadedWeights, ids: number[]): Float32Array {
  return meanPoolCpu(forwardHiddenCpu(w, ids), [ids.length], 1, ids.length, w.config.dim);
}

/**
 * log p(candidates[j] | ids) at the last position of ids: the prompt's final hidden states, then the
 * candidate head's twin (kernels/logprob.ts candidateLogprobCpu, f64) on its last row.
 */
export function candidateLogprobsCpu(w: LoadedWeights, ids: readonly number[], candidates: readonly number[]): Float64Array {
  const { dim: d, vocabSize: V } = w.config;
  if (!ids.length) throw new Error(`${w.config.name}: candidate log-probs of an empty prompt`);
  const hidden = forwardHiddenCpu(w, ids);
  return candidateLogprobCpu(hidden.subarray((ids.length - 1) * d), tensor(w, 'lm_head'), candidates, 1, V, d, w.config.finalSoftcap ?? 0);
}
