// modelFromWeights: a LanguageModel from weights already in memory (any source: files in Node,
// ArrayBuffers in the browser). No file-system imports here, so the browser bundle can use it.

import type { LmQuantOptions } from './ort/graph.js';
import { isNode, nodeBuiltin, settings } from '../env.js';
import { UsageError } from '../errors.js';
import type { GpuRuntime } from '../gpu/runtime.js';
import type { TextTokenizer } from '../tokenizer/types.js';
import { roundThroughF16 } from '../util/f16.js';
import { CpuWorkerPool, type CpuJob } from './cpu-pool.js';
import { CpuTwinDecoder } from './decode-cpu.js';
import { candidateLogprobsCpu, meanHiddenCpu, scoreSequenceCpu, scoreSequenceEntropyCpu } from './cpu-score.js';
import { GpuDecoder } from './decode-gpu.js';
import { GpuTransformer } from './forward-gpu.js';
import { modelRequests, tuneFor } from '../tune/index.js';
import type { LanguageModel, SequenceRequest, SequenceScores } from './lm.js';
import type { LoadedWeights } from './types.js';
import type { LoadProgress } from './weight-upload.js';

export interface ModelOptions {
  /** A GPU runtime (WebGPU backend) or 'cpu'. */
  device: GpuRuntime | 'cpu';
  /**
   * f16 weight storage. WebGPU: store linear weights and the LM head as f16 (default: on a
   * hardware adapter with shader-f16). CPU: round the same tensors through f16 (default false), so a CPU
   * twin can check an f16 GPU model at f32 tolerances (--verify does this).
   */
  f16?: boolean;
  /** Per-batch token budget (B × padded L). */
  tokenBudget?: number;
  /** CPU backend: worker threads (default: the machine's cores, up to 8; CONCORD_CPU_THREADS). */
  threads?: number;
  /** Why this device was chosen, for the user. */
  reason?: string;
  /**
   * CPU backend: 'onnxruntime' (onnxruntime-node's native kernels on an ONNX graph of the weights;
   * the default in Node) or 'twin' (the TypeScript twin, the reference). Default: CONCORD_CPU_BACKEND,
   * else 'onnxruntime', falling back to the twin (with the reason) where onnxruntime-node cannot load.
   */
  cpuBackend?: CpuBackend;
  /** onnxruntime: how GGUF Q4_0/Q8_0 linears run (MatMulNBits by default; src/models/ort/graph.ts). */
  ortQuant?: LmQuantOptions;
  /**
   * WebGPU: called as tensors stream from their checkpoint files to the GPU (bytes done / total,
   * shard i of n). Nothing is reported without it; the CLI prints it on a terminal.
   */
  onProgress?: (p: LoadProgress) => void;
}

export type CpuBackend = 'onnxruntime' | 'twin';

export interface ModelWithWeights extends LanguageModel {
  deviceReason: string;
  /** The GPU runtime when backend is 'webgpu' (share it with other models). */
  runtime: GpuRuntime | null;
  /** True when the weights are stored (GPU) or rounded (CPU) as f16. */
  f16: boolean;
  weights: LoadedWeights;
}

/** The tensors the GPU stores as f16 (matmul and LM-head weights; norms, biases, embeddings stay f32). */
export function isF16Tensor(name: string): boolean {
  return name === 'lm_head' || /^layers\.\d+\.(wq|wk|wv|wo|w_gate|w_up|w_down)$/.test(name);
}

