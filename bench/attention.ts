// The attention cases of `bench kernels` (bench/kernels.ts calls benchAttention): causal GQA
// prefill attention, 'direct' vs 'flash' (with and without subgroups, f32 and f16 K/V), and RoPE
// + attention as two kernels ('direct' after ropeGpu) vs fused ('flash'). Every GPU variant is
// validated against the CPU twin (on the first sequence for large shapes) before it is timed.

import { attentionCost, ropeCost } from './cost.js';
import { attentionCpu, attentionGpu, flashConfig, type AttentionArgs, type AttentionRope } from '../kernels/attention.js';
import { ropeCpu } from '../kernels/rope.js';
import type { GpuRuntime } from '../src/gpu/runtime.js';
import { roundThroughF16 } from '../src/util/f16.js';
import { validate } from '../src/validate.js';

/** A row of bench/kernels.ts's KernelBenchResult (declared here to keep the import one-way). */
interface BenchRow { kernel: string; variant: string; device: string; shape: string; validated: boolean; maxAbsErr: number; firstMs: number; ms: number; iters: number; gflops?: number; flops?: number; bytes?: number }

/** (B, L, nHeads, nKvHeads, headDim) */
type AttnShape = [number, number, number, number, number];
export const ATTENTION_SHAPES: Record<'tiny' | 'small' | 'large', AttnShape[]> = {
  tiny: [[1, 32, 2, 1, 32]],
  // stories15M (6 heads of 48) and Qwen2.5-0.5B-shaped heads (14 query / 2 KV heads of 64).
  small: [[4, 128, 6, 6, 48], [2, 256, 14, 2, 64]],
  large: [[16, 512, 14, 2, 64], [8, 1024, 32, 8, 128]],
};

/** Multiply-adds of QK^T and PV over the causal triangle, 2 FLOPs each. */
export const attentionFlops = (B: number, L: number, nH: number, hd: number): number => 4 * B * nH * hd * (L * (L + 1)) / 2;

interface Timer { (run: () => Promise<void> | void, minMs?: number, maxIters?: number): Promise<{ firstMs: number; ms: number; iters: number }> }

