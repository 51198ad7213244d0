// Near-duplicate removal (src/dedup/index.ts, `concord dedup`): the blockwise greedy search against a
// plain reference, GPU (all-pairs cosine kernel + masked row max) against CPU (their twins) with
// tiny blocks and embeddings spilled to a temporary file, and the command's exit codes and
// file:line messages.

import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it, vi } from 'vitest';
import { ROW_MAX_LOW, ROW_MAX_NONE, rowMaxCpu, rowMaxGpu } from '../kernels/pool.js';
import { dedupFile, dedupVectors, VectorStore, type DedupVectorsResult } from '../src/dedup/index.js';
import { loadEmbedder, type Embedder } from '../src/encoder/index.js';
import { gpuRuntime, randn, rng } from './helpers/gpu.js';

const tmpDirs: string[] = [];
const tmp = (): string => {
  const d = mkdtempSync(join(tmpdir(), 'concord-dedup-test-'));
  tmpDirs.push(d);
  return d;
};
afterAll(() => { for (const t of tmpDirs) rmSync(t, { recursive: true, force: true }); });

// One record per line, ids = line numbers. Planted (cosines on x + y, all-MiniLM-L6-v2): exact
// copies 4, 14, 20, 21 (21 also copies 4, itself a dropped copy of 1: it must name 1); paraphrases
// 6 (0.938 with 1 and with 4), 8 (0.991), 11 (0.993), 17 (0.976), 19 (0.945); unrelated pairs stay
// below 0.9 (the closest: 16 ~ 3 at 0.890, 22 ~ 18 at 0.887). Line 10 is not JSON, record 13 has
// no output.
const pair = (id: number, instruction: string, output: string): string => JSON.stringify({ id, instruction, input: '', output });
const FIXTURE_LINES = [
  pair(1, 'Name the capital of France.', 'The capital of France is Paris.'),
  pair(2, 'Explain photosynthesis in one sentence.', 'Plants turn light, water and carbon dioxide into sugar and oxygen.'),
  pair(3, 'Write a haiku about autumn rain.', 'Cold rain on red leaves / the garden holds its breath / a crow shakes its wings'),
  pair(4, 'Name the capital of France.', 'The capital of France is Paris.'),
  pair(5, 'How do I reverse a list in Python?', 'Use my_list.reverse() to reverse it in place, or my_list[::-1] for a reversed copy.'),
  pair(6, 'What is the capital city of France?', 'Paris is the capital of France.'),
  pair(7, 'Give three tips for better sleep.', 'Keep a regular schedule, avoid screens before bed, and keep the bedroom cool and dark.'),
  pair(8, 'explain photosynthesis in one sentence', 'Plants turn light, water and carbon dioxide into sugar and oxygen.'),
  pair(9, "Translate 'good morning' into Spanish.", 'Buenos días.'),
  '{"id": 10 "instruction": "this line is not valid JSON"}',
  pair(11, 'In Python, how can I reverse a list?', 'Call my_list.reverse() to reverse it in place, or use my_list[::-1] to get a reversed copy.'),
  pair(12, 'Summarise the plot of Romeo and Juliet.', 'Two young lovers from feuding families in Verona marry in secret, and a chain of misunderstandings ends with both taking their own lives.'),
  JSON.stringify({ id: 13, instruction: 'No output field here' }),
  pair(14, 'Give three tips for better sleep.', 'Keep a regular schedule, avoid screens before bed, and keep the bedroom cool and dark.'),
  pair(15, 'What is the boiling point of water at sea level?', 'Water boils at 100 degrees Celsius (212 degrees Fahrenheit) at sea level.'),
  pair(16, 'Write a haiku about autumn rain.', 'Grey sky, falling leaves / rain taps on the window glass / the kettle whistles'),
  pair(17, 'Summarize the plot of Romeo and Juliet.', 'Two young lovers from feuding families in Verona secretly marry, and a series of misunderstandings ends with both of them taking their own lives.'),
  pair(18, 'List the primary colours.', 'Red, yellow and blue.'),
  pair(19, 'At sea level, what temperature does water boil at?', 'At sea level water boils at 100 °C, which is 212 °F.'),
  pair(20, "Translate 'good morning' into Spanish.", 'Buenos días.'),
  pair(21, 'Name the capital of France.', 'The capital of France is Paris.'),
  pair(22, 'What are the primary colors?', 'The primary colors are red, yellow and blue.'),
];
const FIXTURE = join(tmp(), 'pairs.jsonl');
writeFileSync(FIXTURE, `${FIXTURE_LINES.join('\n')}\n`);

