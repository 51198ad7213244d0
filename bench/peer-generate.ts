// The decoding peer of bench/decode.ts: transformers.js (@huggingface/transformers) `generate` on
// onnxruntime-node's CPU EP, fp32, on the KV-cache ONNX export of the same stories15M weights
// (`/usr/bin/python3 scripts/export_onnx.py --kv-cache --out models/stories15M-onnx-kv`; the
// no-cache export models/stories15M-onnx cannot generate: after the first step transformers.js
// feeds only the last token and the graph has no past to attend to). A batch of prompts of
// different lengths is left-padded (attention_mask 0 on the left, transformers.js derives the
// positions from the mask), as a transformers.js user batches prompts for generation.
// `device: 'webgpu'` runs the same generate on onnxruntime-node's WebGPU EP (Dawn inside onnxruntime,
// on the Vulkan driver src/gpu/device.ts picks: lavapipe on a machine without a GPU), the KV cache
// kept on the device (transformers.js's preferred output location for present.*).

import { existsSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { AutoModelForCausalLM, Tensor, env } from '@huggingface/transformers';
import { configureNodeVulkanDriver } from '../src/gpu/device.js';

export const GENERATE_PEER_NAME = 'transformers.js generate (onnxruntime-node CPU, fp32, KV-cache export, left-padded batches)';
export const GENERATE_WEBGPU_PEER_NAME = 'transformers.js generate (onnxruntime-node WebGPU EP, fp32, KV-cache export, left-padded batches)';

export interface PeerSampling {
  /** 0 = greedy (do_sample false). */
  temperature: number;
  topP: number;
}

export interface GeneratePeer {
  version: string;
  /** Generate exactly `newTokens` tokens after each prompt (EOS suppressed by min_new_tokens); returns the new ids per prompt. */
  generate(prompts: number[][], newTokens: number, sampling: PeerSampling): Promise<number[][]>;
  dispose(): Promise<void>;
}

export async function loadGeneratePeer(dir: string, opts: { threads?: number; device?: 'cpu' | 'webgpu' } = {}): Promise<GeneratePeer> {
  const { threads, device = 'cpu' } = opts;
  if (!existsSync(join(dir, 'onnx', 'model.onnx'))) {
    throw new Error(`${dir}/onnx/model.onnx not found: run /usr/bin/python3 scripts/export_onnx.py --kv-cache --out ${dir}`);
  }
  env.allowRemoteModels = false;
  env.allowLocalModels = true;
  env.localModelPath = dirname(dir) + '/';
  if (device === 'webgpu') await configureNodeVulkanDriver();
  const sessionOptions = threads ? { intraOpNumThreads: threads, interOpNumThreads: 1 } : undefined;
  const model = await AutoModelForCausalLM.from_pretrained(basename(dir), { dtype: 'fp32', device, session_options: sessionOptions });
  return {
    version: env.version,
    async generate(prompts, newTokens, sampling) {
      const B = prompts.length, L = Math.max(...prompts.map((p) => p.length));
      const ids = new BigInt64Array(B * L), mask = new BigInt64Array(B * L);
      prompts.forEach((p, b) => p.forEach((id, t) => { ids[b * L + L - p.length + t] = BigInt(id); mask[b * L + L - p.length + t] = 1n; }));
      const out = await model.generate({
        input_ids: new Tensor('int64', ids, [B, L]), attention_mask: new Tensor('int64', mask, [B, L]),
        max_new_tokens: newTokens, min_new_tokens: newTokens,
        ...(sampling.temperature > 0 ? { do_sample: true, temperature: sampling.temperature, top_p: sampling.topP } : { do_sample: false }),
      }) as Tensor;
      const W = out.dims[1], data = out.data as BigInt64Array;
      return prompts.map((_, b) => Array.from(data.subarray(b * W + L, (b + 1) * W), Number));
    },
    async dispose() {
      await model.dispose();
    },
  };
}
