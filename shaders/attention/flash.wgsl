// attention/flash: the hardware-GPU attention variant (kernels/attention.ts, variant 'flash').
// Same contract as shaders/attention.wgsl (causal or bidirectional, grouped KV heads, padding
// mask, sliding window, soft-cap, scale), built for K/V reuse and few workgroup-memory reads:
//
//   Q, O [T, nH*hd], K, V [T, nKv*hd] as vec4 rows (hd % 4 == 0), T = B*L.
//   One workgroup per (block of BQ = 64 query rows, head, sequence): each K/V tile staged in
//   workgroup memory serves 64 queries (4x the 16 of the direct kernel).
//   256 invocations = 64 rows x 4 lanes; lane c of row r holds, in registers, the vec4 chunks
//   e = c, c+4, c+8, ... (e < hd/4) of its query row and of its output accumulator.
//   Per key tile of BK keys (BK = 16 or 32, chosen by the launcher to fit the workgroup-memory
//   limit): each lane computes partial dot products over its chunks, the 4 lanes of a row sum
//   them (reduce4: subgroup shuffles, or workgroup memory), after which every lane holds the
//   row's full scores of the tile and runs the online softmax (running max m, sum l, rescale by
//   exp(m_old - m)) and P.V for its chunks with no further communication.
//   K and V are stored in workgroup memory as KVT (f16 when the launcher enables it, halving the
//   tile; the conversion happens while staging).
//
// The header composed in front (kernels/attention.ts flashShader) defines HD_MAX (hd rounded up to
// 16), BK, alias KVT, and the enable directives; shaders/attention/flash-lanes-*.wgsl define LaneIn,
// lanes_ok and reduce4; shaders/rope/sincos.wgsl defines sin_cos.
//
// Fused RoPE (override ROPE): q and k are rotated as they are read (Q once into registers, each K
// tile while staging), with the math of shaders/rope.wgsl: pair (d, d + rd/2) ('half', HALF) or
// (2j, 2j+1), freq from inv_freq (the launcher's table: scaling variants live there), cos and sin
// times mscale (LongRoPE), dims >= rd pass through. The position is the row's index in its sequence.
// Qwen3's q/k norm runs before (the launcher passes the normed buffers).
//
// Tile boundaries depend only on positions (k0 = 0, BK, 2BK, ...; BK depends on hd, KVT and the
// adapter's limit), tiles wholly masked for a row leave it exactly unchanged, and both reduce4
// paths add in the same order ((l0 + l1) + (l2 + l3)), so a sequence scores bit-identically alone
// or in a padded batch, with or without subgroups.

struct Params { B: u32, L: u32, nH: u32, nKv: u32, hd: u32, scale: f32, window: u32, softcap: f32, rd: u32, mscale: f32 }

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> Q: array<vec4f>;
@group(0) @binding(2) var<storage, read> K: array<vec4f>;
@group(0) @binding(3) var<storage, read> V: array<vec4f>;
@group(0) @binding(4) var<storage, read> seq_len: array<u32>;
@group(0) @binding(5) var<storage, read_write> O: array<vec4f>;
@group(0) @binding(6) var<storage, read> inv_freq: array<f32>;

override CAUSAL: bool = true;
override ROPE: bool = false;
override HALF: bool = false;

const BQ = 64u;
const LANES = 4u;
const WG = 256u;              // BQ * LANES
const HD4 = HD_MAX / 4u;      // vec4 chunks per row (max)
const NA = HD_MAX / 16u;      // chunks per lane (max)
const MASKED = -3.0e38;
const MASK_TEST = -1.0e38;

var<workgroup> Ks: array<vec4<KVT>, BK * HD4>;
var<workgroup> Vs: array<vec4<KVT>, BK * HD4>;
var<workgroup> Red: array<vec4f, WG>;

// The sums over the 4 lanes of each row through workgroup memory (the path without subgroups),
// added as (l0 + l1) + (l2 + l3) like the subgroup butterfly. Called in uniform control flow.
fn reduce4_shared(x: vec4f, li: u32) -> vec4f {
  Red[li] = x;
  workgroupBarrier();
  let g = li & ~3u;
  let y = (Red[g] + Red[g + 1u]) + (Red[g + 2u] + Red[g + 3u]);
  workgroupBarrier();
  return y;
}

// Soft-capping: cap * tanh_safe(x / cap) (Gemma 2); tanh_safe and the other shared functions:
//#include common/math

// RoPE of element d of a head row whose value is x and whose pair partner's value is y.
fn rotate(d: u32, x: f32, y: f32, pos: f32) -> f32 {
  if (d >= p.rd) { return x; }
  let hh = p.rd / 2u;
  var first: bool;
  var j: u32;
  if (HALF) { first = d < hh; j = select(d - hh, d, first); } else { first = (d & 1u) == 0u; j = d / 2u; }
  let sc = sin_cos(pos * inv_freq[j]) * p.mscale;
  if (first) { return x * sc.y - y * sc.x; }   // x0 cos - x1 sin
  return y * sc.x + x * sc.y;                   // x0 sin + x1 cos
}

fn partner(d: u32) -> u32 {
  if (HALF) { let hh = p.rd / 2u; return select(d - hh, d + hh, d < hh); }
  return d ^ 1u;
}

