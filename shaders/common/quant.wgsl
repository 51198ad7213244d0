// GGUF/ggml block formats read in registers from the file's bytes kept in GPU memory as u32
// words (kernels/matmul-quant.ts, kernels/logprob.ts). The including shader defines
// `fn qword(i: u32) -> u32` (word i of its weight buffer). A [rows, K] weight is read in groups of
// 32 elements along K: q_group(row, g, K) gathers group g's scales once, q_elem(group, l) is its
// element l as the same f32 expression as ggml's dequantize_row_* (src/quant/dequant.ts, the
// twin; the GPU compiler may fuse a product and a difference into one fma, within the kernels'
// tolerance). Layouts (src/quant/types.ts):
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

fn qhalf(i: u32) -> f32 {
  return unpack2x16float(qbyte(i) | (qbyte(i + 1u) << 8u)).x;
}

fn qsext8(b: u32) -> i32 {
  return (i32(b) << 24u) >> 24u;
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

/** Element l (0 … 31) of a group, dequantized. */
fn q_elem(g: QGroup, l: u32) -> f32 {
  switch QTYPE {
    case 2u: {
      let b = qbyte(g.q + (l & 15u));
      return f32(i32(select(b & 15u, b >> 4u, l >= 16u)) - 8) * g.s0;
    }
    case 12u: {
      return g.s0 * f32((qbyte(g.q + l) >> g.sh) & 15u) - g.s1;
    }
    case 14u: {
      let q = ((qbyte(g.q + l) >> g.sh) & 15u) | (((qbyte(g.h + l) >> g.hs) & 3u) << 4u);
      return select(g.s0, g.s1, l >= 16u) * f32(i32(q) - 32);
    }
    default: {
      return f32(qsext8(qbyte(g.q + l))) * g.s0;
    }
  }
}
