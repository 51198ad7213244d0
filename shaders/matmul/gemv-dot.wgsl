// The K loop of matmul/gemv over f32/f16 weights (WeightT): lane x sums k = x, x + KL, … of
// column o (weight row `row`, 'nk'; or column o of 'kn') for the MR rows at offsets ao.

override TRANS_B: bool = true;

fn gemv_dot(row: u32, o: u32, x: u32, ao: ptr<function, array<u32, MR>>, acc: ptr<function, array<f32, MR>>) {
  for (var k = x; k < p.K; k += KL) {
    var b: f32;
    if (TRANS_B) { b = f32(B[row * p.K + k]); } else { b = f32(B[k * p.N + o]); }
    for (var r = 0u; r < MR; r++) { (*acc)[r] = fma(A[(*ao)[r] + k], b, (*acc)[r]); }
  }
}
