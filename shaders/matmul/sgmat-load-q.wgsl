// matmul/subgroup-matrix's B tile from GGUF blocks (B read as u32 words, WeightT = u32; formats in
// common/quant): the TK = 32 columns at k0 are group k0 / 32 of each weight row; each thread
// dequantizes 8-element quarters and rounds them to f16 for the matrix units (a weight beyond
// f16's range becomes ±inf there, as in any f16-operand form).

//#include common/quant

fn qword(i: u32) -> u32 {
  return u32(B[i]);
}

fn load_b_tile(k0: u32, ocol0: u32, li: u32, NT: u32) {
  for (var e = li; e < TN * 4u; e += NT) {
    let n = e / 4u;
    let l0 = 8u * (e % 4u);
    let rc = sgmat_col(ocol0, n);
    if (rc.y < p.N) {
      let qg = q_group(rc.x, k0 / 32u, p.K);
      for (var h = 0u; h < 8u; h += 4u) {
        let w = vec4<f16>(q_elem4(qg, l0 + h));
        for (var j = 0u; j < 4u; j++) { Bs[n * TK + l0 + h + j] = w[j]; }
      }
    } else {
      for (var j = 0u; j < 8u; j++) { Bs[n * TK + l0 + j] = f16(0.0); }
    }
  }
}
