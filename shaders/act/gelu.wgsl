// GELU over n elements, folded 1-D grid. ERF = false: GPT-2's gelu_new (tanh form);
// ERF = true: exact GELU 0.5 x (1 + erf(x / sqrt 2)) as BERT. `main` writes Y, `inplace`
// overwrites X (separate entry points because one buffer cannot be bound read and read_write).

struct Params { n: u32 }

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> X: array<f32>;
@group(0) @binding(1) var<storage, read_write> X_rw: array<f32>;
@group(0) @binding(2) var<storage, read_write> Y: array<f32>;

override WG: u32 = 256;
override ERF: bool = false;

// sigmoid and gelu_tanh (the tanh GELU as x·sigmoid(2u), no overflow):
//#include common/math

// erfc(z) for z >= 0 with relative error < 1.2e-7 everywhere (Numerical Recipes `erfcc`, a
// Chebyshev fit; better than Abramowitz-Stegun 7.1.26's 1.5e-7 absolute, and relative in the tail).
fn erfc_pos(z: f32) -> f32 {
  let t = 1.0 / (1.0 + 0.5 * z);
  let poly = -1.26551223 + t * (1.00002368 + t * (0.37409196 + t * (0.09678418 + t * (-0.18628806 +
             t * (0.27886807 + t * (-1.13520398 + t * (1.48851587 + t * (-0.82215223 + t * 0.17087277))))))));
  return t * exp(-z * z + poly);
}

// 0.5 x (1 + erf(x/sqrt2)) = x - 0.5 x erfc(z) for x >= 0 and 0.5 x erfc(z) for x < 0, z = |x|/sqrt2:
// no 1 + erf cancellation in the negative tail.
fn gelu_erf(x: f32) -> f32 {
  let e = erfc_pos(abs(x) * 0.7071067811865476);
  return select(0.5 * x * e, x - 0.5 * x * e, x >= 0.0);
}

fn gelu(x: f32) -> f32 {
  if (ERF) { return gelu_erf(x); }
  return gelu_tanh(x);
}

fn index(wid: vec3u, nwg: vec3u, li: u32) -> u32 {
  return (wid.x + wid.y * nwg.x) * WG + li;
}

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u,
        @builtin(local_invocation_index) li: u32) {
  let i = index(wid, nwg, li);
  if (i >= p.n) { return; }
  Y[i] = gelu(X[i]);
}

@compute @workgroup_size(WG)
fn inplace(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u,
           @builtin(local_invocation_index) li: u32) {
  let i = index(wid, nwg, li);
  if (i >= p.n) { return; }
  X_rw[i] = gelu(X_rw[i]);
}
