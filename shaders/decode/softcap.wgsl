// decode/softcap: the final-logit soft-cap in place, x = cap·tanh(x / cap) (Gemma 2's
// final_logit_softcapping), before sampling. One element per invocation, folded 1-D grid.

struct Params { n: u32, cap: f32 }

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read_write> X: array<f32>;

override WG: u32 = 256;

//#include common/math

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3u,
        @builtin(num_workgroups) nwg: vec3u,
        @builtin(local_invocation_index) li: u32) {
  let i = (wid.x + wid.y * nwg.x) * WG + li;
  if (i >= p.n) { return; }
  X[i] = p.cap * tanh_safe(X[i] / p.cap);
}
