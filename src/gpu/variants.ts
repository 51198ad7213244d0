// The one policy that chooses a kernel variant for an adapter. Where CPU rasterisers and GPUs want
// different code, each op has a 'direct' variant (no workgroup memory or barriers, operands read
// straight from storage: fast on SwiftShader and lavapipe) and a variant for GPUs ('tiled' for
// matmul and logprob, 'reduce' for the row-max pool). Software adapters get 'direct', hardware
// ones the first of the op's list — matmul refines that per shape (kernels/matmul.ts
// chooseMatmulVariant: 'gemv' for few rows, 'subgroup-matrix' only once validated) — unless CONCORD_KERNEL_VARIANT (src/env.ts) forces a variant, for a benchmark
// or a bug report:
//   CONCORD_KERNEL_VARIANT=direct                    every op that has a 'direct' variant
//   CONCORD_KERNEL_VARIANT=matmul=tiled,logprob=direct   per op
// An op or a variant name that does not exist is an error, never silently ignored.

import { settings } from '../env.js';

export const KERNEL_VARIANTS = {
  matmul: ['blocked', 'tiled', 'direct', 'gemv', 'subgroup-matrix'],
  logprob: ['tiled', 'direct'],
  rowmax: ['reduce', 'direct'],
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

/** The variant of `op` for this adapter: the forced one, else 'direct' on software adapters and the GPU variant elsewhere. */
export function kernelVariant<O extends VariantOp>(rt: AdapterLike, op: O): VariantOf<O> {
  const forced = forcedVariant(op);
  if (forced) return forced;
  const [gpu, direct] = [KERNEL_VARIANTS[op][0], 'direct'];
  return (rt.handle.info.software ? direct : gpu) as VariantOf<O>;
}
