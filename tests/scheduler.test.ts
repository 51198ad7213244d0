// The batch scheduler: packing under the token budget, padding efficiency, prefetch (batch n+1 is
// prepared while batch n runs), input order whatever the batching, bounded windows.

import { describe, expect, test } from 'vitest';
import { Scheduler, packLane, paddingEfficiency, type Job, type Lane } from '../src/scheduler/index.js';

const job = (length: number, item: number, lane = 'F'): Job => ({ lane, length, payload: length, item, tag: 0 });

/** Deterministic PRNG for the tests. */
function rng(seed: number) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = Math.imul(a ^ (a >>> 15), a | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

describe('packing', () => {
  test('longest first under the budget; padding efficiency by hand', () => {
    const batches = packLane('F', [job(3, 0), job(10, 1), job(8, 2), job(9, 3)], 30);
    expect(batches.map((b) => b.jobs.map((j) => j.length))).toEqual([[10, 9, 8], [3]]);
    expect(batches.map((b) => b.paddedLen)).toEqual([10, 3]);
    // real 30 tokens; computed 3×10 + 1×3 = 33
    expect(paddingEfficiency(batches)).toBeCloseTo(30 / 33, 12);
  });

  test('cuts between length groups rather than padding short sequences up to long ones', () => {
    const lens = [100, 99, 98, 50, 49, 48];
    const batches = packLane('F', lens.map((l, i) => job(l, i)), 600, Infinity, 16);
    // Greedy filling would take all six (6 × 100 = 600 computed for 444 real); two batches compute 450.
    expect(batches.map((b) => b.jobs.map((j) => j.length))).toEqual([[100, 99, 98], [50, 49, 48]]);
    expect(paddingEfficiency(batches)).toBeCloseTo(444 / 450, 12);
    // With a large per-batch cost one batch is cheaper again.
    expect(packLane('F', lens.map((l, i) => job(l, i)), 600, Infinity, 1000)).toHaveLength(1);
  });

  test('an unbounded lane fills batches up to maxBatch', () => {
    const batches = packLane('E', Array.from({ length: 10 }, (_, i) => job(1, i)), Infinity, 4);
    expect(batches.map((b) => b.jobs.length).sort()).toEqual([2, 4, 4]);
  });

  test('every batch fits its budget; a job longer than the budget goes alone', () => {
    const r = rng(7);
    const jobs = Array.from({ length: 500 }, (_, i) => job(1 + Math.floor(r() * 300), i));
    jobs.push(job(5000, 500));
    const batches = packLane('F', jobs, 1024, 16);
    expect(batches.reduce((s, b) => s + b.jobs.length, 0)).toBe(jobs.length);
    for (const b of batches) {
      expect(b.paddedLen).toBe(Math.max(...b.jobs.map((j) => j.length)));
      if (b.jobs.length > 1) expect(b.jobs.length * b.paddedLen).toBeLessThanOrEqual(1024);
      expect(b.jobs.length).toBeLessThanOrEqual(16);
      expect(b.realTokens).toBe(b.jobs.reduce((s, j) => s + j.length, 0));
    }
    expect(batches.filter((b) => b.paddedLen === 5000)).toHaveLength(1);
  });

  test('sorting a window keeps padding ≥ 0.95 on realistic lengths', () => {
    // Instruction data lengths: log-normal-ish, 20..1000 tokens.
    const r = rng(11);
    const lengths = Array.from({ length: 2048 }, () => Math.round(Math.exp(3 + 2.9 * (r() + r() + r()) / 3)));
    const batches = packLane('F', lengths.map((l, i) => job(Math.min(l, 1024), i)), 8192);
    expect(paddingEfficiency(batches)).toBeGreaterThanOrEqual(0.95);
  });
});

interface Item { index: number; length: number; out: number[]; jobs: number }

function makeItems(lengths: number[], first: number): { items: Item[]; jobs: Job[] } {
  const items: Item[] = [];
  const jobs: Job[] = [];
  lengths.forEach((length, k) => {
    const item: Item = { index: first + k, length, out: [], jobs: length < 0 ? 0 : 2 };
    items.push(item);
    if (length < 0) return; // an "invalid" item: no jobs, passes straight through
    jobs.push({ lane: 'F', length, payload: [first + k, 0], item: k, tag: 0 });
    jobs.push({ lane: 'F', length: length + 3, payload: [first + k, 1], item: k, tag: 1 });
  });
  return { items, jobs };
}

describe('scheduler', () => {
  test('yields every item once, in input order, with shuffled lengths, async lanes and job-less items', async () => {
    const r = rng(3);
    const n = 203;
    const lengths = Array.from({ length: n }, (_, i) => (i % 17 === 5 ? -1 : 1 + Math.floor(r() * 120)));
    const lane: Lane = {
      budget: 256,
      async run(payloads) {
        await new Promise((res) => setTimeout(res, Math.floor(r() * 3)));
        return (payloads as [number, number][]).map(([i, t]) => i * 10 + t);
      },
    };
    const sched = new Scheduler<number, Item>({
      lanes: { F: lane },
      windowSize: 16,
      prepare: (inputs, first) => makeItems(inputs, first),
      onResult: (item, j, out) => { item.out[j.tag] = out as number; },
    });
    const got: Item[] = [];
    for await (const it of sched.run(lengths)) got.push(it);
    expect(got.map((g) => g.index)).toEqual(lengths.map((_, i) => i));
    for (const g of got) {
      if (g.jobs === 0) expect(g.out).toEqual([]);
      else expect(g.out).toEqual([g.index * 10, g.index * 10 + 1]);
    }
    const st = sched.stats;
    expect(st.windows).toBe(Math.ceil(n / 16));
    const valid = lengths.filter((l) => l >= 0);
    expect(st.realTokens).toBe(valid.reduce((s, l) => s + 2 * l + 3, 0));
    expect(st.lanes.F.sequences).toBe(2 * valid.length);
    expect(st.paddingEfficiency).toBeCloseTo(st.realTokens / st.computedTokens, 12);
  });

  test('an async source, an all-invalid window and an empty source', async () => {
    async function* src() { for (const l of [-1, -1, -1, 5, -1, 7]) yield l; }
    const lane: Lane = { budget: 100, run: async (p) => p.map(() => 0) };
    const mk = () => new Scheduler<number, Item>({ lanes: { F: lane }, windowSize: 3, prepare: makeItems, onResult: () => {} });
    const got: number[] = [];
    for await (const it of mk().run(src())) got.push(it.index);
    expect(got).toEqual([0, 1, 2, 3, 4, 5]);
    const none: Item[] = [];
    for await (const it of mk().run([])) none.push(it);
    expect(none).toEqual([]);
  });

  test('prepares batch n+1 while batch n runs; memory bounded to about two windows', async () => {
    const events: string[] = [];
    let prepared = 0, emitted = 0, maxLive = 0;
    let release: (() => void) | null = null;
    const lane: Lane = {
      budget: 1 << 20,
      async run(payloads, info) {
        events.push(`run ${info.index}`);
        await new Promise<void>((res) => { release = res; setTimeout(() => release?.(), 5); });
        events.push(`done ${info.index}`);
        return payloads.map(() => 0);
      },
    };
    const sched = new Scheduler<number, Item>({
      lanes: { F: lane },
      windowSize: 4,
      prepare: (inputs, first) => {
        events.push(`prepare ${first / 4}`);
        prepared += inputs.length;
        maxLive = Math.max(maxLive, prepared - emitted);
        return makeItems(inputs, first);
      },
      onResult: () => {},
    });
    const lengths = Array.from({ length: 40 }, (_, i) => 5 + (i % 7));
    for await (const _ of sched.run(lengths)) emitted++;
    expect(emitted).toBe(40);
    // One window = one batch here (the budget is large): window w+1 is prepared after batch w
    // starts and before it finishes.
    for (let w = 0; w + 1 < 10; w++) {
      const start = events.indexOf(`run ${w}`), prep = events.indexOf(`prepare ${w + 1}`), done = events.indexOf(`done ${w}`);
      expect(start).toBeLessThan(prep);
      expect(prep).toBeLessThan(done);
    }
    expect(maxLive).toBeLessThanOrEqual(2 * 4);
  });

  test('jobs of a window with the same lane and payload run once; every copy gets the output', async () => {
    // Items: a response (text) with k = 3 candidates, like synthesize's pairs: the response's text
    // and token ids repeat, the candidates' do not, and two candidates of item 1 are equal.
    const ran: unknown[] = [];
    const lane: Lane = { budget: 1 << 20, run: async (p) => { ran.push(...p); return p.map((x) => `out:${JSON.stringify(x)}`); } };
    const cands = [['a', 'b', 'c'], ['d', 'd', 'e']];
    type It = { index: number; got: string[] };
    const sched = new Scheduler<number, It>({
      lanes: { F: lane, E: { ...lane, budget: Infinity } },
      windowSize: 8,
      prepare: (inputs, first) => {
        const items: It[] = [], jobs: Job[] = [];
        inputs.forEach((n, k) => {
          const [r, c] = [Math.floor(n / 3), cands[Math.floor(n / 3)][n % 3]];
          items.push({ index: first + k, got: [] });
          jobs.push({ lane: 'F', length: 3, payload: [r, 7, c.charCodeAt(0)], item: k, tag: 0 });
          jobs.push({ lane: 'F', length: 2, payload: [r, 7], item: k, tag: 1 });
          jobs.push({ lane: 'E', length: 1, payload: `response ${r}`, item: k, tag: 2 });
          jobs.push({ lane: 'E', length: 1, payload: c, item: k, tag: 3 });
          jobs.push({ lane: 'E', length: 1, payload: [r, 7], item: k, tag: 4 }); // same ids, another lane: run
        });
        return { items, jobs };
      },
      onResult: (item, j, out) => { item.got[j.tag] = out as string; },
    });
    const got: It[] = [];
    for await (const it of sched.run([0, 1, 2, 3, 4, 5])) got.push(it);
    expect(got.map((g) => g.got)).toEqual([0, 1, 2, 3, 4, 5].map((n) => {
      const [r, c] = [Math.floor(n / 3), cands[Math.floor(n / 3)][n % 3]];
      return [`out:[${r},7,${c.charCodeAt(0)}]`, `out:[${r},7]`, `out:"response ${r}"`, `out:"${c}"`, `out:[${r},7]`];
    }));
    // Run: 5 distinct candidate sequences, 2 response sequences, 2 response texts, 5 candidate texts, 2 E-lane id lists.
    expect(ran).toHaveLength(5 + 2 + 2 + 5 + 2);
    expect(sched.stats.jobs).toBe(30);
    expect(sched.stats.duplicates).toBe(30 - 16);
    expect(sched.stats.jobsDone).toBe(30);
  });

  test('a lane error surfaces from run()', async () => {
    const lane: Lane = { budget: 100, run: async () => { throw new Error('device lost'); } };
    const sched = new Scheduler<number, Item>({ lanes: { F: lane }, windowSize: 2, prepare: makeItems, onResult: () => {} });
    await expect((async () => { for await (const _ of sched.run([1, 2, 3])) { /* */ } })()).rejects.toThrow('device lost');
  });
});
