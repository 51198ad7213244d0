// logprob/partial's W tile from GGUF blocks (W [V, d] read as u32 words, WeightT = u32; formats in
// common/quant; d a multiple of the block): the tile's DT = 32 columns at k0 are group k0 / 32 of
// each vocabulary row; thread lid dequantizes 8-element quarters of the rows' groups.

//#include common/quant

fn qword(i: u32) -> u32 {
  return u32(W[i]);
}

fn load_w_tile(vb: u32, vEnd: u32, k0: u32, lid: u32) {
  for (var e = lid; e < WG * 4u; e += WG) {
    let row = e / 4u;
    let l0 = 8u * (e % 4u);
    if (vb + row < vEnd) {
      let qg = q_group(vb + row, k0 / 32u, p.d);
      for (var h = 0u; h < 8u; h += 4u) {
        let w = q_elem4(qg, l0 + h);
        for (var j = 0u; j < 4u; j++) { Ws[row * (DT + 1u) + l0 + h + j] = w[j]; }
      }
    } else {
      for (var j = 0u; j < 8u; j++) { Ws[row * (DT + 1u) + l0 + j] = 0.0; }
    }
  }
}
