// Sampling of one token per row of logits [rows, vocab] (kernels/sample.ts; CPU twin
// src/generate/sampling.ts, whose header defines the semantics: temperature → top-k → top-p →
// min-p as HF's warpers, then the inverse-CDF draw with u = uniformAt(seed, step)).
// Composed after generate/rng (uniformAt).
//
// One workgroup per row, no sort. Every rule is a threshold on the ordered key of the scaled value
// (the f32 bit pattern made monotone), so the kept set is { i : key_i ≥ T }:
//   top-k: T_k = the largest t with count(key ≥ t) ≥ k        (bitwise bisection, 32 count passes)
//   top-p: T_p = the largest t with mass(key ≥ max(t, T_k)) ≥ p·Z (32 mass passes)
//   min-p: T_m = key(max + ln minP);  T = min(max(T_k, T_p, T_m), key(max))
// Counts and masses are reduced in workgroup memory (strided partials, then a tree). The draw: each
// invocation sums its contiguous chunk of ids, invocation 0 scans the chunk sums, the invocation
// whose interval holds u·W walks its chunk in id order. Only ids (u32 per row) are written, and the
// 0/1 mask when p.writeMask != 0 (tests).

struct Params { rows: u32, vocab: u32, writeMask: u32, _pad: u32 }

// mode bits: 1 greedy, 2 top-k, 4 top-p, 8 min-p.
struct RowParams { invT: f32, topK: u32, topP: f32, minLog: f32, seed: u32, step: u32, mode: u32, _pad: u32 }

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> logits: array<f32>;
@group(0) @binding(2) var<storage, read> rowp: array<RowParams>;
@group(0) @binding(3) var<storage, read_write> ids: array<u32>;
@group(0) @binding(4) var<storage, read_write> mask: array<u32>;

override WG: u32 = 256;

var<workgroup> redF: array<f32, WG>;
var<workgroup> redU: array<u32, WG>;
var<workgroup> pre: array<f32, WG + 1u>;
var<workgroup> lastNZ: u32;
var<workgroup> wgMode: u32;

const NONE = 0xffffffffu;

fn orderedKey(x: f32) -> u32 {
  let b = select(bitcast<u32>(x), 0u, x == 0.0);
  return select(b | 0x80000000u, ~b, (b & 0x80000000u) != 0u);
}

fn sumF(li: u32, v: f32) -> f32 {
  redF[li] = v;
  workgroupBarrier();
  for (var s = WG / 2u; s > 0u; s >>= 1u) {
    if (li < s) { redF[li] += redF[li + s]; }
    workgroupBarrier();
  }
  let r = redF[0];
  workgroupBarrier();
  return r;
}

fn maxF(li: u32, v: f32) -> f32 {
  redF[li] = v;
  workgroupBarrier();
  for (var s = WG / 2u; s > 0u; s >>= 1u) {
    if (li < s) { redF[li] = max(redF[li], redF[li + s]); }
    workgroupBarrier();
  }
  let r = redF[0];
  workgroupBarrier();
  return r;
}

fn sumU(li: u32, v: u32) -> u32 {
  redU[li] = v;
  workgroupBarrier();
  for (var s = WG / 2u; s > 0u; s >>= 1u) {
    if (li < s) { redU[li] += redU[li + s]; }
    workgroupBarrier();
  }
  let r = redU[0];
  workgroupBarrier();
  return r;
}

