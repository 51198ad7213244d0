// Kernel autotuning (src/tune: above the kernels, which never import it; it fills the winner
// table of src/gpu/variants.ts through setTuned). For each op of KERNEL_VARIANTS (src/gpu/variants.ts) and each shape class a
// model uses, every candidate — variant names × tile configurations where a kernel exports them
// (the `configs` hook: matmul's and the LM head's tile configurations) — is first run on random inputs and checked against the op's
// CPU twin with the op's tolerance, then timed (timestamp queries when the device has
// timestamp-query, else wall-clock). The fastest valid candidate wins. A candidate that computes
// wrong numbers or throws a programming error is 'failed'; one that declines to run here (its
// *Gpu throws a plain Error: a missing feature, a limit, a shape it does not take) is
// 'unavailable'. Both are reported on stderr and never chosen, and are recorded in the cache.
//
// Winners are cached on disk per adapter (vendor, architecture, device, driver description) and
// concord version: <CONCORD_TUNE_CACHE or ~/.cache/concord/tune>/<adapter key>.json, written
// atomically (temporary file + rename); a corrupt file is reported and ignored. tuneFor() runs
// once when a GPU model is built (src/models/model.ts): it loads the cached winners into
// variants.ts's in-memory table (which the synchronous kernel call sites read) and, on hardware
// adapters, tunes the classes the cache lacks. On software adapters nothing is tuned unless asked
// (`concord tune`, CONCORD_TUNE=refresh): their defaults are already the fast direct kernels.
//
// A probe per op (PROBES below) builds the inputs of a shape, launches a variant through the op's
// own *Gpu function, and checks the output. Adding an op is a probe of ~40 lines; a new variant
// name in KERNEL_VARIANTS needs nothing here.

import { attentionCpu, attentionGpu, type AttentionArgs } from '../../kernels/attention.js';
import { logprobCpu, logprobGemmConfigs, logprobGpu, type LogprobVariant } from '../../kernels/logprob.js';
import { matmulConfigs, matmulCpu, matmulFusedCpu, matmulGpu, type MatmulArgs, type MatmulVariant } from '../../kernels/matmul.js';
import { isQuantMatmulType, quantMatmulConfigs, quantMatmulGpu, randomQuantBlocks, uploadQuantWeight, type QuantMatmulArgs, type QuantMatmulType, type QuantMatmulVariant } from '../../kernels/matmul-quant.js';
import { dequantize } from '../quant/dequant.js';
import { GGML_TYPE, ggmlTypeName } from '../quant/types.js';
import { ROW_MAX_LOW, ROW_MAX_NONE, rowMaxCpu, rowMaxGpu, type RowMaxVariant } from '../../kernels/pool.js';
import { isNode, nodeBuiltin, packageRoot, settings } from '../env.js';
import type { ModelConfig } from '../models/types.js';
import { roundThroughF16, toF16 } from '../util/f16.js';
import { rng } from '../util/rng.js';
import { validate } from '../validate.js';
import type { GpuRuntime } from '../gpu/runtime.js';
import { KERNEL_VARIANTS, ROW_CLASSES, setTuned, shapeClass, type ShapeLike } from '../gpu/variants.js';

type Fs = typeof import('node:fs');
type Path = typeof import('node:path');

/** A kernel's tile configuration (its own type; e.g. matmul's { variant, wgx, wgy, bk }). */
export type Config = Readonly<Record<string, unknown>>;
export type CandidateStatus = 'valid' | 'failed' | 'unavailable';

export interface CandidateResult {
  variant: string;
  config?: Config;
  status: CandidateStatus;
  /** Largest |gpu − cpu| over the checked entries (valid and failed-by-numbers candidates). */
  maxError?: number;
  /** The op's tolerance, in words (e.g. 'atol 6.4e-3'). */
  tolerance?: string;
  /** GPU time of one run, ms (valid candidates). */
  ms?: number;
  /** Why it failed or is unavailable. */
  error?: string;
}

export interface TuneEntry {
  op: string;
  shapeClass: string;
  /** The shape the class was measured at. */
  shape: ShapeLike;
  /** The fastest valid variant; null when none was valid. */
  winner: string | null;
  winnerConfig?: Config;
  timing: 'timestamp' | 'wall-clock';
  candidates: CandidateResult[];
  tunedAt: string;
}

export interface AdapterIdentity { vendor: string; architecture: string; device: string; description: string; features?: string[] }

export interface TuneCacheFile {
  format: 1;
  concord: string;
  adapter: AdapterIdentity;
  /** "op|shapeClass" → entry */
  entries: Record<string, TuneEntry>;
}

/** One shape to tune an op at. */
export interface TuneRequest { op: string; shape: ShapeLike }

// ---------------------------------------------------------------------------------------------
// Probes

/** One probe instance: inputs on the GPU for one shape, and their CPU reference. */
export interface ProbeCase {
  /** Record the candidate's dispatches (through the op's *Gpu, or a test's launcher). */
  launch(variant: string, config?: Config): void;
  /** Poison the outputs (NaN) and restore in-place inputs, before each candidate. */
  reset(): void;
  /** Read the outputs back and compare them with the CPU twin. */
  check(): Promise<{ ok: boolean; maxError: number; tolerance: string; summary: string }>;
  dispose(): void;
}

/** A launcher: how a variant is run given the probe's arguments (a test hook can replace one). */
export type Launcher = (rt: GpuRuntime, args: any, variant: string, config?: Config) => void; // eslint-disable-line @typescript-eslint/no-explicit-any

