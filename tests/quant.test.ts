// The ggml tensor-type twins (src/quant/) against a reference written here from the format
// description (GGUF docs / ggml-common.h block structs), element by element in float64: random
// blocks, with the block scales forced to the extremes of f16 (largest, smallest normal, smallest
// and largest subnormal, zero, negative zero, negative), must dequantize to the same f32 bits.
//
// Why float64 then one rounding gives ggml's f32 bits: every intermediate ggml forms is exact in
// f32 (an f16 scale has 11 significant bits, a 6/8-bit sub-scale and a ≤6-bit level add at most 14
// more, so d·sc fits 24 bits) except the last product or difference, which f32 rounds once — as
// Math.fround does to the exact float64 value.

import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { dequantize } from '../src/quant/dequant.js';
import { nearestInt, quantizeQ4_0, quantizeQ4_K, quantizeQ5_0, quantizeQ6_K, quantizeQ8_0, QUANTIZERS } from '../src/quant/quantize.js';
import { GGML_TYPE, TYPE_LAYOUT } from '../src/quant/types.js';
import { rng } from './helpers/gpu.js';

/** IEEE half → number, from the bit fields. */
function halfRef(h: number): number {
  const s = h >> 15 ? -1 : 1, e = (h >> 10) & 31, m = h & 1023;
  if (e === 0) return s * m * 2 ** -24;
  if (e === 31) return m ? NaN : s * Infinity;
  return s * (1024 + m) * 2 ** (e - 25);
}
const u16 = (b: Uint8Array, o: number): number => b[o] + 256 * b[o + 1];
const i8 = (v: number): number => (v > 127 ? v - 256 : v);
const bit = (b: Uint8Array, o: number, k: number): number => (b[o + (k >> 3)] >> (k & 7)) & 1;

/**
 * Element e of one block (bytes `b` from offset o), from the layout description:
 *   Q8_0  d:f16 | q:i8[32]                       x = d·q
 *   Q4_0  d:f16 | 16 bytes: element k<16 in the low nibble of byte k, k≥16 in the high nibble of byte k−16; x = d·(n − 8)
 *   Q4_1  d:f16 m:f16 | nibbles as Q4_0           x = d·n + m
 *   Q5_0  d:f16 | qh:u32 (bit k = 5th bit of element k) | nibbles as Q4_0; x = d·(n + 16·hbit − 16)
 *   Q5_1  d:f16 m:f16 | qh | nibbles              x = d·(n + 16·hbit) + m
 *   Q4_K  d:f16 dmin:f16 | 12 bytes of eight 6-bit (scale, min) pairs | 128 bytes: 64-element
 *         chunk c holds bytes 32c..32c+31, the first 32 elements in low nibbles, the next 32 in high;
 *         x = d·scale_g·n − dmin·min_g, g = e / 32
 *   Q5_K  as Q4_K, plus qh[32] after the scales: bit g of qh[e % 32] is the 5th bit of element e
 *   Q6_K  ql[128] | qh[64] | scales:i8[16] | d:f16. Element e: half h = e/128, r = e%128, quarter
 *         t = r/32, l = r%32; low 4 bits from ql[64h + l + 32·(t&1)] (low nibble for t<2, high for t≥2),
 *         high 2 bits from qh[32h + l] bits 2t..2t+1; x = d·scales[8h + 2t + l/16]·(q − 32)
 */
function refElement(type: number, b: Uint8Array, o: number, e: number): number {
  const nib = (qo: number, k: number): number => (k < 16 ? b[qo + k] & 15 : b[qo + k - 16] >> 4);
  switch (type) {
    case GGML_TYPE.Q8_0: return halfRef(u16(b, o)) * i8(b[o + 2 + e]);
    case GGML_TYPE.Q4_0: return halfRef(u16(b, o)) * (nib(o + 2, e) - 8);
    case GGML_TYPE.Q4_1: return halfRef(u16(b, o)) * nib(o + 4, e) + halfRef(u16(b, o + 2));
    case GGML_TYPE.Q5_0: return halfRef(u16(b, o)) * (nib(o + 6, e) + 16 * bit(b, o + 2, e) - 16);
    case GGML_TYPE.Q5_1: return halfRef(u16(b, o)) * (nib(o + 8, e) + 16 * bit(b, o + 4, e)) + halfRef(u16(b, o + 2));
    case GGML_TYPE.Q4_K: case GGML_TYPE.Q5_K: {
      const g = e >> 5, c = e >> 6, hi = (e >> 5) & 1, l = e & 31;
      const s = o + 4; // the 12 scale bytes
      // scales/mins 0..3: low 6 bits of bytes 0..3 / 4..7. 4..7: low 4 bits in bytes 8..11 (scale low
      // nibble, min high nibble), top 2 bits in the top 2 bits of bytes 0..3 (scales) / 4..7 (mins).
      const scale = g < 4 ? b[s + g] % 64 : (b[s + g + 4] % 16) + 16 * (b[s + g - 4] >> 6);
      const min = g < 4 ? b[s + g + 4] % 64 : (b[s + g + 4] >> 4) + 16 * (b[s + g] >> 6);
      const qs = o + (type === GGML_TYPE.Q4_K ? 16 : 48);
      const byte = b[qs + 32 * c + l];
      let n = hi ? byte >> 4 : byte & 15;
      if (type === GGML_TYPE.Q5_K) n += 16 * ((b[o + 16 + l] >> g) & 1);
      return halfRef(u16(b, o)) * scale * n - halfRef(u16(b, o + 2)) * min;
    }
    case GGML_TYPE.Q6_K: {
      const h = e >> 7, r = e & 127, t = r >> 5, l = r & 31;
      const lowByte = b[o + 64 * h + l + 32 * (t & 1)];
      const low = t < 2 ? lowByte & 15 : lowByte >> 4;
      const high = (b[o + 128 + 32 * h + l] >> (2 * t)) & 3;
      return halfRef(u16(b, o + 208)) * i8(b[o + 192 + 8 * h + 2 * t + (l >> 4)]) * (low + 16 * high - 32);
    }
  }
  throw new Error(`no reference for type ${type}`);
}

