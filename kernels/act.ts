// act: the MLP activations, elementwise over n = T*ff values.
//   swiglu (Llama):          out = silu(gate) * up               shaders/act/swiglu.wgsl
//   geglu (Gemma):           out = gelu_tanh(gate) * up          shaders/act/swiglu.wgsl, GELU override
//   gelu 'tanh' (GPT-2 gelu_new) and 'erf' (BERT, exact GELU)    shaders/act/gelu.wgsl
// Each shader has a `main` (separate output) and an `inplace` entry point; folded 1-D grids.
// CPU twins below in f64, with a high-precision erf.

import { ceilDiv, GpuRuntime, ProgramSpec, Uniforms } from '../src/gpu/runtime.js';

export type GeluKind = 'tanh' | 'erf';

export const ACT_WG = 256;

/** The gate's activation in a gated MLP: silu (SwiGLU) or the tanh GELU (GeGLU). */
export type GateAct = 'silu' | 'gelu_tanh';

export function swigluSpec(inplace: boolean, gate: GateAct = 'silu'): ProgramSpec {
  // The silu default keeps its original cache key.
  return { shader: 'act/swiglu', entryPoint: inplace ? 'inplace' : 'main', constants: gate === 'silu' ? { WG: ACT_WG } : { WG: ACT_WG, GELU: 1 } };
}

export function geluSpec(kind: GeluKind, inplace: boolean): ProgramSpec {
  return { shader: 'act/gelu', entryPoint: inplace ? 'inplace' : 'main', constants: { WG: ACT_WG, ERF: kind === 'erf' ? 1 : 0 } };
}

export interface SwigluArgs {
  /** f32 [n], read (written when out is omitted or is gate). */
  gate: GPUBuffer;
  /** f32 [n], read. */
  up: GPUBuffer;
  /** f32 [n]; omit (or pass gate) to write the result over gate. */
  out?: GPUBuffer | null;
  n: number;
  /** The gate's activation (default silu; 'gelu_tanh' for GeGLU). */
  act?: GateAct;
}

/** Record out = act(gate) * up (in place into gate when out is omitted). */
export function swigluGpu(rt: GpuRuntime, a: SwigluArgs): void {
  if (a.n <= 0) return;
  if (a.up === a.gate || a.up === a.out) throw new Error('swiglu: up must be a separate buffer');
  const inplace = !a.out || a.out === a.gate;
  const u = rt.uniform(new Uniforms().u32(a.n).build(), 'swiglu.params');
  const bufs = inplace ? [u, a.gate, a.up] : [u, a.gate, a.up, a.out!];
  rt.dispatch(swigluSpec(inplace, a.act), bufs, ceilDiv(a.n, ACT_WG));
}

export interface GeluArgs {
  /** f32 [n], read (written when out is omitted or is x). */
  x: GPUBuffer;
  out?: GPUBuffer | null;
  n: number;
  kind: GeluKind;
}

/** Record out = gelu(x) (in place when out is omitted). */
export function geluGpu(rt: GpuRuntime, a: GeluArgs): void {
  if (a.n <= 0) return;
  const inplace = !a.out || a.out === a.x;
  const u = rt.uniform(new Uniforms().u32(a.n).build(), 'gelu.params');
  rt.dispatch(geluSpec(a.kind, inplace), inplace ? [u, a.x] : [u, a.x, a.out!], ceilDiv(a.n, ACT_WG));
}

/** CPU twin: silu(gate) * up. */
export function swigluCpu(gate: Float32Array, up: Float32Array): Float32Array {
  const out = new Float32Array(gate.length);
  for (let i = 0; i < gate.length; i++) {
    const g = gate[i];
    out[i] = (g / (1 + Math.exp(-g))) * up[i];
  }
  return out;
}

/** CPU twin of GeGLU: gelu_tanh(gate) * up, in f64. */
export function gegluCpu(gate: Float32Array, up: Float32Array): Float32Array {
  const out = new Float32Array(gate.length);
  const k = Math.sqrt(2 / Math.PI);
  for (let i = 0; i < gate.length; i++) {
    const g = gate[i];
    out[i] = 0.5 * g * (1 + Math.tanh(k * (g + 0.044715 * g * g * g))) * up[i];
  }
  return out;
}

/** CPU twin of the gated activation. */
export function gatedCpu(act: GateAct, gate: Float32Array, up: Float32Array): Float32Array {
  return act === 'gelu_tanh' ? gegluCpu(gate, up) : swigluCpu(gate, up);
}

/** CPU twin of GPT-2's gelu_new: 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))). */
export function geluTanhCpu(x: Float32Array): Float32Array {
  const out = new Float32Array(x.length);
  const k = Math.sqrt(2 / Math.PI);
  for (let i = 0; i < x.length; i++) {
    const v = x[i];
    out[i] = 0.5 * v * (1 + Math.tanh(k * (v + 0.044715 * v * v * v)));
  }
  return out;
}

/** CPU twin of exact GELU: 0.5 x erfc(-x / sqrt 2) (= 0.5 x (1 + erf(x / sqrt 2)) without cancellation). */
export function geluErfCpu(x: Float32Array): Float32Array {
  const out = new Float32Array(x.length);
  for (let i = 0; i < x.length; i++) out[i] = 0.5 * x[i] * erfc(-x[i] / Math.SQRT2);
  return out;
}

export function geluCpu(kind: GeluKind, x: Float32Array): Float32Array {
  return kind === 'erf' ? geluErfCpu(x) : geluTanhCpu(x);
}

/**
 * erfc in f64 to ~1e-15 relative: the Maclaurin series of erf for |x| < 2.5 (terms peak near 20 at
 * x = 2.5, so a few digits are lost to cancellation, still < 1e-14), and the Laplace continued
 * fraction for x >= 2.5, evaluated backwards with 80 terms (converged to f64 there).
 */
export function erfc(x: number): number {
  if (Number.isNaN(x)) return NaN;
  if (x < 0) return 2 - erfc(-x);
  if (x < 2.5) return 1 - erf(x);
  if (x > 27) return 0; // below the smallest f64 subnormal
  // erfc(x) = exp(-x^2)/sqrt(pi) * 1/(x + (1/2)/(x + 1/(x + (3/2)/(x + 2/(x + ...)))))
  let f = x;
  for (let n = 80; n >= 1; n--) f = x + n / 2 / f;
  return Math.exp(-x * x) / Math.sqrt(Math.PI) / f;
}

export function erf(x: number): number {
  if (Number.isNaN(x)) return NaN;
  if (x < 0) return -erf(-x);
  if (x >= 2.5) return 1 - erfc(x);
  // erf(x) = 2/sqrt(pi) * sum_n (-1)^n x^(2n+1) / (n! (2n+1))
  const x2 = x * x;
  let term = x, sum = x;
  for (let n = 1; n < 100; n++) {
    term *= -x2 / n;
    const t = term / (2 * n + 1);
    sum += t;
    if (Math.abs(t) < 1e-17 * Math.abs(sum)) break;
  }
  return (2 / Math.sqrt(Math.PI)) * sum;
}
