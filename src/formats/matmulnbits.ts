// Dequantising ONNX Runtime's com.microsoft MatMulNBits weights (the 4-bit block quantisation that
// onnxruntime-genai's model builder and `matmul_4bits_quantizer` write) into f32 [N, K] = [out, in].
//
//   Y[.., N] = A[.., K] · Wᵀ,   W[n, k] = (q[n, k] − zp[n, blk]) · scale[n, blk]
//   blk = g_idx ? g_idx[k] : ⌊k / block_size⌋
//
// Storage (bits = 4): B is uint8 [N, n_blocks, blob_size], blob_size = block_size · bits / 8, with
// two 4-bit values per byte, the LOW nibble first (k even → low, k odd → high); the last block of a
// row is zero-padded when K is not a multiple of block_size. scales: [N · n_blocks] (float/f16).
// zero_points, optional: either uint8 packed like B, [N, ⌈n_blocks · bits / 8⌉] (a row's last byte
// padded), or the scales' float type [N · n_blocks]; absent → 2^(bits−1) = 8. g_idx, optional:
// int32 [K], the scale block of each k (act-order / GPTQ). Checked against onnxruntime-node in
// tests/embed.test.ts.

export interface MatMulNBitsParams {
  K: number;
  N: number;
  bits: number;
  blockSize: number;
  /** uint8 [N, nBlocks, blobSize] */
  B: Uint8Array;
  /** [N * nBlocks] */
  scales: Float32Array;
  /** packed uint8 (bits per value) or float per block; null: the default 2^(bits-1) */
  zeroPoints?: Uint8Array | Float32Array | null;
  /** int32 [K] */
  gIdx?: ArrayLike<number> | null;
}

export function dequantMatMulNBits(p: MatMulNBitsParams, what = 'MatMulNBits'): Float32Array {
  const { K, N, bits, blockSize } = p;
  if (bits !== 4 && bits !== 2 && bits !== 8) throw new Error(`${what}: bits=${bits} not supported (2, 4 or 8)`);
  if (blockSize < 16 || (blockSize & (blockSize - 1))) throw new Error(`${what}: block_size=${blockSize} must be a power of two >= 16`);
  const nBlocks = Math.ceil(K / blockSize);
  const blobSize = (blockSize * bits) / 8;
  if (p.B.length !== N * nBlocks * blobSize) throw new Error(`${what}: B has ${p.B.length} bytes, expected N·n_blocks·blob_size = ${N}·${nBlocks}·${blobSize}`);
  if (p.scales.length !== N * nBlocks) throw new Error(`${what}: ${p.scales.length} scales, expected N·n_blocks = ${N * nBlocks}`);
  if (p.gIdx && p.gIdx.length !== K) throw new Error(`${what}: g_idx has ${p.gIdx.length} entries, expected K = ${K}`);
  const perByte = 8 / bits;
  const mask = (1 << bits) - 1;
  const zpDefault = 1 << (bits - 1);
  const zp = p.zeroPoints ?? null;
  const zpRowBytes = Math.ceil((nBlocks * bits) / 8);
  if (zp instanceof Uint8Array && zp.length !== N * zpRowBytes) throw new Error(`${what}: packed zero_points has ${zp.length} bytes, expected ${N * zpRowBytes}`);
  if (zp instanceof Float32Array && zp.length !== N * nBlocks) throw new Error(`${what}: float zero_points has ${zp.length} values, expected ${N * nBlocks}`);

  const zeroPoint = (n: number, blk: number): number => {
    if (!zp) return zpDefault;
    if (zp instanceof Float32Array) return zp[n * nBlocks + blk];
    const byte = zp[n * zpRowBytes + Math.floor(blk / perByte)];
    return (byte >> ((blk % perByte) * bits)) & mask;
  };

  const W = new Float32Array(N * K);
  for (let n = 0; n < N; n++) {
    const rowB = n * nBlocks * blobSize;
    for (let k = 0; k < K; k++) {
      const blk = p.gIdx ? p.gIdx[k] : Math.floor(k / blockSize);
      if (blk < 0 || blk >= nBlocks) throw new Error(`${what}: g_idx[${k}] = ${blk} is outside [0, ${nBlocks})`);
      // Values are packed in k order within each row's blocks; g_idx only redirects scale / zero point.
      const kb = Math.floor(k / blockSize), kin = k % blockSize;
      const byte = p.B[rowB + kb * blobSize + Math.floor(kin / perByte)];
      const q = (byte >> ((kin % perByte) * bits)) & mask;
      W[n * K + k] = (q - zeroPoint(n, blk)) * p.scales[n * nBlocks + blk];
    }
  }
  return W;
}
