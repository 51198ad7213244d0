// The one kernel-variant policy (src/gpu/variants.ts): direct on software adapters, the GPU
// variant elsewhere, CONCORD_KERNEL_VARIANT forcing either; bad settings are errors.

import { afterEach, describe, expect, test } from 'vitest';
import { defaultMatmulVariant } from '../kernels/matmul.js';
import { defaultRowMaxVariant } from '../kernels/pool.js';
import { kernelVariant, parseVariantSetting } from '../src/gpu/variants.js';
import type { GpuRuntime } from '../src/gpu/runtime.js';

const adapter = (software: boolean) => ({ handle: { info: { software } } });
const old = process.env.CONCORD_KERNEL_VARIANT;
afterEach(() => {
  if (old === undefined) delete process.env.CONCORD_KERNEL_VARIANT;
  else process.env.CONCORD_KERNEL_VARIANT = old;
});

describe('kernel variants', () => {
  test('by adapter when nothing is forced', () => {
    delete process.env.CONCORD_KERNEL_VARIANT;
    expect(kernelVariant(adapter(true), 'matmul')).toBe('direct');
    expect(kernelVariant(adapter(false), 'matmul')).toBe('blocked');
    expect(kernelVariant(adapter(false), 'logprob')).toBe('gemm');
    expect(kernelVariant(adapter(true), 'logprob')).toBe('direct');
    expect(kernelVariant(adapter(false), 'rowmax')).toBe('reduce');
    expect(kernelVariant(adapter(true), 'rowmax')).toBe('direct');
    expect(kernelVariant(adapter(false), 'attention')).toBe('flash');
    expect(kernelVariant(adapter(true), 'attention')).toBe('flash'); // measured faster there too (SOFTWARE_DEFAULT)
  });

  test('CONCORD_KERNEL_VARIANT forces one name everywhere or per op, and the launchers follow it', () => {
    process.env.CONCORD_KERNEL_VARIANT = 'direct';
    expect(kernelVariant(adapter(false), 'matmul')).toBe('direct');
    expect(kernelVariant(adapter(false), 'rowmax')).toBe('direct');
    process.env.CONCORD_KERNEL_VARIANT = 'matmul=tiled, rowmax=reduce';
    const sw = adapter(true) as unknown as GpuRuntime;
    expect(defaultMatmulVariant(sw)).toBe('tiled');
    expect(defaultRowMaxVariant(sw)).toBe('reduce');
    expect(kernelVariant(sw, 'logprob')).toBe('direct'); // not forced: by adapter
    process.env.CONCORD_KERNEL_VARIANT = 'tiled';
    // a bare name applies to every op that has that variant (the quantized matmul's included)
    expect(parseVariantSetting('tiled')).toEqual({ matmul: 'tiled', logprob: 'tiled', qmatmul: 'tiled' });
  });

  test('unknown ops and variants are errors that name them', () => {
    expect(() => parseVariantSetting('matmul=fast')).toThrow(/matmul has no variant 'fast'/);
    expect(() => parseVariantSetting('attn=direct')).toThrow(/unknown op 'attn'/);
    expect(() => parseVariantSetting('speedy')).toThrow(/no op has a variant 'speedy'/);
  });
});
