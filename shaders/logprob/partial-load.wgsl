// logprob/partial's W tile from f32/f16 values: Ws[row][k] = W[vb + row, k0 + k], zero outside.

fn load_w_tile(vb: u32, vEnd: u32, k0: u32, lid: u32) {
  for (var e = lid; e < WG * DT; e += WG) {
    let row = e / DT;
    let k = e % DT;
    var w = 0.0;
    if (vb + row < vEnd && k0 + k < p.d) { w = f32(W[(vb + row) * p.d + k0 + k]); }
    Ws[row * (DT + 1u) + k] = w;
  }
}
