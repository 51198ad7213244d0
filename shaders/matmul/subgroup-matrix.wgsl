// Matmul on cooperative matrices (Dawn's chromium_experimental_subgroup_matrix; Vulkan
// OpCooperativeMatrixMulAddKHR): f16 operands, f32 accumulators. C[M,N] = A[M,K] · Bᵀ (+ bias)
// (+ C when accumulating), or the GLU epilogue — B is 'nk' only (weights [out, in], f16).
//
// NEVER RUN: neither software adapter (lavapipe, SwiftShader) offers the feature, and no session
// has had a GPU with it; it is only compiled (WGSL and pipelines) on Dawn's null backend in
// tests/matmul.test.ts. kernels/matmul.ts only
// dispatches it when the device has the feature and lists a 16×16×16 f16→f32 configuration, and
// the default policy picks it only after validateMatmulVariant() has passed on that device.
// Syntax: the load/store form with the layout as a template argument (row_major / col_major), as
// the Dawn in npm `webgpu` 0.6 accepts without deprecation warnings.
//
// Workgroup: 4 subgroups of SG invocations (adapters with a fixed subgroup size only), a 64×64
// tile of C, each subgroup a 32×32 quadrant = 2×2 16×16 result matrices. K steps by 32 through
// workgroup memory: A converted to f16 [m][k], B as stored [n][k] (the right matrix column-major).
// The product goes through workgroup memory (f32) for the bounds-guarded epilogue.
// GLU: B = [gate; up] rows; the tile's column half 0 reads gate rows, half 1 the same up rows.
// The B tile load (Bs at k0) is load_b_tile, composed after this file: matmul/sgmat-load (f16
// weights) or matmul/sgmat-load-q (GGUF blocks dequantized, then rounded to f16; WeightT = u32).

enable chromium_experimental_subgroup_matrix;
enable subgroups;

alias WeightT = f32;

struct Params { M: u32, N: u32, K: u32, has_bias: u32, accumulate: u32 }

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> A: array<f32>;
@group(0) @binding(2) var<storage, read> B: array<WeightT>;
@group(0) @binding(3) var<storage, read> bias: array<f32>;
@group(0) @binding(4) var<storage, read_write> C: array<f32>;

// 0: plain; 1: SwiGLU (silu); 2: GeGLU (tanh GELU).
override GLU: u32 = 0u;
// The adapter's (fixed) subgroup size.
override SG: u32 = 32u;

const TM = 64u;
const TN = 64u;
const TK = 32u;

alias Left = subgroup_matrix_left<f16, 16, 16>;
alias Right = subgroup_matrix_right<f16, 16, 16>;
alias Acc = subgroup_matrix_result<f32, 16, 16>;

var<workgroup> As: array<f16, 2048>; // TM × TK, row-major (stride TK)
var<workgroup> Bs: array<f16, 2048>; // TN × TK: element (k, n) at n * TK + k
var<workgroup> Cs: array<f32, 4096>; // TM × TN, row-major

/** The weight row and output column of tile column n (B tile loaders). */
fn sgmat_col(ocol0: u32, n: u32) -> vec2u {
  var o = ocol0 + n;
  var row = o;
  if (GLU != 0u) {
    o = ocol0 + n % (TN / 2u);
    row = select(o, p.N + o, n >= TN / 2u);
  }
  return vec2u(row, o);
}

@compute @workgroup_size(4u * SG)
fn main(@builtin(workgroup_id) wid: vec3u,
        @builtin(local_invocation_index) li: u32,
        @builtin(subgroup_id) sg: u32) {
  let NT = 4u * SG;
  let half = TN / 2u;
  let row0 = wid.y * TM;
  let ocol0 = select(wid.x * TN, wid.x * half, GLU != 0u);
  // subgroup_id (not li / subgroup_size): the uniformity analysis must see the matrix offsets as
  // subgroup-uniform.
  let sr = (sg / 2u) * 32u;
  let sc = (sg % 2u) * 32u;
  var c00 = Acc();
  var c01 = Acc();
  var c10 = Acc();
  var c11 = Acc();
  for (var k0 = 0u; k0 < p.K; k0 += TK) {
    for (var i = li; i < TM * TK; i += NT) {
      let gm = row0 + i / TK;
      let gk = k0 + i % TK;
      var v = 0.0;
      if (gm < p.M && gk < p.K) { v = A[gm * p.K + gk]; }
      As[i] = f16(v);
    }
    load_b_tile(k0, ocol0, li, NT);
    workgroupBarrier();
    for (var kk = 0u; kk < TK; kk += 16u) {
      let a0 = subgroupMatrixLoad<Left, row_major>(&As, sr * TK + kk, TK);
      let a1 = subgroupMatrixLoad<Left, row_major>(&As, (sr + 16u) * TK + kk, TK);
      let b0 = subgroupMatrixLoad<Right, col_major>(&Bs, sc * TK + kk, TK);
      let b1 = subgroupMatrixLoad<Right, col_major>(&Bs, (sc + 16u) * TK + kk, TK);
      c00 = subgroupMatrixMultiplyAccumulate(a0, b0, c00);
      c01 = subgroupMatrixMultiplyAccumulate(a0, b1, c01);
      c10 = subgroupMatrixMultiplyAccumulate(a1, b0, c10);
      c11 = subgroupMatrixMultiplyAccumulate(a1, b1, c11);
    }
    workgroupBarrier();
  }
  subgroupMatrixStore<row_major>(&Cs, sr * TN + sc, c00, TN);
  subgroupMatrixStore<row_major>(&Cs, sr * TN + sc + 16u, c01, TN);
  subgroupMatrixStore<row_major>(&Cs, (sr + 16u) * TN + sc, c10, TN);
  subgroupMatrixStore<row_major>(&Cs, (sr + 16u) * TN + sc + 16u, c11, TN);
  workgroupBarrier();
  let outs = select(TN, half, GLU != 0u);
  for (var i = li; i < TM * outs; i += NT) {
    let m = i / outs;
    let j = i % outs;
    let gm = row0 + m;
    let gn = ocol0 + j;
    if (gm >= p.M || gn >= p.N) { continue; }
    var x: f32;
    if (GLU != 0u) {
      var g = Cs[m * TN + j];
      var u = Cs[m * TN + half + j];
      if (p.has_bias != 0u) { g += bias[gn]; u += bias[p.N + gn]; }
      x = act(g) * u;
    } else {
      x = Cs[m * TN + j];
      if (p.has_bias != 0u) { x += bias[gn]; }
    }
    if (p.accumulate != 0u) { x += C[gm * p.N + gn]; }
    C[gm * p.N + gn] = x;
  }
}
