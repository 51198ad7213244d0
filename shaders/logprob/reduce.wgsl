// Fused LM-head log-likelihood, pass 3 of 3: masked per-sequence sum, count and mean.
// Positions are laid out as B sequences of L slots (T = B·L); one workgroup per sequence.

struct Params { B: u32, L: u32, _pad0: u32, _pad1: u32 }

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> logp: array<f32>;  // [B·L]
@group(0) @binding(2) var<storage, read> mask: array<u32>;  // [B·L]
@group(0) @binding(3) var<storage, read_write> out: array<vec4f>; // [B] (sum, count, mean, 0)

override WG: u32 = 64;

var<workgroup> sums: array<f32, WG>;
var<workgroup> counts: array<f32, WG>;

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3u,
        @builtin(num_workgroups) nwg: vec3u,
        @builtin(local_invocation_index) lid: u32) {
  let b = wid.x + wid.y * nwg.x;
  if (b >= p.B) { return; }
  var s = 0.0;
  var c = 0.0;
  for (var i = lid; i < p.L; i += WG) {
    let t = b * p.L + i;
    if (mask[t] != 0u) {
      s += logp[t];
      c += 1.0;
    }
  }
  sums[lid] = s;
  counts[lid] = c;
  workgroupBarrier();
  for (var stride = WG / 2u; stride > 0u; stride /= 2u) {
    if (lid < stride) {
      sums[lid] += sums[lid + stride];
      counts[lid] += counts[lid + stride];
    }
    workgroupBarrier();
  }
  if (lid == 0u) {
    let n = counts[0];
    out[b] = vec4f(sums[0], n, select(0.0, sums[0] / n, n > 0.0), 0.0);
  }
}