// Tile configurations, where a kernel has them (matmulConfigs, logprobGemmConfigs): each is
// validated like a variant. A config that only names its variant is no config at all.
const realConfigs = (list: readonly object[]): (Config | undefined)[] => {
  const real = (list as Config[]).filter((c) => Object.keys(c).some((k) => k !== 'variant'));
  return real.length ? real : [undefined];
};

export interface Probe {
  /** Representative shapes when no model is given: 'small' for software adapters and tests, 'full' for GPUs. */
  shapes(rt: GpuRuntime, size: 'small' | 'full'): ShapeLike[];
  /** Tile configurations of a variant to try; [undefined] when the kernel exports none. */
  configs?(rt: GpuRuntime, variant: string, shape: ShapeLike): (Config | undefined)[];
  /** Why a shape cannot be probed on this adapter (before any variant runs), or null. */
  skip?(rt: GpuRuntime, shape: ShapeLike): string | null;
  describe(shape: ShapeLike): string;
  /** The op's own launch: its *Gpu function with `variant`. */
  launch: Launcher;
  setup(rt: GpuRuntime, shape: ShapeLike, seed: number, launch: Launcher): ProbeCase;
}

const num = (s: ShapeLike, k: string): number => s[k] as number;

/** Uniform random values of unit variance (cheap: the large probes fill tens of millions). */
function rand(r: () => number, n: number, scale = 1): Float32Array {
  const out = new Float32Array(n);
  const s = scale * Math.sqrt(3) * 2;
  for (let i = 0; i < n; i++) out[i] = (r() - 0.5) * s;
  return out;
}

/** Rows to check against the CPU twin: the first and last few and a random sample, sorted. */
function sampleRows(r: () => number, rows: number, want: number): number[] {
  const set = new Set<number>();
  for (let i = 0; i < Math.min(3, rows); i++) { set.add(i); set.add(rows - 1 - i); }
  while (set.size < Math.min(want, rows)) set.add(Math.floor(r() * rows));
  return [...set].sort((a, b) => a - b);
}

const matmulProbe: Probe = {
  shapes(_rt, size) {
    const base = size === 'small'
      ? [{ M: 13, N: 70, K: 45 }, { M: 100, N: 130, K: 96 }]
      : ROW_CLASSES.flatMap((M) => [{ M, N: 1024, K: 1024 }, { M, N: 4096, K: 4096 }]);
    // f16 classes are listed everywhere: without shader-f16 they are reported unavailable.
    return [false, true].flatMap((f) => base.map((s) => ({ ...s, f16: f })));
  },
  describe: (s) => `M=${s.M} N=${s.N} K=${s.K}${s.f16 ? ' f16' : ''}`,
  skip: (rt, s) => (s.f16 && !rt.hasF16 ? 'f16 weights need shader-f16' : null),
  configs: (rt, variant) => realConfigs(matmulConfigs(rt, variant as MatmulVariant)),
  launch: (rt, args, variant, config) => matmulGpu(rt, { ...args, variant: variant as MatmulVariant, ...(config ? { config } : {}) } as MatmulArgs),
  setup(rt, s, seed, launch) {
    const M = num(s, 'M'), N = num(s, 'N'), K = num(s, 'K'), f16 = !!s.f16;
    // A GLU class (the [gate; up] matmul of a gated MLP): B holds 2N rows, the epilogue applies the activation.
    const glu = s.glu === 'silu' || s.glu === 'gelu_tanh' ? s.glu : null;
    const rowsB = glu ? 2 * N : N;
    const r = rng(seed);
    const A = rand(r, M * K), B = rand(r, rowsB * K), bias = rand(r, rowsB);
    const args = { A: rt.upload(A, 'tune.A'), B: rt.upload(f16 ? toF16(B) : B, 'tune.B'), bias: rt.upload(bias, 'tune.bias'), C: rt.acquire(M * N * 4, 'storage', 'tune.C'), M, N, K, layout: 'nk' as const, f16, glu };
    const rows = sampleRows(r, M, 32);
    let want: Float32Array | null = null;
    const poison = new Float32Array(M * N).fill(NaN);
    const atol = (f16 ? 5e-3 : 1e-4) * Math.sqrt(K);
    return {
      launch: (v, c) => launch(rt, args, v, c),
      reset: () => rt.write(args.C, poison),
      async check() {
        if (!want) {
          const Ar = new Float32Array(rows.length * K);
          rows.forEach((m, i) => Ar.set(A.subarray(m * K, m * K + K), i * K));
          const Bw = f16 ? roundThroughF16(B) : B;
          want = glu ? matmulFusedCpu(Ar, Bw, bias, rows.length, N, K, 'nk', { glu }) : matmulCpu<Float32Array>(Ar, Bw, bias, rows.length, N, K, 'nk');
        }
        const ref: Float32Array = want!;
        const got = new Float32Array(rows.length * N);
        for (let i = 0; i < rows.length; i++) got.set(await rt.readF32(args.C, N, rows[i] * N * 4), i * N);
        const v = validate(got, ref, { atol });
        return { ok: v.ok, maxError: v.maxAbsErr, tolerance: `atol ${atol.toExponential(1)}`, summary: v.summary.split('\n')[0].replace(/, first:$/, '') };
      },
      dispose: () => { for (const b of [args.A, args.B, args.bias, args.C]) rt.release(b); },
    };
  },
};

