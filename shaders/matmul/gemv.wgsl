// Few-rows matmul (M up to a few dozen: short batches, one sequence's decode-like prefill):
// C[M,N] = A[M,K] · B (+ bias) (+ C when accumulating), or the GLU epilogue (as matmul/tiled).
//
// A 2-D tile over (rows, columns) leaves most of a big GPU idle when M is small: a 64-row tile
// with M = 8 gives N/64 workgroups. Here each workgroup owns NC (virtual) columns of B for all M
// rows and splits K over KL lanes: lane x sums k = x, x + KL, … for MR rows at a time (so B,
// the big operand, is read once per MR rows, coalesced along k in 'nk'), then the KL partial sums
// are reduced in workgroup memory by a fixed tree (deterministic; each partial has K/KL terms in
// f32, the tree adds log2(KL) levels). N / NC workgroups: N = 896 gives 224, N = 4864 gives 1216.
// 'kn' is correct but strided (lanes walk k, B rows are N apart): only 'nk' is fast.
// GLU (nk only): columns [0, NC/2) read gate rows, [NC/2, NC) the matching up rows.
// The K loop (lane x's partial sums of MR rows for one column) is gemv_dot, composed after this
// file (kernels/matmul.ts, kernels/matmul-quant.ts): matmul/gemv-dot reads f32/f16 weights
// ('nk' or 'kn'), matmul/gemv-dot-q reads GGUF blocks (WeightT compiled as u32). The K-split
// reduction and the epilogues below are the same for both.

alias WeightT = f32;

struct Params { M: u32, N: u32, K: u32, has_bias: u32, accumulate: u32 }

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> A: array<f32>;
@group(0) @binding(2) var<storage, read> B: array<WeightT>;
@group(0) @binding(3) var<storage, read> bias: array<f32>;
@group(0) @binding(4) var<storage, read_write> C: array<f32>;

// 0: plain; 1: SwiGLU (silu); 2: GeGLU (tanh GELU).
override GLU: u32 = 0u;
// Lanes along K (a power of two) and columns per workgroup.
override KL: u32 = 64u;
override NC: u32 = 4u;
override RED_SIZE: u32 = MR * KL * NC;

const MR = 8u;

var<workgroup> red: array<f32, RED_SIZE>; // [NC][MR][KL]

@compute @workgroup_size(KL, NC)
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u,
        @builtin(local_invocation_id) lid: vec3u) {
  let half = select(NC, NC / 2u, GLU != 0u); // outputs per workgroup
  let ocol0 = (wid.x + wid.y * nwg.x) * half;
  let v = lid.y;
  var o = ocol0 + v;
  var row = o;
  if (GLU != 0u) {
    o = ocol0 + v % half;
    row = select(o, p.N + o, v >= half);
  }
  let ok = o < p.N;
  let x = lid.x;
  for (var m0 = 0u; m0 < p.M; m0 += MR) {
    var acc: array<f32, MR>;
    for (var r = 0u; r < MR; r++) { acc[r] = 0.0; }
    if (ok) {
      // Rows past M are clamped to M - 1 (computed, never stored): no branch in the loop.
      var ao: array<u32, MR>;
      for (var r = 0u; r < MR; r++) { ao[r] = min(m0 + r, p.M - 1u) * p.K; }
      gemv_dot(row, o, x, &ao, &acc);
    }
    for (var r = 0u; r < MR; r++) { red[(v * MR + r) * KL + x] = acc[r]; }
    workgroupBarrier();
    for (var s = KL / 2u; s > 0u; s >>= 1u) {
      if (x < s) {
        for (var r = 0u; r < MR; r++) {
          let i = (v * MR + r) * KL + x;
          red[i] += red[i + s];
        }
      }
      workgroupBarrier();
    }
    // Lane r < MR stores row m0 + r of column v.
    let gm = m0 + x;
    if (x < MR && gm < p.M && ok) {
      let s0 = red[(v * MR + x) * KL];
      if (GLU != 0u) {
        if (v < half) {
          var g = s0;
          var u = red[((v + half) * MR + x) * KL];
          if (p.has_bias != 0u) { g += bias[o]; u += bias[p.N + o]; }
          var y = act(g) * u;
          if (p.accumulate != 0u) { y += C[gm * p.N + o]; }
          C[gm * p.N + o] = y;
        }
      } else {
        var y = s0;
        if (p.has_bias != 0u) { y += bias[o]; }
        if (p.accumulate != 0u) { y += C[gm * p.N + o]; }
        C[gm * p.N + o] = y;
      }
    }
    // red is rewritten by the next row block.
    workgroupBarrier();
  }
}