/** Byte offsets of each f16 scale field in a block (forced to the extremes). */
const SCALE_FIELDS: Record<number, number[]> = {
  [GGML_TYPE.Q8_0]: [0], [GGML_TYPE.Q4_0]: [0], [GGML_TYPE.Q4_1]: [0, 2], [GGML_TYPE.Q5_0]: [0], [GGML_TYPE.Q5_1]: [0, 2],
  [GGML_TYPE.Q4_K]: [0, 2], [GGML_TYPE.Q5_K]: [0, 2], [GGML_TYPE.Q6_K]: [208],
};
const EXTREME_HALVES = [0x7bff, 0xfbff, 0x0400, 0x0001, 0x8001, 0x03ff, 0x0000, 0x8000, 0x3c00, 0xbc00];

const same = (a: number, b: number): boolean => Object.is(a, b) || (Number.isNaN(a) && Number.isNaN(b));

describe('ggml block types: twin vs the float64 reference', () => {
  for (const [name, type] of Object.entries(SCALE_FIELDS).map(([t]) => [Object.keys(GGML_TYPE).find((k) => GGML_TYPE[k as keyof typeof GGML_TYPE] === Number(t))!, Number(t)] as const)) {
    it(`${name}: random blocks with extreme scales dequantize bit for bit`, () => {
      const { blockElems: E, blockBytes: B } = TYPE_LAYOUT[type as keyof typeof TYPE_LAYOUT];
      const r = rng(1000 + type);
      const nBlocks = 200;
      const bytes = new Uint8Array(nBlocks * B);
      for (let i = 0; i < bytes.length; i++) bytes[i] = Math.floor(r() * 256);
      for (let blk = 0; blk < nBlocks; blk++) {
        for (const f of SCALE_FIELDS[type]) {
          // two thirds of the blocks get an extreme scale, the rest keep random (finite) halves
          let h = blk % 3 === 2 ? (bytes[blk * B + f] | (bytes[blk * B + f + 1] << 8)) & 0x7bff : EXTREME_HALVES[(blk + f) % EXTREME_HALVES.length];
          if (blk % 3 === 2 && r() < 0.5) h |= 0x8000;
          bytes[blk * B + f] = h & 0xff;
          bytes[blk * B + f + 1] = h >> 8;
        }
      }
      const got = dequantize(type, bytes, nBlocks * E);
      let mismatches = 0, first = '';
      for (let blk = 0; blk < nBlocks; blk++) {
        for (let e = 0; e < E; e++) {
          const want = Math.fround(refElement(type, bytes, blk * B, e));
          if (!same(got[blk * E + e], want)) {
            if (!mismatches) first = `block ${blk} element ${e}: twin ${got[blk * E + e]}, reference ${want}`;
            mismatches++;
          }
        }
      }
      expect(first).toBe('');
      expect(mismatches).toBe(0);
    });
  }

  it('F16 and BF16 convert bit for bit, F32 is copied', () => {
    const r = rng(7);
    const raw = new Uint8Array(2 * 4096);
    for (let i = 0; i < raw.length; i++) raw[i] = Math.floor(r() * 256);
    const h = dequantize(GGML_TYPE.F16, raw, 4096), b = dequantize(GGML_TYPE.BF16, raw, 4096);
    const f = new Float32Array(1), u = new Uint32Array(f.buffer);
    for (let i = 0; i < 4096; i++) {
      expect(same(h[i], Math.fround(halfRef(u16(raw, 2 * i))))).toBe(true);
      u[0] = u16(raw, 2 * i) * 65536;
      expect(same(b[i], f[0])).toBe(true);
    }
    const x = new Float32Array([1.5, -0, Infinity, 3e-40]);
    expect([...dequantize(GGML_TYPE.F32, new Uint8Array(x.buffer), 4)]).toEqual([...x]);
  });

  it('refuses a byte count that does not match and a type it cannot read', () => {
    expect(() => dequantize(GGML_TYPE.Q8_0, new Uint8Array(33), 32)).toThrow(/34 bytes, got 33/);
    expect(() => dequantize(GGML_TYPE.Q4_K, new Uint8Array(144), 32)).toThrow(/multiple of the block size 256/);
    expect(() => dequantize(10, new Uint8Array(84), 256)).toThrow(/Q2_K is not supported/);
  });
});

