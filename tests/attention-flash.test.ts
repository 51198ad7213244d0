// attention 'flash' (shaders/attention/flash.wgsl) against the CPU twin on the GPU adapter found
// (lavapipe in CI, which has 'subgroups' and 'shader-f16', so both reduction paths and both K/V
// storage types run): {subgroups, workgroup memory} × {f32, f16 K/V} × {causal, bidirectional,
// window, soft-cap, GQA, padded B > 1, head dims 32/36/64/80/128/256}; the subgroup and
// workgroup-memory paths and a sequence alone vs in a batch bit-identical; RoPE fused into the
// prologue against ropeCpu + attentionCpu for both layouts, every scaling and partial rotary.

import { afterEach, describe, expect, it } from 'vitest';
import { attentionCpu, attentionGpu, attentionVariantFor, flashConfig, type AttentionArgs, type AttentionRope } from '../kernels/attention.js';
import { ropeCpu } from '../kernels/rope.js';
import type { GpuRuntime } from '../src/gpu/runtime.js';
import { shaderSource } from '../src/gpu/shaders.js';
import { roundThroughF16 } from '../src/util/f16.js';
import { validate } from '../src/validate.js';
import { GpuTransformer } from '../src/models/forward-gpu.js';
import { loadWeights } from '../src/models/load.js';
import { join } from 'node:path';
import { gpuRuntime, randn, rng } from './helpers/gpu.js';
import { buildTinyModel } from './helpers/tiny-models.js';
import { scratchDir } from './helpers/scratch.js';

interface Case { B: number; L: number; nH: number; nKv: number; hd: number; seq: number[]; causal?: boolean; window?: number; softcap?: number; scale?: number; qs?: number }

const oldVariant = process.env.CONCORD_KERNEL_VARIANT;
afterEach(() => {
  if (oldVariant === undefined) delete process.env.CONCORD_KERNEL_VARIANT;
  else process.env.CONCORD_KERNEL_VARIANT = oldVariant;
});

