import { describe, expect, it } from 'vitest';
import { candidateLogprobCpu, candidateLogprobGpu, MAX_CANDIDATES, validateCandidateHead, gemmConfigProblem, LOGPROB_GEMM_DEFAULT, LOGPROB_GEMM_SHORT, logprobGemmConfigFor, SGMAT_FEATURE, sgmatProblem, logprobCpu, logprobGemmConfigs, logprobGpu, LogprobVariant, validateLogprobVariant, vocabSplits, logprobSpecs } from '../kernels/logprob.js';
import { validate } from '../src/validate.js';
import { roundThroughF16, toF16 } from '../src/util/f16.js';
import { programSource, type GpuRuntime } from '../src/gpu/runtime.js';
import { clearTuned, setTuned, shapeClass } from '../src/gpu/variants.js';
import { gpuRuntime, randInt, randn, rng } from './helpers/gpu.js';

interface Case { H: Float32Array; W: Float32Array; targets: Uint32Array; mask: Uint32Array; T: number; V: number; d: number; B: number; L: number }

function makeCase(r: () => number, T: number, V: number, d: number, B: number, logitScale: number): Case {
  const H = randn(r, T * d, 1);
  const W = randn(r, V * d, logitScale / Math.sqrt(d));
  const targets = new Uint32Array(T), mask = new Uint32Array(T);
  for (let t = 0; t < T; t++) {
    targets[t] = randInt(r, 0, V - 1);
    mask[t] = r() < 0.8 ? 1 : 0;
  }
  return { H, W, targets, mask, T, V, d, B, L: T / B };
}

async function runGpu(rt: GpuRuntime, c: Case, variant: LogprobVariant = {}, W: ArrayBufferView = c.W, softcap = 0) {
  const bufs = {
    H: rt.upload(c.H), W: rt.upload(W), targets: rt.upload(c.targets), mask: rt.upload(c.mask),
    logp: rt.acquire(c.T * 4),
  };
  logprobGpu(rt, { ...bufs, T: c.T, V: c.V, d: c.d, variant, softcap });
  const logp = await rt.readF32(bufs.logp, c.T);
  for (const b of Object.values(bufs)) rt.release(b);
  return { logp };
}