// Argmax of the raw logits, the lowest id on ties.
fn argmaxRow(li: u32, base: u32) -> u32 {
  var v = -3.4e38;
  var a = NONE;
  for (var i = li; i < p.vocab; i += WG) {
    let x = logits[base + i];
    if (a == NONE || x > v) { v = x; a = i; }
  }
  redF[li] = v;
  redU[li] = a;
  workgroupBarrier();
  for (var s = WG / 2u; s > 0u; s >>= 1u) {
    if (li < s) {
      let ov = redF[li + s];
      let oa = redU[li + s];
      if (oa != NONE && (redU[li] == NONE || ov > redF[li] || (ov == redF[li] && oa < redU[li]))) {
        redF[li] = ov;
        redU[li] = oa;
      }
    }
    workgroupBarrier();
  }
  return redU[0];
}

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3u,
        @builtin(num_workgroups) nwg: vec3u,
        @builtin(local_invocation_index) li: u32) {
  let r = wid.x + wid.y * nwg.x;
  if (r >= p.rows) { return; }
  let V = p.vocab;
  let base = r * V;
  let rp = rowp[r];
  if (li == 0u) { wgMode = rp.mode; }
  let mode = workgroupUniformLoad(&wgMode);

  if ((mode & 1u) != 0u) {
    let a = argmaxRow(li, base);
    if (li == 0u) { ids[r] = a; }
    if (p.writeMask != 0u) {
      for (var i = li; i < V; i += WG) { mask[base + i] = select(0u, 1u, i == a); }
    }
    return;
  }

  var mloc = -3.4e38;
  for (var i = li; i < V; i += WG) { mloc = max(mloc, logits[base + i] * rp.invT); }
  let m = maxF(li, mloc);
  let mKey = orderedKey(m);

  var tk = 0u;
  if ((mode & 2u) != 0u) {
    for (var b = 31i; b >= 0i; b--) {
      let cand = tk | (1u << u32(b));
      var c = 0u;
      for (var i = li; i < V; i += WG) { c += select(0u, 1u, orderedKey(logits[base + i] * rp.invT) >= cand); }
      tk = select(tk, cand, sumU(li, c) >= rp.topK);
    }
  }
  var T = tk;
  if ((mode & 4u) != 0u) {
    var z = 0.0;
    for (var i = li; i < V; i += WG) {
      let s = logits[base + i] * rp.invT;
      if (orderedKey(s) >= tk) { z += exp(s - m); }
    }
    let pz = rp.topP * sumF(li, z);
    var tp = 0u;
    for (var b = 31i; b >= 0i; b--) {
      let cand = tp | (1u << u32(b));
      let lo = max(cand, tk);
      var h = 0.0;
      for (var i = li; i < V; i += WG) {
        let s = logits[base + i] * rp.invT;
        if (orderedKey(s) >= lo) { h += exp(s - m); }
      }
      tp = select(tp, cand, sumF(li, h) >= pz);
    }
    T = max(T, tp);
  }
  if ((mode & 8u) != 0u) { T = max(T, orderedKey(m + rp.minLog)); }
  T = min(T, mKey);

  if (p.writeMask != 0u) {
    for (var i = li; i < V; i += WG) { mask[base + i] = select(0u, 1u, orderedKey(logits[base + i] * rp.invT) >= T); }
  }

  // The draw: chunk sums in id order, their scan, the chunk holding u·W walked in order.
  let C = (V + WG - 1u) / WG;
  let c0 = min(li * C, V);
  let c1 = min(c0 + C, V);
  var cs = 0.0;
  for (var i = c0; i < c1; i++) {
    let s = logits[base + i] * rp.invT;
    if (orderedKey(s) >= T) { cs += exp(s - m); }
  }
  redF[li] = cs;
  workgroupBarrier();
  if (li == 0u) {
    var acc = 0.0;
    var last = 0u;
    for (var l = 0u; l < WG; l++) {
      pre[l] = acc;
      acc += redF[l];
      if (redF[l] > 0.0) { last = l; }
    }
    pre[WG] = acc;
    lastNZ = last;
  }
  workgroupBarrier();
  let goal = uniformAt(rp.seed, rp.step) * pre[WG];
  if (cs > 0.0 && pre[li] <= goal && (goal < pre[li + 1u] || li == lastNZ)) {
    var acc = pre[li];
    var pick = NONE;
    var lastKept = NONE;
    for (var i = c0; i < c1; i++) {
      let s = logits[base + i] * rp.invT;
      if (orderedKey(s) >= T) {
        acc += exp(s - m);
        lastKept = i;
        if (acc > goal) { pick = i; break; }
      }
    }
    ids[r] = select(pick, lastKept, pick == NONE);
  }
}
