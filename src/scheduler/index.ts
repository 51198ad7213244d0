// The batch scheduler: turns a stream of items (pairs) into padded batches for the model and the
// results back into a stream in INPUT ORDER.
//
//  1. Windows. Items are pulled from the source a window at a time (default 1024), so memory stays
//     bounded on files of any size. `prepare` turns a window into jobs (token sequences), each
//     tagged with its item and its lane (which model/operation runs it).
//  2. Duplicates. Jobs of a window with the same lane and payload (a response's encoder text scored
//     with k candidate instructions, a pair that appears twice) run once; each copy gets the output.
//  3. Packing. Within a window and a lane, jobs are sorted by length (longest first) and cut into
//     batches of neighbouring lengths, each within the lane's token budget (sequences × padded
//     length ≤ LanguageModel.tokenBudget), choosing the cuts that minimise the padded tokens plus a
//     small per-batch cost (packLane → planBatches). Sorting a whole window keeps sequences of similar length
//     together, so little of each padded batch is padding.
//  4. Prefetch. One batch is in flight (by default) and the next one is prepared while it runs —
//     including tokenising the next window when the current one has no batches left.
//  5. Reorder. A job's output is handed to `onResult`; an item is complete when all its jobs are
//     done, and complete items are yielded strictly in input order (items without jobs, e.g.
//     invalid records, pass straight through in their place).
//
// Padding efficiency = real tokens ÷ computed tokens, computed = Σ over batches of B × padded L.

export interface Job {
  lane: string;
  /** Tokens the job costs: the sequence length. */
  length: number;
  /** What the lane runs (token ids, a text...). */
  payload: unknown;
  /** Index of the item within its window. */
  item: number;
  /** Opaque to the scheduler: which result of the item this is. */
  tag: number;
}

export interface BatchInfo {
  lane: string;
  /** Running batch number over the whole run (all lanes). */
  index: number;
  size: number;
  paddedLen: number;
  realTokens: number;
}

export interface Lane {
  /** Most tokens (sequences × padded length) a batch may hold. */
  budget: number;
  /** Most sequences per batch (default unlimited). */
  maxBatch?: number;
  /** Per-batch cost in token-equivalents for packing (default defaultOverhead(budget)). */
  batchOverhead?: number;
  /** Counted in the padding statistics (true for token sequences; false for e.g. texts). */
  padded?: boolean;
  run(payloads: unknown[], info: BatchInfo): Promise<unknown[]>;
}

/** A batch the scheduler formed: which jobs, padded to what length. */
export interface BatchPlan {
  lane: string;
  jobs: Job[];
  paddedLen: number;
  realTokens: number;
}

/** What a batch of `size` sequences padded to `paddedLen` tokens costs (any unit; lower is better). */
export type BatchCost = (size: number, paddedLen: number) => number;

/**
 * The one batch planner (LM scoring and the sentence encoder both use it): cut `lens`, sorted by
 * length in either direction, into contiguous batches — each padded to its longest member, with
 * at most `maxBatch` sequences and (sequences × padded length) ≤ `maxTokens` (a longer sequence
 * goes alone) — minimising Σ cost(size, paddedLen). Exact dynamic programme over the cut points,
 * O(n · batch size); on ties the longer last batch wins (fewer batches). Returns each batch's end.
 */
export function planBatches(lens: readonly number[], o: { maxBatch?: number; maxTokens: number; cost: BatchCost }): number[] {
  const n = lens.length, maxBatch = o.maxBatch ?? Infinity;
  for (let k = 1, dir = 0; k < n; k++) {
    const d = Math.sign(lens[k] - lens[k - 1]);
    if (d && dir && d !== dir) throw new Error('planBatches: lengths must be sorted');
    if (d) dir = d;
  }
  const cost = new Float64Array(n + 1).fill(Infinity);
  const from = new Int32Array(n + 1);
  cost[0] = 0;
  for (let j = 1; j <= n; j++) {
    // Batch = lens[i .. j-1]; going left it grows, and with it (if ascending) nothing or (if
    // descending) the padded length.
    for (let i = j - 1; i >= 0; i--) {
      const size = j - i, L = Math.max(lens[i], lens[j - 1]);
      if (size > maxBatch || (size > 1 && size * L > o.maxTokens)) break;
      const c = cost[i] + o.cost(size, L);
      if (c <= cost[j]) { cost[j] = c; from[j] = i; }
    }
  }
  const ends: number[] = [];
  for (let j = n; j > 0; j = from[j]) ends.push(j);
  return ends.reverse();
}

/**
 * Pack one lane's jobs. Jobs are sorted longest first and cut by planBatches, the cost of a batch
 * being its computed tokens (B × padded L) plus `overhead` token-equivalents: taking as many jobs
 * as fit would pad short jobs up to long ones, while a batch per length would pay the per-call
 * cost each time.
 */