// GGUF-block weights (kernels/matmul-quant.ts): 'gemv' (each of its configurations) and 'tiled',
// on random blocks of the shape's ggml type, against ggml's dequantization + the f32 twin.
const qmatmulProbe: Probe = {
  shapes(_rt, size) {
    if (size === 'small') return [{ M: 4, N: 70, K: 256, type: GGML_TYPE.Q4_K }, { M: 40, N: 66, K: 256, type: GGML_TYPE.Q6_K }];
    // Few classes on GPUs (the bundle's tune step has a fixed budget): decode- and prefill-sized Q4_K, decode Q6_K.
    return [{ M: 16, type: GGML_TYPE.Q4_K }, { M: 1024, type: GGML_TYPE.Q4_K }, { M: 16, type: GGML_TYPE.Q6_K }].map((s) => ({ ...s, N: 2048, K: 2048 }));
  },
  describe: (s) => `M=${s.M} N=${s.N} K=${s.K} ${ggmlTypeName(s.type as number)}${s.glu ? ` ${s.glu}` : ''}`,
  skip: (_rt, s) => (!isQuantMatmulType(s.type as number) ? `ggml type ${ggmlTypeName(s.type as number)} has no block kernel` : null),
  configs: (rt, variant) => realConfigs(quantMatmulConfigs(rt, variant as QuantMatmulVariant)),
  launch: (rt, args, variant, config) => quantMatmulGpu(rt, { ...args, variant: variant as QuantMatmulVariant, ...(config ? { config } : {}) } as QuantMatmulArgs),
  setup(rt, s, seed, launch) {
    const M = num(s, 'M'), N = num(s, 'N'), K = num(s, 'K'), type = num(s, 'type') as QuantMatmulType;
    const glu = s.glu === 'silu' || s.glu === 'gelu_tanh' ? s.glu : null;
    const rowsB = glu ? 2 * N : N;
    const r = rng(seed);
    const A = rand(r, M * K), raw = randomQuantBlocks(type, rowsB, K, r, 0), bias = rand(r, rowsB);
    const args = { A: rt.upload(A, 'tune.A'), B: uploadQuantWeight(rt, raw, 'tune.B'), bias: rt.upload(bias, 'tune.bias'), C: rt.acquire(M * N * 4, 'storage', 'tune.C'), M, N, K, type, glu };
    const rows = sampleRows(r, M, 32);
    let want: Float32Array | null = null;
    const poison = new Float32Array(M * N).fill(NaN);
    // subgroup-matrix rounds A and the weights to f16: its tolerance is the f16 matmul's.
    let last = '';
    return {
      launch: (v, c) => { last = v; launch(rt, args, v, c); },
      reset: () => rt.write(args.C, poison),
      async check() {
        const atol = (last === 'subgroup-matrix' ? 5e-3 : 1e-4) * Math.sqrt(K);
        if (!want) {
          const Ar = new Float32Array(rows.length * K);
          rows.forEach((m, i) => Ar.set(A.subarray(m * K, m * K + K), i * K));
          want = matmulFusedCpu(Ar, dequantize(type, raw, rowsB * K), bias, rows.length, N, K, 'nk', { glu });
        }
        const ref: Float32Array = want!;
        const got = new Float32Array(rows.length * N);
        for (let i = 0; i < rows.length; i++) got.set(await rt.readF32(args.C, N, rows[i] * N * 4), i * N);
        const v = validate(got, ref, { atol, rtol: 1e-4 });
        return { ok: v.ok, maxError: v.maxAbsErr, tolerance: `atol ${atol.toExponential(1)} + rtol 1e-4`, summary: v.summary.split('\n')[0].replace(/, first:$/, '') };
      },
      dispose: () => { for (const b of [args.A, args.B, args.bias, args.C]) rt.release(b); },
    };
  },
};

const logprobProbe: Probe = {
  shapes(_rt, size) {
    const base = size === 'small'
      ? [{ T: 13, V: 300, d: 48 }, { T: 40, V: 700, d: 64 }]
      : ROW_CLASSES.map((T) => ({ T, V: 32768, d: 1024 }));
    // f16 classes are listed everywhere: without shader-f16 they are reported unavailable.
    return [false, true].flatMap((f) => base.map((s) => ({ ...s, f16: f })));
  },
  describe: (s) => `T=${s.T} V=${s.V} d=${s.d}${s.f16 ? ' f16' : ''}`,
  skip: (rt, s) => (s.f16 && !rt.hasF16 ? 'f16 weights need shader-f16' : null),
  configs: (rt, variant) => (variant === 'gemm' ? realConfigs(logprobGemmConfigs(rt.limits)) : [undefined]),
  launch: (rt, args, variant, config) => logprobGpu(rt, { ...args, variant: { kind: variant as LogprobVariant['kind'], f16: args.f16, ...(config ? { gemm: config } : {}) } as LogprobVariant }),
  setup(rt, s, seed, launch) {
    const T = num(s, 'T'), V = num(s, 'V'), d = num(s, 'd'), f16 = !!s.f16;
    const r = rng(seed);
    // Logits of standard deviation ~2, as trained LM heads give.
    const H = rand(r, T * d), W = rand(r, V * d, 2 / Math.sqrt(d));
    const targets = Uint32Array.from({ length: T }, () => Math.floor(r() * V));
    const mask = new Uint32Array(T).fill(1);
    const rows = sampleRows(r, T, 8);
    const checkMask = new Uint32Array(T);
    for (const t of rows) checkMask[t] = 1;
    const args = { H: rt.upload(H, 'tune.H'), W: rt.upload(f16 ? toF16(W) : W, 'tune.W'), targets: rt.upload(targets, 'tune.targets'), mask: rt.upload(mask, 'tune.mask'), logp: rt.acquire(T * 4, 'storage', 'tune.logp'), T, V, d, f16 };
    let want: Float32Array | null = null;
    const poison = new Float32Array(T).fill(NaN);
    const atol = f16 ? 1e-2 : 1e-3;
    return {
      launch: (v, c) => launch(rt, args, v, c),
      reset: () => rt.write(args.logp, poison),
      async check() {
        // The CPU twin computes only the checked (masked-in) rows.
        want ??= logprobCpu(H, f16 ? roundThroughF16(W) : W, targets, checkMask, T, V, d).logp;
        const got = await rt.readF32(args.logp, T);
        const v = validate(got, want, { atol, mask: checkMask });
        return { ok: v.ok, maxError: v.maxAbsErr, tolerance: `atol ${atol}`, summary: v.summary.split('\n')[0].replace(/, first:$/, '') };
      },
      dispose: () => { for (const b of [args.H, args.W, args.targets, args.mask, args.logp]) rt.release(b); },
    };
  },
};

