// Budgeted, diversity-aware selection (src/select): the blockwise greedy against the plain
// sequential reference, GPU (all-pairs cosine kernel + row max) against the CPU twins with tiny
// blocks, and selectFile on a small scored file with a deterministic fake encoder.

import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it, vi } from 'vitest';
import { applyFilter } from '../src/filter/index.js';
import { DiversitySelector, selectGreedyReference, walkOrder } from '../src/select/index.js';
import { selectFile, type SelectEmbedder } from '../src/select/file.js';
import { facilityLocation, facilityLocationReference } from '../src/select/facility.js';
import { facilityGainCpu, facilityGainGpu } from '../kernels/facility.js';
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

describe('select: facility location', async () => {
  const rt = await gpuRuntime();
  const unit = (v: Float32Array) => { const n = Math.hypot(...v); return v.map((x) => x / n); };
  /** Clustered vectors plus exact copies and near-copies (a 1e-6 nudge) of some of them: near-ties for the gains. */
  function withNearDuplicates(N: number, d: number, seed: number): Float32Array[] {
    const base = clustered(N, d, 8, seed);
    const r = rng(seed + 1);
    const out = base.slice();
    for (let k = 0; k < N / 6; k++) {
      const src = base[Math.floor(r() * N) % N];
      out.splice(Math.floor(r() * out.length), 0, Float32Array.from(src));
      const near = Float32Array.from(src);
      near[k % d] += 1e-6;
      out.splice(Math.floor(r() * out.length), 0, unit(near));
    }
    return out;
  }
  const flat = (vs: Float32Array[]) => { const d = vs[0].length, E = new Float32Array(vs.length * d); vs.forEach((v, i) => E.set(v, i * d)); return E; };
  const vecs = withNearDuplicates(72, 20, 11);
  const N = vecs.length, d = 20;

  it('lazy greedy in blocks (CPU, f64) = the brute-force f64 greedy: the same elements, the same gains, at several budgets and block sizes', async () => {
    for (const [budget, bs, batch] of [[1, 7, 1], [12, 7, 4], [40, 16, 3], [N + 5, 1024, 4]] as const) {
      const ref = facilityLocationReference(vecs, budget);
      const got = await facilityLocation(flat(vecs), N, { budget, dim: d, device: 'cpu', blockSize: bs, batch });
      expect(got.chosen).toEqual(ref.chosen);
      expect(got.gains).toEqual(ref.gains);
      expect(new Set(got.chosen).size).toBe(got.chosen.length);
      // lazy: after the first step far fewer than n gains per step
      if (budget === 40) expect(got.evaluated).toBeLessThan(N + 39 * N / 2);
    }
  });

  it('the objective: gains never rise, sum to f(S) = Σ_i max_{j∈S} max(0, cos); a copy of a chosen vector gains nothing', async () => {
    const got = await facilityLocation(flat(vecs), N, { budget: N, dim: d, device: 'cpu', blockSize: 32 });
    for (let k = 1; k < got.gains.length; k++) expect(got.gains[k]).toBeLessThanOrEqual(got.gains[k - 1]);
    expect(got.gains.reduce((a, b) => a + b, 0)).toBeCloseTo(got.value, 9);
    const S = got.chosen.slice(0, 10);
    const cos = (a: Float32Array, b: Float32Array) => a.reduce((s, x, k) => s + x * b[k], 0);
    const f = vecs.reduce((s, v) => s + Math.max(0, ...S.map((j) => cos(v, vecs[j]))), 0);
    expect(got.gains.slice(0, 10).reduce((a, b) => a + b, 0)).toBeCloseTo(f, 9);
    expect(got.chosen.length).toBe(N); // the budget above n: every candidate, zero gains last
    expect(got.gains[N - 1]).toBe(0);
  });

  it('exact ties (duplicated axis vectors) go to the smaller index', async () => {
    const dd = 6;
    const vs = [3, 1, 4, 1, 5, 3, 0].map((a) => { const v = new Float32Array(dd); v[a] = 1; return v; });
    const got = await facilityLocation(flat(vs), vs.length, { budget: 5, dim: dd, device: 'cpu', blockSize: 4 });
    // index 0 (axis 3) gains 2 as does index 1 (axis 1): 0 first; then 1, then axes 4, 5, 0 (one each)
    expect(got.chosen).toEqual([0, 1, 2, 4, 6]);
    expect(got.gains).toEqual([2, 2, 1, 1, 1]);
  });

  it.skipIf(!rt)('facility-gain kernel = its f64 twin, both variants (several blocks, running sums)', async () => {
    const r = rng(21);
    for (const variant of ['reduce', 'direct'] as const) {
      const Nc = 37, M = 150, colOff = 5;
      const X = randn(r, Nc * M, 0.5);
      const cur = Float32Array.from(randn(r, colOff + M), (x) => Math.abs(x) * 0.3);
      const g0 = Float32Array.from(randn(r, Nc), (x) => Math.abs(x));
      const bX = rt!.upload(X), bCur = rt!.upload(cur), bG = rt!.upload(g0), bA = rt!.upload(new Float32Array(Nc));
      facilityGainGpu(rt!, { X: bX, cur: bCur, gain: bG, active: bA, N: Nc, M, colOff, margin: 0.05, variant });
      const gGpu = await rt!.readF32(bG, Nc), aGpu = await rt!.readF32(bA, Nc);
      for (const b of [bX, bCur, bG, bA]) rt!.release(b);
      const g = Float64Array.from(g0), a = new Float64Array(Nc);
      facilityGainCpu(X, cur, g, a, Nc, M, colOff, 0.05);
      for (let i = 0; i < Nc; i++) {
        expect(Math.abs(gGpu[i] - g[i]), `${variant} row ${i}`).toBeLessThan(1e-4 * Math.max(1, g[i]));
        expect(aGpu[i]).toBe(a[i]);
      }
      expect(a.some((x) => x > 0 && x < M)).toBe(true);
    }
  });

  it.skipIf(!rt)('GPU (f32 gains, host f64 recheck of what the bound cannot rule out) chooses exactly what the CPU chooses', async () => {
    for (const [budget, bs, batch] of [[30, 16, 8], [N, 32, 64], [20, 7, 2]] as const) {
      const cpu = await facilityLocation(flat(vecs), N, { budget, dim: d, device: 'cpu', blockSize: bs });
      const gpu = await facilityLocation(flat(vecs), N, { budget, dim: d, device: rt!, blockSize: bs, batch });
      expect(gpu.chosen).toEqual(cpu.chosen);
      expect(gpu.gains).toEqual(cpu.gains);
      // the near-copies' gains lie within the f32 bound of each other: steps with more than one rechecked
      expect(gpu.rechecked).toBeGreaterThan(gpu.chosen.length);
    }
    // Larger, higher-dimensional, with near-copies: against the brute-force reference too.
    const big = withNearDuplicates(240, 64, 5);
    const ref = facilityLocationReference(big, 25);
    const gpu = await facilityLocation(flat(big), big.length, { budget: 25, dim: 64, device: rt! });
    expect(gpu.chosen).toEqual(ref.chosen);
  });

  it('bad options are errors', async () => {
    await expect(facilityLocation(new Float32Array(8), 2, { budget: -1, dim: 4, device: 'cpu' })).rejects.toThrow(/budget/);
    await expect(facilityLocation(new Float32Array(4), 2, { budget: 1, dim: 4, device: 'cpu' })).rejects.toThrow(/values/);
    await expect(facilityLocation(new Float32Array([NaN, 0, 1, 0]), 2, { budget: 2, dim: 2, device: 'cpu' })).rejects.toThrow(/embedding 0 has a non-finite/);
  });
});