export function packLane(lane: string, jobs: Job[], budget: number, maxBatch = Infinity, overhead = defaultOverhead(budget)): BatchPlan[] {
  const sorted = jobs.slice().sort((a, b) => b.length - a.length || a.item - b.item || a.tag - b.tag);
  const ends = planBatches(sorted.map((j) => j.length), { maxBatch, maxTokens: budget, cost: (B, L) => B * L + overhead });
  return ends.map((end, k) => {
    const part = sorted.slice(k ? ends[k - 1] : 0, end);
    return { lane, jobs: part, paddedLen: part[0].length, realTokens: part.reduce((s, x) => s + x.length, 0) };
  });
}

/**
 * Per-batch cost in token-equivalents: an extra batch must save this much padding. Unbounded lanes
 * (e.g. texts for a sentence encoder) get 1, so ties go to fewer, fuller batches.
 */
export function defaultOverhead(budget: number): number {
  return Number.isFinite(budget) ? Math.max(8, Math.round(budget / 64)) : 1;
}

/** Pack a window's jobs lane by lane (lanes in the order given). */
export function packJobs(jobs: Job[], lanes: Record<string, Lane>): BatchPlan[] {
  const byLane = new Map<string, Job[]>();
  for (const j of jobs) {
    if (!lanes[j.lane]) throw new Error(`scheduler: job for unknown lane '${j.lane}'`);
    let l = byLane.get(j.lane);
    if (!l) byLane.set(j.lane, (l = []));
    l.push(j);
  }
  const out: BatchPlan[] = [];
  for (const name of Object.keys(lanes)) {
    const l = byLane.get(name);
    if (l) out.push(...packLane(name, l, lanes[name].budget, lanes[name].maxBatch, lanes[name].batchOverhead));
  }
  return out;
}

export interface LaneStats {
  batches: number;
  sequences: number;
  realTokens: number;
  /** Σ B × padded L */
  computedTokens: number;
}

export interface SchedulerStats {
  lanes: Record<string, LaneStats>;
  /** over padded lanes */
  realTokens: number;
  computedTokens: number;
  /** realTokens ÷ computedTokens (1 when nothing ran) */
  paddingEfficiency: number;
  batches: number;
  windows: number;
  /** Items and jobs prepared so far, and jobs finished (for progress estimates). */
  items: number;
  jobs: number;
  jobsDone: number;
  /** Jobs not run because another job of the same window had the same lane and payload (they share its output). */
  duplicates: number;
}

export function paddingEfficiency(batches: { realTokens: number; paddedLen: number; jobs: unknown[] }[]): number {
  let real = 0, computed = 0;
  for (const b of batches) {
    real += b.realTokens;
    computed += b.jobs.length * b.paddedLen;
  }
  return computed === 0 ? 1 : real / computed;
}

export interface SchedulerOptions<In, Item> {
  lanes: Record<string, Lane>;
  /** Items per window (default 1024). */
  windowSize?: number;
  /** Batches running at once (default 1: one in flight while the next is prepared). */
  inFlight?: number;
  /** Turn a window of inputs into items and jobs. `first` is the input index of inputs[0]. */
  prepare(inputs: In[], first: number): { items: Item[]; jobs: Job[] };
  /** A job's output, in the item's window. */
  onResult(item: Item, job: Job, output: unknown): void;
  /** Called after each batch's results are handed over (progress reporting). */
  onBatchDone?(stats: SchedulerStats): void;
  /**
   * Called as soon as an item's last job is done, out of input order (checkpointing work that
   * cannot be yielded yet); items without jobs are not reported here. run() still yields in order.
   */
  onItemDone?(item: Item): void;
}

interface WindowState<Item> {
  items: Item[];
  pending: Int32Array;
  emitted: number;
  /** The jobs that share a run job's output (keyed by the run job). */
  copies: Map<Job, Job[]>;
}

/** What makes two jobs the same computation: the lane and a payload of token ids or a text; null for other payloads. */
function jobKey(j: Job): string | null {
  const p = j.payload;
  if (typeof p === 'string') return `${j.lane}\u0000s${p}`;
  if (Array.isArray(p) && p.every((x) => typeof x === 'number')) return `${j.lane}\u0000a${p.join(',')}`;
  return null;
}

/**
 * The jobs to run: the first of each group of jobs with the same key (the same sequence or text on
 * the same lane — e.g. one response's encoder text, scored with k candidate instructions), the
 * others recorded as its copies. Lanes are deterministic functions of their payloads, so a copy's
 * output is the one its run job gets.
 */
function dedupe(jobs: Job[], copies: Map<Job, Job[]>): Job[] {
  const first = new Map<string, Job>();
  const run: Job[] = [];
  for (const j of jobs) {
    const k = jobKey(j);
    const f = k === null ? undefined : first.get(k);
    if (f) {
      let c = copies.get(f);
      if (!c) copies.set(f, (c = []));
      c.push(j);
    } else {
      if (k !== null) first.set(k, j);
      run.push(j);
    }
  }
  return run;
}

export class Scheduler<In, Item> {
  readonly stats: SchedulerStats = { lanes: {}, realTokens: 0, computedTokens: 0, paddingEfficiency: 1, batches: 0, windows: 0, items: 0, jobs: 0, jobsDone: 0, duplicates: 0 };

