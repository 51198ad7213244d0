// IEEE half-precision conversion for f16 weight storage (shader-f16 devices).

const f32 = new Float32Array(1);
const u32 = new Uint32Array(f32.buffer);

/** Round-to-nearest-even f32 -> f16 bits. */
export function f32ToF16Bits(x: number): number {
  f32[0] = x;
  const b = u32[0];
  const sign = (b >>> 16) & 0x8000;
  const exp = (b >>> 23) & 0xff;
  let mant = b & 0x7fffff;
  if (exp === 0xff) return sign | 0x7c00 | (mant ? 0x200 : 0); // inf / nan
  let e = exp - 127 + 15;
  if (e >= 0x1f) return sign | 0x7c00; // overflow -> inf
  if (e <= 0) {
    if (e < -10) return sign; // underflow -> 0
    mant |= 0x800000;
    const shift = 14 - e;
    const half = 1 << (shift - 1);
    let m = mant >>> shift;
    const rest = mant & ((1 << shift) - 1);
    if (rest > half || (rest === half && (m & 1))) m++;
    return sign | m;
  }
  let m = mant >>> 13;
  const rest = mant & 0x1fff;
  if (rest > 0x1000 || (rest === 0x1000 && (m & 1))) {
    m++;
    if (m === 0x400) { m = 0; e++; if (e >= 0x1f) return sign | 0x7c00; }
  }
  return sign | (e << 10) | m;
}

export function f16BitsToF32(h: number): number {
  const sign = h & 0x8000 ? -1 : 1;
  const e = (h >>> 10) & 0x1f;
  const m = h & 0x3ff;
  if (e === 0) return sign * m * 2 ** -24;
  if (e === 0x1f) return m ? NaN : sign * Infinity;
  return sign * (1 + m / 1024) * 2 ** (e - 15);
}

/** f32 array -> f16 bits, padded to an even count so the byte length is a multiple of 4. */
export function toF16(src: ArrayLike<number>): Uint16Array {
  const out = new Uint16Array(src.length + (src.length & 1));
  f32IntoF16Bits(src, out);
  return out;
}

/** The values f16 storage actually holds (for CPU references of f16 kernels). */
export function roundThroughF16(src: ArrayLike<number>): Float32Array {
  const out = new Float32Array(src.length);
  for (let i = 0; i < src.length; i++) out[i] = f16BitsToF32(f32ToF16Bits(src[i]));
  return out;
}

export function bf16ToF32(bits: Uint16Array): Float32Array {
  const out = new Float32Array(bits.length);
  bf16BitsIntoF32(bits, out);
  return out;
}

export function f16ToF32(bits: Uint16Array): Float32Array {
  const out = new Float32Array(bits.length);
  f16BitsIntoF32(bits, out);
  return out;
}

// ---- chunk converters for streamed weight uploads (src/formats/safetensors.ts TensorRef.chunks) ----

let bf16ToF16Lut: Uint16Array | null = null;

/**
 * bf16 bits → f16 bits (round to nearest even), through a 64 Ki-entry table built once with
 * f32ToF16Bits: the same bits as toF16(bf16ToF32(x)), without the f32 array.
 */
export function bf16BitsToF16Bits(src: Uint16Array, dst: Uint16Array): void {
  let lut = bf16ToF16Lut;
  if (!lut) {
    lut = new Uint16Array(65536);
    const f = new Float32Array(1), u = new Uint32Array(f.buffer);
    for (let b = 0; b < 65536; b++) { u[0] = b << 16; lut[b] = f32ToF16Bits(f[0]); }
    bf16ToF16Lut = lut;
  }
  const n = src.length;
  if (n % 2 === 0 && src.byteOffset % 4 === 0 && dst.byteOffset % 4 === 0) {
    // two values a 32-bit word (little-endian: the low half is the first)
    const s32 = new Uint32Array(src.buffer, src.byteOffset, n / 2), d32 = new Uint32Array(dst.buffer, dst.byteOffset, n / 2);
    for (let i = 0; i < s32.length; i++) { const w = s32[i]; d32[i] = lut[w & 0xffff] | (lut[w >>> 16] << 16); }
    return;
  }
  for (let i = 0; i < n; i++) dst[i] = lut[src[i]];
}

/** bf16 bits → f32 into dst (exact: bf16 is the top half of an f32). */
export function bf16BitsIntoF32(src: Uint16Array, dst: Float32Array): void {
  const n = src.length;
  const u = new Uint32Array(dst.buffer, dst.byteOffset, n);
  if (n % 2 === 0 && src.byteOffset % 4 === 0) {
    const s32 = new Uint32Array(src.buffer, src.byteOffset, n / 2);
    for (let i = 0; i < s32.length; i++) { const w = s32[i]; u[2 * i] = w << 16; u[2 * i + 1] = w & 0xffff0000; }
    return;
  }
  for (let i = 0; i < n; i++) u[i] = src[i] << 16;
}

let f16ToF32Lut: Float32Array | null = null;

/** f16 bits → f32 into dst (exact), through a 64 Ki-entry table. */
export function f16BitsIntoF32(src: Uint16Array, dst: Float32Array): void {
  let lut = f16ToF32Lut;
  if (!lut) {
    lut = new Float32Array(65536);
    for (let h = 0; h < 65536; h++) lut[h] = f16BitsToF32(h);
    f16ToF32Lut = lut;
  }
  for (let i = 0; i < src.length; i++) dst[i] = lut[src[i]];
}

/** f32 → f16 bits into dst (round to nearest even); dst may be longer (toF16 pads to an even count). */
export function f32IntoF16Bits(src: ArrayLike<number>, dst: Uint16Array): void {
  for (let i = 0; i < src.length; i++) dst[i] = f32ToF16Bits(src[i]);
}