const rowmaxProbe: Probe = {
  shapes: (_rt, size) => (size === 'small'
    ? [{ N: 10, M: 300 }, { N: 100, M: 1000 }]
    : ROW_CLASSES.map((N) => ({ N, M: 4096 }))),
  describe: (s) => `N=${s.N} M=${s.M}`,
  launch: (rt, args, variant) => rowMaxGpu(rt, { ...args, variant: variant as RowMaxVariant }),
  setup(rt, s, seed, launch) {
    const N = num(s, 'N'), M = num(s, 'M');
    const r = rng(seed);
    const X = rand(r, N * M);
    const mask = Uint32Array.from({ length: M }, () => (r() < 0.9 ? 1 : 0));
    // Half the rows start with a running best that some rows' maxima do not beat.
    const best0 = Float32Array.from({ length: N }, (_, i) => (i % 2 ? 1.6 : ROW_MAX_LOW));
    const arg0 = Uint32Array.from({ length: N }, (_, i) => (i % 2 ? 7 : ROW_MAX_NONE));
    const args = { X: rt.upload(X, 'tune.X'), mask: rt.upload(mask, 'tune.mask'), best: rt.acquire(N * 4, 'storage', 'tune.best'), arg: rt.acquire(N * 4, 'storage', 'tune.arg'), N, M, colOff: 0 };
    const best = best0.slice(), arg = arg0.slice();
    rowMaxCpu(X, mask, best, arg, N, M, 0);
    return {
      launch: (v, c) => launch(rt, args, v, c),
      reset: () => { rt.write(args.best, best0); rt.write(args.arg, arg0); },
      async check() {
        const gb = await rt.readF32(args.best, N);
        const ga = new Uint32Array(await rt.read(args.arg, N * 4));
        const vb = validate(gb, best, { atol: 0 });
        let wrongArgs = 0;
        for (let i = 0; i < N; i++) if (ga[i] !== arg[i]) wrongArgs++;
        const ok = vb.ok && wrongArgs === 0;
        return { ok, maxError: vb.maxAbsErr, tolerance: 'exact', summary: `${vb.summary.split('\n')[0]}; ${wrongArgs} wrong argmax` };
      },
      dispose: () => { for (const b of [args.X, args.mask, args.best, args.arg]) rt.release(b); },
    };
  },
};

// Attention: 'flash' and 'direct' (kernels/attention.ts), the variant passed as attentionGpu's `variant`.
const attentionProbe: Probe = {
  shapes: (_rt, size) => (size === 'small'
    ? [{ B: 2, L: 20, nHeads: 4, nKvHeads: 2, headDim: 16, causal: true }]
    : [128, 512].map((L) => ({ B: 4, L, nHeads: 16, nKvHeads: 4, headDim: 64, causal: true }))),
  describe: (s) => `B=${s.B} L=${s.L} heads=${s.nHeads}/${s.nKvHeads} hd=${s.headDim}${s.causal === false ? ' bidirectional' : ''}`,
  launch: (rt, args, variant) => attentionGpu(rt, { ...args, variant } as AttentionArgs),
  setup(rt, s, seed, launch) {
    const B = num(s, 'B'), L = num(s, 'L'), nH = num(s, 'nHeads'), nKv = num(s, 'nKvHeads'), hd = num(s, 'headDim');
    const causal = s.causal !== false;
    const r = rng(seed);
    const qs = nH * hd, kvs = nKv * hd;
    const q = rand(r, B * L * qs), k = rand(r, B * L * kvs), v = rand(r, B * L * kvs);
    const seqLen = Uint32Array.from({ length: B }, (_, b) => (b === 0 ? L : 1 + Math.floor(r() * L)));
    const args = { q: rt.upload(q, 'tune.q'), k: rt.upload(k, 'tune.k'), v: rt.upload(v, 'tune.v'), seqLen: rt.upload(seqLen, 'tune.seqLen'), out: rt.acquire(B * L * qs * 4, 'storage', 'tune.out'), B, L, nHeads: nH, nKvHeads: nKv, headDim: hd, causal };
    // Sequences are independent: check the first (full length) and the last (padded).
    const checked = [...new Set([0, B - 1])];
    const want = new Map<number, Float32Array>();
    const poison = new Float32Array(B * L * qs).fill(NaN);
    return {
      launch: (vr, c) => launch(rt, args, vr, c),
      reset: () => rt.write(args.out, poison),
      async check() {
        let maxError = 0, ok = true, summary = '';
        for (const b of checked) {
          const sl = (x: Float32Array, w: number) => x.subarray(b * L * w, (b + 1) * L * w);
          if (!want.has(b)) want.set(b, attentionCpu(sl(q, qs), sl(k, kvs), sl(v, kvs), [seqLen[b]], 1, L, nH, nKv, hd, causal));
          const got = await rt.readF32(args.out, L * qs, b * L * qs * 4);
          const res = validate(got, want.get(b)!, { atol: 1e-4, rtol: 1e-4 });
          maxError = Math.max(maxError, res.maxAbsErr);
          if (!res.ok) { ok = false; summary = `sequence ${b}: ${res.summary.split('\n')[0]}`; }
        }
        return { ok, maxError, tolerance: 'atol 1e-4 + rtol 1e-4', summary: summary || 'OK' };
      },
      dispose: () => { for (const b of [args.q, args.k, args.v, args.seqLen, args.out]) rt.release(b); },
    };
  },
};

