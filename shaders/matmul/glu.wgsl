// The gated epilogue's activation, shared by every matmul variant (kernels/matmul.ts composes this
// file after the variant's own): act(gate) of SwiGLU (GLU = 1, silu) or GeGLU (GLU = 2, tanh GELU
// written as x·sigmoid(2u)). The variant declares `override GLU: u32`; 0 means no GLU epilogue.

//#include common/math

fn act(x: f32) -> f32 {
  if (GLU == 2u) { return gelu_tanh(x); }
  return silu(x);
}
