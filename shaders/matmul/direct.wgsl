// matmul variant for CPU-rasteriser adapters (SwiftShader, lavapipe): no workgroup memory and no
// barriers — on those drivers a barrier splits the shader into coroutines and costs more than the
// cache-resident global loads it would save. Each invocation owns a 4×4 block of C and reads A
// and B straight from storage. Same bindings, uniforms, layouts and guards as matmul/tiled.

struct Params { M: u32, N: u32, K: u32, has_bias: u32, accumulate: u32 }

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> A: array<f32>;
@group(0) @binding(2) var<storage, read> B: array<f32>;
@group(0) @binding(3) var<storage, read> bias: array<f32>;
@group(0) @binding(4) var<storage, read_write> C: array<f32>;

override TRANS_B: bool = false;
// 0: plain; 1: SwiGLU (silu); 2: GeGLU (tanh GELU).
override GLU: u32 = 0u;

@compute @workgroup_size(16, 16)
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_id) lid: vec3u) {
  // Workgroups walk down the rows first (wid.x: 64-row blocks, wid.y: column blocks): CPU
  // rasterisers run workgroups roughly in order, so a column block of B stays in cache while
  // every row block of A (the smaller operand) streams past it.
  let row0 = (wid.x * 16u + lid.y) * 4u;
  let col0 = (wid.y * 16u + lid.x) * select(4u, 2u, GLU != 0u);
  if (row0 >= p.M || col0 >= p.N) { return; }
  // Clamped indices instead of branches in the inner loop (out-of-range results are not stored),
  // and named vec4 accumulators instead of an indexed array, which SwiftShader keeps in memory.
  let a0 = min(row0, p.M - 1u) * p.K;
  let a1 = min(row0 + 1u, p.M - 1u) * p.K;
  let a2 = min(row0 + 2u, p.M - 1u) * p.K;
  let a3 = min(row0 + 3u, p.M - 1u) * p.K;
  var n = vec4u(min(col0, p.N - 1u), min(col0 + 1u, p.N - 1u), min(col0 + 2u, p.N - 1u), min(col0 + 3u, p.N - 1u));
  if (GLU != 0u) { n = vec4u(n.x, n.y, p.N + n.x, p.N + n.y); }
  var c0 = vec4f(0.0);
  var c1 = vec4f(0.0);
  var c2 = vec4f(0.0);
  var c3 = vec4f(0.0);
  if (row0 + 1u >= p.M) {
    // The block's only real row (M = 1: a decode step at batch 1): skip the clamped duplicates.
    for (var k = 0u; k < p.K; k++) {
      var b: vec4f;
      if (TRANS_B) {
        b = vec4f(B[n.x * p.K + k], B[n.y * p.K + k], B[n.z * p.K + k], B[n.w * p.K + k]);
      } else {
        let o = k * p.N;
        b = vec4f(B[o + n.x], B[o + n.y], B[o + n.z], B[o + n.w]);
      }
      c0 = fma(vec4f(A[a0 + k]), b, c0);
    }
  } else {
    for (var k = 0u; k < p.K; k++) {
      var b: vec4f;
      if (TRANS_B) {
        b = vec4f(B[n.x * p.K + k], B[n.y * p.K + k], B[n.z * p.K + k], B[n.w * p.K + k]);
      } else {
        let o = k * p.N;
        b = vec4f(B[o + n.x], B[o + n.y], B[o + n.z], B[o + n.w]);
      }
      c0 = fma(vec4f(A[a0 + k]), b, c0);
      c1 = fma(vec4f(A[a1 + k]), b, c1);
      c2 = fma(vec4f(A[a2 + k]), b, c2);
      c3 = fma(vec4f(A[a3 + k]), b, c3);
    }
  }
  var bv = vec4f(0.0);
  if (p.has_bias != 0u) { bv = vec4f(bias[n.x], bias[n.y], bias[n.z], bias[n.w]); }
  if (GLU != 0u) {
    store_glu(row0, col0, c0 + bv);
    store_glu(row0 + 1u, col0, c1 + bv);
    store_glu(row0 + 2u, col0, c2 + bv);
    store_glu(row0 + 3u, col0, c3 + bv);
    return;
  }
  store(row0, col0, c0 + bv);
  store(row0 + 1u, col0, c1 + bv);
  store(row0 + 2u, col0, c2 + bv);
  store(row0 + 3u, col0, c3 + bv);
}

fn store(m: u32, col0: u32, v: vec4f) {
  if (m >= p.M) { return; }
  for (var j = 0u; j < 4u; j++) {
    if (col0 + j < p.N) {
      var x = v[j];
      if (p.accumulate != 0u) { x += C[m * p.N + col0 + j]; }
      C[m * p.N + col0 + j] = x;
    }
  }
}

/** GLU: v = (gate n, gate n+1, up n, up n+1) of row m. */
fn store_glu(m: u32, col0: u32, v: vec4f) {
  if (m >= p.M) { return; }
  for (var j = 0u; j < 2u; j++) {
    if (col0 + j < p.N) {
      var x = act(v[j]) * v[j + 2u];
      if (p.accumulate != 0u) { x += C[m * p.N + col0 + j]; }
      C[m * p.N + col0 + j] = x;
    }
  }
}

