// LayerNorm: Y[r, :] = (X[r, :] - mean) / sqrt(var + eps) * w + b, with the biased variance
// (1/d, as torch.nn.LayerNorm). Two passes over the row, mean first and then the mean of
// (x - mean)^2, rather than E[x^2] - E[x]^2, which cancels catastrophically when |mean| >> std.
// One workgroup per row, strided partial sums and a tree reduction as in rmsnorm.wgsl (WG must be
// a power of two).

struct Params { T: u32, d: u32, eps: f32 }

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> X: array<f32>;
@group(0) @binding(2) var<storage, read> w: array<f32>;
@group(0) @binding(3) var<storage, read> b: array<f32>;
@group(0) @binding(4) var<storage, read_write> Y: array<f32>;

override WG: u32 = 256;

// red: array<f32, WG> and reduce_sum(li), the sum of red[0..WG) into red[0] (it holds barriers):
//#include common/reduce

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3u,
        @builtin(num_workgroups) nwg: vec3u,
        @builtin(local_invocation_index) li: u32) {
  let row = wid.x + wid.y * nwg.x;
  if (row >= p.T) { return; }
  let base = row * p.d;
  let n = f32(p.d);

  var s = 0.0;
  for (var c = li; c < p.d; c += WG) { s += X[base + c]; }
  red[li] = s;
  reduce_sum(li);
  let mean = red[0] / n;
  // Everyone has read red[0] before anyone overwrites its own slot for the second pass.
  workgroupBarrier();

  var q = 0.0;
  for (var c = li; c < p.d; c += WG) {
    let x = X[base + c] - mean;
    q = fma(x, x, q);
  }
  red[li] = q;
  reduce_sum(li);
  let inv = inverseSqrt(red[0] / n + p.eps);
  for (var c = li; c < p.d; c += WG) {
    Y[base + c] = (X[base + c] - mean) * inv * w[c] + b[c];
  }
}
