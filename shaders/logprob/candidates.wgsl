// Fused LM head, candidate log-probs — the merge pass after any pass-1 kernel (logprob/direct,
// partial, gemm, sgmat) has streamed the vocabulary once over R rows (the last position of each
// prompt) and written each split's online-softmax state: for row r and candidate j,
//   out[r, j] = z_j − logsumexp,  z_j = cap(H[r] · W[cands[j]]),  logsumexp = M + log Σ (merge_splits).
// The K candidates' logits are gathered here — K rows of W, one dot product each — rather than
// caught while the vocabulary streams by (K comparisons per logit in every pass-1 kernel's inner
// loop); R·K·d multiply-adds next to the pass's R·V·d. No logits are written, nothing of size V
// is read back. One workgroup per (row, candidate): the threads split d, a tree sums.

// W's element type: f32, or f16 when compiled with f16 weights (GpuRuntime swaps this alias).
alias WeightT = f32;

struct Params {
  R: u32,       // rows (prompts)
  K: u32,       // candidates
  S: u32,       // vocabulary splits of the pass-1 kernel
  d: u32,       // hidden size
  softcap: f32, // > 0: logits become softcap * tanh(logit / softcap), as in pass 1
  _pad0: u32,
  _pad1: u32,
  _pad2: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> H: array<f32>;          // [R, d]
@group(0) @binding(2) var<storage, read> W: array<WeightT>;      // [V, d]
@group(0) @binding(3) var<storage, read> cands: array<u32>;      // [K] token ids
@group(0) @binding(4) var<storage, read> partial: array<vec4f>;  // [R, S] (m, s, t, 0)
@group(0) @binding(5) var<storage, read_write> out: array<f32>;  // [R, K] log-probs

override WG: u32 = 64;

//#include common/reduce
//#include common/math
//#include common/lse-splits

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3u,
        @builtin(num_workgroups) nwg: vec3u,
        @builtin(local_invocation_index) lid: u32) {
  let i = wid.x + wid.y * nwg.x; // (row, candidate), uniform per workgroup: the return keeps the barriers uniform
  if (i >= p.R * p.K) { return; }
  let r = i / p.K;
  let h0 = r * p.d;
  let w0 = cands[i % p.K] * p.d;
  var acc = 0.0;
  for (var k = lid; k < p.d; k += WG) { acc = fma(H[h0 + k], f32(W[w0 + k]), acc); }
  red[lid] = acc;
  reduce_sum(lid);
  if (lid == 0u) {
    var z = red[0];
    if (p.softcap > 0.0) { z = p.softcap * tanh_safe(z / p.softcap); }
    let st = merge_splits(r * p.S, p.S);
    out[i] = z - (st.x + log(st.y));
  }
}
