// SwiGLU gate: out[i] = silu(gate[i]) * up[i] over n = T*ff elements, folded 1-D grid.
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

// Logistic function without overflow: exp only ever sees -|z|, so it underflows to 0 instead
// of overflowing (WGSL leaves overflowed results indeterminate).
fn sigmoid(z: f32) -> f32 {
  let e = exp(-abs(z));
  return select(e / (1.0 + e), 1.0 / (1.0 + e), z >= 0.0);
}

fn silu(x: f32) -> f32 {
  return x * sigmoid(x);
}

fn index(wid: vec3u, nwg: vec3u, li: u32) -> u32 {
  return (wid.x + wid.y * nwg.x) * WG + li;
}

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u,
        @builtin(local_invocation_index) li: u32) {
  let i = index(wid, nwg, li);
  if (i >= p.n) { return; }
  out[i] = silu(gate[i]) * up[i];
}

@compute @workgroup_size(WG)
fn inplace(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u,
           @builtin(local_invocation_index) li: u32) {
  let i = index(wid, nwg, li);
  if (i >= p.n) { return; }
  gate_rw[i] = silu(gate_rw[i]) * up[i];
}
