// XXH64 (seed 0), streaming — the content checksum of a zstd frame is its low 32 bits. Plain BigInt
// arithmetic on 64-bit lanes; src/io/decompress.ts checks every frame that carries a checksum.

const M = (1n << 64n) - 1n;
const P1 = 11400714785074694791n, P2 = 14029467366897019727n, P3 = 1609587929392839161n;
const P4 = 9650029242287828579n, P5 = 2870177450012600261n;
const rotl = (x: bigint, r: bigint) => ((x << r) | (x >> (64n - r))) & M;
const round = (acc: bigint, lane: bigint) => (rotl((acc + lane * P2) & M, 31n) * P1) & M;
const merge = (acc: bigint, v: bigint) => (((acc ^ round(0n, v)) * P1 + P4) & M);

export class Xxh64 {
  private v = [(P1 + P2) & M, P2, 0n, (0n - P1) & M];
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
      this.stripe(new DataView(this.buf.buffer), 0);
      this.bufLen = 0;
    }
    const dv = new DataView(data.buffer, data.byteOffset, data.byteLength);
    for (; i + 32 <= data.length; i += 32) this.stripe(dv, i);
    if (i < data.length) { this.buf.set(data.subarray(i), 0); this.bufLen = data.length - i; }
  }

  private stripe(dv: DataView, at: number): void {
    const v = this.v;
    v[0] = round(v[0], dv.getBigUint64(at, true));
    v[1] = round(v[1], dv.getBigUint64(at + 8, true));
    v[2] = round(v[2], dv.getBigUint64(at + 16, true));
    v[3] = round(v[3], dv.getBigUint64(at + 24, true));
  }

  digest(): bigint {
    const v = this.v;
    let h: bigint;
    if (this.total >= 32) {
      h = (rotl(v[0], 1n) + rotl(v[1], 7n) + rotl(v[2], 12n) + rotl(v[3], 18n)) & M;
      for (const x of v) h = merge(h, x);
    } else h = P5;
    h = (h + BigInt(this.total)) & M;
    const b = this.buf.subarray(0, this.bufLen);
    const dv = new DataView(b.buffer, b.byteOffset, b.byteLength);
    let i = 0;
    for (; i + 8 <= b.length; i += 8) h = ((rotl(h ^ round(0n, dv.getBigUint64(i, true)), 27n) * P1) + P4) & M;
    if (i + 4 <= b.length) { h = ((rotl(h ^ ((BigInt(dv.getUint32(i, true)) * P1) & M), 23n) * P2) + P3) & M; i += 4; }
    for (; i < b.length; i++) h = (rotl(h ^ ((BigInt(b[i]) * P5) & M), 11n) * P1) & M;
    h = ((h ^ (h >> 33n)) * P2) & M;
    h = ((h ^ (h >> 29n)) * P3) & M;
    return h ^ (h >> 32n);
  }
}
