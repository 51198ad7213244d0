// Causal self-attention with grouped KV heads and a per-sequence padding mask, tiled with an online
// softmax (flash-attention style): no score matrix ever reaches global memory. With the override
// CAUSAL = false it is bidirectional (BERT-style encoders): every real row attends to all real keys.
//
//   Q [T, nH*hd], K and V [T, nKv*hd], O [T, nH*hd], T = B*L (B sequences padded to length L).
//   Query head h reads KV head h / (nH / nKv). seq_len[b] (clamped to L) is the real length of
//   sequence b: keys at positions >= seq_len[b] are never attended, and query rows at positions
//   >= seq_len[b] are pads and get zeros.
//
// One workgroup per (query block of BQ rows, head, sequence) = grid (ceil(L/BQ), nH, B).
// 256 invocations = BQ rows x LANES lanes; invocation (r, c) owns query row q0 + r and
//   - in the score step, the score of key c of the current tile (a dot product over hd),
//   - in the PV step, output dims c, c + LANES, ..., c + (ACC-1)*LANES (hd <= HD_MAX = 128).
// Per key tile of BK keys: stage K and V rows in workgroup memory, compute the BQ x BK scores,
// update each row's running max m and running sum l, rescale the accumulators by exp(m_old - m)
// and add P.V. Tiles past the causal frontier of the block (or past seq_len) are never loaded.
//
// The tile boundaries depend only on positions within the sequence (k0 = 0, BK, 2BK, ...), never on
// L or B, so a sequence scores bit-identically alone or inside a padded batch.
//
// Workgroup memory: Qs + Ks (rows padded to HD_MAX + 1 floats so that lanes reading different
// rows at the same d hit different banks) + Vs + S + P = 26.7 KiB, under the 32 KiB that
// SwiftShader allows.

// window > 0 (causal only): query i sees keys j with i - window < j <= i (a sliding window that
// counts the query itself); 0 = unlimited. Tiles wholly before the window are never loaded.
// softcap > 0: scores become softcap * tanh(score / softcap) before the mask (Gemma 2's
// attn_logit_softcapping, modeling_gemma2.py eager_attention_forward); 0 = none.
struct Params { B: u32, L: u32, nH: u32, nKv: u32, hd: u32, scale: f32, window: u32, softcap: f32 }

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> Q: array<f32>;
@group(0) @binding(2) var<storage, read> K: array<f32>;
@group(0) @binding(3) var<storage, read> V: array<f32>;
@group(0) @binding(4) var<storage, read> seq_len: array<u32>;
@group(0) @binding(5) var<storage, read_write> O: array<f32>;

override CAUSAL: bool = true;

const BQ = 16u;
const BK = 16u;
const LANES = 16u;          // == BK: lane c scores key c of the tile
const WG = 256u;            // BQ * LANES
const HD_MAX = 128u;
const ACC = 8u;             // HD_MAX / LANES output dims per invocation
const RS = 129u;            // padded row stride of Qs and Ks
// Masked scores. A finite sentinel (WGSL has no -inf literal); any real score is far above it.
const MASKED = -3.0e38;
const MASK_TEST = -1.0e38;

// Soft-capping: cap * tanh_safe(x / cap) (Gemma 2); tanh_safe and the other shared functions:
//#include common/math

var<workgroup> Qs: array<f32, 2064>;   // BQ * RS
var<workgroup> Ks: array<f32, 2064>;   // BK * RS
var<workgroup> Vs: array<f32, 2048>;   // BK * HD_MAX
var<workgroup> S: array<f32, 256>;     // BQ * BK scores of the current tile
var<workgroup> P: array<f32, 256>;     // BQ * BK probabilities (unnormalised) of the current tile

