// sin_cos(a): (sin a, cos a) for a >= 0, accurate to ~1e-7 relative, for RoPE angles pos * freq.
// Shared by shaders/rope.wgsl and shaders/attention/flash.wgsl (its fused-RoPE prologue): the
// launchers compose it into those shaders (composeShader, src/gpu/shaders.ts). Why not WGSL's
// sin/cos, and how it works: see shaders/rope.wgsl.

const TWO_OVER_PI = 0.6366197723675814;
const P1 = 1.5703125;                 // pi/2 = P1 + P2 + P3
const P2 = 4.837512969970703125e-4;
const P3 = 7.549789954891882e-8;

// (sin a, cos a) for a >= 0 (angles here are pos * freq).
fn sin_cos(a: f32) -> vec2f {
  let n = round(a * TWO_OVER_PI);
  let y = ((a - n * P1) - n * P2) - n * P3;
  let z = y * y;
  let s = y + y * z * (-1.6666654611e-1 + z * (8.3321608736e-3 + z * -1.9515295891e-4));
  let c = 1.0 - 0.5 * z + z * z * (4.166664568298827e-2 + z * (-1.388731625493765e-3 + z * 2.443315711809948e-5));
  switch (u32(n) & 3u) {
    case 0u: { return vec2f(s, c); }
    case 1u: { return vec2f(c, -s); }
    case 2u: { return vec2f(-s, -c); }
    default: { return vec2f(-c, s); }
  }
}
