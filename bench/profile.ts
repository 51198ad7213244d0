// Per-kernel GPU time of one prefill batch, from timestamp queries, with the cost model's figures:
//   concord bench profile [--model default] [--batch 4] [--len 48] [--f16] [--json]
//   npm run build && node dist/bench/profile.js [same flags]
// Validates the batch against the CPU twin first (like every benchmark here), then profiles a
// second run and prints each kernel's share of the GPU time; then per kernel class (matmul, LM
// head, attention, norm, …) and for the whole prefill the cost model's FLOPs and fewest bytes
// (bench/cost.ts prefillCost), achieved GFLOP/s and GB/s, and — on an adapter in the peak table —
// the fraction of peak and the bound.

import { pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import { formatPeak, formatRoofline, kernelClassOf, type KernelClass, lookupPeak, prefillCost, roofline, type Roofline } from './cost.js';
import { chooseBackend } from '../src/gpu/device.js';
import { GpuRuntime } from '../src/gpu/runtime.js';
import { loadModel } from '../src/models/index.js';
import { validate } from '../src/validate.js';

export interface ProfileOptions {
  model?: string;
  batch?: number;
  len?: number;
  f16?: boolean;
  /** An existing runtime (default: chooseBackend('webgpu')). */
  rt?: GpuRuntime;
  log?: (line: string) => void;
}

export interface ProfileKernelRow { kernel: string; class: KernelClass | null; calls: number; ms: number; share: number }
export interface ProfileClassRow extends Roofline {
  class: KernelClass | 'unclassified' | 'prefill';
  /** profiled passes of this class, and the cost model's kernel calls */
  passes: number;
  calls: number;
  ms: number;
  flops: number;
  bytes: number;
}
export interface ProfileResult {
  model: string;
  device: string;
  adapter: string;
  batch: number;
  len: number;
  seqLens: number[];
  f16: boolean;
  validatedMaxAbsErr: number;
  wallMs: number;
  gpuMs: number;
  peak: string | null;
  kernels: ProfileKernelRow[];
  classes: ProfileClassRow[];
  /** The whole prefill: the sum of the classes over the GPU time of all passes. */
  prefill: ProfileClassRow;
}

export async function runProfile(opts: ProfileOptions = {}): Promise<ProfileResult> {
  const B = opts.batch ?? 4, L = opts.len ?? 48;
  const log = opts.log ?? (() => {});
  let rt = opts.rt;
  const ownRt = !rt;
  if (!rt) {
    const d = await chooseBackend('webgpu');
    log(`concord: ${d.reason}`);
    rt = new GpuRuntime(d.gpu!);
  }
  const gpu = await loadModel(opts.model ?? 'default', { device: rt, f16: opts.f16 ?? false });
  const cpu = await loadModel(opts.model ?? 'default', { device: 'cpu' });
  try {
    let seed = 7;
    const rand = () => ((seed = (seed * 1103515245 + 12345) >>> 0) % (gpu.config.vocabSize - 3)) + 3;
    const seqs = Array.from({ length: B }, (_, b) => ({ ids: [1, ...Array.from({ length: Math.max(1, L - 1 - 3 * b) }, rand)] }));
    const [g, c] = [await gpu.scoreBatch(seqs), await cpu.scoreBatch(seqs)];
    const worst = Math.max(...seqs.map((_, i) => validate(g[i].logprobs, c[i].logprobs, { atol: 1e-3 }).maxAbsErr));
    log(`validated against the CPU twin: max |Δ| ${worst.toExponential(2)} nats/token`);
    if (!rt.startProfile()) throw new Error('this adapter has no timestamp-query');
    const t0 = performance.now();
    await gpu.scoreBatch(seqs);
    const wallMs = performance.now() - t0;
    const prof = await rt.readProfile();
    const gpuMs = prof.reduce((s, p) => s + p.ms, 0);
    const seqLens = seqs.map((s) => s.ids.length);
    const Lpad = Math.max(...seqLens);
    const cfg = gpu.config;
    const has = (name: string) => gpu.weights.tensors.has(name);
    const cost = prefillCost(cfg, B, Lpad, {
      f16Weights: gpu.f16, seqLens, qkNorm: has('layers.0.q_norm.weight'), postNorms: has('layers.0.post_attn_norm.weight'),
    });
    const peak = lookupPeak(rt.handle.info);
    const kernels: ProfileKernelRow[] = prof.map((p) => ({ kernel: p.kernel, class: kernelClassOf(p.kernel), calls: p.calls, ms: p.ms, share: p.ms / gpuMs }));
    const byClass = new Map<KernelClass | 'unclassified', { passes: number; ms: number }>();
    for (const k of kernels) {
      const e = byClass.get(k.class ?? 'unclassified') ?? { passes: 0, ms: 0 };
      e.passes += k.calls;
      e.ms += k.ms;
      byClass.set(k.class ?? 'unclassified', e);
    }
    const classes: ProfileClassRow[] = [];
    for (const [cls, e] of [...byClass].sort((a, b) => b[1].ms - a[1].ms)) {
      const cc = cls === 'unclassified' ? { flops: 0, bytes: 0, calls: 0 } : cost.perClass[cls] ?? { flops: 0, bytes: 0, calls: 0 };
      classes.push({ class: cls, passes: e.passes, calls: cc.calls, ms: e.ms, flops: cc.flops, bytes: cc.bytes, ...roofline(cc, e.ms, peak) });
    }
    const prefill: ProfileClassRow = {
      class: 'prefill', passes: prof.reduce((s, p) => s + p.calls, 0), calls: cost.total.calls, ms: gpuMs,
      flops: cost.total.flops, bytes: cost.total.bytes, ...roofline(cost.total, gpuMs, peak),
    };
    const result: ProfileResult = {
      model: cfg.name, device: gpu.deviceName, adapter: rt.name, batch: B, len: Lpad, seqLens, f16: gpu.f16, validatedMaxAbsErr: worst,
      wallMs, gpuMs, peak: peak?.name ?? null, kernels, classes, prefill,
    };
    for (const line of formatProfile(result, peak ? formatPeak(peak) : null)) log(line);
    return result;
  } finally {
    gpu.dispose();
    cpu.dispose();
    if (ownRt) rt.destroy();
  }
}

/** 1.23 GFLOP, 456 MB, … */
function si(n: number, unit: string): string {
  const [d, p] = n >= 1e12 ? [1e12, 'T'] : n >= 1e9 ? [1e9, 'G'] : n >= 1e6 ? [1e6, 'M'] : n >= 1e3 ? [1e3, 'k'] : [1, ''];
  return `${(n / d).toFixed(n >= 1e3 ? 2 : 0)} ${p}${unit}`;
}

export function formatProfile(r: ProfileResult, peakLine: string | null): string[] {
  const tokens = r.seqLens.reduce((s, n) => s + n, 0);
  const out = [
    `${r.model} on ${r.device}: batch ${r.batch}×${r.len} (${tokens} real tokens), wall ${r.wallMs.toFixed(0)} ms, GPU ${r.gpuMs.toFixed(1)} ms`,
    peakLine ? `peak ${peakLine}` : `peak unknown for ${r.adapter}: no % of peak column`,
    '',
    ...r.kernels.map((p) => `${p.kernel.padEnd(44)} ${String(p.calls).padStart(4)} calls ${p.ms.toFixed(1).padStart(9)} ms ${(100 * p.share).toFixed(1).padStart(5)}%`),
    '',
    'per kernel class (cost model: FLOPs and fewest bytes of the prefill; passes profiled / kernel calls counted):',
    ...[...r.classes, r.prefill].map((c) => `${c.class.padEnd(12)} ${String(c.passes).padStart(4)}/${String(c.calls).padEnd(4)} ${c.ms.toFixed(1).padStart(9)} ms ${si(c.flops, 'FLOP').padStart(12)} ${si(c.bytes, 'B').padStart(9)}  ${c.class === 'unclassified' ? 'no cost model' : formatRoofline(c)}`),
    `prefill: ${(tokens / (r.gpuMs / 1e3)).toFixed(0)} real tokens/s of GPU time, ${(tokens / (r.wallMs / 1e3)).toFixed(0)} of wall time`,
  ];
  return out;
}

// Run as a script: node dist/bench/profile.js [--model M] [--batch B] [--len L] [--f16] [--json]
if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const { values } = parseArgs({ options: { model: { type: 'string', default: 'default' }, batch: { type: 'string', default: '4' }, len: { type: 'string', default: '48' }, f16: { type: 'boolean', default: false }, json: { type: 'boolean', default: false } } });
  const r = await runProfile({ model: values.model, batch: Number(values.batch), len: Number(values.len), f16: values.f16, log: values.json ? (l) => console.error(l) : (l) => console.log(l) });
  if (values.json) console.log(JSON.stringify(r, null, 1));
  process.exit(0);
}
