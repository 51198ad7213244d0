// The sentence encoder's CPU path on onnxruntime-node: the ONNX file itself (external data read
// into the model in memory), run by onnxruntime's CPU kernels, then mean pooling and L2
// normalisation as the twin does (bert-cpu.ts meanPoolNormalizeCpu). The TypeScript twin stays
// the reference it is tested against.
//
// compute 'f32' (default): the graph with accuracy_level 0 on its MatMulNBits nodes (f32 compute on
// the dequantised 4-bit weights), which the twin reproduces to ~1e-7; 'shipped': the graph as the
// file has it (all-MiniLM-L6-v2's model_q4.onnx asks for accuracy_level 4, int8-quantised
// activations: ≥ 0.9995 cosine with the twin). f32 is the default because it also measured faster
// on this 2-core Xeon (bench/embed.ts: 73 against 52 sentences/s, load ~10).

import { settings } from '../env.js';
import { loadOrt } from '../models/ort/backend.js';
import type { PaddedBatch } from '../scheduler/batch.js';
import { meanPoolNormalizeCpu } from './bert-cpu.js';
import { onnx, type ExternalData } from '../formats/onnx.js';

type Ort = typeof import('onnxruntime-node');
type Session = import('onnxruntime-node').InferenceSession;

export type OrtBertCompute = 'shipped' | 'f32';

export interface OrtBertOptions {
  compute?: OrtBertCompute;
  /** intra-op threads (default: the machine's available parallelism) */
  threads?: number;
}

/** The model with its external tensors moved into raw_data (and, for 'f32', accuracy_level 0). */
export function inlineOnnx(bytes: Uint8Array, external: ExternalData, compute: OrtBertCompute, source = 'onnx'): Uint8Array {
  const m = onnx.ModelProto.decode(bytes);
  for (const t of m.graph?.initializer ?? []) {
    if (t.dataLocation !== onnx.TensorProto.DataLocation.EXTERNAL) continue;
    const kv = new Map((t.externalData ?? []).map((e) => [e.key, e.value ?? '']));
    const loc = kv.get('location') ?? '';
    const file = external.get(loc);
    if (!file) throw new Error(`${source}: tensor '${t.name}' names external data '${loc}', which was not loaded`);
    const offset = Number(kv.get('offset') ?? 0);
    const length = kv.has('length') ? Number(kv.get('length')) : file.length - offset;
    if (offset + length > file.length) throw new Error(`${source}: tensor '${t.name}' reads past the end of '${loc}'`);
    t.rawData = file.subarray(offset, offset + length);
    t.externalData = [];
    t.dataLocation = onnx.TensorProto.DataLocation.DEFAULT;
  }
  if (compute === 'f32') for (const n of m.graph?.node ?? []) for (const a of n.attribute ?? []) if (a.name === 'accuracy_level') a.i = 0;
  return onnx.ModelProto.encode(m).finish();
}

export class OrtBert {
  private queue: Promise<unknown> = Promise.resolve();
  private constructor(private ort: Ort, private session: Session, readonly dim: number, readonly threads: number, readonly compute: OrtBertCompute, private tokenTypes: boolean) {}

  static async create(bytes: Uint8Array, external: ExternalData, dim: number, opts: OrtBertOptions = {}, source = 'onnx'): Promise<OrtBert> {
    const ort = await loadOrt();
    const { defaultOrtThreads, ortSessionExtra } = await import('../models/ort/backend.js');
    const threads = opts.threads ?? defaultOrtThreads();
    const compute = opts.compute ?? 'f32';
    const session = await ort.InferenceSession.create(inlineOnnx(bytes, external, compute, source), {
      executionProviders: ['cpu'], intraOpNumThreads: threads, interOpNumThreads: 1, executionMode: 'sequential', graphOptimizationLevel: 'all',
      extra: ortSessionExtra(),
    });
    for (const need of ['input_ids', 'attention_mask']) if (!session.inputNames.includes(need)) throw new Error(`${source}: the ONNX encoder has no '${need}' input (inputs: ${session.inputNames.join(', ')})`);
    if (!session.outputNames.includes('last_hidden_state')) throw new Error(`${source}: the ONNX encoder has no 'last_hidden_state' output (outputs: ${session.outputNames.join(', ')})`);
    return new OrtBert(ort, session, dim, threads, compute, session.inputNames.includes('token_type_ids'));
  }

  get version(): string {
    const v = (this.ort.env as { versions?: Record<string, string> }).versions;
    return v?.node ?? v?.common ?? '';
  }

  /** Unit sentence vectors [B, d] of a right-padded batch. */
  embedSentences(batch: PaddedBatch): Promise<Float32Array> {
    const run = async (): Promise<Float32Array> => {
      const shape = [batch.B, batch.L];
      const i64 = (x: ArrayLike<number>): import('onnxruntime-node').Tensor => {
        const a = new BigInt64Array(x.length);
        for (let i = 0; i < x.length; i++) a[i] = BigInt(x[i]);
        return new this.ort.Tensor('int64', a, shape);
      };
      const feeds: Record<string, import('onnxruntime-node').Tensor> = { input_ids: i64(batch.ids), attention_mask: i64(batch.mask) };
      if (this.tokenTypes) feeds.token_type_ids = new this.ort.Tensor('int64', new BigInt64Array(batch.B * batch.L), shape);
      const res = await this.session.run(feeds, ['last_hidden_state']);
      const out = meanPoolNormalizeCpu(res.last_hidden_state.data as Float32Array, batch.mask, batch.B, batch.L, this.dim);
      res.last_hidden_state.dispose();
      return out;
    };
    const next = this.queue.then(run, run);
    this.queue = next.catch(() => undefined);
    return next;
  }

  dispose(): void {
    void this.session.release();
  }
}

export type EncoderCpuBackend = 'onnxruntime' | 'twin';

/**
 * The onnxruntime encoder for loadEmbedder on the CPU, or null (with the reason) when the twin
 * runs instead: a Hugging Face folder (no ONNX file), CONCORD_CPU_BACKEND=twin, or onnxruntime-node
 * missing. An explicitly requested 'onnxruntime' that cannot run is an error.
 */
export async function ortEncoderFor(
  src: { onnx?: { bytes: Uint8Array; external: ExternalData; source: string }; weights: { config: { dim: number } } },
  opts: { cpuBackend?: EncoderCpuBackend; ortCompute?: OrtBertCompute; threads?: number },
): Promise<{ encoder: OrtBert | null; note: string }> {
  const choice = opts.cpuBackend ?? (settings.cpuBackend as EncoderCpuBackend | undefined);
  if (choice === 'twin') return { encoder: null, note: opts.cpuBackend ? 'twin requested' : 'CONCORD_CPU_BACKEND=twin' };
  if (!src.onnx) {
    if (choice === 'onnxruntime') throw new Error('the onnxruntime encoder needs an ONNX model file (this source has none)');
    return { encoder: null, note: 'no ONNX file to give onnxruntime' };
  }
  try {
    return { encoder: await OrtBert.create(src.onnx.bytes, src.onnx.external, src.weights.config.dim, { compute: opts.ortCompute, threads: opts.threads }, src.onnx.source), note: '' };
  } catch (e) {
    if (choice === 'onnxruntime') throw e;
    return { encoder: null, note: `onnxruntime unavailable: ${(e as Error).message}` };
  }
}
