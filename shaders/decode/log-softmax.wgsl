// decode/log-softmax: rows of logits [R, V] → log-probs in place, after the final-logit soft-cap
// (cap·tanh(x/cap) when cap > 0): x - max - log Σ exp(x - max). One workgroup per row, tree
// reductions in a fixed order. The decoder's stepLogprobs view (kernels/decode-attention.ts).

struct Params { R: u32, V: u32, softcap: f32 }

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read_write> X: array<f32>;

const WG = 256u;
//#include common/reduce

//#include common/math

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_index) li: u32) {
  let base = wid.x * p.V;
  var m = -3.0e38;
  for (var i = li; i < p.V; i += WG) {
    var x = X[base + i];
    if (p.softcap > 0.0) { x = p.softcap * tanh_safe(x / p.softcap); X[base + i] = x; }
    m = max(m, x);
  }
  red[li] = m;
  workgroupBarrier();
  for (var s = WG / 2u; s > 0u; s >>= 1u) {
    if (li < s) { red[li] = max(red[li], red[li + s]); }
    workgroupBarrier();
  }
  let mx = red[0];
  workgroupBarrier();
  var sum = 0.0;
  for (var i = li; i < p.V; i += WG) { sum += exp(X[base + i] - mx); }
  red[li] = sum;
  reduce_sum(li);
  let lse = mx + log(red[0]);
  for (var i = li; i < p.V; i += WG) { X[base + i] = X[base + i] - lse; }
}
