// Facility-location marginal gains over one score block (concord select --objective
// facility-location, kernels/facility.ts): X [N, M] holds the similarities of N candidates with
// the rows colOff .. colOff + M - 1 of the ground set, cur [*] each ground row's current coverage
// (the best similarity to a chosen element, ≥ 0). For each candidate r, over the block's columns:
//   gain[r]   += Σ_c max(0, X[r, c] − cur[colOff + c])
//   live[r]   += #{ c : X[r, c] − cur[colOff + c] > −margin }
// (accumulated across blocks; the host zeroes both first). `live` counts the terms that could be
// nonzero in exact arithmetic: the host's f32 error bound for the gain (src/select/facility.ts).
// Since cur ≥ 0, max(0, s − cur) = max(0, max(0, s) − cur): similarities clamp at 0 by themselves.
//
// Two entry points, as shaders/pool/row-max.wgsl (the same shape of reduction; the 1-D workgroup
// count may be folded into 2-D: linear index wid.x + wid.y * nwg.x, bounds-guarded):
//  - main (GPUs): one workgroup per candidate (the early return is workgroup-uniform), a strided
//    scan, then two workgroup sums (shared helper common/reduce);
//  - direct (CPU-rasteriser adapters): one invocation per candidate scanning its columns in order.

struct Params { N: u32, M: u32, colOff: u32, margin: f32 }

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> X: array<f32>;
@group(0) @binding(2) var<storage, read> cur: array<f32>;
@group(0) @binding(3) var<storage, read_write> gain: array<f32>;
@group(0) @binding(4) var<storage, read_write> live: array<f32>;

override WG: u32 = 64;

// red: array<f32, WG> and reduce_sum(li), the sum of red[0..WG) into red[0] (it holds barriers):
//#include common/reduce

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3u,
        @builtin(num_workgroups) nwg: vec3u,
        @builtin(local_invocation_index) li: u32) {
  let r = wid.x + wid.y * nwg.x;
  if (r >= p.N) { return; }
  var g = 0.0;
  var a = 0.0;
  for (var c = li; c < p.M; c += WG) {
    let t = X[r * p.M + c] - cur[p.colOff + c];
    g += max(t, 0.0);
    a += select(0.0, 1.0, t > -p.margin);
  }
  red[li] = g;
  reduce_sum(li);
  let gs = red[0];
  workgroupBarrier();
  red[li] = a;
  reduce_sum(li);
  if (li == 0u) {
    gain[r] += gs;
    live[r] += red[0];
  }
}

@compute @workgroup_size(WG)
fn direct(@builtin(workgroup_id) wid: vec3u,
          @builtin(num_workgroups) nwg: vec3u,
          @builtin(local_invocation_index) li: u32) {
  let r = (wid.x + wid.y * nwg.x) * WG + li;
  if (r >= p.N) { return; }
  var g = 0.0;
  var a = 0.0;
  for (var c = 0u; c < p.M; c++) {
    let t = X[r * p.M + c] - cur[p.colOff + c];
    g += max(t, 0.0);
    a += select(0.0, 1.0, t > -p.margin);
  }
  gain[r] += g;
  live[r] += a;
}
