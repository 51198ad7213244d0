// Row-wise L2 normalisation: Y[i] = X[i] / |X[i]| (a zero row stays zero). Used before the
// all-pairs cosine (then a plain matmul against the transposed block) and for sentence embeddings.

struct Params { N: u32, d: u32, _pad0: u32, _pad1: u32 }

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> X: array<f32>;
@group(0) @binding(2) var<storage, read_write> Y: array<f32>;

override WG: u32 = 64;

// red: array<f32, WG> and reduce_sum(li), the sum of red[0..WG) into red[0] (it holds barriers):
//#include common/reduce

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3u,
        @builtin(num_workgroups) nwg: vec3u,
        @builtin(local_invocation_index) lid: u32) {
  let i = wid.x + wid.y * nwg.x;
  if (i >= p.N) { return; }
  var s = 0.0;
  for (var k = lid; k < p.d; k += WG) {
    let x = X[i * p.d + k];
    s += x * x;
  }
  red[lid] = s;
  reduce_sum(lid);
  let norm = sqrt(red[0]);
  let scale = select(0.0, 1.0 / norm, norm > 0.0);
  for (var k = lid; k < p.d; k += WG) { Y[i * p.d + k] = X[i * p.d + k] * scale; }
}
