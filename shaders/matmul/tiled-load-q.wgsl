// matmul/tiled's B tile from GGUF blocks ('nk', B read as u32 words, WeightT = u32; formats in
// common/quant): the TK = 16 columns of k0 lie in one 32-element group (K is a multiple of 32), so
// thread li dequantizes elements 4(li % 4) … +3 (one q_elem4) of the group of tile column li / 4, its scales
// gathered once.

//#include common/quant

fn qword(i: u32) -> u32 {
  return u32(B[i]);
}

fn load_b_tile(k0: u32, col0: u32, li: u32) {
  let n = li / 4u;
  let k = 4u * (li % 4u);
  let rc = tile_col(col0, n);
  if (rc.y < p.N) {
    let qg = q_group(rc.x, k0 / 32u, p.K);
    let l = k0 % 32u + k;
    let w = q_elem4(qg, l);
    for (var j = 0u; j < 4u; j++) { Bs[(k + j) * TN + n] = w[j]; }
  } else {
    for (var j = 0u; j < 4u; j++) { Bs[(k + j) * TN + n] = 0.0; }
  }
}
