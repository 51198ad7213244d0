// The exact merge of one position's vocabulary splits in the fused LM head, composed by
// `//#include common/lse-splits` into its merge passes (logprob/combine, logprob/candidates). The
// including shader binds `partial: array<vec4f>`: per position and split the online-softmax state
// (m, s = Σ e^(z−m), t = Σ (z−m)·e^(z−m), 0) that every pass-1 kernel writes (logprob/common.wgsl
// merge). merge_splits(base, S) reads partial[base .. base + S) and returns (M, Σ, T) with
// M = max m, Σ = Σ s·e^(m − M), T = Σ e^(m − M) (t + (m − M) s): log-sum-exp = M + log Σ and the
// entropy H = log Σ − T/Σ.
fn merge_splits(base: u32, S: u32) -> vec3f {
  var M = -3.0e38;
  for (var s = 0u; s < S; s++) { M = max(M, partial[base + s].x); }
  var sum = 0.0;
  var tsum = 0.0;
  for (var s = 0u; s < S; s++) {
    let ps = partial[base + s];
    let a = exp(ps.x - M);
    sum += ps.y * a;
    tsum += a * (ps.z + (ps.x - M) * ps.y);
  }
  return vec3f(M, sum, tsum);
}
