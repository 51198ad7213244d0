// The CPU backend's unit of work, shared by the in-thread path and the worker threads.

import { forwardHiddenCpu, logProbsCpu } from './forward-cpu.js';
import type { LoadedWeights } from './types.js';

/** log p(ids[t] | ids[<t]) for t = 1 .. n-1 (positions 0..n-2 predict tokens 1..n-1). */
export function scoreSequenceCpu(w: LoadedWeights, ids: number[]): Float32Array {
  if (ids.length < 2) return new Float32Array(0);
  return Float32Array.from(logProbsCpu(w, ids).subarray(1));
}

/** Mean over positions of the final normed hidden states. */
export function meanHiddenCpu(w: LoadedWeights, ids: number[]): Float32Array {
  const d = w.config.dim;
  const hidden = forwardHiddenCpu(w, ids);
  const out = new Float32Array(d);
  for (let i = 0; i < ids.length; i++) for (let j = 0; j < d; j++) out[j] += hidden[i * d + j] / ids.length;
  return out;
}
