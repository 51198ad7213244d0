// The CPU backend's unit of work, shared by the in-thread path and the worker threads.

import { logprobCpu } from '../../kernels/logprob.js';
import { forwardHiddenCpu } from './forward-cpu.js';
import { LoadedWeights, tensor } from './types.js';

/** log p(ids[t] | ids[<t]) for t = 1 .. n-1 (positions 0..n-2 predict tokens 1..n-1). */
export function scoreSequenceCpu(w: LoadedWeights, ids: number[]): Float32Array {
  const n = ids.length;
  if (n < 2) return new Float32Array(0);
  const c = w.config;
  const hidden = forwardHiddenCpu(w, ids.slice(0, n - 1));
  const mask = new Uint8Array(n - 1).fill(1);
  return logprobCpu(hidden, tensor(w, 'lm_head'), ids.slice(1), mask, n - 1, c.vocabSize, c.dim).logp;
}

/** Mean over positions of the final normed hidden states. */
export function meanHiddenCpu(w: LoadedWeights, ids: number[]): Float32Array {
  const d = w.config.dim;
  const hidden = forwardHiddenCpu(w, ids);
  const out = new Float32Array(d);
  for (let i = 0; i < ids.length; i++) for (let j = 0; j < d; j++) out[j] += hidden[i * d + j] / ids.length;
  return out;
}
