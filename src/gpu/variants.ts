// The one policy that chooses a kernel variant for an adapter. Where CPU rasterisers and GPUs want
// different code, each op has a 'direct' variant (no workgroup memory or barriers, operands read
// straight from storage: fast on SwiftShader and lavapipe) and a variant for GPUs ('tiled' for
// matmul ('blocked'/'gemv' on hardware: kernels/matmul.ts chooseMatmulVariant refines the choice per
// shape, 'subgroup-matrix' only once validated on the device), 'gemm' for logprob, 'reduce' for the row-max pool, 'flash' for attention). The choice, in order:
//   1. CONCORD_KERNEL_VARIANT (src/env.ts) forces a variant, for a benchmark or a bug report:
//        CONCORD_KERNEL_VARIANT=direct                    every op that has a 'direct' variant
//        CONCORD_KERNEL_VARIANT=matmul=tiled,logprob=direct   per op
//      An op or a variant name that does not exist is an error, never silently ignored.
//   2. The tuned winner for this adapter and the call's shape class (shapeClass below), when
//      src/tune/index.ts has measured one (tuneFor(), run once when a GPU model is built, or a
//      cache written by `concord tune`) and put it here with setTuned(). Synchronous: the kernels'
//      call sites only read this in-memory table.
//   3. The default: 'direct' on software adapters ('flash' for attention: SOFTWARE_DEFAULT), the
//      first (GPU) variant elsewhere; matmul refines it per shape (chooseMatmulVariant).
// Kernel files only append names to KERNEL_VARIANTS; the tuner picks new names up by itself.

import { settings } from '../env.js';

export const KERNEL_VARIANTS = {
  matmul: ['blocked', 'tiled', 'direct', 'gemv', 'subgroup-matrix'], // subgroup-matrix: never the default until validated on the device
  logprob: ['gemm', 'tiled', 'direct', 'sgmat'], // sgmat: experimental, never the default: forced, or a tuned winner that passed validation
  rowmax: ['reduce', 'direct'],
  attention: ['flash', 'direct'],
  qmatmul: ['gemv', 'tiled', 'subgroup-matrix'], // GGUF-block weights (kernels/matmul-quant.ts): its own per-shape default, gemv for few rows; subgroup-matrix never a default
} as const;

export type VariantOp = keyof typeof KERNEL_VARIANTS;
export type VariantOf<O extends VariantOp> = (typeof KERNEL_VARIANTS)[O][number];

/** What kernelVariant needs to know of the adapter (a GpuRuntime fits). */
export interface AdapterLike { handle: { info: { software: boolean } } }

/** Parse a CONCORD_KERNEL_VARIANT value into per-op choices (exported for tests). */
export function parseVariantSetting(text: string | undefined): Partial<Record<VariantOp, string>> {
  const out: Partial<Record<VariantOp, string>> = {};
  if (!text) return out;
  const ops = Object.keys(KERNEL_VARIANTS) as VariantOp[];
  for (const part of text.split(',').map((s) => s.trim()).filter(Boolean)) {
    const eq = part.indexOf('=');
    if (eq < 0) {
      // One name for every op that has a variant of that name.
      const takers = ops.filter((op) => (KERNEL_VARIANTS[op] as readonly string[]).includes(part));
      if (!takers.length) throw new Error(`CONCORD_KERNEL_VARIANT: no op has a variant '${part}' (ops: ${ops.map((o) => `${o}=${KERNEL_VARIANTS[o].join('|')}`).join(', ')})`);
      for (const op of takers) out[op] = part;
      continue;
    }
    const op = part.slice(0, eq).trim() as VariantOp;
    const v = part.slice(eq + 1).trim();
    if (!(op in KERNEL_VARIANTS)) throw new Error(`CONCORD_KERNEL_VARIANT: unknown op '${op}' (ops: ${ops.join(', ')})`);
    if (!(KERNEL_VARIANTS[op] as readonly string[]).includes(v)) throw new Error(`CONCORD_KERNEL_VARIANT: ${op} has no variant '${v}' (${KERNEL_VARIANTS[op].join(', ')})`);
    out[op] = v;
  }
  return out;
}

/** The variant of `op` forced by CONCORD_KERNEL_VARIANT, if any. */
export function forcedVariant<O extends VariantOp>(op: O): VariantOf<O> | undefined {
  return parseVariantSetting(settings.kernelVariant)[op] as VariantOf<O> | undefined;
}

/** A call's shape, as the op's arguments carry it (extra fields are ignored). */
export type ShapeLike = Readonly<Record<string, unknown>>;

const n = (s: ShapeLike, k: string): number => {
  const v = s[k];
  if (typeof v !== 'number' || !Number.isFinite(v) || v < 0) throw new Error(`shape class: '${k}' must be a non-negative number (got ${String(v)})`);
  return v;
};
/** Next power of two >= x (1 for 0). */
export const pow2Ceil = (x: number): number => (x <= 1 ? 1 : 2 ** Math.ceil(Math.log2(x)));
/**
 * Rows of a batch (M of a matmul, T positions of the LM head, rows of the row max) fall in four
 * classes whose kernels want different shapes: GEMV-like (<= 16), short (<= 128), medium (<= 1024)
 * and long. Each class is tuned at its upper end (4096 for the last).
 */
