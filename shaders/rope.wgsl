// Rotary position embedding, in place on Q [T, nH*hd] and K [T, nKv*hd] (T = B*L; a token's
// position is t % L). One invocation per rotated pair, Q's heads first then K's, folded 1-D grid.
//
// HALF = false ('interleaved', llama2.c run.c): pair j rotates elements (2j, 2j+1) of a head.
// HALF = true  ('half', HF Llama rotate_half): pair j rotates elements (j, j + hd/2).
// Both use freq_j = 1 / theta^(2j/hd), read from inv_freq[hd/2], which the launcher computes on
// the CPU exactly as run.c and HF do in f32 (so a rope-scaling variant would only change that
// table). The angle pos * freq_j is then one f32 multiply, bit-identical to those references.
//
// Accuracy: WGSL's sin/cos are only required to be within 2^-11 absolute on [-pi, pi], and
// SwiftShader's are about that coarse (3e-4 errors measured), so the shader has its own: the angle
// is reduced mod pi/2 with a three-constant Cody-Waite step (P1 has 8 significant bits, so n*P1
// is exact for n < 2^16, i.e. angles up to ~1e5 rad), then Cephes' sinf/cosf minimax polynomials
// on [-pi/4, pi/4] (~1e-7 relative) and the quadrant's sign/swap. What remains is the f32 rounding
// of the angle itself (half an ulp: 6e-5 rad at pos 2048), which the f32 references share.

// rd: leading dims of each head that rotate (partial rotary, Phi-3/4: partial_rotary_factor · hd;
// rd = hd otherwise); pair j < rd/2 rotates (j, j + rd/2) or (2j, 2j+1); dims >= rd pass through.
// mscale multiplies cos and sin (LongRoPE's attention factor; 1 otherwise).
struct Params { T: u32, L: u32, nH: u32, nKv: u32, hd: u32, rd: u32, mscale: f32 }

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> inv_freq: array<f32>;
@group(0) @binding(2) var<storage, read_write> Q: array<f32>;
@group(0) @binding(3) var<storage, read_write> K: array<f32>;

override WG: u32 = 64;
override HALF: bool = false;

// sin_cos(a) comes from shaders/rope/sincos.wgsl, composed in by kernels/rope.ts.

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3u,
        @builtin(num_workgroups) nwg: vec3u,
        @builtin(local_invocation_index) li: u32) {
  let i = (wid.x + wid.y * nwg.x) * WG + li;
  let hh = p.rd / 2u;
  let heads = p.nH + p.nKv;
  if (i >= p.T * heads * hh) { return; }
  let t = i / (heads * hh);
  let head = (i / hh) % heads;
  let j = i % hh;

  let pos = f32(t % p.L);
  let sc = sin_cos(pos * inv_freq[j]) * p.mscale;

  var a: u32;
  var b: u32;
  if (HALF) { a = j; b = j + hh; } else { a = 2u * j; b = 2u * j + 1u; }
  if (head < p.nH) {
    let base = (t * p.nH + head) * p.hd;
    let x0 = Q[base + a];
    let x1 = Q[base + b];
    Q[base + a] = x0 * sc.y - x1 * sc.x;
    Q[base + b] = x0 * sc.x + x1 * sc.y;
  } else {
    let base = (t * p.nKv + head - p.nH) * p.hd;
    let x0 = K[base + a];
    let x1 = K[base + b];
    K[base + a] = x0 * sc.y - x1 * sc.x;
    K[base + b] = x0 * sc.x + x1 * sc.y;
  }
}
