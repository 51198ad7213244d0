import { describe, expect, it } from 'vitest';
import { logprobCpu, logprobGpu, LogprobVariant } from '../kernels/logprob.js';
import { validate } from '../src/validate.js';
import { roundThroughF16, toF16 } from '../src/util/f16.js';
import type { GpuRuntime } from '../src/gpu/runtime.js';
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
});
