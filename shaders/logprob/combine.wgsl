// Fused LM-head log-likelihood, pass 2 of 3: merge the vocabulary splits' (m, s, t) states of each
// position (common/lse-splits.wgsl merge_splits) into logsumexp = M + log S, S = Σ_s s_s · e^(m_s − M),
// then log p(target) = logit_target − logsumexp; and the entropy H = log S − T/S with
// T = Σ_s e^(m_s − M) (t_s + (m_s − M) s_s). Masked positions (pads, context tokens) are written as
// exactly 0 (both outputs).

struct Params { T: u32, S: u32, _pad0: u32, _pad1: u32 }

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> partial: array<vec4f>; // [T, S] (m, s, t, 0)
@group(0) @binding(2) var<storage, read> tgt: array<f32>;       // [T]
@group(0) @binding(3) var<storage, read> mask: array<u32>;      // [T]
@group(0) @binding(4) var<storage, read_write> logp: array<f32>; // [T]
@group(0) @binding(5) var<storage, read_write> ent: array<f32>;  // [T] entropy, nats

override WG: u32 = 64;

//#include common/lse-splits

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3u,
        @builtin(num_workgroups) nwg: vec3u,
        @builtin(local_invocation_index) lid: u32) {
  let t = (wid.x + wid.y * nwg.x) * WG + lid;
  if (t >= p.T) { return; }
  if (mask[t] == 0u) {
    logp[t] = 0.0;
    ent[t] = 0.0;
    return;
  }
  let st = merge_splits(t * p.S, p.S);
  logp[t] = tgt[t] - (st.x + log(st.y));
  ent[t] = log(st.y) - st.z / st.y;
}
