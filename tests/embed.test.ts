// Sentence embeddings (src/encoder) against ONNX Runtime running the very same model_q4.onnx.
// onnxruntime-node is a devDependency used here only; concord reads the ONNX file itself.
//
// Two references: ORT on model_q4.onnx as shipped, whose MatMulNBits nodes say accuracy_level=4
// (ORT then quantises the activations to int8 per block: ~3e-4 off in cosine from f32 compute,
// pair cosines up to ~1e-2 off), and ORT on a copy of the very same graph and weights with
// accuracy_level=0 (f32 compute), which concord, computing in f32, must match tightly.

import { copyFileSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import * as ort from 'onnxruntime-node';
import { afterAll, describe, expect, it, vi } from 'vitest';
import { meanPoolCpu } from '../kernels/pool.js';
import { erf, erfc } from '../kernels/act.js';
import { bertEmbedSentencesCpu, bertHiddenCpu, meanPoolNormalizeCpu, padBatch, type PaddedBatch } from '../src/encoder/bert-cpu.js';
import { BertGpu } from '../src/encoder/bert-gpu.js';
import { bertFromSafetensors } from '../src/encoder/hf-bert.js';
import { BATCH_COSTS, batchCost, createEmbedder, loadEmbedder, loadEmbedderSources, planBatches, resolveEmbedderPath } from '../src/encoder/index.js';
import { dequantMatMulNBits } from '../src/formats/matmulnbits.js';
import { quantizeMatMulNBits4, writeSafetensors } from './helpers/writers.js';
import type { BertWeights } from '../src/encoder/types.js';
import { encodeOnnx, onnx, type OnnxTensorProto } from '../src/formats/onnx.js';
import { BertGraphError, bertFromOnnx } from '../src/encoder/onnx-bert.js';
import { openSafetensorsFolder } from '../src/formats/safetensors.js';
import { validate } from '../src/validate.js';
import { gpuRuntime, randn, rng } from './helpers/gpu.js';
import { scratchDir } from './helpers/scratch.js';

const MODEL_DIR = resolveEmbedderPath('minilm').dir;
const MODEL = join(MODEL_DIR, 'model_q4.onnx');

function readSentences(): { texts: string[]; group: number[] } {
  const texts: string[] = [], group: number[] = [];
  let g = 0, inGroup = false;
  for (const raw of readFileSync(new URL('./fixtures/sentences.txt', import.meta.url), 'utf8').split('\n')) {
    const line = raw.trim();
    if (line.startsWith('#')) continue;
    if (!line) { if (inGroup) g++; inGroup = false; continue; }
    texts.push(line);
    group.push(g);
    inGroup = true;
  }
  return { texts, group };
}

const dot = (a: ArrayLike<number>, ao: number, b: ArrayLike<number>, bo: number, d: number): number => {
  let s = 0;
  for (let i = 0; i < d; i++) s += a[ao + i] * b[bo + i];
  return s;
};

/** ONNX Runtime's last_hidden_state, mean-pooled and normalised as sentence-transformers does. */
async function ortSentences(sess: ort.InferenceSession, batch: PaddedBatch, d: number): Promise<Float32Array> {
  const shape = [batch.B, batch.L];
  const i64 = (x: ArrayLike<number>): ort.Tensor => new ort.Tensor('int64', BigInt64Array.from(Array.from(x, (v) => BigInt(v))), shape);
  const res = await sess.run({ input_ids: i64(batch.ids), attention_mask: i64(batch.mask), token_type_ids: i64(new Int32Array(batch.B * batch.L)) });
  return meanPoolNormalizeCpu(res.last_hidden_state.data as Float32Array, batch.mask, batch.B, batch.L, d);
}

/** Per-row cosine between two [N, d] sets of unit vectors, and all-pairs cosine differences. */
function compare(got: Float32Array, want: Float32Array, N: number, d: number): { minCos: number; maxPairDiff: number } {
  let minCos = Infinity, maxPairDiff = 0;
  for (let i = 0; i < N; i++) {
    minCos = Math.min(minCos, dot(got, i * d, want, i * d, d) / Math.sqrt(dot(got, i * d, got, i * d, d) * dot(want, i * d, want, i * d, d)));
    for (let j = i + 1; j < N; j++) maxPairDiff = Math.max(maxPairDiff, Math.abs(dot(got, i * d, got, j * d, d) - dot(want, i * d, want, j * d, d)));
  }
  return { minCos, maxPairDiff };
}

/**
 * A tiny BERT as a plain PyTorch-style ONNX export (no contrib ops unless asked): MatMul + bias Add
 * projections (bias first, as torch exports), Reshape/Transpose heads, MatMul → Div → Add(mask) →
 * Softmax → MatMul attention, the Erf GELU pattern, Add + LayerNormalization. Variants: 4-bit
 * MatMulNBits projections, SkipLayerNormalization residuals. Returns the model and its weights.
 */
function tinyBertOnnx(r: () => number, opts: { nbits?: boolean; skipLn?: boolean } = {}): { model: Uint8Array; w: { d: number; H: number; layers: number } } {
  const V = 50, P = 16, T = 2, d = 32, H = 4, hd = d / H, ff = 64, nLayers = 2;
  const init: OnnxTensorProto[] = [];
  const nodes: NonNullable<NonNullable<Parameters<typeof encodeOnnx>[0]['graph']>['node']> = [];
  let uid = 0;
  const f32 = (name: string, dims: number[], data: Float32Array): string => { init.push({ name, dataType: 1, dims, rawData: new Uint8Array(data.buffer.slice(0)) }); return name; };
  const i64 = (name: string, dims: number[], data: number[]): string => { init.push({ name, dataType: 7, dims, rawData: new Uint8Array(BigInt64Array.from(data.map(BigInt)).buffer) }); return name; };
  const node = (opType: string, inputs: string[], attrs: Record<string, number | number[] | string> = {}, domain = ''): string => {
    const out = `${opType}_${uid++}`;
    nodes.push({
      opType, domain, name: out, input: inputs, output: [out],
      attribute: Object.entries(attrs).map(([name, v]) => (Array.isArray(v) ? { name, type: 7, ints: v } : typeof v === 'string' ? { name, type: 3, s: new TextEncoder().encode(v) } : Number.isInteger(v) && name !== 'epsilon' ? { name, type: 2, i: v } : { name, type: 1, f: v })),
    });
    return out;
  };
  const ones = (n: number, jitter: number): Float32Array => randn(r, n, jitter).map((x) => 1 + x);
  const linear = (x: string, K: number, N: number, tag: string): { mm: string; bias: string } => {
    const W = randn(r, N * K, 0.3); // [out, in]
    const bias = f32(`${tag}.b`, [N], randn(r, N, 0.1));
    if (opts.nbits) {
      const q = quantizeMatMulNBits4(W, N, K, 16, false);
      const nb = Math.ceil(K / 16);
      f32(`${tag}.scales`, [N * nb], q.scales);
      init.push({ name: `${tag}.q4`, dataType: 2, dims: [N, nb, 8], rawData: q.B });
      return { mm: node('MatMulNBits', [x, `${tag}.q4`, `${tag}.scales`], { K, N, bits: 4, block_size: 16, accuracy_level: 0 }, 'com.microsoft'), bias };
    }
    const Wkn = new Float32Array(K * N);
    for (let n = 0; n < N; n++) for (let k = 0; k < K; k++) Wkn[k * N + n] = W[n * K + k];
    return { mm: node('MatMul', [x, f32(`${tag}.w`, [K, N], Wkn)]), bias };
  };
  const dense = (x: string, K: number, N: number, tag: string): string => { const l = linear(x, K, N, tag); return node('Add', [l.bias, l.mm]); };
  const residualNorm = (x: { mm: string; bias: string }, residual: string, tag: string): string => {
    const g = f32(`${tag}.g`, [d], ones(d, 0.1)), b = f32(`${tag}.beta`, [d], randn(r, d, 0.1));
    if (opts.skipLn) {
      const sk = node('SkipLayerNormalization', [x.mm, residual, g, b, x.bias], { epsilon: 1e-12 }, 'com.microsoft');
      return sk;
    }
    return node('LayerNormalization', [node('Add', [node('Add', [x.bias, x.mm]), residual]), g, b], { epsilon: 1e-12, axis: -1 });
  };
  // Embeddings: word + token type, then + positions (Shape → Range), LayerNorm.
  const word = node('Gather', [f32('word', [V, d], randn(r, V * d, 0.5)), 'input_ids']);
  const type = node('Gather', [f32('type', [T, d], randn(r, T * d, 0.5)), 'token_type_ids']);
  const S = node('Gather', [node('Shape', ['input_ids']), i64('one', [], [1])], { axis: 0 });
  const posIds = node('Unsqueeze', [node('Range', [i64('zero', [], [0]), S, 'one']), i64('ax0', [1], [0])]);
  const pos = node('Gather', [f32('pos', [P, d], randn(r, P * d, 0.5)), posIds]);
  let h = node('LayerNormalization', [node('Add', [node('Add', [word, type]), pos]), f32('emb.g', [d], ones(d, 0.1)), f32('emb.b', [d], randn(r, d, 0.1))], { epsilon: 1e-12, axis: -1 });
  // Additive mask [B, 1, 1, S].
  const maskF = node('Cast', ['attention_mask'], { to: 1 });
  const maskAdd = node('Mul', [node('Sub', [f32('one_f', [], new Float32Array([1])), maskF]), f32('neg', [], new Float32Array([-10000]))]);
  const mask4 = node('Unsqueeze', [maskAdd, i64('ax12', [2], [1, 2])]);
  const heads = i64('heads_shape', [4], [0, 0, H, hd]);
  const flat = i64('flat_shape', [3], [0, 0, d]);
  for (let i = 0; i < nLayers; i++) {
    const q = node('Transpose', [node('Reshape', [dense(h, d, d, `l${i}.q`), heads])], { perm: [0, 2, 1, 3] });
    const k = node('Transpose', [node('Reshape', [dense(h, d, d, `l${i}.k`), heads])], { perm: [0, 2, 3, 1] });
    const v = node('Transpose', [node('Reshape', [dense(h, d, d, `l${i}.v`), heads])], { perm: [0, 2, 1, 3] });
    const scores = node('Add', [node('Div', [node('MatMul', [q, k]), f32(`l${i}.sqrt_hd`, [], new Float32Array([Math.sqrt(hd)]))]), mask4]);
    const ctx = node('Reshape', [node('Transpose', [node('MatMul', [node('Softmax', [scores], { axis: -1 }), v])], { perm: [0, 2, 1, 3] }), flat]);
    const a = residualNorm(linear(ctx, d, d, `l${i}.o`), h, `l${i}.ln1`);
    const up = dense(a, d, ff, `l${i}.fc1`);
    const gelu = node('Mul', [node('Mul', [up, node('Add', [node('Erf', [node('Div', [up, f32(`l${i}.sqrt2`, [], new Float32Array([Math.SQRT2]))])]), f32(`l${i}.one`, [], new Float32Array([1]))])]), f32(`l${i}.half`, [], new Float32Array([0.5]))]);
    h = residualNorm(linear(gelu, ff, d, `l${i}.fc2`), a, `l${i}.ln2`);
  }
  nodes.push({ opType: 'Identity', input: [h], output: ['last_hidden_state'], name: 'out' });
  const io = (name: string, elemType: number, dims: string[]): Parameters<typeof encodeOnnx>[0] => ({ name, type: { tensorType: { elemType, shape: { dim: dims.map((p) => ({ dimParam: p })) } } } }) as never;
  const model = encodeOnnx({
    irVersion: 10,
    opsetImport: [{ domain: '', version: 21 }, { domain: 'com.microsoft', version: 1 }],
    graph: {
      name: 'tiny-bert', node: nodes, initializer: init,
      input: [io('input_ids', 7, ['B', 'S']), io('attention_mask', 7, ['B', 'S']), io('token_type_ids', 7, ['B', 'S'])] as never,
      output: [io('last_hidden_state', 1, ['B', 'S', 'd'])] as never,
    },
  });
  return { model, w: { d, H, layers: nLayers } };
}

const tmpDirs: string[] = [];
afterAll(() => { for (const t of tmpDirs) rmSync(t, { recursive: true, force: true }); });

describe('embed: MatMulNBits dequantisation', () => {
  it('a hand-made 4-bit block: low nibble first, default zero point 8, packed zero points, g_idx', () => {
    // N = 2 rows, K = 20 (two blocks of 16, the second padded), bits = 4.
    const K = 20, N = 2, bs = 16;
    const B = new Uint8Array(N * 2 * 8);
    // Row 0, block 0: q[k] = k % 16 → bytes (lo = k even, hi = k odd): 0x10, 0x32, 0x54, ...
    for (let j = 0; j < 8; j++) B[j] = ((2 * j + 1) << 4) | (2 * j);
    // Row 0, block 1: k = 16..19 hold 15, 0, 9, 7 (then padding).
    B[8] = (0 << 4) | 15; B[9] = (7 << 4) | 9;
    // Row 1: all nibbles 12.
    B.fill(0xcc, 16);
    const scales = new Float32Array([0.5, 2, -1, 0.25]);
    const W = dequantMatMulNBits({ K, N, bits: 4, blockSize: bs, B, scales });
    const want0 = [...Array.from({ length: 16 }, (_, k) => (k - 8) * 0.5), (15 - 8) * 2, (0 - 8) * 2, (9 - 8) * 2, (7 - 8) * 2];
    expect(Array.from(W.subarray(0, K))).toEqual(want0);
    expect(Array.from(W.subarray(K))).toEqual([...Array(16).fill((12 - 8) * -1), ...Array(4).fill((12 - 8) * 0.25)]);
    // Packed zero points: one byte per row holds block 0 (low nibble) and block 1 (high nibble).
    const zp = new Uint8Array([(3 << 4) | 1, (0 << 4) | 15]);
    const Wz = dequantMatMulNBits({ K, N, bits: 4, blockSize: bs, B, scales, zeroPoints: zp });
    expect(Wz[0]).toBe((0 - 1) * 0.5);
    expect(Wz[16]).toBe((15 - 3) * 2);
    expect(Wz[K]).toBe((12 - 15) * -1);
    expect(Wz[K + 16]).toBe((12 - 0) * 0.25);
    // g_idx sends k to another block's scale (values stay packed in k order).
    const gIdx = Array.from({ length: K }, (_, k) => (k < 16 ? 1 : 0));
    const Wg = dequantMatMulNBits({ K, N, bits: 4, blockSize: bs, B, scales, gIdx });
    expect(Wg[3]).toBe((3 - 8) * 2);
    expect(Wg[17]).toBe((0 - 8) * 0.5);
    expect(() => dequantMatMulNBits({ K, N, bits: 4, blockSize: bs, B: B.subarray(1), scales })).toThrow(/B has 31 bytes/);
  });

  it('agrees with onnxruntime on a one-node MatMulNBits graph (with and without zero points)', async () => {
    const r = rng(7);
    for (const withZp of [false, true]) {
      const K = 40, N = 24, bs = 16, M = 5;
      const q = quantizeMatMulNBits4(randn(r, N * K), N, K, bs, withZp);
      const nBlocks = Math.ceil(K / bs);
      const tensor = (name: string, dataType: number, dims: number[], bytes: Uint8Array): OnnxTensorProto => ({ name, dataType, dims, rawData: bytes });
      const inputs = ['A', 'B', 'scales', ...(withZp ? ['zp'] : [])];
      const model = encodeOnnx({
        irVersion: 10,
        opsetImport: [{ domain: '', version: 21 }, { domain: 'com.microsoft', version: 1 }],
        graph: {
          name: 'g',
          node: [{
            opType: 'MatMulNBits', domain: 'com.microsoft', input: inputs, output: ['Y'], name: 'mm',
            attribute: [
              { name: 'K', type: 2, i: K }, { name: 'N', type: 2, i: N }, { name: 'bits', type: 2, i: 4 },
              { name: 'block_size', type: 2, i: bs }, { name: 'accuracy_level', type: 2, i: 0 },
            ],
          }],
          initializer: [
            tensor('B', 2, [N, nBlocks, bs / 2], q.B),
            tensor('scales', 1, [N * nBlocks], new Uint8Array(q.scales.buffer)),
            ...(withZp ? [tensor('zp', 2, [N * Math.ceil(nBlocks / 2)], q.zeroPoints as Uint8Array)] : []),
          ],
          input: [{ name: 'A', type: { tensorType: { elemType: 1, shape: { dim: [{ dimValue: M }, { dimValue: K }] } } } }],
          output: [{ name: 'Y', type: { tensorType: { elemType: 1, shape: { dim: [{ dimValue: M }, { dimValue: N }] } } } }],
        },
      });
      const sess = await ort.InferenceSession.create(model);
      const A = randn(r, M * K);
      const y = (await sess.run({ A: new ort.Tensor('float32', A, [M, K]) })).Y.data as Float32Array;
      const W = dequantMatMulNBits(q);
      const want = new Float32Array(M * N);
      for (let m = 0; m < M; m++) for (let n = 0; n < N; n++) want[m * N + n] = dot(A, m * K, W, n * K, K);
      const v = validate(y, want, { atol: 1e-4, rtol: 1e-4 });
      expect(v.ok, `zero points ${withZp}: ${v.summary}`).toBe(true);
    }
  });
});

describe('embed: math helpers', () => {
  it('erf and exact GELU to ~1e-15 (the kernels/act.ts twins BERT uses)', () => {
    // BERT's gelu, as geluErfCpu computes it per element (before rounding to f32).
    const geluErf = (x: number): number => 0.5 * x * erfc(-x / Math.SQRT2);
    const known: [number, number][] = [[0.5, 0.5204998778130465], [1, 0.8427007929497149], [2, 0.9953222650189527], [2.5, 0.999593047982555], [3, 0.9999779095030014], [-1.5, -0.9661051464753108]];
    for (const [x, e] of known) expect(Math.abs(erf(x) - e)).toBeLessThan(4e-15);
    expect(Math.abs(1 - erf(4) - 1.541725790028002e-8)).toBeLessThan(1e-15);
    expect(geluErf(0)).toBe(0);
    expect(Math.abs(geluErf(1) - 0.8413447460685429)).toBeLessThan(1e-15);
    expect(Math.abs(geluErf(-3) + 0.0040496940948903)).toBeLessThan(4e-15);
  });
});

describe('embed: GPU batch plan', () => {
  it('cuts sorted lengths where matmul tiles and attention query blocks are saved, within the batch limits (= brute force)', () => {
    const cost = (lens: number[], ends: number[], m = BATCH_COSTS.tiled): number => ends.reduce((c, e, i) => c + batchCost(e - (i ? ends[i - 1] : 0), lens[e - 1], m), 0);
    expect(batchCost(16, 22)).toBe(64 + 6 * 64 + 3 * 16 * 2);
    expect(batchCost(16, 22, BATCH_COSTS.direct)).toBe(32 + 352 + 28 * 16 * 2);
    // The benchmark's first 16 sentences (12 … 22 tokens): one batch pads all to 22 tokens (6 tiles,
    // 32 query blocks); cut after the 8 of <= 16 tokens: 2 + 3 tiles, 8 + 16 blocks.
    const bench = [12, 13, 14, 14, 15, 15, 16, 16, 16, 17, 18, 18, 18, 19, 19, 22];
    expect(planBatches(bench, 64, 4096)).toEqual([8, 16]);
    expect(cost(bench, [8, 16])).toBeLessThan(cost(bench, [16]));
    // Direct matmuls (CPU rasterisers) pay rows, not tiles, and attention weighs more: cut at 16 tokens.
    expect(planBatches(bench, 64, 4096, BATCH_COSTS.direct)).toEqual([9, 16]);
    expect(planBatches([5, 6, 5000], 64, 4096)).toEqual([2, 3]); // a text above the token budget goes alone
    const r = rng(4);
    for (let t = 0; t < 200; t++) {
      const n = 1 + Math.floor(r() * 9), maxBatch = 1 + Math.floor(r() * 5), maxTokens = 40 + Math.floor(r() * 200);
      const lens = Array.from({ length: n }, () => 1 + Math.floor(r() * 70)).sort((a, b) => a - b);
      const m = t % 2 ? BATCH_COSTS.direct : BATCH_COSTS.tiled;
      const got = planBatches(lens, maxBatch, maxTokens, m);
      let best = Infinity;
      for (let mask = 0; mask < 1 << (n - 1); mask++) { // bit i set: a cut after text i + 1
        const ends = [...Array.from({ length: n - 1 }, (_, i) => i + 1).filter((e) => mask & (1 << (e - 1))), n];
        const ok = ends.every((e, i) => { const s = i ? ends[i - 1] : 0; return e - s <= maxBatch && (e - s === 1 || (e - s) * lens[e - 1] <= maxTokens); });
        if (ok) best = Math.min(best, cost(lens, ends, m));
      }
      expect(cost(lens, got, m), `${lens} / ${maxBatch} / ${maxTokens}`).toBe(best);
      expect(got.at(-1)).toBe(n);
    }
  });
});

describe('embed: ONNX graphs of other shapes', () => {
  const cases = [
    { name: 'plain torch-style export (MatMul, unfused attention, Erf GELU)', opts: {} },
    { name: '4-bit MatMulNBits projections + SkipLayerNormalization', opts: { nbits: true, skipLn: true } },
  ];
  for (const c of cases) {
    it(`maps a ${c.name} onto BERT and matches onnxruntime`, async () => {
      const r = rng(c.opts.nbits ? 21 : 20);
      const { model, w: shape } = tinyBertOnnx(r, c.opts);
      const w = bertFromOnnx(model, new Map(), { name: 'tiny' });
      expect({ d: w.config.dim, heads: w.config.nHeads, layers: w.config.nLayers }).toEqual({ d: shape.d, heads: shape.H, layers: shape.layers });
      const batch = padBatch([[1, 7, 3, 9, 2], [1, 4, 2], [1, 8, 8, 8, 8, 8, 8, 2]]);
      const sess = await ort.InferenceSession.create(model);
      const dims = [batch.B, batch.L];
      const t = (x: ArrayLike<number>): ort.Tensor => new ort.Tensor('int64', BigInt64Array.from(Array.from(x, (v) => BigInt(v))), dims);
      const res = await sess.run({ input_ids: t(batch.ids), attention_mask: t(batch.mask), token_type_ids: t(new Int32Array(batch.B * batch.L)) });
      const want = res.last_hidden_state.data as Float32Array;
      const got = bertHiddenCpu(w, batch);
      // Padded query rows differ (the -10000 additive mask vs our exact one): compare real tokens.
      const v = validate(got, want, { atol: 2e-4, rtol: 1e-4, mask: Array.from(batch.mask, (m) => Array(shape.d).fill(m)).flat() });
      expect(v.ok, v.summary).toBe(true);
    });
  }
});

describe('embed: CLI (embed, dedup)', () => {
  it('concord embed --json and concord dedup on the CPU', async () => {
    const { embedCommand, dedupCommand } = await import('../src/cli/main.js').then((m) => ({ embedCommand: m.COMMANDS.embed, dedupCommand: m.COMMANDS.dedup }));
    const lines: string[] = [];
    const spy = vi.spyOn(console, 'log').mockImplementation((s: unknown) => { lines.push(String(s)); });
    const errSpy = vi.spyOn(process.stderr, 'write').mockImplementation(() => true);
    try {
      expect(await embedCommand(['--device', 'cpu', '--json', '--text', 'A cat sat on the mat.', '--text', 'A cat was sitting on the mat.'])).toBe(0);
      const j = JSON.parse(lines.at(-1)!);
      expect(j.dim).toBe(384);
      expect(j.embeddings).toHaveLength(2);
      const [a, b] = j.embeddings.map((e: { vector: number[] }) => e.vector);
      expect(dot(a, 0, b, 0, 384)).toBeGreaterThan(0.8);
      expect(await embedCommand(['--device', 'cpu'])).toBe(2);

      const dir = scratchDir('concord-dedup-');
      tmpDirs.push(dir);
      const recs = [
        { id: 1, instruction: 'Name the capital of France.', input: '', output: 'Paris.' },
        { id: 2, instruction: 'Explain photosynthesis in one sentence.', input: '', output: 'Plants turn light, water and CO2 into sugar and oxygen.' },
        { id: 3, instruction: 'Name the capital of France!', input: '', output: 'Paris.' },
        { id: 4, instruction: 'Write a haiku about autumn rain.', input: '', output: 'Cold rain on red leaves / the garden holds its breath / a crow shakes its wings' },
        { id: 5, instruction: 'explain photosynthesis in one sentence', input: '', output: 'Plants turn light, water and CO2 into sugar and oxygen.' },
        { id: 6, instruction: 'No output field here' },
      ];
      const inFile = join(dir, 'in.jsonl');
      writeFileSync(inFile, recs.map((r) => JSON.stringify(r)).join('\n') + '\n');
      const code = await dedupCommand([inFile, '-o', join(dir, 'unique.jsonl'), '--dupes-out', join(dir, 'dupes.jsonl'), '--device', 'cpu', '--threshold', '0.95']);
      expect(code).toBe(3); // record 6 cannot be read as a pair: kept, reported, exit 3
      const ids = (f: string): number[] => readFileSync(join(dir, f), 'utf8').trim().split('\n').map((l) => JSON.parse(l).id);
      expect(ids('unique.jsonl')).toEqual([1, 2, 4, 6]);
      expect(ids('dupes.jsonl')).toEqual([3, 5]);
      const dupe = JSON.parse(readFileSync(join(dir, 'dupes.jsonl'), 'utf8').split('\n')[0]);
      expect(dupe.concord_dup_of).toMatch(/in\.jsonl:1$/);
      expect(dupe.concord_cosine).toBeGreaterThanOrEqual(0.95);
    } finally {
      spy.mockRestore();
      errSpy.mockRestore();
    }
  });
});

describe('embed: all-MiniLM-L6-v2', async () => {
  const rt = await gpuRuntime();
  const src = await loadEmbedderSources('minilm');
  const w = src.weights;
  const d = w.config.dim;
  const cpu = createEmbedder(src, { device: 'cpu' });
  const { texts, group } = readSentences();
  const seqs = texts.map((t) => cpu.tokenizer.encode(t).ids);
  const all = padBatch(seqs);
  const shipped = await ortSentences(await ort.InferenceSession.create(MODEL), all, d);
  // The same graph with f32 MatMulNBits compute. ORT reads external data only from the model's
  // own folder, so the copy gets the data file beside it.
  const m = onnx.ModelProto.decode(readFileSync(MODEL));
  let accuracyAttrs = 0;
  for (const n of m.graph?.node ?? []) for (const a of n.attribute ?? []) if (a.name === 'accuracy_level') { a.i = 0; accuracyAttrs++; }
  const f32Dir = scratchDir('concord-embed-');
  tmpDirs.push(f32Dir);
  writeFileSync(join(f32Dir, 'model.onnx'), encodeOnnx(m));
  copyFileSync(join(MODEL_DIR, 'model_q4.onnx_data'), join(f32Dir, 'model_q4.onnx_data'));
  const exact = await ortSentences(await ort.InferenceSession.create(join(f32Dir, 'model.onnx')), all, d);
  let cpuVecs: Float32Array | null = null;
  const cpuAll = async (): Promise<Float32Array> => {
    if (!cpuVecs) {
      const vs = await cpu.embed(texts);
      cpuVecs = new Float32Array(texts.length * d);
      vs.forEach((v, i) => cpuVecs!.set(v, i * d));
    }
    return cpuVecs;
  };

  it('derives the BERT structure from the ONNX graph', () => {
    const c = w.config;
    expect({ vocab: c.vocabSize, d: c.dim, layers: c.nLayers, heads: c.nHeads, ff: c.ffDim, pos: c.maxPositions, types: c.typeVocabSize }).toEqual({ vocab: 30522, d: 384, layers: 6, heads: 12, ff: 1536, pos: 512, types: 2 });
    expect(c.normEps).toBeCloseTo(1e-12, 18);
    expect(c.attnScale).toBeCloseTo(1 / Math.sqrt(32), 7);
    expect(c.name).toMatch(/MatMulNBits 4-bit, block 32/);
    expect(texts.length).toBeGreaterThanOrEqual(60);
  });

  it('tokenises WordPiece with [CLS] … [SEP] and truncates to maxLength', () => {
    const e = cpu.tokenizer.encode('Unbelievably, the naïve café reopened!');
    // Lower-cased, accents stripped, WordPiece continuation pieces.
    expect(cpu.tokenizer.tokens('Unbelievably, the naïve café reopened!')).toEqual(['[CLS]', 'un', '##bel', '##ie', '##va', '##bly', ',', 'the', 'naive', 'cafe', 'reopened', '!', '[SEP]']);
    expect(e.ids[0]).toBe(101);
    expect(e.ids.at(-1)).toBe(102);
    const short = createEmbedder(src, { device: 'cpu', maxLength: 8 });
    const cut = short.tokenizer.encode(texts[0]);
    expect(cut.ids.length).toBe(8);
    expect(cut.truncated).toBe(true);
    expect(cut.fullLength).toBeGreaterThan(8);
    expect(cut.ids.at(-1)).toBe(102);
  });

  it('CPU twin matches ONNX Runtime on every fixture sentence (f32 compute: ~1e-7; as shipped: ≥ 0.999 cosine)', async () => {
    expect(accuracyAttrs).toBe(36);
    const got = await cpuAll();
    const n = texts.length;
    const v = validate(got, exact, { atol: 2e-6 });
    const f32 = compare(got, exact, n, d);
    const q = compare(got, shipped, n, d);
    console.log(`[embed] CPU vs ORT on ${n} sentences — same graph, f32 compute: min cosine ${f32.minCos.toFixed(9)}, max pair-cosine diff ${f32.maxPairDiff.toExponential(2)}, ${v.summary}`);
    console.log(`[embed] CPU vs ORT on ${n} sentences — model_q4.onnx as shipped (int8 activations): min cosine ${q.minCos.toFixed(6)}, max pair-cosine diff ${q.maxPairDiff.toExponential(2)}`);
    expect(v.ok, v.summary).toBe(true);
    expect(f32.minCos).toBeGreaterThan(0.99999);
    expect(f32.maxPairDiff).toBeLessThan(1e-5);
    expect(q.minCos).toBeGreaterThanOrEqual(0.999);
    expect(q.maxPairDiff).toBeLessThan(2e-2);
    // The two ORT references differ from each other as much as concord differs from the shipped one.
    expect(compare(exact, shipped, n, d).minCos).toBeLessThan(0.99995);
    for (let i = 0; i < n; i++) expect(Math.abs(dot(got, i * d, got, i * d, d) - 1)).toBeLessThan(1e-5);
  });

  it('related sentences score clearly above unrelated ones', async () => {
    const got = await cpuAll();
    const related: number[] = [], unrelated: number[] = [];
    for (let i = 0; i < texts.length; i++) for (let j = i + 1; j < texts.length; j++) (group[i] === group[j] ? related : unrelated).push(dot(got, i * d, got, j * d, d));
    const mean = (x: number[]): number => x.reduce((a, b) => a + b, 0) / x.length;
    const sorted = [...unrelated].sort((a, b) => a - b);
    const p99 = sorted[Math.floor(sorted.length * 0.99)];
    console.log(`[embed] related pairs: mean ${mean(related).toFixed(3)}, min ${Math.min(...related).toFixed(3)}; unrelated: mean ${mean(unrelated).toFixed(3)}, p99 ${p99.toFixed(3)}, max ${sorted.at(-1)!.toFixed(3)}`);
    expect(mean(related) - mean(unrelated)).toBeGreaterThan(0.5);
    expect(Math.min(...related)).toBeGreaterThan(p99);
  });

  it('a padded batch embeds exactly like each sentence alone (CPU)', () => {
    const pick = [seqs[0], seqs[9], seqs[21]];
    const batched = bertEmbedSentencesCpu(w, padBatch(pick));
    pick.forEach((s, b) => {
      const alone = bertEmbedSentencesCpu(w, padBatch([s]));
      const v = validate(batched.subarray(b * d, (b + 1) * d), alone, { atol: 1e-6 });
      expect(v.ok, v.summary).toBe(true);
    });
  });

  it.skipIf(!rt)('WebGPU encoder ≥ 0.999 cosine with ONNX Runtime and ≈ the CPU twin on a modest batch', async () => {
    // 8 sentences of 10 to 16 tokens (SwiftShader runs ~0.1-0.5 GFLOP/s), given out of length
    // order: the embedder sorts them into two padded batches of 4 (each within one 64-row matmul
    // tile) and must hand the vectors back in input order.
    const idx = [63, 0, 21, 1, 40, 11, 3, 20];
    const enc = createEmbedder(src, { device: rt!, maxBatchSize: 4 });
    const gpu = new BertGpu(rt!, w);
    try {
      expect(enc.device).toBe('webgpu');
      const vs = await enc.embed(idx.map((i) => texts[i]));
      expect(enc.stats.batches).toBe(2);
      expect(enc.stats.paddedTokens).toBeLessThanOrEqual(2 * 64);
      const got = new Float32Array(idx.length * d);
      vs.forEach((v, j) => got.set(v, j * d));
      // Hidden states of a padded batch against the CPU twin (padded rows excluded).
      const batch = padBatch([seqs[5], seqs[30]]);
      const h = await gpu.hidden(batch);
      const hv = validate(h, bertHiddenCpu(w, batch), { atol: 1e-3, rtol: 1e-3, mask: Array.from(batch.mask, (m) => Array(d).fill(m)).flat() });
      expect(hv.ok, `hidden states GPU vs CPU: ${hv.summary}`).toBe(true);
      const pick = (all: Float32Array): Float32Array => {
        const out = new Float32Array(idx.length * d);
        idx.forEach((i, j) => out.set(all.subarray(i * d, (i + 1) * d), j * d));
        return out;
      };
      const vsExact = compare(got, pick(exact), idx.length, d);
      const vsShipped = compare(got, pick(shipped), idx.length, d);
      const vsCpu = compare(got, pick(await cpuAll()), idx.length, d);
      console.log(`[embed] GPU (${rt!.name}) on ${idx.length} sentences: vs ORT f32 compute min cosine ${vsExact.minCos.toFixed(9)}, max pair diff ${vsExact.maxPairDiff.toExponential(2)}; vs ORT as shipped min cosine ${vsShipped.minCos.toFixed(6)}, max pair diff ${vsShipped.maxPairDiff.toExponential(2)}; vs CPU twin min cosine ${vsCpu.minCos.toFixed(9)}`);
      expect(vsExact.minCos).toBeGreaterThan(0.99999);
      expect(vsExact.maxPairDiff).toBeLessThan(1e-4);
      expect(vsShipped.minCos).toBeGreaterThanOrEqual(0.999);
      expect(vsCpu.minCos).toBeGreaterThan(0.99999);
    } finally {
      gpu.dispose();
      enc.dispose();
    }
  }, 180_000);

  it.skipIf(!rt)('bidirectional attention (causal: false) matches its CPU twin on odd shapes', async () => {
    const r = rng(11);
    const B = 3, L = 21, H = 3, hd = 24, T = B * L;
    const q = randn(r, T * H * hd), k = randn(r, T * H * hd), v = randn(r, T * H * hd);
    const lens = new Uint32Array([21, 5, 17]);
    const out = rt!.acquire(T * H * hd * 4);
    const { attentionGpu, attentionCpu } = await import('../kernels/attention.js');
    attentionGpu(rt!, { q: rt!.upload(q), k: rt!.upload(k), v: rt!.upload(v), seqLen: rt!.upload(lens), out, B, L, nHeads: H, nKvHeads: H, headDim: hd, causal: false });
    const got = await rt!.readF32(out, T * H * hd);
    const want = attentionCpu(q, k, v, lens, B, L, H, H, hd, false);
    const vg = validate(got, want, { atol: 2e-5, rtol: 1e-4 });
    expect(vg.ok, vg.summary).toBe(true);
    rt!.release(out);
  });

  it.skipIf(!rt)('mean-pool kernel matches its CPU twin (odd shapes)', async () => {
    const r = rng(3);
    const B = 3, L = 7, dd = 37;
    const x = randn(r, B * L * dd);
    const lens = new Uint32Array([7, 1, 4]);
    const out = rt!.acquire(B * dd * 4);
    const { meanPoolGpu } = await import('../kernels/pool.js');
    meanPoolGpu(rt!, { x: rt!.upload(x), seqLen: rt!.upload(lens), out, B, L, d: dd, workgroupSize: 16 });
    const v = validate(await rt!.readF32(out, B * dd), meanPoolCpu(x, lens, B, L, dd), { atol: 1e-5 });
    expect(v.ok, v.summary).toBe(true);
    rt!.release(out);
  });

  it('loads a Hugging Face BertModel folder (safetensors f32 / f16 / bf16) to the same encoder', async () => {
    // Write MiniLM's (dequantised) weights under transformers' names (src/formats/safetensors.ts
    // writes them; F16 / BF16 round to nearest even) and read them back as a folder.
    const hfTensors = (m: BertWeights): { name: string; data: Float32Array; shape: number[] }[] => {
      const c = m.config;
      const t = [
        { name: 'embeddings.word_embeddings.weight', data: m.wordEmb, shape: [c.vocabSize, d] },
        { name: 'embeddings.position_embeddings.weight', data: m.posEmb, shape: [c.maxPositions, d] },
        { name: 'embeddings.token_type_embeddings.weight', data: m.typeEmb, shape: [c.typeVocabSize, d] },
        { name: 'embeddings.LayerNorm.weight', data: m.embLnW, shape: [d] }, { name: 'embeddings.LayerNorm.bias', data: m.embLnB, shape: [d] },
      ];
      m.layers.forEach((l, i) => {
        const p = `encoder.layer.${i}.`;
        const add = (n: string, data: Float32Array, shape: number[]): void => { t.push({ name: p + n, data, shape }); };
        add('attention.self.query.weight', l.wq, [d, d]); add('attention.self.query.bias', l.bq, [d]);
        add('attention.self.key.weight', l.wk, [d, d]); add('attention.self.key.bias', l.bk, [d]);
        add('attention.self.value.weight', l.wv, [d, d]); add('attention.self.value.bias', l.bv, [d]);
        add('attention.output.dense.weight', l.wo, [d, d]); add('attention.output.dense.bias', l.bo, [d]);
        add('attention.output.LayerNorm.weight', l.ln1w, [d]); add('attention.output.LayerNorm.bias', l.ln1b, [d]);
        add('intermediate.dense.weight', l.w1, [c.ffDim, d]); add('intermediate.dense.bias', l.b1, [c.ffDim]);
        add('output.dense.weight', l.w2, [d, c.ffDim]); add('output.dense.bias', l.b2, [d]);
        add('output.LayerNorm.weight', l.ln2w, [d]); add('output.LayerNorm.bias', l.ln2b, [d]);
      });
      return t.map((x) => ({ ...x, name: `bert.${x.name}` }));
    };
    const cfg = JSON.parse(readFileSync(join(MODEL_DIR, 'config.json'), 'utf8'));
    const folder = (m: BertWeights, dtype: 'F32' | 'F16' | 'BF16', config: object): string => {
      const dir = scratchDir(`concord-hf-bert-${dtype}-`);
      tmpDirs.push(dir);
      writeSafetensors(join(dir, 'model.safetensors'), hfTensors(m).map((x) => ({ ...x, dtype })));
      writeFileSync(join(dir, 'config.json'), JSON.stringify(config));
      return dir;
    };

    // F32, the whole model: bit-exact tensors, and the folder through loadEmbedder.
    const batch = padBatch([seqs[4], seqs[5]]);
    const base = bertEmbedSentencesCpu(w, batch);
    const dir = folder(w, 'F32', cfg);
    const hw = bertFromSafetensors(cfg, openSafetensorsFolder(dir), 'minilm-hf');
    expect(validate(hw.layers[3].w1, w.layers[3].w1, { atol: 0 }).ok).toBe(true);
    const got = bertEmbedSentencesCpu(hw, batch);
    expect(compare(got, base, 2, d).minCos).toBeGreaterThan(1 - 1e-12);
    for (const f of ['tokenizer.json', 'tokenizer_config.json']) copyFileSync(join(MODEL_DIR, f), join(dir, f));
    const enc = await loadEmbedder(dir, { device: 'cpu' });
    expect(enc.config.name).toMatch(/safetensors F32/);
    const vs = await enc.embed([texts[4], texts[5]]);
    const flatVs = new Float32Array(2 * d);
    vs.forEach((x, i) => flatVs.set(x, i * d));
    expect(compare(flatVs, got, 2, d).minCos).toBeGreaterThan(1 - 1e-9);

    // F16 and BF16 on a cut-down MiniLM (2 layers, the first 3,196 word pieces: enough for
    // sentences 0 and 14), so that the half-precision conversions stay quick.
    const ids = [seqs[0], seqs[14]];
    const vocab = Math.max(...ids.flat()) + 1;
    expect(vocab).toBeLessThanOrEqual(3196);
    const small: BertWeights = { ...w, config: { ...w.config, vocabSize: vocab, nLayers: 2 }, wordEmb: w.wordEmb.subarray(0, vocab * d), layers: w.layers.slice(0, 2) };
    const smallBatch = padBatch(ids);
    const smallBase = bertEmbedSentencesCpu(small, smallBatch);
    for (const dtype of ['F16', 'BF16'] as const) {
      const smallCfg = { ...cfg, vocab_size: vocab, num_hidden_layers: 2 };
      const m = bertFromSafetensors(smallCfg, openSafetensorsFolder(folder(small, dtype, smallCfg)), 'minilm-hf-small');
      expect(m.config.name).toMatch(new RegExp(`safetensors ${dtype}`));
      const { minCos } = compare(bertEmbedSentencesCpu(m, smallBatch), smallBase, 2, d);
      expect(minCos, dtype).toBeGreaterThan(dtype === 'F16' ? 0.9999 : 0.999);
    }
  });

  it('fails clearly on graphs that are not BERT-like encoders', () => {
    const lone = encodeOnnx({
      irVersion: 10, opsetImport: [{ domain: '', version: 21 }],
      graph: {
        name: 'g', node: [{ opType: 'Relu', input: ['input_ids'], output: ['y'], name: 'relu' }],
        input: [{ name: 'input_ids', type: { tensorType: { elemType: 1 } } }], output: [{ name: 'y' }],
      },
    });
    expect(() => bertFromOnnx(lone, new Map(), { name: 'relu.onnx' })).toThrow(BertGraphError);
    expect(() => bertFromOnnx(lone, new Map(), { name: 'relu.onnx' })).toThrow(/relu\.onnx: not a BERT-like encoder: no Gather of a 2-D table indexed by the graph input 'input_ids'/);
    expect(() => bertFromOnnx(readFileSync(MODEL), new Map(), { name: 'q4' })).toThrow(/external file 'model_q4.onnx_data', which was not provided/);
  });
});
