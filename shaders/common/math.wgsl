// Shared scalar functions, composed into a shader by `//#include common/math` (src/gpu/shaders.ts).

// Logistic function without overflow: exp only ever sees -|z|, so it underflows to 0 instead of
// overflowing (WGSL leaves overflowed results indeterminate).
fn sigmoid(z: f32) -> f32 {
  let e = exp(-abs(z));
  return select(e / (1.0 + e), 1.0 / (1.0 + e), z >= 0.0);
}

fn silu(x: f32) -> f32 {
  return x * sigmoid(x);
}

// 0.5 x (1 + tanh(u)) == x * sigmoid(2u), u = sqrt(2/pi) (x + 0.044715 x^3). The sigmoid form
// never calls tanh, whose WGSL implementations may overflow (e^2u, then inf/inf = NaN) for large
// |u|, and keeps relative accuracy for negative x where 1 + tanh(u) would cancel. The x^3 term
// overflows to +-inf beyond |x| ~ 7e12, which sigmoid maps to exactly 0 or 1.
fn gelu_tanh(x: f32) -> f32 {
  let u = 0.7978845608028654 * (x + 0.044715 * x * x * x);
  return x * sigmoid(2.0 * u);
}

// tanh without overflow (soft-capping: cap * tanh(x / cap), Gemma 2): exp only sees -2|x|; below
// |x| = 0.25 a Taylor polynomial (error < 1e-9) avoids the 1 - e^-2|x| cancellation.
fn tanh_safe(x: f32) -> f32 {
  let a = abs(x);
  if (a < 0.25) {
    let z = x * x;
    return x * (1.0 + z * (-0.3333333333 + z * (0.1333333333 + z * (-0.0539682540 + z * 0.0218694885))));
  }
  let e = exp(-2.0 * a);
  return sign(x) * (1.0 - e) / (1.0 + e);
}