/** Per op: how to probe it. An op of KERNEL_VARIANTS without a probe keeps its default. */
/**
 * Variants that round the activations (not only the weights) to f16: matmul 'subgroup-matrix'
 * (A in f16) and logprob 'sgmat' (H in f16). Never a tuned winner unless CONCORD_TUNE_EXPERIMENTAL=1.
 */
export const EXPERIMENTAL_VARIANTS: Readonly<Record<string, readonly string[]>> = { matmul: ['subgroup-matrix'], qmatmul: ['subgroup-matrix'], logprob: ['sgmat'] };

export const PROBES: Record<string, Probe> = { matmul: matmulProbe, qmatmul: qmatmulProbe, logprob: logprobProbe, rowmax: rowmaxProbe, attention: attentionProbe };

/** The ops that can be tuned in this build: in KERNEL_VARIANTS and with a probe. */
export const tunableOps = (): string[] => Object.keys(KERNEL_VARIANTS).filter((op) => PROBES[op]);

/** Candidate names of an op: every name in KERNEL_VARIANTS (new ones are picked up by themselves). */
export const variantsOf = (op: string): readonly string[] => (KERNEL_VARIANTS as Record<string, readonly string[]>)[op] ?? [];

// ---------------------------------------------------------------------------------------------
// Measuring

export interface TuneOptions {
  /** Candidate names per op instead of KERNEL_VARIANTS (test hook, e.g. to add a broken one). */
  variants?: Record<string, readonly string[]>;
  /** Launchers per op and variant name instead of the op's own (test hook). */
  launchers?: Record<string, Record<string, Launcher>>;
  /** Time budget of one candidate's timed runs, ms (default 50; at least 2 runs). */
  budgetMs?: number;
  /** Where report lines go (default stderr). */
  log?: (line: string) => void;
  seed?: number;
  /** Tile configurations per variant: 'all' (default on hardware adapters) or the kernel's 'first' (default on software ones). */
  configs?: 'all' | 'first';
}

const stderr = (line: string): void => { (globalThis as { process?: { stderr?: { write(s: string): void } } }).process?.stderr?.write(`${line}\n`); };

/** A programming error (a bug in the variant), as opposed to a plain Error declining to run here. */
const isBug = (e: unknown): boolean => e instanceof TypeError || e instanceof RangeError || e instanceof ReferenceError || e instanceof SyntaxError;

const now = (): number => globalThis.performance.now();

/** GPU ms of one run of `run` (timestamp queries when available, else wall-clock around submits). */
async function timeRuns(rt: GpuRuntime, run: () => void, budgetMs: number): Promise<{ ms: number; timing: TuneEntry['timing'] }> {
  let t0 = now();
  run();
  await rt.sync();
  const one = now() - t0;
  const reps = Math.max(2, Math.min(20, Math.floor(budgetMs / Math.max(one, 0.02))));
  if (rt.startProfile()) {
    for (let i = 0; i < reps; i++) run();
    const prof = await rt.readProfile();
    const total = prof.reduce((s, p) => s + p.ms, 0);
    if (total > 0) return { ms: total / reps, timing: 'timestamp' };
  }
  t0 = now();
  for (let i = 0; i < reps; i++) run();
  await rt.sync();
  return { ms: (now() - t0) / reps, timing: 'wall-clock' };
}

/** Unavailability lines already printed in this process (op|variant|reason). */
const reported = new Set<string>();

const errText = (e: unknown): string => (e instanceof Error ? e.message : String(e)).split('\n').slice(0, 2).join(' ');

