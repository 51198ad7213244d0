// The gated epilogue's activation, shared by every matmul variant (kernels/matmul.ts composes this
// file after the variant's own): act(gate) of SwiGLU (GLU = 1, silu) or GeGLU (GLU = 2, tanh GELU
// written as x·sigmoid(2u)). The variant declares `override GLU: u32`; 0 means no GLU epilogue.

fn sigmoid(z: f32) -> f32 {
  let e = exp(-abs(z));
  return select(e / (1.0 + e), 1.0 / (1.0 + e), z >= 0.0);
}

fn act(x: f32) -> f32 {
  if (GLU == 2u) {
    let u = 0.7978845608028654 * (x + 0.044715 * x * x * x);
    return x * sigmoid(2.0 * u);
  }
  return x * sigmoid(x);
}
