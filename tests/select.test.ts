// Budgeted, diversity-aware selection (src/select): the blockwise greedy against the plain
// sequential reference, GPU (all-pairs cosine kernel + row max) against the CPU twins with tiny
// blocks, and selectFile on a small scored file with a deterministic fake encoder.

import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { applyFilter } from '../src/filter/index.js';
import { DiversitySelector, selectGreedyReference, walkOrder } from '../src/select/index.js';
import { selectFile, type SelectEmbedder } from '../src/select/file.js';
import { gpuRuntime, randn, rng } from './helpers/gpu.js';

const tmpDirs: string[] = [];
afterAll(() => { for (const t of tmpDirs) rmSync(t, { recursive: true, force: true }); });

/** N unit vectors in `clusters` tight groups (so τ matters), d dims. */
function clustered(N: number, d: number, clusters: number, seed: number, spread = 0.35): Float32Array[] {
  const r = rng(seed);
  const centres = Array.from({ length: clusters }, () => randn(r, d));
  return Array.from({ length: N }, (_, i) => {
    const v = randn(r, d, spread);
    const c = centres[Math.floor(r() * clusters) % clusters];
    for (let k = 0; k < d; k++) v[k] += c[k];
    const n = Math.hypot(...v);
    return v.map((x) => x / n);
  });
}

async function runSelector(vecs: Float32Array[], order: ArrayLike<number>, tau: number, budget: number, device: 'cpu' | NonNullable<Awaited<ReturnType<typeof gpuRuntime>>>, blockSize: number): Promise<{ kept: number[]; sel: DiversitySelector }> {
  const d = vecs[0].length;
  const sel = new DiversitySelector({ tau, budget, dim: d, device, blockSize });
  const kept: number[] = [];
  try {
    for (let k = 0; k < order.length && !sel.full; k += blockSize) {
      const idx = Array.from(order).slice(k, k + blockSize);
      const flat = new Float32Array(idx.length * d);
      idx.forEach((i, r) => flat.set(vecs[i], r * d));
      const res = await sel.offer(flat, idx.length);
      res.forEach((x, r) => { if (x === 1) kept.push(idx[r]); });
    }
  } finally {
    sel.dispose();
  }
  return { kept, sel };
}

describe('select: the greedy', async () => {
  const rt = await gpuRuntime();
  const N = 90, d = 24;
  const vecs = clustered(N, d, 12, 3);
  const score = Array.from(randn(rng(4), N));
  score[5] = NaN; // unranked: never walked
  const order = walkOrder(score);

  it('walk order: by score descending, ties by index, non-finite left out', () => {
    expect(Array.from(walkOrder([0.5, 2, -Infinity, 2, NaN, 1]))).toEqual([1, 3, 5, 0]);
    expect(order).not.toContain(5);
    expect(order.length).toBe(N - 1);
  });

  it('blockwise (blocks of 7, kept set across several blocks) = the sequential reference, at several τ and budgets', async () => {
    for (const [tau, budget] of [[0.8, 30], [0.5, 50], [0.95, 10], [1, 25], [0.3, 200]] as const) {
      const ref = selectGreedyReference(vecs, order, tau, budget);
      const { kept, sel } = await runSelector(vecs, order, tau, budget, 'cpu', 7);
      expect(kept).toEqual(ref);
      expect(sel.count).toBe(ref.length);
      // τ = 1 turns nothing down short of exact copies: the top of the walk
      if (tau === 1) expect(kept).toEqual(Array.from(order).slice(0, budget));
      if (tau <= 0.8) expect(sel.rejected).toBeGreaterThan(0);
    }
  });

  it('every kept pair is below τ with every other kept pair, and each turned-down one is within τ of one kept before it', async () => {
    const tau = 0.6;
    const { kept } = await runSelector(vecs, order, tau, 40, 'cpu', 16);
    const cos = (a: Float32Array, b: Float32Array) => a.reduce((s, x, k) => s + x * b[k], 0);
    for (let i = 0; i < kept.length; i++) for (let j = 0; j < i; j++) expect(cos(vecs[kept[i]], vecs[kept[j]])).toBeLessThan(tau);
    const pos = new Map(Array.from(order).map((i, k) => [i, k]));
    const lastWalk = pos.get(kept[kept.length - 1])!;
    for (const i of Array.from(order).slice(0, lastWalk)) {
      if (kept.includes(i)) continue;
      expect(kept.filter((j) => pos.get(j)! < pos.get(i)!).some((j) => cos(vecs[i], vecs[j]) >= tau - 1e-6)).toBe(true);
    }
  });

  it.skipIf(!rt)('GPU (cosine kernel + row max, kept blocks on the device) makes the same choices as the CPU twins', async () => {
    for (const [tau, budget, bs] of [[0.8, 30, 7], [0.5, 60, 16], [0.9, 89, 32]] as const) {
      const cpu = await runSelector(vecs, order, tau, budget, 'cpu', bs);
      const gpu = await runSelector(vecs, order, tau, budget, rt!, bs);
      expect(gpu.kept).toEqual(cpu.kept);
      expect(gpu.sel.rejected).toBe(cpu.sel.rejected);
    }
  });

  it('bad options are errors', () => {
    expect(() => new DiversitySelector({ tau: 2, budget: 3, dim: 4, device: 'cpu' })).toThrow(/τ/);
    expect(() => new DiversitySelector({ tau: 0.5, budget: -1, dim: 4, device: 'cpu' })).toThrow(/budget/);
  });
});

