// CPU twins of ggml's dequantize_row_* (ggml-quants.c): GGUF tensor bytes → f32, value for value
// what ggml computes in float (each product and difference rounded to f32, no fused multiply-add).
// Block layouts: src/quant/types.ts. Checked against a float64 reference written from the format
// description in tests/quant.test.ts.

import { f16BitsToF32 } from '../util/f16.js';
import { GGML_TYPE, type GgmlType, TYPE_LAYOUT, ggmlTypeName, isReadableType } from './types.js';

const fr = Math.fround;

let lut: Float32Array | null = null;
/** f16 bits → f32 (exact), through a table. */
export function halfToF32(h: number): number {
  if (!lut) {
    lut = new Float32Array(65536);
    for (let i = 0; i < 65536; i++) lut[i] = f16BitsToF32(i);
  }
  return lut[h];
}

const half = (b: Uint8Array, o: number): number => halfToF32(b[o] | (b[o + 1] << 8));

/** K-quant 6-bit scale and min j of the 12-byte packed array at b[o..] (ggml-quants.c get_scale_min_k4). */
export function scaleMinK4(j: number, b: Uint8Array, o: number): [number, number] {
  if (j < 4) return [b[o + j] & 63, b[o + j + 4] & 63];
  return [(b[o + j + 4] & 0xf) | ((b[o + j - 4] >> 6) << 4), (b[o + j + 4] >> 4) | ((b[o + j] >> 6) << 4)];
}

function q8_0(b: Uint8Array, nb: number, y: Float32Array): void {
  for (let i = 0; i < nb; i++) {
    const o = i * 34, d = half(b, o);
    for (let j = 0; j < 32; j++) y[i * 32 + j] = ((b[o + 2 + j] << 24) >> 24) * d;
  }
}

function q4_0(b: Uint8Array, nb: number, y: Float32Array): void {
  for (let i = 0; i < nb; i++) {
    const o = i * 18, d = half(b, o);
    for (let j = 0; j < 16; j++) {
      const q = b[o + 2 + j];
      y[i * 32 + j] = ((q & 0xf) - 8) * d;
      y[i * 32 + j + 16] = ((q >> 4) - 8) * d;
    }
  }
}

function q4_1(b: Uint8Array, nb: number, y: Float32Array): void {
  for (let i = 0; i < nb; i++) {
    const o = i * 20, d = half(b, o), m = half(b, o + 2);
    for (let j = 0; j < 16; j++) {
      const q = b[o + 4 + j];
      y[i * 32 + j] = fr(fr((q & 0xf) * d) + m);
      y[i * 32 + j + 16] = fr(fr((q >> 4) * d) + m);
    }
  }
}

/** Q5_0 (hasMin false, 22-byte blocks) and Q5_1 (hasMin true, 24-byte blocks). */
function q5(b: Uint8Array, nb: number, y: Float32Array, hasMin: boolean): void {
  const bs = hasMin ? 24 : 22, qo = hasMin ? 8 : 6;
  for (let i = 0; i < nb; i++) {
    const o = i * bs, d = half(b, o), m = hasMin ? half(b, o + 2) : 0;
    const ho = o + (hasMin ? 4 : 2);
    const qh = (b[ho] | (b[ho + 1] << 8) | (b[ho + 2] << 16) | (b[ho + 3] << 24)) >>> 0;
    for (let j = 0; j < 16; j++) {
      const q = b[o + qo + j];
      const x0 = (q & 0xf) | (((qh >>> j) << 4) & 0x10);
      const x1 = (q >> 4) | ((qh >>> (j + 12)) & 0x10);
      if (hasMin) {
        y[i * 32 + j] = fr(fr(x0 * d) + m);
        y[i * 32 + j + 16] = fr(fr(x1 * d) + m);
      } else {
        y[i * 32 + j] = (x0 - 16) * d;
        y[i * 32 + j + 16] = (x1 - 16) * d;
      }
    }
  }
}

function q4_K(b: Uint8Array, nb: number, y: Float32Array): void {
  let p = 0;
  for (let i = 0; i < nb; i++) {
    const o = i * 144, d = half(b, o), min = half(b, o + 2), so = o + 4;
    let q = o + 16;
    for (let j = 0, is = 0; j < 256; j += 64, is += 2, q += 32) {
      const [sc1, m1i] = scaleMinK4(is, b, so), [sc2, m2i] = scaleMinK4(is + 1, b, so);
      const d1 = fr(d * sc1), m1 = fr(min * m1i), d2 = fr(d * sc2), m2 = fr(min * m2i);
      for (let l = 0; l < 32; l++) y[p++] = fr(fr(d1 * (b[q + l] & 0xf)) - m1);
      for (let l = 0; l < 32; l++) y[p++] = fr(fr(d2 * (b[q + l] >> 4)) - m2);
    }
  }
}

