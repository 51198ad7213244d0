// Register-blocked SIMT matmul for hardware GPUs: C[M,N] = A[M,K] · B (+ bias) (+ C when
// accumulating), or with GLU the gated epilogue C = act(A·Bg + bg) * (A·Bu + bu).
//
// Each thread owns an 8×8 block of C (16 vec4 accumulators): rows ty*4..+3 and BM/2 + ty*4..+3,
// columns tx*4..+3 and BN/2 + tx*4..+3 of the workgroup tile BM×BN = (8·WGY)×(8·WGX). K advances
// BK at a time through two workgroup-memory buffers (double buffering: the next tile's global
// loads are issued into registers before the current tile is multiplied; one barrier per step).
// Global loads are vec4 (A and B bound as vec4 arrays: K % 4 == 0 for 'nk', N % 4 == 0 for 'kn';
// kernels/matmul.ts checks that), workgroup reads are vec4. Tile sizes are override constants,
// so an autotuner picks among configs (kernels/matmul.ts matmulConfigs) without new WGSL.
// Every row, column and K tail is bounds-guarded; M and N are arbitrary.
//
// GLU (nk only): B holds the gate rows [0, N) then the up rows [N, 2N) (2N×K), bias 2N. A
// workgroup then covers BN/2 output columns: the tile's column half 0 reads gate rows and half 1
// the matching up rows, so each thread holds gate and up of the same outputs in its two column
// groups and applies act(gate) * up in the epilogue.

alias WeightT = f32;

struct Params { M: u32, N: u32, K: u32, has_bias: u32, accumulate: u32 }

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> A: array<vec4f>;
@group(0) @binding(2) var<storage, read> B: array<vec4<WeightT>>;
@group(0) @binding(3) var<storage, read> bias: array<f32>;
@group(0) @binding(4) var<storage, read_write> C: array<f32>;

override TRANS_B: bool = true;
// 0: plain; 1: SwiGLU (silu); 2: GeGLU (tanh GELU).
override GLU: u32 = 0u;
override WGX: u32 = 16u;
override WGY: u32 = 16u;
override BK: u32 = 16u;
// Derived (set them only through WGX/WGY/BK).
override BM: u32 = 8u * WGY;
override BN: u32 = 8u * WGX;
override A_SIZE: u32 = 2u * BK * BM / 4u;
override B_SIZE: u32 = 2u * BK * BN / 4u;

// Per thread and tile: BM·BK/4 / (WGX·WGY) = 2·BK/WGX vec4 loads of A, 2·BK/WGY of B (≤ MAXL).
const MAXL = 8u;

var<workgroup> As: array<vec4f, A_SIZE>; // [buf][k][BM/4]: vec4 along m
var<workgroup> Bs: array<vec4f, B_SIZE>; // [buf][k][BN/4]: vec4 along n

var<private> ra: array<vec4f, MAXL>;
var<private> rb: array<vec4f, MAXL>;

// Global → registers for K tile t. A (and B in 'nk'): consecutive threads walk along k
// (16-byte coalesced loads); B in 'kn': along n.
fn load_tile(t: u32, li: u32, row0: u32, ocol0: u32) {
  let NT = WGX * WGY;
  let KQ = BK / 4u;
  let half = BN / 2u;
  let K4 = p.K / 4u;
  let N4 = p.N / 4u;
  let k0 = t * BK;
  for (var i = 0u; i < BM * KQ / NT; i++) {
    let e = li + i * NT;
    let gm = row0 + e / KQ;
    let gk = k0 + (e % KQ) * 4u;
    var v = vec4f(0.0);
    if (gm < p.M && gk < p.K) { v = A[gm * K4 + gk / 4u]; }
    ra[i] = v;
  }
  for (var i = 0u; i < BN * KQ / NT; i++) {
    let e = li + i * NT;
    var v = vec4f(0.0);
    if (TRANS_B) {
      let n = e / KQ;
      let gk = k0 + (e % KQ) * 4u;
      var o = ocol0 + n;
      var row = o;
      if (GLU != 0u) {
        o = ocol0 + n % half;
        row = select(o, p.N + o, n >= half);
      }
      if (o < p.N && gk < p.K) { v = vec4f(B[row * K4 + gk / 4u]); }
    } else {
      let gk = k0 + e / (BN / 4u);
      let gn = ocol0 + (e % (BN / 4u)) * 4u;
      if (gn < p.N && gk < p.K) { v = vec4f(B[gk * N4 + gn / 4u]); }
    }
    rb[i] = v;
  }
}

