// A worker thread of the CPU backend (Node worker_threads). The weights arrive once, backed by
// SharedArrayBuffers (no copy per worker); then it scores the sequences it is sent.

import { parentPort } from 'node:worker_threads';
import { meanHiddenCpu, scoreSequenceCpu, scoreSequenceEntropyCpu } from './cpu-score.js';
import type { LoadedWeights, ModelConfig } from './types.js';

let weights: LoadedWeights | null = null;

type Msg =
  | { type: 'init'; config: ModelConfig; tensors: [string, Float32Array][] }
  | { type: 'score' | 'score-entropy' | 'mean'; id: number; seqs: number[][] };

parentPort!.on('message', (m: Msg) => {
  if (m.type === 'init') {
    weights = { config: m.config, tensors: new Map(m.tensors) };
    return;
  }
  try {
    if (!weights) throw new Error('cpu worker: no weights');
    const w = weights;
    const fn = m.type === 'score' ? scoreSequenceCpu : m.type === 'score-entropy' ? scoreSequenceEntropyCpu : meanHiddenCpu;
    const results = m.seqs.map((ids) => fn(w, ids));
    parentPort!.postMessage({ id: m.id, results }, results.map((r) => r.buffer as ArrayBuffer));
  } catch (e) {
    parentPort!.postMessage({ id: m.id, error: (e as Error).stack ?? String(e) });
  }
});
