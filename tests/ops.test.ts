// The transformer prefill ops (embed, norms, rope, attention, activations, residual add): each CPU
// twin against hand-computed numbers, then each GPU kernel against its CPU twin on shapes that are
// not multiples of any tile (odd d, L = 1, B > 1 with mixed lengths, hd 48/64/128, GQA).

import { describe, expect, it } from 'vitest';
import { addCpu, addGpu } from '../kernels/add.js';
import { embedCpu, embedGpu } from '../kernels/embed.js';
import { layernormCpu, normCpu, normGpu, rmsnormCpu, type NormKind } from '../kernels/norm.js';
import { ropeCpu, ropeGpu, ropeInvFreq, type RopeLayout } from '../kernels/rope.js';
import { attentionCpu, attentionGpu } from '../kernels/attention.js';
import { erf, erfc, gegluCpu, geluCpu, geluErfCpu, geluGpu, geluTanhCpu, swigluCpu, swigluGpu, type GeluKind } from '../kernels/act.js';
import type { GpuRuntime } from '../src/gpu/runtime.js';
import { validate } from '../src/validate.js';
import { gpuRuntime, randInt, randn, rng } from './helpers/gpu.js';

/** got ≈ want within atol + rtol|want| (rtol defaults to atol; pinned f32 results use ~1e-7). */
const close = (got: ArrayLike<number>, want: ArrayLike<number>, atol = 1e-6, rtol = atol) => {
  const v = validate(got, want, { atol, rtol });
  expect(v.ok, v.summary).toBe(true);
};

