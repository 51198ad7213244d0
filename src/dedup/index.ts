// Near-duplicate removal by sentence-embedding cosine, blockwise so that it scales past memory.
//
// Semantics (greedy, input order): a record is dropped when the cosine of its embedding with an
// EARLIER KEPT record is >= threshold; it then names the most similar such record (the earliest on
// ties). The first of a group of near-duplicates survives. Scores are the f32 dot products of the
// unit vectors, compared with the threshold as numbers.
//
// Design:
//  1. Embeddings are streamed in (the caller embeds chunk by chunk) into a VectorStore: f32 rows in
//     memory, or, once N·d·4 bytes would pass the memory budget, in a temporary file of f32 rows.
//  2. The N×N lower triangle is walked in row blocks of `blockSize` records, through the kept-set
//     neighbour search that `concord select` shares (src/neighbours). For row block i:
//       - against every earlier block j < i: C = A_i · A_jᵀ (the all-pairs cosine kernel,
//         normalize = false: the rows are unit vectors already), then a masked running max-pool
//         over C's columns (kernels/pool.ts rowMax, mask = kept) keeps, per row, the best score
//         over the KEPT records of earlier blocks and which record it was. Only 8 bytes per row
//         come back, however many blocks there are.
//       - the diagonal block C_ii comes back whole (blockSize² floats) and the greedy decision is
//         made on the CPU row by row: best of (earlier blocks, kept rows of this block before it).
//       - the block's kept flags go to the mask for the blocks after it.
//     The GPU runs cosineAllPairsGpu + rowMaxGpu; --device cpu runs their CPU twins
//     (cosineAllPairsCpu + rowMaxCpu) over the very same blocks, and the decision code is shared,
//     so both paths make the same choices wherever their scores agree (f32 vs f64 accumulation:
//     ~1e-7; only a score that close to the threshold could differ).
//  3. The caller re-reads the input and writes kept records and dropped ones in input order.
//
// Work: N²/2·d multiply-adds in blocks; GPU memory: two blocks of rows, one blockSize² score block,
// a u32 mask of N entries.

import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import type { GpuRuntime } from '../gpu/runtime.js';
import { CPU_BLOCK, GPU_BLOCK_MAX, gpuBlockSize as neighbourBlockSize, KeptSetSearch } from '../neighbours/index.js';
import { DEFAULT_FIELDS, recordToPair } from '../pipeline/input.js';
import { openRecords, type RecordInput } from '../io/inputs.js';
import { openWriter, type OutFormat } from '../io/record-writer.js';
import type { Embedder } from '../encoder/index.js';

/** Default memory budget for the embeddings held in memory (bytes); beyond it they go to a file. */
export const DEDUP_MEMORY_BUDGET = 512 * 1024 * 1024;
/** Default row block for the CPU path (a 1024² score block is 4 MB). */
export const DEDUP_CPU_BLOCK = CPU_BLOCK;
/** Largest GPU row block (a 4096² score block is 64 MB). */
export const DEDUP_GPU_BLOCK_MAX = GPU_BLOCK_MAX;

/** f32 rows of dimension d, appended in order, in memory up to a budget and in a temporary file beyond. */
export class VectorStore {
  count = 0;
  private mem: Float32Array;
  private fd: number | null = null;
  private dir: string | null = null;
  /** rows appended but not yet written to the file */
  private pending: Float32Array;
  private nPending = 0;

  constructor(readonly d: number, readonly budgetBytes = DEDUP_MEMORY_BUDGET, private readonly tmpRoot = os.tmpdir()) {
    const rows = Math.floor(budgetBytes / (4 * d));
    this.mem = new Float32Array(Math.min(rows, 1024) * d);
    this.pending = new Float32Array(256 * d);
  }

  /** The temporary file, once the rows no longer fit the budget. */
  get file(): string | null {
    return this.dir ? path.join(this.dir, 'vectors.f32') : null;
  }

  get spilled(): boolean {
    return this.fd !== null;
  }

  append(v: Float32Array): void {
    const d = this.d;
    if (v.length !== d) throw new Error(`vector store: vector of ${v.length} values, expected ${d}`);
    if (this.fd === null && (this.count + 1) * d * 4 > this.budgetBytes) this.spill();
    if (this.fd === null) {
      if ((this.count + 1) * d > this.mem.length) {
        const grown = new Float32Array(Math.min(Math.max(this.mem.length * 2, d), Math.floor(this.budgetBytes / (4 * d)) * d));
        grown.set(this.mem.subarray(0, this.count * d));
        this.mem = grown;
      }
      this.mem.set(v, this.count * d);
    } else {
      this.pending.set(v, this.nPending * d);
      if (++this.nPending * d === this.pending.length) this.flush();
    }
    this.count++;
  }

