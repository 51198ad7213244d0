// GGUF/ggml block formats read in registers from the file's bytes kept in GPU memory as u32
// words (kernels/matmul-quant.ts, kernels/logprob.ts). The including shader defines
// `fn qword(i: u32) -> u32` (word i of its weight buffer). A [rows, K] weight is read in groups of
// 32 elements along K: q_group(row, g, K) gathers group g's scales once, q_elem4(group, l) is its
// elements l … l + 3 (l a multiple of 4), each as the same f32 expression as ggml's
// dequantize_row_* (src/quant/dequant.ts, the twin; the GPU compiler may fuse a product and a
// difference into one fma, within the kernels' tolerance). The four quants (and Q6_K's four high
// bit pairs) are consecutive bytes, read as one u32: Q4_K blocks (144 B) keep them word-aligned;
// Q8_0 (34 B), Q4_0 (18 B) and Q6_K (210 B) blocks start at even bytes only, so a run of four
// starts either on a word or two bytes into one, and is then joined from two words (q4at). Layouts
// (src/quant/types.ts):
//   Q8_0 (8)   34 B: f16 d; i8 q[32]                          w = q·d
//   Q4_0 (2)   18 B: f16 d; u8 qs[16] (j low, j + 16 high)     w = (q − 8)·d
//   Q4_K (12) 144 B: f16 d, f16 dmin; u8 scales[12] (6-bit scale and min of 8 sub-blocks,
//                    get_scale_min_k4); u8 qs[128] (sub-blocks 2i / 2i + 1: low / high nibbles of
//                    qs[32i …])                              w = (d·sc)·q − dmin·m
//   Q6_K (14) 210 B: u8 ql[128]; u8 qh[64]; i8 scales[16]; f16 d — per 128-element half n and
//                    quarter c: low 4 bits from ql[64n + 32(c & 1) + l] (nibble c / 2), high 2
//                    from qh[32n + l] >> 2c; scale scales[8n + 2c + l / 16]   w = (d·sc)·(q − 32)

// ggml type id of the weight: 8 Q8_0, 2 Q4_0, 12 Q4_K, 14 Q6_K.
override QTYPE: u32 = 8u;

/** One 32-element group: byte offsets of its quants (q) and, for Q6_K, high bits (h); nibble
 *  shift sh, high-bit shift hs; scales s0, s1 (Q4_K: d·sc, dmin·m; Q6_K: elements < 16, ≥ 16). */
struct QGroup { q: u32, h: u32, sh: u32, hs: u32, s0: f32, s1: f32 }

fn qbyte(i: u32) -> u32 {
  return (qword(i >> 2u) >> ((i & 3u) * 8u)) & 0xffu;
}

/** Bytes i … i + 3 as one little-endian u32 (i even: every offset in these layouts is). Q4_K's
 *  are word-aligned; the others read the next word too and select without a branch (neighbouring
 *  lanes' blocks alternate between the two cases; past the buffer's end the read is clamped and
 *  its value unused). */
fn q4at(i: u32) -> u32 {
  let w = qword(i >> 2u);
  if (QTYPE == 12u) { return w; }
  let w1 = qword((i >> 2u) + 1u);
  return select((w >> 16u) | (w1 << 16u), w, (i & 2u) == 0u);
}

/** The f16 at even byte offset i. */
fn qhalf(i: u32) -> f32 {
  return unpack2x16float(qword(i >> 2u) >> ((i & 2u) * 8u)).x;
}

fn qsext8(b: u32) -> i32 {
  return (i32(b) << 24u) >> 24u;
}

/** The four bytes of w, lowest first. */
fn qbytes4(w: u32) -> vec4u {
  return (vec4u(w) >> vec4u(0u, 8u, 16u, 24u)) & vec4u(0xffu);
}

/** Bytes per block of QTYPE. */
fn q_block_bytes() -> u32 {
  switch QTYPE {
    case 2u: { return 18u; }
    case 12u: { return 144u; }
    case 14u: { return 210u; }
    default: { return 34u; }
  }
}

/** 32-element groups per block: 8 for the 256-element K-quants, else 1. */
fn q_groups_per_block() -> u32 {
  return select(1u, 8u, QTYPE == 12u || QTYPE == 14u);
}

/** Group g (elements 32g … 32g + 31) of row `row` of a [rows, K] weight (K a multiple of the block). */
fn q_group(row: u32, g: u32, K: u32) -> QGroup {
  let gpb = q_groups_per_block();
  let sub = g % gpb;
  let base = (row * (K / (32u * gpb)) + g / gpb) * q_block_bytes();
  var r: QGroup;
  r.h = 0u;
  r.sh = 0u;
  r.hs = 0u;
  r.s1 = 0.0;
  if (QTYPE == 12u) {
    let s = base + 4u;
    var sc: u32;
    var m: u32;
    if (sub < 4u) {
      sc = qbyte(s + sub) & 63u;
      m = qbyte(s + sub + 4u) & 63u;
    } else {
      sc = (qbyte(s + sub + 4u) & 15u) | ((qbyte(s + sub - 4u) >> 6u) << 4u);
      m = (qbyte(s + sub + 4u) >> 4u) | ((qbyte(s + sub) >> 6u) << 4u);
    }
    r.s0 = qhalf(base) * f32(sc);
    r.s1 = qhalf(base + 2u) * f32(m);
    r.q = base + 16u + 32u * (sub / 2u);
    r.sh = 4u * (sub % 2u);
  } else if (QTYPE == 14u) {
    let n = sub / 4u;
    let c = sub % 4u;
    let d = qhalf(base + 208u);
    let sc = base + 192u + 8u * n + 2u * c;
    r.s0 = d * f32(qsext8(qbyte(sc)));
    r.s1 = d * f32(qsext8(qbyte(sc + 1u)));
    r.q = base + 64u * n + 32u * (c & 1u);
    r.sh = 4u * (c / 2u);
    r.h = base + 128u + 32u * n;
    r.hs = 2u * c;
  } else {
    r.s0 = qhalf(base);
    r.q = base + 2u;
  }
  return r;
}

/** Elements l … l + 3 of a group (l a multiple of 4), dequantized. */
fn q_elem4(g: QGroup, l: u32) -> vec4f {
  switch QTYPE {
    case 2u: {
      let b = qbytes4(q4at(g.q + (l & 15u)));
      return vec4f(vec4i(select(b & vec4u(15u), b >> vec4u(4u), l >= 16u)) - vec4i(8)) * g.s0;
    }
    case 12u: {
      return g.s0 * vec4f((qbytes4(q4at(g.q + l)) >> vec4u(g.sh)) & vec4u(15u)) - g.s1;
    }
    case 14u: {
      let lo = (qbytes4(q4at(g.q + l)) >> vec4u(g.sh)) & vec4u(15u);
      let hi = (qbytes4(q4at(g.h + l)) >> vec4u(g.hs)) & vec4u(3u);
      return select(g.s0, g.s1, l >= 16u) * vec4f(vec4i(lo | (hi << vec4u(4u))) - vec4i(32));
    }
    default: {
      return vec4f((vec4i(bitcast<i32>(q4at(g.q + l))) << vec4u(24u, 16u, 8u, 0u)) >> vec4u(24u)) * g.s0;
    }
  }
}
