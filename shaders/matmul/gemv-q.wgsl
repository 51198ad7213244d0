// Few-rows matmul over GGUF-quantized weights kept as their blocks in GPU memory (the file's
// bytes, read as u32 words): C[M,N] = A[M,K] · Wᵀ (+ bias) (+ C), W [N, K] ('nk') stored as
// Q8_0 (34-byte blocks: f16 d, i8 q[32]; w = q·d) or Q4_0 (18-byte blocks: f16 d, u8 qs[16],
// element j in the low nibble of qs[j], j + 16 in the high one; w = (q − 8)·d). Each weight is
// dequantized in registers to the same f32 as ggml's dequantize_row_* (one f32 product), then
// accumulated as in matmul/gemv: lane x of KL takes blocks x, x + KL, … of its column for MR rows
// at a time; the KL partial sums are tree-reduced in workgroup memory (deterministic).
// GLU (as matmul/gemv): W = [gate; up] (2N rows, back to back); columns [0, NC/2) of a workgroup
// read gate rows, [NC/2, NC) the matching up rows; C = act(gate + bg) · (up + bu).

struct Params { M: u32, N: u32, K: u32, has_bias: u32, accumulate: u32 }

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> A: array<f32>;
@group(0) @binding(2) var<storage, read> B: array<u32>;
@group(0) @binding(3) var<storage, read> bias: array<f32>;
@group(0) @binding(4) var<storage, read_write> C: array<f32>;

// 8: Q8_0, 2: Q4_0 (ggml type ids).
override QTYPE: u32 = 8u;
// 0: plain; 1: SwiGLU (silu); 2: GeGLU (tanh GELU) — act() from matmul/glu.
override GLU: u32 = 0u;
override KL: u32 = 32u;
override NC: u32 = 4u;
override RED_SIZE: u32 = MR * KL * NC;

const MR = 8u;

var<workgroup> red: array<f32, RED_SIZE>; // [NC][MR][KL]

fn byte_at(i: u32) -> u32 {
  return (B[i >> 2u] >> ((i & 3u) * 8u)) & 0xffu;
}

fn block_bytes() -> u32 {
  return select(18u, 34u, QTYPE == 8u);
}

/** Weight j of the block starting at byte `base`, scale d applied. */
fn weight(base: u32, j: u32, d: f32) -> f32 {
  if (QTYPE == 8u) {
    let q = (i32(byte_at(base + 2u + j)) << 24u) >> 24u;
    return f32(q) * d;
  }
  let b = byte_at(base + 2u + (j & 15u));
  let q = select(b & 15u, b >> 4u, j >= 16u);
  return f32(i32(q) - 8) * d;
}

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
  let nb = p.K / 32u;
  let bs = block_bytes();
  for (var m0 = 0u; m0 < p.M; m0 += MR) {
    var acc: array<f32, MR>;
    for (var r = 0u; r < MR; r++) { acc[r] = 0.0; }
    if (ok) {
      var ao: array<u32, MR>;
      for (var r = 0u; r < MR; r++) { ao[r] = min(m0 + r, p.M - 1u) * p.K; }
      for (var blk = x; blk < nb; blk += KL) {
        let base = (row * nb + blk) * bs;
        let d = unpack2x16float(byte_at(base) | (byte_at(base + 1u) << 8u)).x;
        for (var j = 0u; j < 32u; j++) {
          let w = weight(base, j, d);
          let k = blk * 32u + j;
          for (var r = 0u; r < MR; r++) { acc[r] = fma(A[ao[r] + k], w, acc[r]); }
        }
      }
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
    workgroupBarrier();
  }
}
