// loadModel(pathOrName, {device}): weights + tokenizer from disk + a backend, behind the
// LanguageModel interface. `device` is 'auto' | 'webgpu' | 'cpu' | 'cpu-twin' (src/gpu/device.ts: the choice
// and its reason are reported in `deviceReason`), or a GpuRuntime to share one device between
// models (forward and reverse models, the sentence encoder). For weights already in memory (the
// browser), use modelFromWeights from ./model.js.

import { chooseBackend, DeviceChoice } from '../gpu/device.js';
import { GpuRuntime } from '../gpu/runtime.js';
import { loadWeights, LoadedModel } from './load.js';
import { modelFromWeights, ModelOptions, ModelWithWeights } from './model.js';

export type { LanguageModel, SequenceRequest, SequenceScores } from './lm.js';
export { modelFromWeights } from './model.js';

export interface LoadModelOptions extends Omit<ModelOptions, 'device' | 'reason'> {
  device?: DeviceChoice | GpuRuntime;
  /** Tokenizer file/folder to use instead of the one beside the model. */
  tokenizer?: string;
  /** Branch, tag or commit of a Hub model id (default 'main'). */
  revision?: string;
}

export interface LoadedLanguageModel extends ModelWithWeights {
  weights: LoadedModel;
}

// One GPU runtime per process, shared by every model that asks for WebGPU.
let shared: { rt: GpuRuntime; reason: string } | null = null;

export async function sharedRuntime(choice: DeviceChoice): Promise<{ rt: GpuRuntime | null; reason: string }> {
  if (choice === 'cpu' || choice === 'cpu-twin') return { rt: null, reason: `--device ${choice}: CPU path chosen explicitly` };
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
  // WebGPU: tensors stay in their files and stream to the GPU (weight-upload.ts); CPU: read as f32 now.
  const weights = await loadWeights(pathOrName, { tokenizer: opts.tokenizer, revision: opts.revision, lazy: rt !== null });
  const cpuBackend = opts.device === 'cpu-twin' ? 'twin' : opts.cpuBackend;
  const lm = await modelFromWeights(weights, weights.tokenizer, { ...opts, device: rt ?? 'cpu', reason, cpuBackend });
  return lm as LoadedLanguageModel;
}
