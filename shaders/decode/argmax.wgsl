// decode/argmax: greedy ids of logits rows [R, V] (the lowest id among equal maxima), after the
// final-logit soft-cap (monotone, but applied so equal capped values tie as the twin's do). One
// workgroup per row; writes ids[row]. The decoder's greedy step until the sampling kernel takes over.

struct Params { R: u32, V: u32, softcap: f32 }

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> X: array<f32>;
@group(0) @binding(2) var<storage, read_write> ids: array<u32>;

const WG = 256u;
var<workgroup> rv: array<f32, WG>;
var<workgroup> ri: array<u32, WG>;

fn tanh_safe(x: f32) -> f32 {
  let a = abs(x);
  if (a < 0.25) {
    let z = x * x;
    return x * (1.0 + z * (-0.3333333333 + z * (0.1333333333 + z * (-0.0539682540 + z * 0.0218694885))));
  }
  let e = exp(-2.0 * a);
  return sign(x) * (1.0 - e) / (1.0 + e);
}

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_index) li: u32) {
  let base = wid.x * p.V;
  var bv = -3.4e38;
  var bi = 0xffffffffu;
  for (var i = li; i < p.V; i += WG) {
    var x = X[base + i];
    if (p.softcap > 0.0) { x = p.softcap * tanh_safe(x / p.softcap); }
    if (x > bv) { bv = x; bi = i; }   // ascending i: the first maximum is kept
  }
  rv[li] = bv;
  ri[li] = bi;
  workgroupBarrier();
  for (var s = WG / 2u; s > 0u; s >>= 1u) {
    if (li < s) {
      let v2 = rv[li + s];
      let i2 = ri[li + s];
      if (v2 > rv[li] || (v2 == rv[li] && i2 < ri[li])) { rv[li] = v2; ri[li] = i2; }
    }
    workgroupBarrier();
  }
  if (li == 0u) { ids[wid.x] = ri[0]; }
}
