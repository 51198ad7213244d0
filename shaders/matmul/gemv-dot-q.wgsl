// The K loop of matmul/gemv over GGUF blocks kept as the file's bytes (B read as u32 words,
// WeightT = u32; formats in common/quant): lane x takes the 32-element groups x, x + KL, … of
// weight row `row`, dequantizes each four elements at a time (q_elem4: one or two u32 reads) in
// registers and accumulates them into the MR rows at offsets ao.

//#include common/quant

fn qword(i: u32) -> u32 {
  return u32(B[i]);
}

fn gemv_dot(row: u32, o: u32, x: u32, ao: ptr<function, array<u32, MR>>, acc: ptr<function, array<f32, MR>>) {
  let ng = p.K / 32u;
  for (var g = x; g < ng; g += KL) {
    let qg = q_group(row, g, p.K);
    for (var l = 0u; l < 32u; l += 4u) {
      let w = q_elem4(qg, l);
      let k = g * 32u + l;
      for (var r = 0u; r < MR; r++) {
        let a = (*ao)[r] + k;
        (*acc)[r] = fma(A[a + 3u], w.w, fma(A[a + 2u], w.z, fma(A[a + 1u], w.y, fma(A[a], w.x, (*acc)[r]))));
      }
    }
  }
}
