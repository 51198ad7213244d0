// decode/attention: the first pass of the decoder's split-K ("flash-decoding") attention
// (kernels/decode-attention.ts decodeAttentionGpu). One query row per token of the step (its slot
// and absolute position in rows[t]), attending that slot's cached keys j with
// lo <= j <= pos, lo = max(0, pos + 1 - window) for a sliding window (0 = none); grouped KV heads
// (query head h reads KV head h / (nH / nKv)).
//
// Grid (split, head, row): split s covers cache positions [s·CHUNK, (s+1)·CHUNK). A workgroup of
// WG invocations stages the query in workgroup memory, computes the chunk's scores (one key per
// invocation per round; scale, then the soft-cap cap·tanh(s/cap) when cap > 0), their max m, the
// exponentials and their sum l (tree reductions), and acc = Σ_j exp(s_j - m) V_j (one head
// dimension per invocation). It writes (m, l, acc[hd]) to Part[row, head, split]; a chunk outside
// the row's range writes (MASKED, 0, 0). decode/merge.wgsl combines the splits exactly.
//
// The split boundaries depend only on positions (multiples of CHUNK), never on the batch, and the
// reductions add in a fixed order, so a row's result is the same whatever else is in the step.
//
// Header (composed in front): const CHUNK, const HD_MAX, alias KVT (and enable f16).

struct Params { R: u32, nH: u32, nKv: u32, hd: u32, maxLen: u32, nSplit: u32, scale: f32, window: u32, softcap: f32 }

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> rows: array<vec2u>;
@group(0) @binding(2) var<storage, read> Q: array<f32>;
@group(0) @binding(3) var<storage, read> Kc: array<KVT>;
@group(0) @binding(4) var<storage, read> Vc: array<KVT>;
@group(0) @binding(5) var<storage, read_write> Part: array<f32>;

const WG = 64u;
const MASKED = -3.0e38;

var<workgroup> qs: array<f32, HD_MAX>;
var<workgroup> S: array<f32, CHUNK>;
//#include common/reduce

//#include common/math

// Tree reductions over the workgroup (called in uniform control flow).
fn reduce_max(x: f32, li: u32) -> f32 {
  red[li] = x;
  workgroupBarrier();
  for (var s = WG / 2u; s > 0u; s >>= 1u) {
    if (li < s) { red[li] = max(red[li], red[li + s]); }
    workgroupBarrier();
  }
  let r = red[0];
  workgroupBarrier();
  return r;
}

fn sum_all(x: f32, li: u32) -> f32 {
  red[li] = x;
  reduce_sum(li);
  let r = red[0];
  workgroupBarrier();
  return r;
}

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_index) li: u32) {
  let split = wid.x;
  let h = wid.y;
  let row = wid.z;
  let slot = rows[row].x;
  let pos = rows[row].y;
  let kvh = h / (p.nH / p.nKv);
  var lo = 0u;
  if (p.window > 0u && pos + 1u > p.window) { lo = pos + 1u - p.window; }
  let c0 = split * CHUNK;
  let j_lo = max(lo, c0);
  let j_hi = min(pos + 1u, c0 + CHUNK);   // exclusive

  let qbase = (row * p.nH + h) * p.hd;
  for (var d = li; d < p.hd; d += WG) { qs[d] = Q[qbase + d]; }
  workgroupBarrier();

  let kvbase = (slot * p.nKv + kvh) * p.maxLen;
  var mloc = MASKED;
  for (var j = li; j < CHUNK; j += WG) {
    let key = c0 + j;
    var sc = MASKED;
    if (key >= j_lo && key < j_hi) {
      let kb = (kvbase + key) * p.hd;
      var sdot = 0.0;
      for (var d = 0u; d < p.hd; d++) { sdot = fma(qs[d], f32(Kc[kb + d]), sdot); }
      sc = sdot * p.scale;
      if (p.softcap > 0.0) { sc = p.softcap * tanh_safe(sc / p.softcap); }
    }
    S[j] = sc;
    mloc = max(mloc, sc);
  }
  let m = reduce_max(mloc, li);
  var lloc = 0.0;
  for (var j = li; j < CHUNK; j += WG) {
    let key = c0 + j;
    var e = 0.0;
    if (key >= j_lo && key < j_hi) { e = exp(S[j] - m); }
    S[j] = e;
    lloc += e;
  }
  let l = sum_all(lloc, li);   // its barriers also publish S

  let out = ((row * p.nH + h) * p.nSplit + split) * (p.hd + 2u);
  if (li == 0u) {
    Part[out] = m;
    Part[out + 1u] = l;
  }
  for (var d = li; d < p.hd; d += WG) {
    var acc = 0.0;
    if (j_lo < j_hi) {
      for (var key = j_lo; key < j_hi; key++) { acc = fma(S[key - c0], f32(Vc[(kvbase + key) * p.hd + d]), acc); }
    }
    Part[out + 2u + d] = acc;
  }
}