describe('quantizers (ggml reference round-to-nearest)', () => {
  it('nearest_int rounds half to even like the 1.5·2^23 trick', () => {
    expect([0.5, 1.5, 2.5, -0.5, -1.5, 2.4999, 7.5, -7.6].map(nearestInt)).toEqual([0, 2, 2, -0, -2, 2, 8, -8].map((v) => v | 0));
  });

  it('Q8_0: d = amax/127 as f16, levels roundf(x/d) (half away from zero)', () => {
    const x = new Float32Array(32);
    x[0] = 127; x[1] = 0.5; x[2] = -0.5; x[3] = -127; x[4] = 63.5; x[5] = 1.49;
    const q = quantizeQ8_0(x);
    expect(q[0] | (q[1] << 8)).toBe(0x3c00); // d = 1.0
    expect([...q.subarray(2, 8)].map((v) => (v << 24) >> 24)).toEqual([127, 1, -1, -127, 64, 1]);
    expect([...quantizeQ8_0(new Float32Array(32))].every((v) => v === 0)).toBe(true);
  });

  it('Q4_0 / Q5_0: d = max/-8 (/-16) of the signed extreme, that extreme maps to level 0', () => {
    const x = new Float32Array(32).map((_, i) => (i - 10) / 10);
    x[7] = -3; // the largest magnitude is negative: d = -3 / -8 = 0.375
    const q4 = quantizeQ4_0(x);
    expect(q4[0] | (q4[1] << 8)).toBe(0x3600); // 0.375
    expect(q4[2 + 7] & 15).toBe(0); // -3 / 0.375 + 8 = 0
    expect(q4[2 + 15] >> 4).toBe(14); // x[31] = 2.1: 2.1 / 0.375 + 8.5 = 14.1, truncated to 14
    const q5 = quantizeQ5_0(x);
    expect(q5[0] | (q5[1] << 8)).toBe(0x3200); // 0.1875
  });

  const roundTrip = (quant: (x: Float32Array) => Uint8Array, type: number, n: number, seed: number) => {
    const r = rng(seed);
    const x = new Float32Array(n);
    for (let i = 0; i < n; i++) x[i] = (r() - 0.5) * (i % 97 === 0 ? 8 : 1) * (i < n / 2 ? 1 : 1e-3);
    const y = dequantize(type, quant(x), n);
    return { x, y };
  };

  it('each quantizer round-trips within its step: |x − deq(q(x))| ≤ half a level (Q8_0) or one level (Q4_0/Q5_0: the top level clamps)', () => {
    for (const [quant, type, k, slack] of [[quantizeQ8_0, GGML_TYPE.Q8_0, 127, 0.5], [quantizeQ4_0, GGML_TYPE.Q4_0, 8, 1], [quantizeQ5_0, GGML_TYPE.Q5_0, 16, 1]] as const) {
      const { x, y } = roundTrip(quant, type, 32 * 64, 11 + k);
      const q = quant(x), B = TYPE_LAYOUT[type].blockBytes;
      for (let blk = 0; blk < 64; blk++) {
        let amax = 0;
        for (let j = 0; j < 32; j++) amax = Math.max(amax, Math.abs(x[blk * 32 + j]));
        // levels come from the f32 scale amax/k; the f16 scale stored differs by its rounding (large for subnormal halves)
        const d = amax / k, dh = Math.abs(halfRef(u16(q, blk * B)));
        const bound = slack * d + (k + 1) * Math.abs(d - dh) + 1e-12;
        for (let j = 0; j < 32; j++) expect(Math.abs(x[blk * 32 + j] - y[blk * 32 + j])).toBeLessThanOrEqual(bound);
      }
    }
  });

  it('Q4_K: round trip error per 32-group within two levels of its 4-bit step (scales and mins are 6-bit), RMS < 10 %', () => {
    const { x, y } = roundTrip(quantizeQ4_K, GGML_TYPE.Q4_K, 256 * 16, 5);
    for (let g = 0; g < x.length / 32; g++) {
      let lo = Infinity, hi = -Infinity;
      for (let j = 0; j < 32; j++) { lo = Math.min(lo, x[g * 32 + j]); hi = Math.max(hi, x[g * 32 + j]); }
      const step = (Math.max(hi, 0) - Math.min(lo, 0)) / 15;
      for (let j = 0; j < 32; j++) expect(Math.abs(x[g * 32 + j] - y[g * 32 + j])).toBeLessThanOrEqual(step * 2 + 1e-9);
    }
    let se = 0, sx = 0;
    for (let i = 0; i < x.length; i++) { se += (x[i] - y[i]) ** 2; sx += x[i] ** 2; }
    expect(Math.sqrt(se / sx)).toBeLessThan(0.1);
    expect(QUANTIZERS[GGML_TYPE.Q4_K]).toBe(quantizeQ4_K);
  });

  it('Q6_K: round trip within two levels of each 16-group\'s 6-bit step (where d is a normal f16), RMS < 3 % (spiky data); an all-zero block stays zero', () => {
    const { x, y } = roundTrip(quantizeQ6_K, GGML_TYPE.Q6_K, 256 * 16, 9);
    // the second half is scaled by 1e-3: its super-block scale d ≈ 1e-7 is an f16 subnormal (coarse)
    for (let g = 0; g < x.length / 32; g++) {
      let amax = 0;
      for (let j = 0; j < 16; j++) amax = Math.max(amax, Math.abs(x[g * 16 + j]));
      for (let j = 0; j < 16; j++) expect(Math.abs(x[g * 16 + j] - y[g * 16 + j])).toBeLessThanOrEqual(amax / 16 + 1e-9);
    }
    let se = 0, sx = 0;
    for (let i = 0; i < x.length; i++) { se += (x[i] - y[i]) ** 2; sx += x[i] ** 2; }
    expect(Math.sqrt(se / sx)).toBeLessThan(0.03);
    expect([...quantizeQ6_K(new Float32Array(256))].every((v) => v === 0)).toBe(true);
  });
});