/** The greedy rule written out plainly: every earlier kept vector, f32 dot products, first max wins. */
function referenceDedup(X: Float32Array, N: number, d: number, threshold: number): { kept: number[]; dupOf: number[] } {
  const kept: number[] = [], dupOf: number[] = new Array(N).fill(-1);
  for (let i = 0; i < N; i++) {
    let best = -Infinity, bestJ = -1;
    for (const j of kept) {
      let s = 0;
      for (let k = 0; k < d; k++) s += X[i * d + k] * X[j * d + k];
      s = Math.fround(s);
      if (s > best) { best = s; bestJ = j; }
    }
    if (bestJ >= 0 && best >= threshold) dupOf[i] = bestJ;
    else kept.push(i);
  }
  return { kept, dupOf };
}

/** Unit vectors with planted near-duplicates (a noisy copy of an earlier vector) and exact copies. */
function plantedVectors(seed: number, N: number, d: number): Float32Array {
  const r = rng(seed);
  const X = randn(r, N * d);
  for (let i = 0; i < N; i++) {
    const u = r();
    if (i > 0 && u < 0.25) {
      const j = Math.floor(r() * i);
      const noise = randn(r, d, 0.05);
      for (let k = 0; k < d; k++) X[i * d + k] = X[j * d + k] + noise[k];
    } else if (i > 0 && u < 0.35) {
      const j = Math.floor(r() * i);
      X.copyWithin(i * d, j * d, (j + 1) * d);
    }
  }
  for (let i = 0; i < N; i++) {
    let n = 0;
    for (let k = 0; k < d; k++) n += X[i * d + k] ** 2;
    for (let k = 0; k < d; k++) X[i * d + k] /= Math.sqrt(n);
  }
  return X;
}

function storeOf(X: Float32Array, N: number, d: number, budget: number): VectorStore {
  const s = new VectorStore(d, budget);
  for (let i = 0; i < N; i++) s.append(X.subarray(i * d, (i + 1) * d));
  return s;
}

const keptList = (r: DedupVectorsResult): number[] => Array.from(r.kept.keys()).filter((i) => r.kept[i]);