describe('ops', async () => {
  const rt = await gpuRuntime();
  const r = rng(20240611);

  /** Upload, run `record`, read back `count` floats of `outBuf`, release everything. */
  async function run(g: GpuRuntime, inputs: ArrayBufferView[], record: (bufs: GPUBuffer[]) => GPUBuffer, count: number): Promise<Float32Array> {
    const bufs = inputs.map((a) => g.upload(a));
    const out = record(bufs);
    const got = await g.readF32(out, count);
    for (const b of new Set([...bufs, out])) g.release(b);
    return got;
  }

  // ---------------------------------------------------------------------------------------- embed
  describe('embed', () => {
    it('CPU twin: pinned gather + learned positions; rejects bad ids', () => {
      const tok = Float32Array.from([0, 1, 10, 11, 20, 21]); // V = 3, d = 2
      const pos = Float32Array.from([100, 200, 300, 400]); // 2 positions
      const got = embedCpu([2, 0, 1, 1], tok, pos, 2, 2, 2);
      expect([...got]).toEqual([120, 221, 300, 401, 110, 211, 310, 411]);
      expect(() => embedCpu([0, 3], tok, null, 1, 2, 2)).toThrow(/outside the vocabulary/);
      expect(() => embedCpu([0, -1], tok, null, 1, 2, 2)).toThrow(/outside the vocabulary/);
      expect(() => embedCpu([0, 1, 2], tok, pos, 1, 3, 2)).toThrow(/learned positions/);
    });

    it.skipIf(!rt)('GPU matches the CPU twin (odd d, B > 1, with and without positions)', async () => {
      for (const [B, L, d, V, withPos] of [[3, 5, 37, 11, true], [1, 1, 1, 2, false], [2, 9, 64, 50, false]] as const) {
        const T = B * L, nPos = L + 3;
        const ids = Uint32Array.from({ length: T }, () => randInt(r, 0, V - 1));
        const tok = randn(r, V * d), pos = randn(r, nPos * d);
        const got = await run(rt!, withPos ? [ids, tok, pos] : [ids, tok], ([i, t, p]) => {
          const out = rt!.acquire(T * d * 4);
          embedGpu(rt!, { ids: i!, tokEmb: t!, posEmb: p, nPos, out, B, L, d, vocabSize: V });
          return out;
        }, T * d);
        close(got, embedCpu(ids, tok, withPos ? pos : null, B, L, d), 0);
      }
    });

    it.skipIf(!rt)('GPU clamps an out-of-range id to the last row instead of reading out of bounds', async () => {
      const V = 3, d = 5;
      const tok = randn(r, V * d);
      const got = await run(rt!, [Uint32Array.from([1, 999, 0xffffffff]), tok], ([i, t]) => {
        const out = rt!.acquire(3 * d * 4);
        embedGpu(rt!, { ids: i!, tokEmb: t!, out, B: 1, L: 3, d, vocabSize: V });
        return out;
      }, 3 * d);
      close(got, embedCpu([1, 2, 2], tok, null, 1, 3, d), 0);
    });
  });

  // ---------------------------------------------------------------------------------------- norms
  describe('norm', () => {
    it('CPU twins: pinned RMSNorm and LayerNorm', () => {
      close(rmsnormCpu(Float32Array.from([3, 4]), Float32Array.from([1, 2]), 1, 2, 0), [3 / Math.sqrt(12.5), 8 / Math.sqrt(12.5)]);
      const s = Math.sqrt(1.5); // (x - 2) / sqrt(2/3)
      close(layernormCpu(Float32Array.from([1, 2, 3]), Float32Array.from([1, 1, 2]), Float32Array.from([0, 5, 1]), 1, 3, 0), [-s, 5, 2 * s + 1]);
      // Two-pass variance survives a large mean that one-pass E[x^2] - E[x]^2 would cancel away.
      const x = Float32Array.from([1e4 + 1, 1e4 - 1, 1e4 + 1, 1e4 - 1]);
      close(layernormCpu(x, new Float32Array(4).fill(1), new Float32Array(4), 1, 4, 0), [1, -1, 1, -1]);
    });

    for (const kind of ['rms', 'layer'] as NormKind[]) {
      it.skipIf(!rt)(`GPU ${kind}norm matches the CPU twin (odd d, d < workgroup, offset means, large values)`, async () => {
        const shapes: [number, number, number, number][] = [[1, 1, 1, 0], [5, 7, 1, 0], [13, 48, 1, 0], [3, 289, 1000, 0], [4, 1031, 3, 50], [2, 4097, 1, 0]];
        for (const [rows, d, scale, offset] of shapes) {
          const x = randn(r, rows * d, scale).map((v) => v + offset);
          const w = randn(r, d), b = randn(r, d);
          const eps = 1e-5;
          const got = await run(rt!, [x, w, b], ([xb, wb, bb]) => {
            const out = rt!.acquire(rows * d * 4);
            normGpu(rt!, { kind, x: xb!, weight: wb!, bias: bb, out, rows, d, eps });
            return out;
          }, rows * d);
          // Measured on SwiftShader: max abs err ~4e-6 (a few f32 ulps of the output).
          const v = validate(got, normCpu(kind, x, w, b, rows, d, eps), { atol: 1e-5, rtol: 1e-5 });
          expect(v.ok, `${kind} rows=${rows} d=${d}: ${v.summary}`).toBe(true);
        }
      });
    }
  });

  // ---------------------------------------------------------- family features (Gemma, Llama 3.x)
  describe('family features', () => {
    it('CPU twins: RMSNorm (1 + w), scaled embedding, GeGLU, linear RoPE scaling, soft-capped scores', () => {
      const x = randn(r, 3 * 10), w = randn(r, 10);
      close(rmsnormCpu(x, w, 3, 10, 1e-6, 1), rmsnormCpu(x, w.map((v) => v + 1), 3, 10, 1e-6), 1e-7);
      const tok = Float32Array.from([0, 1, 10, 11]);
      expect([...embedCpu([1, 0], tok, null, 1, 2, 2, 8)]).toEqual([80, 88, 0, 8]);
      const g = randn(r, 20, 3), u = randn(r, 20);
      const gt = geluTanhCpu(g);
      close(gegluCpu(g, u), gt.map((v, i) => v * u[i]), 1e-6);
      close(ropeInvFreq(16, 10000, { type: 'linear', factor: 8 }), ropeInvFreq(16, 10000).map((v) => Math.fround(v / 8)), 0);
      // Soft-capping bounds every score by the cap: with q·k huge, cap 1 makes the scores within ±1.
      const L = 4, hd = 2;
      const q = Float32Array.from({ length: L * hd }, (_, i) => (i % 2 ? 100 : -50)), k = q.slice(), v = randn(r, L * hd);
      const capped = attentionCpu(q, k, v, [L], 1, L, 1, 1, hd, true, { softcap: 1 });
      const manual = new Float32Array(L * hd);
      for (let i = 0; i < L; i++) {
        const sc: number[] = [];
        for (let j = 0; j <= i; j++) sc.push(Math.tanh((q[2 * i] * k[2 * j] + q[2 * i + 1] * k[2 * j + 1]) / Math.SQRT2));
        const m = Math.max(...sc), e = sc.map((s2) => Math.exp(s2 - m)), z = e.reduce((a, b) => a + b, 0);
        for (let dd = 0; dd < hd; dd++) manual[i * hd + dd] = e.reduce((a2, p2, j) => a2 + p2 * v[j * hd + dd], 0) / z;
      }
      close(capped, manual, 1e-6);
    });

    it.skipIf(!rt)('GPU RMSNorm with weight offset 1 matches the CPU twin', async () => {
      for (const [rows, d] of [[5, 64], [3, 37], [7, 256]] as const) {
        const x = randn(r, rows * d, 2), w = randn(r, d, 0.3);
        const got = await run(rt!, [x, w], ([xb, wb]) => {
          const out = rt!.acquire(rows * d * 4);
          normGpu(rt!, { kind: 'rms', x: xb!, weight: wb!, out, rows, d, eps: 1e-6, weightOffset: 1 });
          return out;
        }, rows * d);
        close(got, rmsnormCpu(x, w, rows, d, 1e-6, 1), 1e-5);
      }
    });

    it.skipIf(!rt)('GPU scaled embedding matches the CPU twin', async () => {
      const B = 2, L = 7, d = 33, V = 19;
      const ids = Uint32Array.from({ length: B * L }, () => randInt(r, 0, V - 1));
      const tok = randn(r, V * d);
      const got = await run(rt!, [ids, tok], ([i, t]) => {
        const out = rt!.acquire(B * L * d * 4);
        embedGpu(rt!, { ids: i!, tokEmb: t!, out, B, L, d, vocabSize: V, scale: Math.sqrt(2304) });
        return out;
      }, B * L * d);
      close(got, embedCpu(ids, tok, null, B, L, d, Math.sqrt(2304)), 1e-6);
    });

    it.skipIf(!rt)('GPU GeGLU matches the CPU twin, out of place and in place', async () => {
      const n = 1000;
      const gate = randn(r, n, 4), up = randn(r, n);
      const want = gegluCpu(gate, up);
      for (const inplace of [false, true]) {
        const got = await run(rt!, [gate, up], ([gb, ub]) => {
          const out = rt!.acquire(n * 4);
          swigluGpu(rt!, { gate: gb!, up: ub!, out: inplace ? null : out, n, act: 'gelu_tanh' });
          return inplace ? gb! : out;
        }, n);
        close(got, want, 1e-5);
      }
    });

    it.skipIf(!rt)('GPU attention soft-cap (alone, with a window and a query_pre_attn_scalar scale) matches the CPU twin', async () => {
      for (const c of [
        { B: 2, L: 37, nH: 4, nKv: 2, hd: 32, seq: [37, 20], softcap: 50, window: 0, scale: 1, qs: 6 },
        { B: 1, L: 45, nH: 2, nKv: 1, hd: 64, seq: [45], softcap: 5, window: 9, scale: 1 / Math.sqrt(256), qs: 8 },
        { B: 1, L: 20, nH: 2, nKv: 2, hd: 16, seq: [20], softcap: 0.5, window: 0, scale: 0.25, qs: 1 },
      ]) {
        const T = c.B * c.L;
        const q = randn(r, T * c.nH * c.hd, c.qs), k = randn(r, T * c.nKv * c.hd, c.qs), v = randn(r, T * c.nKv * c.hd);
        const got = await run(rt!, [q, k, v, Uint32Array.from(c.seq)], ([qb, kb, vb, sb]) => {
          const out = rt!.acquire(q.byteLength);
          attentionGpu(rt!, { q: qb!, k: kb!, v: vb!, seqLen: sb!, out, B: c.B, L: c.L, nHeads: c.nH, nKvHeads: c.nKv, headDim: c.hd, window: c.window, scale: c.scale, softcap: c.softcap });
          return out;
        }, q.length);
        const want = attentionCpu(q, k, v, c.seq, c.B, c.L, c.nH, c.nKv, c.hd, true, { window: c.window, scale: c.scale, softcap: c.softcap });
        // The cap matters in these cases.
        expect(validate(want, attentionCpu(q, k, v, c.seq, c.B, c.L, c.nH, c.nKv, c.hd, true, { window: c.window, scale: c.scale }), { atol: 1e-3 }).ok).toBe(false);
        const res = validate(got, want, { atol: 1e-4, rtol: 1e-4 });
        expect(res.ok, `${JSON.stringify(c)}: ${res.summary}`).toBe(true);
      }
    });

    it('CPU twin: partial rotary rotates the leading dims only (pairs within them); longrope divides by its factors and scales cos/sin', () => {
      const B = 1, L = 6, nH = 2, hd = 16, rd = 12;
      const x = randn(r, B * L * nH * hd);
      const got = ropeCpu(x, B, L, nH, hd, 10000, 'half', null, rd);
      // The rotated part equals a full rotation of a head of dim rd; the rest is untouched.
      const head = (v: Float32Array, lo: number, hi: number) => {
        const out = new Float32Array(B * L * nH * (hi - lo));
        for (let t = 0; t < B * L * nH; t++) out.set(v.subarray(t * hd + lo, t * hd + hi), t * (hi - lo));
        return out;
      };
      close(head(got, 0, rd), ropeCpu(head(x, 0, rd), B, L, nH, rd, 10000, 'half'), 0);
      close(head(got, rd, hd), head(x, rd, hd), 0);
      const factors = Array.from({ length: rd / 2 }, (_, j) => 1 + j * 0.5);
      const lr = { type: 'longrope', factors, attentionFactor: 1.2 } as const;
      const f = Math.fround;
      const inv = ropeInvFreq(rd, 10000, lr);
      for (let j = 0; j < rd / 2; j++) expect(inv[j]).toBe(f(1 / f(f(factors[j]) * f(Math.pow(10000, f((2 * j) / rd))))));
      // Position 0 (angle 0): cos = 1, sin = 0, so rotated dims are scaled by the attention factor.
      const g2 = ropeCpu(x, B, L, nH, hd, 10000, 'half', lr, rd);
      close(g2.subarray(0, rd), x.subarray(0, rd).map((v) => v * 1.2), 1e-6);
      close(g2.subarray(rd, hd), x.subarray(rd, hd), 0);
      expect(() => ropeCpu(x, B, L, nH, hd, 10000, 'half', null, 7)).toThrow(/rotary dim/);
    });

    it.skipIf(!rt)('GPU partial rotary and longrope match the CPU twin (both layouts)', async () => {
      for (const layout of ['half', 'interleaved'] as const) {
        for (const [hd, rd, sc] of [[32, 24, null], [64, 48, { type: 'longrope', factors: Array.from({ length: 24 }, (_, j) => 1 + j / 7), attentionFactor: 1.19 }], [16, 16, { type: 'longrope', factors: Array.from({ length: 8 }, () => 2), attentionFactor: 1.1 }]] as const) {
          const B = 2, L = 19, nH = 3, nKv = 1;
          const q = randn(r, B * L * nH * hd), k = randn(r, B * L * nKv * hd);
          const qb = rt!.upload(q), kb = rt!.upload(k);
          ropeGpu(rt!, { q: qb, k: kb, B, L, nHeads: nH, nKvHeads: nKv, headDim: hd, theta: 10000, layout, scaling: sc as never, rotaryDim: rd });
          const gq = await rt!.readF32(qb, q.length), gk = await rt!.readF32(kb, k.length);
          rt!.release(qb); rt!.release(kb);
          close(gq, ropeCpu(q, B, L, nH, hd, 10000, layout, sc as never, rd), 1e-5);
          close(gk, ropeCpu(k, B, L, nKv, hd, 10000, layout, sc as never, rd), 1e-5);
        }
      }
    });

    it.skipIf(!rt)('GPU RoPE with linear scaling matches the CPU twin', async () => {
      const B = 2, L = 21, nH = 4, nKv = 1, hd = 32, theta = 1e6, sc = { type: 'linear', factor: 8 } as const;
      const q = randn(r, B * L * nH * hd), k = randn(r, B * L * nKv * hd);
      const qb = rt!.upload(q), kb = rt!.upload(k);
      ropeGpu(rt!, { q: qb, k: kb, B, L, nHeads: nH, nKvHeads: nKv, headDim: hd, theta, layout: 'half', scaling: sc });
      const gq = await rt!.readF32(qb, q.length);
      rt!.release(qb); rt!.release(kb);
      close(gq, ropeCpu(q, B, L, nH, hd, theta, 'half', sc), 1e-5);
    });
  });

  // ----------------------------------------------------------------------------------------- rope
  describe('rope', () => {
    it('inv_freq is run.c / HF f32: 1/theta^(2j/hd) with each step rounded to f32', () => {
      const f = Math.fround;
      const t = ropeInvFreq(48, 10000);
      expect(t.length).toBe(24);
      expect(t[0]).toBe(1);
      for (let j = 0; j < 24; j++) expect(t[j]).toBe(f(1 / f(Math.pow(10000, f((2 * j) / 48)))));
      close(ropeInvFreq(4, 10000), [1, 0.01], 1e-9);
    });

    it('CPU twin: pinned rotation of a known vector in both layouts', () => {
      // B=1, L=2, one head of dim 4; row 0 (pos 0) is unchanged, row 1 rotates by pos * freq.
      const x = Float32Array.from([1, 2, 3, 4, 1, 0, 1, 0]);
      const c1 = Math.cos(1), s1 = Math.sin(1), c2 = Math.cos(Math.fround(0.01)), s2 = Math.sin(Math.fround(0.01));
      // interleaved: pairs (0,1) at freq 1 and (2,3) at freq 0.01
      close(ropeCpu(x, 1, 2, 1, 4, 10000, 'interleaved'), [1, 2, 3, 4, c1, s1, c2, s2]);
      // half: pairs (0,2) at freq 1 and (1,3) at freq 0.01: x0 = x2 = 1, x1 = x3 = 0
      close(ropeCpu(x, 1, 2, 1, 4, 10000, 'half'), [1, 2, 3, 4, c1 - s1, 0, s1 + c1, 0]);
    });

    it('CPU twin: half layout is the interleaved layout under the (2j, 2j+1) -> (j, j+hd/2) permutation', () => {
      const B = 2, L = 5, nH = 3, hd = 8, hh = hd / 2;
      const x = randn(r, B * L * nH * hd);
      const perm = (v: Float32Array) => { // interleaved order -> half order, per head
        const out = new Float32Array(v.length);
        for (let o = 0; o < v.length; o += hd) for (let j = 0; j < hh; j++) { out[o + j] = v[o + 2 * j]; out[o + j + hh] = v[o + 2 * j + 1]; }
        return out;
      };
      close(ropeCpu(perm(x), B, L, nH, hd, 10000, 'half'), perm(ropeCpu(x, B, L, nH, hd, 10000, 'interleaved')), 1e-7);
    });

    const cases: [number, number, number, number, number, number][] = [
      // B, L, nH, nKv, hd, theta
      [2, 37, 6, 2, 48, 10000],
      [3, 1, 2, 1, 64, 1e6],
      [1, 13, 4, 4, 128, 500000],
    ];
    for (const layout of ['interleaved', 'half'] as RopeLayout[]) {
      it.skipIf(!rt)(`GPU ${layout} matches the CPU twin (GQA, L=1, hd 48/64/128)`, async () => {
        for (const [B, L, nH, nKv, hd, theta] of cases) {
          const T = B * L;
          const q = randn(r, T * nH * hd), k = randn(r, T * nKv * hd, 3);
          const qb = rt!.upload(q), kb = rt!.upload(k);
          ropeGpu(rt!, { q: qb, k: kb, B, L, nHeads: nH, nKvHeads: nKv, headDim: hd, theta, layout });
          const gq = await rt!.readF32(qb, q.length), gk = await rt!.readF32(kb, k.length);
          rt!.release(qb); rt!.release(kb);
          // The angle is the same f32 on both sides; measured max abs err ~1e-6 (K is scaled by 3).
          const vq = validate(gq, ropeCpu(q, B, L, nH, hd, theta, layout), { atol: 1e-5, rtol: 1e-5 });
          const vk = validate(gk, ropeCpu(k, B, L, nKv, hd, theta, layout), { atol: 1e-5, rtol: 1e-5 });
          expect(vq.ok, `q B=${B} L=${L} hd=${hd}: ${vq.summary}`).toBe(true);
          expect(vk.ok, `k B=${B} L=${L} hd=${hd}: ${vk.summary}`).toBe(true);
        }
      });
    }

    const llama3 = { type: 'llama3', factor: 8, lowFreqFactor: 1, highFreqFactor: 4, originalMaxPositionEmbeddings: 8192 } as const;
    it('llama3 scaling: wavelengths below orig/high kept, above orig/low divided by factor, smooth between (modeling_rope_utils.py)', () => {
      const hd = 128, theta = 500000;
      const base = ropeInvFreq(hd, theta), got = ropeInvFreq(hd, theta, llama3);
      let kept = 0, divided = 0, smoothed = 0;
      for (let j = 0; j < hd / 2; j++) {
        const wl = (2 * Math.PI) / base[j];
        if (wl < 8192 / 4) { expect(got[j]).toBe(base[j]); kept++; }
        else if (wl > 8192 / 1) { expect(got[j]).toBe(Math.fround(base[j] / 8)); divided++; }
        else {
          const s = (8192 / wl - 1) / (4 - 1);
          expect(got[j]).toBe(Math.fround((1 - s) * (base[j] / 8) + s * base[j]));
          expect(got[j]).toBeLessThan(base[j]);
          expect(got[j]).toBeGreaterThan(base[j] / 8);
          smoothed++;
        }
      }
      // Llama 3.1's head dim 128 / theta 5e5 has entries in all three bands.
      expect(kept).toBeGreaterThan(0); expect(divided).toBeGreaterThan(0); expect(smoothed).toBeGreaterThan(0);
    });

    it.skipIf(!rt)('GPU with llama3 scaling matches the CPU twin', async () => {
      const B = 2, L = 29, nH = 4, nKv = 2, hd = 64, theta = 500000;
      // A small original context so that all three bands occur at hd 64.
      const sc = { ...llama3, originalMaxPositionEmbeddings: 64 };
      const q = randn(r, B * L * nH * hd), k = randn(r, B * L * nKv * hd);
      const qb = rt!.upload(q), kb = rt!.upload(k);
      ropeGpu(rt!, { q: qb, k: kb, B, L, nHeads: nH, nKvHeads: nKv, headDim: hd, theta, layout: 'half', scaling: sc });
      const gq = await rt!.readF32(qb, q.length), gk = await rt!.readF32(kb, k.length);
      rt!.release(qb); rt!.release(kb);
      const wantQ = ropeCpu(q, B, L, nH, hd, theta, 'half', sc);
      // The scaling changed something (it is not the unscaled rotation).
      expect(validate(wantQ, ropeCpu(q, B, L, nH, hd, theta, 'half'), { atol: 1e-4 }).ok).toBe(false);
      const vq = validate(gq, wantQ, { atol: 1e-5, rtol: 1e-5 });
      const vk = validate(gk, ropeCpu(k, B, L, nKv, hd, theta, 'half', sc), { atol: 1e-5, rtol: 1e-5 });
      expect(vq.ok, vq.summary).toBe(true);
      expect(vk.ok, vk.summary).toBe(true);
    });

    it.skipIf(!rt)('GPU stays accurate at positions up to 2047 (angle reduced mod 2pi before sin/cos)', async () => {
      const B = 1, L = 2048, hd = 64;
      const q = randn(r, L * hd), k = randn(r, L * hd);
      const qb = rt!.upload(q), kb = rt!.upload(k);
      ropeGpu(rt!, { q: qb, k: kb, B, L, nHeads: 1, nKvHeads: 1, headDim: hd, theta: 10000, layout: 'half' });
      const gq = await rt!.readF32(qb, q.length);
      rt!.release(qb); rt!.release(kb);
      const v = validate(gq, ropeCpu(q, B, L, 1, hd, 10000, 'half'), { atol: 1e-5, rtol: 1e-5 });
      expect(v.ok, v.summary).toBe(true);
    });
  });

  // ------------------------------------------------------------------------------------ attention
  describe('attention', () => {
    it('CPU twin: pinned L=2 case by hand, and a pad row', () => {
      // hd = 2: q0 = [1,0], q1 = [0,1]; k0 = [1,0], k1 = [1,1]; v0 = [1,2], v1 = [3,4].
      const q = Float32Array.from([1, 0, 0, 1]), k = Float32Array.from([1, 0, 1, 1]), v = Float32Array.from([1, 2, 3, 4]);
      // Row 0 sees key 0 only. Row 1: scores [0, 1] / sqrt 2, weight of key 1 = sigmoid(1/sqrt2).
      const w = 1 / (1 + Math.exp(-1 / Math.SQRT2));
      close(attentionCpu(q, k, v, [2], 1, 2, 1, 1, 2), [1, 2, 1 + 2 * w, 2 + 2 * w]);
      close(attentionCpu(q, k, v, [1], 1, 2, 1, 1, 2), [1, 2, 0, 0]);
    });

    it('CPU twin: grouped KV heads equal the KV heads repeated (repeat_kv)', () => {
      const B = 2, L = 6, nH = 6, nKv = 2, hd = 3, group = nH / nKv;
      const q = randn(r, B * L * nH * hd), k = randn(r, B * L * nKv * hd), v = randn(r, B * L * nKv * hd);
      const rep = (x: Float32Array) => {
        const out = new Float32Array(B * L * nH * hd);
        for (let t = 0; t < B * L; t++) for (let h = 0; h < nH; h++) for (let d = 0; d < hd; d++) {
          out[(t * nH + h) * hd + d] = x[(t * nKv + Math.floor(h / group)) * hd + d];
        }
        return out;
      };
      const seq = [6, 4];
      close(attentionCpu(q, k, v, seq, B, L, nH, nKv, hd), attentionCpu(q, rep(k), rep(v), seq, B, L, nH, nH, hd), 1e-7);
    });

    it('CPU twin: a sliding window of W keys (query included) equals full attention over only those keys', () => {
      const L = 9, nH = 2, hd = 4, W = 3;
      const q = randn(r, L * nH * hd), k = randn(r, L * nH * hd), v = randn(r, L * nH * hd);
      const got = attentionCpu(q, k, v, [L], 1, L, nH, nH, hd, true, { window: W });
      const full = attentionCpu(q, k, v, [L], 1, L, nH, nH, hd);
      for (let i = 0; i < L; i++) {
        // Row i alone: keys i-W+1..i as a short sequence whose last row is the query.
        const j0 = Math.max(0, i - W + 1), n = i - j0 + 1;
        const sub = (x: Float32Array) => x.slice(j0 * nH * hd, (i + 1) * nH * hd);
        const want = attentionCpu(sub(q), sub(k), sub(v), [n], 1, n, nH, nH, hd).slice((n - 1) * nH * hd);
        close(got.slice(i * nH * hd, (i + 1) * nH * hd), want, 1e-7);
      }
      // Rows past the window differ from full attention; rows within it do not.
      close(got.slice(0, W * nH * hd), full.slice(0, W * nH * hd), 0);
      expect(validate(got, full, { atol: 1e-3 }).ok).toBe(false);
      expect(() => attentionCpu(q, k, v, [L], 1, L, nH, nH, hd, false, { window: W })).toThrow(/causal/);
    });

    it('CPU twin: an explicit scale replaces 1/sqrt(hd)', () => {
      const L = 5, hd = 4;
      const q = randn(r, L * hd), k = randn(r, L * hd), v = randn(r, L * hd);
      const q2 = q.map((x) => x * 0.3 * Math.sqrt(hd));
      close(attentionCpu(q, k, v, [L], 1, L, 1, 1, hd, true, { scale: 0.3 }), attentionCpu(q2, k, v, [L], 1, L, 1, 1, hd), 1e-6);
    });

    it.skipIf(!rt)('GPU sliding window and explicit scale match the CPU twin (windows below, across and above the 16-key tile)', async () => {
      const cases2: { B: number; L: number; nH: number; nKv: number; hd: number; seq: number[]; window: number; scale?: number }[] = [
        { B: 2, L: 50, nH: 4, nKv: 2, hd: 32, seq: [50, 33], window: 5 },
        { B: 1, L: 70, nH: 2, nKv: 1, hd: 64, seq: [70], window: 16 },
        { B: 1, L: 70, nH: 2, nKv: 1, hd: 64, seq: [70], window: 17, scale: 0.05 },
        { B: 3, L: 41, nH: 3, nKv: 3, hd: 48, seq: [41, 1, 29], window: 1 },
        { B: 1, L: 20, nH: 2, nKv: 2, hd: 16, seq: [20], window: 64 },
      ];
      for (const c of cases2) {
        const T = c.B * c.L;
        const q = randn(r, T * c.nH * c.hd), k = randn(r, T * c.nKv * c.hd), v = randn(r, T * c.nKv * c.hd);
        const got = await run(rt!, [q, k, v, Uint32Array.from(c.seq)], ([qb, kb, vb, sb]) => {
          const out = rt!.acquire(q.byteLength);
          attentionGpu(rt!, { q: qb!, k: kb!, v: vb!, seqLen: sb!, out, B: c.B, L: c.L, nHeads: c.nH, nKvHeads: c.nKv, headDim: c.hd, window: c.window, scale: c.scale });
          return out;
        }, q.length);
        const want = attentionCpu(q, k, v, c.seq, c.B, c.L, c.nH, c.nKv, c.hd, true, { window: c.window, scale: c.scale });
        const res = validate(got, want, { atol: 1e-4, rtol: 1e-4 });
        expect(res.ok, `${JSON.stringify(c)}: ${res.summary}`).toBe(true);
      }
    });

    async function attnGpu(q: Float32Array, k: Float32Array, v: Float32Array, seq: number[], B: number, L: number, nH: number, nKv: number, hd: number) {
      return run(rt!, [q, k, v, Uint32Array.from(seq)], ([qb, kb, vb, sb]) => {
        const out = rt!.acquire(q.byteLength);
        attentionGpu(rt!, { q: qb!, k: kb!, v: vb!, seqLen: sb!, out, B, L, nHeads: nH, nKvHeads: nKv, headDim: hd });
        return out;
      }, q.length);
    }

    const cases: { B: number; L: number; nH: number; nKv: number; hd: number; seq: number[]; scale?: number }[] = [
      { B: 3, L: 37, nH: 6, nKv: 2, hd: 48, seq: [37, 20, 1] },
      { B: 2, L: 1, nH: 2, nKv: 1, hd: 64, seq: [1, 0] },
      { B: 2, L: 23, nH: 4, nKv: 4, hd: 64, seq: [17, 99] },
      { B: 1, L: 19, nH: 2, nKv: 1, hd: 128, seq: [19] },
      { B: 1, L: 33, nH: 3, nKv: 1, hd: 5, seq: [33] },
      // Sharp softmax: scores in the hundreds, the running max changes between key tiles.
      { B: 2, L: 40, nH: 2, nKv: 1, hd: 48, seq: [40, 35], scale: 6 },
    ];
    it.skipIf(!rt)('GPU matches the CPU twin (GQA, mixed lengths, L=1, hd 5/48/64/128, sharp scores)', async () => {
      for (const c of cases) {
        const T = c.B * c.L;
        const q = randn(r, T * c.nH * c.hd, c.scale ?? 1), k = randn(r, T * c.nKv * c.hd, c.scale ?? 1), v = randn(r, T * c.nKv * c.hd);
        const got = await attnGpu(q, k, v, c.seq, c.B, c.L, c.nH, c.nKv, c.hd);
        const want = attentionCpu(q, k, v, c.seq, c.B, c.L, c.nH, c.nKv, c.hd);
        // Measured: ~7e-7 abs, ~1.4e-5 for the sharp-score case.
        const res = validate(got, want, { atol: 1e-4, rtol: 1e-4 });
        expect(res.ok, `${JSON.stringify(c)}: ${res.summary}`).toBe(true);
      }
    });

    it.skipIf(!rt)('GPU: a sequence inside a padded batch equals the sequence alone, and pad rows are zero', async () => {
      const nH = 6, nKv = 2, hd = 48, qs = nH * hd, kvs = nKv * hd;
      const B = 3, L = 37, seq = [30, 20, 37], s = seq[1];
      const q = randn(r, B * L * qs), k = randn(r, B * L * kvs), v = randn(r, B * L * kvs);
      const batch = await attnGpu(q, k, v, seq, B, L, nH, nKv, hd);
      // Sequence 1 alone, unpadded (L = its length).
      const alone = await attnGpu(q.slice(L * qs, (L + s) * qs), k.slice(L * kvs, (L + s) * kvs), v.slice(L * kvs, (L + s) * kvs), [s], 1, s, nH, nKv, hd);
      const inBatch = batch.slice(L * qs, (L + s) * qs);
      const res = validate(inBatch, alone, { atol: 1e-5 });
      expect(res.ok, res.summary).toBe(true);
      expect(res.maxAbsErr).toBe(0); // same key tiles, same order: bit-identical
      // Pad rows of sequences 0 and 1 are exactly zero.
      for (const [b, len] of [[0, seq[0]], [1, seq[1]]]) {
        const pads = batch.slice((b * L + len) * qs, (b + 1) * L * qs);
        expect(pads.every((x) => x === 0), `pad rows of sequence ${b}`).toBe(true);
      }
    });
  });

  // ---------------------------------------------------------------------------------- activations
  describe('act', () => {
    it('CPU twins: pinned values', () => {
      close(swigluCpu(Float32Array.from([1, -2, 0]), Float32Array.from([2, 3, 5])), [2 / (1 + Math.exp(-1)), -6 / (1 + Math.exp(2)), 0]);
      // HF gelu_new(1) and exact GELU values (scipy: 0.5 x (1 + erf(x / sqrt 2))).
      close(geluTanhCpu(Float32Array.from([1, -1, 0])), [0.8411919906082768, -0.15880800939172324, 0]);
      close(geluErfCpu(Float32Array.from([1, -3, 0, -10])), [0.8413447460685429, -0.0040496940948904, 0, -7.619853024160527e-23], 0, 1e-7);
      expect(Math.abs(erf(0.5) - 0.5204998778130465)).toBeLessThan(1e-15);
      expect(Math.abs(erfc(3) / 2.209049699858544e-5 - 1)).toBeLessThan(1e-13);
      expect(Math.abs(erfc(5) / 1.5374597944280349e-12 - 1)).toBeLessThan(1e-13);
    });

    // Odd length, and the extremes where naive tanh / exp overflow to NaN.
    const n = 1237;
    const extremes = [-1e30, -1e4, -100, -89, -30, -10, -1e-8, 0, 1e-8, 10, 30, 89, 100, 1e4, 1e30];
    const input = () => {
      const x = randn(r, n, 3);
      x.set(extremes, 0);
      return x;
    };

    it.skipIf(!rt)('GPU swiglu matches the CPU twin, out of place and in place', async () => {
      const gate = input(), up = randn(r, n);
      const want = swigluCpu(gate, up);
      for (const inplace of [false, true]) {
        const got = await run(rt!, [gate, up], ([g, u]) => {
          const out = inplace ? g! : rt!.acquire(n * 4);
          swigluGpu(rt!, { gate: g!, up: u!, out: inplace ? null : out, n });
          return out;
        }, n);
        const v = validate(got, want, { atol: 1e-5, rtol: 1e-5 });
        expect(v.ok, `inplace=${inplace}: ${v.summary}`).toBe(true);
      }
    });

    for (const kind of ['tanh', 'erf'] as GeluKind[]) {
      it.skipIf(!rt)(`GPU gelu ${kind} matches the CPU twin, out of place and in place`, async () => {
        const x = input();
        const want = geluCpu(kind, x);
        for (const inplace of [false, true]) {
          const got = await run(rt!, [x], ([xb]) => {
            const out = inplace ? xb! : rt!.acquire(n * 4);
            geluGpu(rt!, { x: xb!, out: inplace ? undefined : out, n, kind });
            return out;
          }, n);
          // erf: the approximation's relative error is < 1.2e-7, so 1e-6 holds with room to spare.
          const tol = kind === 'erf' ? 1e-6 : 1e-5;
          const v = validate(got, want, { atol: tol, rtol: tol });
          expect(v.ok, `inplace=${inplace}: ${v.summary}`).toBe(true);
        }
      });
    }
  });

  // ------------------------------------------------------------------------------------------ add
  describe('add', () => {
    it.skipIf(!rt)('GPU y += x matches the CPU twin (odd n)', async () => {
      const n = 1237, x = randn(r, n), y = randn(r, n, 100);
      const got = await run(rt!, [x, y], ([xb, yb]) => { addGpu(rt!, { x: xb!, y: yb!, n }); return yb!; }, n);
      close(got, addCpu(y, x), 0);
    });

    it.skipIf(!rt)('GPU folds a grid wider than maxComputeWorkgroupsPerDimension and guards its tail', async () => {
      // One invocation per workgroup makes 70001 workgroups (> 65535) from a small array.
      const n = 70001, x = randn(r, n), y = randn(r, n);
      const max = rt!.limits.maxComputeWorkgroupsPerDimension;
      expect(n).toBeGreaterThan(max);
      // A sentinel just past n catches a missing bounds guard.
      const yPad = new Float32Array(n + 64);
      yPad.set(y);
      yPad[n] = 12345;
      const xPad = new Float32Array(n + 64).fill(1);
      xPad.set(x);
      const got = await run(rt!, [xPad, yPad], ([xb, yb]) => { addGpu(rt!, { x: xb!, y: yb!, n, workgroupSize: 1 }); return yb!; }, n + 1);
      close(got.subarray(0, n), addCpu(y, x), 0);
      expect(got[n]).toBe(12345);
    });
  });
});
