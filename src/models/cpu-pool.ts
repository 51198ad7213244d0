// Data-parallel CPU scoring over Node worker threads: each worker holds the same weights (shared
// memory, not copies) and scores a share of the batch's sequences, balanced by token count.
// Used only where worker_threads and the compiled worker script exist (the built package); the
// in-thread path computes the identical function (cpu-score.ts).

import type { LoadedWeights } from './types.js';

/** What a worker computes per sequence: log-probs, log-probs + entropies (cpu-score.ts), or the mean hidden state. */
export type CpuJob = 'score' | 'score-entropy' | 'mean';

interface Pending { resolve: (r: Float32Array[]) => void; reject: (e: Error) => void }

export class CpuWorkerPool {
  private workers: import('node:worker_threads').Worker[] = [];
  private pending = new Map<number, Pending>();
  private nextId = 0;

  private constructor() {}

  /** Start `threads` workers, or return null when workers cannot run here (browser, TS sources). */
  static async create(w: LoadedWeights, threads: number): Promise<CpuWorkerPool | null> {
    if (threads < 2 || typeof process === 'undefined' || !process.versions?.node) return null;
    const script = new URL('./cpu-worker.js', import.meta.url);
    const { existsSync } = await import('node:fs');
    const { fileURLToPath } = await import('node:url');
    if (!import.meta.url.endsWith('.js') || !existsSync(fileURLToPath(script))) return null;
    const { Worker } = await import('node:worker_threads');
    // Copy each tensor once into shared memory; every worker then sees the same bytes.
    const shared: [string, Float32Array][] = [];
    const seen = new Map<Float32Array, Float32Array>();
    for (const [name, t] of w.tensors) {
      let s = seen.get(t);
      if (!s) {
        s = new Float32Array(new SharedArrayBuffer(t.byteLength));
        s.set(t);
        seen.set(t, s);
      }
      shared.push([name, s]);
    }
    const pool = new CpuWorkerPool();
    for (let i = 0; i < threads; i++) {
      const worker = new Worker(script);
      worker.on('message', (m: { id: number; results?: Float32Array[]; error?: string }) => {
        const p = pool.pending.get(m.id);
        if (!p) return;
        pool.pending.delete(m.id);
        if (pool.pending.size === 0) for (const wk of pool.workers) wk.unref();
        if (m.error) p.reject(new Error(m.error));
        else p.resolve(m.results!);
      });
      worker.on('error', (e) => { for (const p of pool.pending.values()) p.reject(e); pool.pending.clear(); });
      worker.postMessage({ type: 'init', config: w.config, tensors: shared });
      worker.unref(); // idle workers never hold the process open; call() refs them while work is pending
      pool.workers.push(worker);
    }
    return pool;
  }

  get size(): number { return this.workers.length; }

  private call(worker: number, type: CpuJob, seqs: number[][]): Promise<Float32Array[]> {
    const id = this.nextId++;
    if (this.pending.size === 0) for (const wk of this.workers) wk.ref();
    return new Promise((resolve, reject) => {
      this.pending.set(id, { resolve, reject });
      this.workers[worker].postMessage({ type, id, seqs });
    });
  }

  /** Run `type` over all sequences, split across workers by token count; results in input order. */
  async run(type: CpuJob, seqs: number[][]): Promise<Float32Array[]> {
    const n = this.workers.length;
    const shares: number[][] = Array.from({ length: n }, () => []);
    const load = new Array(n).fill(0);
    // Longest first onto the least-loaded worker (LPT scheduling).
    const order = seqs.map((s, i) => i).sort((a, b) => seqs[b].length - seqs[a].length);
    for (const i of order) {
      const wkr = load.indexOf(Math.min(...load));
      shares[wkr].push(i);
      load[wkr] += seqs[i].length;
    }
    const out: Float32Array[] = new Array(seqs.length);
    await Promise.all(shares.map(async (idx, wkr) => {
      if (!idx.length) return;
      const res = await this.call(wkr, type, idx.map((i) => seqs[i]));
      idx.forEach((i, j) => { out[i] = res[j]; });
    }));
    return out;
  }

  async destroy(): Promise<void> {
    await Promise.all(this.workers.map((w) => w.terminate()));
    this.workers = [];
  }
}