describe('dedup: blockwise search', async () => {
  const rt = await gpuRuntime();

  it('vector store: rows in memory up to the budget, then in a temporary file (same rows back)', () => {
    const d = 5, N = 23;
    const X = randn(rng(1), N * d);
    const mem = storeOf(X, N, d, 1 << 20);
    const disk = storeOf(X, N, d, 10 * d * 4); // spills at the 11th row
    try {
      expect(mem.spilled).toBe(false);
      expect(disk.spilled).toBe(true);
      expect(existsSync(disk.file!)).toBe(true);
      for (const [start, n] of [[0, N], [3, 7], [10, 1], [22, 1]]) {
        expect(Array.from(disk.read(start, n))).toEqual(Array.from(X.subarray(start * d, (start + n) * d)));
        expect(Array.from(mem.read(start, n))).toEqual(Array.from(X.subarray(start * d, (start + n) * d)));
      }
      expect(() => disk.read(20, 4)).toThrow(/outside/);
    } finally {
      const f = disk.file!;
      mem.dispose();
      disk.dispose();
      expect(existsSync(f)).toBe(false);
    }
  });

  it('CPU blocks of any size make the plain greedy choices', async () => {
    const N = 61, d = 24, threshold = 0.9;
    const X = plantedVectors(5, N, d);
    const want = referenceDedup(X, N, d, threshold);
    expect(want.kept.length).toBeLessThan(N - 10); // the planted duplicates are found
    for (const blockSize of [1, 7, 16, 61, 100]) {
      const store = storeOf(X, N, d, blockSize === 7 ? 0 : 1 << 20);
      const got = await dedupVectors(store, { threshold, device: 'cpu', blockSize });
      store.dispose();
      expect(keptList(got), `block ${blockSize}`).toEqual(want.kept);
      expect(Array.from(got.dupOf), `block ${blockSize}`).toEqual(want.dupOf);
      expect(got.blockPairs).toBe((got.blocks * (got.blocks + 1)) / 2);
    }
  });

  it.skipIf(!rt)('row-max kernel = its CPU twin, both variants (masked columns, ties, a running best, odd shapes)', async () => {
    const r = rng(9);
    for (const [N, M, colOff, wg, variant] of [[5, 37, 0, 64, 'reduce'], [13, 200, 11, 32, 'reduce'], [1, 3, 2, 64, 'reduce'], [70, 65, 5, 16, 'reduce'],
      [5, 37, 0, 64, 'direct'], [13, 200, 11, 32, 'direct'], [70, 65, 5, 16, 'direct']] as const) {
      // Scores on a coarse grid so that ties happen; some rows start with a best to beat.
      const X = Float32Array.from({ length: N * M }, () => Math.round(r() * 8) / 8);
      const mask = Uint32Array.from({ length: colOff + M }, () => (r() < 0.6 ? 1 : 0));
      const best0 = Float32Array.from({ length: N }, (_, i) => (i % 3 === 0 ? 0.5 : ROW_MAX_LOW));
      const arg0 = Uint32Array.from({ length: N }, (_, i) => (i % 3 === 0 ? 1 : ROW_MAX_NONE));
      const bestB = rt!.upload(best0), argB = rt!.upload(arg0);
      rowMaxGpu(rt!, { X: rt!.upload(X), mask: rt!.upload(mask), best: bestB, arg: argB, N, M, colOff, workgroupSize: wg, variant });
      const gotBest = await rt!.readF32(bestB, N);
      const gotArg = new Uint32Array(await rt!.read(argB, N * 4));
      const best = best0.slice(), arg = arg0.slice();
      rowMaxCpu(X, mask, best, arg, N, M, colOff);
      expect(Array.from(gotArg), `${variant} ${N}×${M}`).toEqual(Array.from(arg));
      expect(Array.from(gotBest), `${variant} ${N}×${M}`).toEqual(Array.from(best));
    }
  });

  it.skipIf(!rt)('GPU blocks (cosine kernel + row max) make the same choices as the CPU twins', async () => {
    const N = 61, d = 24, threshold = 0.9;
    const X = plantedVectors(6, N, d);
    const cpuStore = storeOf(X, N, d, 1 << 20);
    const want = await dedupVectors(cpuStore, { threshold, device: 'cpu', blockSize: 7 });
    cpuStore.dispose();
    expect(keptList(want)).toEqual(referenceDedup(X, N, d, threshold).kept);
    for (const blockSize of [7, 16, 64]) {
      const store = storeOf(X, N, d, blockSize === 7 ? 0 : 1 << 20);
      const got = await dedupVectors(store, { threshold, device: rt!, blockSize });
      expect(store.spilled).toBe(blockSize === 7);
      store.dispose();
      expect(keptList(got), `block ${blockSize}`).toEqual(keptList(want));
      expect(Array.from(got.dupOf), `block ${blockSize}`).toEqual(Array.from(want.dupOf));
      for (let i = 0; i < N; i++) expect(Math.abs(got.cosine[i] - want.cosine[i])).toBeLessThan(1e-5);
    }
  });
});

