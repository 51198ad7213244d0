// Fused LM-head log-likelihood, pass 1 of 3: logits tile by tile, never written to memory.
//
// Each workgroup owns ROWS positions and one split of the vocabulary. It streams the unembedding
// W [V, d] through workgroup memory in WG-row × DT-column tiles, forms the ROWS × WG logits of
// that tile in registers, and folds them into a running (max, sum of exp(logit − max)) per
// position — the online softmax. The target's own logit is written when its vocabulary entry
// passes by. Pass 2 (combine.wgsl) merges the splits into logsumexp; the T×V logits never exist.

// The uniforms, bindings 0–5, NEG, tanh_safe, cap4 and merge: logprob/common.wgsl, composed after
// this file (kernels/logprob.ts), with the W tile load (Ws rows vb …, columns k0 …): load_w_tile of
// logprob/partial-load (f32/f16 values) or logprob/partial-load-q (GGUF blocks, W read as u32).

override WG: u32 = 64;
const ROWS = 8u;
const DT = 32u;

var<workgroup> Hs: array<f32, 256>;            // [DT][ROWS]: row r of column k at k * ROWS + r
var<workgroup> Ws: array<f32, WG * (DT + 1u)>; // [WG][DT + 1] (padded against bank conflicts)
var<workgroup> red: array<vec2f, WG * ROWS>;   // [ROWS][WG] (m, s)
var<workgroup> redt: array<f32, WG * ROWS>;    // [ROWS][WG] t (entropy numerator, see merge)

/** Fold a vector of four rows' logits into their running (m, s, t): branch-free online softmax (merge's state). */
fn online(x: vec4f, m: ptr<function, vec4f>, s: ptr<function, vec4f>, t: ptr<function, vec4f>) {
  let mNew = max(*m, x);
  let a = exp(*m - mNew);
  let e = exp(x - mNew);
  *t = a * (*t + (*m - mNew) * *s) + (x - mNew) * e;
  *s = *s * a + e;
  *m = mNew;
}

/** red/redt[i] = the merge of entries i and j (tree reduction step). */
fn mergeAt(i: u32, j: u32) {
  let a = merge(vec3f(red[i], redt[i]), vec3f(red[j], redt[j]));
  red[i] = a.xy;
  redt[i] = a.z;
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
  var e0 = vec4f(0.0); // t of merge's state, rows 0-3 and 4-7
  var e1 = vec4f(0.0);
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
      load_w_tile(vb, vEnd, k0, lid);
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
      online(acc0, &m0, &s0, &e0);
      online(acc1, &m1, &s1, &e1);
      targetHit(acc0, t0, v, row0);
      targetHit(acc1, t1, v, row0 + 4u);
    }
  }

  // Merge the WG threads' running (max, sum) per row: a tree reduction in workgroup memory.
  for (var c = 0u; c < 4u; c++) {
    red[c * WG + lid] = vec2f(m0[c], s0[c]);
    red[(c + 4u) * WG + lid] = vec2f(m1[c], s1[c]);
    redt[c * WG + lid] = e0[c];
    redt[(c + 4u) * WG + lid] = e1[c];
  }
  workgroupBarrier();
  for (var stride = WG / 2u; stride > 0u; stride /= 2u) {
    if (lid < stride) {
      for (var r = 0u; r < ROWS; r++) {
        mergeAt(r * WG + lid, r * WG + lid + stride);
      }
    }
    workgroupBarrier();
  }
  if (lid < ROWS && row0 + lid < p.T) {
    partial[(row0 + lid) * p.S + split] = vec4f(red[lid * WG], redt[lid * WG], 0.0);
  }
}
