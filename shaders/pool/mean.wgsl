// Mean pooling over each sequence's real tokens: Y[b, k] = Σ_{t < len_b} X[b·L + t, k] / len_b,
// len_b = min(seqLen[b], L) (right padding). One output element per invocation, so neighbouring
// invocations read neighbouring k (coalesced); the 1-D workgroup count may be folded into 2-D by
// the runtime, hence the linear index wid.x + wid.y · nwg.x and the bounds guard. A sequence with
// no tokens pools to zeros.

struct Params { B: u32, L: u32, d: u32, _pad: u32 }

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> X: array<f32>;
@group(0) @binding(2) var<storage, read> seqLen: array<u32>;
@group(0) @binding(3) var<storage, read_write> Y: array<f32>;

override WG: u32 = 64;

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3u,
        @builtin(num_workgroups) nwg: vec3u,
        @builtin(local_invocation_index) li: u32) {
  let i = (wid.x + wid.y * nwg.x) * WG + li;
  if (i >= p.B * p.d) { return; }
  let b = i / p.d;
  let k = i % p.d;
  let len = min(seqLen[b], p.L);
  var s = 0.0;
  for (var t = 0u; t < len; t++) { s += X[(b * p.L + t) * p.d + k]; }
  Y[i] = select(0.0, s / f32(len), len > 0u);
}
