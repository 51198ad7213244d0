// C[M,N] = A[M,K] · B (+ bias[N]).  A row-major; B is K×N, or N×K when TRANS_B (weights stored
// [out, in], as in PyTorch). 64×64 output tile per workgroup, 16×16 threads each owning a 4×4
// block, K stepped by 16 through workgroup memory. Every load is bounds-guarded, so M, N, K need
// not be multiples of the tile. B's element type is WeightT: f32, or f16 when the runtime compiles
// this file with f16 weights (GpuRuntime swaps the alias and adds `enable f16;`, nothing else).
// Epilogues: + bias, + C (accumulate: the residual add), and GLU (nk only: B = [gate; up] rows,
// 2N×K; a tile then covers 32 outputs, its column half 0 reading gate rows and half 1 the same up
// rows, and stores act(gate) * up).
// The B tile load (Bs [TK][TN] at k0) is load_b_tile, composed after this file: matmul/tiled-load
// (f32/f16 values, 'nk' or 'kn') or matmul/tiled-load-q (GGUF blocks, WeightT = u32).

alias WeightT = f32;

struct Params { M: u32, N: u32, K: u32, has_bias: u32, accumulate: u32 }

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> A: array<f32>;
@group(0) @binding(2) var<storage, read> B: array<WeightT>;
@group(0) @binding(3) var<storage, read> bias: array<f32>;
@group(0) @binding(4) var<storage, read_write> C: array<f32>;

// 0: plain; 1: SwiGLU (silu); 2: GeGLU (tanh GELU).
override GLU: u32 = 0u;

const TM = 64u;
const TN = 64u;
const TK = 16u;

var<workgroup> As: array<f32, 1024>; // [TK][TM]
var<workgroup> Bs: array<f32, 1024>; // [TK][TN]

@compute @workgroup_size(16, 16)
fn main(@builtin(workgroup_id) wid: vec3u,
        @builtin(local_invocation_id) lid: vec3u,
        @builtin(local_invocation_index) li: u32) {
  let row0 = wid.y * TM;
  // First output column (GLU: a tile yields TN/2 outputs).
  let col0 = select(wid.x * TN, wid.x * (TN / 2u), GLU != 0u);
  // Named vec4 accumulators (row i of the 4×4 block, columns in the components): an indexed
  // private array is kept in memory by some compilers (SwiftShader: ~10× slower).
  var c0 = vec4f(0.0);
  var c1 = vec4f(0.0);
  var c2 = vec4f(0.0);
  var c3 = vec4f(0.0);
  for (var k0 = 0u; k0 < p.K; k0 += TK) {
    // A tile: consecutive threads walk along k, i.e. along a row of A (coalesced).
    for (var i = 0u; i < 4u; i++) {
      let e = li + i * 256u;
      let m = e / TK;
      let k = e % TK;
      let gm = row0 + m;
      let gk = k0 + k;
      var v = 0.0;
      if (gm < p.M && gk < p.K) { v = A[gm * p.K + gk]; }
      As[k * TM + m] = v;
    }
    load_b_tile(k0, col0, li);
    workgroupBarrier();
    for (var k = 0u; k < TK; k++) {
      let b = vec4f(Bs[k * TN + lid.x], Bs[k * TN + lid.x + 16u], Bs[k * TN + lid.x + 32u], Bs[k * TN + lid.x + 48u]);
      c0 = fma(vec4f(As[k * TM + lid.y]), b, c0);
      c1 = fma(vec4f(As[k * TM + lid.y + 16u]), b, c1);
      c2 = fma(vec4f(As[k * TM + lid.y + 32u]), b, c2);
      c3 = fma(vec4f(As[k * TM + lid.y + 48u]), b, c3);
    }
    workgroupBarrier();
  }
  store(row0 + lid.y, col0 + lid.x, c0);
  store(row0 + lid.y + 16u, col0 + lid.x, c1);
  store(row0 + lid.y + 32u, col0 + lid.x, c2);
  store(row0 + lid.y + 48u, col0 + lid.x, c3);
}

/** The weight row (nk) and output column of tile column n (B tile loaders). */
fn tile_col(col0: u32, n: u32) -> vec2u {
  var gn = col0 + n;
  var row = gn;
  if (GLU != 0u) {
    gn = col0 + n % (TN / 2u);
    row = select(gn, p.N + gn, n >= TN / 2u);
  }
  return vec2u(row, gn);
}

/** Row gm of the thread's block: columns gn0, gn0 + 16, gn0 + 32, gn0 + 48 (GLU: gate in the
 *  first two, up in the last two, for outputs gn0 and gn0 + 16). */
fn store(gm: u32, gn0: u32, v: vec4f) {
  if (gm >= p.M) { return; }
  if (GLU != 0u) {
    for (var j = 0u; j < 2u; j++) {
      let gn = gn0 + 16u * j;
      if (gn < p.N) {
        var g = v[j];
        var u = v[j + 2u];
        if (p.has_bias != 0u) { g += bias[gn]; u += bias[p.N + gn]; }
        var x = act(g) * u;
        if (p.accumulate != 0u) { x += C[gm * p.N + gn]; }
        C[gm * p.N + gn] = x;
      }
    }
    return;
  }
  for (var j = 0u; j < 4u; j++) {
    let gn = gn0 + 16u * j;
    if (gn < p.N) {
      var x = v[j];
      if (p.has_bias != 0u) { x += bias[gn]; }
      if (p.accumulate != 0u) { x += C[gm * p.N + gn]; }
      C[gm * p.N + gn] = x;
    }
  }
}