export async function modelFromWeights(weights: LoadedWeights, tokenizer: TextTokenizer, opts: ModelOptions): Promise<ModelWithWeights> {
  if (tokenizer.vocabSize > weights.config.vocabSize) {
    throw new Error(`${weights.config.name}: tokenizer has ${tokenizer.vocabSize} ids but the model only ${weights.config.vocabSize}`);
  }
  const common = {
    config: weights.config,
    tokenizer,
    maxLen: weights.config.maxSeqLen,
    weights,
  };
  if (opts.device !== 'cpu') {
    const rt = opts.device;
    const gpu = await GpuTransformer.create(rt, weights, { f16: opts.f16, onProgress: opts.onProgress });
    await tuneFor(rt, modelRequests(weights.config, { f16: gpu.f16, maxTokens: opts.tokenBudget, quant: gpu.quantShapes() })); // src/tune/index.ts: cached/tuned kernel variants
    // The widest activation ([tokens, width] f32) must fit one storage binding; past a few
    // thousand tokens a batch only adds latency, so cap there.
    const byBinding = Math.floor(rt.limits.maxStorageBufferBindingSize / (4 * Math.max(gpu.maxActivationWidth, 1)));
    return {
      ...common,
      backend: 'webgpu',
      deviceName: `webgpu: ${rt.name}, ${gpu.f16 ? 'f16' : 'f32'} weights${gpu.quantLinears ? ` (${gpu.quantLinears} linears as GGUF Q8_0/Q4_0/Q4_K/Q6_K blocks${gpu.lmHeadType !== undefined ? ', the LM head among them' : ''})` : ''}`,
      deviceReason: opts.reason ?? `webgpu: ${rt.name}`,
      runtime: rt,
      f16: gpu.f16,
      weightBytes: gpu.weightBytes,
      tokenBudget: opts.tokenBudget ?? Math.max(1, Math.min(byBinding, 8192)),
      scoreBatch: (seqs, o) => gpu.scoreBatch(seqs, o),
      meanHidden: (seqs) => gpu.meanHidden(seqs),
      // The candidate head's merge pass reads W's rows as values: a head kept as GGUF blocks takes
      // the decoder route instead (src/signals/candidates.ts).
      ...(gpu.lmHeadType === undefined ? { candidateLogprobs: (prompts: readonly (readonly number[])[], cands: readonly number[]) => gpu.candidateLogprobs(prompts, cands) } : {}),
      // KV caches on the GPU (decode-gpu.ts); f16 where the weights are.
      createDecoder: async (o) => new GpuDecoder(gpu, o),
      dispose: () => gpu.dispose(),
    };
  }
  const f16 = opts.f16 ?? false;
  const w: LoadedWeights = f16
    ? { config: weights.config, tensors: new Map([...weights.tensors].map(([n, t]) => [n, isF16Tensor(n) ? roundThroughF16(t) : t])) }
    : weights;
  // CPU backend: onnxruntime-node (src/models/ort/) unless the twin is asked for.
  const choice = cpuBackendChoice(opts.cpuBackend);
  let twinNote = choice.explicit ? `; ${choice.explicit}` : '';
  const gaps = choice.backend === 'onnxruntime' ? (await import('./ort/graph.js')).ortGraphGaps(w) : [];
  if (gaps.length) {
    const why = `the onnxruntime graph does not build ${gaps.join(', ')} yet`;
    if (choice.explicit) throw new UsageError(`${w.config.name}: ${why} (use --device cpu-twin)`);
    twinNote = `; ${why}: using the TypeScript twin`;
  } else if (choice.backend === 'onnxruntime') {
    try {
      const { ortModel } = await import('./ort/model-ort.js');
      return { ...common, ...(await ortModel(w, { reason: opts.reason, tokenBudget: opts.tokenBudget, threads: opts.threads, f16, quant: opts.ortQuant })) };
    } catch (e) {
      if (choice.explicit) throw e;
      twinNote = `; onnxruntime unavailable (${(e as Error).message}), using the TypeScript twin`;
    }
  }
  // The TypeScript twin, one sequence at a time (no padding is ever computed), spread over worker
  // threads where they exist (the compiled package in Node).
  const pool = await CpuWorkerPool.create(w, opts.threads ?? defaultThreads());
  const run = async (type: CpuJob, seqs: SequenceRequest[]): Promise<Float32Array[]> => {
    if (pool && seqs.length > 1) return pool.run(type, seqs.map((s) => s.ids));
    const fn = type === 'score' ? scoreSequenceCpu : type === 'score-entropy' ? scoreSequenceEntropyCpu : meanHiddenCpu;
    return seqs.map((s) => fn(w, s.ids));
  };
  // 'score-entropy' returns [logprobs | entropies] per sequence (cpu-score.ts).
  const split = (a: Float32Array): SequenceScores => ({ logprobs: a.slice(0, a.length / 2), entropy: a.slice(a.length / 2) });
  return {
    ...common,
    backend: 'cpu',
    deviceName: `cpu: TypeScript twin (JavaScript, ${pool ? `${pool.size} worker threads` : '1 thread'}${f16 ? ', f16-rounded weights' : ''})`,
    deviceReason: (opts.reason ?? 'cpu') + twinNote,
    runtime: null,
    f16,
    tokenBudget: opts.tokenBudget ?? 4096,
    scoreBatch: async (seqs, o) => (o?.entropy ? (await run('score-entropy', seqs)).map(split) : (await run('score', seqs)).map((logprobs) => ({ logprobs }))),
    meanHidden: (seqs) => run('mean', seqs),
    // In this thread, one prompt after another (as the twin's decoder did).
    candidateLogprobs: async (prompts, cands) => prompts.map((ids) => candidateLogprobsCpu(w, ids, cands)),
    createDecoder: async (o) => new CpuTwinDecoder(w, o),
    dispose: () => { void pool?.destroy(); },
  };
}

/** The CPU backend to use: the option, else CONCORD_CPU_BACKEND, else onnxruntime in Node. */
function cpuBackendChoice(opt: CpuBackend | undefined): { backend: CpuBackend; explicit: string | null } {
  if (opt) return { backend: opt, explicit: `CPU backend '${opt}' requested` };
  const env = settings.cpuBackend;
  if (env) return { backend: env, explicit: `CONCORD_CPU_BACKEND=${env}` };
  return { backend: isNode ? 'onnxruntime' : 'twin', explicit: null };
}

function defaultThreads(): number {
  if (settings.cpuThreads) return settings.cpuThreads;
  if (!isNode) return 1;
  return Math.min(nodeBuiltin<typeof import('node:os')>('os').availableParallelism(), 8);
}
