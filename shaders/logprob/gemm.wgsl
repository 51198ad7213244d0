// Fused LM-head log-likelihood, pass 1 of 3 — variant 'gemm' for hardware GPUs: the logits product
// H [T, d] · Wᵀ (W [V, d]) as a register-blocked tiled GEMM whose epilogue is the online softmax.
//
// Each workgroup owns BM positions × one split of the vocabulary, and walks that split in tiles of
// BN vocabulary entries; every W tile is read from global memory once per BM positions (logprob/
// partial: once per 8). Per K step of BK, the BM × BK slice of H and the BN × BK slice of W go
// through workgroup memory (vec4 loads from global memory when d % 4 = 0, scalar otherwise; vec4
// reads from workgroup memory, rows padded by one vec4 against bank conflicts). Each of the
// (BM/8)·(BN/4) threads holds an 8-position × 4-entry block of logits in registers; positions
// ty + r·(BM/8) and entries tx + c·(BN/4) (strided ownership: neighbouring threads read
// neighbouring rows of the tile, so the padded rows fall in distinct banks).
//
// Epilogue per vocabulary tile, in registers: soft-cap (Gemma 2), then per position a running
// (max, Σ exp(logit − max)) over the entries this thread has seen, and the target's logit written
// when its entry passes. After the split, the BN/4 threads of each position merge their running
// pairs in workgroup memory (a tree, once per workgroup: negligible next to the main loop) and
// write the split's (max, sumexp) partial, which combine.wgsl merges exactly as for the other
// variants. The T×V logits are never written.

// The uniforms, bindings 0–5, NEG, tanh_safe, cap4 and merge: logprob/common.wgsl, composed after
// this file (kernels/logprob.ts).

// The same two buffers again, seen as vec4s: used when d % 4 = 0 (then every row starts on a vec4
// and the buffers hold whole vec4s). Read-only bindings may alias.
@group(0) @binding(6) var<storage, read> H4: array<vec4f>;
@group(0) @binding(7) var<storage, read> W4: array<vec4<WeightT>>;

override BM: u32 = 64;   // positions per workgroup (a multiple of 8)
override BN: u32 = 128;  // vocabulary entries per tile (4 · a power of two)
override BK: u32 = 32;   // K step (a multiple of 4)
const TM = 8u;           // positions per thread
const TN = 4u;           // vocabulary entries per thread
override NTY: u32 = BM / TM;
override NTX: u32 = BN / TN;
override WG: u32 = NTY * NTX;
override RS: u32 = BK / 4u + 1u; // row stride of the tiles in vec4s (one vec4 of padding)

var<workgroup> Hs: array<vec4f, BM * RS>; // [BM][BK/4 (+1)]
var<workgroup> Ws: array<vec4f, BN * RS>; // [BN][BK/4 (+1)]
var<workgroup> red: array<vec2f, WG>;     // epilogue merge: (m, s) per thread
var<workgroup> redt: array<f32, WG>;      // and t (merge's state in common.wgsl)

/** Fold four logits of one position (only the `valid` ones) into its running (m, s, t) (merge's state). */
fn fold(st: vec3f, x: vec4f, valid: vec4<bool>) -> vec3f {
  let xv = select(vec4f(NEG), x, valid);
  let m = max(st.x, max(max(xv.x, xv.y), max(xv.z, xv.w)));
  let z = xv - vec4f(m);
  let e = select(vec4f(0.0), exp(z), valid);
  let a = exp(st.x - m);
  return vec3f(m, st.y * a + e.x + e.y + e.z + e.w, a * (st.z + (st.x - m) * st.y) + dot(z, e));
}