function q5_K(b: Uint8Array, nb: number, y: Float32Array): void {
  let p = 0;
  for (let i = 0; i < nb; i++) {
    const o = i * 176, d = half(b, o), min = half(b, o + 2), so = o + 4, qh = o + 16;
    let ql = o + 48, u1 = 1, u2 = 2;
    for (let j = 0, is = 0; j < 256; j += 64, is += 2, ql += 32, u1 <<= 2, u2 <<= 2) {
      const [sc1, m1i] = scaleMinK4(is, b, so), [sc2, m2i] = scaleMinK4(is + 1, b, so);
      const d1 = fr(d * sc1), m1 = fr(min * m1i), d2 = fr(d * sc2), m2 = fr(min * m2i);
      for (let l = 0; l < 32; l++) y[p++] = fr(fr(d1 * ((b[ql + l] & 0xf) + (b[qh + l] & u1 ? 16 : 0))) - m1);
      for (let l = 0; l < 32; l++) y[p++] = fr(fr(d2 * ((b[ql + l] >> 4) + (b[qh + l] & u2 ? 16 : 0))) - m2);
    }
  }
}

function q6_K(b: Uint8Array, nb: number, y: Float32Array): void {
  for (let i = 0; i < nb; i++) {
    const o = i * 210, d = half(b, o + 208);
    let ql = o, qh = o + 128, sc = o + 192, p = i * 256;
    for (let n = 0; n < 256; n += 128, ql += 64, qh += 32, sc += 8, p += 128) {
      for (let l = 0; l < 32; l++) {
        const is = l >> 4, h = b[qh + l];
        const q1 = ((b[ql + l] & 0xf) | ((h & 3) << 4)) - 32;
        const q2 = ((b[ql + l + 32] & 0xf) | (((h >> 2) & 3) << 4)) - 32;
        const q3 = ((b[ql + l] >> 4) | (((h >> 4) & 3) << 4)) - 32;
        const q4 = ((b[ql + l + 32] >> 4) | (((h >> 6) & 3) << 4)) - 32;
        const s = (k: number): number => fr(d * ((b[sc + is + k] << 24) >> 24));
        y[p + l] = fr(s(0) * q1);
        y[p + l + 32] = fr(s(2) * q2);
        y[p + l + 64] = fr(s(4) * q3);
        y[p + l + 96] = fr(s(6) * q4);
      }
    }
  }
}

/**
 * n elements of type `type` from `bytes` (exactly the tensor's bytes) into a new f32 array (or `out`).
 * Throws for a type concord cannot read, or a byte count that does not match.
 */
export function dequantize(type: number, bytes: Uint8Array, n: number, out?: Float32Array): Float32Array {
  if (!isReadableType(type)) throw new Error(`tensor type ${ggmlTypeName(type)} is not supported`);
  const { blockElems, blockBytes } = TYPE_LAYOUT[type as GgmlType];
  if (n % blockElems !== 0) throw new Error(`${ggmlTypeName(type)}: ${n} elements is not a multiple of the block size ${blockElems}`);
  const nb = n / blockElems;
  if (bytes.length !== nb * blockBytes) throw new Error(`${ggmlTypeName(type)}: ${n} elements take ${nb * blockBytes} bytes, got ${bytes.length}`);
  const y = out ?? new Float32Array(n);
  switch (type) {
    case GGML_TYPE.F32: {
      const copy = bytes.byteOffset % 4 === 0 ? new Float32Array(bytes.buffer, bytes.byteOffset, n) : new Float32Array(bytes.slice().buffer);
      y.set(copy);
      break;
    }
    case GGML_TYPE.F16:
      for (let i = 0; i < n; i++) y[i] = half(bytes, 2 * i);
      break;
    case GGML_TYPE.BF16: {
      const u = new Uint32Array(y.buffer, y.byteOffset, n);
      for (let i = 0; i < n; i++) u[i] = ((bytes[2 * i] | (bytes[2 * i + 1] << 8)) << 16) >>> 0;
      break;
    }
    case GGML_TYPE.Q8_0: q8_0(bytes, nb, y); break;
    case GGML_TYPE.Q4_0: q4_0(bytes, nb, y); break;
    case GGML_TYPE.Q4_1: q4_1(bytes, nb, y); break;
    case GGML_TYPE.Q5_0: q5(bytes, nb, y, false); break;
    case GGML_TYPE.Q5_1: q5(bytes, nb, y, true); break;
    case GGML_TYPE.Q4_K: q4_K(bytes, nb, y); break;
    case GGML_TYPE.Q5_K: q5_K(bytes, nb, y); break;
    case GGML_TYPE.Q6_K: q6_K(bytes, nb, y); break;
  }
  return y;
}
