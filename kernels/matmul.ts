// matmul: C[M,N] = A[M,K] · B (+ bias) (+ C: accumulate), B K×N ('kn') or N×K ('nk', weights
// stored [out, in]); optionally the gated (GLU) epilogue C = act(A·Bg + bg) * (A·Bu + bu) with
// B = [gate; up] concatenated (2N×K, 'nk'), so a gated MLP's gate and up are one matmul.
// Variants (shaders/matmul/*.wgsl), all with the same bindings, uniforms and epilogues:
//  - 'blocked'  register-blocked SIMT for hardware GPUs: 8×8 outputs per thread, 128×128 (or
//               other, matmulConfigs) workgroup tiles, vec4 global and workgroup loads, K through
//               double-buffered workgroup memory. Needs K % 4 == 0 ('nk') / N % 4 == 0 ('kn').
//  - 'gemv'     few rows (short batches): a workgroup per few columns for all M rows, K split over
//               64 lanes and tree-reduced in workgroup memory, so N/4 workgroups keep a GPU busy.
//  - 'tiled'    the first GPU kernel: 64×64 tiles, 4×4 scalar blocks (any shape).
//  - 'direct'   no workgroup memory or barriers (CPU rasterisers: SwiftShader, lavapipe).
//  - 'subgroup-matrix'  cooperative matrices (f16 operands, f32 accumulators): NEVER RUN — no
//               adapter we have had offers the feature; see validateMatmulVariant(). Its WGSL
//               is compile-checked on Dawn's null backend (tests/matmul.test.ts).
// The CPU twin below accumulates in f64 (JavaScript numbers).

import { ceilDiv, GpuRuntime, ProgramSpec, Uniforms } from '../src/gpu/runtime.js';
import { composeShader } from '../src/gpu/shaders.js';
import { forcedVariant, kernelVariant, tunedConfig, tunedVariant } from '../src/gpu/variants.js';
import { validate } from '../src/validate.js';
import { roundThroughF16, toF16 } from '../src/util/f16.js';
import { gatedCpu, type GateAct } from './act.js';

export type BLayout = 'kn' | 'nk';

export type MatmulVariant = 'blocked' | 'tiled' | 'direct' | 'gemv' | 'subgroup-matrix';

/** The 64×64 tile of 'tiled' and 'direct' (and 'subgroup-matrix'). */
export const MATMUL_TILE = 64;
/** The default policy gives shapes with at most this many rows to 'gemv' on hardware GPUs. */
export const GEMV_MAX_ROWS = 16;

/**
 * A tile configuration (override constants only: no new WGSL). 'blocked': wgx × wgy threads of
 * 8×8 outputs (tile (8·wgy) × (8·wgx)), K step bk. 'gemv': kl lanes along K × nc columns.
 */
export type MatmulConfig =
  | { variant: 'blocked'; wgx: number; wgy: number; bk: number }
  | { variant: 'gemv'; kl: number; nc: number }
  | { variant: 'tiled' | 'direct' | 'subgroup-matrix' };

const BLOCKED_CANDIDATES: [number, number, number][] = [[16, 16, 16], [16, 16, 8], [8, 16, 16], [16, 8, 16], [8, 8, 16], [8, 16, 8]];
const GEMV_CANDIDATES: [number, number][] = [[64, 4], [32, 8], [128, 2], [64, 2]];
/** The blocked kernel keeps its double buffer within 32 KiB even where the adapter allows more. */
export const BLOCKED_MAX_WORKGROUP_BYTES = 32 * 1024;

type Limits = Pick<GPUSupportedLimits, 'maxComputeWorkgroupStorageSize' | 'maxComputeInvocationsPerWorkgroup' | 'maxComputeWorkgroupSizeX' | 'maxComputeWorkgroupSizeY'>;

const blockedBytes = (c: { wgx: number; wgy: number; bk: number }): number => 2 * c.bk * 8 * (c.wgx + c.wgy) * 4;