fn rope_q(row4: u32, e: u32, x: vec4f, pos: f32) -> vec4f {
  var y = x;
  for (var i = 0u; i < 4u; i++) {
    let d = 4u * e + i;
    if (d < p.rd) { let pd = partner(d); y[i] = rotate(d, x[i], Q[row4 + pd / 4u][pd % 4u], pos); }
  }
  return y;
}

fn rope_k(row4: u32, e: u32, x: vec4f, pos: f32) -> vec4f {
  var y = x;
  for (var i = 0u; i < 4u; i++) {
    let d = 4u * e + i;
    if (d < p.rd) { let pd = partner(d); y[i] = rotate(d, x[i], K[row4 + pd / 4u][pd % 4u], pos); }
  }
  return y;
}

@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wid: vec3u, lin: LaneIn) {
  let li = lin.li;
  let use_sg = lanes_ok(lin);
  let q0 = wid.x * BQ;
  let h = wid.y;
  let b = wid.z;
  let r = li / LANES;
  let c = li % LANES;
  let hd4 = p.hd / 4u;
  let kvh = h / (p.nH / p.nKv);
  let q4_stride = p.nH * hd4;
  let kv4_stride = p.nKv * hd4;
  let tok0 = b * p.L;
  let len = min(seq_len[b], p.L);
  let qi = q0 + r;
  let real_row = qi < len;

  // This lane's query chunks, in registers (zeros for pad rows and chunks past hd).
  var q: array<vec4f, NA>;
  let qrow4 = (tok0 + qi) * q4_stride + h * hd4;
  for (var a = 0u; a < NA; a++) {
    let e = a * LANES + c;
    if (real_row && e < hd4) {
      var x = Q[qrow4 + e];
      if (ROPE) { x = rope_q(qrow4, e, x, f32(qi)); }
      q[a] = x;
    }
  }

  let k_end = select(0u, select(len, min(q0 + BQ, len), CAUSAL), q0 < len);
  var k_start = 0u;
  if (CAUSAL && p.window > 0u && q0 + 1u > p.window) { k_start = ((q0 + 1u - p.window) / BK) * BK; }

  var m = MASKED;
  var l = 0.0;
  var acc: array<vec4f, NA>;
  var s: array<f32, BK>;
  for (var k0 = k_start; k0 < k_end; k0 += BK) {
    workgroupBarrier();
    for (var e = li; e < BK * hd4; e += WG) {
      let j = e / hd4;
      let d4 = e % hd4;
      var kv = vec4f(0.0);
      var vv = vec4f(0.0);
      if (k0 + j < k_end) {
        let row4 = (tok0 + k0 + j) * kv4_stride + kvh * hd4;
        kv = K[row4 + d4];
        if (ROPE) { kv = rope_k(row4, d4, kv, f32(k0 + j)); }
        vv = V[row4 + d4];
      }
      Ks[j * HD4 + d4] = vec4<KVT>(kv);
      Vs[j * HD4 + d4] = vec4<KVT>(vv);
    }
    workgroupBarrier();

    // Scores, 4 keys at a time: partial dots over this lane's chunks, then summed over the row's lanes.
    for (var j0 = 0u; j0 < BK; j0 += 4u) {
      var part = vec4f(0.0);
      for (var a = 0u; a < NA; a++) {
        let e = a * LANES + c;
        if (e < hd4) {
          part.x += dot(q[a], vec4f(Ks[(j0 + 0u) * HD4 + e]));
          part.y += dot(q[a], vec4f(Ks[(j0 + 1u) * HD4 + e]));
          part.z += dot(q[a], vec4f(Ks[(j0 + 2u) * HD4 + e]));
          part.w += dot(q[a], vec4f(Ks[(j0 + 3u) * HD4 + e]));
        }
      }
      let full = reduce4(part, li, use_sg);
      for (var i = 0u; i < 4u; i++) {
        let kc = k0 + j0 + i;
        let in_window = p.window == 0u || kc + p.window > qi;
        var sc = MASKED;
        if (real_row && kc < k_end && ((kc <= qi && in_window) || !CAUSAL)) {
          sc = full[i] * p.scale;
          if (p.softcap > 0.0) { sc = p.softcap * tanh_safe(sc / p.softcap); }
        }
        s[j0 + i] = sc;
      }
    }

    // Online softmax and P.V, all in this lane's registers.
    var m_new = m;
    for (var j = 0u; j < BK; j++) { m_new = max(m_new, s[j]); }
    let alpha = exp(max(m - m_new, -100.0));
    for (var a = 0u; a < NA; a++) { acc[a] *= alpha; }
    var ps = 0.0;
    for (var j = 0u; j < BK; j++) {
      let pj = select(0.0, exp(max(s[j] - m_new, -100.0)), s[j] > MASK_TEST);
      ps += pj;
      for (var a = 0u; a < NA; a++) {
        let e = a * LANES + c;
        if (e < hd4) { acc[a] = fma(vec4f(pj), vec4f(Vs[j * HD4 + e]), acc[a]); }
      }
    }
    l = l * alpha + ps;
    m = m_new;
  }

  if (qi >= p.L) { return; }
  let ok = real_row && l > 0.0;
  let inv = select(0.0, 1.0 / l, ok);
  for (var a = 0u; a < NA; a++) {
    let e = a * LANES + c;
    if (e < hd4) { O[qrow4 + e] = select(vec4f(0.0), acc[a] * inv, ok); }
  }
}
