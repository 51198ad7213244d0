// Masked running max-pool over the columns of a score block, with the argmax: for each row r of
// X [N, M] (columns are global indices colOff .. colOff + M - 1),
//   v = max { X[r, c] : mask[colOff + c] != 0 },  a = the smallest such c reaching v,
// and if v > best[r] (strictly: earlier blocks hold smaller column indices and win ties),
//   best[r] = v, arg[r] = colOff + a.
// Deduplication (src/embed/dedup.ts) runs it over the blocks of earlier records: mask = "kept",
// best/arg = each record's most similar kept earlier record so far. arg = 0xffffffff: none yet.
//
// Two entry points (the 1-D workgroup count may be folded into 2-D by the runtime: linear index
// wid.x + wid.y * nwg.x, bounds-guarded):
//  - main (GPUs): one workgroup per row (the early return is workgroup-uniform). Each invocation
//    scans columns li, li + WG, ... (ascending, strict '>' keeps the smallest column on ties),
//    then a tree reduction in workgroup memory (WG a power of two) orders ties by column.
//  - direct (CPU-rasteriser adapters, where a barrier splits the shader into coroutines and costs
//    more than it saves): one invocation per row scanning its columns in order; no barriers.

struct Params { N: u32, M: u32, colOff: u32, _pad: u32 }

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> X: array<f32>;
@group(0) @binding(2) var<storage, read> mask: array<u32>;
@group(0) @binding(3) var<storage, read_write> best: array<f32>;
@group(0) @binding(4) var<storage, read_write> arg: array<u32>;

override WG: u32 = 64;

const NONE = 0xffffffffu;
// Below any score (WGSL has no -inf literal).
const LOW = -3.0e38;

var<workgroup> rv: array<f32, WG>;
var<workgroup> ra: array<u32, WG>;

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3u,
        @builtin(num_workgroups) nwg: vec3u,
        @builtin(local_invocation_index) li: u32) {
  let r = wid.x + wid.y * nwg.x;
  if (r >= p.N) { return; }
  var v = LOW;
  var a = NONE;
  for (var c = li; c < p.M; c += WG) {
    if (mask[p.colOff + c] != 0u) {
      let s = X[r * p.M + c];
      if (s > v) { v = s; a = c; }
    }
  }
  rv[li] = v;
  ra[li] = a;
  workgroupBarrier();
  for (var stride = WG / 2u; stride > 0u; stride >>= 1u) {
    if (li < stride) {
      let ov = rv[li + stride];
      let oa = ra[li + stride];
      // NONE is the largest u32, so a real column always wins a tie against "none".
      if (ov > rv[li] || (ov == rv[li] && oa < ra[li])) { rv[li] = ov; ra[li] = oa; }
    }
    workgroupBarrier();
  }
  if (li == 0u && ra[0] != NONE && rv[0] > best[r]) {
    best[r] = rv[0];
    arg[r] = p.colOff + ra[0];
  }
}

@compute @workgroup_size(WG)
fn direct(@builtin(workgroup_id) wid: vec3u,
          @builtin(num_workgroups) nwg: vec3u,
          @builtin(local_invocation_index) li: u32) {
  let r = (wid.x + wid.y * nwg.x) * WG + li;
  if (r >= p.N) { return; }
  var v = LOW;
  var a = NONE;
  for (var c = 0u; c < p.M; c++) {
    if (mask[p.colOff + c] != 0u) {
      let s = X[r * p.M + c];
      if (s > v) { v = s; a = c; }
    }
  }
  if (a != NONE && v > best[r]) {
    best[r] = v;
    arg[r] = p.colOff + a;
  }
}