// Registers → workgroup buffer `buf` (A and 'nk' B transposed to k-major on the way).
fn store_tile(buf: u32, li: u32) {
  let NT = WGX * WGY;
  let KQ = BK / 4u;
  for (var i = 0u; i < BM * KQ / NT; i++) {
    let e = li + i * NT;
    let m = e / KQ;
    let k = (e % KQ) * 4u;
    let v = ra[i];
    for (var c = 0u; c < 4u; c++) {
      As[((buf * BK + k + c) * BM + m) / 4u][m % 4u] = v[c];
    }
  }
  for (var i = 0u; i < BN * KQ / NT; i++) {
    let e = li + i * NT;
    let v = rb[i];
    if (TRANS_B) {
      let n = e / KQ;
      let k = (e % KQ) * 4u;
      for (var c = 0u; c < 4u; c++) {
        Bs[((buf * BK + k + c) * BN + n) / 4u][n % 4u] = v[c];
      }
    } else {
      Bs[(buf * BK + e / (BN / 4u)) * (BN / 4u) + e % (BN / 4u)] = v;
    }
  }
}

@compute @workgroup_size(WGX, WGY)
fn main(@builtin(workgroup_id) wid: vec3u,
        @builtin(local_invocation_id) lid: vec3u,
        @builtin(local_invocation_index) li: u32) {
  let row0 = wid.y * BM;
  let half = BN / 2u;
  // First output column of the tile (GLU: a tile yields BN/2 outputs).
  let ocol0 = select(wid.x * BN, wid.x * half, GLU != 0u);
  let tx = lid.x;
  let ty = lid.y;

  var acc: array<vec4f, 16>;
  for (var i = 0u; i < 16u; i++) { acc[i] = vec4f(0.0); }

  let nT = (p.K + BK - 1u) / BK;
  load_tile(0u, li, row0, ocol0);
  store_tile(0u, li);
  workgroupBarrier();
  for (var t = 0u; t < nT; t++) {
    let buf = t % 2u;
    // Issue the next tile's global loads before multiplying this one (double buffering).
    let more = t + 1u < nT;
    if (more) { load_tile(t + 1u, li, row0, ocol0); }
    for (var kk = 0u; kk < BK; kk++) {
      let ab = (buf * BK + kk) * (BM / 4u);
      let bb = (buf * BK + kk) * (BN / 4u);
      let a0 = As[ab + ty];
      let a1 = As[ab + WGY + ty];
      let b0 = Bs[bb + tx];
      let b1 = Bs[bb + WGX + tx];
      for (var i = 0u; i < 4u; i++) {
        acc[i * 2u] = fma(vec4f(a0[i]), b0, acc[i * 2u]);
        acc[i * 2u + 1u] = fma(vec4f(a0[i]), b1, acc[i * 2u + 1u]);
        acc[8u + i * 2u] = fma(vec4f(a1[i]), b0, acc[8u + i * 2u]);
        acc[8u + i * 2u + 1u] = fma(vec4f(a1[i]), b1, acc[8u + i * 2u + 1u]);
      }
    }
    // The other buffer was last read in step t - 1, which every thread finished before the
    // previous barrier; this barrier makes tile t + 1 visible (and frees buffer t % 2).
    if (more) { store_tile(1u - buf, li); }
    workgroupBarrier();
  }

  // ---- epilogue: bias, GLU, residual ----
  for (var r = 0u; r < 8u; r++) {
    let gm = row0 + select(ty * 4u + r, BM / 2u + ty * 4u + r - 4u, r >= 4u);
    if (gm >= p.M) { continue; }
    if (GLU != 0u) {
      for (var j = 0u; j < 4u; j++) {
        let gn = ocol0 + tx * 4u + j;
        if (gn >= p.N) { continue; }
        var g = acc[r * 2u][j];
        var u = acc[r * 2u + 1u][j];
        if (p.has_bias != 0u) { g += bias[gn]; u += bias[p.N + gn]; }
        var x = act(g) * u;
        if (p.accumulate != 0u) { x += C[gm * p.N + gn]; }
        C[gm * p.N + gn] = x;
      }
    } else {
      for (var h = 0u; h < 2u; h++) {
        let v = acc[r * 2u + h];
        for (var j = 0u; j < 4u; j++) {
          let gn = ocol0 + h * half + tx * 4u + j;
          if (gn >= p.N) { continue; }
          var x = v[j];
          if (p.has_bias != 0u) { x += bias[gn]; }
          if (p.accumulate != 0u) { x += C[gm * p.N + gn]; }
          C[gm * p.N + gn] = x;
        }
      }
    }
  }
}