/** Validate then time every candidate of `op` at `shape`; the fastest valid one wins. */
export async function tuneShape(rt: GpuRuntime, op: string, shape: ShapeLike, opts: TuneOptions = {}): Promise<TuneEntry> {
  const probe = PROBES[op];
  if (!probe) throw new Error(`tune: no probe for op '${op}' (ops with probes: ${Object.keys(PROBES).join(', ')})`);
  const log = opts.log ?? stderr;
  const cls = shapeClass(op, shape);
  const where = `${op} ${cls} (${probe.describe(shape)})`;
  const names = opts.variants?.[op] ?? variantsOf(op);
  const candidates: CandidateResult[] = [];
  let timing: TuneEntry['timing'] = rt.hasTimestamps ? 'timestamp' : 'wall-clock';
  const skip = probe.skip?.(rt, shape);
  if (skip) {
    for (const variant of names) candidates.push({ variant, status: 'unavailable', error: skip });
  } else {
    const c = probe.setup(rt, shape, opts.seed ?? 20261201, (r, args, v, cfg) => (opts.launchers?.[op]?.[v] ?? probe.launch)(r, args, v, cfg));
    try {
      for (const variant of names) {
        const all = probe.configs?.(rt, variant, shape) ?? [undefined];
        const which = opts.configs ?? (rt.handle.info.software ? 'first' : 'all');
        for (const config of which === 'first' ? all.slice(0, 1) : all) {
          const res: CandidateResult = { variant, ...(config ? { config } : {}), status: 'failed' };
          candidates.push(res);
          const name = `${variant}${config ? JSON.stringify(config) : ''}`;
          c.reset();
          try {
            c.launch(variant, config);
          } catch (e) {
            res.status = isBug(e) ? 'failed' : 'unavailable';
            res.error = errText(e);
            await rt.sync().catch(() => {}); // drop whatever it had recorded
            // A failure is always reported; the same unavailability (e.g. a missing feature) once.
            const said = `${op}|${name}|${res.error}`;
            if (res.status === 'failed' || !reported.has(said)) log(`concord tune: ${where}: variant '${name}' ${res.status}: ${res.error}`);
            reported.add(said);
            continue;
          }
          try {
            await rt.sync();
            const chk = await c.check();
            res.maxError = chk.maxError;
            res.tolerance = chk.tolerance;
            if (!chk.ok) {
              res.error = `does not match the CPU twin: ${chk.summary}`;
              log(`concord tune: ${where}: variant '${name}' failed validation (never used): ${chk.summary}`);
              continue;
            }
            const t = await timeRuns(rt, () => c.launch(variant, config), opts.budgetMs ?? 50);
            res.ms = t.ms;
            timing = t.timing;
            res.status = 'valid';
          } catch (e) {
            res.status = 'failed';
            res.error = errText(e);
            log(`concord tune: ${where}: variant '${name}' failed (never used): ${res.error}`);
          }
        }
      }
    } finally {
      c.dispose();
      await rt.sync().catch(() => {});
    }
  }
  const valid = candidates.filter((x) => x.status === 'valid').sort((a, b) => a.ms! - b.ms!);
  // The variant's first config is its default: a tuned winner without a config runs that one.
  // Variants that round activations to f16 (EXPERIMENTAL_VARIANTS) are validated and timed, but
  // win only with CONCORD_TUNE_EXPERIMENTAL=1: their results differ from the f16-weight twin by
  // ~1e-3, beyond the 1e-4 the other f16-weight kernels keep to it.
  const allowed = valid.filter((x) => settings.tuneExperimental || !(EXPERIMENTAL_VARIANTS[op] ?? []).includes(x.variant));
  const best = allowed[0];
  return {
    op, shapeClass: cls, shape: { ...shape }, winner: best?.variant ?? null, ...(best?.config ? { winnerConfig: best.config } : {}),
    timing, candidates, tunedAt: new Date().toISOString(),
  };
}

// ---------------------------------------------------------------------------------------------
// The cache

export function adapterIdentity(rt: { handle: { info: AdapterIdentity; features?: string[] } }): AdapterIdentity {
  const i = rt.handle.info;
  // The device's features are part of the identity: a cache written with a feature (e.g.
  // subgroup matrices under allow_unsafe_apis) must not serve a device without it.
  return { vendor: i.vendor, architecture: i.architecture, device: i.device, description: i.description, ...(rt.handle.features ? { features: [...rt.handle.features].sort() } : {}) };
}

let version: string | null = null;
/** concord's version (package.json; in the GPU bundle, which has none, the version esbuild defined). */
export function concordVersion(): string {
  if (version) return version;
  const bundled = (globalThis as { __CONCORD_VERSION__?: string }).__CONCORD_VERSION__;
  if (bundled) return (version = bundled);
  const fs = nodeBuiltin<Fs>('fs'), path = nodeBuiltin<Path>('path');
  return (version = (JSON.parse(fs.readFileSync(path.join(packageRoot(), 'package.json'), 'utf8')) as { version: string }).version);
}

/** The cache file's name: readable vendor-architecture-device plus a hash of the whole identity and the version. */
export function adapterKey(id: AdapterIdentity, concord = concordVersion()): string {
  const crypto = nodeBuiltin<typeof import('node:crypto')>('crypto');
  const slug = `${id.vendor}-${id.architecture}-${id.device}`.toLowerCase().replace(/[^a-z0-9]+/g, '-').replace(/^-|-$/g, '').slice(0, 60);
  const hash = crypto.createHash('sha256').update(JSON.stringify([id.vendor, id.architecture, id.device, id.description, concord, ...(id.features ? [id.features] : [])])).digest('hex').slice(0, 12);
  return `${slug || 'adapter'}-${hash}`;
}

/** The cache folder: CONCORD_TUNE_CACHE, else $XDG_CACHE_HOME/concord/tune, else ~/.cache/concord/tune. */
export function tuneCacheDir(): string {
  const path = nodeBuiltin<Path>('path'), os = nodeBuiltin<typeof import('node:os')>('os');
  if (settings.tuneCache) return path.resolve(settings.tuneCache);
  const xdg = (globalThis as { process?: { env: Record<string, string | undefined> } }).process?.env.XDG_CACHE_HOME;
  return path.join(xdg || path.join(os.homedir(), '.cache'), 'concord', 'tune');
}

export const tuneCachePath = (id: AdapterIdentity): string => nodeBuiltin<Path>('path').join(tuneCacheDir(), `${adapterKey(id)}.json`);