describe('attention flash', async () => {
  const rt = await gpuRuntime();
  const r = rng(20261201);
  const hasSg = !!rt && rt.device.features.has('subgroups');

  type Extra = Partial<Pick<AttentionArgs, 'variant' | 'kvF16' | 'subgroups' | 'rope'>>;
  async function gpu(g: GpuRuntime, c: Case, q: Float32Array, k: Float32Array, v: Float32Array, extra: Extra): Promise<{ out: Float32Array; q: Float32Array; k: Float32Array }> {
    const [qb, kb, vb, sb] = [q, k, v, Uint32Array.from(c.seq)].map((a) => g.upload(a));
    const out = g.acquire(q.byteLength);
    attentionGpu(g, { q: qb!, k: kb!, v: vb!, seqLen: sb!, out, B: c.B, L: c.L, nHeads: c.nH, nKvHeads: c.nKv, headDim: c.hd, causal: c.causal, window: c.window, scale: c.scale, softcap: c.softcap, ...extra });
    const res = { out: await g.readF32(out, q.length), q: await g.readF32(qb!, q.length), k: await g.readF32(kb!, k.length) };
    for (const b of [qb, kb, vb, sb, out]) g.release(b!);
    return res;
  }
  const data = (c: Case) => {
    const T = c.B * c.L;
    return [randn(r, T * c.nH * c.hd, c.qs ?? 1), randn(r, T * c.nKv * c.hd, c.qs ?? 1), randn(r, T * c.nKv * c.hd)] as const;
  };
  const twin = (c: Case, q: Float32Array, k: Float32Array, v: Float32Array) =>
    attentionCpu(q, k, v, c.seq, c.B, c.L, c.nH, c.nKv, c.hd, c.causal ?? true, { window: c.window, scale: c.scale, softcap: c.softcap });

  const cases: Case[] = [
    { B: 3, L: 70, nH: 4, nKv: 2, hd: 32, seq: [70, 20, 1] },                 // GQA, padded, spans two 64-query blocks
    { B: 2, L: 37, nH: 2, nKv: 1, hd: 64, seq: [37, 0] },                     // an empty sequence
    { B: 1, L: 45, nH: 2, nKv: 2, hd: 80, seq: [45], window: 9 },             // hd not a multiple of 16; window
    { B: 2, L: 29, nH: 3, nKv: 1, hd: 128, seq: [29, 17], softcap: 5, scale: 0.05, qs: 3 },
    { B: 2, L: 33, nH: 2, nKv: 2, hd: 36, seq: [33, 21], causal: false },     // bidirectional; hd % 16 != 0
    { B: 1, L: 66, nH: 2, nKv: 1, hd: 64, seq: [66], scale: 6 },              // sharp softmax: the running max moves
    { B: 1, L: 100, nH: 1, nKv: 1, hd: 32, seq: [100], window: 33 },          // window across tiles and query blocks
    { B: 1, L: 1, nH: 2, nKv: 1, hd: 64, seq: [1] },
  ];

  for (const sg of [true, false]) {
    for (const kvF16 of [false, true]) {
      it.skipIf(!rt || (sg && !hasSg) || (kvF16 && !rt.hasF16))(`matches the CPU twin (${sg ? 'subgroups' : 'workgroup-memory reduction'}, ${kvF16 ? 'f16' : 'f32'} K/V)`, async () => {
        for (const c of cases) {
          const [q, k, v] = data(c);
          const { out } = await gpu(rt!, c, q, k, v, { variant: 'flash', subgroups: sg, kvF16 });
          // With f16 K/V the twin sees the same rounded K and V; what is left is f32 arithmetic.
          const want = kvF16 ? twin(c, q, roundThroughF16(k), roundThroughF16(v)) : twin(c, q, k, v);
          const res = validate(out, want, { atol: 1e-4, rtol: 1e-4 });
          expect(res.ok, `${JSON.stringify(c)}: ${res.summary}`).toBe(true);
        }
      });
    }
  }

  it.skipIf(!rt || !hasSg)("on this adapter lanes_ok holds, so the 'subgroups' cases take the shuffle path; reduce4 sums each row's 4 lanes", async () => {
    // The real lanes_ok / reduce4 of shaders/attention/flash-lanes-subgroup.wgsl in a probe kernel;
    // the workgroup-memory fallback is replaced by a marker (-1) so that taking it would show.
    const code = `enable subgroups;\ndiagnostic(off, subgroup_uniformity);\n${shaderSource('attention/flash-lanes-subgroup')}
fn reduce4_shared(x: vec4f, li: u32) -> vec4f { return vec4f(-1.0); }
@group(0) @binding(0) var<storage, read_write> o: array<vec4f>;
@compute @workgroup_size(256) fn main(lin: LaneIn) {
  let ok = lanes_ok(lin);
  let x = f32(lin.li);
  o[lin.li] = reduce4(vec4f(x, 2.0 * x, 1.0, select(0.0, 1.0, ok)), lin.li, ok);
}`;
    const dev = rt!.device;
    dev.pushErrorScope('validation');
    const pipe = dev.createComputePipeline({ layout: 'auto', compute: { module: dev.createShaderModule({ code }), entryPoint: 'main' } });
    const buf = rt!.acquire(256 * 16);
    const bg = dev.createBindGroup({ layout: pipe.getBindGroupLayout(0), entries: [{ binding: 0, resource: { buffer: buf } }] });
    const enc = dev.createCommandEncoder();
    const pass = enc.beginComputePass();
    pass.setPipeline(pipe); pass.setBindGroup(0, bg); pass.dispatchWorkgroups(1); pass.end();
    dev.queue.submit([enc.finish()]);
    expect(await dev.popErrorScope()).toBeNull();
    const got = await rt!.readF32(buf, 256 * 4);
    rt!.release(buf);
    for (let li = 0; li < 256; li++) {
      const g = li & ~3, sum = 4 * g + 6;
      expect([...got.subarray(li * 4, li * 4 + 4)], `invocation ${li}`).toEqual([sum, 2 * sum, 4, 4]);
    }
  });

  it.skipIf(!rt)('head dim 256 (Gemma) matches the CPU twin, or names why the adapter cannot hold it', async () => {
    const c: Case = { B: 1, L: 40, nH: 2, nKv: 1, hd: 256, seq: [40], softcap: 50 };
    const [q, k, v] = data(c);
    for (const kvF16 of rt!.hasF16 ? [false, true] : [false]) {
      const cfg = flashConfig(rt!, 256, kvF16);
      if (typeof cfg === 'string') {
        await expect(gpu(rt!, c, q, k, v, { variant: 'flash', kvF16 })).rejects.toThrow(/workgroup memory/);
        continue;
      }
      const { out } = await gpu(rt!, c, q, k, v, { variant: 'flash', kvF16 });
      const want = kvF16 ? twin(c, q, roundThroughF16(k), roundThroughF16(v)) : twin(c, q, k, v);
      const res = validate(out, want, { atol: 1e-4, rtol: 1e-4 });
      expect(res.ok, `hd 256 ${kvF16 ? 'f16' : 'f32'}: ${res.summary}`).toBe(true);
    }
  });

  it.skipIf(!rt || !hasSg)('the subgroup and workgroup-memory paths are bit-identical; a sequence alone equals it in a padded batch; pad rows are zero', async () => {
    const c: Case = { B: 3, L: 75, nH: 4, nKv: 2, hd: 48, seq: [60, 75, 9] };
    const [q, k, v] = data(c);
    const a = (await gpu(rt!, c, q, k, v, { variant: 'flash', subgroups: true })).out;
    const b = (await gpu(rt!, c, q, k, v, { variant: 'flash', subgroups: false })).out;
    expect(validate(a, b, { atol: 0, rtol: 0 }).maxAbsErr).toBe(0);
    const qs = c.nH * c.hd, kvs = c.nKv * c.hd, s = c.seq[1];
    const one: Case = { ...c, B: 1, L: s, seq: [s] };
    const alone = (await gpu(rt!, one, q.slice(c.L * qs, (c.L + s) * qs), k.slice(c.L * kvs, (c.L + s) * kvs), v.slice(c.L * kvs, (c.L + s) * kvs), { variant: 'flash' })).out;
    expect(validate(a.slice(c.L * qs, (c.L + s) * qs), alone, { atol: 0, rtol: 0 }).maxAbsErr).toBe(0);
    for (const [bi, len] of [[0, c.seq[0]], [2, c.seq[2]]]) {
      expect(a.slice((bi * c.L + len) * qs, (bi + 1) * c.L * qs).every((x) => x === 0), `pad rows of sequence ${bi}`).toBe(true);
    }
  });

  const ropes: { name: string; rope: AttentionRope }[] = [
    { name: 'half', rope: { theta: 10000, layout: 'half' } },
    { name: 'interleaved', rope: { theta: 10000, layout: 'interleaved' } },
    { name: 'half, llama3 scaling', rope: { theta: 500000, layout: 'half', scaling: { type: 'llama3', factor: 8, lowFreqFactor: 1, highFreqFactor: 4, originalMaxPositionEmbeddings: 64 } } },
    { name: 'half, linear scaling', rope: { theta: 1e6, layout: 'half', scaling: { type: 'linear', factor: 8 } } },
    { name: 'half, partial rotary 20 of 32, longrope', rope: { theta: 10000, layout: 'half', rotaryDim: 20, scaling: { type: 'longrope', factors: [1, 1.2, 1.5, 2, 2.5, 3, 3.5, 4, 5, 6], attentionFactor: 1.19 } } },
    { name: 'interleaved, partial rotary 12 of 32', rope: { theta: 10000, layout: 'interleaved', rotaryDim: 12 } },
  ];
  it.skipIf(!rt)('RoPE fused into the prologue equals ropeCpu then attentionCpu (layouts, scalings, partial rotary) and leaves q, k untouched; direct + rope agrees', async () => {
    const c: Case = { B: 2, L: 70, nH: 4, nKv: 2, hd: 32, seq: [70, 41], qs: 2 };
    for (const { name, rope } of ropes) {
      const [q, k, v] = data(c);
      const rd = rope.rotaryDim ?? c.hd;
      const rq = ropeCpu(q, c.B, c.L, c.nH, c.hd, rope.theta, rope.layout, rope.scaling, rd);
      const rk = ropeCpu(k, c.B, c.L, c.nKv, c.hd, rope.theta, rope.layout, rope.scaling, rd);
      const want = twin(c, rq, rk, v);
      // The rotation matters here.
      expect(validate(want, twin(c, q, k, v), { atol: 1e-3 }).ok).toBe(false);
      for (const extra of [{ variant: 'flash', subgroups: hasSg }, { variant: 'flash', subgroups: false, kvF16: rt!.hasF16 }, { variant: 'direct' }] as Extra[]) {
        const got = await gpu(rt!, c, q, k, v, { ...extra, rope });
        const w = extra.kvF16 ? twin(c, rq, roundThroughF16(rk), roundThroughF16(v)) : want;
        // f16 K/V: the GPU rounds its own rotated k to f16, the twin the CPU-rotated one, and
        // last-bit differences of the rotation can round to neighbouring f16 values.
        const tol = extra.kvF16 ? 2e-3 : 2e-4;
        const res = validate(got.out, w, { atol: tol, rtol: tol });
        expect(res.ok, `${name} ${JSON.stringify(extra)}: ${res.summary}`).toBe(true);
        if (extra.variant === 'flash') {
          expect(got.q.every((x, i) => x === q[i]) && got.k.every((x, i) => x === k[i]), 'flash leaves q and k as they were').toBe(true);
        }
      }
    }
  });

  it.skipIf(!rt || !rt.hasF16)('a prefill with flash attention and f16 K/V tiles (GpuTransformer kvF16) stays within 1e-2 nats/token of f32 K/V', async () => {
    process.env.CONCORD_KERNEL_VARIANT = 'attention=flash';
    const tiny = buildTinyModel('llama2c', join(scratchDir('concord-flash-'), 'm'));
    const w = await loadWeights(tiny.path);
    const seqs = [{ ids: [1, 5, 9, 3, 7, 2, 8, 4, 6, 11] }, { ids: [2, 3, 4] }];
    const [a, b] = [new GpuTransformer(rt!, w, { f16: false }), new GpuTransformer(rt!, w, { f16: false, kvF16: true })];
    const [x, y] = [await a.scoreBatch(seqs), await b.scoreBatch(seqs)];
    expect(b.kvF16).toBe(true);
    seqs.forEach((_, i) => {
      const v = validate(y[i].logprobs, x[i].logprobs, { atol: 1e-2, rtol: 0 });
      expect(v.ok, v.summary).toBe(true);
      expect(v.maxAbsErr, 'f16 K/V really took effect').toBeGreaterThan(0);
    });
    a.dispose();
    b.dispose();
  });

  it.skipIf(!rt)('errors name the reason; the default variant is flash (direct where flash cannot take the shape), flash when forced', async () => {
    const c: Case = { B: 1, L: 8, nH: 1, nKv: 1, hd: 6, seq: [8] };
    const [q, k, v] = data(c);
    await expect(gpu(rt!, c, q, k, v, { variant: 'flash' })).rejects.toThrow(/attention 'flash': head dim 6 is not a multiple of 4/);
    await expect(gpu(rt!, { ...c, hd: 8 }, randn(r, 64), randn(r, 64), randn(r, 64), { variant: 'direct', kvF16: true })).rejects.toThrow(/kvF16 needs the 'flash' variant/);
    expect(typeof flashConfig(rt!, 260, false)).toBe('string');
    delete process.env.CONCORD_KERNEL_VARIANT;
    expect(attentionVariantFor(rt!, { headDim: 64 })).toBe('flash');
    expect(attentionVariantFor(rt!, { headDim: 6 })).toBe('direct');
    process.env.CONCORD_KERNEL_VARIANT = 'attention=flash';
    expect(attentionVariantFor(rt!, { headDim: 64 })).toBe('flash');
    expect(attentionVariantFor(rt!, { headDim: 6 })).toBe('flash'); // forced: attentionGpu then throws, never a silent fallback
  });
});