/** Why a config cannot run within these limits (null: it can). */
function configProblem(c: MatmulConfig, l: Limits): string | null {
  if (c.variant === 'blocked') {
    const nt = c.wgx * c.wgy, bytes = blockedBytes(c);
    if (c.bk % 4 || (2 * c.bk) % c.wgx || (2 * c.bk) % c.wgy) return `bk ${c.bk} must be a multiple of 4 and 2·bk of wgx and wgy`;
    if ((2 * c.bk) / c.wgx > 8 || (2 * c.bk) / c.wgy > 8) return 'more than 8 vec4 loads per thread and tile';
    if (nt > l.maxComputeInvocationsPerWorkgroup || c.wgx > l.maxComputeWorkgroupSizeX || c.wgy > l.maxComputeWorkgroupSizeY) return `${c.wgx}×${c.wgy} threads exceed the workgroup limits`;
    const cap = Math.min(l.maxComputeWorkgroupStorageSize, BLOCKED_MAX_WORKGROUP_BYTES);
    if (bytes > cap) return `${bytes} bytes of workgroup memory, above ${cap}`;
    return null;
  }
  if (c.variant === 'gemv') {
    if (c.kl & (c.kl - 1)) return `kl ${c.kl} must be a power of two`;
    if (c.kl < 8) return `kl ${c.kl} must be at least 8 (the kernel's 8-row blocks are stored by the first 8 lanes)`;
    if (c.nc < 2 || c.nc % 2) return `nc ${c.nc} must be even (GLU pairs columns)`;
    if (c.kl * c.nc > l.maxComputeInvocationsPerWorkgroup || c.kl > l.maxComputeWorkgroupSizeX || c.nc > l.maxComputeWorkgroupSizeY) return `${c.kl}×${c.nc} threads exceed the workgroup limits`;
    if (8 * c.kl * c.nc * 4 > l.maxComputeWorkgroupStorageSize) return 'reduction buffer exceeds the workgroup storage limit';
    return null;
  }
  return null;
}

/** The tile configurations of a variant that fit this adapter's limits (for the autotuner); first = default. */
export function matmulConfigs(rt: { limits: Limits }, variant: MatmulVariant = 'blocked'): MatmulConfig[] {
  if (variant === 'blocked') {
    return BLOCKED_CANDIDATES.map(([wgx, wgy, bk]) => ({ variant, wgx, wgy, bk }) as MatmulConfig).filter((c) => !configProblem(c, rt.limits));
  }
  if (variant === 'gemv') {
    return GEMV_CANDIDATES.map(([kl, nc]) => ({ variant, kl, nc }) as MatmulConfig).filter((c) => !configProblem(c, rt.limits));
  }
  return [{ variant }];
}

export interface MatmulSpecOptions {
  glu?: GateAct | null;
  config?: MatmulConfig;
  /** subgroup-matrix: the adapter's fixed subgroup size */
  subgroupSize?: number;
}

const GLU_CODE: Record<GateAct, number> = { silu: 1, gelu_tanh: 2 };

/**
 * A variant's shader with the shared GLU activation (shaders/matmul/glu.wgsl) composed after it,
 * and for 'gemv' and 'tiled' the weight-reading part (their K loop / B tile load: f32/f16 values
 * here, GGUF blocks in kernels/matmul-quant.ts, which composes the same kernels with its parts).
 */
export const MATMUL_WEIGHT_PART: Readonly<Record<string, string>> = { 'matmul/gemv': 'matmul/gemv-dot', 'matmul/tiled': 'matmul/tiled-load', 'matmul/subgroup-matrix': 'matmul/sgmat-load' };
const withGlu = (shader: string): string => composeShader(`${shader}+glu`, '', [shader, ...(MATMUL_WEIGHT_PART[shader] ? [MATMUL_WEIGHT_PART[shader]] : []), 'matmul/glu']);