/** Read a cache file: null when absent; a corrupt or foreign one is reported and ignored. */
export function readTuneCache(file: string, id: AdapterIdentity, log: (line: string) => void = stderr): TuneCacheFile | null {
  const fs = nodeBuiltin<Fs>('fs');
  let text: string;
  try { text = fs.readFileSync(file, 'utf8'); } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return null;
    log(`concord tune: cannot read the tuning cache ${file} (${errText(e)}); ignoring it`);
    return null;
  }
  try {
    const c = JSON.parse(text) as TuneCacheFile;
    if (c?.format !== 1 || typeof c.entries !== 'object' || c.entries === null || Array.isArray(c.entries)) throw new Error('not a concord tuning cache (format 1)');
    if (c.concord !== concordVersion() || JSON.stringify(adapterIdentity({ handle: { info: c.adapter, features: c.adapter?.features } })) !== JSON.stringify(id)) {
      throw new Error(`it is for another adapter or concord version (${c.adapter?.description} / ${c.concord})`);
    }
    for (const [k, e] of Object.entries(c.entries)) {
      if (typeof e?.op !== 'string' || typeof e.shapeClass !== 'string' || !Array.isArray(e.candidates) || (e.winner !== null && typeof e.winner !== 'string')) throw new Error(`entry '${k}' is malformed`);
    }
    return c;
  } catch (e) {
    log(`concord tune: ignoring the corrupt tuning cache ${file}: ${errText(e)}`);
    return null;
  }
}

/** Test hooks of the cache writer. */
export const TUNE_TEST_HOOKS: { beforeRename?: (tmp: string) => void } = {};

/** Write the cache atomically: a temporary file beside it, fsynced, renamed into place. */
export function writeTuneCache(file: string, cache: TuneCacheFile): void {
  const fs = nodeBuiltin<Fs>('fs'), path = nodeBuiltin<Path>('path');
  const tmp = `${file}.tmp-${process.pid}-${Math.random().toString(36).slice(2, 8)}`;
  try {
    fs.mkdirSync(path.dirname(file), { recursive: true });
    const fd = fs.openSync(tmp, 'w');
    try {
      fs.writeSync(fd, `${JSON.stringify(cache, null, 1)}\n`);
      fs.fsyncSync(fd);
    } finally { fs.closeSync(fd); }
    TUNE_TEST_HOOKS.beforeRename?.(tmp);
    fs.renameSync(tmp, file);
  } catch (e) {
    try { fs.rmSync(tmp, { force: true }); } catch { /* the folder itself is unusable */ }
    throw new Error(`tune: writing the tuning cache ${file}: ${errText(e)}`);
  }
}

export const entryKey = (op: string, cls: string): string => `${op}|${cls}`;

// ---------------------------------------------------------------------------------------------
// tuneFor: the one step a GPU model runs when it is built

export interface TuneForOptions extends TuneOptions {
  /** default settings.tune */
  mode?: 'auto' | 'off' | 'refresh';
  /** Tune every request even when cached (`concord tune`). */
  always?: boolean;
  /** Write the cache when something was tuned (default true; `concord tune --dry-run`: false). */
  write?: boolean;
  /** The cache file (default tuneCachePath of the adapter). */
  cacheFile?: string;
}

export interface TuneReport {
  adapter: AdapterIdentity & { software: boolean };
  adapterKey: string | null;
  cacheFile: string | null;
  /** One per distinct (op, shape class) requested, in request order. */
  entries: (TuneEntry & { source: 'cache' | 'tuned' })[];
  /** Requests left at their default: no probe, not in KERNEL_VARIANTS, or not tuned here (software adapter, off). */
  skipped: { op: string; shapeClass: string; reason: string }[];
  written: boolean;
  /** Why the cache could not be written (the winners still hold for this process). */
  writeError?: string;
}

/**
 * Why a cached entry cannot be used on this device, or null: its winner must be one of the op's
 * variants and its tile configuration one of those the tuner would try here (a hand-edited or
 * damaged cache must not reach a kernel: it is reported, naming the file, and tuned again or left
 * to the defaults).
 */
function cachedEntryProblem(rt: GpuRuntime, e: TuneEntry, shape: ShapeLike, opts: TuneForOptions): string | null {
  if (e.winner === null) return null;
  const variants: readonly string[] = opts.variants?.[e.op] ?? (KERNEL_VARIANTS as Record<string, readonly string[]>)[e.op] ?? [];
  if (!variants.includes(e.winner)) return `winner '${e.winner}' is not a ${e.op} variant (${variants.join(', ')})`;
  if (e.winnerConfig === undefined) return null;
  const valid = PROBES[e.op]?.configs?.(rt, e.winner, shape) ?? [undefined];
  const same = (c: Config | undefined) => c !== undefined && JSON.stringify(Object.entries(c).sort()) === JSON.stringify(Object.entries(e.winnerConfig!).sort());
  return valid.some(same) ? null : `tile configuration ${JSON.stringify(e.winnerConfig)} of '${e.winner}' is not one this device can run`;
}

/**
 * Make the variants of `requests` known to kernelVariant(): cached winners are loaded, and what is
 * missing is tuned (hardware adapters, CONCORD_TUNE=refresh, or `always`) and written to the cache.
 */
