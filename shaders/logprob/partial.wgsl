// Fused LM-head log-likelihood, pass 1 of 3: logits tile by tile, never written to memory.
//
// Each workgroup owns ROWS positions and one split of the vocabulary. It streams the unembedding
// W [V, d] through workgroup memory in WG-row × DT-column tiles, forms the ROWS × WG logits of
// that tile in registers, and folds them into a running (max, sum of exp(logit − max)) per
// position — the online softmax. The target's own logit is written when its vocabulary entry
// passes by. Pass 2 (combine.wgsl) merges the splits into logsumexp; the T×V logits never exist.

// W's element type: f32, or f16 when compiled with f16 weights (GpuRuntime swaps this alias).
alias WeightT = f32;

struct Params {
  T: u32,       // positions (rows of H)
  V: u32,       // vocabulary size
  d: u32,       // hidden size
  S: u32,       // vocabulary splits
  chunk: u32,   // vocabulary entries per split (a multiple of WG)
  softcap: f32, // > 0: logits become softcap * tanh(logit / softcap) (Gemma 2's final_logit_softcapping)
  _pad1: u32,
  _pad2: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> H: array<f32>;          // [T, d]
@group(0) @binding(2) var<storage, read> W: array<WeightT>;          // [V, d]
@group(0) @binding(3) var<storage, read> targets: array<u32>;    // [T]
@group(0) @binding(4) var<storage, read_write> partial: array<vec2f>; // [T, S] (max, sumexp)
@group(0) @binding(5) var<storage, read_write> tgt: array<f32>;  // [T] target logit

override WG: u32 = 64;
const ROWS = 8u;
const DT = 32u;
const NEG = -3.0e38;

var<workgroup> Hs: array<f32, 256>;            // [DT][ROWS]: row r of column k at k * ROWS + r
var<workgroup> Ws: array<f32, WG * (DT + 1u)>; // [WG][DT + 1] (padded against bank conflicts)
var<workgroup> red: array<vec2f, WG * ROWS>;   // [ROWS][WG]

// Soft-capping: cap * tanh(x / cap) (Gemma 2). tanh without overflow: exp only sees -2|x|; below
// |x| = 0.25 a Taylor polynomial (error < 1e-9) avoids the 1 - e^-2|x| cancellation.
fn tanh_safe(x: f32) -> f32 {
  let a = abs(x);
  if (a < 0.25) {
    let z = x * x;
    return x * (1.0 + z * (-0.3333333333 + z * (0.1333333333 + z * (-0.0539682540 + z * 0.0218694885))));
  }
  let e = exp(-2.0 * a);
  return sign(x) * (1.0 - e) / (1.0 + e);
}

fn cap4(x: vec4f) -> vec4f {
  if (p.softcap <= 0.0) { return x; }
  let c = p.softcap;
  return c * vec4f(tanh_safe(x.x / c), tanh_safe(x.y / c), tanh_safe(x.z / c), tanh_safe(x.w / c));
}

fn merge(a: vec2f, b: vec2f) -> vec2f {
  let m = max(a.x, b.x);
  return vec2f(m, a.y * exp(a.x - m) + b.y * exp(b.x - m));
}

/** Fold a vector of four rows' logits into their running (max, sum): branch-free online softmax. */
fn online(x: vec4f, m: ptr<function, vec4f>, s: ptr<function, vec4f>) {
  let mNew = max(*m, x);
  *s = *s * exp(*m - mNew) + exp(x - mNew);
  *m = mNew;
}

fn targetHit(x: vec4f, targets4: vec4u, v: u32, row: u32) {
  for (var c = 0u; c < 4u; c++) {
    if (targets4[c] == v) { tgt[row + c] = x[c]; }
  }
}

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3u,
        @builtin(num_workgroups) nwg: vec3u,
        @builtin(local_invocation_index) lid: u32) {
  let linear = wid.x + wid.y * nwg.x;
  let nRowTiles = (p.T + ROWS - 1u) / ROWS;
  // Uniform per workgroup, so the early return keeps barriers in uniform control flow.
  if (linear >= nRowTiles * p.S) { return; }
  let row0 = (linear / p.S) * ROWS;
  let split = linear % p.S;
  let vBegin = split * p.chunk;
  let vEnd = min(p.V, vBegin + p.chunk);

  // The ROWS = 8 rows live in two vec4 lanes (rows 0-3 and 4-7): named vectors, not indexed
  // private arrays, which some compilers (SwiftShader) keep in memory at a ~10× cost.
  var m0 = vec4f(NEG);
  var m1 = vec4f(NEG);
  var s0 = vec4f(0.0);
  var s1 = vec4f(0.0);
  var t0 = vec4u(0xffffffffu);
  var t1 = vec4u(0xffffffffu);
  for (var c = 0u; c < 4u; c++) {
    if (row0 + c < p.T) { t0[c] = targets[row0 + c]; }
    if (row0 + 4u + c < p.T) { t1[c] = targets[row0 + 4u + c]; }
  }

  for (var vb = vBegin; vb < vEnd; vb += WG) {
    let v = vb + lid;
    var acc0 = vec4f(0.0);
    var acc1 = vec4f(0.0);
    for (var k0 = 0u; k0 < p.d; k0 += DT) {
      for (var e = lid; e < ROWS * DT; e += WG) {
        let r = e / DT;
        let k = e % DT;
        var h = 0.0;
        if (row0 + r < p.T && k0 + k < p.d) { h = H[(row0 + r) * p.d + k0 + k]; }
        Hs[k * ROWS + r] = h;
      }
      for (var e = lid; e < WG * DT; e += WG) {
        let row = e / DT;
        let k = e % DT;
        var w = 0.0;
        if (vb + row < vEnd && k0 + k < p.d) { w = f32(W[(vb + row) * p.d + k0 + k]); }
        Ws[row * (DT + 1u) + k] = w;
      }
      workgroupBarrier();
      for (var k = 0u; k < DT; k++) {
        let w = vec4f(Ws[lid * (DT + 1u) + k]);
        let h = k * ROWS;
        acc0 = fma(vec4f(Hs[h], Hs[h + 1u], Hs[h + 2u], Hs[h + 3u]), w, acc0);
        acc1 = fma(vec4f(Hs[h + 4u], Hs[h + 5u], Hs[h + 6u], Hs[h + 7u]), w, acc1);
      }
      workgroupBarrier();
    }
    if (v < vEnd) {
      acc0 = cap4(acc0);
      acc1 = cap4(acc1);
      online(acc0, &m0, &s0);
      online(acc1, &m1, &s1);
      targetHit(acc0, t0, v, row0);
      targetHit(acc1, t1, v, row0 + 4u);
    }
  }

  // Merge the WG threads' running (max, sum) per row: a tree reduction in workgroup memory.
  for (var c = 0u; c < 4u; c++) {
    red[c * WG + lid] = vec2f(m0[c], s0[c]);
    red[(c + 4u) * WG + lid] = vec2f(m1[c], s1[c]);
  }
  workgroupBarrier();
  for (var stride = WG / 2u; stride > 0u; stride /= 2u) {
    if (lid < stride) {
      for (var r = 0u; r < ROWS; r++) {
        red[r * WG + lid] = merge(red[r * WG + lid], red[r * WG + lid + stride]);
      }
    }
    workgroupBarrier();
  }
  if (lid < ROWS && row0 + lid < p.T) {
    partial[(row0 + lid) * p.S + split] = red[lid * WG];
  }
}