export function matmulSpec(layout: BLayout, f16 = false, variant: MatmulVariant = 'tiled', opts: MatmulSpecOptions = {}): ProgramSpec {
  const trans = layout === 'nk' ? 1 : 0;
  // GLU only in the key when on, so the plain kernels keep their keys.
  const glu: Record<string, number> = opts.glu ? { GLU: GLU_CODE[opts.glu] } : {};
  const c = opts.config;
  switch (variant) {
    case 'blocked': {
      const b = c?.variant === 'blocked' ? c : { wgx: 16, wgy: 16, bk: 16 };
      return { shader: withGlu('matmul/blocked'), f16Weights: f16, constants: { TRANS_B: trans, WGX: b.wgx, WGY: b.wgy, BK: b.bk, ...glu } };
    }
    case 'gemv': {
      const g = c?.variant === 'gemv' ? c : { kl: 64, nc: 4 };
      return { shader: withGlu('matmul/gemv'), f16Weights: f16, constants: { TRANS_B: trans, KL: g.kl, NC: g.nc, ...glu } };
    }
    case 'subgroup-matrix':
      return { shader: withGlu('matmul/subgroup-matrix'), f16Weights: true, constants: { SG: opts.subgroupSize ?? 32, ...glu } };
    default: {
      // f16 weights always take the tiled kernel (its WeightT alias compiled as f16).
      const shader = !f16 && variant === 'direct' ? 'matmul/direct' : 'matmul/tiled';
      return { shader: withGlu(shader), f16Weights: f16, constants: { TRANS_B: trans, ...glu } };
    }
  }
}

/** The variant for this runtime, shape-blind (src/gpu/variants.ts: direct on software adapters, blocked elsewhere, or forced). */
export const defaultMatmulVariant = (rt: GpuRuntime): MatmulVariant => kernelVariant(rt, 'matmul');

export interface MatmulShape { M: number; N: number; K: number; layout: BLayout; f16?: boolean; glu?: GateAct | null }

/** Why the blocked kernel cannot take this shape (vec4 loads), or null. */
function blockedProblem(s: MatmulShape): string | null {
  if (s.K % 4) return `K = ${s.K} is not a multiple of 4 (vec4 loads along K of A${s.layout === 'nk' ? " and 'nk' B" : ''})`;
  if (s.layout === 'kn' && s.N % 4) return `N = ${s.N} is not a multiple of 4 (vec4 loads along N of 'kn' B)`;
  return null;
}

/**
 * The policy, per shape: a forced variant (CONCORD_KERNEL_VARIANT) wins; then the tuned winner of
 * the shape's class where this shape and device can take it; then the default — 'direct' on
 * software adapters; on hardware 'gemv' for at most GEMV_MAX_ROWS rows, else 'blocked' (or 'tiled'
 * for shapes the blocked kernel's vec4 loads cannot take). 'subgroup-matrix' is never a default:
 * it runs when forced, or as a tuned winner, which src/tune/index.ts allows only after it passed
 * validation on this device and with CONCORD_TUNE_EXPERIMENTAL=1 (it rounds A to f16).
 */
export function chooseMatmulVariant(rt: GpuRuntime, s: MatmulShape): MatmulVariant {
  const forced = forcedVariant('matmul');
  if (forced) return forced;
  // A tuned winner for this shape class (src/tune/index.ts validated it on this device), where this
  // exact shape can take it (a class spans shapes the blocked kernel's vec4 loads may not take).
  const won = tunedVariant(rt, 'matmul', s) as MatmulVariant | undefined;
  if (won && !(won === 'blocked' && blockedProblem(s)) && !(won === 'subgroup-matrix' && (subgroupMatrixProblem(rt) || !s.f16 || s.layout !== 'nk'))) return won;
  if (rt.handle.info.software) return 'direct';
  if (s.M <= GEMV_MAX_ROWS) return 'gemv';
  return blockedProblem(s) ? 'tiled' : 'blocked';
}

interface SubgroupMatrixConfigInfo { componentType: string; resultComponentType: string; M: number; N: number; K: number }

/** Why the subgroup-matrix kernel cannot run on this device, or null. */
export function subgroupMatrixProblem(rt: GpuRuntime): string | null {
  if (!rt.device.features.has('chromium-experimental-subgroup-matrix' as GPUFeatureName)) {
    return "the device lacks the feature 'chromium-experimental-subgroup-matrix' (Dawn: toggle allow_unsafe_apis; software adapters never offer it)";
  }
  if (!rt.hasF16) return 'the device lacks shader-f16';
  if (!rt.device.features.has('subgroups' as GPUFeatureName)) return "the device lacks the feature 'subgroups'";
  const info = rt.handle.adapter.info as GPUAdapterInfo & { subgroupMatrixConfigs?: SubgroupMatrixConfigInfo[]; subgroupMinSize?: number; subgroupMaxSize?: number };
  const configs = info.subgroupMatrixConfigs ?? [];
  if (!configs.some((c) => c.componentType === 'f16' && c.resultComponentType === 'f32' && c.M === 16 && c.N === 16 && c.K === 16)) {
    return `adapter.info.subgroupMatrixConfigs lists no 16×16×16 f16→f32 configuration (${configs.map((c) => `${c.M}×${c.N}×${c.K} ${c.componentType}→${c.resultComponentType}`).join(', ') || 'none'})`;
  }
  if (!info.subgroupMinSize || info.subgroupMinSize !== info.subgroupMaxSize) {
    return `the kernel needs a fixed subgroup size (adapter: ${info.subgroupMinSize}–${info.subgroupMaxSize})`;
  }
  return null;
}