describe('dedup: files and the command', async () => {
  const rt = await gpuRuntime();
  const enc = await loadEmbedder('minilm', { device: 'cpu' });
  // The fixture is embedded once on the CPU; the runs below differ in how they compare.
  const cache = new Map<string, Float32Array>();
  const cached: Embedder = {
    ...enc,
    stats: enc.stats,
    embed: async (texts) => {
      const todo = [...new Set(texts.filter((t) => !cache.has(t)))];
      if (todo.length) (await enc.embed(todo)).forEach((v, i) => cache.set(todo[i], v));
      return texts.map((t) => cache.get(t)!);
    },
  };
  const ids = (f: string): number[] => readFileSync(f, 'utf8').trim().split('\n').map((l) => JSON.parse(l).id);
  const dupes = (f: string): { id: number; of: string; cos: number }[] =>
    readFileSync(f, 'utf8').trim().split('\n').map((l) => JSON.parse(l)).map((r) => ({ id: r.id, of: r.concord_dup_of, cos: r.concord_cosine }));
  const KEPT = [1, 2, 3, 5, 7, 9, 12, 13, 15, 16, 18, 22];
  const DROPPED = [[4, 1], [6, 1], [8, 2], [11, 5], [14, 7], [17, 12], [19, 15], [20, 9], [21, 1]];

  it('CPU and GPU comparison keep the same records (blocks of 7, embeddings spilled to disk on the GPU run)', async () => {
    const dir = tmp();
    const logs: string[] = [];
    const run = async (tag: string, device: typeof rt | 'cpu', memoryBudget: number) => {
      const output = join(dir, `${tag}.jsonl`), dupesOut = join(dir, `${tag}.dupes.jsonl`);
      const s = await dedupFile({ input: FIXTURE, output, dupesOut, threshold: 0.92, on: 'xy', embedder: cached, device: device!, blockSize: 7, memoryBudget, log: (m) => logs.push(m) });
      return { s, output, dupesOut };
    };
    const cpu = await run('cpu', 'cpu', 1 << 20);
    expect(cpu.s).toMatchObject({ records: 22, embedded: 20, kept: 12, dropped: 9, errors: 2, spilled: false, blockSize: 7, blocks: 3, blockPairs: 6 });
    expect(ids(cpu.output)).toEqual(KEPT);
    const d = dupes(cpu.dupesOut);
    expect(d.map((x) => [x.id, Number(x.of.split(':').at(-1))])).toEqual(DROPPED);
    expect(d.every((x) => x.of.startsWith(FIXTURE) && x.cos >= 0.92)).toBe(true);
    expect(logs.filter((l) => l.startsWith(`${FIXTURE}:10: malformed JSON`) && l.endsWith('(left out: not a JSON record)'))).toHaveLength(1);
    expect(logs).toContain(`${FIXTURE}:13: missing field 'output' (kept as is)`);
    // Record 13 (not a pair) stays, untouched, in its place.
    expect(readFileSync(cpu.output, 'utf8').split('\n')[7]).toBe(JSON.stringify({ id: 13, instruction: 'No output field here' }));
    if (!rt) return;
    const gpu = await run('gpu', rt, 0);
    expect(gpu.s).toMatchObject({ embedded: 20, kept: 12, dropped: 9, spilled: true, blocks: 3 });
    expect(readFileSync(gpu.output, 'utf8')).toBe(readFileSync(cpu.output, 'utf8'));
    const g = dupes(gpu.dupesOut);
    expect(g.map((x) => [x.id, x.of])).toEqual(d.map((x) => [x.id, x.of]));
    g.forEach((x, i) => expect(Math.abs(x.cos - d[i].cos)).toBeLessThanOrEqual(2e-6));
  });

  it('concord dedup: exit codes, file:line messages, usage errors', async () => {
    const { dedupCommand } = await import('../src/cli/main.js').then((m) => ({ embedCommand: m.COMMANDS.embed, dedupCommand: m.COMMANDS.dedup }));
    const err: string[] = [];
    const errSpy = vi.spyOn(process.stderr, 'write').mockImplementation((s: unknown) => { err.push(String(s)); return true; });
    const outSpy = vi.spyOn(console, 'log').mockImplementation(() => {});
    try {
      const dir = tmp();
      const small = join(dir, 'small.jsonl');
      const lines = FIXTURE_LINES;
      // Records 1, 4 (a copy of 1), 6 (a paraphrase of 1) and 10 (not JSON).
      writeFileSync(small, `${[lines[0], lines[3], lines[5]].join('\n')}\n`);
      const out = join(dir, 'u.jsonl'), dup = join(dir, 'd.jsonl');
      expect(await dedupCommand([small, '-o', out, '--dupes-out', dup, '--device', 'cpu', '--threshold', '0.92', '--memory-budget', '0'])).toBe(0);
      expect(ids(out)).toEqual([1]);
      expect(dupes(dup).map((x) => [x.id, x.of])).toEqual([[4, `${small}:1`], [6, `${small}:1`]]);
      expect(err.join('')).toMatch(/--device cpu: CPU path chosen explicitly/);
      expect(err.join('')).toMatch(/3 records, 1 kept, 2 near-duplicates dropped/);
      expect(err.join('')).toMatch(/vectors in a temporary file/);

      writeFileSync(small, `${[lines[0], lines[9], lines[12]].join('\n')}\n`);
      err.length = 0;
      expect(await dedupCommand([small, '-o', out, '--device', 'cpu'])).toBe(3);
      expect(err.join('')).toMatch(new RegExp(`${small}:2: malformed JSON`));
      expect(err.join('')).toContain(`${small}:3: missing field 'output' (kept as is)`);
      expect(ids(out)).toEqual([1, 13]);

      for (const bad of [
        [small, '--device', 'cpu'],
        [small, '-o', out, '--threshold', '1.5'],
        [small, '-o', out, '--on', 'z'],
        [small, '-o', out, '--device', 'tpu'],
        [small, '-o', out, '--block-size', '0'],
        [small, '-o', out, '--memory-budget', '-1'],
        [small, '-o', out, '--bogus'],
      ]) expect(await dedupCommand(bad), bad.join(' ')).toBe(2);
      // A missing input is an input error, as in every command (docs/cli.md "Exit codes").
      expect(await dedupCommand([join(dir, 'missing.jsonl'), '-o', out])).toBe(3);
    } finally {
      errSpy.mockRestore();
      outSpy.mockRestore();
    }
  });
});