/** Element i of H or W (scalar path, any d). */
fn loadH(row: u32, k: u32) -> f32 {
  if (row < p.T && k < p.d) { return H[row * p.d + k]; }
  return 0.0;
}
fn loadW(row: u32, vEnd: u32, k: u32) -> f32 {
  if (row < vEnd && k < p.d) { return f32(W[row * p.d + k]); }
  return 0.0;
}

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3u,
        @builtin(num_workgroups) nwg: vec3u,
        @builtin(local_invocation_index) lid: u32) {
  let linear = wid.x + wid.y * nwg.x;
  let nRowTiles = (p.T + BM - 1u) / BM;
  // Uniform per workgroup, so the early return keeps barriers in uniform control flow.
  if (linear >= nRowTiles * p.S) { return; }
  let row0 = (linear / p.S) * BM;
  let split = linear % p.S;
  let vBegin = split * p.chunk;
  let vEnd = min(p.V, vBegin + p.chunk);
  let ty = lid / NTX;
  let tx = lid % NTX;
  let vec4Path = (p.d & 3u) == 0u; // uniform
  let d4 = p.d / 4u;
  let KV = BK / 4u; // vec4s per tile row

  var st: array<vec3f, TM>;  // running (m, s, t) per owned position
  var tg: array<u32, TM>;    // target per owned position (none: 0xffffffff)
  for (var r = 0u; r < TM; r++) {
    st[r] = vec3f(NEG, 0.0, 0.0);
    let row = row0 + ty + r * NTY;
    tg[r] = select(0xffffffffu, targets[min(row, p.T - 1u)], row < p.T);
  }

  for (var vb = vBegin; vb < vEnd; vb += BN) {
    var acc: array<vec4f, TM>; // acc[r][c]: position ty + r·NTY, entry vb + tx + c·NTX
    for (var r = 0u; r < TM; r++) { acc[r] = vec4f(0.0); }

    for (var k0 = 0u; k0 < p.d; k0 += BK) {
      for (var e = lid; e < BM * KV; e += WG) {
        let r = e / KV;
        let kv = e % KV;
        let row = row0 + r;
        let k = k0 + kv * 4u;
        var h = vec4f(0.0);
        if (vec4Path) {
          if (row < p.T && k < p.d) { h = H4[row * d4 + k / 4u]; }
        } else {
          h = vec4f(loadH(row, k), loadH(row, k + 1u), loadH(row, k + 2u), loadH(row, k + 3u));
        }
        Hs[r * RS + kv] = h;
      }
      for (var e = lid; e < BN * KV; e += WG) {
        let n = e / KV;
        let kv = e % KV;
        let row = vb + n;
        let k = k0 + kv * 4u;
        var w = vec4f(0.0);
        if (vec4Path) {
          if (row < vEnd && k < p.d) { w = vec4f(W4[row * d4 + k / 4u]); }
        } else {
          w = vec4f(loadW(row, vEnd, k), loadW(row, vEnd, k + 1u), loadW(row, vEnd, k + 2u), loadW(row, vEnd, k + 3u));
        }
        Ws[n * RS + kv] = w;
      }
      workgroupBarrier();
      for (var kv = 0u; kv < KV; kv++) {
        // Four entries' K-slices as the columns of a matrix: h · Wm = their four dot products.
        let wm = mat4x4f(Ws[tx * RS + kv], Ws[(tx + NTX) * RS + kv], Ws[(tx + 2u * NTX) * RS + kv], Ws[(tx + 3u * NTX) * RS + kv]);
        for (var r = 0u; r < TM; r++) {
          acc[r] += Hs[(ty + r * NTY) * RS + kv] * wm;
        }
      }
      workgroupBarrier();
    }

    // Epilogue of this vocabulary tile: soft-cap, online softmax, target capture.
    let v = vec4u(vb + tx) + vec4u(0u, NTX, 2u * NTX, 3u * NTX);
    let valid = v < vec4u(vEnd);
    for (var r = 0u; r < TM; r++) {
      var x = acc[r];
      if (p.softcap > 0.0) { x = cap4(x); }
      st[r] = fold(st[r], x, valid);
      let hit = (v == vec4u(tg[r])) & valid;
      if (any(hit)) {
        let row = row0 + ty + r * NTY;
        for (var c = 0u; c < TN; c++) {
          if (hit[c]) { tgt[row] = x[c]; }
        }
      }
    }
  }

  // Merge the NTX threads of each position: one owned-position slot r at a time, a tree in
  // workgroup memory over tx (NTX is a power of two), then tx = 0 writes the split's partial.
  for (var r = 0u; r < TM; r++) {
    red[lid] = st[r].xy;
    redt[lid] = st[r].z;
    workgroupBarrier();
    for (var stride = NTX / 2u; stride > 0u; stride /= 2u) {
      if (tx < stride) {
        let a = merge(vec3f(red[lid], redt[lid]), vec3f(red[lid + stride], redt[lid + stride]));
        red[lid] = a.xy;
        redt[lid] = a.z;
      }
      workgroupBarrier();
    }
    let row = row0 + ty + r * NTY;
    if (tx == 0u && row < p.T) { partial[row * p.S + split] = vec4f(red[lid], redt[lid], 0.0); }
    workgroupBarrier();
  }
}
