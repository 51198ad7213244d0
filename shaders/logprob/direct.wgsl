// Fused LM-head log-likelihood, pass 1 of 3 — variant for CPU-rasteriser adapters (SwiftShader,
// lavapipe): like logprob/partial, but each invocation reads its W row and the ROWS hidden rows
// straight from storage, with no workgroup tiles and so no barriers in the main loop (on those
// drivers a barrier costs more than the cache-resident loads it saves). Same bindings and output.
//
// Each workgroup owns ROWS positions and one split of the vocabulary. It streams the unembedding
// W [V, d] through workgroup memory in WG-row × DT-column tiles, forms the ROWS × WG logits of
// that tile in registers, and folds them into a running (max, sum of exp(logit − max)) per
// position — the online softmax. The target's own logit is written when its vocabulary entry
// passes by. Pass 2 (combine.wgsl) merges the splits into logsumexp; the T×V logits never exist.

// The uniforms, bindings 0–5, NEG, tanh_safe, cap4 and merge: logprob/common.wgsl, composed after
// this file (kernels/logprob.ts).

override WG: u32 = 64;
const ROWS = 8u;
const DT = 32u;

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
  if (linear >= nRowTiles * p.S) { return; }
  let row0 = (linear / p.S) * ROWS;
  let split = linear % p.S;
  let vBegin = split * p.chunk;
  let vEnd = min(p.V, vBegin + p.chunk);

  // Row offsets, clamped to the last row (rows past T are computed but never written).
  let last = p.T - 1u;
  let h0 = vec4u(min(row0, last), min(row0 + 1u, last), min(row0 + 2u, last), min(row0 + 3u, last)) * p.d;
  let h1 = vec4u(min(row0 + 4u, last), min(row0 + 5u, last), min(row0 + 6u, last), min(row0 + 7u, last)) * p.d;
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
  // Two adjacent vocabulary entries per step: each loaded hidden value feeds two FMAs, which
  // nearly halves the loads per FMA (loads, not arithmetic, bound this loop on CPU rasterisers).
  for (var v = vBegin + 2u * lid; v < vEnd; v += 2u * WG) {
    let second = v + 1u < vEnd;
    let wo0 = v * p.d;
    let wo1 = select(v, v + 1u, second) * p.d;
    var acc0 = vec4f(0.0);
    var acc1 = vec4f(0.0);
    var acc2 = vec4f(0.0);
    var acc3 = vec4f(0.0);
    for (var k = 0u; k < p.d; k++) {
      let w0 = vec4f(W[wo0 + k]);
      let w1 = vec4f(W[wo1 + k]);
      let x0 = vec4f(H[h0.x + k], H[h0.y + k], H[h0.z + k], H[h0.w + k]);
      let x1 = vec4f(H[h1.x + k], H[h1.y + k], H[h1.z + k], H[h1.w + k]);
      acc0 = fma(x0, w0, acc0);
      acc1 = fma(x1, w0, acc1);
      acc2 = fma(x0, w1, acc2);
      acc3 = fma(x1, w1, acc3);
    }
    acc0 = cap4(acc0);
    acc1 = cap4(acc1);
    acc2 = cap4(acc2);
    acc3 = cap4(acc3);
    online(acc0, &m0, &s0, &e0);
    online(acc1, &m1, &s1, &e1);
    targetHit(acc0, t0, v, row0);
    targetHit(acc1, t1, v, row0 + 4u);
    if (second) {
      online(acc2, &m0, &s0, &e0);
      online(acc3, &m1, &s1, &e1);
      targetHit(acc2, t0, v + 1u, row0);
      targetHit(acc3, t1, v + 1u, row0 + 4u);
    }
  }

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