describe('quantizers with an importance matrix (ggml quant_weights paths)', () => {
  // The same inputs /tmp's generator fed to a gcc -O2 -ffp-contract=off build of ggml-quants.c's
  // quantize_row_{q4_0,q5_0,q4_K,q6_K}_impl (llama.cpp 01243c58, transcribed; the C is not kept):
  // rows at four magnitudes, zero groups, outliers; importance weights log-normal with 10% zeros.
  const inputs = (n: number, rows: number, seed: number) => {
    const r = rng(seed), g = () => Math.sqrt(-2 * Math.log(r() + 1e-12)) * Math.cos(2 * Math.PI * r());
    const x = new Float32Array(n * rows), qw = new Float32Array(n);
    for (let i = 0; i < rows; i++) {
      const s = [1e-3, 0.02, 1, 40][i % 4];
      for (let j = 0; j < n; j++) { let v = g() * s; if (i % 5 === 3 && j < 64) v = 0; if (r() < 0.01) v *= 20; x[i * n + j] = v; }
    }
    for (let j = 0; j < n; j++) qw[j] = r() < 0.1 ? 0 : Math.exp(3 * g());
    return { x, qw };
  };
  const ref = JSON.parse(readFileSync(join(import.meta.dirname, 'fixtures', 'imatrix-quant-reference.json'), 'utf8')) as { cases: { type: number; n: number; rows: number; seed: number; hex: string }[] };

  it.each(ref.cases.map((c) => [c.type, c] as const))('type %i: byte for byte as ggml', (_t, c) => {
    const { x, qw } = inputs(c.n, c.rows, c.seed);
    const got = Buffer.from(QUANTIZERS[c.type]!(x, qw)).toString('hex');
    expect(got.length).toBe(c.hex.length);
    expect(got).toBe(c.hex);
    // and the weights matter: the reference (unweighted) quantizer gives other bytes
    expect(Buffer.from(QUANTIZERS[c.type]!(x)).toString('hex')).not.toBe(c.hex);
  });

  it('Q8_0 ignores the weights (as quantize_q8_0); a matrix of the wrong width is refused', () => {
    const { x, qw } = inputs(256, 4, 7);
    expect(quantizeQ8_0(x)).toEqual((QUANTIZERS[GGML_TYPE.Q8_0] as (a: Float32Array, w?: Float32Array) => Uint8Array)(x, qw));
    expect(() => quantizeQ4_0(x, new Float32Array(96))).toThrow(/importance matrix of 96 columns/);
    expect(() => quantizeQ4_K(x, new Float32Array(288))).toThrow(/importance matrix of 288 columns/);
  });
});
