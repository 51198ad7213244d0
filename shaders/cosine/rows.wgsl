// Batched row-pair cosine similarity: out[i] = a_i·b_i / (|a_i| |b_i|) for two N×d matrices.
// One workgroup per row pair; three running sums reduced in workgroup memory. A zero row gives 0.

struct Params { N: u32, d: u32, _pad0: u32, _pad1: u32 }

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> A: array<f32>;
@group(0) @binding(2) var<storage, read> B: array<f32>;
@group(0) @binding(3) var<storage, read_write> out: array<f32>;

override WG: u32 = 64;

var<workgroup> red: array<vec3f, WG>;

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3u,
        @builtin(num_workgroups) nwg: vec3u,
        @builtin(local_invocation_index) lid: u32) {
  let i = wid.x + wid.y * nwg.x;
  if (i >= p.N) { return; }
  var acc = vec3f(0.0);
  for (var k = lid; k < p.d; k += WG) {
    let a = A[i * p.d + k];
    let b = B[i * p.d + k];
    acc += vec3f(a * b, a * a, b * b);
  }
  red[lid] = acc;
  workgroupBarrier();
  for (var stride = WG / 2u; stride > 0u; stride /= 2u) {
    if (lid < stride) { red[lid] += red[lid + stride]; }
    workgroupBarrier();
  }
  if (lid == 0u) {
    let r = red[0];
    let denom = sqrt(r.y) * sqrt(r.z);
    out[i] = select(0.0, r.x / denom, denom > 0.0);
  }
}