export async function tuneFor(rt: GpuRuntime, requests: TuneRequest[], opts: TuneForOptions = {}): Promise<TuneReport> {
  const mode = opts.mode ?? settings.tune;
  const log = opts.log ?? stderr;
  const id = adapterIdentity(rt);
  const report: TuneReport = { adapter: { ...id, software: rt.handle.info.software }, adapterKey: null, cacheFile: null, entries: [], skipped: [], written: false };
  const seen = new Set<string>();
  const wanted: { req: TuneRequest; cls: string; key: string }[] = [];
  for (const req of requests) {
    const cls = shapeClass(req.op, req.shape), key = entryKey(req.op, cls);
    if (seen.has(key)) continue;
    seen.add(key);
    if (!(req.op in KERNEL_VARIANTS) && !opts.variants?.[req.op]) report.skipped.push({ op: req.op, shapeClass: cls, reason: 'no variants in this build' });
    else if (!PROBES[req.op]) report.skipped.push({ op: req.op, shapeClass: cls, reason: 'no probe (defaults only)' });
    else wanted.push({ req, cls, key });
  }
  if (mode === 'off' && !opts.always) {
    for (const w of wanted) report.skipped.push({ op: w.req.op, shapeClass: w.cls, reason: 'CONCORD_TUNE=off' });
    return report;
  }
  // Without a file system (a browser) nothing can be cached: keep the defaults rather than tune on every load.
  const canCache = isNode;
  if (!canCache && !opts.always) {
    for (const w of wanted) report.skipped.push({ op: w.req.op, shapeClass: w.cls, reason: 'no tuning cache outside Node' });
    return report;
  }
  report.adapterKey = canCache ? adapterKey(id) : null;
  report.cacheFile = canCache ? opts.cacheFile ?? tuneCachePath(id) : null;
  const cache: TuneCacheFile = (report.cacheFile ? readTuneCache(report.cacheFile, id, log) : null) ?? { format: 1, concord: canCache ? concordVersion() : '', adapter: id, entries: {} };
  for (const w of wanted) {
    const bad = cache.entries[w.key] ? cachedEntryProblem(rt, cache.entries[w.key], w.req.shape, opts) : null;
    if (bad) {
      log(`concord tune: ignoring '${w.key}' in the tuning cache ${report.cacheFile}: ${bad}`);
      delete cache.entries[w.key];
    }
  }
  const tuneMissing = opts.always || mode === 'refresh' || !rt.handle.info.software;
  const retune = opts.always || mode === 'refresh';
  const todo = wanted.filter((w) => retune || !cache.entries[w.key]);
  if (todo.length && tuneMissing && !opts.always) {
    log(`concord: tuning ${todo.length} kernel shape class${todo.length === 1 ? '' : 'es'} on ${rt.name} (first use; cached in ${report.cacheFile})`);
  }
  let changed = false;
  for (const w of wanted) {
    const cached = cache.entries[w.key];
    if (cached && !retune) {
      report.entries.push({ ...cached, source: 'cache' });
    } else if (tuneMissing) {
      const e = await tuneShape(rt, w.req.op, w.req.shape, opts);
      cache.entries[w.key] = e;
      changed = true;
      report.entries.push({ ...e, source: 'tuned' });
    } else {
      report.skipped.push({ op: w.req.op, shapeClass: w.cls, reason: 'software adapter: not tuned automatically (concord tune)' });
    }
  }
  setTuned(rt, report.entries.filter((e) => e.winner).map((e) => ({ op: e.op, shapeClass: e.shapeClass, variant: e.winner!, config: e.winnerConfig })));
  if (changed) rt.trim(); // the probes' inputs (an LM head's worth of random weights) leave the pool
  if (changed && report.cacheFile && opts.write !== false) {
    try {
      writeTuneCache(report.cacheFile, cache);
      report.written = true;
    } catch (e) {
      report.writeError = errText(e);
      log(`concord: ${report.writeError}; the tuned variants hold for this run only`);
    }
  }
  return report;
}

/** The default shapes of every tunable op (`concord tune` without --model). */
export function defaultRequests(rt: GpuRuntime, size: 'small' | 'full', ops = tunableOps()): TuneRequest[] {
  return ops.flatMap((op) => PROBES[op].shapes(rt, size).map((shape) => ({ op, shape })));
}

/**
 * The shapes a transformer's prefill runs: every linear's (N, K) and the LM head at each row class
 * up to the token budget, and attention at a few lengths up to the context.
 */
export function modelRequests(c: ModelConfig, opts: { f16: boolean; maxTokens?: number; quant?: { N: number; K: number; type: number; glu?: string }[] }): TuneRequest[] {
  const maxTokens = opts.maxTokens ?? 8192;
  const rows = ROW_CLASSES.filter((r, i) => i === 0 || ROW_CLASSES[i - 1] < maxTokens).map((r) => Math.min(r, maxTokens));
  const qd = c.nHeads * c.headDim, kvd = c.nKvHeads * c.headDim;
  // As forward-gpu.ts runs them: gated MLPs as one [gate; up] GLU matmul (its own shape class).
  const gated = c.act === 'swiglu' || c.act === 'geglu';
  const linears: [number, number, boolean][] = [[qd, c.dim, false], [kvd, c.dim, false], [c.dim, qd, false], [c.hiddenDim, c.dim, gated], [c.dim, c.hiddenDim, false]];
  const out: TuneRequest[] = [];
  for (const M of rows) for (const [N, K, glu] of linears) out.push({ op: 'matmul', shape: { M, N, K, f16: opts.f16, ...(glu ? { glu: c.act === 'geglu' ? 'gelu_tanh' : 'silu' } : {}) } });
  // Linears kept as GGUF blocks (GpuTransformer.quantShapes) run the block kernels instead.
  for (const M of rows) for (const q of opts.quant ?? []) out.push({ op: 'qmatmul', shape: { M, ...q } });
  for (const T of rows) out.push({ op: 'logprob', shape: { T, V: c.vocabSize, d: c.dim, f16: opts.f16 } });
  for (const L of [128, 512, 2048].filter((l) => l <= Math.max(128, c.maxSeqLen))) {
    out.push({ op: 'attention', shape: { B: Math.max(1, Math.floor(Math.min(maxTokens, 4096) / L)), L, nHeads: c.nHeads, nKvHeads: c.nKvHeads, headDim: c.headDim, causal: true } });
  }
  return out;
}
