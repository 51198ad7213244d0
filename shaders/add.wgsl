// Residual add, in place: Y[i] += X[i] for i < n.
// One element per invocation. The launcher passes a 1-D workgroup count that the runtime folds
// into a 2-D grid when it exceeds maxComputeWorkgroupsPerDimension (65535 × 256 = 16.7M elements
// is only T=4096 tokens at d=4096), so the linear workgroup index is wid.x + wid.y * nwg.x and the
// folded grid's tail invocations fall past n and must be guarded.

struct Params { n: u32 }

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> X: array<f32>;
@group(0) @binding(2) var<storage, read_write> Y: array<f32>;

override WG: u32 = 256;

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3u,
        @builtin(num_workgroups) nwg: vec3u,
        @builtin(local_invocation_index) li: u32) {
  let i = (wid.x + wid.y * nwg.x) * WG + li;
  if (i >= p.n) { return; }
  Y[i] = Y[i] + X[i];
}
