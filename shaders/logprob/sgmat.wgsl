// Fused LM-head log-likelihood, pass 1 of 3 — variant 'sgmat': the logits product on the GPU's
// matrix units (WGSL chromium_experimental_subgroup_matrix → Vulkan cooperative matrices), f16
// operands and f32 accumulators, 16 × 16 × 16 tiles. EXPERIMENTAL: no software adapter offers the
// feature, so this kernel is only compile-checked in CI (Dawn's null backend); logprobGpu runs it
// only when the adapter lists the f16→f32 16×16×16 configuration, and validateLogprobVariant must
// pass on the device before anything chooses it.
//
// Each workgroup owns BM = 64 positions × one split of the vocabulary, walked in BN = 64-entry
// tiles. Per K step of BK = 32, H (f32, rounded to f16) and W (f32 or f16) go through workgroup
// memory as f16; each of the 4 subgroups multiplies a 32 × 32 block (2 × 2 matrix tiles) with
// subgroupMatrixMultiplyAccumulate. After the K loop the 64 × 64 logits tile is stored to
// workgroup memory, where the epilogue (2 threads per position, 32 entries each) applies the
// soft-cap, folds the online softmax and captures the target's logit; the two threads of a
// position merge at the end and write the split's (max, sumexp) partial for combine.wgsl. Numerics:
// the hidden state is rounded to f16 (the twin to compare with rounds H and W through f16).

enable f16;
enable chromium_experimental_subgroup_matrix;

// The uniforms, bindings 0–5, NEG, tanh_safe, cap4 and merge: logprob/common.wgsl, composed after
// this file (kernels/logprob.ts).

const SM = 16u;  // matrix tile: M = N = K = 16
const BM = 64u;  // positions per workgroup
const BN = 64u;  // vocabulary entries per tile
const BK = 32u;  // K step
// Threads: 4 subgroups of SG (the adapter's one subgroup size, e.g. 32), each 2 × 2 matrix tiles.
override SG: u32 = 32;
override WG: u32 = 4u * SG;

var<workgroup> Hs: array<f16, 2048>; // [BM][BK]
var<workgroup> Ws: array<f16, 2048>; // [BN][BK]: W's tile, i.e. the K × N right operand column-major
var<workgroup> Ls: array<f32, 4096>; // [BM][BN] logits of the tile
var<workgroup> red: array<vec2f, 128>; // epilogue merge: (m, s) per thread (2 per position)
var<workgroup> redt: array<f32, 128>;  // and t (merge's state in common.wgsl)

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3u,
        @builtin(num_workgroups) nwg: vec3u,
        @builtin(local_invocation_index) lid: u32,
        @builtin(subgroup_id) sid: u32) {
  let linear = wid.x + wid.y * nwg.x;
  let nRowTiles = (p.T + BM - 1u) / BM;
  if (linear >= nRowTiles * p.S) { return; }
  let row0 = (linear / p.S) * BM;
  let split = linear % p.S;
  let vBegin = split * p.chunk;
  let vEnd = min(p.V, vBegin + p.chunk);
  // This subgroup's 32 × 32 block: matrix-tile rows tr, tr + 1 and columns tc, tc + 1.
  let tr = (sid / 2u) * 2u;
  let tc = (sid % 2u) * 2u;
  // Epilogue ownership: position er, entries eh·32 … eh·32 + 31 of the tile (threads ≥ 128 idle).
  let er = lid / 2u;
  let eh = lid % 2u;
  let erow = row0 + er;
  var st = vec3f(NEG, 0.0, 0.0); // running (m, s, t)
  var want = 0xffffffffu;
  if (lid < 2u * BM && erow < p.T) { want = targets[erow]; }

  for (var vb = vBegin; vb < vEnd; vb += BN) {
    var c00 = subgroup_matrix_result<f32, SM, SM>();
    var c01 = subgroup_matrix_result<f32, SM, SM>();
    var c10 = subgroup_matrix_result<f32, SM, SM>();
    var c11 = subgroup_matrix_result<f32, SM, SM>();
    for (var k0 = 0u; k0 < p.d; k0 += BK) {
      for (var e = lid; e < BM * BK; e += WG) {
        let r = e / BK;
        let k = k0 + e % BK;
        var h = 0.0;
        if (row0 + r < p.T && k < p.d) { h = H[(row0 + r) * p.d + k]; }
        Hs[e] = f16(h);
        var w = 0.0;
        if (vb + r < vEnd && k < p.d) { w = f32(W[(vb + r) * p.d + k]); }
        Ws[e] = f16(w); // BN = BM: the same loop covers both tiles
      }
      workgroupBarrier();
      for (var kk = 0u; kk < BK; kk += SM) {
        let a0 = subgroupMatrixLoad<subgroup_matrix_left<f16, SM, SM>, row_major>(&Hs, tr * SM * BK + kk, BK);
        let a1 = subgroupMatrixLoad<subgroup_matrix_left<f16, SM, SM>, row_major>(&Hs, (tr + 1u) * SM * BK + kk, BK);
        let b0 = subgroupMatrixLoad<subgroup_matrix_right<f16, SM, SM>, col_major>(&Ws, tc * SM * BK + kk, BK);
        let b1 = subgroupMatrixLoad<subgroup_matrix_right<f16, SM, SM>, col_major>(&Ws, (tc + 1u) * SM * BK + kk, BK);
        c00 = subgroupMatrixMultiplyAccumulate(a0, b0, c00);
        c01 = subgroupMatrixMultiplyAccumulate(a0, b1, c01);
        c10 = subgroupMatrixMultiplyAccumulate(a1, b0, c10);
        c11 = subgroupMatrixMultiplyAccumulate(a1, b1, c11);
      }
      workgroupBarrier();
    }
    subgroupMatrixStore<row_major>(&Ls, tr * SM * BN + tc * SM, c00, BN);
    subgroupMatrixStore<row_major>(&Ls, tr * SM * BN + (tc + 1u) * SM, c01, BN);
    subgroupMatrixStore<row_major>(&Ls, (tr + 1u) * SM * BN + tc * SM, c10, BN);
    subgroupMatrixStore<row_major>(&Ls, (tr + 1u) * SM * BN + (tc + 1u) * SM, c11, BN);
    workgroupBarrier();

    // Epilogue of this tile: soft-cap, online softmax, target capture.
    if (lid < 2u * BM) {
      for (var j = 0u; j < 32u; j++) {
        let c = eh * 32u + j;
        let v = vb + c;
        if (v < vEnd) {
          var x = Ls[er * BN + c];
          if (p.softcap > 0.0) { x = p.softcap * tanh_safe(x / p.softcap); }
          let m = max(st.x, x);
          let a = exp(st.x - m);
          let e = exp(x - m);
          st = vec3f(m, st.y * a + e, a * (st.z + (st.x - m) * st.y) + (x - m) * e);
          if (v == want) { tgt[erow] = x; }
        }
      }
    }
    workgroupBarrier(); // Ls is rewritten by the next tile
  }

  if (lid < 2u * BM) {
    red[lid] = st.xy;
    redt[lid] = st.z;
  }
  workgroupBarrier();
  if (lid < 2u * BM && eh == 0u && erow < p.T) {
    partial[erow * p.S + split] = vec4f(merge(vec3f(red[lid], redt[lid]), vec3f(red[lid + 1u], redt[lid + 1u])), 0.0);
  }
}
