// decode/merge: the second pass of the split-K decode attention. For each (row, head, dim d):
// M = max_s m_s, L = Σ_s l_s·exp(m_s - M), O[row, head, d] = Σ_s acc_s[d]·exp(m_s - M) / L — the
// exact softmax over all splits. Splits with l_s = 0 (outside the row's range) add exact zeros,
// so a row's result does not depend on how many splits the step launched. Folded 1-D grid.

struct Params { R: u32, nH: u32, hd: u32, nSplit: u32 }

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> Part: array<f32>;
@group(0) @binding(2) var<storage, read_write> O: array<f32>;

override WG: u32 = 64;

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3u,
        @builtin(num_workgroups) nwg: vec3u,
        @builtin(local_invocation_index) li: u32) {
  let i = (wid.x + wid.y * nwg.x) * WG + li;
  if (i >= p.R * p.nH * p.hd) { return; }
  let rh = i / p.hd;
  let d = i % p.hd;
  let stride = p.hd + 2u;
  let base = rh * p.nSplit * stride;
  var M = -3.0e38;
  for (var s = 0u; s < p.nSplit; s++) {
    if (Part[base + s * stride + 1u] > 0.0) { M = max(M, Part[base + s * stride]); }
  }
  var L = 0.0;
  var acc = 0.0;
  for (var s = 0u; s < p.nSplit; s++) {
    let o = base + s * stride;
    let l = Part[o + 1u];
    if (l > 0.0) {
      let w = exp(Part[o] - M);
      L += l * w;
      acc += Part[o + 2u + d] * w;
    }
  }
  O[i] = select(0.0, acc / L, L > 0.0);
}