export interface MatmulArgs {
  A: GPUBuffer;
  /** f32, or f16 when `f16` is set. With `glu`: [gate; up] rows, 2N×K. */
  B: GPUBuffer;
  /** [N] (with `glu`: [2N], gate then up) */
  bias?: GPUBuffer | null;
  C: GPUBuffer;
  M: number;
  N: number;
  K: number;
  layout: BLayout;
  f16?: boolean;
  /** C += A·B (+ bias): the residual add in the epilogue (C is read, then written). */
  accumulate?: boolean;
  /** Gated epilogue: C = act(A·Bg + bg) * (A·Bu + bu), B = [gate; up] ('nk' only). */
  glu?: GateAct | null;
  /** default: chooseMatmulVariant(rt, shape); f16 weights take 'tiled' when 'direct' is asked */
  variant?: MatmulVariant;
  /** A tile configuration from matmulConfigs() (the autotuner); its variant is the variant. */
  config?: MatmulConfig;
}

/** Record C = A·B (+bias) (+C) or the GLU form on the GPU. Throws when the variant cannot take the shape here. */
export function matmulGpu(rt: GpuRuntime, a: MatmulArgs): void {
  if (a.config && a.variant && a.config.variant !== a.variant) throw new Error(`matmul: config for '${a.config.variant}' given with variant '${a.variant}'`);
  const variant = a.config?.variant ?? a.variant ?? chooseMatmulVariant(rt, a);
  // The tuned tile configuration of this shape class, when the tuner's winner is this variant.
  if (!a.config) {
    const tunedCfg = tunedConfig(rt, 'matmul', a, variant) as MatmulConfig | undefined;
    if (tunedCfg) a = { ...a, config: tunedCfg };
  }
  if (variant === 'subgroup-matrix') {
    const why = subgroupMatrixProblem(rt);
    if (why) throw new Error(`matmul 'subgroup-matrix' cannot run on ${rt.name}: ${why}`);
  }
  if (a.f16 && !rt.hasF16) throw new Error('matmul: f16 weights need the shader-f16 feature');
  if (a.glu && a.layout !== 'nk') throw new Error("matmul: the GLU epilogue needs 'nk' weights ([gate; up] rows)");
  if (a.M <= 0 || a.N <= 0) return;
  if (a.config) {
    const why = configProblem(a.config, rt.limits);
    if (why) throw new Error(`matmul: ${a.config.variant} config ${JSON.stringify(a.config)} cannot run here: ${why}`);
  }
  const outsPerCol = (w: number) => (a.glu ? w / 2 : w);
  let grid: number | [number, number, number];
  let subgroupSize: number | undefined;
  if (variant === 'blocked') {
    const why = blockedProblem(a);
    if (why) throw new Error(`matmul 'blocked': ${why}; use 'tiled' for this shape`);
    const c = a.config?.variant === 'blocked' ? a.config : (matmulConfigs(rt, 'blocked')[0] as MatmulConfig & { variant: 'blocked' } | undefined);
    if (!c) throw new Error("matmul 'blocked': no tile configuration fits this adapter's workgroup limits");
    a = { ...a, config: c };
    grid = [ceilDiv(a.N, outsPerCol(8 * c.wgx)), ceilDiv(a.M, 8 * c.wgy), 1];
  } else if (variant === 'gemv') {
    const c = a.config?.variant === 'gemv' ? a.config : (matmulConfigs(rt, 'gemv')[0] as MatmulConfig & { variant: 'gemv' } | undefined);
    if (!c) throw new Error("matmul 'gemv': no configuration fits this adapter's workgroup limits");
    a = { ...a, config: c };
    grid = ceilDiv(a.N, outsPerCol(c.nc));
  } else if (variant === 'subgroup-matrix') {
    if (!a.f16) throw new Error("matmul 'subgroup-matrix': needs f16 weights (f16: true)");
    if (a.layout !== 'nk') throw new Error("matmul 'subgroup-matrix': needs 'nk' weights");
    subgroupSize = (rt.handle.adapter.info as { subgroupMaxSize?: number }).subgroupMaxSize;
    grid = [ceilDiv(a.N, outsPerCol(MATMUL_TILE)), ceilDiv(a.M, MATMUL_TILE), 1];
  } else if (variant === 'direct' && !a.f16) {
    // direct: x walks the row blocks (see shaders/matmul/direct.wgsl)
    grid = [ceilDiv(a.M, MATMUL_TILE), ceilDiv(a.N, outsPerCol(MATMUL_TILE)), 1];
  } else {
    grid = [ceilDiv(a.N, outsPerCol(MATMUL_TILE)), ceilDiv(a.M, MATMUL_TILE), 1];
  }
  if (Array.isArray(grid)) {
    const max = rt.limits.maxComputeWorkgroupsPerDimension;
    if (grid[0] > max || grid[1] > max) throw new Error(`matmul: ${a.M}×${a.N} output needs a ${grid[0]}×${grid[1]} grid, above ${max} per dimension`);
  }
  const u = rt.uniform(new Uniforms().u32(a.M).u32(a.N).u32(a.K).u32(a.bias ? 1 : 0).u32(a.accumulate ? 1 : 0).build(), 'matmul.params');
  const bias = a.bias ?? rt.scratch(16, 'matmul.nobias');
  rt.dispatch(matmulSpec(a.layout, !!a.f16, variant, { glu: a.glu, config: a.config, subgroupSize }), [u, a.A, a.B, bias, a.C], grid);
}

