// loadModel(pathOrName, {device}): weights + tokenizer + a backend, behind the LanguageModel
// interface. `device` is 'auto' | 'webgpu' | 'cpu' (see src/gpu/device.ts: the choice and its
// reason are reported in `deviceReason`), or a GpuRuntime to share one device between models
// (forward and reverse models, the sentence encoder).

import { logprobCpu } from '../../kernels/logprob.js';
import { chooseBackend, DeviceChoice } from '../gpu/device.js';
import { GpuRuntime } from '../gpu/runtime.js';
import { forwardHiddenCpu } from './forward-cpu.js';
import { GpuTransformer } from './forward-gpu.js';
import type { LanguageModel, SequenceRequest, SequenceScores } from './lm.js';
import { loadWeights, LoadedModel } from './load.js';
import { tensor } from './types.js';

export type { LanguageModel, SequenceRequest, SequenceScores } from './lm.js';

export interface LoadModelOptions {
  device?: DeviceChoice | GpuRuntime;
  /** f16 weights on the GPU (default: when the device has shader-f16). */
  f16?: boolean;
  /** Tokenizer file/folder to use instead of the one beside the model. */
  tokenizer?: string;
  /** Override the per-batch token budget (B × padded L). */
  tokenBudget?: number;
}

export interface LoadedLanguageModel extends LanguageModel {
  /** Why this backend was chosen (always shown to the user). */
  deviceReason: string;
  /** The GPU runtime when backend is 'webgpu' (share it with other models). */
  runtime: GpuRuntime | null;
  weights: LoadedModel;
}

// One GPU runtime per process, shared by every model that asks for WebGPU.
let shared: { rt: GpuRuntime; reason: string } | null = null;

export async function sharedRuntime(choice: DeviceChoice): Promise<{ rt: GpuRuntime | null; reason: string }> {
  if (choice === 'cpu') return { rt: null, reason: '--device cpu: CPU path chosen explicitly' };
  if (shared) return shared;
  const d = await chooseBackend(choice);
  if (!d.gpu) return { rt: null, reason: d.reason };
  shared = { rt: new GpuRuntime(d.gpu), reason: d.reason };
  return shared;
}

export async function loadModel(pathOrName = 'default', opts: LoadModelOptions = {}): Promise<LoadedLanguageModel> {
  let rt: GpuRuntime | null;
  let reason: string;
  if (opts.device instanceof GpuRuntime) {
    rt = opts.device;
    reason = `webgpu: ${rt.name} (shared runtime)`;
  } else {
    ({ rt, reason } = await sharedRuntime(opts.device ?? 'auto'));
  }
  const weights = await loadWeights(pathOrName, { tokenizer: opts.tokenizer });
  if (weights.tokenizer.vocabSize > weights.config.vocabSize) {
    throw new Error(`${weights.config.name}: tokenizer has ${weights.tokenizer.vocabSize} ids but the model only ${weights.config.vocabSize}`);
  }
  return rt ? gpuModel(weights, rt, reason, opts) : cpuModel(weights, reason, opts);
}

function base(weights: LoadedModel, reason: string) {
  return {
    config: weights.config,
    tokenizer: weights.tokenizer,
    maxLen: weights.config.maxSeqLen,
    deviceReason: reason,
    weights,
  };
}

function gpuModel(weights: LoadedModel, rt: GpuRuntime, reason: string, opts: LoadModelOptions): LoadedLanguageModel {
  const gpu = new GpuTransformer(rt, weights, { f16: opts.f16 });
  // The widest activation ([tokens, width] f32) must fit one storage binding; past a few thousand
  // tokens a batch only adds latency, so cap there.
  const byBinding = Math.floor(rt.limits.maxStorageBufferBindingSize / (4 * Math.max(gpu.maxActivationWidth, 1)));
  const tokenBudget = opts.tokenBudget ?? Math.max(1, Math.min(byBinding, 8192));
  return {
    ...base(weights, reason),
    backend: 'webgpu',
    deviceName: `webgpu: ${rt.name}${gpu.f16 ? ' (f16 weights)' : ''}`,
    runtime: rt,
    tokenBudget,
    scoreBatch: (seqs) => gpu.scoreBatch(seqs),
    meanHidden: (seqs) => gpu.meanHidden(seqs),
    dispose: () => gpu.dispose(),
  };
}

/** CPU backend: the TypeScript twin, one sequence at a time (no padding is ever computed). */
function cpuModel(weights: LoadedModel, reason: string, opts: LoadModelOptions): LoadedLanguageModel {
  const c = weights.config;
  const head = tensor(weights, 'lm_head');
  const scoreOne = (s: SequenceRequest): SequenceScores => {
    const n = s.ids.length;
    if (n < 2) return { logprobs: new Float32Array(0) };
    // Positions 0..n-2 predict tokens 1..n-1; the last position predicts nothing we score.
    const hidden = forwardHiddenCpu(weights, s.ids.slice(0, n - 1));
    const targets = s.ids.slice(1);
    const mask = new Uint8Array(n - 1).fill(1);
    return { logprobs: logprobCpu(hidden, head, targets, mask, n - 1, c.vocabSize, c.dim).logp };
  };
  return {
    ...base(weights, reason),
    backend: 'cpu',
    deviceName: 'cpu (JavaScript)',
    runtime: null,
    tokenBudget: opts.tokenBudget ?? 4096,
    async scoreBatch(seqs) {
      return seqs.map(scoreOne);
    },
    async meanHidden(seqs) {
      return seqs.map((s) => {
        const hidden = forwardHiddenCpu(weights, s.ids);
        const out = new Float32Array(c.dim);
        for (let i = 0; i < s.ids.length; i++) for (let j = 0; j < c.dim; j++) out[j] += hidden[i * c.dim + j] / s.ids.length;
        return out;
      });
    },
    dispose() {},
  };
}
