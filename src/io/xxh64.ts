// XXH64 (seed 0), streaming — the content checksum of a zstd frame is its low 32 bits
// (src/io/decompress.ts checks every frame that carries one). 64-bit lanes are held as two uint32
// halves (hi, lo) so that no BigInt is allocated per byte; digest() returns the 64-bit value.

type U64 = [number, number]; // [hi, lo], each an unsigned 32-bit integer

const P1: U64 = [0x9e3779b1, 0x85ebca87];
const P2: U64 = [0xc2b2ae3d, 0x27d4eb4f];
const P3: U64 = [0x165667b1, 0x9e3779f9];
const P4: U64 = [0x85ebca77, 0xc2b2ae63];
const P5: U64 = [0x27d4eb2f, 0x165667c5];

function add(a: U64, b: U64): U64 {
  const lo = a[1] + b[1];
  return [(a[0] + b[0] + (lo > 0xffffffff ? 1 : 0)) >>> 0, lo >>> 0];
}

/** The low 64 bits of a × b. */
function mul(a: U64, b: U64): U64 {
  const al = a[1], bl = b[1];
  const a0 = al & 0xffff, a1 = al >>> 16, b0 = bl & 0xffff, b1 = bl >>> 16;
  const p00 = a0 * b0, p01 = a0 * b1, p10 = a1 * b0, p11 = a1 * b1;
  const mid = (p00 >>> 16) + (p01 & 0xffff) + (p10 & 0xffff);
  const lo = (((mid & 0xffff) << 16) | (p00 & 0xffff)) >>> 0;
  const carry = p11 + (p01 >>> 16) + (p10 >>> 16) + (mid >>> 16);
  return [(carry + Math.imul(al, b[0]) + Math.imul(a[0], bl)) >>> 0, lo];
}

function rotl(a: U64, r: number): U64 {
  let [h, l] = a;
  if (r >= 32) { [h, l] = [l, h]; r -= 32; }
  if (r === 0) return [h, l];
  return [((h << r) | (l >>> (32 - r))) >>> 0, ((l << r) | (h >>> (32 - r))) >>> 0];
}

const xor = (a: U64, b: U64): U64 => [(a[0] ^ b[0]) >>> 0, (a[1] ^ b[1]) >>> 0];

/** a >>> r for 0 < r < 64. */
function shr(a: U64, r: number): U64 {
  if (r >= 32) return [0, a[0] >>> (r - 32)];
  return [a[0] >>> r, ((a[1] >>> r) | (a[0] << (32 - r))) >>> 0];
}

const round = (acc: U64, lane: U64): U64 => mul(rotl(add(acc, mul(lane, P2)), 31), P1);
const merge = (acc: U64, v: U64): U64 => add(mul(xor(acc, round([0, 0], v)), P1), P4);
/** round(acc, lane at b[i..i+8]) with the products written out (the hot loop: one array per lane). */
function roundFast(acc: U64, b: Uint8Array, i: number): U64 {
  const lh = (b[i + 4] | (b[i + 5] << 8) | (b[i + 6] << 16) | (b[i + 7] << 24)) >>> 0;
  const ll = (b[i] | (b[i + 1] << 8) | (b[i + 2] << 16) | (b[i + 3] << 24)) >>> 0;
  // lane × P2
  let [mh, ml] = mulParts(lh, ll, 0xc2b2ae3d, 0x27d4eb4f);
  // + acc
  const sl = acc[1] + ml;
  let h = (acc[0] + mh + (sl > 0xffffffff ? 1 : 0)) >>> 0, l = sl >>> 0;
  // rotl 31
  const rh = ((h << 31) | (l >>> 1)) >>> 0, rl = ((l << 31) | (h >>> 1)) >>> 0;
  [mh, ml] = mulParts(rh, rl, 0x9e3779b1, 0x85ebca87);
  h = mh; l = ml;
  return [h, l];
}

function mulParts(ah: number, al: number, bh: number, bl: number): [number, number] {
  const a0 = al & 0xffff, a1 = al >>> 16, b0 = bl & 0xffff, b1 = bl >>> 16;
  const p00 = a0 * b0, p01 = a0 * b1, p10 = a1 * b0, p11 = a1 * b1;
  const mid = (p00 >>> 16) + (p01 & 0xffff) + (p10 & 0xffff);
  const lo = (((mid & 0xffff) << 16) | (p00 & 0xffff)) >>> 0;
  const carry = p11 + (p01 >>> 16) + (p10 >>> 16) + (mid >>> 16);
  return [(carry + Math.imul(al, bh) + Math.imul(ah, bl)) >>> 0, lo];
}

const lane64 = (b: Uint8Array, i: number): U64 => [
  (b[i + 4] | (b[i + 5] << 8) | (b[i + 6] << 16) | (b[i + 7] << 24)) >>> 0,
  (b[i] | (b[i + 1] << 8) | (b[i + 2] << 16) | (b[i + 3] << 24)) >>> 0,
];

export class Xxh64 {
  private v: U64[] = [add(P1, P2), P2, [0, 0], mul([0xffffffff, 0xffffffff], P1)];
  private total = 0;
  private buf = new Uint8Array(32);
  private bufLen = 0;

  update(data: Uint8Array): void {
    this.total += data.length;
    let i = 0;
    if (this.bufLen > 0) {
      const n = Math.min(32 - this.bufLen, data.length);
      this.buf.set(data.subarray(0, n), this.bufLen);
      this.bufLen += n;
      i = n;
      if (this.bufLen < 32) return;
      this.stripe(this.buf, 0);
      this.bufLen = 0;
    }
    for (; i + 32 <= data.length; i += 32) this.stripe(data, i);
    if (i < data.length) { this.buf.set(data.subarray(i), 0); this.bufLen = data.length - i; }
  }

  private stripe(b: Uint8Array, at: number): void {
    const v = this.v;
    for (let k = 0; k < 4; k++) v[k] = roundFast(v[k], b, at + 8 * k);
  }

  digest(): bigint {
    const v = this.v;
    let h: U64;
    if (this.total >= 32) {
      h = add(add(rotl(v[0], 1), rotl(v[1], 7)), add(rotl(v[2], 12), rotl(v[3], 18)));
      for (const x of v) h = merge(h, x);
    } else h = P5;
    h = add(h, [Math.floor(this.total / 0x100000000) >>> 0, this.total >>> 0]);
    const b = this.buf.subarray(0, this.bufLen);
    let i = 0;
    for (; i + 8 <= b.length; i += 8) h = add(mul(rotl(xor(h, round([0, 0], lane64(b, i))), 27), P1), P4);
    if (i + 4 <= b.length) {
      const w: U64 = [0, (b[i] | (b[i + 1] << 8) | (b[i + 2] << 16) | (b[i + 3] << 24)) >>> 0];
      h = add(mul(rotl(xor(h, mul(w, P1)), 23), P2), P3);
      i += 4;
    }
    for (; i < b.length; i++) h = mul(rotl(xor(h, mul([0, b[i]], P5)), 11), P1);
    h = mul(xor(h, shr(h, 33)), P2);
    h = mul(xor(h, shr(h, 29)), P3);
    h = xor(h, shr(h, 32));
    return (BigInt(h[0]) << 32n) | BigInt(h[1]);
  }
}
