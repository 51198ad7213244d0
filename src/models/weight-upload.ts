// Weights to the GPU: each GPU buffer holds one or more canonical tensors back to back (f16 or f32).
// Tensors already in memory (llama2.c, the browser) are written at once, as before. Tensors still in
// their checkpoint files (LoadedWeights.refs: Hugging Face folders) are queued and streamed by
// finish(): shard by shard in file order, each tensor in chunks of at most 2 Mi elements converted
// straight to the storage type (bf16 → f16 through a table, never an f32 copy where the GPU stores
// f16), written with queue.writeBuffer at offsets, waiting for the queue every 64 MiB so the
// implementation's staging memory is recycled. Host memory above the GPU's own buffers therefore
// stays within a fixed bound (two chunk buffers + the 64 MiB window) whatever the model's size; only
// GPT-2's transposed Conv1D weights are read whole (as f32, plus their transpose). No file-system
// imports here: the refs read their files themselves (src/formats/safetensors.ts).

import type { GpuRuntime } from '../gpu/runtime.js';
import { isQuantMatmulType, quantBlockElems, type QuantMatmulType } from '../../kernels/matmul-quant.js';
import { toF16 } from '../util/f16.js';
import { tensor, type LoadedWeights, type TensorRef } from './types.js';

/** Loading progress: bytes read from the checkpoint so far, of all, and the shard being read. */
export interface LoadProgress {
  bytesDone: number;
  bytesTotal: number;
  /** 1-based index of the shard being read, of `shards` */
  shard: number;
  shards: number;
  file: string;
  tensor: string;
}

export interface UploadOptions {
  onProgress?: (p: LoadProgress) => void;
  /** Elements per chunk (default 2 Mi). */
  chunkElems?: number;
  /** Bytes written between waits for the queue (default 64 MiB). */
  windowBytes?: number;
}

interface Job { buf: GPUBuffer; ref: TensorRef; byteOffset: number; f16: boolean; name: string }

/** Where a canonical tensor landed (tests read uploads back through this). */
export interface Placement { buffer: GPUBuffer; byteOffset: number; f16: boolean; length: number }

export class WeightUploader {
  /** bytes of weights on the GPU */
  bytes = 0;
  /** of which GGUF blocks (quantBuffer) */
  quantBytes = 0;
  private jobs: Job[] = [];
  private readonly placed = new Map<string, Placement>();

  constructor(private readonly rt: GpuRuntime, private readonly weights: LoadedWeights) {}

  /**
   * A persistent GPU buffer holding the named canonical tensors one after another, as f16 or f32.
   * In-memory tensors are written now; tensors in files are queued for finish().
   */
  buffer(names: string[], f16: boolean, label = names.join('+')): GPUBuffer {
    const el = f16 ? 2 : 4;
    let off = 0;
    const parts = names.map((name) => {
      const ref = this.weights.refs?.get(name) ?? null;
      const data = ref ? null : tensor(this.weights, name);
      const length = ref ? ref.length : data!.length;
      if ((off * el) % 4) throw new Error(`${label}: tensor '${name}' would start at byte ${off * el}, not a multiple of 4 (f16 parts need even lengths)`);
      const p = { name, ref, data, length, byteOffset: off * el };
      off += length;
      return p;
    });
    const bytes = Math.ceil((off * el) / 4) * 4;
    const buf = this.rt.persistentBuffer(bytes, label);
    this.bytes += bytes;
    for (const p of parts) {
      if (p.ref) this.jobs.push({ buf, ref: p.ref, byteOffset: p.byteOffset, f16, name: p.name });
      else this.rt.write(buf, f16 ? toF16(p.data!) : p.data!, p.byteOffset);
      if (!this.placed.has(p.name)) this.placed.set(p.name, { buffer: buf, byteOffset: p.byteOffset, f16, length: p.length });
    }
    return buf;
  }

  /**
   * The named [rows, K] weights (back to back) as their GGUF blocks, unchanged (Q8_0, Q4_0, Q4_K,
   * Q6_K: read by kernels/matmul-quant.ts and the LM head's kernels/logprob.ts), or null when any is
   * not such a ref (GgufTensorRef: ggmlType, rawBytes) of one type with K a multiple of its block.
   * Written now, straight from the file's bytes.
   */
  quantBuffer(names: string[], K: number, label = names.join('+')): { buf: GPUBuffer; type: QuantMatmulType } | null {
    const refs = names.map((n) => this.weights.refs?.get(n) as (TensorRef & { ggmlType?: number; rawBytes?: () => Uint8Array }) | undefined);
    const t = refs[0]?.ggmlType;
    if (!isQuantMatmulType(t) || K % quantBlockElems(t)) return null;
    if (!refs.every((r) => r?.ggmlType === t && typeof r.rawBytes === 'function')) return null;
    const parts = refs.map((r) => r!.rawBytes!());
    const n = parts.reduce((a, p) => a + p.length, 0);
    const bytes = Math.ceil(n / 4) * 4;
    const all = new Uint8Array(bytes);
    let off = 0;
    for (const p of parts) { all.set(p, off); off += p.length; }
    const buf = this.rt.persistentBuffer(bytes, `${label} (ggml type ${t})`);
    this.rt.write(buf, all);
    this.bytes += bytes;
    this.quantBytes += bytes;
    return { buf, type: t as QuantMatmulType };
  }

  placement(name: string): Placement | undefined { return this.placed.get(name); }

  /** Tensors queued and not yet streamed. */
  get pending(): number { return this.jobs.length; }

  /** Stream the queued tensors from their files, shard by shard in file order. */
  async finish(o: UploadOptions = {}): Promise<void> {
    const jobs = this.jobs.sort((a, b) => (a.ref.file < b.ref.file ? -1 : a.ref.file > b.ref.file ? 1 : a.ref.sourceOrder - b.ref.sourceOrder));
    const files = [...new Set(jobs.map((j) => j.ref.file))];
    const bytesTotal = jobs.reduce((n, j) => n + j.ref.sourceBytes, 0);
    const window = o.windowBytes ?? 64 << 20;
    let bytesDone = 0, inFlight = 0;
    const scratch = {}; // one pair of chunk buffers for the whole model
    for (const j of jobs) {
      const el = j.f16 ? 2 : 4;
      const shard = files.indexOf(j.ref.file) + 1;
      const perElem = j.ref.length ? j.ref.sourceBytes / j.ref.length : 0;
      let done = 0;
      for (const c of j.ref.chunks(j.f16 ? 'f16' : 'f32', o.chunkElems, scratch)) {
        this.rt.write(j.buf, c.data, j.byteOffset + c.offset * el);
        inFlight += c.data.byteLength;
        done += c.data.length;
        o.onProgress?.({ bytesDone: bytesDone + Math.round(done * perElem), bytesTotal, shard, shards: files.length, file: j.ref.file, tensor: j.name });
        if (inFlight >= window) {
          await this.rt.device.queue.onSubmittedWorkDone();
          inFlight = 0;
        }
      }
      bytesDone += j.ref.sourceBytes;
    }
    this.jobs = [];
    await this.rt.device.queue.onSubmittedWorkDone();
  }
}