  /** Rows [start, start + n) as one array (a copy when the rows live in the file). */
  read(start: number, n: number): Float32Array {
    if (start < 0 || start + n > this.count) throw new Error(`vector store: rows [${start}, ${start + n}) outside [0, ${this.count})`);
    const d = this.d;
    if (this.fd === null) return this.mem.subarray(start * d, (start + n) * d);
    this.flush();
    const out = new Float32Array(n * d);
    const bytes = new Uint8Array(out.buffer);
    for (let done = 0; done < bytes.length;) {
      const got = fs.readSync(this.fd, bytes, done, bytes.length - done, start * d * 4 + done);
      if (got === 0) throw new Error(`${this.file}: unexpected end of file`);
      done += got;
    }
    return out;
  }

  /** Close and remove the temporary file. */
  dispose(): void {
    if (this.fd !== null) fs.closeSync(this.fd);
    if (this.dir) fs.rmSync(this.dir, { recursive: true, force: true });
    this.fd = null;
    this.dir = null;
    this.mem = new Float32Array(0);
  }

  private spill(): void {
    this.dir = fs.mkdtempSync(path.join(this.tmpRoot, 'concord-dedup-'));
    this.fd = fs.openSync(this.file!, 'w+');
    const rows = this.mem.subarray(0, this.count * this.d);
    fs.writeSync(this.fd, new Uint8Array(rows.buffer, rows.byteOffset, rows.byteLength), 0, rows.byteLength, 0);
    this.mem = new Float32Array(0);
  }

  private flush(): void {
    if (!this.nPending || this.fd === null) return;
    const rows = this.pending.subarray(0, this.nPending * this.d);
    const at = (this.count - this.nPending) * this.d * 4;
    fs.writeSync(this.fd, new Uint8Array(rows.buffer, rows.byteOffset, rows.byteLength), 0, rows.byteLength, at);
    this.nPending = 0;
  }
}

export interface DedupVectorsOptions {
  threshold: number;
  /** A WebGPU runtime (the kernels) or 'cpu' (their twins). */
  device: GpuRuntime | 'cpu';
  /** Records per row block (default: CPU 1024; GPU the largest up to 4096 whose score block fits one storage binding). */
  blockSize?: number;
}

export interface DedupVectorsResult {
  /** 1 = kept, per vector */
  kept: Uint8Array;
  /** the kept vector a dropped one duplicates (-1 for kept ones) */
  dupOf: Int32Array;
  /** its cosine (0 for kept ones) */
  cosine: Float32Array;
  blockSize: number;
  blocks: number;
  /** score blocks computed (lower triangle, diagonal included) */
  blockPairs: number;
}

/** The largest GPU row block up to DEDUP_GPU_BLOCK_MAX whose score block and rows fit one storage binding. */
export const gpuBlockSize = neighbourBlockSize;

/** Greedy near-duplicate decisions over the vectors of a store (see the top of this file). */
export async function dedupVectors(store: VectorStore, opts: DedupVectorsOptions): Promise<DedupVectorsResult> {
  const { threshold } = opts;
  const N = store.count, d = store.d;
  const rt = opts.device === 'cpu' ? null : opts.device;
  const asked = opts.blockSize ?? (rt ? gpuBlockSize(rt, d) : DEDUP_CPU_BLOCK);
  if (!Number.isInteger(asked) || asked < 1) throw new Error(`dedup: block size must be a positive integer (got ${asked})`);
  if (rt && asked > gpuBlockSize(rt, d)) throw new Error(`dedup: a block of ${asked} records needs a ${asked}×${asked} score buffer, above this device's storage binding limit (largest block ${gpuBlockSize(rt, d)})`);
  // Fewer records than a block: one block of exactly that many (no oversized buffers).
  const bs = Math.max(1, Math.min(asked, N));
  const kept = new Uint8Array(N);
  const dupOf = new Int32Array(N).fill(-1);
  const cosine = new Float32Array(N);
  const res: DedupVectorsResult = { kept, dupOf, cosine, blockSize: bs, blocks: Math.ceil(N / bs), blockPairs: 0 };
  if (N === 0) return res;

  // The reference set is every record so far (streamed from the store), flagged by its decision.
  const search = new KeptSetSearch({ device: opts.device, dim: d, blockSize: bs, capacity: N, resident: false, label: 'dedup' });
  try {
    for (let i0 = 0; i0 < N; i0 += bs) {
      const n = Math.min(bs, N - i0);
      res.blockPairs += (await search.step(store.read(i0, n), n, i0, store, threshold, res, i0)) + 1;
      search.addRows(i0, kept.subarray(i0, i0 + n));
    }
  } finally {
    search.dispose();
  }
  return res;
}

// ---- files ---------------------------------------------------------------------------------------

export type DedupOn = 'x' | 'y' | 'xy';

export interface DedupFileOptions {
  input: string;
  output: string;
  /** dropped records, each with concord_dup_of (the kept record's file:line) and concord_cosine */
  dupesOut?: string;
  /** The input's files (default openRecords(input)): the CLI opens it before loading the encoder. */
  inputs?: RecordInput;
  /** The outputs' format (default: by extension). */
  outFormat?: OutFormat;
  threshold: number;
  /** what is embedded: the prompt x, the response y, or x + "\n\n" + y */
  on: DedupOn;
  embedder: Embedder;
  /** where the comparison runs (the embedder has its own device) */
  device: GpuRuntime | 'cpu';
  blockSize?: number;
  /** bytes of embeddings kept in memory before they go to a temporary file */
  memoryBudget?: number;
  /** texts per embed() call (default 1024) */
  chunk?: number;
  /** where the temporary file goes (default the OS temp folder) */
  tmpDir?: string;
  /** messages for the user (bad records) */
  log?: (s: string) => void;
}

