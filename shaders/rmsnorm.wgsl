// RMSNorm: Y[r, :] = X[r, :] / sqrt(mean(X[r, :]^2) + eps) * (w + w_off).
// w_off = 0 (Llama) or 1 (Gemma's (1 + weight), modeling_gemma2.py Gemma2RMSNorm).
// One workgroup per row (folded 1-D grid: row = wid.x + wid.y * nwg.x). Each invocation sums a
// strided slice of the row (c = li, li + WG, ...), so any d works, odd or below WG; the partial
// sums meet in a workgroup tree reduction, which needs WG to be a power of two.

struct Params { T: u32, d: u32, eps: f32, w_off: f32 }

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> X: array<f32>;
@group(0) @binding(2) var<storage, read> w: array<f32>;
@group(0) @binding(3) var<storage, read_write> Y: array<f32>;

override WG: u32 = 256;

// red: array<f32, WG> and reduce_sum(li), the sum of red[0..WG) into red[0] (it holds barriers):
//#include common/reduce

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3u,
        @builtin(num_workgroups) nwg: vec3u,
        @builtin(local_invocation_index) li: u32) {
  let row = wid.x + wid.y * nwg.x;
  // Uniform per workgroup, so returning before the barriers is allowed.
  if (row >= p.T) { return; }
  let base = row * p.d;
  var s = 0.0;
  for (var c = li; c < p.d; c += WG) {
    let x = X[base + c];
    s = fma(x, x, s);
  }
  red[li] = s;
  reduce_sum(li);
  let inv = inverseSqrt(red[0] / f32(p.d) + p.eps);
  for (var c = li; c < p.d; c += WG) {
    Y[base + c] = X[base + c] * inv * (w[c] + p.w_off);
  }
}
