// Token embedding: X[t, :] = tok_emb[ids[t], :] * scale (+ pos_emb[t % L, :] when has_pos, GPT-2).
// scale is 1, or sqrt(hidden) for Gemma (modeling_gemma2.py: hidden_states * normalizer).
// T = B*L tokens, each sequence padded to L, so a token's position is t % L.
// One element per invocation over T*d, folded 1-D dispatch (see add.wgsl).
// Out-of-range ids are clamped to V-1 and positions to n_pos-1 so a bad id can never read out of
// bounds; the launcher and the CPU twin reject them before they get here.

struct Params { T: u32, d: u32, V: u32, L: u32, has_pos: u32, n_pos: u32, scale: f32 }

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> ids: array<u32>;
@group(0) @binding(2) var<storage, read> tok_emb: array<f32>;
@group(0) @binding(3) var<storage, read> pos_emb: array<f32>;
@group(0) @binding(4) var<storage, read_write> X: array<f32>;

override WG: u32 = 256;

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3u,
        @builtin(num_workgroups) nwg: vec3u,
        @builtin(local_invocation_index) li: u32) {
  let i = (wid.x + wid.y * nwg.x) * WG + li;
  if (i >= p.T * p.d) { return; }
  let t = i / p.d;
  let c = i % p.d;
  let id = min(ids[t], p.V - 1u);
  var v = tok_emb[id * p.d + c] * p.scale;
  if (p.has_pos != 0u) {
    let pos = min(t % p.L, p.n_pos - 1u);
    v += pos_emb[pos * p.d + c];
  }
  X[i] = v;
}