  constructor(private readonly opts: SchedulerOptions<In, Item>) {
    for (const name of Object.keys(opts.lanes)) this.stats.lanes[name] = { batches: 0, sequences: 0, realTokens: 0, computedTokens: 0 };
  }

  /** Yields every input's item, in input order, once all its jobs are done. */
  async *run(source: Iterable<In> | AsyncIterable<In>): AsyncGenerator<Item> {
    const { lanes, onResult } = this.opts;
    const windowSize = Math.max(1, this.opts.windowSize ?? 1024);
    const maxInFlight = Math.max(1, this.opts.inFlight ?? 1);
    const it: Iterator<In> | AsyncIterator<In> =
      Symbol.asyncIterator in source ? (source as AsyncIterable<In>)[Symbol.asyncIterator]() : (source as Iterable<In>)[Symbol.iterator]();
    let exhausted = false;
    let nextIndex = 0;
    const windows: WindowState<Item>[] = [];
    const queue: { batch: BatchPlan; window: WindowState<Item> }[] = [];

    const pullWindow = async (): Promise<boolean> => {
      if (exhausted) return false;
      const inputs: In[] = [];
      while (inputs.length < windowSize) {
        const r = await it.next();
        if (r.done) { exhausted = true; break; }
        inputs.push(r.value);
      }
      if (inputs.length === 0) return false;
      const { items, jobs } = this.opts.prepare(inputs, nextIndex);
      nextIndex += inputs.length;
      const w: WindowState<Item> = { items, pending: new Int32Array(items.length), emitted: 0, copies: new Map() };
      for (const j of jobs) w.pending[j.item]++;
      windows.push(w);
      this.stats.windows++;
      this.stats.items += items.length;
      this.stats.jobs += jobs.length;
      const run = dedupe(jobs, w.copies);
      this.stats.duplicates += jobs.length - run.length;
      for (const batch of packJobs(run, lanes)) queue.push({ batch, window: w });
      return true;
    };

    // The next batch to run, pulling (and preparing) the next window when the queue is empty.
    // 'empty' means a window without jobs (all its items invalid): the caller drains it, so a long
    // run of invalid records never piles up in memory.
    const nextBatch = async (): Promise<{ batch: BatchPlan; window: WindowState<Item> } | 'empty' | null> => {
      if (queue.length > 0) return queue.shift()!;
      if (!(await pullWindow())) return null;
      return queue.length > 0 ? queue.shift()! : 'empty';
    };

    const inflight: { batch: BatchPlan; window: WindowState<Item>; out: Promise<unknown[]> }[] = [];
    const launch = (q: { batch: BatchPlan; window: WindowState<Item> }) => {
      const { batch } = q;
      const info: BatchInfo = { lane: batch.lane, index: this.stats.batches++, size: batch.jobs.length, paddedLen: batch.paddedLen, realTokens: batch.realTokens };
      const out = lanes[batch.lane].run(batch.jobs.map((j) => j.payload), info);
      out.catch(() => {}); // awaited below; keep Node from flagging it as unhandled meanwhile
      inflight.push({ ...q, out });
    };

    function* drain(): Generator<Item> {
      while (windows.length > 0) {
        const w = windows[0];
        while (w.emitted < w.items.length && w.pending[w.emitted] === 0) yield w.items[w.emitted++];
        if (w.emitted < w.items.length) return;
        windows.shift();
      }
    }

    let next = await nextBatch();
    for (;;) {
      while (next !== null && inflight.length < maxInFlight) {
        if (next === 'empty') yield* drain();
        else launch(next);
        next = await nextBatch(); // prepared while the launched batch computes
      }
      yield* drain();
      const done = inflight.shift();
      if (!done) return; // nothing running, nothing left (next === null here)
      const outputs = await done.out;
      const { batch, window } = done;
      if (outputs.length !== batch.jobs.length) throw new Error(`scheduler: lane '${batch.lane}' returned ${outputs.length} results for ${batch.jobs.length} jobs`);
      const ls = this.stats.lanes[batch.lane];
      ls.batches++;
      ls.sequences += batch.jobs.length;
      ls.realTokens += batch.realTokens;
      ls.computedTokens += batch.jobs.length * batch.paddedLen;
      if (lanes[batch.lane].padded !== false) {
        this.stats.realTokens += batch.realTokens;
        this.stats.computedTokens += batch.jobs.length * batch.paddedLen;
        this.stats.paddingEfficiency = this.stats.realTokens / this.stats.computedTokens;
      }
      let handed = 0;
      batch.jobs.forEach((run, k) => {
        for (const j of [run, ...(window.copies.get(run) ?? [])]) {
          onResult(window.items[j.item], j, outputs[k]);
          handed++;
          if (--window.pending[j.item] === 0) this.opts.onItemDone?.(window.items[j.item]);
        }
      });
      this.stats.jobsDone += handed;
      this.opts.onBatchDone?.(this.stats);
      yield* drain();
    }
  }
}