/** CPU twin of the fused forms: C = (accumulate ? C0 : 0) + (glu ? act(A·Bg + bg) * (A·Bu + bu) : A·B + bias). */
export function matmulFusedCpu(A: Float32Array, B: Float32Array, bias: Float32Array | null, M: number, N: number, K: number, layout: BLayout,
  opts: { glu?: GateAct | null; residual?: Float32Array | null } = {}): Float32Array {
  let out: Float32Array;
  if (opts.glu) {
    if (layout !== 'nk') throw new Error("matmulFusedCpu: GLU needs 'nk'");
    const g = matmulCpu(A, B.subarray(0, N * K), bias ? bias.subarray(0, N) : null, M, N, K, 'nk');
    const u = matmulCpu(A, B.subarray(N * K, 2 * N * K), bias ? bias.subarray(N, 2 * N) : null, M, N, K, 'nk');
    out = gatedCpu(opts.glu, g, u);
  } else {
    out = matmulCpu(A, B, bias, M, N, K, layout);
  }
  if (opts.residual) for (let i = 0; i < out.length; i++) out[i] += opts.residual[i];
  return out;
}

export interface MatmulValidation { ok: boolean; maxAbsErr: number; summary: string }

/** Relative to Σ|a·w| (MatmulCase.magnitude): 2^-18, about 32 f32 ulps. */
export const MAGNITUDE_TOL = 2 ** -18;

export type MatmulForm = 'plain' | 'bias+accumulate' | 'glu';

/** One validation case: host inputs (B: weight values or block bytes, as uploaded), the twin's answer, and the kernel's launch. */
export interface MatmulCase {
  A: Float32Array; B: Float32Array | Uint16Array | Uint8Array; bias: Float32Array | null; C0: Float32Array; want: Float32Array;
  /**
   * Per output Σ_k |a_k·w_k| (optional): the f32 rounding of a dot product scales with its terms,
   * not its result, so where rows of huge scales cancel, each output may also differ by
   * MAGNITUDE_TOL × this.
   */
  magnitude?: Float32Array;
  launch(b: { A: GPUBuffer; B: GPUBuffer; bias: GPUBuffer | null; C: GPUBuffer }): void;
}

/**
 * The validation loop of every matmul kernel (validateMatmulVariant, kernels/matmul-quant.ts
 * validateQuantMatmul): per shape and epilogue form, `make` builds a case (null: skip); its inputs
 * are uploaded (B padded to whole words), launched, read back and compared with the twin's answer,
 * and every buffer is released. Never throws: an error is ok: false.
 */