describe('fused LM-head log-likelihood', async () => {
  const rt = await gpuRuntime();
  const r = rng(42);

  it('CPU twin: pinned small case by hand', () => {
    // d = 1, V = 3: logits = h·w = [1, 2, 3] for h = 1; log p(2) = 3 − log(e + e² + e³).
    const res = logprobCpu(new Float32Array([1, 1]), new Float32Array([1, 2, 3]), [2, 0], [1, 0], 2, 3, 1);
    const want = 3 - Math.log(Math.E + Math.E ** 2 + Math.E ** 3);
    expect(res.logp[0]).toBeCloseTo(want, 6);
    expect(res.logp[1]).toBe(0); // masked
    expect(res.count[0]).toBe(1);
    expect(res.sum[0]).toBeCloseTo(want, 6);
  });

  it('CPU twin: log-probs of every target normalise to 1', () => {
    const V = 50, d = 7;
    const H = randn(r, d), W = randn(r, V * d, 3);
    let total = 0;
    for (let v = 0; v < V; v++) total += Math.exp(logprobCpu(H, W, [v], [1], 1, V, d).logp[0]);
    expect(total).toBeCloseTo(1, 5);
  });

  it('CPU twin: extreme logits (±80) stay finite', () => {
    const d = 3, V = 4;
    const H = new Float32Array([1, 1, 1]);
    const W = new Float32Array([80 / 3, 80 / 3, 80 / 3, -80 / 3, -80 / 3, -80 / 3, 0, 0, 0, 80 / 3, 80 / 3, 80 / 3]);
    const res = logprobCpu(H, W, [1], [1], 1, V, d);
    expect(Number.isFinite(res.logp[0])).toBe(true);
    expect(res.logp[0]).toBeCloseTo(-160 - Math.log(2), 3);
  });

  it.skipIf(!rt)('GPU matches the CPU twin on random shapes (T = 1, V not a tile multiple, odd d, masks)', async () => {
    const shapes = [
      { T: 1, V: 1001, d: 33, B: 1 },
      { T: 12, V: 777, d: 17, B: 3 },
      { T: 30, V: 2053, d: 65, B: 5 },
      { T: 9, V: 64, d: 1, B: 1 },
      // 8 row tiles cap the vocabulary splits, so each workgroup walks several vocabulary tiles
      // (a per-tile accumulator that is not re-zeroed shows up only here).
      { T: 64, V: 5003, d: 17, B: 4 },
    ];
    for (const s of shapes) {
      const c = makeCase(r, s.T, s.V, s.d, s.B, 4);
      const cpu = logprobCpu(c.H, c.W, c.targets, c.mask, c.T, c.V, c.d, c.B, c.L);
      const gpu = await runGpu(rt!, c);
      const v = validate(gpu.logp, cpu.logp, { atol: 1e-4, mask: c.mask });
      expect(v.ok, `${JSON.stringify(s)}: ${v.summary}`).toBe(true);
      for (let t = 0; t < c.T; t++) if (!c.mask[t]) expect(gpu.logp[t]).toBe(0); // masked → exactly 0
    }
  });

  it.skipIf(!rt)('GPU: extreme logits (±80 and beyond) without overflow', async () => {
    const T = 5, V = 300, d = 9;
    const c = makeCase(r, T, V, d, 1, 80); // logits with standard deviation 80
    c.mask.fill(1);
    // Row 0: every logit exactly ±80.
    for (let k = 0; k < d; k++) c.H[k] = 1;
    for (let v = 0; v < V; v++) for (let k = 0; k < d; k++) c.W[v * d + k] = (v % 2 ? -80 : 80) / d;
    const cpu = logprobCpu(c.H, c.W, c.targets, c.mask, T, V, d);
    const gpu = await runGpu(rt!, c);
    expect(gpu.logp.every(Number.isFinite)).toBe(true);
    const v = validate(gpu.logp, cpu.logp, { atol: 1e-4, rtol: 2e-6 });
    expect(v.ok, v.summary).toBe(true);
  });

  it.skipIf(!rt)('GPU: both kernels (tiled, direct) and other workgroup sizes give the same numbers', async () => {
    for (const c of [makeCase(r, 10, 1500, 31, 2, 4), makeCase(r, 64, 5003, 17, 4, 4)]) {
      const cpu = logprobCpu(c.H, c.W, c.targets, c.mask, c.T, c.V, c.d, c.B, c.L);
      for (const variant of [{ kind: 'tiled', wg: 32 }, { kind: 'tiled', wg: 128 }, { kind: 'tiled' }, { kind: 'direct' }, { kind: 'direct', wg: 128 }] as const) {
        const gpu = await runGpu(rt!, c, variant);
        const v = validate(gpu.logp, cpu.logp, { atol: 1e-4, mask: c.mask });
        expect(v.ok, `${JSON.stringify(variant)} T=${c.T}: ${v.summary}`).toBe(true);
      }
    }
  });

  it('CPU twin: final-logit soft-cap applied inside the log-softmax (pinned)', () => {
    // logits [1, 2, 3], cap 2: capped c_v = 2 tanh(v / 2); log p(2) = c_3 - log(sum exp c_v).
    const res = logprobCpu(new Float32Array([1]), new Float32Array([1, 2, 3]), [2], [1], 1, 3, 1, 1, 1, 2);
    const c = [1, 2, 3].map((v) => 2 * Math.tanh(v / 2));
    expect(res.logp[0]).toBeCloseTo(c[2] - Math.log(c.reduce((a, v) => a + Math.exp(v), 0)), 6);
  });

  it.skipIf(!rt)('GPU final-logit soft-cap matches the CPU twin in every variant (tiled, direct, workgroup sizes, f16)', async () => {
    for (const [c, cap] of [[makeCase(r, 10, 1500, 31, 2, 40), 30], [makeCase(r, 64, 2003, 17, 4, 12), 5], [makeCase(r, 3, 300, 8, 1, 2), 0.7]] as const) {
      const cpu = logprobCpu(c.H, c.W, c.targets, c.mask, c.T, c.V, c.d, c.B, c.L, cap);
      // The cap changes the result here (logit spread well beyond it).
      expect(validate(cpu.logp, logprobCpu(c.H, c.W, c.targets, c.mask, c.T, c.V, c.d).logp, { atol: 1e-2, mask: c.mask }).ok).toBe(false);
      for (const variant of [{ kind: 'tiled', wg: 32 }, { kind: 'tiled', wg: 128 }, { kind: 'tiled' }, { kind: 'direct' }, { kind: 'direct', wg: 128 }] as const) {
        const gpu = await runGpu(rt!, c, variant, c.W, cap);
        const v = validate(gpu.logp, cpu.logp, { atol: 1e-4, mask: c.mask });
        expect(v.ok, `${JSON.stringify(variant)} cap ${cap} T=${c.T}: ${v.summary}`).toBe(true);
      }
      if (rt!.hasF16) {
        const cpu16 = logprobCpu(c.H, roundThroughF16(c.W), c.targets, c.mask, c.T, c.V, c.d, c.B, c.L, cap);
        const gpu = await runGpu(rt!, c, { f16: true }, toF16(c.W), cap);
        const v = validate(gpu.logp, cpu16.logp, { atol: 1e-4, mask: c.mask });
        expect(v.ok, `f16 cap ${cap}: ${v.summary}`).toBe(true);
      }
    }
  });

  it.skipIf(!rt)('GPU: a workgroup size beyond the device memory limit is refused clearly', () => {
    const c = makeCase(r, 2, 100, 5, 1, 1);
    const bufs = [rt!.upload(c.H), rt!.upload(c.W), rt!.upload(c.targets), rt!.upload(c.mask), rt!.acquire(8)];
    expect(() => logprobGpu(rt!, { H: bufs[0], W: bufs[1], targets: bufs[2], mask: bufs[3], logp: bufs[4], T: 2, V: 100, d: 5, variant: { wg: 1024 } }))
      .toThrow(/workgroup memory/);
    for (const b of bufs) rt!.release(b);
  });

  it.skipIf(!rt || !rt.hasF16)('GPU f16 unembedding matches the CPU twin on f16-rounded weights', async () => {
    const c = makeCase(r, 7, 999, 41, 1, 4);
    const cpu = logprobCpu(c.H, roundThroughF16(c.W), c.targets, c.mask, c.T, c.V, c.d);
    const gpu = await runGpu(rt!, c, { f16: true }, toF16(c.W));
    const v = validate(gpu.logp, cpu.logp, { atol: 1e-4, mask: c.mask });
    expect(v.ok, v.summary).toBe(true);
  });

  // ---- 'gemm': the register-blocked GEMM kernel (the hardware default), forced here ----
  const GEMM = { kind: 'gemm' } as const;
  const check = async (c: Case, variant: LogprobVariant, what: string, softcap = 0, W16 = false) => {
    const cpu = logprobCpu(c.H, W16 ? roundThroughF16(c.W) : c.W, c.targets, c.mask, c.T, c.V, c.d, c.B, c.L, softcap);
    const gpu = await runGpu(rt!, c, variant, W16 ? toF16(c.W) : c.W, softcap);
    const v = validate(gpu.logp, cpu.logp, { atol: 1e-4, rtol: 2e-6, mask: c.mask });
    expect(v.ok, `${what} ${JSON.stringify(variant)} T=${c.T} V=${c.V} d=${c.d} cap=${softcap}: ${v.summary}`).toBe(true);
    for (let t = 0; t < c.T; t++) if (!c.mask[t]) expect(gpu.logp[t], `masked position ${t}`).toBe(0);
    return gpu.logp;
  };

  it.skipIf(!rt)('gemm matches the CPU twin on ragged shapes (T, V, d off every tile; d % 4 = 0 and not), masks, split and unsplit vocabulary', async () => {
    const shapes = [
      { T: 1, V: 1001, d: 33, B: 1 },   // one position in a (short-batch, 32-row) tile, scalar loads
      { T: 65, V: 1030, d: 17, B: 5 },  // one row past the tile; V off the 128-entry tile
      { T: 130, V: 2053, d: 48, B: 2 }, // vec4 loads (d % 4 = 0), three row tiles
      { T: 9, V: 64, d: 1, B: 1 },      // vocabulary smaller than one tile, d = 1
      { T: 32, V: 300, d: 12, B: 4 },   // exactly one short-batch row tile
      { T: 70, V: 777, d: 70, B: 7 },   // d % 4 = 2, K loop of three steps with a ragged last one
    ];
    for (const s of shapes) {
      const c = makeCase(r, s.T, s.V, s.d, s.B, 4);
      await check(c, GEMM, 'split');
      // targetWorkgroups 1: no vocabulary split, every workgroup walks all of V in BN tiles
      // (running max/sum carried across tiles, accumulators re-zeroed per tile).
      await check(c, { ...GEMM, targetWorkgroups: 1 }, 'unsplit');
    }
  });

  it.skipIf(!rt)('gemm: targets on every tile and split edge, at row-tile edges, soft-cap on and off', async () => {
    const T = 130, V = 1000, d = 36;
    const { chunk } = vocabSplits(T, V, LOGPROB_GEMM_DEFAULT.bn, 12, LOGPROB_GEMM_DEFAULT.bm);
    expect(chunk).toBeGreaterThan(LOGPROB_GEMM_DEFAULT.bn); // several tiles per split, so tile edges inside splits exist
    const c = makeCase(r, T, V, d, 2, 6);
    const edges = [0, 1, 127, 128, 129, 255, 256, chunk - 1, chunk, chunk + 1, 2 * chunk - 1, V - 2, V - 1];
    for (let t = 0; t < T; t++) c.targets[t] = edges[t % edges.length];
    for (const t of [0, 63, 64, 127, 128, 129]) c.mask[t] = 1; // row-tile edges scored
    for (const cap of [0, 3]) {
      await check(c, { ...GEMM, targetWorkgroups: 12 }, 'edges', cap);
      await check(c, GEMM, 'edges', cap);
    }
  });

  it.skipIf(!rt)('gemm equals the tiled kernel (to f32 rounding) on the same inputs, with and without soft-cap', async () => {
    for (const [c, cap] of [[makeCase(r, 100, 3001, 40, 4, 8), 0], [makeCase(r, 33, 1500, 31, 3, 40), 30]] as const) {
      const a = await check(c, GEMM, 'gemm', cap);
      const b = await check(c, { kind: 'tiled' }, 'tiled', cap);
      const v = validate(a, b, { atol: 2e-5, rtol: 1e-6, mask: c.mask });
      expect(v.ok, `gemm vs tiled cap=${cap}: ${v.summary}`).toBe(true);
    }
  });

  it.skipIf(!rt)('gemm: large-magnitude logits (rows of exactly ±80 and ±3000, the rest spread ±100) stay finite and match', async () => {
    const T = 70, V = 300, d = 8;
    const c = makeCase(r, T, V, d, 1, 1);
    c.mask.fill(1);
    // W entries ±10, so h·w = ±10 Σh: row 0 (H = 1) gives exactly ±80, row 69 (second row tile,
    // H = 37.5) exactly ±3000 (sums exact in f32); the random rows land within about ±100.
    for (let v = 0; v < V; v++) for (let k = 0; k < d; k++) c.W[v * d + k] = (v % 2 ? -80 : 80) / d;
    for (let k = 0; k < d; k++) { c.H[k] = 1; c.H[69 * d + k] = 3000 / 80; }
    c.targets[0] = 0;
    c.targets[69] = V - 1; // odd: logit -3000
    const cpu = logprobCpu(c.H, c.W, c.targets, c.mask, T, V, d);
    expect(Math.min(...cpu.logp)).toBeLessThan(-5000); // an odd target on row 69: -6000 - log 150
    const logp = await check(c, GEMM, 'extreme');
    expect(logp.every(Number.isFinite)).toBe(true);
    await check(c, GEMM, 'extreme capped', 50);
  });

  it.skipIf(!rt || !rt.hasF16)('gemm with f16 weights matches the CPU twin on f16-rounded weights (vec4 and scalar paths, soft-cap)', async () => {
    for (const [c, cap] of [[makeCase(r, 70, 999, 41, 2, 4), 0], [makeCase(r, 70, 1029, 64, 2, 12), 5]] as const) {
      await check(c, { ...GEMM, f16: true }, 'f16', cap, true);
    }
  });

  it.skipIf(!rt)('gemm tile configurations: those valid for this adapter run and agree; invalid ones are refused clearly', async () => {
    const configs = logprobGemmConfigs(rt!.limits);
    expect(configs[0]).toEqual(LOGPROB_GEMM_DEFAULT);
    expect(configs).toContainEqual(LOGPROB_GEMM_SHORT);
    expect(logprobGemmConfigFor(32, rt!.limits)).toEqual(LOGPROB_GEMM_SHORT); // short batches: 32-row tiles
    expect(logprobGemmConfigFor(33, rt!.limits)).toEqual(LOGPROB_GEMM_DEFAULT);
    expect(configs.length).toBeGreaterThan(3);
    for (const g of configs) expect(gemmConfigProblem(g, rt!.limits)).toBeNull();
    const c = makeCase(r, 140, 1100, 23, 4, 4);
    for (const g of [{ bm: 32, bn: 64, bk: 16 }, { bm: 128, bn: 64, bk: 16 }]) {
      expect(configs).toContainEqual(g);
      await check(c, { ...GEMM, gemm: g }, 'config');
    }
    const bufs = [rt!.upload(c.H), rt!.upload(c.W), rt!.upload(c.targets), rt!.upload(c.mask), rt!.acquire(c.T * 4)];
    const run = (gemm: { bm: number; bn: number; bk: number }) => () =>
      logprobGpu(rt!, { H: bufs[0], W: bufs[1], targets: bufs[2], mask: bufs[3], logp: bufs[4], T: c.T, V: c.V, d: c.d, variant: { kind: 'gemm', gemm } });
    expect(run({ bm: 12, bn: 128, bk: 32 })).toThrow(/variant 'gemm' cannot run.*bm=12 must be a positive multiple of 8/);
    expect(run({ bm: 64, bn: 96, bk: 32 })).toThrow(/bn=96 must be 4 × a power of two/);
    expect(run({ bm: 256, bn: 256, bk: 16 })).toThrow(/threads per workgroup, above this device/);
    expect(run({ bm: 32, bn: 64, bk: 512 })).toThrow(/workgroup memory, above this device/);
    for (const b of bufs) rt!.release(b);
    // Limits of a 48 KiB device (NVIDIA) admit more configurations than 16 KiB.
    const lim = (kib: number) => ({ maxComputeWorkgroupStorageSize: kib * 1024, maxComputeInvocationsPerWorkgroup: 256, maxComputeWorkgroupSizeX: 256 });
    expect(logprobGemmConfigs(lim(48)).length).toBeGreaterThan(logprobGemmConfigs(lim(16)).length);
  });

  it.skipIf(!rt)('gemm takes the autotuner\'s tile configuration for the shape class (setTuned), and an explicit one over it', async () => {
    const c = makeCase(r, 40, 500, 16, 2, 4);
    const cls = shapeClass('logprob', { T: c.T, V: c.V, d: c.d, f16: false });
    try {
      // A config no device accepts proves the tuned one is read: the launcher refuses it by name.
      setTuned(rt!, [{ op: 'logprob', shapeClass: cls, variant: 'gemm', config: { bm: 12, bn: 128, bk: 32 } }]);
      await expect(runGpu(rt!, c)).rejects.toThrow(/variant 'gemm' cannot run.*bm=12/);
      await check(c, { kind: 'gemm', gemm: { bm: 32, bn: 64, bk: 16 } }, 'explicit over tuned');
      setTuned(rt!, [{ op: 'logprob', shapeClass: cls, variant: 'gemm', config: { bm: 32, bn: 64, bk: 16 } }]);
      await check(c, {}, 'tuned');
    } finally {
      clearTuned(rt!);
    }
  });

  it.skipIf(!rt)('validateLogprobVariant: gemm (f32, f16) and tiled pass against the CPU twin on this adapter', async () => {
    for (const v of [GEMM, { kind: 'tiled' }, ...(rt!.hasF16 ? [{ ...GEMM, f16: true }] : [])] as LogprobVariant[]) {
      const res = await validateLogprobVariant(rt!, v);
      expect(res.ok, `${JSON.stringify(v)}: ${res.summary}`).toBe(true);
      expect(res.checked).toBeGreaterThan(50);
    }
  });

  // ---- the candidate head (rating prompts): K candidates' log-probs per row, no T×V logits ----
  it('candidate twin: the same stream as logprobCpu, each candidate as a target (bit for bit; soft-cap on and off); bad ids refused', () => {
    const R = 5, V = 4500, d = 11; // V over two of the twin's vocabulary tiles
    const H = randn(r, R * d, 1), W = randn(r, V * d, 6 / Math.sqrt(d));
    const cands = [0, 2047, 2048, V - 1, 17, 17];
    for (const cap of [0, 3]) {
      const got = candidateLogprobCpu(H, W, cands, R, V, d, cap);
      cands.forEach((c, j) => {
        const want = logprobCpu(H, W, new Uint32Array(R).fill(c), new Uint32Array(R).fill(1), R, V, d, 1, R, cap).logp;
        for (let i = 0; i < R; i++) expect(Math.fround(got[i * cands.length + j]), `cap ${cap} row ${i} cand ${c}`).toBe(want[i]);
      });
      // the candidates' probabilities are a part of a distribution
      for (let i = 0; i < R; i++) expect(cands.slice(0, 5).reduce((a, _, j) => a + Math.exp(got[i * cands.length + j]), 0)).toBeLessThan(1);
    }
    expect(() => candidateLogprobCpu(H, W, [V], R, V, d)).toThrow(/candidate token id 4500 is outside the model's vocabulary \(4500\)/);
  });

  async function runCandidates(c: { H: Float32Array; W: Float32Array; R: number; V: number; d: number }, cands: Uint32Array, variant: LogprobVariant, softcap: number) {
    const bufs = { H: rt!.upload(c.H), W: rt!.upload(variant.f16 ? toF16(c.W) : c.W), candidates: rt!.upload(cands), out: rt!.acquire(c.R * cands.length * 4) };
    candidateLogprobGpu(rt!, { ...bufs, R: c.R, K: cands.length, V: c.V, d: c.d, variant, softcap });
    const out = await rt!.readF32(bufs.out, c.R * cands.length);
    for (const b of Object.values(bufs)) rt!.release(b);
    return out;
  }

  it.skipIf(!rt)('candidate head matches its CPU twin in every variant (tiled, direct, gemm; f32 and f16 weights; soft-cap on and off; one and many row tiles)', async () => {
    const shapes = [{ R: 1, V: 1001, d: 33, K: 1 }, { R: 13, V: 2053, d: 64, K: 16 }, { R: 70, V: 5003, d: 17, K: 5 }];
    const variants: LogprobVariant[] = [{ kind: 'tiled' }, { kind: 'direct' }, { kind: 'gemm' }, { kind: 'gemm', gemm: { bm: 32, bn: 64, bk: 16 } }];
    if (rt!.hasF16) variants.push({ kind: 'tiled', f16: true }, { kind: 'gemm', f16: true });
    for (const s of shapes) {
      const c = { ...s, H: randn(r, s.R * s.d, 1), W: randn(r, s.V * s.d, 8 / Math.sqrt(s.d)) };
      const cands = new Uint32Array(s.K).map(() => randInt(r, 0, s.V - 1));
      cands[0] = s.V - 1;
      if (s.K > 2) { cands[1] = 0; cands[2] = cands[s.K - 1]; }
      for (const cap of [0, 4]) {
        for (const variant of variants) {
          const want = candidateLogprobCpu(c.H, variant.f16 ? roundThroughF16(c.W) : c.W, cands, s.R, s.V, s.d, cap);
          const got = await runCandidates(c, cands, variant, cap);
          const v = validate(got, want, { atol: 1e-4, rtol: 1e-5 });
          expect(v.ok, `${JSON.stringify(s)} ${JSON.stringify(variant)} cap ${cap}: ${v.summary}`).toBe(true);
        }
      }
    }
  });

  it.skipIf(!rt)('candidate head: validateCandidateHead passes here; K outside 1..MAX_CANDIDATES is refused', async () => {
    for (const v of [{ kind: 'direct' }, { kind: 'gemm' }, ...(rt!.hasF16 ? [{ kind: 'gemm', f16: true }] : [])] as LogprobVariant[]) {
      const res = await validateCandidateHead(rt!, v);
      expect(res.ok, `${JSON.stringify(v)}: ${res.summary}`).toBe(true);
    }
    const b = [rt!.upload(new Float32Array(8)), rt!.upload(new Float32Array(80)), rt!.upload(new Uint32Array(1)), rt!.acquire(4)];
    expect(() => candidateLogprobGpu(rt!, { H: b[0], W: b[1], candidates: b[2], out: b[3], R: 1, K: MAX_CANDIDATES + 1, V: 10, d: 8 })).toThrow(/candidates \(1 to 64\)/);
    for (const x of b) rt!.release(x);
  });

  it.skipIf(!rt)('quantized LM head (Q8_0, Q4_0, Q4_K, Q6_K blocks, dequantized in the W tile load) matches the twin on the dequantized head; refusals', async () => {
    for (const qtype of [8, 2, 12, 14]) {
      const res = await validateLogprobVariant(rt!, { qtype });
      expect(res.ok, `qtype ${qtype}: ${res.summary}`).toBe(true);
      expect(res.checked).toBeGreaterThan(50);
    }
    const c = makeCase(r, 3, 100, 48, 1, 1);
    await expect(runGpu(rt!, c, { qtype: 12 })).rejects.toThrow(/d = 48 is not a multiple of the Q4_K block size 256/);
    await expect(runGpu(rt!, c, { qtype: 6 })).rejects.toThrow(/ggml type Q5_0 cannot be read as blocks/);
  });

  // ---- 'sgmat' (subgroup matrices): cannot run on a software adapter; refused clearly there,
  // and its WGSL is compile-checked on Dawn's null backend (which offers the feature but runs nothing) ----
  it.skipIf(!rt)('sgmat is refused with the reason on an adapter without subgroup matrices (all software adapters), also by validateLogprobVariant', async () => {
    expect(rt!.device.features.has(SGMAT_FEATURE as GPUFeatureName)).toBe(false);
    expect(sgmatProblem(rt!).problem).toMatch(/no 'chromium-experimental-subgroup-matrix' feature/);
    const c = makeCase(r, 3, 100, 8, 1, 1);
    await expect(runGpu(rt!, c, { kind: 'sgmat' })).rejects.toThrow(/variant 'sgmat' cannot run on this device .*subgroup-matrix/);
    await expect(validateLogprobVariant(rt!, { kind: 'sgmat' })).rejects.toThrow(/variant 'sgmat' cannot run/);
  });

  it('sgmat WGSL (f32 and f16 weights) compiles without errors or warnings on Dawn\'s null backend', async () => {
    const { create } = await import('webgpu');
    const gpu = create(['backend=null', 'enable-dawn-features=allow_unsafe_apis']);
    const adapter = await gpu.requestAdapter();
    expect(adapter, 'dawn.node null backend adapter').toBeTruthy();
    expect(adapter!.features.has(SGMAT_FEATURE as GPUFeatureName)).toBe(true);
    const device = await adapter!.requestDevice({ requiredFeatures: ['shader-f16', 'subgroups', SGMAT_FEATURE as GPUFeatureName] });
    for (const f16Weights of [false, true]) {
      const module = device.createShaderModule({ code: programSource({ ...logprobSpecs({ kind: 'sgmat' }).partial, f16Weights }) });
      const messages = (await module.getCompilationInfo()).messages.map((m) => `${m.type} ${m.lineNum}:${m.linePos} ${m.message}`);
      expect(messages, `f16Weights=${f16Weights}`).toEqual([]);
    }
    device.destroy();
  });
});

