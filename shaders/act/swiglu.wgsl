// Gated MLP activation: out[i] = act(gate[i]) * up[i] over n = T*ff elements, folded 1-D grid.
// act = silu (SwiGLU, Llama) or, with the override GELU = true, the tanh GELU (GeGLU, Gemma's
// gelu_pytorch_tanh).
// Entry points: `main` writes a separate output; `inplace` overwrites gate (WebGPU forbids
// binding one buffer as both read and read_write in a dispatch, hence two entry points, each with
// its own bindings in order).

struct Params { n: u32 }

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> gate: array<f32>;
@group(0) @binding(1) var<storage, read_write> gate_rw: array<f32>;
@group(0) @binding(2) var<storage, read> up: array<f32>;
@group(0) @binding(3) var<storage, read_write> out: array<f32>;

override WG: u32 = 256;
override GELU: bool = false;

// Logistic function without overflow: exp only ever sees -|z|, so it underflows to 0 instead
// of overflowing (WGSL leaves overflowed results indeterminate).
fn sigmoid(z: f32) -> f32 {
  let e = exp(-abs(z));
  return select(e / (1.0 + e), 1.0 / (1.0 + e), z >= 0.0);
}

fn silu(x: f32) -> f32 {
  return x * sigmoid(x);
}

// 0.5 x (1 + tanh(u)) == x * sigmoid(2u), u = sqrt(2/pi) (x + 0.044715 x^3) (as act/gelu.wgsl).
fn gelu_tanh(x: f32) -> f32 {
  let u = 0.7978845608028654 * (x + 0.044715 * x * x * x);
  return x * sigmoid(2.0 * u);
}

fn act(x: f32) -> f32 {
  if (GELU) { return gelu_tanh(x); }
  return silu(x);
}

fn index(wid: vec3u, nwg: vec3u, li: u32) -> u32 {
  return (wid.x + wid.y * nwg.x) * WG + li;
}

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u,
        @builtin(local_invocation_index) li: u32) {
  let i = index(wid, nwg, li);
  if (i >= p.n) { return; }
  out[i] = act(gate[i]) * up[i];
}

@compute @workgroup_size(WG)
fn inplace(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u,
           @builtin(local_invocation_index) li: u32) {
  let i = index(wid, nwg, li);
  if (i >= p.n) { return; }
  gate_rw[i] = act(gate_rw[i]) * up[i];
}