export async function validateMatmulCases(rt: GpuRuntime, what: string, shapes: [number, number, number][],
  make: (M: number, N: number, K: number, form: MatmulForm) => MatmulCase | null, tol: { atol: number; rtol: number }): Promise<MatmulValidation> {
  let maxAbsErr = 0, ok = true, forms = 0;
  const notes: string[] = [];
  const bufs: GPUBuffer[] = [];
  try {
    for (const [M, N, K] of shapes) {
      for (const form of ['plain', 'bias+accumulate', 'glu'] as const) {
        const c = make(M, N, K, form);
        if (!c) continue;
        forms++;
        let B = c.B;
        if (B.byteLength % 4) {
          const padded = new Uint8Array(ceilDiv(B.byteLength, 4) * 4);
          padded.set(new Uint8Array(B.buffer, B.byteOffset, B.byteLength));
          B = padded;
        }
        const b = { A: rt.upload(c.A), B: rt.upload(B), bias: c.bias ? rt.upload(c.bias) : null, C: rt.upload(c.C0) };
        bufs.push(b.A, b.B, b.C, ...(b.bias ? [b.bias] : []));
        c.launch(b);
        const got = await rt.readF32(b.C, M * N);
        for (let i = 0; i < got.length; i++) maxAbsErr = Math.max(maxAbsErr, Math.abs(got[i] - c.want[i]));
        // Within the magnitude bound counts as equal; the rest is judged (and reported) by validate.
        const judged = c.magnitude ? got.map((g, i) => (Math.abs(g - c.want[i]) <= MAGNITUDE_TOL * c.magnitude![i] ? c.want[i] : g)) : got;
        const v = validate(judged, c.want, tol);
        if (!v.ok) { ok = false; notes.push(`${M}×${N}×${K} ${form}: ${v.summary}`); }
      }
    }
  } catch (e) {
    ok = false;
    notes.push(`error: ${(e as Error).message}`);
  } finally {
    for (const b of bufs) rt.release(b);
  }
  return { ok, maxAbsErr, summary: ok ? `${what}: matches the CPU twin on ${shapes.length} shapes, ${forms} cases (plain, bias + accumulate${forms > 2 * shapes.length ? ', GLU' : ''}) (max |err| ${maxAbsErr.toExponential(2)})` : `${what}: FAILED — ${notes.join('; ')}` };
}

/**
 * Run a variant (optionally one config) on this device against the CPU twin: non-tile shapes
 * (M = 1, small, above a tile), plain, bias + accumulate, and GLU; f16 weights when asked or when
 * the variant needs them (the twin then uses f16-rounded weights, and for 'subgroup-matrix'
 * f16-rounded activations). Never throws: a variant that cannot run reports ok: false. A check of
 * every epilogue form for one variant (tests; a bug report on a new GPU) — the autotuner's probes
 * (src/tune/index.ts) are what admit a variant on a device.
 */
export async function validateMatmulVariant(rt: GpuRuntime, variant: MatmulVariant,
  opts: { f16?: boolean; config?: MatmulConfig; shapes?: [number, number, number][]; layout?: BLayout; seed?: number } = {}): Promise<MatmulValidation> {
  const f16 = variant === 'subgroup-matrix' ? true : opts.f16 ?? false;
  const layout = opts.layout ?? 'nk';
  const shapes = opts.shapes ?? [[1, 77, 64], [13, 130, 96], [150, 200, 132]];
  let seed = opts.seed ?? 12345;
  const rand = (n: number): Float32Array => {
    const out = new Float32Array(n);
    for (let i = 0; i < n; i++) { seed = (seed * 1103515245 + 12345) >>> 0; out[i] = (seed / 2 ** 32) * 2 - 1; }
    return out;
  };
  const what = `matmul '${variant}'${opts.config ? ` ${JSON.stringify(opts.config)}` : ''}${f16 ? ' f16 weights' : ''} ${layout}`;
  return validateMatmulCases(rt, what, shapes, (M, N, K, form) => {
    if (form === 'glu' && layout !== 'nk') return null;
    const nB = form === 'glu' ? 2 * N : N;
    let A = rand(M * K), B = rand(nB * K);
    const bias = form === 'plain' ? null : rand(nB), C0 = rand(M * N);
    if (f16) B = roundThroughF16(B);
    if (variant === 'subgroup-matrix') A = roundThroughF16(A);
    const glu = form === 'glu' ? 'silu' as const : null;
    const want = matmulFusedCpu(A, B, bias, M, N, K, layout, { glu, residual: form === 'bias+accumulate' ? C0 : null });
    return {
      A, B: f16 ? toF16(B) : B, bias, C0, want,
      launch: (b) => matmulGpu(rt, { A: b.A, B: b.B, bias: b.bias, C: b.C, M, N, K, layout, f16, variant, config: opts.config, accumulate: form === 'bias+accumulate', glu }),
    };
  }, { atol: 1e-3, rtol: 1e-3 });
}