@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_index) li: u32) {
  let q0 = wid.x * BQ;
  let h = wid.y;
  let b = wid.z;
  let r = li / LANES;
  let c = li % LANES;
  let hd = p.hd;
  let kvh = h / (p.nH / p.nKv);
  let q_stride = p.nH * hd;
  let kv_stride = p.nKv * hd;
  let tok0 = b * p.L;
  // Workgroup-uniform (read-only storage at a uniform index), so it can bound the barrier loop.
  let len = min(seq_len[b], p.L);

  let qi = q0 + r;
  let real_row = qi < len;

  // Stage the query block (zeros for pad rows).
  for (var e = li; e < BQ * hd; e += WG) {
    let rr = e / hd;
    let d = e % hd;
    var v = 0.0;
    if (q0 + rr < len) { v = Q[(tok0 + q0 + rr) * q_stride + h * hd + d]; }
    Qs[rr * RS + d] = v;
  }

  // Keys this block needs: [0, k_end). Causal: row q0 + BQ - 1 sees keys up to itself; none past
  // len. Bidirectional: all of [0, len). A block made only of pad rows needs no keys at all.
  let k_end = select(0u, select(len, min(q0 + BQ, len), CAUSAL), q0 < len);
  // With a window, the block's first row q0 needs keys from q0 + 1 - window on: start at that
  // key's tile (tile-aligned, so tile boundaries still depend only on positions).
  var k_start = 0u;
  if (CAUSAL && p.window > 0u && q0 + 1u > p.window) { k_start = ((q0 + 1u - p.window) / BK) * BK; }

  var m = MASKED;
  var l = 0.0;
  var acc: array<f32, ACC>;
  for (var k0 = k_start; k0 < k_end; k0 += BK) {
    // The previous tile has been consumed (and, on the first pass, Qs is complete).
    workgroupBarrier();
    for (var e = li; e < BK * hd; e += WG) {
      let j = e / hd;
      let d = e % hd;
      var kv = 0.0;
      var vv = 0.0;
      if (k0 + j < k_end) {
        let g = (tok0 + k0 + j) * kv_stride + kvh * hd + d;
        kv = K[g];
        vv = V[g];
      }
      Ks[j * RS + d] = kv;
      Vs[j * HD_MAX + d] = vv;
    }
    workgroupBarrier();

    // Score of (row r, key k0 + c); causal: key <= query (which also keeps it below len), and
    // inside the window when there is one.
    let kc = k0 + c;
    let in_window = p.window == 0u || kc + p.window > qi;
    var s = MASKED;
    if (real_row && kc < k_end && ((kc <= qi && in_window) || !CAUSAL)) {
      var dot = 0.0;
      for (var d = 0u; d < hd; d++) { dot = fma(Qs[r * RS + d], Ks[c * RS + d], dot); }
      s = dot * p.scale;
      if (p.softcap > 0.0) { s = p.softcap * tanh_safe(s / p.softcap); }
    }
    S[r * BK + c] = s;
    workgroupBarrier();

    // Every lane of a row computes the same new max from the same S row.
    var mb = MASKED;
    for (var j = 0u; j < BK; j++) { mb = max(mb, S[r * BK + j]); }
    let m_new = max(m, mb);
    // exp arguments are <= 0; the clamp keeps a sentinel difference (~ -3e38) away from exp.
    let alpha = exp(max(m - m_new, -100.0));
    P[r * BK + c] = select(0.0, exp(max(s - m_new, -100.0)), s > MASK_TEST);
    workgroupBarrier();

    var ps = 0.0;
    for (var a = 0u; a < ACC; a++) { acc[a] *= alpha; }
    for (var j = 0u; j < BK; j++) {
      let pj = P[r * BK + j];
      ps += pj;
      for (var a = 0u; a < ACC; a++) {
        let d = c + a * LANES;
        if (d < hd) { acc[a] = fma(pj, Vs[j * HD_MAX + d], acc[a]); }
      }
    }
    l = l * alpha + ps;
    m = m_new;
  }

  if (qi >= p.L) { return; }
  // A real row always has l >= 1 (its max term is exp(0)); pad rows write zeros.
  let ok = real_row && l > 0.0;
  let inv = select(0.0, 1.0 / l, ok);
  let out0 = (tok0 + qi) * q_stride + h * hd;
  for (var a = 0u; a < ACC; a++) {
    let d = c + a * LANES;
    if (d < hd) { O[out0 + d] = select(0.0, acc[a] * inv, ok); }
  }
}
