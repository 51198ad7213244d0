// GGUF Q4_0 / Q8_0 blocks → onnxruntime's com.microsoft MatMulNBits weights (src/formats/matmulnbits.ts
// describes the layout), exactly: the same values come out of both dequantizations.
//
//   Q4_0 (block 32: f16 d; u8 qs[16], element j in the low nibble of qs[j], j+16 in the high one;
//        w = (q − 8)·d)  →  bits 4, block_size 32, B [N, K/32, 16] with element k in nibble k&1 of
//        byte k>>1 (low first), scales f32 d, zero point absent (the default 2^(4−1) = 8).
//   Q8_0 (block 32: f16 d; i8 qs[32]; w = q·d)  →  bits 8, block_size 32, B [N, K/32, 32] = q + 128
//        as uint8, scales f32 d, zero point absent (the default 2^(8−1) = 128).
//
// (q − zp)·d is one f32 product of an exact integer and the f16 scale widened exactly, as ggml's
// x·d, so the dequantized values agree bit for bit (tests/quant-matmulnbits.test.ts).

import type { MatMulNBitsParams } from '../formats/matmulnbits.js';
import { halfToF32 } from './dequant.js';
import { GGML_TYPE } from './types.js';

/** Whether GGUF type `t` maps onto MatMulNBits exactly (rows of K elements, K a multiple of 32). */
export function mapsToMatMulNBits(t: number, K: number): boolean {
  return (t === GGML_TYPE.Q4_0 || t === GGML_TYPE.Q8_0) && K % 32 === 0;
}

/** The MatMulNBits weights of a canonical [N, K] weight stored as GGUF Q4_0 or Q8_0 blocks `raw`. */
export function ggufToMatMulNBits(t: number, raw: Uint8Array, N: number, K: number): MatMulNBitsParams {
  if (!mapsToMatMulNBits(t, K)) throw new Error(`MatMulNBits: GGUF type ${t} with K=${K} does not map exactly (Q4_0/Q8_0, K a multiple of 32)`);
  const nb = (N * K) / 32;
  const q4 = t === GGML_TYPE.Q4_0;
  const inBlock = q4 ? 18 : 34, blob = q4 ? 16 : 32;
  if (raw.length !== nb * inBlock) throw new Error(`MatMulNBits: ${raw.length} bytes of ${q4 ? 'Q4_0' : 'Q8_0'} for [${N}, ${K}], expected ${nb * inBlock}`);
  const B = new Uint8Array(nb * blob), scales = new Float32Array(nb);
  for (let i = 0; i < nb; i++) {
    const o = i * inBlock, ob = i * blob;
    scales[i] = halfToF32(raw[o] | (raw[o + 1] << 8));
    if (q4) {
      for (let k = 0; k < 32; k += 2) {
        const lo = k < 16 ? raw[o + 2 + k] & 15 : raw[o + 2 + k - 16] >> 4;
        const hi = k + 1 < 16 ? raw[o + 3 + k] & 15 : raw[o + 3 + k - 16] >> 4;
        B[ob + (k >> 1)] = lo | (hi << 4);
      }
    } else {
      for (let k = 0; k < 32; k++) B[ob + k] = (raw[o + 2 + k] + 128) & 255; // int8 → uint8 with zero point 128
    }
  }
  return { K, N, bits: q4 ? 4 : 8, blockSize: 32, B, scales, zeroPoints: null };
}