/** CPU twin (f64 accumulation; pass a Float64Array `out` to keep the results in f64). */
export function matmulCpu<O extends Float32Array | Float64Array = Float32Array>(A: Float32Array, B: Float32Array, bias: Float32Array | null, M: number, N: number, K: number, layout: BLayout, out?: O): O {
  const C = (out ?? new Float32Array(M * N)) as O;
  if (layout === 'nk') {
    // Register-blocked: 4 rows of A × 2 rows of B per pass over K, so each loaded element is
    // used 2–4 times (8 f64 accumulators stay in registers; ~1.5–2× the plain dot product).
    let m = 0;
    for (; m + 3 < M; m += 4) {
      const a0 = m * K, a1 = a0 + K, a2 = a1 + K, a3 = a2 + K;
      let n = 0;
      for (; n + 1 < N; n += 2) {
        const b0 = n * K, b1 = b0 + K;
        let c00 = 0, c01 = 0, c10 = 0, c11 = 0, c20 = 0, c21 = 0, c30 = 0, c31 = 0;
        for (let k = 0; k < K; k++) {
          const x0 = B[b0 + k], x1 = B[b1 + k];
          let a = A[a0 + k]; c00 += a * x0; c01 += a * x1;
          a = A[a1 + k]; c10 += a * x0; c11 += a * x1;
          a = A[a2 + k]; c20 += a * x0; c21 += a * x1;
          a = A[a3 + k]; c30 += a * x0; c31 += a * x1;
        }
        const z0 = bias ? bias[n] : 0, z1 = bias ? bias[n + 1] : 0;
        C[m * N + n] = c00 + z0; C[m * N + n + 1] = c01 + z1;
        C[(m + 1) * N + n] = c10 + z0; C[(m + 1) * N + n + 1] = c11 + z1;
        C[(m + 2) * N + n] = c20 + z0; C[(m + 2) * N + n + 1] = c21 + z1;
        C[(m + 3) * N + n] = c30 + z0; C[(m + 3) * N + n + 1] = c31 + z1;
      }
      for (; n < N; n++) {
        const b0 = n * K;
        let c0 = 0, c1 = 0, c2 = 0, c3 = 0;
        for (let k = 0; k < K; k++) {
          const x = B[b0 + k];
          c0 += A[a0 + k] * x; c1 += A[a1 + k] * x; c2 += A[a2 + k] * x; c3 += A[a3 + k] * x;
        }
        const z = bias ? bias[n] : 0;
        C[m * N + n] = c0 + z; C[(m + 1) * N + n] = c1 + z; C[(m + 2) * N + n] = c2 + z; C[(m + 3) * N + n] = c3 + z;
      }
    }
    for (; m < M; m++) {
      const ao = m * K;
      for (let n = 0; n < N; n++) {
        const bo = n * K;
        let s = 0;
        for (let k = 0; k < K; k++) s += A[ao + k] * B[bo + k];
        C[m * N + n] = s + (bias ? bias[n] : 0);
      }
    }
  } else {
    const row = new Float64Array(N);
    for (let m = 0; m < M; m++) {
      row.fill(0);
      for (let k = 0; k < K; k++) {
        const a = A[m * K + k];
        if (a === 0) continue;
        const bo = k * N;
        for (let n = 0; n < N; n++) row[n] += a * B[bo + n];
      }
      for (let n = 0; n < N; n++) C[m * N + n] = row[n] + (bias ? bias[n] : 0);
    }
  }
  return C;
}

export const matmulFlops = (M: number, N: number, K: number): number => 2 * M * N * K;
