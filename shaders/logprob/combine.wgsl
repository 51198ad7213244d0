// Fused LM-head log-likelihood, pass 2 of 3: merge the vocabulary splits of each position into
// logsumexp = M + log Σ_s sum_s · exp(max_s − M), then log p(target) = logit_target − logsumexp.
// Masked positions (pads, context tokens) are written as exactly 0.

struct Params { T: u32, S: u32, _pad0: u32, _pad1: u32 }

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> partial: array<vec2f>; // [T, S]
@group(0) @binding(2) var<storage, read> tgt: array<f32>;       // [T]
@group(0) @binding(3) var<storage, read> mask: array<u32>;      // [T]
@group(0) @binding(4) var<storage, read_write> logp: array<f32>; // [T]

override WG: u32 = 64;

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3u,
        @builtin(num_workgroups) nwg: vec3u,
        @builtin(local_invocation_index) lid: u32) {
  let t = (wid.x + wid.y * nwg.x) * WG + lid;
  if (t >= p.T) { return; }
  if (mask[t] == 0u) {
    logp[t] = 0.0;
    return;
  }
  var M = -3.0e38;
  for (var s = 0u; s < p.S; s++) { M = max(M, partial[t * p.S + s].x); }
  var sum = 0.0;
  for (var s = 0u; s < p.S; s++) {
    let ps = partial[t * p.S + s];
    sum += ps.y * exp(ps.x - M);
  }
  logp[t] = tgt[t] - (M + log(sum));
}
