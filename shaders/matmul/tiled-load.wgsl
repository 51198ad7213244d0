// matmul/tiled's B tile from f32/f16 weights: Bs[k][n] = B at (k0 + k, column col0 + n), four
// elements per thread (GLU: tile columns [0, TN/2) from gate rows, [TN/2, TN) from up rows).

override TRANS_B: bool = false;

fn load_b_tile(k0: u32, col0: u32, li: u32) {
  for (var i = 0u; i < 4u; i++) {
    let e = li + i * 256u;
    var n: u32;
    var k: u32;
    if (TRANS_B) { n = e / TK; k = e % TK; } else { k = e / TN; n = e % TN; }
    let rc = tile_col(col0, n);
    let gk = k0 + k;
    var v = 0.0;
    if (rc.y < p.N && gk < p.K) {
      if (TRANS_B) { v = f32(B[rc.x * p.K + gk]); } else { v = f32(B[gk * p.N + rc.y]); }
    }
    Bs[k * TN + n] = v;
  }
}