export async function benchAttention(o: {
  rt: GpuRuntime | null; size: 'tiny' | 'small' | 'large'; devices: ('webgpu' | 'cpu')[];
  rand: (n: number, seed: number, scale?: number) => Float32Array; timeIt: Timer;
  push: (r: BenchRow) => void; cpuName: string; gpuName: string;
}): Promise<void> {
  const { rt, size, devices, rand, timeIt, push } = o;
  const rope: AttentionRope = { theta: 10000, layout: 'half' };
  for (const [B, L, nH, nKv, hd] of ATTENTION_SHAPES[size]) {
    const T = B * L;
    const q = rand(T * nH * hd, 11), k = rand(T * nKv * hd, 12), v = rand(T * nKv * hd, 13);
    const seq = new Uint32Array(B).fill(L);
    const shape = `B${B} L${L} h${nH}/${nKv} d${hd}`;
    const flops = attentionFlops(B, L, nH, hd);
    // Large shapes: the twin on the first 128 positions of the first sequence (causal rows depend
    // only on the keys before them, so those rows are exact; all of it takes minutes in JavaScript).
    const [refB, refL] = size === 'large' ? [1, Math.min(L, 128)] : [B, L];
    const n = refB * refL * nH * hd;
    const slice = (x: Float32Array, heads: number) => x.subarray(0, refB * refL * heads * hd);
    const refSeq = seq.subarray(0, refB).map((s) => Math.min(s, refL));
    const want = attentionCpu(slice(q, nH), slice(k, nKv), slice(v, nKv), refSeq, refB, refL, nH, nKv, hd);
    const rq = ropeCpu(slice(q, nH), refB, refL, nH, hd, rope.theta, rope.layout), rk = ropeCpu(slice(k, nKv), refB, refL, nKv, hd, rope.theta, rope.layout);
    const wantRope = attentionCpu(rq, rk, slice(v, nKv), refSeq, refB, refL, nH, nKv, hd);
    if (devices.includes('cpu')) {
      // The twin itself, checked on sampled rows against a plain causal softmax written out here.
      const naiveErr = naiveAttentionError(want, q, k, v, refB, refL, L, nH, nKv, hd);
      const t = await timeIt(() => { attentionCpu(slice(q, nH), slice(k, nKv), slice(v, nKv), refSeq, refB, refL, nH, nKv, hd); }, 300, 3);
      push({ kernel: 'attn', variant: 'f64', device: o.cpuName, shape: refB === B ? shape : `B${refB} L${refL} h${nH}/${nKv} d${hd}`, validated: naiveErr < 1e-5, maxAbsErr: naiveErr, ...t, gflops: attentionFlops(refB, refL, nH, hd) / t.ms / 1e6, ...attentionCost({ B: refB, L: refL, nHeads: nH, nKvHeads: nKv, headDim: hd, causal: true }) });
    }
    if (!rt || !devices.includes('webgpu')) continue;
    const hasSg = rt.device.features.has('subgroups');
    const variants: { label: string; args: Partial<AttentionArgs> }[] = [{ label: 'direct', args: { variant: 'direct' } }];
    if (typeof flashConfig(rt, hd, false) !== 'string') {
      if (hasSg) variants.push({ label: 'flash sg', args: { variant: 'flash', subgroups: true } });
      variants.push({ label: 'flash wgmem', args: { variant: 'flash', subgroups: false } });
    }
    if (rt.hasF16 && typeof flashConfig(rt, hd, true) !== 'string') variants.push({ label: 'flash f16-KV', args: { variant: 'flash', kvF16: true } });
    variants.push({ label: 'rope+direct', args: { variant: 'direct', rope } });
    if (typeof flashConfig(rt, hd, false) !== 'string') variants.push({ label: 'flash+rope', args: { variant: 'flash', rope } });
    for (const { label, args } of variants) {
      const bufs = { q: rt.upload(q), k: rt.upload(k), v: rt.upload(v), seqLen: rt.upload(seq), out: rt.acquire(q.byteLength) };
      const run = async () => { attentionGpu(rt, { ...bufs, B, L, nHeads: nH, nKvHeads: nKv, headDim: hd, ...args }); await rt.sync(); };
      await run();
      const ref = args.rope ? wantRope : args.kvF16 ? attentionCpu(slice(q, nH), roundThroughF16(slice(k, nKv)), roundThroughF16(slice(v, nKv)), refSeq, refB, refL, nH, nKv, hd) : want;
      const val = validate((await rt.readF32(bufs.out, q.length)).subarray(0, n), ref, { atol: 1e-4, rtol: 1e-4 });
      const t = await timeIt(run, 500, 20);
      // Cost model (bench/cost.ts): attention, plus RoPE — a pass of its own before 'direct', only its
      // arithmetic and frequency table when fused into 'flash'.
      const cost = attentionCost({ B, L, nHeads: nH, nKvHeads: nKv, headDim: hd, causal: true });
      if (args.rope) {
        const r = ropeCost(T, nH, nKv, hd);
        cost.flops += r.flops;
        cost.bytes += args.variant === 'flash' ? (hd / 2) * 4 : r.bytes;
      }
      push({ kernel: 'attn', variant: label, device: o.gpuName, shape, validated: val.ok, maxAbsErr: val.maxAbsErr, ...t, gflops: flops / t.ms / 1e6, ...cost });
      for (const b of Object.values(bufs)) rt.release(b);
    }
  }
}

/**
 * Largest |twin − naive| over a few (sequence, head, row) samples of causal attention (all keys up
 * to the row, no window): scores q·k/√hd, a max-subtracted softmax, the weighted sum of V. The
 * twin ran on [refB, refL] slices (row stride refL); q, k, v are the full [B·L] inputs.
 */
function naiveAttentionError(want: Float32Array, q: Float32Array, k: Float32Array, v: Float32Array, refB: number, refL: number, L: number, nH: number, nKv: number, hd: number): number {
  let err = 0;
  const group = nH / nKv;
  for (const [b, h, i] of [[0, 0, 0], [0, nH - 1, refL - 1], [refB - 1, Math.floor(nH / 2), Math.floor(refL / 2)]]) {
    const kvh = Math.floor(h / group);
    const qo = (b * L + i) * nH * hd + h * hd;
    const s: number[] = [];
    for (let j = 0; j <= i; j++) {
      let dot = 0;
      for (let d = 0; d < hd; d++) dot += q[qo + d] * k[(b * L + j) * nKv * hd + kvh * hd + d];
      s.push(dot / Math.sqrt(hd));
    }
    const m = Math.max(...s);
    const p = s.map((x) => Math.exp(x - m));
    const z = p.reduce((a, x) => a + x, 0);
    for (let d = 0; d < hd; d++) {
      let o = 0;
      for (let j = 0; j <= i; j++) o += p[j] * v[(b * L + j) * nKv * hd + kvh * hd + d];
      err = Math.max(err, Math.abs(o / z - want[(b * refL + i) * nH * hd + h * hd + d]));
    }
  }
  return err;
}
