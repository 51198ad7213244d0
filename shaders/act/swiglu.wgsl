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

// sigmoid, silu and gelu_tanh (the tanh GELU as x·sigmoid(2u), no overflow):
//#include common/math

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