export interface DedupSummary {
  records: number;
  /** records with a text (embedded and compared) */
  embedded: number;
  kept: number;
  dropped: number;
  /** records that could not be read as a pair (kept as is) or not parsed at all (left out) */
  errors: number;
  truncated: number;
  /** embeddings went to a temporary file */
  spilled: boolean;
  blockSize: number;
  blocks: number;
  blockPairs: number;
  embedMs: number;
  compareMs: number;
  writeMs: number;
}

function textOf(record: unknown, on: DedupOn): string {
  const p = recordToPair(record, DEFAULT_FIELDS);
  return on === 'x' ? p.x : on === 'y' ? p.y : `${p.x}\n\n${p.y}`;
}

const stamps = (input: RecordInput): string => input.files.map((f) => {
  const st = fs.statSync(f.path);
  return `${st.size}:${st.mtimeMs}`;
}).join(',');

/** Read, embed (in chunks), compare blockwise, write: see the top of this file. */
export async function dedupFile(o: DedupFileOptions): Promise<DedupSummary> {
  const log = o.log ?? ((s: string) => { process.stderr.write(`${s}\n`); });
  const enc = o.embedder;
  const chunk = o.chunk ?? 1024;
  const truncated0 = enc.stats.truncated;
  const store = new VectorStore(enc.dim, o.memoryBudget ?? DEDUP_MEMORY_BUDGET, o.tmpDir);
  const input = o.inputs ?? openRecords(o.input);
  const before = stamps(input);
  try {
    // 1. Read and embed.
    let t0 = performance.now();
    let records = 0, errors = 0;
    let texts: string[] = [];
    const embedPending = async (): Promise<void> => {
      if (!texts.length) return;
      for (const v of await enc.embed(texts)) store.append(v);
      texts = [];
    };
    for await (const r of input) {
      records++;
      if (r.parseError) {
        errors++;
        log(`${r.loc}: ${r.parseError} (left out: not a JSON record)`);
        continue;
      }
      try {
        texts.push(textOf(r.record, o.on));
      } catch (e) {
        errors++;
        log(`${r.loc}: ${(e as Error).message} (kept as is)`);
        continue;
      }
      if (texts.length >= chunk) await embedPending();
    }
    await embedPending();
    const embedMs = performance.now() - t0;

    // 2. Compare.
    t0 = performance.now();
    const res = await dedupVectors(store, { threshold: o.threshold, device: o.device, blockSize: o.blockSize });
    const compareMs = performance.now() - t0;

    // 3. Write, in input order (a second read of the input).
    t0 = performance.now();
    if (stamps(input) !== before) throw new Error(`${o.input}: the file changed while it was being deduplicated`);
    const isTarget = new Uint8Array(store.count);
    for (const j of res.dupOf) if (j >= 0) isTarget[j] = 1;
    const locOf = new Map<number, string>();
    const out = openWriter(o.output, { format: o.outFormat });
    const dupes = o.dupesOut ? openWriter(o.dupesOut, { format: o.outFormat }) : null;
    let v = 0, kept = 0, dropped = 0;
    try {
      for await (const r of input) {
        if (r.parseError) continue;
        let ok = true;
        try { textOf(r.record, o.on); } catch { ok = false; }
        if (!ok) { out.write(JSON.stringify(r.record)); kept++; continue; }
        if (v >= store.count) throw new Error(`${o.input}: more records on the second read than on the first`);
        if (res.kept[v]) {
          if (isTarget[v]) locOf.set(v, r.loc);
          out.write(JSON.stringify(r.record));
          kept++;
        } else {
          dropped++;
          const rec = typeof r.record === 'object' && r.record !== null && !Array.isArray(r.record) ? r.record : { value: r.record };
          dupes?.write(JSON.stringify({ ...rec, concord_dup_of: locOf.get(res.dupOf[v]), concord_cosine: Number(res.cosine[v].toFixed(6)) }));
        }
        v++;
      }
      if (v !== store.count) throw new Error(`${o.input}: fewer records on the second read than on the first`);
      await out.prepare();
      await dupes?.prepare();
      await out.commit();
      await dupes?.commit();
    } catch (e) {
      out.abort();
      dupes?.abort();
      throw e;
    }
    return {
      records, embedded: store.count, kept, dropped, errors, truncated: enc.stats.truncated - truncated0, spilled: store.spilled,
      blockSize: res.blockSize, blocks: res.blocks, blockPairs: res.blockPairs, embedMs, compareMs, writeMs: performance.now() - t0,
    };
  } finally {
    store.dispose();
  }
}
