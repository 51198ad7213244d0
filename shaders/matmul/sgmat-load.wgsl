// matmul/subgroup-matrix's B tile from f16 weights: Bs[n·TK + k] = B[row(n), k0 + k], zero outside.

fn load_b_tile(k0: u32, ocol0: u32, li: u32, NT: u32) {
  for (var i = li; i < TN * TK; i += NT) {
    let rc = sgmat_col(ocol0, i / TK);
    let gk = k0 + i % TK;
    var v = f16(0.0);
    if (rc.y < p.N && gk < p.K) { v = f16(B[rc.x * p.K + gk]); }
    Bs[i] = v;
  }
}