describe('select: files', () => {
  // A fake encoder: texts sharing their first word embed to nearly the same vector.
  const d = 16;
  const fake: SelectEmbedder & { calls: number } = {
    dim: d, calls: 0,
    async embed(texts) {
      this.calls++;
      return texts.map((t) => {
        const w = t.split(/\s+/)[0];
        const r = rng([...w].reduce((h, c) => (h * 31 + c.charCodeAt(0)) >>> 0, 7));
        const v = randn(r, d);
        v[0] += t.length * 0.03; // near (cosine > 0.99), not equal, within a group
        const n = Math.hypot(...v);
        return v.map((x) => x / n);
      });
    },
  };
  const dir = mkdtempSync(join(tmpdir(), 'concord-select-test-'));
  tmpDirs.push(dir);
  // gains g (both directions): the walk order (main rule) is by g; topics repeat.
  const rows: [string, number][] = [['cats purr', 0.9], ['cats meows', 0.8], ['dogs bark', 0.7], ['cats sleep', 0.6], ['fish swim', 0.5], ['dogs run', 0.4], ['birds fly', 0.3]];
  const lines = rows.map(([t, g], i) => JSON.stringify({ id: i, instruction: t.split(' ')[0], input: '', output: t, scores: { fwd_logp: -2 + g, y_logp: -2, rev_logp: -2 + g, x_logp: -2, ifd: 1, rifd: 1, cosine: null, cosine_source: null } }));
  lines.splice(3, 0, '{"id": "broken"');
  const input = join(dir, 'scored.jsonl');
  writeFileSync(input, lines.join('\n') + '\n');

  it('keeps the best of each topic until the budget, writes them in input order with select_rank; bad lines reported', async () => {
    const out = join(dir, 'sel.jsonl');
    const logs: string[] = [];
    const s = await selectFile({ input, output: out, filter: { rule: 'main' }, budget: 3, tau: 0.9, on: 'xy', embedder: fake, device: 'cpu', log: (l) => logs.push(l) });
    const got = readFileSync(out, 'utf8').trim().split('\n').map((l) => JSON.parse(l));
    // walk: cats purr (kept), cats meow (same topic: turned down), dogs bark (kept), cats sleep (down), fish swim (kept) → budget met
    expect(got.map((r) => r.id)).toEqual([0, 2, 4]);
    expect(got.map((r) => r.select_rank)).toEqual([0, 1, 2]);
    expect(s).toMatchObject({ records: 8, ranked: 7, selected: 3, walked: 5, rejected_for_diversity: 2, errors: 1, budget: 3 });
    expect(logs.some((l) => l.includes('scored.jsonl:4'))).toBe(true);
    // The kept set agrees with the filter's ranking when τ = 1 (no diversity): the top 3 by score.
    const top = await selectFile({ input, output: out, filter: { rule: 'main' }, keepFraction: 3 / 7, tau: 1, on: 'xy', embedder: fake, device: 'cpu', log: () => {} });
    expect(top.selected).toBe(3);
    const ranked = applyFilter(rows.map(([, g]) => ({ fwd_logp: -2 + g, y_logp: -2, rev_logp: -2 + g, x_logp: -2 })), { rule: 'main', keepFraction: 3 / 7 });
    expect(readFileSync(out, 'utf8').trim().split('\n').map((l) => JSON.parse(l).id)).toEqual(ranked.keep.flatMap((k, i) => (k ? [i] : [])));
  });
});
