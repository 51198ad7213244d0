// decode/kv-store: the decoder's RoPE + cache write (kernels/decode-attention.ts kvStoreGpu).
// For each token row t of a decode step (its slot and absolute position in rows[t]):
//   Qr[t, h, :]                     = rope(Q[t, h, :], pos)   (query heads, f32, out of place)
//   Kc[slot, kvh, pos, :]           = rope(K[t, kvh, :], pos) (KVT: f16 or f32 cache)
//   Vc[slot, kvh, pos, :]           = V[t, kvh, :]
// One invocation per element, query heads first then KV heads; folded 1-D grid. The rotation is
// shaders/rope.wgsl's (pair (d, d + rd/2) with HALF, else (2j, 2j+1); inv_freq from the
// launcher's table; cos and sin times mscale; dims >= rd pass through); ROPE = false copies.
//
// The header composed in front (kernels/decode-attention.ts) defines alias KVT (and enable f16);
// shaders/rope/sincos.wgsl defines sin_cos.

struct Params { T: u32, nH: u32, nKv: u32, hd: u32, rd: u32, mscale: f32, maxLen: u32 }

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> inv_freq: array<f32>;
@group(0) @binding(2) var<storage, read> rows: array<vec2u>;
@group(0) @binding(3) var<storage, read> Q: array<f32>;
@group(0) @binding(4) var<storage, read> K: array<f32>;
@group(0) @binding(5) var<storage, read> V: array<f32>;
@group(0) @binding(6) var<storage, read_write> Qr: array<f32>;
@group(0) @binding(7) var<storage, read_write> Kc: array<KVT>;
@group(0) @binding(8) var<storage, read_write> Vc: array<KVT>;

override WG: u32 = 64;
override ROPE: bool = true;
override HALF: bool = false;

// Element d of a head row `base` of X (Q or K), rotated to position pos.
fn rotated(x: f32, y_partner: f32, d: u32, pos: f32) -> f32 {
  if (!ROPE || d >= p.rd) { return x; }
  let hh = p.rd / 2u;
  var first: bool;
  var j: u32;
  if (HALF) { first = d < hh; j = select(d - hh, d, first); } else { first = (d & 1u) == 0u; j = d / 2u; }
  let sc = sin_cos(pos * inv_freq[j]) * p.mscale;
  if (first) { return x * sc.y - y_partner * sc.x; }   // x0 cos - x1 sin
  return y_partner * sc.x + x * sc.y;                   // x0 sin + x1 cos
}

fn partner(d: u32) -> u32 {
  if (!ROPE || d >= p.rd) { return d; }
  if (HALF) { let hh = p.rd / 2u; return select(d - hh, d + hh, d < hh); }
  return d ^ 1u;
}

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3u,
        @builtin(num_workgroups) nwg: vec3u,
        @builtin(local_invocation_index) li: u32) {
  let i = (wid.x + wid.y * nwg.x) * WG + li;
  let heads = p.nH + p.nKv;
  if (i >= p.T * heads * p.hd) { return; }
  let t = i / (heads * p.hd);
  let head = (i / p.hd) % heads;
  let d = i % p.hd;
  let slot = rows[t].x;
  let pos = rows[t].y;
  let fpos = f32(pos);
  let pd = partner(d);
  if (head < p.nH) {
    let base = (t * p.nH + head) * p.hd;
    Qr[base + d] = rotated(Q[base + d], Q[base + pd], d, fpos);
  } else {
    let kh = head - p.nH;
    let base = (t * p.nKv + kh) * p.hd;
    let dst = ((slot * p.nKv + kh) * p.maxLen + pos) * p.hd + d;
    Kc[dst] = KVT(rotated(K[base + d], K[base + pd], d, fpos));
    Vc[dst] = KVT(V[base + d]);
  }
}
