// loadModel(pathOrName, {device}): weights + tokenizer + a backend, behind the LanguageModel
// interface. `device` is 'auto' | 'webgpu' | 'cpu' (see src/gpu/device.ts: the choice and its
// reason are reported in `deviceReason`), or a GpuRuntime to share one device between models
// (forward and reverse models, the sentence encoder).

import { chooseBackend, DeviceChoice } from '../gpu/device.js';
import { GpuRuntime } from '../gpu/runtime.js';
import { CpuWorkerPool } from './cpu-pool.js';
import { meanHiddenCpu, scoreSequenceCpu } from './cpu-score.js';
import { GpuTransformer } from './forward-gpu.js';
import type { LanguageModel, SequenceRequest, SequenceScores } from './lm.js';
import { loadWeights, LoadedModel } from './load.js';

export type { LanguageModel, SequenceRequest, SequenceScores } from './lm.js';

export interface LoadModelOptions {
  device?: DeviceChoice | GpuRuntime;
  /** f16 weights on the GPU (default: when the device has shader-f16). */
  f16?: boolean;
  /** Tokenizer file/folder to use instead of the one beside the model. */
  tokenizer?: string;
  /** Override the per-batch token budget (B × padded L). */
  tokenBudget?: number;
  /** CPU backend: worker threads (default: the machine's cores, up to 8; CONCORD_CPU_THREADS). */
  threads?: number;
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

/**
 * CPU backend: the TypeScript twin, one sequence at a time (no padding is ever computed), spread
 * over worker threads when they are available (the compiled package in Node).
 */
async function cpuModel(weights: LoadedModel, reason: string, opts: LoadModelOptions): Promise<LoadedLanguageModel> {
  const threads = opts.threads ?? defaultThreads();
  const pool = await CpuWorkerPool.create(weights, threads);
  const run = async (type: 'score' | 'mean', seqs: SequenceRequest[]): Promise<Float32Array[]> => {
    if (pool && seqs.length > 1) return pool.run(type, seqs.map((s) => s.ids));
    return seqs.map((s) => (type === 'score' ? scoreSequenceCpu(weights, s.ids) : meanHiddenCpu(weights, s.ids)));
  };
  return {
    ...base(weights, reason),
    backend: 'cpu',
    deviceName: `cpu (JavaScript, ${pool ? `${pool.size} worker threads` : '1 thread'})`,
    runtime: null,
    tokenBudget: opts.tokenBudget ?? 4096,
    scoreBatch: async (seqs) => (await run('score', seqs)).map((logprobs) => ({ logprobs })),
    meanHidden: (seqs) => run('mean', seqs),
    dispose: () => { void pool?.destroy(); },
  };
}

function defaultThreads(): number {
  const env = typeof process !== 'undefined' ? process.env?.CONCORD_CPU_THREADS : undefined;
  if (env) return Math.max(1, Number(env) || 1);
  const os = (process as unknown as { getBuiltinModule?: (m: string) => typeof import('node:os') }).getBuiltinModule?.('node:os');
  return Math.min(os?.availableParallelism?.() ?? 1, 8);
}
