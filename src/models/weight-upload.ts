// Weights to the GPU: each GPU buffer holds one or more canonical tensors back to back (f16 or f32).
// Tensors already in memory (llama2.c, the browser) are written at once, as before. Tensors still in
// their checkpoint files (LoadedWeights.refs: Hugging Face folders) are queued and streamed by
// finish(): shard by shard in file order, each tensor in chunks of at most 2 Mi elements converted
// straight to the storage type (bf16 → f16 through a table, never an f32 copy where the GPU stores
// f16), written with queue.writeBuffer at offsets, waiting for the queue every 64 MiB so the
// implementation's staging memory is recycled. Host memory above the GPU's own buffers therefore
// stays within a fixed bound (two chunk buffers + the 64 MiB window) whatever the model's size; only
// GPT-2's transposed Conv1D weights are read whole (as f32, plus their transpose). GGUF tensors
// take the same road: those dequantized at upload are read and dequantized a chunk of whole blocks
// at a time (src/formats/gguf-model.ts GgufTensorRef.chunks), and those the GPU keeps as blocks
// (quantBuffer) are copied from the file through one 8 MiB staging buffer. No file-system imports
// here: the refs read their files themselves (src/formats/safetensors.ts, gguf-model.ts).

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
  /** Bytes of the staging buffer raw blocks go through (default 8 MiB; rounded down to a multiple of 4). */
  rawStagingBytes?: number;
}

/** A tensor whose stored blocks are copied to the GPU as they are (GgufTensorRef). */
type RawRef = TensorRef & { ggmlType: number; rawLength: number; readRaw(start: number, out: Uint8Array): Uint8Array };

/** One tensor converted into `buf` at byteOffset, or (raw) tensors' blocks back to back from byte 0. */
interface Job { buf: GPUBuffer; ref: TensorRef; byteOffset: number; f16: boolean; name: string; raw?: RawRef[] }

/** Where a canonical tensor landed (tests read uploads back through this); ggmlType: kept as those blocks. */
export interface Placement { buffer: GPUBuffer; byteOffset: number; f16: boolean; length: number; ggmlType?: number }

/** Bytes of the staging buffer that raw blocks are copied through (a multiple of 4). */
const RAW_STAGING_BYTES = 8 << 20;

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
   * not such a ref (GgufTensorRef: ggmlType, rawLength, readRaw) of one type with K a multiple of its
   * block. Queued: finish() copies the file's bytes through the staging buffer.
   */
  quantBuffer(names: string[], K: number, label = names.join('+')): { buf: GPUBuffer; type: QuantMatmulType } | null {
    const refs = names.map((n) => this.weights.refs?.get(n) as Partial<RawRef> | undefined);
    const t = refs[0]?.ggmlType;
    if (!isQuantMatmulType(t) || K % quantBlockElems(t)) return null;
    if (!refs.every((r) => r?.ggmlType === t && typeof r.readRaw === 'function' && typeof r.rawLength === 'number')) return null;
    const raw = refs as RawRef[];
    const n = raw.reduce((a, r) => a + r.rawLength, 0);
    const bytes = Math.ceil(n / 4) * 4;
    const buf = this.rt.persistentBuffer(bytes, `${label} (ggml type ${t})`);
    this.bytes += bytes;
    this.jobs.push({ buf, ref: raw[0], byteOffset: 0, f16: false, name: label, raw });
    let off = 0;
    raw.forEach((r, i) => {
      if (!this.placed.has(names[i])) this.placed.set(names[i], { buffer: buf, byteOffset: off, f16: false, length: r.length, ggmlType: t });
      off += r.rawLength;
    });
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
    const bytesTotal = jobs.reduce((n, j) => n + (j.raw ?? [j.ref]).reduce((m, r) => m + r.sourceBytes, 0), 0);
    const window = o.windowBytes ?? 64 << 20;
    let bytesDone = 0, inFlight = 0;
    const scratch = {}; // one pair of chunk buffers for the whole model
    const rawMax = jobs.reduce((m, j) => (j.raw ? Math.max(m, j.buf.size) : m), 0);
    const staging = new Uint8Array(Math.min(Math.max(4, (o.rawStagingBytes ?? RAW_STAGING_BYTES) & ~3), rawMax)); // raw blocks, for the whole model (sizes are multiples of 4)
    const wrote = async (n: number) => {
      inFlight += n;
      if (inFlight >= window) {
        await this.rt.device.queue.onSubmittedWorkDone();
        inFlight = 0;
      }
    };
    for (const j of jobs) {
      if (j.raw) {
        // The refs' blocks back to back from byte 0, through the staging buffer: every write but the
        // last is whole staging buffers, so offsets stay multiples of 4; the tail is zero-padded.
        const shard = files.indexOf(j.ref.file) + 1;
        const st = staging, cap = st.length;
        let dst = 0, fill = 0;
        const flush = async (last: boolean) => {
          const n = last ? Math.ceil(fill / 4) * 4 : fill;
          st.fill(0, fill, n);
          this.rt.write(j.buf, st.subarray(0, n), dst);
          dst += n;
          fill = 0;
          await wrote(n);
        };
        for (const r of j.raw) {
          for (let pos = 0; pos < r.rawLength;) {
            const n = Math.min(r.rawLength - pos, cap - fill);
            r.readRaw(pos, st.subarray(fill, fill + n));
            pos += n;
            fill += n;
            if (fill === cap) await flush(false);
            o.onProgress?.({ bytesDone: bytesDone + pos, bytesTotal, shard, shards: files.length, file: r.file, tensor: j.name });
          }
          bytesDone += r.sourceBytes;
        }
        if (fill) await flush(true);
        continue;
      }
      const el = j.f16 ? 2 : 4;
      const shard = files.indexOf(j.ref.file) + 1;
      const perElem = j.ref.length ? j.ref.sourceBytes / j.ref.length : 0;
      let done = 0;
      for (const c of j.ref.chunks(j.f16 ? 'f16' : 'f32', o.chunkElems, scratch)) {
        this.rt.write(j.buf, c.data, j.byteOffset + c.offset * el);
        done += c.data.length;
        o.onProgress?.({ bytesDone: bytesDone + Math.round(done * perElem), bytesTotal, shard, shards: files.length, file: j.ref.file, tensor: j.name });
        await wrote(c.data.byteLength);
      }
      bytesDone += j.ref.sourceBytes;
    }
    this.jobs = [];
    await this.rt.device.queue.onSubmittedWorkDone();
  }
}