describe('select: facility location on files (Superfiltering.D: --prefilter ifd:F, then facility location)', () => {
  const d = 16;
  // The same kind of fake encoder as above: texts sharing their first word embed to nearly the same vector.
  const fake: SelectEmbedder = {
    dim: d,
    async embed(texts) {
      return texts.map((t) => {
        const r = rng([...t.split(/\s+/)[0]].reduce((h, c) => (h * 31 + c.charCodeAt(0)) >>> 0, 7));
        const v = randn(r, d);
        v[0] += t.length * 0.03;
        const n = Math.hypot(...v);
        return v.map((x) => x / n);
      });
    },
  };
  const dir = mkdtempSync(join(tmpdir(), 'concord-select-fl-test-'));
  tmpDirs.push(dir);
  // [text, ifd]: ids 3 (IFD ≥ 1) and 8 (the lowest IFD) fall outside ifd:0.7 (top round(0.7 × 9) = 6 of IFD < 1)
  const rows: [string, number][] = [['cats purr', 0.9], ['cats meow loud', 0.8], ['dogs bark', 0.85], ['cats sleep', 1.2], ['fish swim', 0.7], ['dogs run far', 0.75], ['birds fly', 0.6], ['cats eat', 0.65], ['birds sing', 0.2]];
  const recs = rows.map(([t, ifd], i) => ({ id: i, instruction: t.split(' ')[0], input: '', output: t, scores: { fwd_logp: -2 + i / 10, y_logp: -2, rev_logp: -2 + i / 10, x_logp: -2, ifd, rifd: 1, cosine: null, cosine_source: null } }));
  const input = join(dir, 'scored.jsonl');
  writeFileSync(input, recs.map((r) => JSON.stringify(r)).join('\n') + '\n');

  it('the prefilter keeps the IFD top fraction; the greedy over their embeddings (rule order) = the brute-force reference; output in input order with select_rank and select_gain', async () => {
    const out = join(dir, 'fl.jsonl');
    const s = await selectFile({ input, output: out, filter: { rule: 'main' }, budget: 3, objective: 'facility-location', tau: 0.9, prefilter: { signal: 'ifd', fraction: 0.7 }, on: 'xy', embedder: fake, device: 'cpu', log: () => {} });
    expect(s).toMatchObject({ records: 9, ranked: 9, candidates: 6, selected: 3, objective: 'facility-location', prefilter: 'ifd:0.7', tau: null, errors: 0 });
    // Candidates in the rule's order (main: by gain, here id descending), less ids 3 and 8.
    const top6 = [0, 2, 1, 5, 4, 7]; // IFD < 1, highest first: 0.9, 0.85, 0.8, 0.75, 0.7, 0.65
    const order = [7, 6, 5, 4, 2, 1, 0].filter((i) => top6.includes(i));
    const vecs = await fake.embed(order.map((i) => `${recs[i].instruction}\n\n${recs[i].output}`));
    const ref = facilityLocationReference(vecs, 3);
    const got = readFileSync(out, 'utf8').trim().split('\n').map((l) => JSON.parse(l));
    const want = ref.chosen.map((c) => order[c]);
    expect(got.map((r) => r.id)).toEqual(want.slice().sort((a, b) => a - b));
    for (const r of got) {
      const k = want.indexOf(r.id);
      expect(r.select_rank).toBe(k);
      expect(r.select_gain).toBe(ref.gains[k]);
    }
    // three topics, no two near-copies (cats ×3, dogs ×2 among the candidates)
    expect(new Set(got.map((r) => r.instruction)).size).toBe(3);
    expect(s.facility!.value).toBeCloseTo(ref.gains.reduce((a, b) => a + b, 0), 9);
  });

  it('the prefilter applies to the deita walk too', async () => {
    const out = join(dir, 'deita.jsonl');
    const s = await selectFile({ input, output: out, filter: { rule: 'main' }, budget: 10, tau: 1, prefilter: { signal: 'ifd', fraction: 0.7 }, on: 'xy', embedder: fake, device: 'cpu', log: () => {} });
    expect(s).toMatchObject({ candidates: 6, selected: 6, objective: 'deita' });
    expect(readFileSync(out, 'utf8').trim().split('\n').map((l) => JSON.parse(l).id)).toEqual([0, 1, 2, 4, 5, 7]);
  });

  it('the CLI: bad --objective / --prefilter values and --diversity with facility-location are usage errors (exit 2, one line)', async () => {
    const { main } = await import('../src/cli/main.js');
    const base = ['select', input, '-o', join(dir, 'x.jsonl'), '--budget', '3'];
    const err: string[] = [];
    const spy = vi.spyOn(process.stderr, 'write').mockImplementation((s: string | Uint8Array) => { err.push(String(s)); return true; });
    try {
      for (const [extra, names] of [[['--objective', 'kmeans'], '--objective'], [['--prefilter', 'ifd:1.5'], '--prefilter'], [['--prefilter', 'cosine:0.5'], '--prefilter'], [['--prefilter', 'ifd:0'], '--prefilter'],
        [['--objective', 'facility-location', '--diversity', '0.8'], '--diversity']] as const) {
        err.length = 0;
        expect(await main([...base, ...extra])).toBe(2);
        expect(err.join('').trimEnd().split('\n')).toHaveLength(1);
        expect(err.join('')).toContain(names);
      }
    } finally {
      spy.mockRestore();
    }
  });
});