export const ROW_CLASSES = [16, 128, 1024, 4096] as const;
export const rowClass = (rows: number): number => ROW_CLASSES.find((c) => rows <= c) ?? ROW_CLASSES[ROW_CLASSES.length - 1];
const dtype = (s: ShapeLike): string => (s.f16 ? 'f16' : 'f32');

/**
 * The shape class of a call, per op: the key under which a tuned winner is cached. Rows are
 * bucketed by rowClass, the other dimensions by the next power of two; f16 weights are their own
 * class. An op without an entry has one class ('any').
 */
export const SHAPE_CLASSES: Readonly<Record<string, (s: ShapeLike) => string>> = {
  matmul: (s) => `m${rowClass(n(s, 'M'))}.n${pow2Ceil(n(s, 'N'))}.k${pow2Ceil(n(s, 'K'))}.${dtype(s)}${s.glu ? '.glu' : ''}`,
  logprob: (s) => `t${rowClass(n(s, 'T'))}.v${pow2Ceil(n(s, 'V'))}.d${pow2Ceil(n(s, 'd'))}.${dtype(s)}`,
  qmatmul: (s) => `m${rowClass(n(s, 'M'))}.n${pow2Ceil(n(s, 'N'))}.k${pow2Ceil(n(s, 'K'))}.q${n(s, 'type')}${s.glu ? '.glu' : ''}`,
  rowmax: (s) => `n${rowClass(n(s, 'N'))}.m${pow2Ceil(n(s, 'M'))}`,
  attention: (s) => `l${pow2Ceil(n(s, 'L'))}.h${n(s, 'nHeads')}.kv${n(s, 'nKvHeads')}.hd${n(s, 'headDim')}${s.causal === false ? '.bi' : ''}`,
};

export function shapeClass(op: string, shape: object): string {
  const f = SHAPE_CLASSES[op];
  return f ? f(shape as ShapeLike) : 'any';
}

// Tuned winners, per adapter handle (a GpuRuntime's `handle`): "op|class" → variant name (+ tile config).
interface Won { variant: string; config?: Readonly<Record<string, unknown>> }
const tuned = new WeakMap<object, Map<string, Won>>();

/** Record tuned winners for an adapter (src/tune/index.ts); replaces earlier ones of the same keys. */
export function setTuned(rt: AdapterLike, winners: Iterable<{ op: string; shapeClass: string; variant: string; config?: Readonly<Record<string, unknown>> }>): void {
  let m = tuned.get(rt.handle);
  if (!m) tuned.set(rt.handle, (m = new Map()));
  for (const w of winners) {
    if (!(w.op in KERNEL_VARIANTS) || !(KERNEL_VARIANTS[w.op as VariantOp] as readonly string[]).includes(w.variant)) continue; // a name this build lacks
    m.set(`${w.op}|${w.shapeClass}`, { variant: w.variant, ...(w.config ? { config: w.config } : {}) });
  }
}

/** Forget every tuned winner of an adapter (tests; CONCORD_TUNE=off). */
export function clearTuned(rt: AdapterLike): void { tuned.delete(rt.handle); }

/** The tuned winner of `op` for this shape, if any. */
export function tunedVariant(rt: AdapterLike, op: string, shape: object): string | undefined {
  const m = tuned.get(rt.handle);
  return m?.size ? m.get(`${op}|${shapeClass(op, shape)}`)?.variant : undefined;
}

/**
 * The tuned tile configuration of `op` for this shape when `variant` is the tuned winner (a kernel
 * with configs, e.g. matmul's 'blocked', runs it instead of its default config), else undefined.
 */
export function tunedConfig(rt: AdapterLike, op: string, shape: object, variant: string): Readonly<Record<string, unknown>> | undefined {
  const m = tuned.get(rt.handle);
  const w = m?.size ? m.get(`${op}|${shapeClass(op, shape)}`) : undefined;
  return w && w.variant === variant ? w.config : undefined;
}

/**
 * Software adapters' defaults where they differ from 'direct': attention's 'flash' (64-query tiles)
 * measured 2–4× the old 16-query kernel on both lavapipe and SwiftShader (bench/attention.ts).
 */
const SOFTWARE_DEFAULT: Partial<Record<VariantOp, string>> = { attention: 'flash' };

export function defaultVariant<O extends VariantOp>(rt: AdapterLike, op: O): VariantOf<O> {
  const list = KERNEL_VARIANTS[op] as readonly string[];
  if (!rt.handle.info.software) return list[0] as VariantOf<O>;
  return (SOFTWARE_DEFAULT[op] ?? (list.includes('direct') ? 'direct' : list[0])) as VariantOf<O>;
}

/**
 * The variant of `op` for this adapter and (when given) this call's shape: the forced one, else
 * the tuned winner of the shape's class, else the default (direct on software adapters, the GPU
 * variant elsewhere).
 */
export function kernelVariant<O extends VariantOp>(rt: AdapterLike, op: O, shape?: object): VariantOf<O> {
  const forced = forcedVariant(op);
  if (forced) return forced;
  const won = shape ? tunedVariant(rt, op, shape) : undefined;
  if (won) return won as VariantOf<O>;
  return defaultVariant(rt, op);
}
